# toolchain-aarch64.cmake: cross-compiles bitnet-c for 64-bit ARM Linux with Debian's
# gcc-aarch64-linux-gnu, against the arm64 -dev packages of the multiarch tree
# (/usr/lib/aarch64-linux-gnu; `make test-arm64` installs them). Test programs run under
# qemu-user (CMAKE_CROSSCOMPILING_EMULATOR), so ctest works unchanged on an x86 host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config finds the arm64 .pc files only (the host's would link x86 libraries).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
# The cross toolchain's loader with the cross toolchain's libc first: the multiarch libc6:arm64
# that the -dev packages bring lies on qemu's fallback path too, and a loader of one build with
# the libc of another hangs in pthread_create.
set(BITNET_QEMU_AARCH64 qemu-aarch64 -L /usr/aarch64-linux-gnu -E
    LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib:/usr/lib/aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR ${BITNET_QEMU_AARCH64})
