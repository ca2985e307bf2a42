// SPDX-License-Identifier: MIT
// meshrun render: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_render(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("render", "being built");
}
