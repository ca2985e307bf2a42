# SPDX-License-Identifier: MIT
# Tensor types: reference converters, fused CPU dot products, meshrun quantize.
mesh_add_test(NAME test_quant SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_quant.c
              LIBS meshengine LABELS unit TIMEOUT 60)
mesh_add_test(NAME test_quant_dot SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_quant_dot.c
              LIBS meshengine LABELS unit TIMEOUT 60)
mesh_add_test(NAME test_quantize SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_quantize.c
              LIBS meshengine LABELS unit TIMEOUT 120)
add_dependencies(test_quantize meshrun) # the CLI checks run the real binary
