# SPDX-License-Identifier: MIT
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_route SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_route.c
                LIBS mesh_coord LABELS unit TIMEOUT 60)
endif()
