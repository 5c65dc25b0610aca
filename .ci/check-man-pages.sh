#!/usr/bin/env bash
# Checks the man pages against the library they document.
#
#   .ci/check-man-pages.sh LIBRARY.so GENERATED_MAN3_DIR [HAND_WRITTEN_PAGE...]
#
# - every symbol the library exports (as .ci/check-exports.sh --list lists
#   them) has a page NAME.3 in GENERATED_MAN3_DIR (docs/man/gen-man-pages.py
#   writes them from the headers at build time);
# - every page, generated or hand-written (docs/man/sockserv.3), passes
#   groff's warnings, as man(1) would format it too (when groff is installed);
# - every page a page refers to in section 3 (".BR ss_read (3)") is one
#   of those installed with the library — generated, or sockserv(3) — and
#   no page points into the source tree (docs/...md, include/...), which
#   is not installed.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 LIBRARY.so MAN3_DIR [PAGE...]" >&2
    exit 2
fi
lib=$1
dir=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -d "$dir" ] || { echo "check-man-pages: no directory $dir" >&2; exit 2; }

status=0
missing=()
count=0
while read -r name; do
    [ -n "$name" ] || continue
    count=$((count + 1))
    [ -f "$dir/$name.3" ] || missing+=("$name")
done < <(bash "$here/check-exports.sh" --list "$lib")
if [ ${#missing[@]} -gt 0 ]; then
    echo "check-man-pages: exported but without a page in $dir:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    status=1
fi

pages=("$dir"/*.3 "$@")
installed=" sockserv "
for page in "$dir"/*.3; do
    base=${page##*/}
    installed+="${base%.3} "
done

linted=false
if command -v groff >/dev/null && command -v preconv >/dev/null &&
   command -v tbl >/dev/null; then
    linted=true
fi
# One run over every page; only when it warns, one run per page to name
# the culprits. The second pipeline is what `MANWIDTH=80 man --warnings
# -l` runs (preconv, tbl, groff for a UTF-8 terminal of 80 columns), with
# every warning on (-ww) and without man-db's start-up for each page,
# which took 48 s of CI for 246 pages.
lint() {
    local page
    { groff -man -ww -z "$@" 2>&1 >/dev/null
      for page in "$@"; do preconv -e UTF-8 "$page"; done | tbl |
          groff -mandoc -Tutf8 -ww -z -rLL=80n -rLT=80n 2>&1 >/dev/null; } ||
        true
}
if $linted && [ -n "$(lint "${pages[@]}")" ]; then
    for page in "${pages[@]}"; do
        warnings=$(lint "$page")
        if [ -n "$warnings" ]; then
            echo "check-man-pages: $page has warnings:" >&2
            echo "$warnings" >&2
            status=1
        fi
    done
fi
for page in "${pages[@]}"; do
    # ".BR name (3)" and ".BR name ()" in running text refer to pages.
    for ref in $(sed -n 's/^\.BR \([A-Za-z0-9_\\-]*\) (3).*/\1/p' "$page" |
                 sed 's/\\-/-/g'); do
        case "$installed" in
            *" $ref "*) ;;
            *) echo "check-man-pages: $page refers to $ref(3)," \
                    "which is not installed" >&2
               status=1 ;;
        esac
    done
    # The example programs' pages are installed only with the examples.
    if grep -n '^\.BR sockserv-[a-z]* (1)' "$page" >&2; then
        echo "check-man-pages: $page refers to a program's page (above)," \
             "installed only with the examples" >&2
        status=1
    fi
done
# A hand-written page must not send readers to files of the source tree
# (generated pages quote the headers, the documentation of record).
for page in "$@"; do
    if grep -nE 'docs/[A-Za-z0-9_./-]*\.md|include/sockserv/' "$page" |
       grep -v '^[0-9]*:\.\\"' >&2; then
        echo "check-man-pages: $page points into the source tree (above)," \
             "which is not installed" >&2
        status=1
    fi
done

if [ "$status" -eq 0 ]; then
    echo "check-man-pages: $count exported symbols, each with a page;" \
         "${#pages[@]} pages$($linted && echo ' without warnings'), every" \
         "section-3 reference installed"
fi
exit "$status"
