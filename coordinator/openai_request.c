// SPDX-License-Identifier: MIT
// OpenAI request bodies -> mesh_coord_request_t. Checks every parameter the
// endpoint accepts (type, range, combination) and rebuilds the messages in
// the one normal form the node's chat template renders: content as a
// string, tool_calls with arguments as JSON objects, "developer" as system.
// Unknown top-level fields are ignored, as OpenAI clients send extras.
#include "openai_request.h"

#include "mesh_err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mesh_openai_error_set(mesh_openai_error_t *err, int status, const char *param,
                          const char *code, const char *fmt, ...) {
    err->status = status;
    snprintf(err->type, sizeof err->type, "%s",
             status == 401   ? "authentication_error"
             : status == 404 ? "not_found_error"
             : status == 429 ? "rate_limit_error"
             : status >= 500 ? "server_error"
                             : "invalid_request_error");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

int mesh_openai_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0)
            k = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            k = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if ((size_t)(e - p) < k + 1)
            return 0;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += k + 1;
    }
    return 1;
}

// Nesting depth of JSON text, counted outside strings; O(n), no recursion,
// so it runs before cJSON (whose parser recurses) sees a hostile body.
static int s_depth_ok(const char *s, size_t n, int max) {
    int d = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++d > max)
                return 0;
        } else if (c == ']' || c == '}') {
            d--;
        }
    }
    return 1;
}

static int s_bad(mesh_openai_error_t *err, const char *param, const char *fmt, const char *a) {
    mesh_openai_error_set(err, 400, param, "invalid_value", fmt, param, a ? a : "");
    return MESH_EINVAL;
}

static cJSON *s_get(const cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNull(v) ? NULL : v;
}

// Optional number in [lo, hi]; absent or null keeps *out.
static int s_number(const cJSON *o, const char *k, double lo, double hi, int integer,
                    double *out, mesh_openai_error_t *err) {
    cJSON *v = s_get(o, k);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        return s_bad(err, k, "'%s' must be a number%s", NULL);
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integer && x != floor(x))) {
        mesh_openai_error_set(err, 400, k, "invalid_value",
                              "'%s' must be %s from %g to %g", k,
                              integer ? "an integer" : "a number", lo, hi);
        return MESH_EINVAL;
    }
    *out = x;
    return 0;
}

static int s_bool(const cJSON *o, const char *k, int *out, mesh_openai_error_t *err) {
    cJSON *v = s_get(o, k);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return s_bad(err, k, "'%s' must be true or false%s", NULL);
    *out = cJSON_IsTrue(v);
    return 0;
}

// Joins list-of-parts content ({"type":"text","text":...}) into one string.
static char *s_content(const cJSON *c, const char *param, mesh_openai_error_t *err) {
    if (!c)
        return strdup("");
    if (cJSON_IsString(c))
        return strdup(c->valuestring);
    if (!cJSON_IsArray(c)) {
        s_bad(err, param, "'%s' must be a string or a list of text parts%s", NULL);
        return NULL;
    }
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const char *type = cJSON_GetStringValue(s_get(part, "type"));
        const char *text = cJSON_GetStringValue(s_get(part, "text"));
        if (!type || (strcmp(type, "text") != 0 && strcmp(type, "input_text") != 0) || !text) {
            mesh_openai_error_set(err, 400, param, "invalid_value",
                                  "'%s': only text parts are supported (got type '%.40s')",
                                  param, type ? type : "?");
            return NULL;
        }
        len += strlen(text);
    }
    char *s = malloc(len + 1), *w = s;
    if (!s)
        return NULL;
    cJSON_ArrayForEach(part, c) {
        const char *text = cJSON_GetStringValue(s_get(part, "text"));
        size_t n = strlen(text);
        memcpy(w, text, n);
        w += n;
    }
    *w = 0;
    return s;
}

