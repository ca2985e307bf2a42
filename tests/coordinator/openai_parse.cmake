# SPDX-License-Identifier: MIT
# OpenAI request parsing and error shape (coordinator/openai_*.c).
if(TARGET mesh_http)
  mesh_add_test(NAME test_openai_parse SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_openai_parse.c
                LIBS mesh_http LABELS unit TIMEOUT 30)
endif()
