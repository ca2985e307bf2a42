// SPDX-License-Identifier: MIT
// meshrun logits: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_logits(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("logits", "being built");
}
