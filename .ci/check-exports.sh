#!/usr/bin/env bash
# Checks what a built libsockserv.so exports.
#
#   .ci/check-exports.sh LIBRARY.so [HEADER.h...]
#   .ci/check-exports.sh --list LIBRARY.so     (print the exported ss_ names)
#
# Fails if the library's dynamic symbol table defines anything outside the
# public namespace: every exported name must start with "ss_" and must not
# start with "ss__" (the prefix for internal, non-static names). Hidden
# visibility is the library's default, so a stray export means a missing
# "static" or a misplaced SS_API.
#
# With headers, also fails if something a header declares with SS_API is not
# exported: users would get an undefined reference at link time.
set -euo pipefail

list_only=false
if [ "${1:-}" = --list ]; then
    list_only=true
    shift
fi
if [ $# -lt 1 ]; then
    echo "usage: $0 LIBRARY.so [HEADER.h...] | $0 --list LIBRARY.so" >&2
    exit 2
fi
lib=$1
shift
[ -f "$lib" ] || { echo "check-exports: no such file: $lib" >&2; exit 2; }

# "ADDRESS TYPE NAME[@VERSION]" -> NAME. Absolute (A) symbols are version
# nodes or linker markers, not code or data.
exported=$(nm -D --defined-only "$lib" |
           awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
if $list_only; then
    # The public names, one a line: what the man pages must cover.
    printf '%s\n' "$exported" | grep -E '^ss_' | grep -Ev '^ss__' || true
    exit 0
fi

# Linker- and libc-provided names some toolchains leave in .dynsym.
ignored='^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$'

bad=$(printf '%s\n' "$exported" | grep -Ev "$ignored" |
      grep -Ev '^ss_' || true)
internal=$(printf '%s\n' "$exported" | grep -E '^ss__' || true)
count=$(printf '%s\n' "$exported" | grep -c '^ss_' || true)

status=0
if [ "$count" -eq 0 ]; then
    echo "check-exports: $lib exports no ss_ symbol at all" >&2
    status=1
fi
if [ -n "$bad" ]; then
    echo "check-exports: $lib exports names outside the ss_ namespace:" >&2
    printf '%s\n' "$bad" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$internal" ]; then
    echo "check-exports: $lib exports internal ss__ names:" >&2
    printf '%s\n' "$internal" | sed 's/^/  /' >&2
    status=1
fi

if [ $# -gt 0 ]; then
    # Every declaration starts with SS_API and names its symbol on that line
    # or, where clang-format broke a long one after the return type, on the
    # next: the first ss_ identifier followed by "(" (function), ";" or "["
    # (object). Type names (ss_server, ss_tcp's ss_server_class) are
    # followed by a space or "*" and so are skipped.
    declared=$(awk '/^[[:space:]]*SS_API[[:space:]]/ { line = $0
                    if (line !~ /ss_[A-Za-z0-9_]+[[:space:]]*[(;[]/ &&
                        (getline next_line) > 0) line = line " " next_line
                    print line }' "$@" |
               grep -oE '\bss_[A-Za-z0-9_]+[[:space:]]*[(;[]' |
               sed -E 's/[[:space:]]*[(;[]$//' | sort -u)
    missing=$(comm -23 <(printf '%s\n' "$declared") \
                       <(printf '%s\n' "$exported"))
    if [ -n "$missing" ]; then
        echo "check-exports: declared SS_API in $* but not exported by $lib:" >&2
        printf '%s\n' "$missing" | sed 's/^/  /' >&2
        status=1
    fi
    ndeclared=$(printf '%s\n' "$declared" | grep -c . || true)
fi

if [ "$status" -eq 0 ]; then
    echo "check-exports: $lib: $count symbols, all ss_${ndeclared:+; all $ndeclared SS_API declarations exported}"
fi
exit "$status"
