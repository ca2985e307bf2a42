// SPDX-License-Identifier: MIT
// OpenAI request parsing: good requests become the core's request with the
// right values; every bad one is refused with status 400 (or as listed)
// and a message that names the parameter.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "openai_request.h"
#include "openai_response.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_parse(mesh_openai_kind_t k, const char *body, mesh_openai_request_t *r,
                   mesh_openai_error_t *e) {
    return mesh_openai_request_parse(k, body, strlen(body), r, e);
}

static void test_chat_full(void **state) {
    (void)state;
    const char *body =
        "{\"model\":\"glm-4.7-flash:q4_k_m\",\"messages\":["
        "{\"role\":\"developer\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather \"},"
        "{\"type\":\"text\",\"text\":\"in Tokyo?\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"location\\\":\\\"Tokyo\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"21C\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"parameters\":{\"type\":\"object\"}}}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_completion_tokens\":77,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,"
        "\"min_p\":0.05,\"presence_penalty\":0.1,\"frequency_penalty\":-0.2,"
        "\"repetition_penalty\":1.1,\"seed\":-1,\"stop\":[\"END\",\"###\"],\"n\":1,"
        "\"logprobs\":true,\"top_logprobs\":3,"
        "\"chat_template_kwargs\":{\"enable_thinking\":false},\"user\":\"ignored\"}";
    mesh_openai_request_t r;
    mesh_openai_error_t e;
    assert_int_equal(s_parse(MESH_OPENAI_CHAT, body, &r, &e), 0);
    assert_string_equal(r.req.model, "glm-4.7-flash:q4_k_m");
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.req.max_tokens, 77);
    assert_float_equal(r.req.temperature, 0.5, 1e-6);
    assert_float_equal(r.req.top_p, 0.9, 1e-6);
    assert_int_equal(r.req.top_k, 40);
    assert_float_equal(r.req.min_p, 0.05, 1e-6);
    assert_float_equal(r.req.frequency_penalty, -0.2, 1e-6);
    assert_float_equal(r.req.repeat_penalty, 1.1, 1e-6);
    assert_true(r.req.has_seed);
    assert_true(r.req.seed == UINT64_MAX);
    assert_int_equal(r.req.n_stop, 2);
    assert_string_equal(r.req.stop[1], "###");
    assert_int_equal(r.req.logprobs, 1);
    assert_int_equal(r.req.top_logprobs, 3);
    assert_int_equal(r.req.enable_thinking, 0);
    assert_int_equal(r.req.add_generation_prompt, 1);
    assert_true(r.has_tools);
    assert_int_equal(r.tool_choice, MESH_TOOL_CHOICE_AUTO);
    cJSON *m = cJSON_Parse(r.req.messages_json);
    assert_int_equal(cJSON_GetArraySize(m), 4);
    assert_string_equal(cJSON_GetArrayItem(m, 0)->child->valuestring, "system");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring,
        "Weather in Tokyo?");
    cJSON *args = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "tool_calls"), 0),
            "function"),
        "arguments");
    assert_true(cJSON_IsObject(args)); // the template iterates arguments as a mapping
    assert_string_equal(cJSON_GetObjectItem(args, "location")->valuestring, "Tokyo");
    cJSON_Delete(m);
    assert_non_null(strstr(r.req.tools_json, "get_weather"));
    mesh_openai_request_clear(&r);
}

