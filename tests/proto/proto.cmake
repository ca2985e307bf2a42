# SPDX-License-Identifier: MIT
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_proto SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_proto.c
                LIBS mesh_proto LABELS unit TIMEOUT 60)
endif()
