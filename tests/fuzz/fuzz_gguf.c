// SPDX-License-Identifier: MIT
// Fuzz target: the GGUF reader over arbitrary bytes.
//
// Every input must either be refused (negative code, NULL reader, non-empty
// message) or open into a reader whose every name, string, array and tensor
// range can be walked without leaving the input: we touch the first and last
// byte of each, so ASan flags any range the reader got wrong. Accepted inputs
// also go through the writer's copy_kv (serialising every validated value,
// nested arrays included) without touching the disk.
#include "gguf.h"
#include "mesh_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned s_sink; // keeps the touches from being optimised away

static void s_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_gguf: invariant broken: %s\n", what);
        abort();
    }
}

static void s_touch(const void *p, size_t n) {
    if (!n)
        return;
    const volatile unsigned char *b = p;
    s_sink += b[0] + b[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    err[0] = 0;
    mesh_gguf_t *g = (mesh_gguf_t *)(uintptr_t)1; // must be reset to NULL on failure
    int rc = mesh_gguf_open_memory(data, size, &g, err, sizeof err);
    if (rc) {
        s_check(rc < 0, "error codes are negative");
        s_check(g == NULL, "*out is NULL on failure");
        s_check(err[0] != 0, "every refusal has a message");
        s_check(strlen(err) < sizeof err, "message is terminated");
        return 0;
    }
    s_check(g != NULL, "reader on success");
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++) {
        const char *k = mesh_gguf_key_name(g, i);
        s_check(k && *k, "key name");
        s_check(mesh_gguf_find_key(g, k) == i, "key lookup finds the key");
        mesh_gguf_type_t t = mesh_gguf_key_type(g, i);
        s_check(t < MESH_GGUF_TYPE_COUNT, "key type");
        uint64_t u;
        int64_t s;
        float f;
        bool b;
        const char *str;
        size_t len;
        (void)mesh_gguf_get_u64(g, k, &u);
        (void)mesh_gguf_get_i64(g, k, &s);
        (void)mesh_gguf_get_f32(g, k, &f);
        (void)mesh_gguf_get_bool(g, k, &b);
        if (!mesh_gguf_get_str(g, k, &str, &len)) {
            s_touch(str, len + 1);
            s_check(str[len] == 0, "strings are NUL-terminated");
        }
        mesh_gguf_type_t et;
        uint64_t n;
        if (!mesh_gguf_get_arr_info(g, k, &et, &n)) {
            const void *d;
            if (!mesh_gguf_get_arr_data(g, k, &d)) {
                static const uint8_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
                s_touch(d, (size_t)n * es[et]);
            }
            for (uint64_t j = 0; j < n && et == MESH_GGUF_STRING; j++) {
                s_check(!mesh_gguf_get_arr_str(g, k, j, &str, &len), "array string");
                s_touch(str, len + 1);
            }
            if (et == MESH_GGUF_STRING)
                s_check(mesh_gguf_get_arr_str(g, k, n, &str, &len) == MESH_ERANGE, "range");
        }
        s_check(mesh_gguf_writer_copy_kv(w, g, i) == 0, "copy_kv of a validated key");
    }
    uint64_t fsize = mesh_gguf_file_size(g);
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        s_check(t && t->name && *t->name, "tensor name");
        s_check(mesh_gguf_find_tensor(g, t->name) == t, "tensor lookup");
        s_check(t->n_dims >= 1 && t->n_dims <= MESH_GGUF_MAX_DIMS, "n_dims");
        s_check(t->offset + t->n_bytes <= fsize && t->offset <= fsize, "data inside");
        s_check((const uint8_t *)t->data == data + t->offset, "data pointer");
        s_check(t->offset % mesh_gguf_alignment(g) == 0, "aligned");
        s_touch(t->data, (size_t)t->n_bytes);
    }
    (void)mesh_gguf_arch(g);
    mesh_gguf_writer_destroy(&w);
    mesh_gguf_close(&g);
    return 0;
}