static int s_tool_calls(const cJSON *tcs, cJSON *dst, int mi, mesh_openai_error_t *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].tool_calls", mi);
    if (!cJSON_IsArray(tcs))
        return s_bad(err, param, "'%s' must be a list%s", NULL);
    cJSON *arr = cJSON_AddArrayToObject(dst, "tool_calls");
    const cJSON *tc;
    cJSON_ArrayForEach(tc, tcs) {
        const cJSON *fn = s_get(tc, "function");
        const char *name = cJSON_GetStringValue(s_get(fn, "name"));
        const cJSON *args = s_get(fn, "arguments");
        if (!cJSON_IsObject(fn) || !name || !*name)
            return s_bad(err, param, "'%s' entries need function.name%s", NULL);
        cJSON *a;
        if (!args) {
            a = cJSON_CreateObject();
        } else if (cJSON_IsString(args)) {
            a = cJSON_Parse(args->valuestring);
            if (!cJSON_IsObject(a)) {
                cJSON_Delete(a);
                return s_bad(err, param,
                             "'%s': function.arguments must be a JSON object text%s", NULL);
            }
        } else if (cJSON_IsObject(args)) {
            a = cJSON_Duplicate(args, 1);
        } else {
            return s_bad(err, param, "'%s': function.arguments must be a JSON object%s", NULL);
        }
        cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
        const char *id = cJSON_GetStringValue(s_get(tc, "id"));
        if (id)
            cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "type", "function");
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddItemToObject(f, "arguments", a);
        cJSON_AddItemToObject(o, "function", f);
        cJSON_AddItemToArray(arr, o);
    }
    return 0;
}

static int s_messages(const cJSON *msgs, cJSON *out, mesh_openai_error_t *err) {
    if (!msgs)
        return mesh_openai_error_set(err, 400, "messages", "missing_required_parameter",
                                     "'messages' is required"),
               MESH_EINVAL;
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return s_bad(err, "messages", "'%s' must be a non-empty list%s", NULL);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        const char *role = cJSON_GetStringValue(s_get(m, "role"));
        if (!cJSON_IsObject(m) || !role)
            return s_bad(err, param, "'%s' must be an object with a 'role'%s", NULL);
        if (strcmp(role, "developer") == 0)
            role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
            strcmp(role, "tool"))
            return s_bad(err, param,
                         "'%s': role must be system, developer, user, assistant or tool, "
                         "not '%.40s'",
                         role);
        snprintf(param, sizeof param, "messages[%d].content", i);
        const cJSON *content = s_get(m, "content");
        if (!content && strcmp(role, "assistant") != 0)
            return mesh_openai_error_set(err, 400, param, "missing_required_parameter",
                                         "'%s' is required for role %s", param, role),
                   MESH_EINVAL;
        char *text = s_content(content, param, err);
        if (!text)
            return err->status ? MESH_EINVAL : MESH_ENOMEM;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(out, o);
        cJSON_AddStringToObject(o, "role", role);
        cJSON_AddStringToObject(o, "content", text);
        free(text);
        const char *rc = cJSON_GetStringValue(s_get(m, "reasoning_content"));
        if (rc && strcmp(role, "assistant") == 0)
            cJSON_AddStringToObject(o, "reasoning_content", rc);
        const cJSON *tcs = s_get(m, "tool_calls");
        if (tcs && strcmp(role, "assistant") == 0 && s_tool_calls(tcs, o, i, err))
            return MESH_EINVAL;
        const char *tcid = cJSON_GetStringValue(s_get(m, "tool_call_id"));
        if (tcid && strcmp(role, "tool") == 0)
            cJSON_AddStringToObject(o, "tool_call_id", tcid);
        const char *name = cJSON_GetStringValue(s_get(m, "name"));
        if (name)
            cJSON_AddStringToObject(o, "name", name);
        i++;
    }
    return 0;
}

