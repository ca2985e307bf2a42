// SPDX-License-Identifier: MIT
// meshrun render: prints the prompt a chat becomes under a model's chat
// template (tokenizer.chat_template of the GGUF, or --template-file), with
// the model's BOS/EOS token texts as bos_token/eos_token. The chat is a JSON
// object {messages, tools, add_generation_prompt, enable_thinking, ...};
// other members become template variables too. The prompt is written to
// stdout byte for byte (no newline added).
#include "meshrun.h"
#include "cli.h"

#include "chat_template.h"
#include "gguf.h"
#include "json.h"
#include "mesh_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_FILE ((size_t)64 << 20)

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshrun render --model FILE.gguf --chat-json CHAT.json [--template-file T]\n"
            "       meshrun render --template-file T --chat-json CHAT.json\n\n"
            "Renders a chat with the model's chat template and prints the prompt.\n\n"
            "options:\n"
            "  --model F          GGUF file: its tokenizer.chat_template and BOS/EOS texts\n"
            "  --chat-json J      JSON file ('-' for stdin): {\"messages\": [...], \"tools\": [...],\n"
            "                     \"add_generation_prompt\": true, \"enable_thinking\": false}\n"
            "  --template-file T  use this Jinja template instead of the model's\n"
            "  -h, --help         this help\n");
}

// Reads a whole file (or stdin for "-"); caller frees. NULL with a message on failure.
static char *s_read_file(const char *path, size_t *len) {
    char *b = NULL;
    int rc = meshrun_read_file(path, S_MAX_FILE, &b, len);
    if (rc == MESH_ERANGE)
        fprintf(stderr, "meshrun render: '%s' is larger than %zu bytes\n", path, (size_t)S_MAX_FILE);
    else if (rc)
        fprintf(stderr, "meshrun render: cannot read '%s': %s\n", path,
                rc == MESH_EIO && errno ? strerror(errno) : mesh_strerror(rc));
    return b;
}


int meshrun_cmd_render(int argc, char **argv) {
    const char *model = NULL, *chat_path = NULL, *tmpl_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--model")           ? &model
                           : !strcmp(a, "--chat-json")     ? &chat_path
                           : !strcmp(a, "--template-file") ? &tmpl_path
                                                           : NULL;
        if (!dst) {
            fprintf(stderr, "meshrun render: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "meshrun render: %s needs a value\n", a);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!chat_path) {
        fprintf(stderr, "meshrun render: --chat-json is required (see --help)\n");
        return 2;
    }
    if (!model && !tmpl_path) {
        fprintf(stderr, "meshrun render: give --model or --template-file (see --help)\n");
        return 2;
    }

    int status = 1;
    char err[512];
    mesh_gguf_t *g = NULL;
    char *tmpl_text = NULL, *chat_text = NULL, *out = NULL;
    mesh_json_t *chat = NULL, *extra = NULL;
    mesh_tmpl_t *t = NULL;
    const char *src = NULL;
    mesh_tmpl_chat_t c = {.enable_thinking = -1};

    if (model) {
        if (mesh_gguf_open(model, &g, err, sizeof err)) {
            fprintf(stderr, "meshrun render: %s: %s\n", model, err);
            goto done;
        }
        mesh_tmpl_chat_specials_from_gguf(&c, g);
    }
    if (tmpl_path) {
        size_t n;
        if (!(tmpl_text = s_read_file(tmpl_path, &n)))
            goto done;
        if (strlen(tmpl_text) != n) {
            fprintf(stderr, "meshrun render: '%s' contains a NUL byte\n", tmpl_path);
            goto done;
        }
        src = tmpl_text;
    } else if (mesh_gguf_get_str(g, "tokenizer.chat_template", &src, NULL)) {
        fprintf(stderr, "meshrun render: %s has no tokenizer.chat_template (use --template-file)\n",
                model);
        goto done;
    }
    size_t chat_len;
    if (!(chat_text = s_read_file(chat_path, &chat_len)))
        goto done;
    if (mesh_json_parse(chat_text, chat_len, &chat, err, sizeof err)) {
        fprintf(stderr, "meshrun render: %s: %s\n", chat_path, err);
        goto done;
    }
    if (mesh_json_type(chat) != MESH_JSON_OBJECT) {
        fprintf(stderr, "meshrun render: %s: expected a JSON object with \"messages\"\n", chat_path);
        goto done;
    }
    c.messages = mesh_json_get(chat, "messages");
    if (mesh_json_type(c.messages) != MESH_JSON_ARRAY) {
        fprintf(stderr, "meshrun render: %s: \"messages\" must be an array\n", chat_path);
        goto done;
    }
    c.tools = mesh_json_get(chat, "tools");
    mesh_json_t *agp = mesh_json_get(chat, "add_generation_prompt");
    mesh_json_t *et = mesh_json_get(chat, "enable_thinking");
    if ((agp && mesh_json_type(agp) != MESH_JSON_BOOL) || (et && mesh_json_type(et) != MESH_JSON_BOOL)) {
        fprintf(stderr, "meshrun render: %s: add_generation_prompt and enable_thinking must be "
                        "true or false\n", chat_path);
        goto done;
    }
    c.add_generation_prompt = mesh_json_bool(agp);
    if (et)
        c.enable_thinking = mesh_json_bool(et);
    // Other members (e.g. clear_thinking) are passed through as variables.
    extra = mesh_json_new_object();
    if (!extra)
        goto oom;
    for (size_t i = 0; i < mesh_json_len(chat); i++) {
        size_t kn;
        const char *k = mesh_json_key_at(chat, i, &kn);
        if (!strcmp(k, "messages") || !strcmp(k, "tools") || !strcmp(k, "add_generation_prompt") ||
            !strcmp(k, "enable_thinking"))
            continue;
        mesh_json_t *v = mesh_json_clone(mesh_json_at(chat, i));
        if (!v || mesh_json_set(extra, k, kn, v))
            goto oom;
    }
    c.extra = extra;

    if (!(t = mesh_tmpl_new(src, err, sizeof err))) {
        fprintf(stderr, "meshrun render: %s\n", err);
        goto done;
    }
    size_t out_len;
    if (mesh_tmpl_render_chat(t, &c, &out, &out_len, err, sizeof err)) {
        fprintf(stderr, "meshrun render: %s\n", err);
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        fprintf(stderr, "meshrun render: cannot write to stdout\n");
        goto done;
    }
    status = 0;
    goto done;
oom:
    fprintf(stderr, "meshrun render: out of memory\n");
done:
    free(out);
    mesh_tmpl_destroy(&t);
    mesh_json_destroy(&extra);
    mesh_json_destroy(&chat);
    free(chat_text);
    free(tmpl_text);
    mesh_gguf_close(&g);
    return status;
}
