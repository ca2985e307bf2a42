# SPDX-License-Identifier: MIT
# Prometheus registry (coordinator/metrics.c).
if(TARGET mesh_http)
  mesh_add_test(NAME test_metrics SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c
                LIBS mesh_http LABELS unit TIMEOUT 30)
endif()