// tools: [{"type":"function","function":{"name",...}}]. Returns a checked
// copy (only the named one for a named tool_choice).
static cJSON *s_tools(const cJSON *tools, const char *only, mesh_openai_error_t *err) {
    if (!cJSON_IsArray(tools)) {
        s_bad(err, "tools", "'%s' must be a list%s", NULL);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    int i = 0, found = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const char *type = cJSON_GetStringValue(s_get(t, "type"));
        const cJSON *fn = s_get(t, "function");
        const char *name = cJSON_GetStringValue(s_get(fn, "name"));
        if (!type || strcmp(type, "function") != 0 || !cJSON_IsObject(fn) || !name || !*name) {
            char param[32];
            snprintf(param, sizeof param, "tools[%d]", i);
            mesh_openai_error_set(err, 400, param, "invalid_value",
                                  "'%s' must be {\"type\": \"function\", \"function\": "
                                  "{\"name\": ...}}",
                                  param);
            cJSON_Delete(out);
            return NULL;
        }
        if (!only || strcmp(only, name) == 0) {
            cJSON_AddItemToArray(out, cJSON_Duplicate(t, 1));
            found = 1;
        }
        i++;
    }
    if (only && !found) {
        mesh_openai_error_set(err, 400, "tool_choice", "invalid_value",
                              "'tool_choice' names function '%.64s', which is not in 'tools'",
                              only);
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

// Tells the model, in a system message, that it must call a tool.
static void s_require_tool(cJSON *msgs, const char *name) {
    char note[256];
    if (name)
        snprintf(note, sizeof note,
                 "You must answer by calling the function %s; do not answer in plain text.",
                 name);
    else
        snprintf(note, sizeof note,
                 "You must answer by calling one of the provided functions; do not answer in "
                 "plain text.");
    cJSON *first = cJSON_GetArrayItem(msgs, 0);
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(first, "role"));
    if (role && strcmp(role, "system") == 0) {
        const char *old = cJSON_GetStringValue(cJSON_GetObjectItem(first, "content"));
        size_t n = strlen(old) + strlen(note) + 3;
        char *c = malloc(n);
        if (c) {
            snprintf(c, n, "%s%s%s", old, *old ? "\n\n" : "", note);
            cJSON_ReplaceItemInObject(first, "content", cJSON_CreateString(c));
            free(c);
        }
    } else {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", note);
        cJSON_InsertItemInArray(msgs, 0, sys);
    }
}

static int s_tool_choice(const cJSON *tc, mesh_openai_request_t *r, mesh_openai_error_t *err) {
    if (!tc)
        return 0;
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        if (strcmp(s, "auto") == 0)
            r->tool_choice = MESH_TOOL_CHOICE_AUTO;
        else if (strcmp(s, "none") == 0)
            r->tool_choice = MESH_TOOL_CHOICE_NONE;
        else if (strcmp(s, "required") == 0)
            r->tool_choice = MESH_TOOL_CHOICE_REQUIRED;
        else
            return s_bad(err, "tool_choice",
                         "'%s' must be auto, none, required or a named function, not '%.40s'",
                         s);
        return 0;
    }
    const char *type = cJSON_GetStringValue(s_get(tc, "type"));
    const char *name = cJSON_GetStringValue(s_get(s_get(tc, "function"), "name"));
    if (!cJSON_IsObject(tc) || !type || strcmp(type, "function") != 0 || !name || !*name ||
        strlen(name) >= sizeof r->tool_name)
        return s_bad(err, "tool_choice",
                     "'%s' object must be {\"type\": \"function\", \"function\": {\"name\": "
                     "...}}%s",
                     NULL);
    r->tool_choice = MESH_TOOL_CHOICE_NAMED;
    snprintf(r->tool_name, sizeof r->tool_name, "%s", name);
    return 0;
}

