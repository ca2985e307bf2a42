# SPDX-License-Identifier: MIT
# Engine plumbing below the model: KV cache paging and the CPU thread pool.
# (The model itself is checked by tests/golden.)
mesh_add_test(NAME test_model_kv SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_model_kv.c
              LIBS meshengine LABELS unit TIMEOUT 60)
target_include_directories(test_model_kv PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cpu)
