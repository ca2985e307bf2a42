# SPDX-License-Identifier: MIT
# Chat template golden test: the GLM-4.7-Flash template against Jinja2's renders.
mesh_add_test(NAME test_golden_template
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden_template.c
  LIBS meshengine LABELS golden TIMEOUT 60)
# The test also runs `meshrun render` on every case.
add_dependencies(test_golden_template meshrun)
