// SPDX-License-Identifier: MIT
// Chat templates: public API (compile, render, render a chat) and the arena.
//
// Compilation copies the source into the template's arena (tokens point into
// it) and parses it once. A render builds its variables from JSON into a
// fresh arena, walks the tree, and frees the arena: one malloc'd string
// comes out. See chat_template.h for the semantics.
#include "chat_template_impl.h"

#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK (64 * 1024)
#define S_RENDER_MEM_LIMIT ((size_t)512 << 20) // arena bytes one render may use

struct mesh_tmpl__chunk {
    mesh_tmpl__chunk_t *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

void *mesh_tmpl__alloc(mesh_tmpl__arena_t *a, size_t n) {
    if (a->oom)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (!n)
        n = 16;
    mesh_tmpl__chunk_t *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > S_CHUNK / 4 ? n : S_CHUNK;
        if (a->limit && a->used + cap > a->limit) {
            a->oom = true;
            return NULL;
        }
        mesh_tmpl__chunk_t *nc = malloc(sizeof *nc + cap);
        if (!nc) {
            a->oom = true;
            return NULL;
        }
        nc->cap = cap;
        nc->used = 0;
        a->used += cap + sizeof *nc;
        if (c && n > S_CHUNK / 4) { // big block: keep filling the current chunk
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *mesh_tmpl__strdup(mesh_tmpl__arena_t *a, const char *s, size_t n) {
    char *c = mesh_tmpl__alloc(a, n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, s, n);
    c[n] = 0;
    return c;
}

void mesh_tmpl__arena_free(mesh_tmpl__arena_t *a) {
    mesh_tmpl__chunk_t *c = a->head;
    while (c) {
        mesh_tmpl__chunk_t *n = c->next;
        free(c);
        c = n;
    }
    memset(a, 0, sizeof *a);
}

// chat_template_eval.c
int mesh_tmpl__run(mesh_tmpl__rs_t *rs, const mesh_tmpl_t *t, mesh_tmpl__buf_t *out);
int mesh_tmpl__set_global(mesh_tmpl__rs_t *rs, const char *name, mesh_tmpl__val_t v);

mesh_tmpl_t *mesh_tmpl_new_opts(const char *source, size_t len, const mesh_tmpl_opts_t *opts,
                                char *err, size_t err_len) {
    if (err && err_len)
        err[0] = 0;
    if (!source) {
        if (err && err_len)
            snprintf(err, err_len, "template: no source");
        return NULL;
    }
    mesh_tmpl_t *t = calloc(1, sizeof *t);
    if (!t) {
        if (err && err_len)
            snprintf(err, err_len, "template: out of memory");
        return NULL;
    }
    char *src = mesh_tmpl__strdup(&t->arena, source, len);
    int rc = src ? mesh_tmpl__parse(t, src, len, opts, err, err_len) : MESH_ENOMEM;
    if (rc) {
        if (rc == MESH_ENOMEM && err && err_len)
            snprintf(err, err_len, "template: out of memory");
        mesh_tmpl_destroy(&t);
        return NULL;
    }
    return t;
}

mesh_tmpl_t *mesh_tmpl_new(const char *source, char *err, size_t err_len) {
    mesh_tmpl_opts_t o = {.trim_blocks = true, .lstrip_blocks = true};
    return mesh_tmpl_new_opts(source, source ? strlen(source) : 0, &o, err, err_len);
}

void mesh_tmpl_destroy(mesh_tmpl_t **t) {
    if (!t || !*t)
        return;
    mesh_tmpl__arena_free(&(*t)->arena);
    free(*t);
    *t = NULL;
}

static int s_builtins(mesh_tmpl__rs_t *rs) {
    static const struct {
        const char *name;
        int id;
    } fns[] = {{"namespace", TF_NAMESPACE}, {"raise_exception", TF_RAISE}, {"range", TF_RANGE},
               {"dict", TF_DICT},           {"strftime_now", TF_STRFTIME}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        mesh_tmpl__val_t v = {.kind = TV_FUNC, .u.i = fns[i].id};
        if (mesh_tmpl__set_global(rs, fns[i].name, v))
            return MESH_ENOMEM;
    }
    return 0;
}

static int s_set_json_vars(mesh_tmpl__rs_t *rs, const mesh_json_t *vars) {
    for (size_t i = 0; i < mesh_json_len(vars); i++) {
        size_t kn;
        const char *k = mesh_json_key_at(vars, i, &kn);
        mesh_tmpl__val_t v = mesh_tmpl__from_json(rs, mesh_json_at(vars, i));
        if (rs->arena.oom || mesh_tmpl__set_global(rs, k, v))
            return MESH_ENOMEM;
    }
    return 0;
}

static int s_finish(mesh_tmpl__rs_t *rs, int rc, mesh_tmpl__buf_t *b, char **out, size_t *out_len) {
    if (!rc && rs->arena.oom)
        rc = rs->arena.limit && rs->arena.used + S_CHUNK > rs->arena.limit ? MESH_ERANGE : MESH_ENOMEM;
    if (rc) {
        if (!rs->rc && rs->err && rs->err_len)
            snprintf(rs->err, rs->err_len, "template: %s",
                     rc == MESH_ERANGE ? "render used more memory than its limit" : mesh_strerror(rc));
        free(b->b);
        mesh_tmpl__arena_free(&rs->arena);
        return rc;
    }
    if (!b->b) {
        b->b = malloc(1);
        if (!b->b) {
            mesh_tmpl__arena_free(&rs->arena);
            return MESH_ENOMEM;
        }
        b->b[0] = 0;
    }
    *out = b->b;
    if (out_len)
        *out_len = b->n;
    mesh_tmpl__arena_free(&rs->arena);
    return 0;
}

typedef int (*s_setup_fn)(mesh_tmpl__rs_t *rs, const void *ctx);

static int s_render(const mesh_tmpl_t *t, s_setup_fn setup, const void *ctx, char **out,
                    size_t *out_len, char *err, size_t err_len) {
    if (err && err_len)
        err[0] = 0;
    if (!out)
        return MESH_EINVAL;
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!t) {
        if (err && err_len)
            snprintf(err, err_len, "template: no template");
        return MESH_EINVAL;
    }
    mesh_tmpl__rs_t rs = {.err = err, .err_len = err_len};
    rs.arena.limit = S_RENDER_MEM_LIMIT;
    mesh_tmpl__buf_t b = {0};
    int rc = s_builtins(&rs);
    if (!rc)
        rc = setup(&rs, ctx);
    if (!rc)
        rc = mesh_tmpl__run(&rs, t, &b);
    if (!rc && rs.arena.oom)
        rc = MESH_ENOMEM;
    return s_finish(&rs, rc, &b, out, out_len);
}

static int s_setup_vars(mesh_tmpl__rs_t *rs, const void *ctx) {
    const mesh_json_t *vars = ctx;
    if (vars && mesh_json_type(vars) != MESH_JSON_OBJECT) {
        if (rs->err && rs->err_len)
            snprintf(rs->err, rs->err_len, "template: variables must be a JSON object");
        rs->rc = MESH_EINVAL;
        return MESH_EINVAL;
    }
    return s_set_json_vars(rs, vars);
}

int mesh_tmpl_render(const mesh_tmpl_t *t, const mesh_json_t *vars, char **out, size_t *out_len,
                     char *err, size_t err_len) {
    return s_render(t, s_setup_vars, vars, out, out_len, err, err_len);
}

// A message's tool calls with string `arguments` that parse as JSON objects
// get those objects instead (HF templates iterate arguments.items()).
static mesh_tmpl__val_t s_fix_arguments(mesh_tmpl__rs_t *rs, mesh_tmpl__val_t msgs) {
    if (msgs.kind != TV_LIST)
        return msgs;
    mesh_tmpl__str_t k_tc = {"tool_calls", 10}, k_fn = {"function", 8}, k_args = {"arguments", 9};
    for (size_t i = 0; i < msgs.u.l->n; i++) {
        mesh_tmpl__val_t tcs = mesh_tmpl__getattr(msgs.u.l->v[i], k_tc);
        if (tcs.kind != TV_LIST)
            continue;
        for (size_t j = 0; j < tcs.u.l->n; j++) {
            mesh_tmpl__val_t tc = tcs.u.l->v[j];
            mesh_tmpl__val_t holder = mesh_tmpl__getattr(tc, k_fn);
            if (holder.kind != TV_DICT)
                holder = tc;
            if (holder.kind != TV_DICT)
                continue;
            mesh_tmpl__val_t a = mesh_tmpl__getattr(holder, k_args);
            if (a.kind != TV_STR)
                continue;
            mesh_json_t *j2 = NULL;
            if (mesh_json_parse(a.u.s.p, a.u.s.n, &j2, NULL, 0) == 0 &&
                mesh_json_type(j2) == MESH_JSON_OBJECT)
                mesh_tmpl__dict_set(rs, holder.u.d, k_args, mesh_tmpl__from_json(rs, j2));
            mesh_json_destroy(&j2);
        }
    }
    return msgs;
}

static int s_setup_chat(mesh_tmpl__rs_t *rs, const void *ctx) {
    const mesh_tmpl_chat_t *c = ctx;
    if (mesh_json_type(c->messages) != MESH_JSON_ARRAY) {
        if (rs->err && rs->err_len)
            snprintf(rs->err, rs->err_len, "template: messages must be a JSON array");
        rs->rc = MESH_EINVAL;
        return MESH_EINVAL;
    }
    mesh_tmpl__val_t msgs = mesh_tmpl__from_json(rs, c->messages);
    if (!c->keep_string_arguments)
        msgs = s_fix_arguments(rs, msgs);
    mesh_tmpl__val_t tools = {.kind = TV_NONE};
    if (c->tools && mesh_json_type(c->tools) != MESH_JSON_NULL)
        tools = mesh_tmpl__from_json(rs, c->tools);
    mesh_tmpl__val_t agp = {.kind = TV_BOOL, .u.b = c->add_generation_prompt};
    int rc = mesh_tmpl__set_global(rs, "messages", msgs);
    rc = rc ? rc : mesh_tmpl__set_global(rs, "tools", tools);
    rc = rc ? rc : mesh_tmpl__set_global(rs, "add_generation_prompt", agp);
    if (!rc && c->enable_thinking >= 0) {
        mesh_tmpl__val_t et = {.kind = TV_BOOL, .u.b = c->enable_thinking != 0};
        rc = mesh_tmpl__set_global(rs, "enable_thinking", et);
    }
    if (!rc && c->bos_token)
        rc = mesh_tmpl__set_global(rs, "bos_token", mesh_tmpl__mkstr(rs, c->bos_token, strlen(c->bos_token)));
    if (!rc && c->eos_token)
        rc = mesh_tmpl__set_global(rs, "eos_token", mesh_tmpl__mkstr(rs, c->eos_token, strlen(c->eos_token)));
    if (!rc && c->extra) {
        if (mesh_json_type(c->extra) != MESH_JSON_OBJECT) {
            if (rs->err && rs->err_len)
                snprintf(rs->err, rs->err_len, "template: extra variables must be a JSON object");
            rs->rc = MESH_EINVAL;
            return MESH_EINVAL;
        }
        rc = s_set_json_vars(rs, c->extra);
    }
    if (!rc && rs->arena.oom)
        rc = MESH_ENOMEM;
    return rc;
}

int mesh_tmpl_render_chat(const mesh_tmpl_t *t, const mesh_tmpl_chat_t *chat, char **out,
                          size_t *out_len, char *err, size_t err_len) {
    if (!chat) {
        if (out)
            *out = NULL;
        if (err && err_len)
            snprintf(err, err_len, "template: no chat");
        return MESH_EINVAL;
    }
    return s_render(t, s_setup_chat, chat, out, out_len, err, err_len);
}

// Text of the token whose id is stored under id_key, or NULL.
static const char *s_gguf_token_text(const mesh_gguf_t *g, const char *id_key) {
    uint32_t id;
    const char *text = NULL;
    if (mesh_gguf_get_u32(g, id_key, &id) ||
        mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", id, &text, NULL))
        return NULL;
    return text;
}

void mesh_tmpl_chat_specials_from_gguf(mesh_tmpl_chat_t *chat, const mesh_gguf_t *g) {
    chat->bos_token = s_gguf_token_text(g, "tokenizer.ggml.bos_token_id");
    chat->eos_token = s_gguf_token_text(g, "tokenizer.ggml.eos_token_id");
}
