# SPDX-License-Identifier: MIT
# Routing overhead benchmark (not a pass/fail test: timings vary by machine).
# Run: build/tests/bench_routing [N]
if(NOT MESH_ENGINE_ONLY)
  add_executable(bench_routing ${CMAKE_CURRENT_LIST_DIR}/routing_bench.c)
  target_link_libraries(bench_routing PRIVATE mesh_coord)
  set_target_properties(bench_routing PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/tests)
endif()
