# SPDX-License-Identifier: MIT
# Every backend slot on every built backend against the CPU backend (random
# inputs at GLM-4.7-Flash's shapes when a GPU backend is built; small shapes
# CPU against CPU otherwise).
mesh_add_test(NAME test_backend_ops SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_backend_ops.c
              LIBS meshengine m LABELS unit TIMEOUT 300)
