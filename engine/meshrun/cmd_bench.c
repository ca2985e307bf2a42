// SPDX-License-Identifier: MIT
// meshrun bench: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("bench", "being built");
}
