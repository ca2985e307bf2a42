# SPDX-License-Identifier: MIT
# mesh_add_fuzz: one fuzz target, built and registered as a CTest test (label fuzz).
#
# mesh_add_fuzz(NAME name SOURCES target.c engine sources...
#               SEEDS file-or-dir... [SECONDS 20] [MAX_LEN bytes]
#               [INCLUDES dir...] [SEED_GEN exe-target [SEED_GEN_ARGS arg...]])
#
# The target .c defines LLVMFuzzerTestOneInput. With clang installed it becomes
# a real libFuzzer binary (clang -fsanitize=fuzzer,address,undefined, sources
# compiled directly by clang: the main build may use gcc). Without clang, the
# same sources (also with -DMESH_FUZZ_LIBFUZZER=OFF) are linked with
# fuzz_driver.c (seed replay + deterministic random mutations) by the normal
# compiler, so the fuzz label always runs.
# The test copies the seeds into a fresh corpus under the build tree, runs the
# optional seed generator (SEED_GEN CORPUS_DIR SEED_GEN_ARGS...), then fuzzes for
# SECONDS; any crash, sanitizer report or broken invariant fails the test and
# leaves the input in <build>/fuzz/<name>/artifacts/.
#
# Other fragments may include this file before using the function (it is
# guarded), since fragments are included in file-name order.
include_guard(GLOBAL)

find_program(MESH_CLANG clang)
option(MESH_FUZZ_LIBFUZZER "Build fuzz targets with clang's libFuzzer when clang is found" ON)
set(MESH_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR} CACHE INTERNAL "fuzz harness folder")

function(mesh_add_fuzz)
  cmake_parse_arguments(F "" "NAME;SECONDS;MAX_LEN;SEED_GEN"
                        "SOURCES;SEEDS;INCLUDES;SEED_GEN_ARGS" ${ARGN})
  if(NOT F_NAME OR NOT F_SOURCES OR NOT F_SEEDS)
    message(FATAL_ERROR "mesh_add_fuzz needs NAME, SOURCES and SEEDS")
  endif()
  if(NOT F_SECONDS)
    set(F_SECONDS 20)
  endif()
  if(NOT F_MAX_LEN)
    set(F_MAX_LEN 0)
  endif()
  if(NOT F_INCLUDES)
    set(F_INCLUDES ${CMAKE_SOURCE_DIR}/engine ${CMAKE_SOURCE_DIR}/common
        ${CMAKE_SOURCE_DIR}/kernels/cpu)
  endif()
  set(bin ${CMAKE_BINARY_DIR}/tests/${F_NAME})

  if(MESH_CLANG AND MESH_FUZZ_LIBFUZZER)
    set(incs "")
    foreach(d ${F_INCLUDES})
      list(APPEND incs -I${d})
    endforeach()
    set(hdrs "")
    foreach(d ${F_INCLUDES})
      file(GLOB h CONFIGURE_DEPENDS ${d}/*.h)
      list(APPEND hdrs ${h})
    endforeach()
    # No -Werror here: the gcc build already holds these sources to it, and a
    # clang-only warning must not break the fuzz build.
    add_custom_command(
      OUTPUT ${bin}
      COMMAND ${MESH_CLANG} -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
              -Wall -Wextra ${incs} ${F_SOURCES} -o ${bin} -lm -lpthread
      DEPENDS ${F_SOURCES} ${hdrs}
      COMMENT "Building libFuzzer target ${F_NAME} with clang"
      VERBATIM)
    add_custom_target(${F_NAME} ALL DEPENDS ${bin})
    set(mode libfuzzer)
  else()
    add_executable(${F_NAME} ${F_SOURCES} ${MESH_FUZZ_DIR}/fuzz_driver.c)
    target_include_directories(${F_NAME} PRIVATE ${F_INCLUDES})
    target_link_libraries(${F_NAME} PRIVATE m Threads::Threads)
    set_target_properties(${F_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                          ${CMAKE_BINARY_DIR}/tests)
    set(mode driver)
  endif()

  # Lists travel through -D as '|'-separated strings (';' would split the argument).
  string(REPLACE ";" "|" seeds "${F_SEEDS}")
  string(REPLACE ";" "|" gen_args "${F_SEED_GEN_ARGS}")
  set(gen "")
  if(F_SEED_GEN)
    set(gen "$<TARGET_FILE:${F_SEED_GEN}>")
  endif()
  add_test(NAME ${F_NAME}
           COMMAND ${CMAKE_COMMAND} -DNAME=${F_NAME} -DBIN=${bin} -DMODE=${mode}
                   -DWORK=${CMAKE_BINARY_DIR}/fuzz/${F_NAME} "-DSEEDS=${seeds}"
                   -DSECONDS=${F_SECONDS} -DMAX_LEN=${F_MAX_LEN} "-DSEED_GEN=${gen}"
                   "-DSEED_GEN_ARGS=${gen_args}" -P ${MESH_FUZZ_DIR}/scripts/run_fuzz.cmake)
  math(EXPR timeout "${F_SECONDS} + 120")
  set_tests_properties(${F_NAME} PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()
