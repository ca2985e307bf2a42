// SPDX-License-Identifier: MIT
// GLM output conventions (GLM-4.5/4.6/4.7, GLM-4.7-Flash), as the model's
// chat template writes them back into prompts:
//   <think>REASONING</think>CONTENT
//   <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>
// The parser itself is mesh_out_glm (output_parser.h); this header adds the
// one helper tests and the request builder share.
#ifndef MESH_OUTPUT_GLM_H
#define MESH_OUTPUT_GLM_H

#include "output_parser.h"

#include <stddef.h>

// Parses the body of one tool call (the text between <tool_call> and
// </tool_call>) into its name and a new JSON object text of its arguments
// (values that parse as JSON stay typed, others become strings).
// Returns 0, MESH_EFORMAT (not a tool call) or MESH_ENOMEM.
// Caller frees *name and *args_json.
int mesh_out_glm_tool_body(const char *body, size_t len, char **name, char **args_json);

#endif
