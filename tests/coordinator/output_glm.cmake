# SPDX-License-Identifier: MIT
# GLM output parser (coordinator/output_glm.c).
if(TARGET mesh_http)
  mesh_add_test(NAME test_output_glm SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_output_glm.c
                LIBS mesh_http LABELS unit TIMEOUT 30)
endif()
