# SPDX-License-Identifier: MIT
# Mesh integration and fault tests: real meshcoord/meshnode processes on
# 127.0.0.1 (ephemeral ports, keys in a temporary directory).
if(NOT MESH_ENGINE_ONLY)
  add_library(mesh_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/mesh_harness.c)
  target_link_libraries(mesh_harness PUBLIC PkgConfig::CMOCKA PkgConfig::CJSON)
  target_include_directories(mesh_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})

  # A protocol-speaking stand-in node for coordinator failover tests: it
  # makes deterministic tokens (a hash of the context) and can SIGKILL itself
  # at a chosen token. Test-only; meshnode never fakes generation.
  add_executable(mesh_fake_node ${CMAKE_CURRENT_LIST_DIR}/fake_node.c)
  target_link_libraries(mesh_fake_node PRIVATE mesh_proto mesh_common)
  set_target_properties(mesh_fake_node PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/tests)

  set(MESH_IT_DEPS meshcoord meshnode meshctl mesh_fake_node)
  mesh_add_test(NAME test_mesh_routing SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mesh_routing.c
                LIBS mesh_harness LABELS integration TIMEOUT 120)
  add_dependencies(test_mesh_routing ${MESH_IT_DEPS})
endif()
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_mesh_failover SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mesh_failover.c
                LIBS mesh_harness LABELS fault integration TIMEOUT 120)
  add_dependencies(test_mesh_failover ${MESH_IT_DEPS})
endif()
if(NOT MESH_ENGINE_ONLY)
  mesh_add_test(NAME test_mesh_security SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mesh_security.c
                LIBS mesh_harness mesh_proto mesh_common LABELS fault integration TIMEOUT 120)
  add_dependencies(test_mesh_security ${MESH_IT_DEPS})
endif()
if(NOT MESH_ENGINE_ONLY)
  # Real meshnode processes generating with the engine: greedy equality with
  # mesh_sched alone, kill -9 before the first token and in mid-stream, drain.
  mesh_add_test(NAME test_mesh_real SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mesh_real.c
                LIBS mesh_harness meshengine LABELS fault integration TIMEOUT 180)
  add_dependencies(test_mesh_real ${MESH_IT_DEPS})
endif()
if(NOT MESH_ENGINE_ONLY)
  # The README's first command: deploy/demo.sh's mesh part (no package install,
  # no build: this build's binaries; its files go to ${CMAKE_BINARY_DIR}/demo).
  add_test(NAME test_demo
           COMMAND bash ${CMAKE_SOURCE_DIR}/deploy/demo.sh --no-build --build-dir
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(test_demo PROPERTIES LABELS integration TIMEOUT 180)
endif()
