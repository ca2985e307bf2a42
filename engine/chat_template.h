// SPDX-License-Identifier: MIT
// Jinja2 chat-template interpreter for the subset that real chat templates use
// (GLM-4.x, Llama 3, Qwen 2.5/3, DeepSeek): text, {{ }}, if/elif/else, for
// (with loop.*, else, inline filter), set (incl. namespace attributes and
// block set), macros, break/continue, comments, whitespace control, and the
// usual expressions, filters, tests and str/dict methods. Anything outside
// that subset is a compile or render error that names the construct and its
// line: a template is never rendered silently wrong.
//
// Semantics follow what Hugging Face transformers does when it renders a chat
// template: Jinja2 with trim_blocks=True and lstrip_blocks=True (checked
// against the golden renders), the loopcontrols extension, no autoescape, a
// `tojson` filter with ensure_ascii=False by default and json.dumps's
// separators, `raise_exception(msg)` and `strftime_now(fmt)` globals.
// Undefined values behave like Jinja's default Undefined (falsy, render as
// "", `is defined` false), except that an attribute or item of an undefined
// value is undefined too instead of an error. Scoping follows Jinja: a `set`
// inside a loop lasts one iteration, macros see their defining scope, and a
// name a scope assigns directly is undefined in nested loops/macros until the
// assignment runs. One trailing newline of the source is dropped
// (keep_trailing_newline=False).
//
// Not supported (an error naming the construct, never a silent guess):
// include/import/extends/block/call/filter/raw/with tags, recursive loops,
// loop.cycle, Python's "%" string formatting, tuple assignment, list
// mutation (append, ...). Case mapping (upper, lower, title, capitalize) is
// ASCII-only; other letters pass through unchanged.
//
// Thread safety: a compiled template is immutable; several threads may render
// it at once. Rendering allocates from a per-call arena freed at the end.
#ifndef MESH_CHAT_TEMPLATE_H
#define MESH_CHAT_TEMPLATE_H

#include "gguf.h"
#include "json.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct mesh_tmpl mesh_tmpl_t;

typedef struct {
    bool trim_blocks;   // drop the first newline after a block tag
    bool lstrip_blocks; // drop spaces/tabs from line start up to a block tag
} mesh_tmpl_opts_t;

// Compiles a NUL-terminated template with the Hugging Face options
// (trim_blocks and lstrip_blocks on). Returns NULL on error with a one-line
// message in err ("template line 12: unknown filter 'foo'"). Caller destroys.
mesh_tmpl_t *mesh_tmpl_new(const char *source, char *err, size_t err_len);

// Same with explicit options (opts NULL = plain Jinja defaults: both off) and
// a length (the source may hold no NUL). Caller destroys.
mesh_tmpl_t *mesh_tmpl_new_opts(const char *source, size_t len, const mesh_tmpl_opts_t *opts,
                                char *err, size_t err_len);

// Frees a template and nulls the caller's pointer. NULL-safe.
void mesh_tmpl_destroy(mesh_tmpl_t **t);

// Renders with the members of a JSON object as the template's variables
// (vars may be NULL). On success *out is a malloc'd NUL-terminated string
// (caller frees) with its length in *out_len (may be NULL) and 0 is returned.
// On failure *out is NULL, err gets one line, and the return is MESH_EFORMAT
// (type errors, bad calls, raise_exception), MESH_EUNSUPPORTED, MESH_ERANGE
// (recursion, memory or output limits) or MESH_ENOMEM.
int mesh_tmpl_render(const mesh_tmpl_t *t, const mesh_json_t *vars, char **out,
                     size_t *out_len, char *err, size_t err_len);

// A chat to render. Borrowed pointers: nothing here is freed by the renderer.
typedef struct {
    const mesh_json_t *messages; // array of {role, content, ...} (required)
    const mesh_json_t *tools;    // array or NULL (then `tools` is none)
    bool add_generation_prompt;
    int enable_thinking;         // -1: undefined (the template's default), 0 or 1
    const char *bos_token;       // NULL: undefined
    const char *eos_token;       // NULL: undefined
    const mesh_json_t *extra;    // object of more variables, or NULL; its members
                                 // override the ones above
    bool keep_string_arguments;  // false: a tool call's `arguments` given as a JSON
                                 // string holding an object is passed as that object
                                 // (HF templates expect a mapping); true: as given
} mesh_tmpl_chat_t;

// Sets chat->bos_token and ->eos_token to the texts of the model's bos and
// eos tokens (tokenizer.ggml.bos/eos_token_id in g); NULL where absent. The
// strings belong to g.
void mesh_tmpl_chat_specials_from_gguf(mesh_tmpl_chat_t *chat, const mesh_gguf_t *g);

// Renders a chat (see mesh_tmpl_render for the result and errors).
int mesh_tmpl_render_chat(const mesh_tmpl_t *t, const mesh_tmpl_chat_t *chat, char **out,
                          size_t *out_len, char *err, size_t err_len);

#endif
