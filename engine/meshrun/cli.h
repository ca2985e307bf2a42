// SPDX-License-Identifier: MIT
// Small helpers every meshrun subcommand needs: reading a file or stdin,
// parsing token id lists and bounded numbers, a monotonic clock.
#ifndef MESHRUN_CLI_H
#define MESHRUN_CLI_H

#include "sampler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Reads all of path ("-" = stdin) into a malloc'd NUL-terminated buffer that
// the caller frees. At most max_bytes (0: no limit). Returns 0, MESH_EIO
// (cannot open or read: errno says why), MESH_ERANGE (larger than max_bytes)
// or MESH_ENOMEM.
int meshrun_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

// Parses token ids separated by whitespace or commas (a surrounding [ ] is
// allowed, so JSON arrays work). On success *ids (caller frees; NULL when
// there are none) and *n are set and 0 returned. A word that is not an id
// in [0, INT32_MAX] gives MESH_EINVAL with that word (cut to 20 bytes) in
// bad; MESH_ENOMEM when memory runs out.
int meshrun_parse_ids(const char *s, size_t len, int32_t **ids, size_t *n, char *bad,
                      size_t bad_len);

// Strict numbers: the whole string, finite, within [lo, hi]. False otherwise.
bool meshrun_parse_double(const char *s, double lo, double hi, double *out);
bool meshrun_parse_long(const char *s, long lo, long hi, long *out);

// Seconds on the monotonic clock.
double meshrun_now(void);

// A seed from the wall clock, for runs that were given none.
uint64_t meshrun_clock_seed(void);

// ---- sampling options shared by generate and chat ----
// --greedy, --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R,
// --seed S. Defaults as llama.cpp's command line: temp 0.8, top-k 40,
// top-p 0.95, min-p 0.05, no penalty, seed from the clock.
#define MESHRUN_SAMPLING_USAGE                                                             \
    "  --greedy           always take the most likely token (= --temp 0)\n"                \
    "  --temp T           temperature (default 0.8; 0 = greedy)\n"                         \
    "  --top-k K          keep the K most likely tokens (default 40; 0 = off)\n"           \
    "  --top-p P          nucleus sampling (default 0.95; 1 = off)\n"                      \
    "  --min-p P          drop tokens below P x the best one (default 0.05; 0 = off)\n"    \
    "  --repeat-penalty R repetition penalty over the last 64 tokens (default 1 = off)\n" \
    "  --seed S           RNG seed (default: from the clock)\n"

typedef struct {
    mesh_sampler_params_t params;
    bool have_seed; // --seed was given (else call meshrun_sampling_finish)
} meshrun_sampling_t;

void meshrun_sampling_init(meshrun_sampling_t *s);

// If argv[*i] is a sampling option, takes it and its value (advancing *i)
// and returns 1; returns 0 when it is not one; returns -1 after printing
// "meshrun CMD: ..." to stderr when its value is missing or bad.
int meshrun_sampling_opt(meshrun_sampling_t *s, const char *cmd, int argc, char **argv,
                         int *i);

// Seeds from the clock when no --seed was given.
void meshrun_sampling_finish(meshrun_sampling_t *s);

#endif
