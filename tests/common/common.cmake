# SPDX-License-Identifier: MIT
# Tests of common/: error table, logging, config reader (libc only), key files
# (need libzmq, so only in the full build).
mesh_add_test(NAME test_err SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_err.c
              LIBS mesh_base LABELS unit TIMEOUT 30)
mesh_add_test(NAME test_log SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_log.c
              LIBS mesh_base LABELS unit TIMEOUT 30)
mesh_add_test(NAME test_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_config.c
              LIBS mesh_base LABELS unit TIMEOUT 30)
if(TARGET mesh_common)
  mesh_add_test(NAME test_keys SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_keys.c
                LIBS mesh_common LABELS unit TIMEOUT 30)
endif()
