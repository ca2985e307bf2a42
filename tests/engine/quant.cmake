# SPDX-License-Identifier: MIT
# Tensor types: reference converters, fused CPU dot products, meshrun quantize.
mesh_add_test(NAME test_quant SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_quant.c
              LIBS meshengine LABELS unit TIMEOUT 60)
