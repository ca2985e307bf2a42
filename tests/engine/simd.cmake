# SPDX-License-Identifier: MIT
# SIMD variants of the CPU kernels against scalar: natively every level this
# CPU has, and NEON on arm64 through a cross build run under qemu (when
# gcc-aarch64-linux-gnu and qemu-user are installed: deploy/setup-deps.sh).
mesh_add_test(NAME test_simd_levels SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_simd_levels.c
              LIBS meshengine LABELS unit TIMEOUT 120)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  find_program(MESH_AARCH64_CC aarch64-linux-gnu-gcc)
  find_program(MESH_QEMU_AARCH64 qemu-aarch64)
  if(MESH_AARCH64_CC AND MESH_QEMU_AARCH64)
    add_test(NAME test_simd_neon_qemu
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/simd_cross.sh ${CMAKE_SOURCE_DIR}
                     ${CMAKE_BINARY_DIR}/tests/simd_arm64)
    set_tests_properties(test_simd_neon_qemu PROPERTIES LABELS unit TIMEOUT 180
                         ENVIRONMENT "MESH_CROSS_CC=${MESH_AARCH64_CC};MESH_QEMU=${MESH_QEMU_AARCH64}")
  else()
    message(STATUS "arm64 cross tools missing: test_simd_neon_qemu not registered "
                   "(deploy/setup-deps.sh installs gcc-aarch64-linux-gnu qemu-user)")
  endif()
endif()
