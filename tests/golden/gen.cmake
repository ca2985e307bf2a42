# SPDX-License-Identifier: MIT
# Golden greedy generation through the scheduler on the reference tiny GLM.
mesh_add_test(NAME test_golden_greedy SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden_greedy.c
              LIBS meshengine LABELS golden TIMEOUT 300)