static void test_defaults_and_tool_choice(void **state) {
    (void)state;
    mesh_openai_request_t r;
    mesh_openai_error_t e;
    assert_int_equal(
        s_parse(MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                  "\"content\":\"hi\"}]}",
                &r, &e),
        0);
    assert_int_equal(r.req.max_tokens, MESH_OPENAI_DEFAULT_MAX_TOKENS);
    assert_int_equal(r.req.enable_thinking, 1);
    assert_float_equal(r.req.temperature, 1.0, 0);
    assert_null(r.req.tools_json);
    assert_false(r.stream);
    mesh_openai_request_clear(&r);

    const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},"
                        "{\"type\":\"function\",\"function\":{\"name\":\"b\"}}]";
    char body[512];
    // none: tools checked but not rendered.
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s,"
             "\"tool_choice\":\"none\"}",
             tools);
    assert_int_equal(s_parse(MESH_OPENAI_CHAT, body, &r, &e), 0);
    assert_null(r.req.tools_json);
    mesh_openai_request_clear(&r);
    // named: only that tool rendered, and the prompt says so.
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s,"
             "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"b\"}}}",
             tools);
    assert_int_equal(s_parse(MESH_OPENAI_CHAT, body, &r, &e), 0);
    assert_int_equal(r.tool_choice, MESH_TOOL_CHOICE_NAMED);
    assert_null(strstr(r.req.tools_json, "\"a\""));
    assert_non_null(strstr(r.req.tools_json, "\"b\""));
    assert_non_null(strstr(r.req.messages_json, "\"role\":\"system\""));
    assert_non_null(strstr(r.req.messages_json, "function b"));
    mesh_openai_request_clear(&r);
    // required: system message added.
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
             "{\"role\":\"user\",\"content\":\"x\"}],%s,\"tool_choice\":\"required\"}",
             tools);
    assert_int_equal(s_parse(MESH_OPENAI_CHAT, body, &r, &e), 0);
    assert_int_equal(r.tool_choice, MESH_TOOL_CHOICE_REQUIRED);
    assert_non_null(strstr(r.req.messages_json, "S\\n\\nYou must answer by calling"));
    mesh_openai_request_clear(&r);
}

static void test_completions(void **state) {
    (void)state;
    mesh_openai_request_t r;
    mesh_openai_error_t e;
    assert_int_equal(s_parse(MESH_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"Once\"}", &r, &e),
                     0);
    assert_string_equal(r.req.prompt, "Once");
    assert_int_equal(r.req.max_tokens, 16);
    assert_null(r.req.messages_json);
    mesh_openai_request_clear(&r);
    assert_int_equal(s_parse(MESH_OPENAI_COMPLETION,
                             "{\"model\":\"m\",\"prompt\":[[1,2,3]],\"logprobs\":2}", &r, &e),
                     0);
    assert_int_equal(r.req.n_prompt_ids, 3);
    assert_int_equal(r.req.prompt_ids[2], 3);
    assert_null(r.req.prompt);
    assert_int_equal(r.req.logprobs, 1);
    assert_int_equal(r.req.top_logprobs, 2);
    mesh_openai_request_clear(&r);
}

typedef struct {
    mesh_openai_kind_t kind;
    const char *body;
    int status;
    const char *param;      // expected param ("" none)
} s_bad_t;

static const s_bad_t s_bad[] = {
    {MESH_OPENAI_CHAT, "{", 400, ""},
    {MESH_OPENAI_CHAT, "[]", 400, ""},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\"} x", 400, ""},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", 400, ""},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", 400, ""},
    {MESH_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "model"},
    {MESH_OPENAI_CHAT, "{\"model\":7,\"messages\":[]}", 400, "model"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\"}", 400, "messages"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[]}", 400, "messages"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400, "messages[0]"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", 400, "messages[0].content"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "messages[0].content"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"[1\"}}]}]}", 400, "messages[0].tool_calls"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 400, "n"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", 400, "temperature"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", 400, "temperature"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e400}", 400, "max_tokens"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 400, "max_tokens"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2.5}", 400, "max_tokens"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1e30}", 400, "seed"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", 400, "stop"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":5}", 400, "stop"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 400, "stream"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":false,\"top_logprobs\":1}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":-1}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":2.5}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":\"3\"}", 400, "top_logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":1}", 400, "logprobs"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"sometimes\"}", 400, "tool_choice"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}", 400, "tool_choice"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"zz\"}}}", 400, "tool_choice"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"retrieval\"}]}", 400, "tools[0]"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\"}}", 400, "response_format"},
    {MESH_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":{\"enable_thinking\":\"no\"}}", 400, "enable_thinking"},
    {MESH_OPENAI_COMPLETION, "{\"model\":\"m\"}", 400, "prompt"},
    {MESH_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":[1,-2]}", 400, "prompt"},
    {MESH_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", 400, "prompt"},
    {MESH_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true}", 400, "echo"},
    {MESH_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":9}", 400, "logprobs"},
};

