# SPDX-License-Identifier: MIT
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_route SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_route.c
                LIBS mesh_coord LABELS unit TIMEOUT 60)
endif()
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_coord_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_coord_core.c
                LIBS mesh_coord mesh_harness LABELS integration TIMEOUT 120)
  add_dependencies(test_coord_core mesh_fake_node)
endif()
