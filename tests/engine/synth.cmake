# SPDX-License-Identifier: MIT
# meshrun synth's writer (engine/synth.c).
mesh_add_test(NAME test_synth SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth.c
              LIBS meshengine LABELS unit)
