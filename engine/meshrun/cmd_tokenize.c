// SPDX-License-Identifier: MIT
// meshrun tokenize: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("tokenize", "being built");
}
