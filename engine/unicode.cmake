# SPDX-License-Identifier: MIT
# Unicode category tables for the tokenizer, generated at build time from
# Python's unicodedata into the build tree (never into git).
set(MESH_UNICODE_GEN_DIR ${CMAKE_CURRENT_BINARY_DIR}/generated)
add_custom_command(
  OUTPUT ${MESH_UNICODE_GEN_DIR}/mesh_unicode_tables.c
         ${MESH_UNICODE_GEN_DIR}/mesh_unicode_tables.h
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/tools/gen_unicode_tables.py
          ${MESH_UNICODE_GEN_DIR}
  DEPENDS ${CMAKE_CURRENT_LIST_DIR}/tools/gen_unicode_tables.py
  COMMENT "Generating Unicode category tables"
  VERBATIM)
target_sources(meshengine PRIVATE ${MESH_UNICODE_GEN_DIR}/mesh_unicode_tables.c
                                  ${MESH_UNICODE_GEN_DIR}/mesh_unicode_tables.h)
target_include_directories(meshengine PRIVATE ${MESH_UNICODE_GEN_DIR})
