// SPDX-License-Identifier: MIT
// GGUF reader and writer: known facts of the reference files, a writer round
// trip over every metadata type, a byte-exact rewrite of a llama.cpp-written
// file, and a table of hostile files (each must be refused with a code and a
// message, never a crash or an out-of-bounds read; run under ASan too).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gguf.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------- helpers

static const char *s_testdata(const char *rel, char *buf, size_t cap) {
    const char *d = getenv("MESH_TESTDATA");
    if (!d || !*d)
        fail_msg("MESH_TESTDATA is not set: the reference data (shared/testdata) is required");
    snprintf(buf, cap, "%s/%s", d, rel);
    struct stat st;
    if (stat(buf, &st))
        fail_msg("reference file missing: %s", buf);
    return buf;
}

static unsigned char *s_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

// A scratch path under the build tree's working directory (ctest runs us there).
static const char *s_tmp_path(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "test_gguf_%ld_%s", (long)getpid(), name);
    return buf;
}

static bool s_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// ---------------------------------------------------------------- reference files

static void s_check_bf16(mesh_gguf_t *g) {
    assert_int_equal(mesh_gguf_version(g), 3);
    assert_string_equal(mesh_gguf_arch(g), "deepseek2");
    assert_int_equal(mesh_gguf_n_tensors(g), 70);
    assert_int_equal(mesh_gguf_n_kv(g), 45);
    assert_int_equal(mesh_gguf_alignment(g), 32);

    uint32_t u;
    assert_int_equal(mesh_gguf_get_u32(g, "deepseek2.block_count", &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(mesh_gguf_get_arch_u32(g, "expert_count", &u), 0);
    assert_int_equal(u, 16);
    assert_int_equal(mesh_gguf_get_arch_u32(g, "attention.kv_lora_rank", &u), 0);
    assert_int_equal(u, 64);
    assert_int_equal(mesh_gguf_get_arch_u32(g, "expert_gating_func", &u), 0);
    assert_int_equal(u, 2);
    uint64_t u64;
    int64_t i64;
    assert_int_equal(mesh_gguf_get_u64(g, "deepseek2.vocab_size", &u64), 0);
    assert_int_equal(u64, 2022);
    assert_int_equal(mesh_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &i64), 0);
    assert_int_equal(i64, 2002);
    float f;
    assert_int_equal(mesh_gguf_get_arch_f32(g, "rope.freq_base", &f), 0);
    assert_true(f == 1e6f);
    assert_int_equal(mesh_gguf_get_arch_f32(g, "expert_weights_scale", &f), 0);
    assert_true(f == 1.8f);
    bool b = false;
    assert_int_equal(mesh_gguf_get_arch_bool(g, "expert_weights_norm", &b), 0);
    assert_true(b);

    const char *s;
    size_t len;
    assert_int_equal(mesh_gguf_get_str(g, "tokenizer.ggml.model", &s, &len), 0);
    assert_string_equal(s, "gpt2");
    assert_int_equal(len, 4);
    assert_int_equal(mesh_gguf_get_str(g, "tokenizer.ggml.pre", &s, NULL), 0);
    assert_string_equal(s, "glm4");
    assert_int_equal(mesh_gguf_get_str(g, "tokenizer.chat_template", &s, &len), 0);
    assert_true(len > 1000);
    assert_int_equal(strlen(s), len);
    assert_memory_equal(s, "[gMASK]<sop>", 12);

    mesh_gguf_type_t et;
    uint64_t n;
    assert_int_equal(mesh_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n), 0);
    assert_int_equal(et, MESH_GGUF_STRING);
    assert_int_equal(n, 2022);
    assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 0, &s, &len), 0);
    assert_string_equal(s, "!");
    assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 2021, &s, &len), 0);
    assert_true(len > 0);
    assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 2022, &s, &len),
                     MESH_ERANGE);
    assert_int_equal(mesh_gguf_get_arr_info(g, "tokenizer.ggml.merges", &et, &n), 0);
    assert_int_equal(n, 1744);
    assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.merges", 0, &s, &len), 0);
    assert_string_equal(s, "\xc4\xa0 \xc4\xa0"); // "Ġ Ġ"
    assert_int_equal(mesh_gguf_get_arr_info(g, "tokenizer.ggml.token_type", &et, &n), 0);
    assert_int_equal(et, MESH_GGUF_INT32);
    const void *data;
    assert_int_equal(mesh_gguf_get_arr_data(g, "tokenizer.ggml.token_type", &data), 0);
    assert_int_equal(((const int32_t *)data)[0], 1);

    // Wrong types and absent keys.
    assert_int_equal(mesh_gguf_get_u32(g, "general.architecture", &u), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_f32(g, "deepseek2.block_count", &f), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_bool(g, "deepseek2.block_count", &b), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_str(g, "deepseek2.block_count", &s, NULL), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_arr_data(g, "tokenizer.ggml.tokens", &data), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.token_type", 0, &s, NULL),
                     MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_arr_info(g, "general.name", &et, &n), MESH_EFORMAT);
    assert_int_equal(mesh_gguf_get_u32(g, "no.such.key", &u), MESH_ENOENT);
    assert_int_equal(mesh_gguf_get_arch_u32(g, "no_such_suffix", &u), MESH_ENOENT);
    assert_int_equal(mesh_gguf_find_key(g, "general.architecture"), 0);
    assert_int_equal(mesh_gguf_find_key(g, "general.architectur"), -1);
    assert_string_equal(mesh_gguf_key_name(g, 5), "deepseek2.block_count");
    assert_int_equal(mesh_gguf_key_type(g, 5), MESH_GGUF_UINT32);

    const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 256);
    assert_int_equal(t->ne[2], 16);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->type, MESH_QT_BF16);
    assert_int_equal(t->n_elements, 64 * 256 * 16);
    assert_int_equal(t->n_bytes, 64 * 256 * 16 * 2);
    assert_null(mesh_gguf_find_tensor(g, "blk.1.ffn_down_exps"));
    t = mesh_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    assert_non_null(t);
    assert_int_equal(t->type, MESH_QT_F32);
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->ne[0], 256);

    // Every tensor lies inside the file, aligned, in table order, no overlap;
    // the lookup finds each one; the parameter count matches the model.
    uint64_t prev_end = 0, params = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        t = mesh_gguf_tensor(g, i);
        assert_non_null(t);
        assert_ptr_equal(mesh_gguf_find_tensor(g, t->name), t);
        assert_int_equal(t->offset % 32, 0);
        assert_true(t->offset >= prev_end);
        assert_true(t->offset + t->n_bytes <= mesh_gguf_file_size(g));
        prev_end = t->offset + t->n_bytes;
        params += t->n_elements;
    }
    assert_null(mesh_gguf_tensor(g, 70));
    assert_null(mesh_gguf_tensor(g, -1));
    assert_true(params > 4000000 && params < 5000000); // 8.78 MB of mostly bf16
    t = mesh_gguf_tensor(g, 0);
    assert_ptr_equal((const unsigned char *)t->data - t->offset,
                     (const unsigned char *)mesh_gguf_tensor(g, 69)->data -
                         mesh_gguf_tensor(g, 69)->offset);
}

