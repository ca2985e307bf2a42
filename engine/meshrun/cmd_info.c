// SPDX-License-Identifier: MIT
// meshrun info: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("info", "being built");
}
