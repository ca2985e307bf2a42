// SPDX-License-Identifier: MIT
// Writes small, valid GGUF seeds for fuzz_gguf into a corpus directory.
//
// The reference files are megabytes, and a fuzzer cuts its inputs to a few
// tens of kilobytes, which leaves only invalid (cut) files. These seeds are
// complete files of a few kilobytes, so mutations also reach the paths that
// run after a successful open. Made with our writer at test time, never kept
// in git.
//
// usage: gguf_seeds OUTDIR [REFERENCE.gguf ...]
#include "gguf.h"
#include "mesh_err.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// All keys of src except long arrays (cut to their first elements by
// rewriting them), plus its first n_t tensors.
static int s_from_reference(const char *src, const char *out, int64_t n_t) {
    char err[256];
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open(src, &g, err, sizeof err);
    if (rc) {
        fprintf(stderr, "gguf_seeds: %s: %s\n", src, err);
        return rc;
    }
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    for (int64_t i = 0; i < mesh_gguf_n_kv(g) && !rc; i++) {
        const char *k = mesh_gguf_key_name(g, i);
        mesh_gguf_type_t et;
        uint64_t n;
        if (mesh_gguf_key_type(g, i) == MESH_GGUF_ARRAY &&
            !mesh_gguf_get_arr_info(g, k, &et, &n) && n > 16) {
            if (et == MESH_GGUF_STRING) {
                const char *strs[16];
                for (uint64_t j = 0; j < 16; j++)
                    mesh_gguf_get_arr_str(g, k, j, &strs[j], NULL);
                rc = mesh_gguf_writer_set_arr_str(w, k, strs, 16);
                continue;
            }
            const void *d;
            if (!mesh_gguf_get_arr_data(g, k, &d)) {
                rc = mesh_gguf_writer_set_arr(w, k, et, d, 16);
                continue;
            }
        }
        rc = mesh_gguf_writer_copy_kv(w, g, i);
    }
    // The smallest tensors make the smallest seed.
    int64_t picked = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g) && picked < n_t && !rc; i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        if (t->n_bytes > 4096)
            continue;
        int64_t idx = mesh_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
        rc = idx < 0 ? (int)idx : 0;
        picked++;
    }
    if (!rc)
        rc = mesh_gguf_writer_begin(w, out);
    picked = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g) && picked < n_t && !rc; i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        if (t->n_bytes > 4096)
            continue;
        rc = mesh_gguf_writer_write_data(w, picked++, t->data, t->n_bytes);
    }
    if (!rc)
        rc = mesh_gguf_writer_finish(w);
    mesh_gguf_writer_destroy(&w);
    mesh_gguf_close(&g);
    if (rc)
        fprintf(stderr, "gguf_seeds: writing %s: %s\n", out, mesh_strerror(rc));
    return rc;
}

// A minimal file with one key of every type and one tensor of a few types.
static int s_minimal(const char *out) {
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    int rc = 0;
    rc |= mesh_gguf_writer_set_str(w, "general.architecture", "llama");
    rc |= mesh_gguf_writer_set_u32(w, "general.alignment", 64);
    rc |= mesh_gguf_writer_set_u32(w, "llama.block_count", 1);
    rc |= mesh_gguf_writer_set_i32(w, "x.i32", -5);
    rc |= mesh_gguf_writer_set_u64(w, "x.u64", 1ull << 40);
    rc |= mesh_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    rc |= mesh_gguf_writer_set_bool(w, "x.bool", true);
    const char *toks[] = {"a", "b", "ab"};
    rc |= mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    float sc[] = {0.f, -1.f, -2.f};
    rc |= mesh_gguf_writer_set_arr(w, "tokenizer.ggml.scores", MESH_GGUF_FLOAT32, sc, 3);
    uint64_t ne0[] = {8}, ne1[] = {32, 2}, ne2[] = {256, 1};
    if (rc || mesh_gguf_writer_add_tensor(w, "a", MESH_QT_F32, 1, ne0) < 0 ||
        mesh_gguf_writer_add_tensor(w, "b", MESH_QT_Q8_0, 2, ne1) < 0 ||
        mesh_gguf_writer_add_tensor(w, "c", MESH_QT_Q4_K, 2, ne2) < 0)
        rc = MESH_EINVAL;
    unsigned char data[512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 13);
    if (!rc)
        rc = mesh_gguf_writer_begin(w, out);
    if (!rc)
        rc = mesh_gguf_writer_write_data(w, 0, data, 32);
    if (!rc)
        rc = mesh_gguf_writer_write_data(w, 1, data, 68);
    if (!rc)
        rc = mesh_gguf_writer_write_data(w, 2, data, 144);
    if (!rc)
        rc = mesh_gguf_writer_finish(w);
    mesh_gguf_writer_destroy(&w);
    if (rc)
        fprintf(stderr, "gguf_seeds: writing %s: %s\n", out, mesh_strerror(rc));
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: gguf_seeds OUTDIR [REFERENCE.gguf ...]\n");
        return argc < 2 ? 2 : 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-minimal.gguf", argv[1]);
    if (s_minimal(path))
        return 1;
    for (int i = 2; i < argc; i++) {
        snprintf(path, sizeof path, "%s/seed-ref%d.gguf", argv[1], i - 1);
        if (s_from_reference(argv[i], path, 6))
            return 1;
    }
    return 0;
}
