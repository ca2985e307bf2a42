// SPDX-License-Identifier: MIT
// Helpers shared by the tests: where the reference data is, reading files,
// and reading the reference JSON with the engine's own parser.
//
// The reference data (../shared/testdata) is required: these helpers print a
// clear line and return an error when it is missing, so a test fails rather
// than skips.
#ifndef MESH_TEST_H
#define MESH_TEST_H

#include "json.h"

#include <stddef.h>
#include <stdint.h>

// Writes "$MESH_TESTDATA/rel" into out. Returns 0, or -1 after printing why
// (MESH_TESTDATA unset, or the file missing).
int mesh_test_data_path(char *out, size_t cap, const char *rel);

// Reads a whole file into a malloc'd NUL-terminated buffer (caller frees);
// *len (may be NULL) gets its size. NULL when it cannot be read.
char *mesh_test_slurp(const char *path, size_t *len);

// Parses $MESH_TESTDATA/rel. Caller destroys. NULL after printing why.
mesh_json_t *mesh_test_load_json(const char *rel);

// Copies a JSON array of integers into a malloc'd array (caller frees).
// Returns its length, or -1 when v is not an array of integers in int32 range.
long mesh_test_json_ids(const mesh_json_t *v, int32_t **ids);

#endif
