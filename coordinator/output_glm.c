// SPDX-License-Identifier: MIT
// The GLM output parser: a streaming state machine over generated text that
// splits it into content, reasoning (<think>...</think>) and tool calls
// (<tool_call>...</tool_call>). Text is emitted as soon as it cannot be the
// start of a tag; a tool call is held until it closes, then parsed whole
// (its body is small, and arguments must be complete JSON anyway).
#include "output_glm.h"

#include "mesh_err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { S_CONTENT, S_REASON, S_TOOL };

struct mesh_out_parser {
    mesh_out_sink_t sink;
    void *user;
    int state;
    int trim_lead;     // skip whitespace until the next visible character
    char *buf;         // text not yet decided (a partial tag or a tool call)
    size_t len, cap;   // bytes
};

static const char *const s_tags_content[] = {"<think>", "</think>", "<tool_call>", NULL};
static const char *const s_tags_reason[] = {"</think>", "<tool_call>", NULL};
static const char *const s_tags_tool[] = {"</tool_call>", NULL};

static const char *const *s_tags(int state) {
    return state == S_CONTENT ? s_tags_content : state == S_REASON ? s_tags_reason
                                                                    : s_tags_tool;
}

static int s_is_space(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

// Emits text on the current channel, dropping leading whitespace after a
// channel switch (GLM writes "</think>\n" and "\n" before tool calls).
static void s_emit(mesh_out_parser_t *p, int state, const char *t, size_t n) {
    if (p->trim_lead) {
        while (n && s_is_space(*t))
            t++, n--;
        if (!n)
            return;
        p->trim_lead = 0;
    }
    if (state == S_REASON) {
        if (p->sink.reasoning)
            p->sink.reasoning(p->user, t, n);
    } else if (p->sink.content) {
        p->sink.content(p->user, t, n);
    }
}

static const char *s_memmem(const char *h, size_t hn, const char *n) {
    size_t nn = strlen(n);
    if (nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0)
            return h + i;
    return NULL;
}

static char *s_trimmed_dup(const char *s, size_t n) {
    while (n && s_is_space(*s))
        s++, n--;
    while (n && s_is_space(s[n - 1]))
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

int mesh_out_glm_tool_body(const char *body, size_t len, char **name, char **args_json) {
    *name = NULL;
    *args_json = NULL;
    const char *end = body + len, *k = s_memmem(body, len, "<arg_key>");
    const char *name_end = k ? k : end;
    char *nm = s_trimmed_dup(body, (size_t)(name_end - body));
    if (!nm)
        return MESH_ENOMEM;
    if (!*nm || strchr(nm, '<') || strchr(nm, '\n')) {
        free(nm);
        return MESH_EFORMAT;
    }
    cJSON *args = cJSON_CreateObject();
    int rc = args ? 0 : MESH_ENOMEM;
    const char *p = name_end;
    while (!rc && p < end) {
        while (p < end && s_is_space(*p))
            p++;
        if (p == end)
            break;
        static const char ko[] = "<arg_key>", kc[] = "</arg_key>", vo[] = "<arg_value>",
                          vc[] = "</arg_value>";
        if ((size_t)(end - p) < sizeof ko - 1 || memcmp(p, ko, sizeof ko - 1) != 0) {
            rc = MESH_EFORMAT;
            break;
        }
        p += sizeof ko - 1;
        const char *ke = s_memmem(p, (size_t)(end - p), kc);
        if (!ke) {
            rc = MESH_EFORMAT;
            break;
        }
        char *key = s_trimmed_dup(p, (size_t)(ke - p));
        p = ke + sizeof kc - 1;
        while (p < end && s_is_space(*p))
            p++;
        const char *ve = NULL;
        if (key && (size_t)(end - p) >= sizeof vo - 1 && memcmp(p, vo, sizeof vo - 1) == 0) {
            p += sizeof vo - 1;
            ve = s_memmem(p, (size_t)(end - p), vc);
        }
        if (!key || !ve || !*key) {
            rc = key ? MESH_EFORMAT : MESH_ENOMEM;
            free(key);
            break;
        }
        char *raw = malloc((size_t)(ve - p) + 1);
        if (!raw) {
            free(key);
            rc = MESH_ENOMEM;
            break;
        }
        memcpy(raw, p, (size_t)(ve - p));
        raw[ve - p] = 0;
        // A value that is JSON as a whole (number, bool, object, array,
        // quoted string) stays typed; anything else is a plain string.
        const char *parse_end = NULL;
        cJSON *v = cJSON_ParseWithOpts(raw, &parse_end, 1);
        if (!v)
            v = cJSON_CreateString(raw);
        free(raw);
        if (!v) {
            free(key);
            rc = MESH_ENOMEM;
            break;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(args, key); // last one wins
        cJSON_AddItemToObject(args, key, v);
        free(key);
        p = ve + sizeof vc - 1;
    }
    if (!rc) {
        *args_json = cJSON_PrintUnformatted(args);
        if (!*args_json)
            rc = MESH_ENOMEM;
    }
    cJSON_Delete(args);
    if (rc)
        free(nm);
    else
        *name = nm;
    return rc;
}

static int s_reserve(mesh_out_parser_t *p, size_t add) {
    if (p->len + add + 1 <= p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : 256;
    while (cap < p->len + add + 1)
        cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b)
        return MESH_ENOMEM;
    p->buf = b;
    p->cap = cap;
    return 0;
}

static void s_tool_done(mesh_out_parser_t *p, const char *body, size_t n) {
    char *name, *args;
    if (mesh_out_glm_tool_body(body, n, &name, &args) == 0) {
        if (p->sink.tool_call)
            p->sink.tool_call(p->user, name, args);
        free(name);
        free(args);
    } else {
        // Not a tool call we understand: give the text back as content.
        s_emit(p, S_CONTENT, "<tool_call>", 11);
        s_emit(p, S_CONTENT, body, n);
        s_emit(p, S_CONTENT, "</tool_call>", 12);
    }
}

// Longest suffix of buf[0..n) that is a proper prefix of one of tags.
static size_t s_partial_tail(const char *b, size_t n, const char *const *tags) {
    size_t best = 0;
    for (int t = 0; tags[t]; t++) {
        size_t tl = strlen(tags[t]);
        for (size_t k = tl - 1; k > best; k--)
            if (k <= n && memcmp(b + n - k, tags[t], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

// Decides as much of buf as possible; keeps the undecided rest.
static void s_run(mesh_out_parser_t *p) {
    size_t off = 0;
    for (;;) {
        const char *b = p->buf + off;
        size_t n = p->len - off;
        const char *const *tags = s_tags(p->state);
        const char *hit = NULL, *tag = NULL;
        for (int t = 0; tags[t]; t++) {
            const char *h = s_memmem(b, n, tags[t]);
            if (h && (!hit || h < hit))
                hit = h, tag = tags[t];
        }
        if (!hit) {
            if (p->state != S_TOOL) {
                size_t keep = s_partial_tail(b, n, tags);
                s_emit(p, p->state, b, n - keep);
                off += n - keep;
            }
            break;
        }
        size_t before = (size_t)(hit - b), tl = strlen(tag);
        if (p->state == S_TOOL) {
            s_tool_done(p, b, before);
            p->state = S_CONTENT;
            p->trim_lead = 1;
        } else {
            s_emit(p, p->state, b, before);
            if (strcmp(tag, "<think>") == 0)
                p->state = S_REASON;
            else if (strcmp(tag, "</think>") == 0)
                p->state = S_CONTENT;
            else
                p->state = S_TOOL;
            p->trim_lead = p->state != S_TOOL;
        }
        off += before + tl;
    }
    memmove(p->buf, p->buf + off, p->len - off);
    p->len -= off;
}

static mesh_out_parser_t *s_create(int thinking, const mesh_out_sink_t *sink, void *user) {
    mesh_out_parser_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->sink = *sink;
    p->user = user;
    p->state = thinking ? S_REASON : S_CONTENT;
    p->trim_lead = 1;
    return p;
}

static int s_feed(mesh_out_parser_t *p, const char *text, size_t len) {
    if (!len)
        return 0;
    if (s_reserve(p, len))
        return MESH_ENOMEM;
    memcpy(p->buf + p->len, text, len);
    p->len += len;
    s_run(p);
    return 0;
}

static int s_finish(mesh_out_parser_t *p) {
    if (p->state == S_TOOL) {
        // Cut off inside a tool call (max_tokens): hand the raw text back.
        s_emit(p, S_CONTENT, "<tool_call>", 11);
        s_emit(p, S_CONTENT, p->buf, p->len);
    } else {
        s_emit(p, p->state, p->buf, p->len);
    }
    p->len = 0;
    p->state = S_CONTENT;
    return 0;
}

static void s_destroy(mesh_out_parser_t **pp) {
    if (!pp || !*pp)
        return;
    free((*pp)->buf);
    free(*pp);
    *pp = NULL;
}

const mesh_out_family_t mesh_out_glm = {"glm", s_create, s_feed, s_finish, s_destroy};
