# SPDX-License-Identifier: MIT
# The OpenAI HTTP endpoint against a real mesh on loopback: a scripted node
# (http_fake_node, the real wire protocol) and a real meshcoord. curl +
# python3 checks, the official openai npm package under node, a 64-client
# load with memory checks. Needs curl, python3, node/npm, promtool.
if(TARGET mesh_http)
  add_executable(http_fake_node ${CMAKE_CURRENT_LIST_DIR}/http_fake_node.c)
  target_link_libraries(http_fake_node PRIVATE mesh_proto mesh_common PkgConfig::CJSON)
  set_target_properties(http_fake_node PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/tests)
  function(mesh_http_test name script timeout)
    add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/${script} ${ARGN})
    set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT ${timeout}
      ENVIRONMENT "MESH_TESTDATA=${MESH_TESTDATA_DIR};MESH_BIN_DIR=${CMAKE_BINARY_DIR}/bin;MESH_SOURCE_DIR=${CMAKE_SOURCE_DIR};FAKE_NODE=$<TARGET_FILE:http_fake_node>;MESH_NPM_PREFIX=${CMAKE_BINARY_DIR}/npm;MESH_SANITIZE=${MESH_SANITIZE}")
  endfunction()
  mesh_http_test(test_http_curl http_curl.sh 120)
  mesh_http_test(test_http_openai_sdk http_sdk.sh 180)
  mesh_http_test(test_http_load http_load.sh 180)
  mesh_http_test(test_http_real_node http_real_node.sh 180)
endif()
