// SPDX-License-Identifier: MIT
// GGUF conversion: picks each tensor's type from the file type's mix, then
// streams the file tensor by tensor (dequantize a row to f32, quantize it to
// the target), rows split over worker threads. Tensors already in their
// target type are copied byte for byte (no second rounding).
#include "quantize.h"

#include "cpu_features.h"
#include "gguf.h"
#include "mesh_err.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { S_MIX_PLAIN, S_MIX_K_S, S_MIX_K_M, S_MIX_FLOAT };

static const mesh_ftype_t s_ftypes[] = {
    {"f32", MESH_QT_F32, 0, S_MIX_FLOAT},     {"f16", MESH_QT_F16, 1, S_MIX_FLOAT},
    {"bf16", MESH_QT_BF16, 32, S_MIX_FLOAT},  {"q8_0", MESH_QT_Q8_0, 7, S_MIX_PLAIN},
    {"q4_0", MESH_QT_Q4_0, 2, S_MIX_PLAIN},   {"q4_1", MESH_QT_Q4_1, 3, S_MIX_PLAIN},
    {"q5_0", MESH_QT_Q5_0, 8, S_MIX_PLAIN},   {"q5_1", MESH_QT_Q5_1, 9, S_MIX_PLAIN},
    {"q2_k", MESH_QT_Q2_K, 10, S_MIX_PLAIN},  {"q3_k", MESH_QT_Q3_K, 12, S_MIX_K_M},
    {"q3_k_m", MESH_QT_Q3_K, 12, S_MIX_K_M},  {"q4_k", MESH_QT_Q4_K, 14, S_MIX_K_S},
    {"q4_k_s", MESH_QT_Q4_K, 14, S_MIX_K_S},  {"q4_k_m", MESH_QT_Q4_K, 15, S_MIX_K_M},
    {"q5_k", MESH_QT_Q5_K, 16, S_MIX_K_S},    {"q5_k_s", MESH_QT_Q5_K, 16, S_MIX_K_S},
    {"q5_k_m", MESH_QT_Q5_K, 17, S_MIX_K_M},  {"q6_k", MESH_QT_Q6_K, 18, S_MIX_PLAIN},
};

const mesh_ftype_t *mesh_ftype_find(const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_ftypes / sizeof s_ftypes[0]; i++)
        if (!strcasecmp(s_ftypes[i].name, name))
            return &s_ftypes[i];
    return NULL;
}

const char *mesh_ftype_names(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q3_k_m, q4_k, q4_k_s, "
           "q4_k_m, q5_k, q5_k_s, q5_k_m, q6_k";
}

static bool s_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

// Layer index from "blk.N.", or -1.
static int s_layer(const char *name) {
    if (strncmp(name, "blk.", 4))
        return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    return (end != name + 4 && *end == '.' && v >= 0 && v < 1000000) ? (int)v : -1;
}

// llama.cpp's "use more bits" layer pattern: the first and last eighth of the
// layers, and every third layer in between.
static bool s_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool s_is_float(uint32_t t) {
    return t == MESH_QT_F32 || t == MESH_QT_F16 || t == MESH_QT_BF16;
}

mesh_qtype_t mesh_ftype_tensor_type(const mesh_ftype_t *ft, const char *name, uint32_t n_dims,
                                    const uint64_t *ne, uint32_t n_layer, uint32_t src_type) {
    // Vectors, norms, biases and the MoE router: F32 (tiny, and the router's
    // scores decide which experts run: not worth any rounding).
    if (n_dims < 2 || strstr(name, "_norm") || strstr(name, "ffn_gate_inp") ||
        strstr(name, "exp_probs_b") || s_ends_with(name, ".bias"))
        return MESH_QT_F32;
    mesh_qtype_t t = ft->base;
    if (ft->mix != S_MIX_FLOAT) {
        int il = s_layer(name);
        bool is_output = !strcmp(name, "output.weight");
        if (is_output) {
            if (t != MESH_QT_Q8_0)
                t = MESH_QT_Q6_K;
        } else if (il >= 0 && n_layer > 0) {
            bool ffn_down = strstr(name, "ffn_down") != NULL;
            bool attn_v = strstr(name, "attn_v.weight") != NULL;
            if (ft->mix == S_MIX_K_M && (ffn_down || attn_v) && s_more_bits(il, (int)n_layer))
                t = ft->base == MESH_QT_Q3_K ? MESH_QT_Q5_K : MESH_QT_Q6_K;
            else if (ft->mix == S_MIX_K_S && ffn_down && (uint32_t)il < n_layer / 8)
                t = MESH_QT_Q5_K;
            else if (ft->base == MESH_QT_Q2_K && (ffn_down || attn_v))
                t = attn_v ? MESH_QT_Q4_K : MESH_QT_Q3_K;
        }
    }
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t);
    if (ne[0] % tr->blck) {
        switch (t) {
        case MESH_QT_Q2_K:
        case MESH_QT_Q3_K:
            t = MESH_QT_Q4_0;
            break;
        case MESH_QT_Q4_K:
            t = MESH_QT_Q5_0;
            break;
        case MESH_QT_Q5_K:
            t = MESH_QT_Q5_1;
            break;
        default:
            t = MESH_QT_Q8_0;
            break;
        }
        if (ne[0] % 32) // not even 32-blocks: keep a float type
            t = s_is_float(src_type) ? (mesh_qtype_t)src_type : MESH_QT_F16;
    }
    return t;
}

