# SPDX-License-Identifier: MIT
# Golden tokenizer test against glm-tiny/text.golden.json (reference ids from
# Hugging Face tokenizers) with the tokenizer read from tiny-glm.bf16.gguf.
mesh_add_test(NAME test_golden_tokenizer
              SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden_tokenizer.c
              LIBS meshengine LABELS golden TIMEOUT 120)
