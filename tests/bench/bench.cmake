# SPDX-License-Identifier: MIT
# Benchmarks are not pass/fail tests: `cmake --build <dir> --target bench_cpu`
# runs the CPU speed table (tests/bench/bench_cpu.sh) against the built meshrun.
add_custom_target(bench_cpu
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/bench_cpu.sh $<TARGET_FILE:meshrun> ${MESH_TESTDATA_DIR}
  DEPENDS meshrun USES_TERMINAL
  COMMENT "CPU speed on tiny-glm with ratios to llama.cpp and to 1 thread")
