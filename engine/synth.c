// SPDX-License-Identifier: MIT
// Synthetic model writer: enumerates a deepseek2 model's tensors for a preset,
// fills them with seeded random values, quantizes them to the file type and
// streams them into a GGUF (see synth.h).
//
// Values depend only on (seed, tensor index, row), never on the thread count,
// so the same command always writes the same bytes.
#include "synth.h"

#include "gguf.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "quant.h"
#include "synth_vocab.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// GLM-4.7-Flash's published shapes (29.9B parameters), and two scaled-down
// versions with its proportions: `small` (about 1B) for CPU benchmarks,
// `tiny` (about 9M, the shape of the reference test model) for tests.
static const mesh_synth_preset_t s_presets[] = {
    {"glm-4.7-flash", 47, 1, 2048, 10240, 20, 768, 512, 192, 64, 256, 64, 4, 1, 1536, 154880,
     202752, 1e6f, 1.8f, true, 2},
    {"small", 10, 1, 1024, 5120, 10, 384, 256, 96, 32, 128, 64, 4, 1, 512, 32768, 32768, 1e6f,
     1.8f, true, 2},
    {"tiny", 4, 1, 256, 512, 4, 64, 64, 32, 16, 32, 16, 4, 1, 64, 2022, 8192, 1e6f, 1.8f, true,
     2},
};

const mesh_synth_preset_t *mesh_synth_find_preset(const char *name) {
    for (size_t i = 0; i < sizeof s_presets / sizeof s_presets[0]; i++)
        if (!strcmp(s_presets[i].name, name))
            return &s_presets[i];
    return NULL;
}

const mesh_synth_preset_t *mesh_synth_preset_at(size_t i) {
    return i < sizeof s_presets / sizeof s_presets[0] ? &s_presets[i] : NULL;
}

// What a tensor holds decides its initial values and its type in a mixed file.
typedef enum {
    S_NORM,   // RMSNorm weight: around 1
    S_BIAS,   // selection bias: small
    S_ROUTER, // router: kept f32
    S_EMBD,   // token embedding
    S_OUTPUT, // output projection
    S_DOWN,   // ffn_down*: gets more bits in mixed files
    S_ATTN_V, // attn_v_b: gets more bits in mixed files
    S_MATRIX, // any other weight matrix
} s_kind_t;

typedef struct {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[3];
    s_kind_t kind;
    int layer; // -1 for global tensors
    uint32_t type;
} s_tensor_t;

typedef struct {
    s_tensor_t *t;
    size_t n, cap;
} s_list_t;

static int s_add(s_list_t *l, int layer, const char *suffix, s_kind_t kind, uint32_t n_dims,
                 uint64_t ne0, uint64_t ne1, uint64_t ne2) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        s_tensor_t *nt = realloc(l->t, nc * sizeof *nt);
        if (!nt)
            return MESH_ENOMEM;
        l->t = nt;
        l->cap = nc;
    }
    s_tensor_t *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, suffix);
    else
        snprintf(t->name, sizeof t->name, "%s", suffix);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->kind = kind;
    t->layer = layer;
    return 0;
}

