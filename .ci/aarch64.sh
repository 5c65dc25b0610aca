#!/usr/bin/env bash
# The coroutine tests on aarch64, cross-compiled and run under qemu-user:
# the hand-written switch in lib/coroutines/coro_switch_aarch64.S is otherwise never
# executed on an x86-64 machine.
#
#   bash .ci/aarch64.sh          (from anywhere inside the checkout; root
#                                 for the installs on a fresh machine)
#
# Installs what is missing, from Debian (apt-get update first):
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross   the cross compiler
#   qemu-user                                      qemu-aarch64
#   libcmocka-dev:arm64                            cmocka for arm64, through
#       dpkg multiarch (dpkg --add-architecture arm64): it brings libc6:arm64
#       and libcmocka0:arm64 into /lib/aarch64-linux-gnu. About 60 MB of
#       downloads on a fresh machine, ~30 s.
# Then cross-builds the library and the coroutine tests with
# cmake/toolchain-aarch64-linux-gnu.cmake, warnings as errors, twice (plain
# in build-aarch64/, with -mbranch-protection=standard in
# build-aarch64-bp/; $SOCKSERV_AARCH64_BUILD renames both), recreated on
# every run, and runs them through ctest, which starts each under
# qemu-aarch64 (the toolchain's CMAKE_CROSSCOMPILING_EMULATOR; it explains
# why there is no -L /usr/aarch64-linux-gnu with multiarch installed).
#
# The tests: test_coro_context and test_coro_context_ucontext (stacks,
# guard pages, the overflow reporter, both switches), test_coro_switch
# (every callee-saved register: x19-x28, d8-d15, fp, sp), test_coroutines
# and test_wait_input_or_fd (the strategy over real sockets, epoll,
# eventfd, threads). All of them pass under qemu 7.2. The rest of the
# suite is not about the switch and is not run here; part of it cannot
# work under qemu-user as set up here: the tests that fork and exec the
# example programs get ENOEXEC for an aarch64 binary without binfmt_misc.
#
# Environment: SOCKSERV_CI_JOBS (default: nproc), SOCKSERV_AARCH64_BUILD
# (default: build-aarch64).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -f CMakeLists.txt ] || [ ! -d include/sockserv ]; then
    echo ".ci/aarch64.sh: run from a libsockserv checkout" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
jobs=${SOCKSERV_CI_JOBS:-$(nproc 2>/dev/null || echo 2)}
build=${SOCKSERV_AARCH64_BUILD:-build-aarch64}
targets=(test_coro_context test_coro_context_ucontext test_coro_switch
         test_coroutines test_wait_input_or_fd)
tests="^($(IFS='|'; echo "${targets[*]}"))\$"

start=$SECONDS

# ---- What is missing --------------------------------------------------------
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null ||
    missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null ||
    missing+=(qemu-user)
command -v pkg-config >/dev/null || missing+=(pkg-config)
dpkg-query -W -f='${Status}' libcmocka-dev:arm64 2>/dev/null |
    grep -q 'install ok installed' || missing+=(libcmocka-dev:arm64)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "+ dpkg --add-architecture arm64 (for libcmocka-dev:arm64)"
        dpkg --add-architecture arm64
    fi
    echo "+ apt-get update"
    apt-get update -q
    echo "+ apt-get install -y --no-install-recommends ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
echo "cross compiler: $(aarch64-linux-gnu-gcc --version | head -n 1)"
echo "emulator:       $("$qemu" --version | head -n 1)"
echo "cmocka:arm64:   $(dpkg-query -W -f='${Version}' libcmocka-dev:arm64)"
installed=$SECONDS

# ---- Cross build and run, twice ----------------------------------------------
# 1. plain: as Debian builds for arm64 (armv8-a, no branch protection).
# 2. branch protection: -mbranch-protection=standard, as distributions
#    that default to it build. qemu's default CPU ("max") has pointer
#    authentication, so every return address signed in one context and
#    authenticated after switches is checked for real; and the library's
#    objects together must still be BTI-ready (lib/coroutines/coro_switch_aarch64.S
#    carries the GNU property note). The test programs themselves cannot
#    be BTI-enforced here: Debian's crt1.o has no BTI landing pads.
toolchain=$PWD/cmake/toolchain-aarch64-linux-gnu.cmake
status=0
build_seconds=0
test_seconds=0
run_pass() { # NAME DIR [EXTRA CFLAGS]
    local name=$1 dir=$2 flags=${3:-} t0=$SECONDS
    printf '\n--- aarch64 pass: %s (%s)\n' "$name" "$dir"
    rm -rf "$dir"
    cmake -S . -B "$dir" \
        -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_ASM_FLAGS="$flags" \
        -DSOCKSERV_WERROR=ON \
        -DSOCKSERV_BUILD_TESTS=ON \
        -DSOCKSERV_BUILD_EXAMPLES=OFF \
        -DSOCKSERV_BUILD_BENCH=OFF
    cmake --build "$dir" -j"$jobs" --target "${targets[@]}"
    # aarch64 binaries, with the assembly switch (not the ucontext
    # fallback). (grep without -q: with pipefail, an early exit could fail
    # the writer.)
    readelf -h "$dir/tests/test_coro_switch" | grep 'Machine:.*AArch64' || {
        echo ".ci/aarch64.sh: the test binaries are not aarch64" >&2
        exit 1
    }
    aarch64-linux-gnu-nm "$dir/tests/test_coro_switch" |
        grep ' ss__coro_switch$' || {
        echo ".ci/aarch64.sh: test_coro_switch lacks the assembly switch" >&2
        exit 1
    }
    case " $flags " in
    *" -mbranch-protection="*)
        # What the linker makes of all the library's objects together.
        # (one folder per axis below sockserv_objects.dir/)
        find "$dir/lib/CMakeFiles/sockserv_objects.dir" -name '*.o' -print0 |
            xargs -0 aarch64-linux-gnu-ld -r -o "$dir/sockserv-objects.o"
        aarch64-linux-gnu-readelf -n "$dir/sockserv-objects.o" |
            grep 'AArch64 feature: BTI' || {
            echo ".ci/aarch64.sh: the library's objects are not BTI-ready" >&2
            exit 1
        }
        ;;
    esac
    build_seconds=$((build_seconds + SECONDS - t0))
    t0=$SECONDS
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" -R "$tests" ||
        status=$?
    test_seconds=$((test_seconds + SECONDS - t0))
}
run_pass plain "$build"
run_pass "branch protection" "$build-bp" -mbranch-protection=standard
done_at=$SECONDS

printf '\n=== aarch64: install %ds, builds %ds, tests %ds, total %ds: %s\n' \
    $((installed - start)) "$build_seconds" "$test_seconds" \
    $((done_at - start)) \
    "$([ "$status" -eq 0 ] && echo PASSED || echo "FAILED ($status)")"
exit "$status"
