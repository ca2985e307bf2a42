# SPDX-License-Identifier: MIT
# Batched-generation benchmark (not a CTest test: timings are not pass/fail).
# Run: tests/bench/bench_batch.sh BUILD_DIR (makes the small synthetic model).
add_executable(bench_batch ${CMAKE_CURRENT_LIST_DIR}/bench_batch.c)
target_link_libraries(bench_batch PRIVATE meshengine)
set_target_properties(bench_batch PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