static void test_real_bf16(void **state) {
    (void)state;
    char path[4096], err[256] = "";
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open(s_testdata("glm-tiny/tiny-glm.bf16.gguf", path, sizeof path), &g,
                            err, sizeof err);
    if (rc)
        fail_msg("open: %s (%s)", err, mesh_strerror(rc));
    s_check_bf16(g);
    mesh_gguf_close(&g);
    assert_null(g);
    mesh_gguf_close(&g); // safe on NULL

    // The same checks over a memory buffer, and the data pointers point into it.
    size_t len;
    unsigned char *buf = s_slurp(path, &len);
    assert_int_equal(mesh_gguf_open_memory(buf, len, &g, err, sizeof err), 0);
    s_check_bf16(g);
    const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(g, "output.weight");
    assert_ptr_equal(t->data, buf + t->offset);
    mesh_gguf_close(&g);
    free(buf);
}

static void test_real_quant(void **state) {
    (void)state;
    static const struct {
        const char *file, *tensor;
        uint32_t type, file_type;
    } cases[] = {
        {"glm-tiny/tiny-glm.q8_0.gguf", "blk.1.ffn_down_exps.weight", MESH_QT_Q8_0, 7},
        {"glm-tiny/tiny-glm.q4_k_m.gguf", "token_embd.weight", MESH_QT_Q4_K, 15},
        {"glm-tiny/tiny-glm.q4_k_m.gguf", "output.weight", MESH_QT_Q6_K, 15},
        {"glm-tiny/tiny-glm.q4_k_m.gguf", "blk.0.attn_k_b.weight", MESH_QT_Q5_0, 15},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[4096], err[256] = "";
        mesh_gguf_t *g = NULL;
        int rc = mesh_gguf_open(s_testdata(cases[c].file, path, sizeof path), &g, err,
                                sizeof err);
        if (rc)
            fail_msg("open %s: %s", cases[c].file, err);
        assert_string_equal(mesh_gguf_arch(g), "deepseek2");
        assert_int_equal(mesh_gguf_n_tensors(g), 70);
        uint32_t ft;
        assert_int_equal(mesh_gguf_get_u32(g, "general.file_type", &ft), 0);
        assert_int_equal(ft, cases[c].file_type);
        const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(g, cases[c].tensor);
        assert_non_null(t);
        assert_int_equal(t->type, cases[c].type);
        const mesh_qtype_traits_t *tr = mesh_qtype_traits(t->type);
        assert_int_equal(t->n_bytes, t->n_elements / tr->blck * tr->size);
        mesh_gguf_close(&g);
    }
}

// ---------------------------------------------------------------- writer

