# SPDX-License-Identifier: MIT
# Engine JSON and chat-template interpreter unit tests.
mesh_add_test(NAME test_json SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_json.c
  LIBS meshengine LABELS unit TIMEOUT 120)
mesh_add_test(NAME test_template SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_template.c
  LIBS meshengine LABELS unit TIMEOUT 120)
