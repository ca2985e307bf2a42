// SPDX-License-Identifier: MIT
// meshrun generate: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("generate", "being built");
}