// The tensors of a deepseek2 model, named and shaped as llama.cpp's converter
// writes them (ne[0] is the row length).
static int s_enumerate(const mesh_synth_preset_t *p, s_list_t *l) {
    int rc = 0;
    const uint64_t H = p->n_head, qk = p->nope + p->rope;
    rc |= s_add(l, -1, "token_embd.weight", S_EMBD, 2, p->hidden, p->vocab, 1);
    for (uint32_t i = 0; i < p->n_layer && !rc; i++) {
        int L = (int)i;
        rc |= s_add(l, L, "attn_norm.weight", S_NORM, 1, p->hidden, 1, 1);
        if (p->q_lora) {
            rc |= s_add(l, L, "attn_q_a.weight", S_MATRIX, 2, p->hidden, p->q_lora, 1);
            rc |= s_add(l, L, "attn_q_a_norm.weight", S_NORM, 1, p->q_lora, 1, 1);
            rc |= s_add(l, L, "attn_q_b.weight", S_MATRIX, 2, p->q_lora, H * qk, 1);
        } else {
            rc |= s_add(l, L, "attn_q.weight", S_MATRIX, 2, p->hidden, H * qk, 1);
        }
        rc |= s_add(l, L, "attn_kv_a_mqa.weight", S_MATRIX, 2, p->hidden, p->kv_lora + p->rope, 1);
        rc |= s_add(l, L, "attn_kv_a_norm.weight", S_NORM, 1, p->kv_lora, 1, 1);
        rc |= s_add(l, L, "attn_k_b.weight", S_MATRIX, 3, p->nope, p->kv_lora, H);
        rc |= s_add(l, L, "attn_v_b.weight", S_ATTN_V, 3, p->kv_lora, p->v_dim, H);
        rc |= s_add(l, L, "attn_output.weight", S_MATRIX, 2, H * p->v_dim, p->hidden, 1);
        rc |= s_add(l, L, "ffn_norm.weight", S_NORM, 1, p->hidden, 1, 1);
        if (i < p->n_dense) {
            rc |= s_add(l, L, "ffn_gate.weight", S_MATRIX, 2, p->hidden, p->ff_dense, 1);
            rc |= s_add(l, L, "ffn_up.weight", S_MATRIX, 2, p->hidden, p->ff_dense, 1);
            rc |= s_add(l, L, "ffn_down.weight", S_DOWN, 2, p->ff_dense, p->hidden, 1);
        } else {
            uint64_t E = p->n_expert, sh = (uint64_t)p->n_shared * p->expert_ff;
            rc |= s_add(l, L, "ffn_gate_inp.weight", S_ROUTER, 2, p->hidden, E, 1);
            rc |= s_add(l, L, "exp_probs_b.bias", S_BIAS, 1, E, 1, 1);
            rc |= s_add(l, L, "ffn_gate_exps.weight", S_MATRIX, 3, p->hidden, p->expert_ff, E);
            rc |= s_add(l, L, "ffn_up_exps.weight", S_MATRIX, 3, p->hidden, p->expert_ff, E);
            rc |= s_add(l, L, "ffn_down_exps.weight", S_DOWN, 3, p->expert_ff, p->hidden, E);
            if (p->n_shared) {
                rc |= s_add(l, L, "ffn_gate_shexp.weight", S_MATRIX, 2, p->hidden, sh, 1);
                rc |= s_add(l, L, "ffn_up_shexp.weight", S_MATRIX, 2, p->hidden, sh, 1);
                rc |= s_add(l, L, "ffn_down_shexp.weight", S_DOWN, 2, sh, p->hidden, 1);
            }
        }
    }
    rc |= s_add(l, -1, "output_norm.weight", S_NORM, 1, p->hidden, 1, 1);
    rc |= s_add(l, -1, "output.weight", S_OUTPUT, 2, p->hidden, p->vocab, 1);
    return rc ? MESH_ENOMEM : 0;
}

uint64_t mesh_synth_n_params(const mesh_synth_preset_t *p) {
    s_list_t l = {0};
    uint64_t n = 0;
    if (s_enumerate(p, &l) == 0)
        for (size_t i = 0; i < l.n; i++)
            n += l.t[i].ne[0] * l.t[i].ne[1] * l.t[i].ne[2];
    free(l.t);
    return n;
}

// File types: a base type for weight matrices, and the types that the mixed
// K-quant files give the tensors that matter most.
typedef struct {
    const char *name;
    uint32_t base, more_bits, output;
    uint32_t file_type; // llama.cpp's general.file_type number
} s_ftype_t;

static const s_ftype_t s_ftypes[] = {
    {"f32", MESH_QT_F32, MESH_QT_F32, MESH_QT_F32, 0},
    {"f16", MESH_QT_F16, MESH_QT_F16, MESH_QT_F16, 1},
    {"bf16", MESH_QT_BF16, MESH_QT_BF16, MESH_QT_BF16, 32},
    {"q8_0", MESH_QT_Q8_0, MESH_QT_Q8_0, MESH_QT_Q8_0, 7},
    {"q4_0", MESH_QT_Q4_0, MESH_QT_Q4_0, MESH_QT_Q6_K, 2},
    {"q4_k_m", MESH_QT_Q4_K, MESH_QT_Q6_K, MESH_QT_Q6_K, 15},
    {"q4_k_s", MESH_QT_Q4_K, MESH_QT_Q4_K, MESH_QT_Q6_K, 14},
    {"q5_k_m", MESH_QT_Q5_K, MESH_QT_Q6_K, MESH_QT_Q6_K, 17},
    {"q6_k", MESH_QT_Q6_K, MESH_QT_Q6_K, MESH_QT_Q6_K, 18},
};

// A K-quant needs rows that are a multiple of 256; narrower rows take the
// 32-block type of about the same size, as llama.cpp's quantizer does.
static uint32_t s_fallback(uint32_t type, uint64_t row) {
    const mesh_qtype_traits_t *t = mesh_qtype_traits(type);
    if (t && row % t->blck == 0)
        return type;
    switch (type) {
    case MESH_QT_Q4_K:
        return MESH_QT_Q5_0;
    case MESH_QT_Q5_K:
        return MESH_QT_Q5_1;
    case MESH_QT_Q6_K:
        return MESH_QT_Q8_0;
    default:
        return row % 32 == 0 ? MESH_QT_Q8_0 : MESH_QT_F16;
    }
}

