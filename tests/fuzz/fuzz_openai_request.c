// SPDX-License-Identifier: MIT
// Fuzz target: an HTTP request body -> the core's generation request, for
// both /v1/chat/completions and /v1/completions, and the same bytes through
// the GLM output parser (which sees model text, just as untrusted) and as
// token pieces a node reports for logprobs.
//
// Invariants: a refused body gets status 400 (500 only for no memory), a
// non-empty message and no request; an accepted one has exactly one input,
// max_tokens in range, finite sampling values, messages/tools that are JSON
// arrays again, and top_logprobs within OpenAI's limits (20 chat, 5
// completions) only with logprobs on. The parser must consume any split of
// any bytes. A logprob entry made of any piece is valid UTF-8 JSON whose
// "bytes" are the piece again.
#include "openai_request.h"
#include "openai_response.h"
#include "output_glm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_openai_request: invariant broken: %s\n", what);
        abort();
    }
}

static int s_is_array_text(const char *s) {
    cJSON *j = cJSON_Parse(s);
    int ok = cJSON_IsArray(j);
    cJSON_Delete(j);
    return ok;
}

static size_t s_bytes; // output seen, so the sinks are not optimised away
static void s_c(void *u, const char *t, size_t n) {
    (void)u;
    s_check(t != NULL || n == 0, "content pointer");
    s_bytes += n;
}
static void s_t(void *u, const char *name, const char *args) {
    (void)u;
    s_check(name && *name, "tool name");
    cJSON *j = cJSON_Parse(args);
    s_check(cJSON_IsObject(j), "tool arguments are a JSON object");
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int k = 0; k < MESH_OPENAI_KIND_COUNT; k++) {
        mesh_openai_request_t r;
        mesh_openai_error_t e;
        int rc = mesh_openai_request_parse((mesh_openai_kind_t)k, (const char *)data, size, &r,
                                           &e);
        if (rc) {
            s_check(e.status == 400 || e.status == 500, "refusal status");
            s_check(e.message[0] != 0, "refusal message");
            s_check(r.model == NULL && r.messages_json == NULL, "refusal leaves no request");
            continue;
        }
        const mesh_coord_request_t *q = &r.req;
        int inputs = !!q->prompt + !!q->messages_json + !!q->prompt_ids;
        s_check(inputs == 1, "exactly one input");
        s_check(q->model && *q->model, "model");
        s_check(q->max_tokens >= 1 && q->max_tokens <= MESH_OPENAI_MAX_MAX_TOKENS, "max_tokens");
        s_check(isfinite(q->temperature) && isfinite(q->top_p) && isfinite(q->min_p) &&
                    isfinite(q->repeat_penalty) && isfinite(q->presence_penalty) &&
                    isfinite(q->frequency_penalty),
                "finite sampling values");
        s_check(q->n_stop <= MESH_OPENAI_MAX_STOP, "stop count");
        for (size_t i = 0; i < q->n_stop; i++)
            s_check(q->stop[i] && *q->stop[i], "stop strings");
        if (q->messages_json)
            s_check(s_is_array_text(q->messages_json), "messages are a JSON array");
        if (q->tools_json)
            s_check(s_is_array_text(q->tools_json), "tools are a JSON array");
        s_check(q->top_logprobs <= (k == MESH_OPENAI_CHAT ? 20u : 5u), "top_logprobs range");
        s_check(q->top_logprobs == 0 || q->logprobs, "top_logprobs needs logprobs");
        mesh_openai_request_clear(&r);
    }
    // The bytes as a node's token pieces: the sampled one, and two halves as
    // its alternatives.
    mesh_coord_alt_t alt[2] = {{1, -0.5f, (const char *)data, size / 2},
                               {2, -1.0f, (const char *)data + size / 2, size - size / 2}};
    mesh_coord_logprob_t lp = {.logprob = -0.5f, .has_piece = 1, .piece = (const char *)data,
                               .piece_len = size, .top = alt, .n_top = 2};
    cJSON *entry = mesh_openai_logprob_entry(&lp);
    s_check(entry != NULL, "logprob entry");
    char *json = cJSON_PrintUnformatted(entry);
    s_check(json && mesh_openai_utf8_valid(json, strlen(json)), "entry is UTF-8 JSON");
    cJSON *back = cJSON_Parse(json);
    const cJSON *b = cJSON_GetObjectItem(back, "bytes"), *x;
    size_t i = 0;
    cJSON_ArrayForEach(x, b) {
        s_check(i < size && x->valueint == data[i], "bytes round trip");
        i++;
    }
    s_check(i == size, "bytes length");
    cJSON_Delete(back);
    free(json);
    cJSON_Delete(entry);

    // The output parser: split the bytes where the input says (first byte).
    mesh_out_sink_t sink = {s_c, s_c, s_t};
    mesh_out_parser_t *p = mesh_out_glm.create(size && (data[0] & 1), &sink, NULL);
    s_check(p != NULL, "parser");
    size_t step = size ? (size_t)(data[0] % 7) + 1 : 1;
    for (size_t at = 0; at < size; at += step)
        mesh_out_glm.feed(p, (const char *)data + at, size - at < step ? size - at : step);
    mesh_out_glm.finish(p);
    mesh_out_glm.destroy(&p);
    return 0;
}