static void test_rejections(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof *s_bad; i++) {
        mesh_openai_request_t r;
        mesh_openai_error_t e;
        int rc = s_parse(s_bad[i].kind, s_bad[i].body, &r, &e);
        if (rc == 0 || e.status != s_bad[i].status || strcmp(e.param, s_bad[i].param) != 0 ||
            !e.message[0]) {
            print_error("case %zu (%s): rc %d status %d param '%s' message '%s'\n", i,
                        s_bad[i].body, rc, e.status, e.param, e.message);
            fail();
        }
        if (s_bad[i].param[0] && !strstr(e.message, s_bad[i].param)) {
            print_error("case %zu: message '%s' does not name '%s'\n", i, e.message,
                        s_bad[i].param);
            fail();
        }
        assert_null(r.model);
    }
}

static void test_deep_and_huge(void **state) {
    (void)state;
    // 100000 nested arrays: refused before cJSON's recursive parser sees it.
    size_t n = 100000;
    char *b = malloc(2 * n + 64);
    size_t k = (size_t)sprintf(b, "{\"model\":\"m\",\"x\":");
    memset(b + k, '[', n);
    memset(b + k + n, ']', n);
    strcpy(b + k + 2 * n, "}");
    mesh_openai_request_t r;
    mesh_openai_error_t e;
    assert_int_not_equal(mesh_openai_request_parse(MESH_OPENAI_CHAT, b, strlen(b), &r, &e), 0);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "deeper"));
    free(b);
    // Brackets inside strings do not count.
    const char *ok = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}]}";
    assert_int_equal(mesh_openai_request_parse(MESH_OPENAI_CHAT, ok, strlen(ok), &r, &e), 0);
    mesh_openai_request_clear(&r);
    assert_int_not_equal(mesh_openai_request_parse(MESH_OPENAI_CHAT, "", 0, &r, &e), 0);
    assert_int_equal(e.status, 400);
}

static void test_error_shape(void **state) {
    (void)state;
    mesh_openai_error_t e;
    mesh_openai_error_set(&e, 404, "model", "model_not_found", "model '%s' unknown", "x\"y");
    char *t = mesh_openai_error_text(&e);
    cJSON *j = cJSON_Parse(t);
    cJSON *x = cJSON_GetObjectItem(j, "error");
    assert_string_equal(cJSON_GetObjectItem(x, "message")->valuestring, "model 'x\"y' unknown");
    assert_string_equal(cJSON_GetObjectItem(x, "type")->valuestring, "not_found_error");
    assert_string_equal(cJSON_GetObjectItem(x, "param")->valuestring, "model");
    assert_string_equal(cJSON_GetObjectItem(x, "code")->valuestring, "model_not_found");
    cJSON_Delete(j);
    free(t);
    mesh_openai_error_set(&e, 400, NULL, NULL, "bad");
    t = mesh_openai_error_text(&e);
    j = cJSON_Parse(t);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "param")));
    cJSON_Delete(j);
    free(t);
    mesh_openai_meta_t m1, m2;
    mesh_openai_meta_init(&m1, MESH_OPENAI_CHAT, "m");
    mesh_openai_meta_init(&m2, MESH_OPENAI_COMPLETION, "m");
    assert_int_equal(strncmp(m1.id, "chatcmpl-", 9), 0);
    assert_int_equal(strlen(m1.id), 9 + 24);
    assert_int_equal(strncmp(m2.id, "cmpl-", 5), 0);
    assert_true(m1.created > 1600000000);
}

