# SPDX-License-Identifier: MIT
# Sampling, stop strings and the continuous-batching scheduler.
mesh_add_test(NAME test_sampler SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sampler.c
              LIBS meshengine LABELS unit TIMEOUT 60)
mesh_add_test(NAME test_stop SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_stop.c
              LIBS meshengine LABELS unit TIMEOUT 60)
mesh_add_test(NAME test_scheduler SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_scheduler.c
              LIBS meshengine LABELS unit TIMEOUT 60)
