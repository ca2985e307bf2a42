# SPDX-License-Identifier: MIT
# Tensor-type kernel benchmark: built, not registered as a test (timings are
# not pass/fail). Run: build/bin/bench_quant [--quick]
add_executable(bench_quant ${CMAKE_CURRENT_LIST_DIR}/bench_quant.c)
target_link_libraries(bench_quant PRIVATE meshengine)