static int s_stop(const cJSON *st, mesh_openai_request_t *r, mesh_openai_error_t *err) {
    if (!st)
        return 0;
    size_t n = cJSON_IsString(st) ? 1 : cJSON_IsArray(st) ? (size_t)cJSON_GetArraySize(st) : 0;
    if (!cJSON_IsString(st) && !cJSON_IsArray(st))
        return s_bad(err, "stop", "'%s' must be a string or a list of strings%s", NULL);
    if (n > MESH_OPENAI_MAX_STOP) {
        mesh_openai_error_set(err, 400, "stop", "invalid_value",
                              "'stop' takes at most %d strings", MESH_OPENAI_MAX_STOP);
        return MESH_EINVAL;
    }
    r->stop = calloc(n ? n : 1, sizeof *r->stop);
    if (!r->stop)
        return MESH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const cJSON *s = cJSON_IsString(st) ? st : cJSON_GetArrayItem(st, (int)i);
        if (!cJSON_IsString(s) || !*s->valuestring)
            return s_bad(err, "stop", "'%s' entries must be non-empty strings%s", NULL);
        r->stop[i] = strdup(s->valuestring);
        if (!r->stop[i])
            return MESH_ENOMEM;
        r->n_stop++;
    }
    return 0;
}

// prompt: a string, [string], [int...] or [[int...]].
static int s_prompt(const cJSON *p, mesh_openai_request_t *r, mesh_openai_error_t *err) {
    if (!p)
        return mesh_openai_error_set(err, 400, "prompt", "missing_required_parameter",
                                     "'prompt' is required"),
               MESH_EINVAL;
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    if (cJSON_IsString(p)) {
        r->prompt = strdup(p->valuestring);
        return r->prompt ? 0 : MESH_ENOMEM;
    }
    int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (n == 0)
        return s_bad(err, "prompt",
                     "'%s' must be a string or a non-empty list of token ids (one prompt "
                     "per request)%s",
                     NULL);
    r->ids = malloc((size_t)n * sizeof *r->ids);
    if (!r->ids)
        return MESH_ENOMEM;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, p) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < 0 ||
            x->valuedouble > 2147483647.0 || x->valuedouble != floor(x->valuedouble))
            return s_bad(err, "prompt", "'%s' token ids must be integers from 0 to 2^31-1%s",
                         NULL);
        r->ids[i++] = (int32_t)x->valuedouble;
    }
    r->req.n_prompt_ids = (size_t)n;
    return 0;
}

static int s_sampling(const cJSON *o, mesh_openai_request_t *r, mesh_openai_error_t *err) {
    mesh_coord_request_t *q = &r->req;
    double v;
    int rc = 0;
    // Defaults follow OpenAI's (temperature 1, top_p 1); penalties off.
    v = 1.0, rc = rc ? rc : s_number(o, "temperature", 0, 2, 0, &v, err), q->temperature = (float)v;
    v = 1.0, rc = rc ? rc : s_number(o, "top_p", 0, 1, 0, &v, err), q->top_p = (float)v;
    v = 0, rc = rc ? rc : s_number(o, "top_k", 0, 1e6, 1, &v, err), q->top_k = (uint32_t)v;
    v = 0, rc = rc ? rc : s_number(o, "min_p", 0, 1, 0, &v, err), q->min_p = (float)v;
    v = 0, rc = rc ? rc : s_number(o, "presence_penalty", -2, 2, 0, &v, err),
    q->presence_penalty = (float)v;
    v = 0, rc = rc ? rc : s_number(o, "frequency_penalty", -2, 2, 0, &v, err),
    q->frequency_penalty = (float)v;
    v = 1, rc = rc ? rc : s_number(o, "repetition_penalty", 0.01, 10, 0, &v, err),
    q->repeat_penalty = (float)v;
    if (rc)
        return rc;
    double seed = 0;
    if (s_get(o, "seed")) {
        if ((rc = s_number(o, "seed", -9223372036854775808.0, 18446744073709551615.0, 1, &seed,
                           err)))
            return rc;
        q->has_seed = 1;
        q->seed = seed < 0 ? (uint64_t)(int64_t)seed
                  : seed >= 18446744073709551615.0 ? UINT64_MAX
                                                   : (uint64_t)seed;
    }
    double n = 1;
    cJSON *nv = s_get(o, "n");
    if (nv && (!cJSON_IsNumber(nv) || nv->valuedouble != 1.0))
        return mesh_openai_error_set(err, 400, "n", "invalid_value",
                                     "'n' must be 1: this server returns one choice per "
                                     "request"),
               MESH_EINVAL;
    (void)n;
    double mt = r->kind == MESH_OPENAI_COMPLETION ? 16 : MESH_OPENAI_DEFAULT_MAX_TOKENS;
    const char *mt_name = s_get(o, "max_completion_tokens") ? "max_completion_tokens"
                                                            : "max_tokens";
    if ((rc = s_number(o, mt_name, 1, MESH_OPENAI_MAX_MAX_TOKENS, 1, &mt, err)))
        return rc;
    q->max_tokens = (uint32_t)mt;
    if ((rc = s_stop(s_get(o, "stop"), r, err)))
        return rc;
    q->stop = (const char *const *)r->stop;
    q->n_stop = r->n_stop;
    if ((rc = s_bool(o, "stream", &r->stream, err)))
        return rc;
    const cJSON *so = s_get(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return s_bad(err, "stream_options", "'%s' must be an object%s", NULL);
        if ((rc = s_bool(so, "include_usage", &r->include_usage, err)))
            return rc;
    }
    return 0;
}

