// SPDX-License-Identifier: MIT
// meshrun entry point: dispatches to one subcommand per file.
#include "meshrun.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
    {"info", meshrun_cmd_info, "print a GGUF file's metadata and tensor table"},
    {"logits", meshrun_cmd_logits, "write f32 logits for given token ids"},
    {"bench", meshrun_cmd_bench, "measure prompt and generation speed"},
    {"quantize", meshrun_cmd_quantize, "convert a GGUF file to another tensor type"},
    {"synth", meshrun_cmd_synth, "write a random-weight model of a real architecture"},
    {"tokenize", meshrun_cmd_tokenize, "text to token ids (or back with --decode)"},
    {"render", meshrun_cmd_render, "render a chat with the model's template"},
    {"generate", meshrun_cmd_generate, "generate text from a prompt"},
    {"chat", meshrun_cmd_chat, "interactive streaming chat"},
};

static void s_usage(FILE *f) {
    fprintf(f, "usage: meshrun <command> [options]\n\n"
               "The meshinfer engine alone on this machine.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    fprintf(f, "\nRun 'meshrun <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        s_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("meshrun 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (!strcmp(argv[1], s_cmds[i].name))
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "meshrun: unknown command '%s'\n\n", argv[1]);
    s_usage(stderr);
    return 2;
}
