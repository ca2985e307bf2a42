// SPDX-License-Identifier: MIT
// OpenAI response shapes (see openai_response.h).
#include "openai_response.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void s_hex_id(char *out, size_t cap, const char *prefix) {
    unsigned char raw[12];
    char hex[sizeof raw * 2 + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(out, cap, "%s%s", prefix, hex);
}

void mesh_openai_meta_init(mesh_openai_meta_t *m, mesh_openai_kind_t kind, const char *model) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    s_hex_id(m->id, sizeof m->id, kind == MESH_OPENAI_CHAT ? "chatcmpl-" : "cmpl-");
    m->created = (long long)time(NULL);
    snprintf(m->model, sizeof m->model, "%s", model ? model : "");
}

void mesh_openai_tool_call_id(char *out, size_t cap) {
    s_hex_id(out, cap, "call_");
}

char *mesh_openai_error_text(const mesh_openai_error_t *e) {
    cJSON *o = cJSON_CreateObject(), *x = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "error", x);
    cJSON_AddStringToObject(x, "message", e->message);
    cJSON_AddStringToObject(x, "type", e->type[0] ? e->type : "invalid_request_error");
    if (e->param[0])
        cJSON_AddStringToObject(x, "param", e->param);
    else
        cJSON_AddNullToObject(x, "param");
    if (e->code[0])
        cJSON_AddStringToObject(x, "code", e->code);
    else
        cJSON_AddNullToObject(x, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

cJSON *mesh_openai_mesh_field(const mesh_openai_meta_t *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", m->node);
    cJSON_AddStringToObject(o, "route", m->route);
    return o;
}

cJSON *mesh_openai_chunk(const mesh_openai_meta_t *m, cJSON **choice) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", m->kind == MESH_OPENAI_CHAT ? "chat.completion.chunk"
                                                                      : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON *arr = cJSON_AddArrayToObject(o, "choices");
    if (choice) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        if (m->kind == MESH_OPENAI_CHAT)
            cJSON_AddObjectToObject(c, "delta");
        else
            cJSON_AddStringToObject(c, "text", "");
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(arr, c);
        *choice = c;
    }
    return o;
}

cJSON *mesh_openai_usage(uint32_t prompt_tokens, uint32_t completion_tokens) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)prompt_tokens + completion_tokens);
    return u;
}

char *mesh_openai_sse(const cJSON *j) {
    char *t = cJSON_PrintUnformatted(j);
    if (!t)
        return NULL;
    size_t n = strlen(t);
    char *s = malloc(n + 9);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, t, n);
        memcpy(s + 6 + n, "\n\n", 3);
    }
    free(t);
    return s;
}

// ---- logprobs ----

char *mesh_openai_token_text(const char *piece, size_t len) {
    if (len == 0)
        return strdup("");
    int plain = mesh_openai_utf8_valid(piece, len) && !memchr(piece, 0, len);
    char *t = malloc(plain ? len + 1 : 6 + 4 * len + 1);
    if (!t)
        return NULL;
    if (plain) {
        memcpy(t, piece, len);
        t[len] = 0;
        return t;
    }
    memcpy(t, "bytes:", 6);
    for (size_t i = 0; i < len; i++)
        snprintf(t + 6 + 4 * i, 5, "\\x%02x", (unsigned char)piece[i]);
    t[6 + 4 * len] = 0;
    return t;
}

// {"token", "logprob", "bytes"} of one piece into o; 0 or -1 (no memory).
static int s_token_fields(cJSON *o, const char *piece, size_t len, int has_piece,
                          float logprob, int has_logprob) {
    char *t = has_piece ? mesh_openai_token_text(piece, len) : NULL;
    if (has_piece && !t)
        return -1;
    cJSON_AddStringToObject(o, "token", t ? t : "");
    free(t);
    if (has_logprob)
        cJSON_AddNumberToObject(o, "logprob", (double)logprob);
    else
        cJSON_AddNullToObject(o, "logprob");
    if (!has_piece)
        return cJSON_AddNullToObject(o, "bytes") ? 0 : -1;
    cJSON *b = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; b && i < len; i++)
        cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)piece[i]));
    return b ? 0 : -1;
}

cJSON *mesh_openai_logprob_entry(const mesh_coord_logprob_t *lp) {
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    int bad = s_token_fields(e, lp ? lp->piece : NULL, lp ? lp->piece_len : 0,
                             lp && lp->has_piece, lp ? lp->logprob : 0.0f, lp != NULL);
    cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
    bad |= !top;
    for (size_t i = 0; !bad && lp && i < lp->n_top; i++) {
        cJSON *a = cJSON_CreateObject();
        bad |= !a || !cJSON_AddItemToArray(top, a) ||
               s_token_fields(a, lp->top[i].piece, lp->top[i].piece_len, 1,
                              lp->top[i].logprob, 1);
    }
    if (bad) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

// Code points in an entry's text: its bytes' lead bytes (so a character
// split over two tokens counts once, at its first byte), or its token text.
static long s_code_points(const cJSON *e) {
    long n = 0;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bytes"), *x;
    if (cJSON_IsArray(b)) {
        cJSON_ArrayForEach(x, b) n += ((unsigned)x->valuedouble & 0xC0) != 0x80;
        return n;
    }
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "token"));
    for (; t && *t; t++)
        n += ((unsigned char)*t & 0xC0) != 0x80;
    return n;
}

cJSON *mesh_openai_legacy_logprobs(const cJSON *entries, int with_top, long *offset) {
    cJSON *l = cJSON_CreateObject();
    cJSON *tok = cJSON_AddArrayToObject(l, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(l, "token_logprobs");
    cJSON *top = with_top ? cJSON_AddArrayToObject(l, "top_logprobs")
                          : cJSON_AddNullToObject(l, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(l, "text_offset");
    if (!tok || !tlp || !top || !off) {
        cJSON_Delete(l);
        return NULL;
    }
    const cJSON *e, *a;
    cJSON_ArrayForEach(e, entries) {
        cJSON_AddItemToArray(tok, cJSON_Duplicate(cJSON_GetObjectItem(e, "token"), 1));
        cJSON_AddItemToArray(tlp, cJSON_Duplicate(cJSON_GetObjectItem(e, "logprob"), 1));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)*offset));
        *offset += s_code_points(e);
        if (!with_top)
            continue;
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(top, d);
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(e, "top_logprobs")) {
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(a, "token"));
            if (d && t && !cJSON_GetObjectItemCaseSensitive(d, t))
                cJSON_AddItemToObject(d, t, cJSON_Duplicate(cJSON_GetObjectItem(a, "logprob"), 1));
        }
    }
    return l;
}
