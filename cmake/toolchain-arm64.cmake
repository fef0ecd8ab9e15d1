# Cross-building Qiao for arm64 (Kunpeng, Phytium) on an amd64 Debian 12 host:
#
#   scripts/cross-sysroot            # the arm64 sysroot (default /var/cache/qiao/sysroot-arm64)
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
#
# Compiler: Debian's aarch64-linux-gnu-g++ (crossbuild-essential-arm64). Libraries and headers
# come only from the sysroot (QIAO_ARM64_SYSROOT, a cache variable; else the environment
# variable of that name; else the default above), never from the host. Tests run through
# CMAKE_CROSSCOMPILING_EMULATOR, qemu-aarch64-static with the sysroot as its -L prefix, so
# `ctest` runs the arm64 binaries under qemu-user.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

if(NOT QIAO_ARM64_SYSROOT)
  if(DEFINED ENV{QIAO_ARM64_SYSROOT} AND NOT "$ENV{QIAO_ARM64_SYSROOT}" STREQUAL "")
    set(QIAO_ARM64_SYSROOT "$ENV{QIAO_ARM64_SYSROOT}")
  else()
    set(QIAO_ARM64_SYSROOT /var/cache/qiao/sysroot-arm64)
  endif()
endif()
set(QIAO_ARM64_SYSROOT "${QIAO_ARM64_SYSROOT}" CACHE PATH "The arm64 sysroot (scripts/cross-sysroot)")
# try_compile projects read the toolchain file again: hand them the same sysroot.
set(ENV{QIAO_ARM64_SYSROOT} "${QIAO_ARM64_SYSROOT}")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES QIAO_ARM64_SYSROOT)

if(NOT EXISTS "${QIAO_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
  message(FATAL_ERROR "No arm64 sysroot at ${QIAO_ARM64_SYSROOT}: run scripts/cross-sysroot "
                      "(or set QIAO_ARM64_SYSROOT)")
endif()

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_SYSROOT "${QIAO_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${QIAO_ARM64_SYSROOT}")
# Programs (ccache, qemu, pkg-config) from the host; everything linked or included from the
# sysroot only.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The sysroot is not merged-/usr and its libraries need one another (librbd -> libceph-common,
# libvirt -> libgnutls, ...): let the linker find those indirect dependencies.
set(_qiao_rpath_link
    "-Wl,-rpath-link,${QIAO_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${QIAO_ARM64_SYSROOT}/lib/aarch64-linux-gnu")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_qiao_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_qiao_rpath_link}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "${_qiao_rpath_link}")

# pkg-config (libvirt, libvirt-qemu) reads the sysroot's .pc files and prefixes their paths.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${QIAO_ARM64_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${QIAO_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${QIAO_ARM64_SYSROOT}/usr/share/pkgconfig:${QIAO_ARM64_SYSROOT}/usr/lib/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})

# qemu-user: -L makes the arm64 dynamic loader and libraries come from the sysroot. Absolute
# paths that a test opens are looked up in the sysroot first, then on the host.
find_program(QIAO_QEMU_AARCH64 qemu-aarch64-static)
if(QIAO_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${QIAO_QEMU_AARCH64};-L;${QIAO_ARM64_SYSROOT}")
endif()
