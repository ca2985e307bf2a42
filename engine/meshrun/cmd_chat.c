// SPDX-License-Identifier: MIT
// meshrun chat: placeholder until its issue lands; says so and fails.
#include "meshrun.h"

int meshrun_cmd_chat(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return meshrun_not_yet("chat", "being built");
}
