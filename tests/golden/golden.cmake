# SPDX-License-Identifier: MIT
# Golden tests of the model against ../shared/testdata (reference logits) and
# against a naive double-precision reference on random-weight variants.
mesh_add_test(NAME test_golden_logits SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden_logits.c
              LIBS meshengine m LABELS golden TIMEOUT 300)
mesh_add_test(NAME test_golden_variants SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden_variants.c
              LIBS meshengine m LABELS golden TIMEOUT 120)