// ---------------------------------------------------------------- conversion

typedef struct {
    const uint8_t *src;
    uint8_t *dst;
    const mesh_qtype_traits_t *from, *to;
    uint64_t row;         // elements per row
    size_t src_rb, dst_rb;
    uint64_t r0, r1;      // rows [r0, r1)
    int rc;
} s_job_t;

static void *s_convert_rows(void *arg) {
    s_job_t *j = arg;
    float *buf = malloc(j->row * sizeof(float));
    if (!buf) {
        j->rc = MESH_ENOMEM;
        return NULL;
    }
    for (uint64_t r = j->r0; r < j->r1; r++) {
        j->from->to_float(j->src + r * j->src_rb, buf, (int64_t)j->row);
        j->to->from_float(buf, j->dst + r * j->dst_rb, (int64_t)j->row);
    }
    free(buf);
    return NULL;
}

static int s_convert(const mesh_gguf_tensor_t *t, uint32_t to_type, uint8_t *dst, int n_threads) {
    s_job_t jobs[256];
    pthread_t th[256];
    uint64_t rows = t->n_elements / t->ne[0];
    if (n_threads > 256)
        n_threads = 256;
    if ((uint64_t)n_threads > rows)
        n_threads = (int)rows;
    if (n_threads < 1)
        n_threads = 1;
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (s_job_t){
            .src = t->data, .dst = dst,
            .from = mesh_qtype_traits(t->type), .to = mesh_qtype_traits(to_type),
            .row = t->ne[0],
            .src_rb = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]),
            .dst_rb = mesh_qtype_row_size(to_type, (int64_t)t->ne[0]),
            .r0 = rows * (uint64_t)i / (uint64_t)n_threads,
            .r1 = rows * (uint64_t)(i + 1) / (uint64_t)n_threads,
        };
    }
    int started = 0;
    for (int i = 1; i < n_threads; i++, started++)
        if (pthread_create(&th[i], NULL, s_convert_rows, &jobs[i]))
            break;
    s_convert_rows(&jobs[0]);
    int rc = jobs[0].rc;
    for (int i = 1; i <= started; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].rc)
            rc = jobs[i].rc;
    }
    for (int i = started + 1; i < n_threads; i++) // threads that did not start: do their rows here
        if (!rc) {
            s_convert_rows(&jobs[i]);
            rc = jobs[i].rc;
        }
    return rc;
}