// llama.cpp's "use more bits" rule for ffn_down / attn_v in mixed files: the
// first and last eighth of the layers, and every third layer in between.
static int s_more_bits(int layer, uint32_t n_layer) {
    int n = (int)n_layer;
    return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
}

static uint32_t s_choose_type(const s_ftype_t *ft, const s_tensor_t *t, uint32_t n_layer) {
    uint32_t type;
    switch (t->kind) {
    case S_NORM:
    case S_BIAS:
    case S_ROUTER:
        return MESH_QT_F32;
    case S_OUTPUT:
        type = ft->output;
        break;
    case S_DOWN:
    case S_ATTN_V:
        type = s_more_bits(t->layer, n_layer) ? ft->more_bits : ft->base;
        break;
    default:
        type = ft->base;
        break;
    }
    return s_fallback(type, t->ne[0]);
}

// ---- random values ----

static uint64_t s_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Fills one row with values of the tensor's kind. Uniform values with the
// standard deviation 1/sqrt(fan-in) keep activations of order one through
// the layers, so benchmarks see realistic (finite, non-degenerate) numbers.
static void s_fill_row(const s_tensor_t *t, uint64_t seed, uint64_t tensor, uint64_t row,
                       float *out) {
    uint64_t st = seed ^ (tensor * 0xd1b54a32d192ed03ull) ^ (row * 0x8cb92ba72f3d8dd7ull);
    s_splitmix(&st);
    float scale, offset = 0.0f;
    switch (t->kind) {
    case S_NORM:
        scale = 0.1f;
        offset = 1.0f;
        break;
    case S_BIAS:
        scale = 0.01f;
        break;
    case S_EMBD:
        scale = 1.0f;
        break;
    default:
        scale = 1.0f / sqrtf((float)t->ne[0]);
        break;
    }
    const float a = scale * 1.7320508f; // uniform on [-a, a] has std `scale`
    for (uint64_t i = 0; i < t->ne[0]; i++) {
        uint64_t r = s_splitmix(&st);
        float u = (float)(r >> 40) * (1.0f / 16777216.0f); // [0, 1)
        out[i] = offset + a * (2.0f * u - 1.0f);
    }
}

typedef struct {
    const s_tensor_t *t;
    uint64_t seed, index, row_begin, row_end;
    size_t row_bytes;
    uint8_t *out;
    int rc;
} s_job_t;

static void *s_job_run(void *arg) {
    s_job_t *j = arg;
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(j->t->type);
    float *row = malloc(j->t->ne[0] * sizeof *row);
    if (!row) {
        j->rc = MESH_ENOMEM;
        return NULL;
    }
    for (uint64_t r = j->row_begin; r < j->row_end; r++) {
        s_fill_row(j->t, j->seed, j->index, r, row);
        tr->from_float(row, j->out + (r - j->row_begin) * j->row_bytes, (int64_t)j->t->ne[0]);
    }
    free(row);
    return NULL;
}

// Large tensors repeat a period of this many distinct rows (a prime, so the
// period never lines up with expert or head boundaries). Generating and
// quantizing every row of a 30B model costs minutes of CPU; the repeated rows
// cost nothing, and a benchmark still streams every byte from memory because
// each row has its own address. Values stay a pure function of the seed.
#define S_UNIQUE_ROWS 1021u

// Generates and quantizes the rows of tensor t into out, over n_threads.
static int s_make_tensor(const s_tensor_t *t, uint64_t seed, uint64_t index, int n_threads,
                         uint8_t *out) {
    enum { MAX_THREADS = 64 };
    uint64_t n_rows = t->ne[1] * t->ne[2];
    uint64_t n_unique = n_rows > 4 * S_UNIQUE_ROWS ? S_UNIQUE_ROWS : n_rows;
    size_t row_bytes = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]);
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    if ((uint64_t)n_threads > n_unique)
        n_threads = (int)n_unique;
    s_job_t jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    int threaded[MAX_THREADS] = {0};
    for (int k = 0; k < n_threads; k++) {
        uint64_t b = n_unique * (uint64_t)k / (uint64_t)n_threads;
        uint64_t e = n_unique * (uint64_t)(k + 1) / (uint64_t)n_threads;
        jobs[k] = (s_job_t){t, seed, index, b, e, row_bytes, out + b * row_bytes, 0};
        // The last share runs on this thread, and so does any we cannot start.
        if (k < n_threads - 1 && pthread_create(&th[k], NULL, s_job_run, &jobs[k]) == 0)
            threaded[k] = 1;
        else
            s_job_run(&jobs[k]);
    }
    int rc = 0;
    for (int k = 0; k < n_threads; k++) {
        if (threaded[k])
            pthread_join(th[k], NULL);
        if (jobs[k].rc)
            rc = jobs[k].rc;
    }
    for (uint64_t r = n_unique; r < n_rows && !rc; r += n_unique) {
        uint64_t n = n_rows - r < n_unique ? n_rows - r : n_unique;
        memcpy(out + r * row_bytes, out, n * row_bytes);
    }
    return rc;
}

