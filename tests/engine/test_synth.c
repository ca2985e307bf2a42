// SPDX-License-Identifier: MIT
// meshrun synth's writer: the files load as models, are deterministic in
// their seed, follow the quantizer's per-tensor type mix, and carry a
// vocabulary and chat template that the tokenizer and template interpreter
// accept (so the demo mesh can serve them end to end).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat_template.h"
#include "engine.h"
#include "gguf.h"
#include "json.h"
#include "mesh_err.h"
#include "quant.h"
#include "quantize.h"
#include "synth.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[256];

static int s_setup(void **state) {
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/mesh_test_synth_XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_write(const char *preset, const char *ftype, uint64_t seed, const char *name,
                    char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", s_dir, name);
    mesh_synth_params_t p = {0};
    p.shape = *mesh_synth_find_preset(preset);
    p.ftype = ftype;
    p.out_path = path;
    p.seed = seed;
    p.n_threads = 2;
    p.quiet = true;
    char err[256] = "";
    int rc = mesh_synth_write(&p, err, sizeof err);
    if (rc)
        fail_msg("synth %s %s: %s", preset, ftype, err);
}

static void *s_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_presets(void **state) {
    (void)state;
    const mesh_synth_preset_t *g = mesh_synth_find_preset("glm-4.7-flash");
    assert_non_null(g);
    // GLM-4.7-Flash: 29.9B parameters, a 576-wide latent KV row per token and layer.
    double b = (double)mesh_synth_n_params(g) / 1e9;
    assert_true(b > 29.8 && b < 30.0);
    assert_int_equal(g->kv_lora + g->rope, 576);
    const mesh_synth_preset_t *s = mesh_synth_find_preset("small");
    assert_non_null(s);
    b = (double)mesh_synth_n_params(s) / 1e9;
    assert_true(b > 0.8 && b < 1.3);
    assert_null(mesh_synth_find_preset("nope"));
}

// Same seed: same bytes; another seed: other bytes.
static void test_deterministic(void **state) {
    (void)state;
    char a[512], b[512], c[512];
    s_write("tiny", "q8_0", 7, "a.gguf", a, sizeof a);
    s_write("tiny", "q8_0", 7, "b.gguf", b, sizeof b);
    s_write("tiny", "q8_0", 8, "c.gguf", c, sizeof c);
    size_t na, nb, nc;
    void *da = s_slurp(a, &na), *db = s_slurp(b, &nb), *dc = s_slurp(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_int_equal(na, nc);
    assert_true(memcmp(da, dc, na) != 0);
    free(da);
    free(db);
    free(dc);
}

// Each tensor has the type `meshrun quantize` would give it in that file type.
static void test_type_mix(void **state) {
    (void)state;
    char path[512], err[256] = "";
    s_write("tiny", "q4_k_m", 1, "m.gguf", path, sizeof path);
    mesh_gguf_t *g = NULL;
    assert_int_equal(mesh_gguf_open(path, &g, err, sizeof err), 0);
    const mesh_ftype_t *ft = mesh_ftype_find("q4_k_m");
    uint32_t n_layer = 0;
    assert_int_equal(mesh_gguf_get_arch_u32(g, "block_count", &n_layer), 0);
    int n_q4k = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        mesh_qtype_t want = mesh_ftype_tensor_type(ft, t->name, t->n_dims, t->ne, n_layer,
                                                   MESH_QT_F32);
        if (t->type != (uint32_t)want)
            fail_msg("%s is %s, want %s", t->name, mesh_qtype_name(t->type),
                     mesh_qtype_name(want));
        n_q4k += t->type == MESH_QT_Q4_K;
    }
    assert_true(n_q4k > 0);
    uint32_t ftn = 0;
    assert_int_equal(mesh_gguf_get_u32(g, "general.file_type", &ftn), 0);
    assert_string_equal(mesh_ftype_label(ftn), "Q4_K_M");
    mesh_gguf_close(&g);
}

// The file loads as a model and gives finite logits for a few tokens.
static void test_loads_and_runs(void **state) {
    (void)state;
    char path[512], err[256] = "";
    s_write("tiny", "bf16", 3, "r.gguf", path, sizeof path);
    mesh_model_params_t mp;
    mesh_model_params_default(&mp);
    mp.n_threads = 1;
    mp.kv_tokens = 256;
    mesh_model_t *m = NULL;
    if (mesh_model_load(path, &mp, &m, err, sizeof err))
        fail_msg("load: %s", err);
    mesh_model_info_t info;
    mesh_model_info(m, &info);
    assert_string_equal(info.arch, "deepseek2");
    assert_string_equal(info.file_type, "BF16");
    mesh_kv_t *kv = mesh_model_kv(m);
    int32_t seq;
    assert_int_equal(mesh_kv_seq_new(kv, &seq), 0);
    mesh_batch_tok_t toks[4];
    for (int i = 0; i < 4; i++)
        toks[i] = (mesh_batch_tok_t){.token = 10 + 50 * i, .seq = seq, .pos = i, .logits = i == 3};
    mesh_batch_t b = {4, toks};
    float *logits = malloc(info.n_vocab * sizeof *logits);
    assert_int_equal(mesh_model_forward(m, kv, &b, logits), 0);
    double sum2 = 0;
    for (uint32_t i = 0; i < info.n_vocab; i++) {
        assert_true(isfinite(logits[i]));
        sum2 += (double)logits[i] * logits[i];
    }
    assert_true(sum2 > 0); // not all zero: the weights are really random
    free(logits);
    mesh_model_destroy(&m);
}

// The built-in vocabulary round-trips text and the built-in template renders
// a chat with tools and a tool call into special tokens the tokenizer knows.
static void test_vocab_and_template(void **state) {
    (void)state;
    char path[512], err[256] = "";
    s_write("tiny", "q8_0", 1, "v.gguf", path, sizeof path);
    mesh_gguf_t *g = NULL;
    assert_int_equal(mesh_gguf_open(path, &g, err, sizeof err), 0);
    mesh_tok_t *tok = NULL;
    if (mesh_tok_new_from_gguf(g, &tok, err, sizeof err))
        fail_msg("tokenizer: %s", err);
    assert_int_equal(mesh_tok_n_vocab(tok), 2022);
    const char *text = "Hello world! The mesh routes 1234 requests, quickly.";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(mesh_tok_encode_alloc(tok, text, strlen(text), true, false, &ids, &n), 0);
    assert_true(n > 0 && n < strlen(text)); // merges were learned: fewer ids than bytes
    char back[256];
    size_t nb = 0;
    assert_int_equal(mesh_tok_decode(tok, ids, n, false, back, sizeof back, &nb), 0);
    assert_int_equal(nb, strlen(text));
    assert_memory_equal(back, text, nb);
    free(ids);

    const char *tmpl_src = NULL;
    assert_int_equal(mesh_gguf_get_str(g, "tokenizer.chat_template", &tmpl_src, NULL), 0);
    mesh_tmpl_t *t = mesh_tmpl_new(tmpl_src, err, sizeof err);
    if (!t)
        fail_msg("template: %s", err);
    const char *chat_json =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather?\"}]},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"get\",\"arguments\":{\"city\":\"Oslo\",\"days\":2}}}]},"
        "{\"role\":\"tool\",\"content\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\"}}]}";
    mesh_json_t *j = NULL;
    assert_int_equal(mesh_json_parse(chat_json, strlen(chat_json), &j, err, sizeof err), 0);
    mesh_tmpl_chat_t chat = {0};
    chat.messages = mesh_json_get(j, "messages");
    chat.tools = mesh_json_get(j, "tools");
    chat.add_generation_prompt = true;
    chat.enable_thinking = 0;
    char *out = NULL;
    if (mesh_tmpl_render_chat(t, &chat, &out, NULL, err, sizeof err))
        fail_msg("render: %s", err);
    const char *want =
        "<|system|>Be brief.<|user|>Weather?<|assistant|></think><tool_call>get"
        "<arg_key>city</arg_key><arg_value>Oslo</arg_value><arg_key>days</arg_key>"
        "<arg_value>2</arg_value></tool_call><|observation|><tool_response>sunny"
        "</tool_response><|assistant|></think>";
    if (!strstr(out, want))
        fail_msg("rendered chat lacks the expected turns:\n%s", out);
    assert_true(strncmp(out, "[gMASK]<sop><|system|>\n# Tools", 30) == 0);
    // Every special token of the rendered prompt is one id.
    assert_int_equal(mesh_tok_encode_alloc(tok, out, strlen(out), true, false, &ids, &n), 0);
    int32_t gmask = mesh_tok_find(tok, "[gMASK]", 7);
    assert_true(gmask >= 0);
    assert_int_equal(ids[0], gmask);
    assert_int_equal(mesh_tok_bos(tok), gmask);
    free(ids);
    free(out);
    mesh_json_destroy(&j);
    mesh_tmpl_destroy(&t);
    mesh_tok_destroy(&tok);
    mesh_gguf_close(&g);
}

static void test_errors(void **state) {
    (void)state;
    mesh_synth_params_t p = {0};
    p.shape = *mesh_synth_find_preset("tiny");
    p.ftype = "q9_9";
    p.out_path = "/nonexistent-dir/x.gguf";
    p.n_threads = 1;
    p.quiet = true;
    char err[256] = "";
    assert_int_equal(mesh_synth_write(&p, err, sizeof err), MESH_EINVAL);
    assert_non_null(strstr(err, "unknown file type 'q9_9'"));
    p.ftype = "q8_0";
    err[0] = 0;
    assert_true(mesh_synth_write(&p, err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent-dir/x.gguf"));
    p.shape.n_used = p.shape.n_expert + 1;
    err[0] = 0;
    assert_int_equal(mesh_synth_write(&p, err, sizeof err), MESH_EINVAL);
    assert_non_null(strstr(err, "inconsistent"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_type_mix),
        cmocka_unit_test(test_loads_and_runs),
        cmocka_unit_test(test_vocab_and_template),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