static void s_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mesh_quantize_file(const char *in_path, const char *out_path, const char *ft_name,
                       int n_threads, FILE *log, char *err, size_t err_len) {
    const mesh_ftype_t *ft = mesh_ftype_find(ft_name);
    if (!ft) {
        s_err(err, err_len, "unknown file type '%s' (known: %s)", ft_name ? ft_name : "",
              mesh_ftype_names());
        return MESH_EINVAL;
    }
    if (n_threads <= 0)
        n_threads = mesh_cpu_features()->physical_cores;
    mesh_gguf_t *g = NULL;
    mesh_gguf_writer_t *w = NULL;
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    char gerr[256] = "";
    int rc = mesh_gguf_open(in_path, &g, gerr, sizeof gerr);
    if (rc) {
        s_err(err, err_len, "%s: %s", in_path, gerr[0] ? gerr : mesh_strerror(rc));
        return rc;
    }
    int64_t nt = mesh_gguf_n_tensors(g);
    uint32_t n_layer = 0;
    mesh_gguf_get_arch_u32(g, "block_count", &n_layer);
    uint32_t *types = calloc(nt > 0 ? (size_t)nt : 1, sizeof *types);
    w = mesh_gguf_writer_new();
    if (!types || !w) {
        rc = MESH_ENOMEM;
        s_err(err, err_len, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++)
        if ((rc = mesh_gguf_writer_copy_kv(w, g, i))) {
            s_err(err, err_len, "copying key '%s': %s", mesh_gguf_key_name(g, i), mesh_strerror(rc));
            goto done;
        }
    if ((rc = mesh_gguf_writer_set_u32(w, "general.file_type", ft->llama_ftype)) ||
        (rc = mesh_gguf_writer_set_u32(w, "general.quantization_version", 2))) {
        s_err(err, err_len, "setting the file type: %s", mesh_strerror(rc));
        goto done;
    }
    for (int64_t i = 0; i < nt; i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        const mesh_qtype_traits_t *src = mesh_qtype_traits(t->type);
        if (!src || !src->to_float) {
            rc = MESH_EUNSUPPORTED;
            s_err(err, err_len, "tensor '%s' has type %s, which cannot be converted", t->name,
                  mesh_qtype_name(t->type));
            goto done;
        }
        types[i] = mesh_ftype_tensor_type(ft, t->name, t->n_dims, t->ne, n_layer, t->type);
        int64_t idx = mesh_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne);
        if (idx < 0) {
            rc = (int)idx;
            s_err(err, err_len, "tensor '%s': %s", t->name, mesh_strerror(rc));
            goto done;
        }
    }
    if ((rc = mesh_gguf_writer_begin(w, out_path))) {
        s_err(err, err_len, "%s: cannot write: %s", out_path, mesh_strerror(rc));
        goto done;
    }
    double t0 = s_now();
    uint64_t in_bytes = 0, out_bytes = 0, n_el = 0;
    for (int64_t i = 0; i < nt; i++) {
        const mesh_gguf_tensor_t *t = mesh_gguf_tensor(g, i);
        size_t n_bytes = mesh_qtype_row_size(types[i], (int64_t)t->ne[0]) * (t->n_elements / t->ne[0]);
        const void *out = t->data;
        if (types[i] != t->type) {
            if (n_bytes > buf_cap) {
                free(buf);
                buf = malloc(n_bytes);
                buf_cap = buf ? n_bytes : 0;
                if (!buf) {
                    rc = MESH_ENOMEM;
                    s_err(err, err_len, "tensor '%s': out of memory for %zu bytes", t->name, n_bytes);
                    goto done;
                }
            }
            if ((rc = s_convert(t, types[i], buf, n_threads))) {
                s_err(err, err_len, "tensor '%s': %s", t->name, mesh_strerror(rc));
                goto done;
            }
            out = buf;
        }
        if ((rc = mesh_gguf_writer_write_data(w, i, out, n_bytes))) {
            s_err(err, err_len, "%s: writing tensor '%s': %s", out_path, t->name, mesh_strerror(rc));
            goto done;
        }
        in_bytes += t->n_bytes;
        out_bytes += n_bytes;
        n_el += t->n_elements;
        if (log) {
            char shape[96];
            int o = snprintf(shape, sizeof shape, "%llu", (unsigned long long)t->ne[0]);
            for (uint32_t d = 1; d < t->n_dims && o < (int)sizeof shape; d++)
                o += snprintf(shape + o, sizeof shape - (size_t)o, " x %llu",
                              (unsigned long long)t->ne[d]);
            fprintf(log, "[%4lld/%4lld] %-36s %-5s -> %-5s [%s] %9.3f MiB -> %9.3f MiB\n",
                    (long long)i + 1, (long long)nt, t->name, mesh_qtype_name(t->type),
                    mesh_qtype_name(types[i]), shape, (double)t->n_bytes / 1048576.0,
                    (double)n_bytes / 1048576.0);
        }
    }
    if ((rc = mesh_gguf_writer_finish(w))) {
        s_err(err, err_len, "%s: finishing the file: %s", out_path, mesh_strerror(rc));
        goto done;
    }
    if (log)
        fprintf(log,
                "quantized %lld tensors to %s (file type %u): %.2f MiB -> %.2f MiB, %.2f bits per "
                "weight, %.1f s with %d threads\n",
                (long long)nt, ft->name, ft->llama_ftype, (double)in_bytes / 1048576.0,
                (double)out_bytes / 1048576.0, n_el ? 8.0 * (double)out_bytes / (double)n_el : 0.0,
                s_now() - t0, n_threads);
done:
    free(buf);
    free(types);
    mesh_gguf_writer_destroy(&w); // removes a partial output
    mesh_gguf_close(&g);
    return rc;
}
