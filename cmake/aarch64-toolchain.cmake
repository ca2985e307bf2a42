# SPDX-License-Identifier: MIT
# Cross-compiling for arm64 Linux with Debian's gcc-aarch64-linux-gnu (the
# NEON kernels only build there). Use:
#   cmake -S . -B build-arm64 -DMESH_ENGINE_ONLY=ON \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-toolchain.cmake
# Binaries run on x86-64 hosts under `qemu-aarch64 -L /usr/aarch64-linux-gnu`
# (CMAKE_CROSSCOMPILING_EMULATOR, so ctest runs them that way too).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MESH_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "cross tool prefix")
set(CMAKE_C_COMPILER ${MESH_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${MESH_CROSS_PREFIX}g++)
set(MESH_CROSS_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "target libraries for qemu -L")
set(CMAKE_FIND_ROOT_PATH ${MESH_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
find_program(MESH_QEMU_AARCH64 qemu-aarch64)
if(MESH_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MESH_QEMU_AARCH64} -L ${MESH_CROSS_SYSROOT})
endif()