static int s_parse(mesh_openai_kind_t kind, const cJSON *o, mesh_openai_request_t *r,
                   mesh_openai_error_t *err) {
    int rc;
    const cJSON *model = s_get(o, "model");
    if (!model)
        return mesh_openai_error_set(err, 400, "model", "missing_required_parameter",
                                     "'model' is required"),
               MESH_EINVAL;
    if (!cJSON_IsString(model) || !*model->valuestring || strlen(model->valuestring) >= 64)
        return s_bad(err, "model", "'%s' must be a model name (1 to 63 characters)%s", NULL);
    r->model = strdup(model->valuestring);
    if (!r->model)
        return MESH_ENOMEM;
    r->req.model = r->model;
    if ((rc = s_sampling(o, r, err)))
        return rc;
    if (kind == MESH_OPENAI_COMPLETION) {
        double lp = -1;
        if ((rc = s_number(o, "logprobs", 0, 5, 1, &lp, err)))
            return rc;
        r->logprobs = lp >= 0;
        r->top_logprobs = lp > 0 ? (uint32_t)lp : 0;
        int echo = 0;
        if ((rc = s_bool(o, "echo", &echo, err)))
            return rc;
        if (echo)
            return s_bad(err, "echo", "'%s' is not supported%s", NULL);
        const char *suffix = cJSON_GetStringValue(s_get(o, "suffix"));
        if (suffix && *suffix)
            return s_bad(err, "suffix", "'%s' is not supported%s", NULL);
        if ((rc = s_prompt(s_get(o, "prompt"), r, err)))
            return rc;
        r->req.prompt = r->prompt;
        r->req.prompt_ids = r->ids;
    } else {
        if ((rc = s_bool(o, "logprobs", &r->logprobs, err)))
            return rc;
        double tl = 0;
        if ((rc = s_number(o, "top_logprobs", 0, 20, 1, &tl, err)))
            return rc;
        if (tl > 0 && !r->logprobs)
            return s_bad(err, "top_logprobs", "'%s' needs 'logprobs': true%s", NULL);
        r->top_logprobs = (uint32_t)tl;
        const cJSON *rf = s_get(o, "response_format");
        const char *rft = cJSON_GetStringValue(s_get(rf, "type"));
        if (rf && (!rft || strcmp(rft, "text") != 0))
            return s_bad(err, "response_format",
                         "'%s': only {\"type\": \"text\"} is supported%s", NULL);
        int thinking = 1;
        const cJSON *kw = s_get(o, "chat_template_kwargs");
        if (kw && !cJSON_IsObject(kw))
            return s_bad(err, "chat_template_kwargs", "'%s' must be an object%s", NULL);
        if (kw && (rc = s_bool(kw, "enable_thinking", &thinking, err)))
            return rc;
        // Zhipu's own API form: "thinking": {"type": "disabled"}.
        const char *tt = cJSON_GetStringValue(s_get(s_get(o, "thinking"), "type"));
        if (tt && strcmp(tt, "disabled") == 0)
            thinking = 0;
        r->req.enable_thinking = thinking;
        r->req.add_generation_prompt = 1;
        if ((rc = s_tool_choice(s_get(o, "tool_choice"), r, err)))
            return rc;
        const cJSON *tools = s_get(o, "tools");
        if (tools && cJSON_IsArray(tools) && cJSON_GetArraySize(tools) == 0)
            tools = NULL;
        if (!tools && r->tool_choice >= MESH_TOOL_CHOICE_REQUIRED)
            return s_bad(err, "tool_choice", "'%s' requires 'tools'%s", NULL);
        cJSON *msgs = cJSON_CreateArray();
        if (!msgs)
            return MESH_ENOMEM;
        if ((rc = s_messages(s_get(o, "messages"), msgs, err))) {
            cJSON_Delete(msgs);
            return rc;
        }
        if (tools && r->tool_choice != MESH_TOOL_CHOICE_NONE) {
            cJSON *t = s_tools(tools, r->tool_choice == MESH_TOOL_CHOICE_NAMED ? r->tool_name
                                                                                : NULL,
                               err);
            if (!t) {
                cJSON_Delete(msgs);
                return err->status ? MESH_EINVAL : MESH_ENOMEM;
            }
            r->has_tools = 1;
            r->tools_json = cJSON_PrintUnformatted(t);
            cJSON_Delete(t);
            if (r->tool_choice >= MESH_TOOL_CHOICE_REQUIRED)
                s_require_tool(msgs, r->tool_choice == MESH_TOOL_CHOICE_NAMED ? r->tool_name
                                                                               : NULL);
        } else if (tools) {
            cJSON *t = s_tools(tools, NULL, err); // still checked, not rendered
            if (!t) {
                cJSON_Delete(msgs);
                return err->status ? MESH_EINVAL : MESH_ENOMEM;
            }
            cJSON_Delete(t);
        }
        r->messages_json = cJSON_PrintUnformatted(msgs);
        cJSON_Delete(msgs);
        if (!r->messages_json || (r->has_tools && !r->tools_json))
            return MESH_ENOMEM;
        r->req.messages_json = r->messages_json;
        r->req.tools_json = r->tools_json;
    }
    r->req.logprobs = r->logprobs ? 1 : 0;
    r->req.top_logprobs = r->top_logprobs;
    return 0;
}