static void test_writer_roundtrip(void **state) {
    (void)state;
    char path[256], tmp[300];
    s_tmp_path("rt.gguf", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int variant = 0; variant < 2; variant++) {
        uint32_t align = variant ? 64 : 32;
        mesh_gguf_writer_t *w = mesh_gguf_writer_new();
        assert_non_null(w);
        assert_int_equal(mesh_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
        assert_int_equal(mesh_gguf_writer_set_u32(w, "llama.block_count", 7), 0);
        assert_int_equal(mesh_gguf_writer_set_i32(w, "t.i32", -123456), 0);
        assert_int_equal(mesh_gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull), 0);
        assert_int_equal(mesh_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.5f), 0);
        assert_int_equal(mesh_gguf_writer_set_bool(w, "llama.flag", true), 0);
        assert_int_equal(mesh_gguf_writer_set_str(w, "t.str", "first"), 0);
        assert_int_equal(mesh_gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo"), 0); // replaces
        if (variant)
            assert_int_equal(mesh_gguf_writer_set_u32(w, "general.alignment", align), 0);
        uint8_t a_u8[] = {0, 1, 255};
        int8_t a_i8[] = {-128, 0, 127};
        uint16_t a_u16[] = {0, 65535};
        int16_t a_i16[] = {-32768, 32767};
        uint32_t a_u32[] = {1, 2, 0xffffffffu};
        int32_t a_i32[] = {-1, 0, 1, INT32_MIN};
        float a_f32[] = {0.5f, -2.25f};
        uint8_t a_bool[] = {1, 0, 1};
        uint64_t a_u64[] = {UINT64_MAX, 0};
        int64_t a_i64[] = {INT64_MIN, INT64_MAX};
        double a_f64[] = {3.141592653589793, -1e300};
        struct {
            const char *key;
            mesh_gguf_type_t t;
            const void *d;
            uint64_t n, size;
        } arrs[] = {
            {"a.u8", MESH_GGUF_UINT8, a_u8, 3, 3},       {"a.i8", MESH_GGUF_INT8, a_i8, 3, 3},
            {"a.u16", MESH_GGUF_UINT16, a_u16, 2, 4},    {"a.i16", MESH_GGUF_INT16, a_i16, 2, 4},
            {"a.u32", MESH_GGUF_UINT32, a_u32, 3, 12},   {"a.i32", MESH_GGUF_INT32, a_i32, 4, 16},
            {"a.f32", MESH_GGUF_FLOAT32, a_f32, 2, 8},   {"a.bool", MESH_GGUF_BOOL, a_bool, 3, 3},
            {"a.u64", MESH_GGUF_UINT64, a_u64, 2, 16},   {"a.i64", MESH_GGUF_INT64, a_i64, 2, 16},
            {"a.f64", MESH_GGUF_FLOAT64, a_f64, 2, 16},  {"a.empty", MESH_GGUF_INT32, NULL, 0, 0},
        };
        for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++)
            assert_int_equal(mesh_gguf_writer_set_arr(w, arrs[i].key, arrs[i].t, arrs[i].d,
                                                      arrs[i].n),
                             0);
        const char *strs[] = {"a", "", "\xe4\xb8\xad\xe6\x96\x87", "with space"};
        assert_int_equal(mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, 4), 0);

        // Refusals that would make files llama.cpp (or we) cannot read.
        assert_int_equal(mesh_gguf_writer_set_str(w, "general.alignment", "32"), MESH_EINVAL);
        assert_int_equal(mesh_gguf_writer_set_u32(w, "general.architecture", 1), MESH_EINVAL);
        assert_int_equal(mesh_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", MESH_GGUF_UINT8,
                                                  a_u8, 3),
                         MESH_EINVAL);
        if (!variant)
            assert_int_equal(mesh_gguf_writer_set_u32(w, "general.alignment", 3), MESH_EINVAL);
        assert_int_equal(mesh_gguf_writer_set_arr(w, "x", MESH_GGUF_STRING, strs, 1),
                         MESH_EINVAL);
        assert_int_equal(mesh_gguf_writer_set_u32(w, "", 1), MESH_EINVAL);

        // Tensors: f32 [5,3], bf16 [64,2], q8_0 [32,2,2], one 4-d f16.
        uint64_t ne0[] = {5, 3}, ne1[] = {64, 2}, ne2[] = {32, 2, 2}, ne3[] = {2, 1, 3, 2};
        assert_int_equal(mesh_gguf_writer_add_tensor(w, "t.f32", MESH_QT_F32, 2, ne0), 0);
        assert_int_equal(mesh_gguf_writer_add_tensor(w, "t.bf16", MESH_QT_BF16, 2, ne1), 1);
        assert_int_equal(mesh_gguf_writer_add_tensor(w, "t.q8", MESH_QT_Q8_0, 3, ne2), 2);
        assert_int_equal(mesh_gguf_writer_add_tensor(w, "t.f16", MESH_QT_F16, 4, ne3), 3);
        assert_int_equal(mesh_gguf_writer_add_tensor(w, "t.f32", MESH_QT_F32, 2, ne0),
                         MESH_EEXISTS);
        assert_true(mesh_gguf_writer_add_tensor(w, "t.bad", 99, 2, ne0) < 0);
        uint64_t ne_bad[] = {33, 1};
        assert_true(mesh_gguf_writer_add_tensor(w, "t.bad", MESH_QT_Q8_0, 2, ne_bad) < 0);
        assert_true(mesh_gguf_writer_add_tensor(w, "t.bad", MESH_QT_F32, 0, ne0) < 0);
        char longname[80];
        memset(longname, 'x', 64);
        longname[64] = 0;
        assert_true(mesh_gguf_writer_add_tensor(w, longname, MESH_QT_F32, 2, ne0) < 0);

        size_t sizes[4] = {5 * 3 * 4, 64 * 2 * 2, 4 * 34, 12 * 2};
        unsigned char *data[4];
        for (int i = 0; i < 4; i++) {
            data[i] = malloc(sizes[i]);
            for (size_t k = 0; k < sizes[i]; k++)
                data[i][k] = (unsigned char)(k * 7 + (size_t)i * 31 + 1);
        }
        assert_int_equal(mesh_gguf_writer_write_data(w, 0, data[0], sizes[0]), MESH_ESTATE);
        assert_int_equal(mesh_gguf_writer_begin(w, path), 0);
        assert_true(s_exists(tmp));
        assert_int_equal(mesh_gguf_writer_set_u32(w, "late", 1), MESH_ESTATE);
        assert_int_equal(mesh_gguf_writer_write_data(w, 1, data[1], sizes[1]), MESH_ESTATE);
        assert_int_equal(mesh_gguf_writer_write_data(w, 0, data[0], sizes[0] - 1), MESH_EINVAL);
        for (int i = 0; i < 3; i++)
            assert_int_equal(mesh_gguf_writer_write_data(w, i, data[i], sizes[i]), 0);
        assert_int_equal(mesh_gguf_writer_finish(w), MESH_ESTATE); // one tensor missing
        assert_int_equal(mesh_gguf_writer_write_data(w, 3, data[3], sizes[3]), 0);
        assert_int_equal(mesh_gguf_writer_finish(w), 0);
        mesh_gguf_writer_destroy(&w);
        assert_null(w);
        assert_false(s_exists(tmp));

        char err[256] = "";
        mesh_gguf_t *g = NULL;
        int rc = mesh_gguf_open(path, &g, err, sizeof err);
        if (rc)
            fail_msg("reopen: %s", err);
        assert_int_equal(mesh_gguf_version(g), 3);
        assert_int_equal(mesh_gguf_alignment(g), align);
        assert_int_equal(mesh_gguf_n_kv(g), 7 + variant + 12 + 1);
        assert_int_equal(mesh_gguf_file_size(g) % align, 0);
        assert_string_equal(mesh_gguf_arch(g), "llama");
        uint32_t u;
        int64_t i64;
        uint64_t u64;
        float f;
        bool b;
        const char *s;
        size_t len;
        assert_int_equal(mesh_gguf_get_arch_u32(g, "block_count", &u), 0);
        assert_int_equal(u, 7);
        assert_int_equal(mesh_gguf_get_i64(g, "t.i32", &i64), 0);
        assert_int_equal(i64, -123456);
        assert_int_equal(mesh_gguf_get_u32(g, "t.i32", &u), MESH_EFORMAT); // negative
        assert_int_equal(mesh_gguf_get_u64(g, "t.u64", &u64), 0);
        assert_true(u64 == 0xfedcba9876543210ull);
        assert_int_equal(mesh_gguf_get_i64(g, "t.u64", &i64), MESH_EFORMAT); // too big
        assert_int_equal(mesh_gguf_get_u32(g, "t.u64", &u), MESH_EFORMAT);
        assert_int_equal(mesh_gguf_get_arch_f32(g, "rope.freq_base", &f), 0);
        assert_true(f == 10000.5f);
        assert_int_equal(mesh_gguf_get_arch_bool(g, "flag", &b), 0);
        assert_true(b);
        assert_int_equal(mesh_gguf_get_str(g, "t.str", &s, &len), 0);
        assert_string_equal(s, "h\xc3\xa9llo");
        assert_int_equal(len, 6);
        assert_int_equal(mesh_gguf_find_key(g, "t.str"), 6); // kept its position
        for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
            mesh_gguf_type_t et;
            uint64_t n;
            const void *d;
            assert_int_equal(mesh_gguf_get_arr_info(g, arrs[i].key, &et, &n), 0);
            assert_int_equal(et, arrs[i].t);
            assert_int_equal(n, arrs[i].n);
            assert_int_equal(mesh_gguf_get_arr_data(g, arrs[i].key, &d), 0);
            if (arrs[i].size)
                assert_memory_equal(d, arrs[i].d, arrs[i].size);
            assert_int_equal((uintptr_t)d % 8, 0); // aligned copy: callers may cast
        }
        for (uint64_t i = 0; i < 4; i++) {
            assert_int_equal(mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len), 0);
            assert_string_equal(s, strs[i]);
            assert_int_equal(len, strlen(strs[i]));
        }
        assert_int_equal(mesh_gguf_n_tensors(g), 4);
        const char *names[] = {"t.f32", "t.bf16", "t.q8", "t.f16"};
        uint32_t types[] = {MESH_QT_F32, MESH_QT_BF16, MESH_QT_Q8_0, MESH_QT_F16};
        const uint64_t *nes[] = {ne0, ne1, ne2, ne3};
        uint32_t nd[] = {2, 2, 3, 4};
        for (int i = 0; i < 4; i++) {
            const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
            assert_string_equal(t->name, names[i]);
            assert_int_equal(t->type, types[i]);
            assert_int_equal(t->n_dims, nd[i]);
            for (uint32_t d = 0; d < nd[i]; d++)
                assert_int_equal(t->ne[d], nes[i][d]);
            assert_int_equal(t->n_bytes, sizes[i]);
            assert_int_equal(t->offset % align, 0);
            assert_memory_equal(t->data, data[i], sizes[i]);
            free(data[i]);
        }

        // copy_kv of every key into a second file gives the same metadata.
        char path2[256];
        s_tmp_path("rt2.gguf", path2, sizeof path2);
        w = mesh_gguf_writer_new();
        for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++)
            assert_int_equal(mesh_gguf_writer_copy_kv(w, g, i), 0);
        assert_int_equal(mesh_gguf_writer_begin(w, path2), 0);
        assert_int_equal(mesh_gguf_writer_finish(w), 0);
        mesh_gguf_writer_destroy(&w);
        mesh_gguf_t *g2 = NULL;
        assert_int_equal(mesh_gguf_open(path2, &g2, err, sizeof err), 0);
        assert_int_equal(mesh_gguf_n_kv(g2), mesh_gguf_n_kv(g));
        assert_int_equal(mesh_gguf_n_tensors(g2), 0);
        for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++) {
            assert_string_equal(mesh_gguf_key_name(g2, i), mesh_gguf_key_name(g, i));
            assert_int_equal(mesh_gguf_key_type(g2, i), mesh_gguf_key_type(g, i));
        }
        assert_int_equal(mesh_gguf_get_str(g2, "t.str", &s, &len), 0);
        assert_string_equal(s, "h\xc3\xa9llo");
        mesh_gguf_close(&g2);
        unlink(path2);
        mesh_gguf_close(&g);
        unlink(path);
    }

    // A writer destroyed mid-write leaves neither the file nor the tmp file.
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    uint64_t ne[] = {8};
    assert_int_equal(mesh_gguf_writer_add_tensor(w, "x", MESH_QT_F32, 1, ne), 0);
    assert_int_equal(mesh_gguf_writer_begin(w, path), 0);
    assert_true(s_exists(tmp));
    mesh_gguf_writer_destroy(&w);
    assert_false(s_exists(tmp));
    assert_false(s_exists(path));
    // A directory that does not exist: a clean error, nothing left behind.
    w = mesh_gguf_writer_new();
    assert_true(mesh_gguf_writer_begin(w, "no/such/dir/x.gguf") < 0);
    assert_int_equal(mesh_gguf_writer_begin(w, path), 0); // may try again
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
    mesh_gguf_t *g = NULL;
    char err[256];
    assert_int_equal(mesh_gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(mesh_gguf_n_kv(g), 0);
    assert_int_equal(mesh_gguf_n_tensors(g), 0);
    assert_string_equal(mesh_gguf_arch(g), "");
    mesh_gguf_close(&g);
    unlink(path);
}

