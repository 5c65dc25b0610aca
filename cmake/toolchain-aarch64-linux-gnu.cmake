# Cross-compiling libsockserv for aarch64 Linux on a Debian x86-64 host.
#
#   cmake -S . -B build-aarch64 \
#       -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
#
# Needs Debian's cross compiler (gcc-aarch64-linux-gnu, which brings
# libc6-dev-arm64-cross under /usr/aarch64-linux-gnu) and, for the tests,
# cmocka for arm64 through dpkg multiarch (libcmocka-dev:arm64, in
# /usr/lib/aarch64-linux-gnu, with libc6:arm64). The binaries run under
# qemu-user:
#   qemu-aarch64 build-aarch64/tests/test_coroutines
# (see below for when -L /usr/aarch64-linux-gnu is right and when it is
# not). .ci/aarch64.sh does all of it. CMAKE_CROSSCOMPILING_EMULATOR makes
# ctest run each test through qemu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(SOCKSERV_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${SOCKSERV_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${SOCKSERV_CROSS_TRIPLE}-gcc)

# Headers and libraries of the target come from the cross sysroot and the
# multiarch directories; programs (cmake, pkg-config) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${SOCKSERV_CROSS_TRIPLE})
set(CMAKE_LIBRARY_ARCHITECTURE ${SOCKSERV_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must read the arm64 .pc files (cmocka.pc), never the host's.
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${SOCKSERV_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest runs the test binaries through user-mode emulation, with ONE
# glibc: the dynamic loader and libc.so.6 must come from the same build.
# With libc6:arm64 installed (multiarch; libcmocka-dev:arm64 pulls it in)
# qemu uses /lib/ld-linux-aarch64.so.1 and /lib/aarch64-linux-gnu as they
# are. Do not add -L /usr/aarch64-linux-gnu then: the loader would come
# from libc6-arm64-cross and libc.so.6 from libc6:arm64, two different
# builds, and e.g. every fork()ed child spins forever in glibc's stack
# list walk. Without multiarch, -L takes both from the cross sysroot.
find_program(SOCKSERV_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(SOCKSERV_QEMU_AARCH64)
  if(EXISTS /lib/${SOCKSERV_CROSS_TRIPLE}/libc.so.6)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${SOCKSERV_QEMU_AARCH64})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR
        ${SOCKSERV_QEMU_AARCH64} -L /usr/${SOCKSERV_CROSS_TRIPLE})
  endif()
endif()
