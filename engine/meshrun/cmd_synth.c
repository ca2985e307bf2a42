// SPDX-License-Identifier: MIT
// meshrun synth: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("synth", "being built");
}
