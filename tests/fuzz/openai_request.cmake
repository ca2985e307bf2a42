# SPDX-License-Identifier: MIT
# fuzz_openai_request: the OpenAI request parser (JSON body -> the core's
# request), the GLM output parser and the logprob entry builder (token pieces
# from a node) over arbitrary bytes. Seeds: the JSON bodies in openai_seeds/.
include(${CMAKE_CURRENT_LIST_DIR}/fuzz.cmake)
if(TARGET mesh_http)
  mesh_add_fuzz(NAME fuzz_openai_request
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_openai_request.c
            ${CMAKE_SOURCE_DIR}/coordinator/openai_request.c
            ${CMAKE_SOURCE_DIR}/coordinator/openai_response.c
            ${CMAKE_SOURCE_DIR}/coordinator/output_glm.c
            ${CMAKE_SOURCE_DIR}/common/mesh_err.c
    INCLUDES ${CMAKE_SOURCE_DIR}/coordinator ${CMAKE_SOURCE_DIR}/common
    LIBS -lcjson -lsodium
    SEEDS ${CMAKE_CURRENT_LIST_DIR}/openai_seeds
    MAX_LEN 4096
    SECONDS 20)
endif()
