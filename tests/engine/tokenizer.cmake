# SPDX-License-Identifier: MIT
# Tokenizer unit tests: pre-tokenizer pieces, BPE, special tokens, decoding,
# the streaming decoder, and a bounded random-input robustness run.
mesh_add_test(NAME test_tokenizer
              SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.c
              LIBS meshengine LABELS unit TIMEOUT 60)
target_include_directories(test_tokenizer PRIVATE ${CMAKE_CURRENT_LIST_DIR})
mesh_add_test(NAME test_tokenizer_robust
              SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer_robust.c
              LIBS meshengine LABELS unit TIMEOUT 120)
target_include_directories(test_tokenizer_robust PRIVATE ${CMAKE_CURRENT_LIST_DIR})
mesh_add_test(NAME test_tokenizer_cli
              SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer_cli.c
              LIBS meshengine LABELS integration TIMEOUT 60)
add_dependencies(test_tokenizer_cli meshrun)
