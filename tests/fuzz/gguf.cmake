# SPDX-License-Identifier: MIT
# fuzz_gguf: the GGUF reader over mutated files. Seeds: the three reference
# files (cut to MAX_LEN by the fuzzer: their headers) and small complete files
# written by gguf_seeds with our writer.
include(${CMAKE_CURRENT_LIST_DIR}/fuzz.cmake)

add_executable(gguf_seeds ${CMAKE_CURRENT_LIST_DIR}/gguf_seeds.c)
target_link_libraries(gguf_seeds PRIVATE meshengine)
set_target_properties(gguf_seeds PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

set(MESH_GGUF_REFS ${MESH_TESTDATA_DIR}/glm-tiny/tiny-glm.bf16.gguf
    ${MESH_TESTDATA_DIR}/glm-tiny/tiny-glm.q8_0.gguf
    ${MESH_TESTDATA_DIR}/glm-tiny/tiny-glm.q4_k_m.gguf)
mesh_add_fuzz(NAME fuzz_gguf
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_gguf.c
          ${CMAKE_SOURCE_DIR}/engine/gguf.c ${CMAKE_SOURCE_DIR}/engine/quant.c
          ${CMAKE_SOURCE_DIR}/engine/quant_ref.c
          ${CMAKE_SOURCE_DIR}/common/mesh_err.c ${CMAKE_SOURCE_DIR}/common/mesh_log.c
  SEEDS ${MESH_GGUF_REFS}
  SEED_GEN gguf_seeds SEED_GEN_ARGS ${MESH_GGUF_REFS}
  MAX_LEN 98304
  SECONDS 20)
