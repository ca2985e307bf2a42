# SPDX-License-Identifier: MIT
# GGUF reader/writer tests (reads ../shared/testdata/glm-tiny in place).
mesh_add_test(NAME test_gguf SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_gguf.c
              LIBS meshengine LABELS unit TIMEOUT 120)