int mesh_openai_request_parse(mesh_openai_kind_t kind, const char *body, size_t len,
                              mesh_openai_request_t *out, mesh_openai_error_t *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->kind = kind;
    if (!body || !len) {
        mesh_openai_error_set(err, 400, NULL, "invalid_json", "request body is empty");
        return MESH_EINVAL;
    }
    if (!mesh_openai_utf8_valid(body, len)) {
        mesh_openai_error_set(err, 400, NULL, "invalid_json", "request body is not valid UTF-8");
        return MESH_EINVAL;
    }
    if (!s_depth_ok(body, len, MESH_OPENAI_MAX_DEPTH)) {
        mesh_openai_error_set(err, 400, NULL, "invalid_json",
                              "request body nests JSON deeper than %d levels",
                              MESH_OPENAI_MAX_DEPTH);
        return MESH_EINVAL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (o) {
        // Only whitespace may follow the value.
        while (end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (end != body + len) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    if (!o || !cJSON_IsObject(o)) {
        int parsed = o != NULL;
        cJSON_Delete(o);
        mesh_openai_error_set(err, 400, NULL, "invalid_json",
                              parsed ? "request body must be a JSON object"
                                     : "request body is not valid JSON");
        return MESH_EINVAL;
    }
    int rc = s_parse(kind, o, out, err);
    cJSON_Delete(o);
    if (rc) {
        if (!err->status)
            mesh_openai_error_set(err, 500, NULL, NULL, "out of memory");
        mesh_openai_request_clear(out);
        out->kind = kind;
    }
    return rc;
}

void mesh_openai_request_clear(mesh_openai_request_t *r) {
    free(r->model);
    free(r->messages_json);
    free(r->tools_json);
    free(r->prompt);
    free(r->ids);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    memset(r, 0, sizeof *r);
}
