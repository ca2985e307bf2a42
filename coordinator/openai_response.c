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