// Copying every key and tensor of a llama.cpp-written file through the writer
// gives the same bytes: the writer's layout is the standard one.
static void test_writer_rewrite_identical(void **state) {
    (void)state;
    char src[4096], err[256] = "", out[256];
    mesh_gguf_t *g = NULL;
    s_testdata("glm-tiny/tiny-glm.q4_k_m.gguf", src, sizeof src);
    assert_int_equal(mesh_gguf_open(src, &g, err, sizeof err), 0);
    s_tmp_path("copy.gguf", out, sizeof out);
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++)
        assert_int_equal(mesh_gguf_writer_copy_kv(w, g, i), 0);
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        assert_int_equal(mesh_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne), i);
    }
    assert_int_equal(mesh_gguf_writer_begin(w, out), 0);
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        assert_int_equal(mesh_gguf_writer_write_data(w, i, t->data, t->n_bytes), 0);
    }
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
    mesh_gguf_close(&g);
    size_t l1, l2;
    unsigned char *a = s_slurp(src, &l1), *b = s_slurp(out, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);
    unlink(out);
}

// ---------------------------------------------------------------- hostile files

// A tiny GGUF builder that can be told to get things wrong.
typedef struct {
    unsigned char *p;
    size_t len, cap;
} s_gb_t;

static void s_gb_put(s_gb_t *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void s_gb_u32(s_gb_t *b, uint32_t v) { s_gb_put(b, &v, 4); }
static void s_gb_u64(s_gb_t *b, uint64_t v) { s_gb_put(b, &v, 8); }
static void s_gb_str(s_gb_t *b, const char *s) {
    s_gb_u64(b, strlen(s));
    s_gb_put(b, s, strlen(s));
}
static void s_gb_pad(s_gb_t *b, size_t a) {
    while (b->len % a)
        s_gb_put(b, "", 1);
}

typedef enum {
    H_VALID,
    H_BAD_MAGIC,
    H_V1,
    H_V4,
    H_BIG_ENDIAN,
    H_HUGE_NT,
    H_HUGE_NKV,
    H_PAST_END,
    H_UNKNOWN_TYPE,
    H_DIMS_OVERFLOW,
    H_DIM_ZERO,
    H_NDIMS0,
    H_NDIMS5,
    H_DUP_TENSOR,
    H_DUP_KEY,
    H_ALIGN_STR,
    H_ALIGN_0,
    H_ALIGN_3,
    H_ARCH_U32,
    H_HUGE_STR,
    H_HUGE_KEYNAME,
    H_HUGE_ARRAY,
    H_ARRAY_BAD_ELEM,
    H_KV_BAD_TYPE,
    H_NEST_DEEP,
    H_ROW_NOT_BLOCK,
    H_MISALIGNED,
    H_NAME_NUL,
    H_TOKENS_U32,
    H_COUNT
} s_hv_t;

static size_t s_kv_end; // where the last s_build's metadata ended

// Builds a small valid file (or a hostile variant of it). *hdr_end gets the
// start of the data section; *data_end the end of the last tensor's data.
static void s_build(s_hv_t v, s_gb_t *b, size_t *hdr_end, size_t *data_end) {
    b->len = 0;
    uint32_t magic = 0x46554747u;
    if (v == H_BAD_MAGIC)
        magic = 0x46554748u;
    s_gb_u32(b, magic);
    uint32_t ver = v == H_V1 ? 1 : v == H_V4 ? 4 : v == H_BIG_ENDIAN ? 0x03000000u : 3;
    s_gb_u32(b, ver);
    uint64_t nt = v == H_DUP_TENSOR ? 3 : 2;
    uint64_t nkv = v == H_DUP_KEY ? 7 : 6;
    s_gb_u64(b, v == H_HUGE_NT ? (1ull << 60) : nt);
    s_gb_u64(b, v == H_HUGE_NKV ? (1ull << 40) : nkv);

    // kv 1: architecture
    s_gb_str(b, "general.architecture");
    if (v == H_ARCH_U32) {
        s_gb_u32(b, 4);
        s_gb_u32(b, 7);
    } else {
        s_gb_u32(b, 8);
        s_gb_str(b, "llama");
    }
    // kv 2: alignment 64
    s_gb_str(b, "general.alignment");
    if (v == H_ALIGN_STR) {
        s_gb_u32(b, 8);
        s_gb_str(b, "64");
    } else {
        s_gb_u32(b, 4);
        s_gb_u32(b, v == H_ALIGN_0 ? 0 : v == H_ALIGN_3 ? 3 : 64);
    }
    // kv 3: string array
    if (v == H_HUGE_KEYNAME) {
        s_gb_u64(b, 1ull << 62);
        s_gb_put(b, "x", 1);
    } else {
        s_gb_str(b, "tokenizer.ggml.tokens");
    }
    s_gb_u32(b, 9);
    if (v == H_TOKENS_U32) {
        s_gb_u32(b, 4);
        s_gb_u64(b, 2);
        s_gb_u32(b, 1);
        s_gb_u32(b, 2);
    } else {
        s_gb_u32(b, v == H_ARRAY_BAD_ELEM ? 13 : 8);
        s_gb_u64(b, v == H_HUGE_ARRAY ? (1ull << 61) : 3);
        s_gb_str(b, "a");
        s_gb_str(b, "");
        s_gb_str(b, "ccc");
    }
    // kv 4: a string value
    s_gb_str(b, "general.name");
    s_gb_u32(b, v == H_KV_BAD_TYPE ? 13 : 8);
    if (v == H_HUGE_STR) {
        s_gb_u64(b, 1ull << 40);
        s_gb_put(b, "abc", 3);
    } else {
        s_gb_str(b, "tiny");
    }
    // kv 5: array of arrays of f32 (nested 2 deep, or 9 deep)
    s_gb_str(b, "x.nested");
    s_gb_u32(b, 9);
    int depth = v == H_NEST_DEEP ? 9 : 1;
    for (int d = 0; d < depth; d++) {
        s_gb_u32(b, 9);
        s_gb_u64(b, 1);
    }
    s_gb_u32(b, 6);
    s_gb_u64(b, 2);
    float fl[2] = {1.5f, 2.5f};
    s_gb_put(b, fl, 8);
    // kv 6: u32
    s_gb_str(b, "llama.block_count");
    s_gb_u32(b, 4);
    s_gb_u32(b, 2);
    if (v == H_DUP_KEY) {
        s_gb_str(b, "general.name");
        s_gb_u32(b, 8);
        s_gb_str(b, "again");
    }

    s_kv_end = b->len;
    // tensor 0: f32 [4, 2] at 0 (32 bytes; padded to 64)
    s_gb_str(b, v == H_NAME_NUL ? "" : "w0");
    if (v == H_NAME_NUL) { // replace the empty name with one holding a NUL
        b->len -= 8;
        s_gb_u64(b, 3);
        s_gb_put(b, "a\0b", 3);
    }
    uint32_t nd = v == H_NDIMS0 ? 0 : v == H_NDIMS5 ? 5 : 2;
    s_gb_u32(b, nd);
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne = d == 0 ? 4 : 2;
        if (v == H_DIMS_OVERFLOW)
            ne = 1ull << 32;
        if (v == H_DIM_ZERO && d == 1)
            ne = 0;
        s_gb_u64(b, ne);
    }
    s_gb_u32(b, v == H_UNKNOWN_TYPE ? 99 : 0);
    s_gb_u64(b, v == H_MISALIGNED ? 8 : 0);
    // tensor 1: q8_0 [64, 1] at 64 (68 bytes)
    s_gb_str(b, "w1");
    s_gb_u32(b, 2);
    s_gb_u64(b, v == H_ROW_NOT_BLOCK ? 48 : 64);
    s_gb_u64(b, 1);
    s_gb_u32(b, 8);
    s_gb_u64(b, v == H_PAST_END ? 6400 : 64);
    if (v == H_DUP_TENSOR) {
        s_gb_str(b, "w1");
        s_gb_u32(b, 1);
        s_gb_u64(b, 4);
        s_gb_u32(b, 0);
        s_gb_u64(b, 192);
    }
    s_gb_pad(b, 64);
    *hdr_end = b->len;
    unsigned char blob[256];
    for (int i = 0; i < 256; i++)
        blob[i] = (unsigned char)i;
    s_gb_put(b, blob, 64);  // w0 (32 bytes) + padding
    s_gb_put(b, blob, 68);  // w1
    *data_end = b->len;
    if (v == H_DUP_TENSOR) {
        s_gb_pad(b, 64);
        s_gb_put(b, blob, 64);
        *data_end = b->len;
    }
}