// Logprob entries: bytes-safe token texts, the chat entry shape, and the
// completions' older shape with text offsets in code points.
static void test_logprob_shapes(void **state) {
    (void)state;
    char *t = mesh_openai_token_text("h\xc3\xa9", 3);
    assert_string_equal(t, "h\xc3\xa9");
    free(t);
    t = mesh_openai_token_text("\xe4\xbd", 2); // first two bytes of a 3-byte character
    assert_string_equal(t, "bytes:\\xe4\\xbd");
    free(t);
    t = mesh_openai_token_text("a\0b", 3);
    assert_string_equal(t, "bytes:\\x61\\x00\\x62");
    free(t);
    t = mesh_openai_token_text("", 0);
    assert_string_equal(t, "");
    free(t);

    mesh_coord_alt_t alt[2] = {{5, -0.25f, "\xe4\xbd", 2}, {6, -2.0f, " x", 2}};
    mesh_coord_logprob_t lp[2] = {
        {.logprob = -0.25f, .has_piece = 1, .piece = "\xe4\xbd", .piece_len = 2, .top = alt,
         .n_top = 2},
        {.logprob = -1.5f, .has_piece = 1, .piece = "\xa0!", .piece_len = 2, .top = alt + 1,
         .n_top = 1},
    };
    cJSON *entries = cJSON_CreateArray();
    for (int i = 0; i < 2; i++)
        cJSON_AddItemToArray(entries, mesh_openai_logprob_entry(&lp[i]));
    char *text = cJSON_PrintUnformatted(entries);
    assert_true(mesh_openai_utf8_valid(text, strlen(text)));
    free(text);
    cJSON *e0 = cJSON_GetArrayItem(entries, 0);
    assert_string_equal(cJSON_GetObjectItem(e0, "token")->valuestring, "bytes:\\xe4\\xbd");
    assert_float_equal(cJSON_GetObjectItem(e0, "logprob")->valuedouble, -0.25, 0);
    cJSON *b = cJSON_GetObjectItem(e0, "bytes");
    assert_int_equal(cJSON_GetArraySize(b), 2);
    assert_int_equal(cJSON_GetArrayItem(b, 0)->valueint, 0xe4);
    assert_int_equal(cJSON_GetArrayItem(b, 1)->valueint, 0xbd);
    cJSON *top = cJSON_GetObjectItem(e0, "top_logprobs");
    assert_int_equal(cJSON_GetArraySize(top), 2);
    cJSON *a1 = cJSON_GetArrayItem(top, 1);
    assert_string_equal(cJSON_GetObjectItem(a1, "token")->valuestring, " x");
    assert_float_equal(cJSON_GetObjectItem(a1, "logprob")->valuedouble, -2.0, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a1, "bytes")), 2);

    // Nothing from the node: null logprob and bytes, no alternatives.
    cJSON *none = mesh_openai_logprob_entry(NULL);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(none, "logprob")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(none, "bytes")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(none, "top_logprobs")), 0);
    cJSON_Delete(none);

    // Older shape: the split character counts once, at its first byte.
    long off = 10;
    cJSON *l = mesh_openai_legacy_logprobs(entries, 1, &off);
    assert_int_equal(off, 10 + 1 + 1);
    cJSON *to = cJSON_GetObjectItem(l, "text_offset");
    assert_int_equal(cJSON_GetArrayItem(to, 0)->valueint, 10);
    assert_int_equal(cJSON_GetArrayItem(to, 1)->valueint, 11);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "tokens"), 1)->valuestring,
                        "bytes:\\xa0\\x21");
    assert_float_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(l, "token_logprobs"), 1)->valuedouble, -1.5, 0);
    cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(l, "top_logprobs"), 0);
    assert_int_equal(cJSON_GetArraySize(d0), 2);
    assert_float_equal(cJSON_GetObjectItem(d0, " x")->valuedouble, -2.0, 0);
    cJSON_Delete(l);
    l = mesh_openai_legacy_logprobs(entries, 0, &off);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(l, "top_logprobs")));
    assert_int_equal(off, 14);
    cJSON_Delete(l);
    cJSON_Delete(entries);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_full),
        cmocka_unit_test(test_defaults_and_tool_choice),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_deep_and_huge),
        cmocka_unit_test(test_error_shape),
        cmocka_unit_test(test_logprob_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
