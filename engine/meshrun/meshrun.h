// SPDX-License-Identifier: MIT
// meshrun: the engine alone on one machine. Each subcommand lives in its own
// cmd_<name>.c and is reached through the table in main.c.
//
// A subcommand gets argv starting at its own name (argv[0] = "info") and
// returns the process exit status: 0 success, 1 runtime failure, 2 usage error.
#ifndef MESHRUN_H
#define MESHRUN_H

int meshrun_cmd_info(int argc, char **argv);
int meshrun_cmd_logits(int argc, char **argv);
int meshrun_cmd_bench(int argc, char **argv);
int meshrun_cmd_quantize(int argc, char **argv);
int meshrun_cmd_synth(int argc, char **argv);
int meshrun_cmd_tokenize(int argc, char **argv);
int meshrun_cmd_render(int argc, char **argv);
int meshrun_cmd_generate(int argc, char **argv);
int meshrun_cmd_chat(int argc, char **argv);

#endif