// Opens the first n bytes from an exact-size heap copy, so ASan sees any over-read.
static int s_open_prefix(const unsigned char *p, size_t n, char *err, size_t cap) {
    unsigned char *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    mesh_gguf_t *g = NULL;
    err[0] = 0;
    int rc = mesh_gguf_open_memory(c, n, &g, err, cap);
    if (!rc) {
        assert_non_null(g);
        mesh_gguf_close(&g);
    } else {
        assert_null(g);
    }
    free(c);
    return rc;
}

static void test_valid_builder_file(void **state) {
    (void)state;
    s_gb_t b = {0};
    size_t he, de;
    s_build(H_VALID, &b, &he, &de);
    char err[256];
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open_memory(b.p, b.len, &g, err, sizeof err);
    if (rc)
        fail_msg("valid builder file refused: %s", err);
    assert_int_equal(mesh_gguf_alignment(g), 64);
    assert_int_equal(mesh_gguf_n_kv(g), 6);
    mesh_gguf_type_t et;
    uint64_t n;
    assert_int_equal(mesh_gguf_get_arr_info(g, "x.nested", &et, &n), 0);
    assert_int_equal(et, MESH_GGUF_ARRAY);
    assert_int_equal(n, 1);
    const void *d;
    assert_int_equal(mesh_gguf_get_arr_data(g, "x.nested", &d), MESH_EFORMAT);
    const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(g, "w1");
    assert_non_null(t);
    assert_int_equal(t->offset, he + 64);
    assert_int_equal(t->n_bytes, 68);

    // The nested array survives copy_kv into a writer and back.
    char path[256];
    s_tmp_path("nested.gguf", path, sizeof path);
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++)
        assert_int_equal(mesh_gguf_writer_copy_kv(w, g, i), 0);
    assert_int_equal(mesh_gguf_writer_begin(w, path), 0);
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
    mesh_gguf_t *g2 = NULL;
    assert_int_equal(mesh_gguf_open(path, &g2, err, sizeof err), 0);
    assert_int_equal(mesh_gguf_alignment(g2), 64);
    assert_int_equal(mesh_gguf_get_arr_info(g2, "x.nested", &et, &n), 0);
    assert_int_equal(et, MESH_GGUF_ARRAY);
    // The key bytes are identical: nested values are copied verbatim.
    size_t l2;
    unsigned char *b2 = s_slurp(path, &l2);
    assert_true(l2 >= s_kv_end);
    assert_memory_equal(b.p + 16, b2 + 16, s_kv_end - 16);
    free(b2);
    mesh_gguf_close(&g2);
    unlink(path);
    mesh_gguf_close(&g);

    // GGUF v2 has the same little-endian layout: accepted, version reported.
    uint32_t v2 = 2;
    memcpy(b.p + 4, &v2, 4);
    assert_int_equal(mesh_gguf_open_memory(b.p, b.len, &g, err, sizeof err), 0);
    assert_int_equal(mesh_gguf_version(g), 2);
    mesh_gguf_close(&g);
    free(b.p);
}