static int s_set_hparams(mesh_gguf_writer_t *w, const mesh_synth_preset_t *p,
                         const s_ftype_t *ft) {
    char key[96];
    int rc = 0;
#define S_U32(k, v)                                                                        \
    do {                                                                                   \
        snprintf(key, sizeof key, "deepseek2.%s", k);                                      \
        rc = rc ? rc : mesh_gguf_writer_set_u32(w, key, (v));                              \
    } while (0)
#define S_F32(k, v)                                                                        \
    do {                                                                                   \
        snprintf(key, sizeof key, "deepseek2.%s", k);                                      \
        rc = rc ? rc : mesh_gguf_writer_set_f32(w, key, (v));                              \
    } while (0)
    char name[96];
    snprintf(name, sizeof name, "synthetic %s (random weights)", p->name);
    rc = mesh_gguf_writer_set_str(w, "general.architecture", "deepseek2");
    rc = rc ? rc : mesh_gguf_writer_set_str(w, "general.type", "model");
    rc = rc ? rc : mesh_gguf_writer_set_str(w, "general.name", name);
    rc = rc ? rc : mesh_gguf_writer_set_u32(w, "general.file_type", ft->file_type);
    rc = rc ? rc : mesh_gguf_writer_set_u32(w, "general.quantization_version", 2);
    S_U32("block_count", p->n_layer);
    S_U32("context_length", p->ctx);
    S_U32("embedding_length", p->hidden);
    S_U32("feed_forward_length", p->ff_dense);
    S_U32("attention.head_count", p->n_head);
    S_U32("attention.head_count_kv", 1);
    S_F32("rope.freq_base", p->rope_theta);
    S_F32("attention.layer_norm_rms_epsilon", 1e-5f);
    S_U32("expert_count", p->n_expert);
    S_U32("expert_used_count", p->n_used);
    S_U32("expert_group_count", 1);
    S_U32("expert_group_used_count", 1);
    S_U32("leading_dense_block_count", p->n_dense);
    S_U32("vocab_size", p->vocab);
    if (p->q_lora)
        S_U32("attention.q_lora_rank", p->q_lora);
    S_U32("attention.kv_lora_rank", p->kv_lora);
    S_U32("attention.key_length", p->kv_lora + p->rope);
    S_U32("attention.value_length", p->kv_lora);
    S_U32("attention.key_length_mla", p->nope + p->rope);
    S_U32("attention.value_length_mla", p->v_dim);
    S_U32("expert_feed_forward_length", p->expert_ff);
    S_U32("expert_shared_count", p->n_shared);
    S_F32("expert_weights_scale", p->expert_scale);
    snprintf(key, sizeof key, "deepseek2.expert_weights_norm");
    rc = rc ? rc : mesh_gguf_writer_set_bool(w, key, p->expert_norm);
    S_U32("rope.dimension_count", p->rope);
    S_U32("expert_gating_func", p->gating);
#undef S_U32
#undef S_F32
    return rc;
}

// Copies every tokenizer.* key of another GGUF and returns its vocabulary size.
static int s_copy_vocab(mesh_gguf_writer_t *w, const char *path, uint32_t *vocab, char *err,
                        size_t err_len) {
    mesh_gguf_t *g = NULL;
    char gerr[256] = "";
    int rc = mesh_gguf_open(path, &g, gerr, sizeof gerr);
    if (rc) {
        snprintf(err, err_len, "synth: --vocab-from %s: %s", path, gerr);
        return rc;
    }
    mesh_gguf_type_t et;
    uint64_t n = 0;
    rc = mesh_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n);
    if (rc || et != MESH_GGUF_STRING || n == 0 || n > UINT32_MAX) {
        snprintf(err, err_len, "synth: --vocab-from %s has no tokenizer.ggml.tokens", path);
        mesh_gguf_close(&g);
        return MESH_EFORMAT;
    }
    for (int64_t i = 0; i < mesh_gguf_n_kv(g) && !rc; i++)
        if (!strncmp(mesh_gguf_key_name(g, i), "tokenizer.", 10))
            rc = mesh_gguf_writer_copy_kv(w, g, i);
    if (rc)
        snprintf(err, err_len, "synth: cannot copy the vocabulary of %s: %s", path,
                 mesh_strerror(rc));
    *vocab = (uint32_t)n;
    mesh_gguf_close(&g);
    return rc;
}

