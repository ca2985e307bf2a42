// SPDX-License-Identifier: MIT
// meshrun quantize: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_quantize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("quantize", "being built");
}