static void test_hostile_table(void **state) {
    (void)state;
    static const struct {
        s_hv_t v;
        int rc;
        const char *needle; // must appear in the message
    } cases[] = {
        {H_BAD_MAGIC, MESH_EFORMAT, "magic"},
        {H_V1, MESH_EUNSUPPORTED, "version 1"},
        {H_V4, MESH_EUNSUPPORTED, "version 4"},
        {H_BIG_ENDIAN, MESH_EUNSUPPORTED, "big-endian"},
        {H_HUGE_NT, MESH_EFORMAT, "tensor count"},
        {H_HUGE_NKV, MESH_EFORMAT, "key count"},
        {H_PAST_END, MESH_ETRUNCATED, "tensor 'w1' data ends past the end"},
        {H_UNKNOWN_TYPE, MESH_EFORMAT, "tensor 'w0' has unknown type 99"},
        {H_DIMS_OVERFLOW, MESH_EFORMAT, "tensor 'w0' has dimension"},
        {H_DIM_ZERO, MESH_EFORMAT, "dimension 1 = 0"},
        {H_NDIMS0, MESH_EFORMAT, "has 0 dimensions"},
        {H_NDIMS5, MESH_EFORMAT, "has 5 dimensions"},
        {H_DUP_TENSOR, MESH_EFORMAT, "duplicate tensor 'w1'"},
        {H_DUP_KEY, MESH_EFORMAT, "duplicate key 'general.name'"},
        {H_ALIGN_STR, MESH_EFORMAT, "key 'general.alignment' has type string, expected uint32"},
        {H_ALIGN_0, MESH_EFORMAT, "power of two"},
        {H_ALIGN_3, MESH_EFORMAT, "power of two"},
        {H_ARCH_U32, MESH_EFORMAT, "key 'general.architecture' has type uint32, expected string"},
        {H_HUGE_STR, MESH_EFORMAT, "implausibly large"},
        {H_HUGE_KEYNAME, MESH_EFORMAT, "key name"},
        {H_HUGE_ARRAY, MESH_EFORMAT, "array length"},
        {H_ARRAY_BAD_ELEM, MESH_EFORMAT, "unknown element type 13"},
        {H_KV_BAD_TYPE, MESH_EFORMAT, "key 'general.name' has unknown type 13"},
        {H_NEST_DEEP, MESH_EFORMAT, "nested deeper"},
        {H_ROW_NOT_BLOCK, MESH_EFORMAT, "not a multiple of q8_0's block of 32"},
        {H_MISALIGNED, MESH_EFORMAT, "not a multiple of the alignment 64"},
        {H_NAME_NUL, MESH_EFORMAT, "NUL"},
        {H_TOKENS_U32, MESH_EFORMAT, "array of uint32, expected an array of string"},
    };
    assert_int_equal(sizeof cases / sizeof cases[0], H_COUNT - 1); // every variant tested
    s_gb_t b = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t he, de;
        s_build(cases[c].v, &b, &he, &de);
        char err[256];
        int rc = s_open_prefix(b.p, b.len, err, sizeof err);
        if (rc != cases[c].rc || !strstr(err, cases[c].needle))
            fail_msg("case %zu: got %s '%s', expected %s with '%s'", c, mesh_errname(rc), err,
                     mesh_errname(cases[c].rc), cases[c].needle);
    }
    free(b.p);
}