int mesh_synth_write(const mesh_synth_params_t *params, char *err, size_t err_len) {
    mesh_synth_preset_t p = params->shape;
    const s_ftype_t *ft = NULL;
    for (size_t i = 0; i < sizeof s_ftypes / sizeof s_ftypes[0]; i++)
        if (!strcasecmp(s_ftypes[i].name, params->ftype))
            ft = &s_ftypes[i];
    if (!ft) {
        snprintf(err, err_len, "synth: unknown file type '%s' (one of f32, f16, bf16, q8_0, "
                 "q4_0, q4_k_m, q4_k_s, q5_k_m, q6_k)", params->ftype);
        return MESH_EINVAL;
    }
    if (!p.n_layer || !p.hidden || !p.n_head || !p.kv_lora || !p.rope || !p.nope || !p.v_dim ||
        p.n_dense > p.n_layer || (p.n_dense < p.n_layer && (!p.n_expert || !p.n_used ||
                                                           p.n_used > p.n_expert || !p.expert_ff))) {
        snprintf(err, err_len, "synth: inconsistent shape in preset '%s'", p.name);
        return MESH_EINVAL;
    }
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    s_list_t l = {0};
    uint8_t *buf = NULL;
    int rc = w ? 0 : MESH_ENOMEM;
    if (!rc && params->vocab_from)
        rc = s_copy_vocab(w, params->vocab_from, &p.vocab, err, err_len);
    if (!rc)
        rc = s_set_hparams(w, &p, ft);
    if (!rc && !params->vocab_from)
        rc = mesh__synth_vocab(w, p.vocab, err, err_len);
    if (!rc)
        rc = s_enumerate(&p, &l);
    size_t max_bytes = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < l.n && !rc; i++) {
        s_tensor_t *t = &l.t[i];
        t->type = s_choose_type(ft, t, p.n_layer);
        const mesh_qtype_traits_t *tr = mesh_qtype_traits(t->type);
        if (!tr || !tr->from_float) {
            snprintf(err, err_len, "synth: cannot quantize to %s", mesh_qtype_name(t->type));
            rc = MESH_EUNSUPPORTED;
            break;
        }
        size_t bytes = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]) * t->ne[1] * t->ne[2];
        if (bytes > max_bytes)
            max_bytes = bytes;
        total += bytes;
        int64_t idx = mesh_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
        if (idx < 0)
            rc = (int)idx;
    }
    if (!rc && !(buf = malloc(max_bytes ? max_bytes : 1)))
        rc = MESH_ENOMEM;
    if (!rc && (rc = mesh_gguf_writer_begin(w, params->out_path)) != 0)
        snprintf(err, err_len, "synth: cannot write %s: %s", params->out_path, mesh_strerror(rc));
    if (!rc && !params->quiet)
        MESH_INFO("synth: writing %s: preset %s, %s, %.1fM parameters, %.2f GiB", params->out_path,
                  p.name, ft->name, (double)mesh_synth_n_params(&p) / 1e6,
                  (double)total / (1024.0 * 1024.0 * 1024.0));
    for (size_t i = 0; i < l.n && !rc; i++) {
        const s_tensor_t *t = &l.t[i];
        size_t bytes = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]) * t->ne[1] * t->ne[2];
        rc = s_make_tensor(t, params->seed, i, params->n_threads > 0 ? params->n_threads : 1, buf);
        if (!rc)
            rc = mesh_gguf_writer_write_data(w, (int64_t)i, buf, bytes);
        if (rc)
            snprintf(err, err_len, "synth: tensor %s: %s", t->name, mesh_strerror(rc));
    }
    if (!rc && (rc = mesh_gguf_writer_finish(w)) != 0)
        snprintf(err, err_len, "synth: cannot finish %s: %s", params->out_path, mesh_strerror(rc));
    if (rc && err[0] == 0)
        snprintf(err, err_len, "synth: %s", mesh_strerror(rc));
    free(buf);
    free(l.t);
    mesh_gguf_writer_destroy(&w);
    return rc;
}