// Every cut point of the valid file (header, tensor table, padding, data)
// must be refused as truncated, with a message.
static void test_truncation_everywhere(void **state) {
    (void)state;
    s_gb_t b = {0};
    size_t he, de;
    s_build(H_VALID, &b, &he, &de);
    char err[256];
    assert_int_equal(s_open_prefix(b.p, b.len, err, sizeof err), 0);
    for (size_t cut = 0; cut < de; cut++) {
        int rc = s_open_prefix(b.p, cut, err, sizeof err);
        if (rc != MESH_ETRUNCATED || !err[0])
            fail_msg("cut at %zu of %zu: got %s '%s'", cut, de, mesh_errname(rc), err);
    }
    // A cut in the tensor table names the tensor.
    s_open_prefix(b.p, he - 20, err, sizeof err);
    assert_non_null(strstr(err, "file truncated in tensor table (tensor 2 of 2)"));
    free(b.p);

    // The real file, cut at a sample of points in its header and its data.
    char path[4096];
    size_t len;
    unsigned char *real = s_slurp(s_testdata("glm-tiny/tiny-glm.q4_k_m.gguf", path, sizeof path),
                                  &len);
    mesh_gguf_t *g = NULL;
    assert_int_equal(mesh_gguf_open_memory(real, len, &g, err, sizeof err), 0);
    size_t data0 = (size_t)mesh_gguf_tensor(g, 0)->offset;
    mesh_gguf_close(&g);
    for (size_t cut = 0; cut < data0; cut += cut < 256 ? 1 : 97) {
        int rc = s_open_prefix(real, cut, err, sizeof err);
        if (rc != MESH_ETRUNCATED || !err[0])
            fail_msg("real file cut at %zu: got %s '%s'", cut, mesh_errname(rc), err);
    }
    for (size_t cut = data0; cut < len - 16; cut += (len - data0) / 37)
        assert_int_equal(s_open_prefix(real, cut, err, sizeof err), MESH_ETRUNCATED);
    free(real);
}

static void test_open_errors(void **state) {
    (void)state;
    char err[256] = "";
    mesh_gguf_t *g = NULL;
    assert_int_equal(mesh_gguf_open("no/such/file.gguf", &g, err, sizeof err), MESH_ENOENT);
    assert_null(g);
    assert_non_null(strstr(err, "no/such/file.gguf"));
    assert_int_equal(mesh_gguf_open(".", &g, err, sizeof err), MESH_EINVAL);
    char path[256];
    s_tmp_path("empty.gguf", path, sizeof path);
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(mesh_gguf_open(path, &g, err, sizeof err), MESH_ETRUNCATED);
    assert_non_null(strstr(err, "empty"));
    unlink(path);
    assert_int_equal(mesh_gguf_open_memory(NULL, 0, &g, err, sizeof err), MESH_ETRUNCATED);
    // A NULL or zero-sized error buffer is allowed.
    assert_int_equal(mesh_gguf_open_memory("GGUF", 4, &g, NULL, 0), MESH_ETRUNCATED);
}

// ---------------------------------------------------------------- meshrun info

// A strict JSON checker (RFC 8259 grammar, UTF-8 not re-validated): returns
// the end of one value, or NULL when the text is not JSON.
static const char *s_json_value(const char *p, int depth);
static const char *s_json_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}
static const char *s_json_string(const char *p) {
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL; // raw control character (or the end of the text)
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 5;
                continue;
            }
            if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
        p++;
    }
    return p + 1;
}
static const char *s_json_number(const char *p) {
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p;
}
static const char *s_json_value(const char *p, int depth) {
    if (depth > 64)
        return NULL;
    p = s_json_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = s_json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = s_json_string(s_json_ws(p))))
                    return NULL;
                p = s_json_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = s_json_value(p, depth + 1)))
                return NULL;
            p = s_json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return s_json_string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return s_json_number(p);
}

static void test_json_checker(void **state) {
    (void)state; // the checker itself must be able to say no
    const char *bad[] = {"{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"\x01\"", "01", "1.",
                         "nan", "[\"\\x\"]", "{\"a\":1}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *e = s_json_value(bad[i], 0);
        assert_true(!e || *s_json_ws(e));
    }
    const char *e = s_json_value("{\"a\":[1,-2.5e3,true,null,\"\\u00e9\\n\"],\"b\":{}}", 0);
    assert_non_null(e);
    assert_int_equal(*e, 0);
}

// Runs meshrun with args; returns its exit status and its stdout (caller frees).
static int s_meshrun(const char *args, char **out, char *err_line, size_t cap) {
    const char *bin = getenv("MESH_BIN_DIR");
    if (!bin || !*bin)
        fail_msg("MESH_BIN_DIR is not set");
    char errf[256], cmd[8192];
    s_tmp_path("stderr.txt", errf, sizeof errf);
    snprintf(cmd, sizeof cmd, "'%s/meshrun' %s 2>'%s'", bin, args, errf);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0, c = 1 << 16;
    char *buf = malloc(c);
    size_t k;
    while ((k = fread(buf + n, 1, c - n - 1, p)) > 0) {
        n += k;
        if (c - n < 4096)
            buf = realloc(buf, c *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    FILE *f = fopen(errf, "r");
    err_line[0] = 0;
    if (f) {
        size_t m = fread(err_line, 1, cap - 1, f);
        err_line[m] = 0;
        fclose(f);
    }
    unlink(errf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_meshrun_info(void **state) {
    (void)state;
    char path[4096], args[8192], err[4096];
    char *out;
    s_testdata("glm-tiny/tiny-glm.bf16.gguf", path, sizeof path);

    snprintf(args, sizeof args, "info --model '%s' --json --tensors", path);
    assert_int_equal(s_meshrun(args, &out, err, sizeof err), 0);
    const char *end = s_json_value(out, 0);
    if (!end || *s_json_ws(end))
        fail_msg("meshrun info --json is not one JSON object: %.200s", out);
    static const char *const facts[] = {
        "\"architecture\":\"deepseek2\"",
        "\"gguf_version\":3",
        "\"n_tensors\":70",
        "\"block_count\":4",
        "\"expert_weights_norm\":true",
        "\"vocab_size\":2022",
        "\"merges\":1744",
        "\"bos_token_id\":2002",
        "\"eot_token_id\":2007",
        "\"chat_template\":true",
        "{\"name\":\"blk.1.ffn_down_exps.weight\",\"type\":\"bf16\",\"shape\":[64,256,16],"
        "\"n_elements\":262144,\"bytes\":524288,",
    };
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        if (!strstr(out, facts[i]))
            fail_msg("meshrun info --json lacks %s", facts[i]);
    assert_null(strstr(out, "{%- if tools")); // the template's text is never printed
    free(out);

    snprintf(args, sizeof args, "info -m '%s' --tensors", path);
    assert_int_equal(s_meshrun(args, &out, err, sizeof err), 0);
    assert_non_null(strstr(out, "architecture:  deepseek2"));
    assert_non_null(strstr(out, "chat template: present"));
    assert_non_null(strstr(out, "blk.1.ffn_down_exps.weight"));
    free(out);

    // Errors: one line on stderr, exit 1 (bad file) or 2 (usage).
    assert_int_equal(s_meshrun("info --model no/such.gguf", &out, err, sizeof err), 1);
    assert_non_null(strstr(err, "no/such.gguf"));
    char *nl = strchr(err, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], 0); // exactly one line
    free(out);
    char cut[256];
    s_tmp_path("cut.gguf", cut, sizeof cut);
    size_t len;
    unsigned char *b = s_slurp(path, &len);
    FILE *f = fopen(cut, "wb");
    fwrite(b, 1, 5000, f);
    fclose(f);
    free(b);
    snprintf(args, sizeof args, "info --model '%s' --json", cut);
    assert_int_equal(s_meshrun(args, &out, err, sizeof err), 1);
    assert_non_null(strstr(err, "truncated"));
    assert_string_equal(out, ""); // nothing half-printed
    free(out);
    unlink(cut);

    // Hostile strings (quotes, control bytes, invalid UTF-8) still give valid
    // JSON, and no raw control byte reaches a terminal in text mode.
    const char *weird = "a\"b\\c\x01\x1b[31m\n\xff\xc3(\xe2\x82\xac";
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    assert_int_equal(mesh_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(mesh_gguf_writer_set_str(w, "general.name", weird), 0);
    assert_int_equal(mesh_gguf_writer_set_str(w, "llama.weird\x7f\"", weird), 0);
    float fl[3] = {1.0f, NAN, -INFINITY}; // JSON has neither: must print null
    assert_int_equal(mesh_gguf_writer_set_arr(w, "llama.floats", MESH_GGUF_FLOAT32, fl, 3), 0);
    uint64_t ne[] = {32};
    assert_int_equal(mesh_gguf_writer_add_tensor(w, "t\"\x02", MESH_QT_F32, 1, ne), 0);
    assert_int_equal(mesh_gguf_writer_begin(w, cut), 0);
    float zeros[32] = {0};
    assert_int_equal(mesh_gguf_writer_write_data(w, 0, zeros, sizeof zeros), 0);
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
    snprintf(args, sizeof args, "info --model '%s' --json --tensors", cut);
    assert_int_equal(s_meshrun(args, &out, err, sizeof err), 0);
    end = s_json_value(out, 0);
    if (!end || *s_json_ws(end))
        fail_msg("hostile strings broke the JSON: %s", out);
    assert_non_null(strstr(out, "\"floats\":[1,null,null]"));
    free(out);
    snprintf(args, sizeof args, "info --model '%s' --tensors", cut);
    assert_int_equal(s_meshrun(args, &out, err, sizeof err), 0);
    for (const char *q = out; *q; q++)
        assert_true(*q == '\n' || (unsigned char)*q >= 0x20);
    free(out);
    unlink(cut);

    assert_int_equal(s_meshrun("info", &out, err, sizeof err), 2);
    free(out);
    assert_int_equal(s_meshrun("info --model", &out, err, sizeof err), 2);
    free(out);
    assert_int_equal(s_meshrun("info --frobnicate", &out, err, sizeof err), 2);
    free(out);
    assert_int_equal(s_meshrun("info --help", &out, err, sizeof err), 0);
    assert_non_null(strstr(out, "--json"));
    free(out);
}

static void s_quiet(mesh_log_level_t level, const char *line, void *user) {
    (void)level;
    (void)line;
    (void)user;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_bf16),
        cmocka_unit_test(test_real_quant),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_rewrite_identical),
        cmocka_unit_test(test_valid_builder_file),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_json_checker),
        cmocka_unit_test(test_meshrun_info),
    };
    if (!getenv("MESH_TEST_VERBOSE"))
        mesh_log_set_sink(s_quiet, NULL); // the writer logs each refusal we provoke
    return cmocka_run_group_tests(tests, NULL, NULL);
}
