// SPDX-License-Identifier: MIT
// Model loading for deepseek2-architecture GGUFs (GLM-4.7-Flash, DeepSeek-V2
// style): hyperparameters from metadata, every tensor checked for type and
// shape and bound to the backend, the KV pool and scratch allocated once.
// Also the public forward entry: batch validation, KV growth, chunking.
#include "model.h"

#include "cpu_features.h"
#include "mesh_err.h"
#include "mesh_log.h"
#include "quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void mesh_model_params_default(mesh_model_params_t *p) {
    memset(p, 0, sizeof *p);
    p->backend = "cpu";
    p->kv_type = MESH_QT_F32;
    p->max_seqs = 64;
    p->max_batch = 512;
}

// llama.cpp's llama_ftype numbers (general.file_type) to display names.
static const char *s_ftype_name(uint32_t ft) {
    switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "?";
    }
}

static int s_u32(const mesh_gguf_t *g, const char *key, uint32_t *v, bool required, char *err,
                 size_t el) {
    int rc = mesh_gguf_get_arch_u32(g, key, v);
    if (rc == MESH_ENOENT && !required)
        return 0;
    if (rc)
        s_err(err, el, "model: metadata '%s.%s' %s", mesh_gguf_arch(g), key,
              rc == MESH_ENOENT ? "is missing" : "has the wrong type");
    return rc;
}

static int s_f32(const mesh_gguf_t *g, const char *key, float *v, bool required, char *err,
                 size_t el) {
    int rc = mesh_gguf_get_arch_f32(g, key, v);
    if (rc == MESH_ENOENT && !required)
        return 0;
    if (rc)
        s_err(err, el, "model: metadata '%s.%s' %s", mesh_gguf_arch(g), key,
              rc == MESH_ENOENT ? "is missing" : "has the wrong type");
    return rc;
}

static int s_hparams(mesh_model_t *m, char *err, size_t el) {
    const mesh_gguf_t *g = m->gguf;
    mesh_hparams_t *hp = &m->hp;
    int rc;
    uint32_t key_len = 0, val_len = 0, kl_mla = 0, vl_mla = 0, gating = 0;
    if ((rc = s_u32(g, "block_count", &hp->n_layer, true, err, el)) ||
        (rc = s_u32(g, "embedding_length", &hp->n_embd, true, err, el)) ||
        (rc = s_u32(g, "feed_forward_length", &hp->n_ff, false, err, el)) ||
        (rc = s_u32(g, "attention.head_count", &hp->n_head, true, err, el)) ||
        (rc = s_u32(g, "attention.q_lora_rank", &hp->q_lora, false, err, el)) ||
        (rc = s_u32(g, "attention.kv_lora_rank", &hp->kv_lora, true, err, el)) ||
        (rc = s_u32(g, "rope.dimension_count", &hp->n_rot, true, err, el)) ||
        (rc = s_u32(g, "attention.key_length", &key_len, false, err, el)) ||
        (rc = s_u32(g, "attention.value_length", &val_len, false, err, el)) ||
        (rc = s_u32(g, "attention.key_length_mla", &kl_mla, false, err, el)) ||
        (rc = s_u32(g, "attention.value_length_mla", &vl_mla, false, err, el)) ||
        (rc = s_u32(g, "leading_dense_block_count", &hp->n_dense, false, err, el)) ||
        (rc = s_u32(g, "expert_count", &hp->n_expert, false, err, el)) ||
        (rc = s_u32(g, "expert_used_count", &hp->n_expert_used, false, err, el)) ||
        (rc = s_u32(g, "expert_shared_count", &hp->n_expert_shared, false, err, el)) ||
        (rc = s_u32(g, "expert_feed_forward_length", &hp->n_ff_exp, false, err, el)) ||
        (rc = s_u32(g, "expert_gating_func", &gating, false, err, el)) ||
        (rc = s_u32(g, "context_length", &hp->n_ctx_train, false, err, el)))
        return rc;
    hp->eps = 1e-6f;
    hp->w_scale = 1.0f;
    hp->rope.freq_base = 10000.0f;
    if ((rc = s_f32(g, "attention.layer_norm_rms_epsilon", &hp->eps, false, err, el)) ||
        (rc = s_f32(g, "rope.freq_base", &hp->rope.freq_base, false, err, el)) ||
        (rc = s_f32(g, "expert_weights_scale", &hp->w_scale, false, err, el)))
        return rc;
    hp->w_norm = false;
    rc = mesh_gguf_get_arch_bool(g, "expert_weights_norm", &hp->w_norm);
    if (rc && rc != MESH_ENOENT) {
        s_err(err, el, "model: metadata 'expert_weights_norm' has the wrong type");
        return rc;
    }
    // Per-head sizes: the _mla keys when present (GLM-4.7-Flash, newer
    // converters), else key_length/value_length (older DeepSeek-V2 files).
    uint32_t dk = kl_mla ? kl_mla : key_len, dv = vl_mla ? vl_mla : val_len;
    if (!dk || !dv || dk <= hp->n_rot) {
        s_err(err, el, "model: per-head key/value lengths missing or inconsistent (key %u, "
                       "value %u, rope %u)", dk, dv, hp->n_rot);
        return MESH_EFORMAT;
    }
    hp->d_nope = dk - hp->n_rot;
    hp->d_v = dv;
    // Vocabulary: vocab_size, else the token list's length.
    uint32_t nv = 0;
    if (mesh_gguf_get_arch_u32(g, "vocab_size", &nv) != 0 || nv == 0) {
        uint64_t n = 0;
        if (mesh_gguf_get_arr_info(g, "tokenizer.ggml.tokens", NULL, &n) == 0)
            nv = (uint32_t)n;
    }
    hp->n_vocab = nv; // checked against token_embd below
    if (gating == 0) // absent: GLM-4.7-Flash shapes mean sigmoid
        gating = (hp->n_layer == 47 || hp->n_layer == 48) && nv == 154880 ? 2 : 1;
    if (gating != 1 && gating != 2) {
        s_err(err, el, "model: expert_gating_func %u is not supported (1 softmax, 2 sigmoid)", gating);
        return MESH_EUNSUPPORTED;
    }
    hp->gating = (int)gating;
    if (!hp->n_ctx_train)
        hp->n_ctx_train = 4096;
    if (hp->n_layer < 1 || hp->n_layer > MESH_MODEL_MAX_LAYERS || !hp->n_embd || !hp->n_head ||
        !hp->kv_lora || hp->n_rot % 2 || hp->n_dense > hp->n_layer) {
        s_err(err, el, "model: hyperparameters out of range (layers %u, embd %u, heads %u, "
                       "kv_lora %u, rope %u, dense %u)", hp->n_layer, hp->n_embd, hp->n_head,
              hp->kv_lora, hp->n_rot, hp->n_dense);
        return MESH_EFORMAT;
    }
    if (hp->n_dense < hp->n_layer &&
        (!hp->n_expert || !hp->n_expert_used || hp->n_expert_used > hp->n_expert ||
         hp->n_expert > 1024 || !hp->n_ff_exp)) {
        s_err(err, el, "model: MoE hyperparameters out of range (experts %u, used %u, ff %u)",
              hp->n_expert, hp->n_expert_used, hp->n_ff_exp);
        return MESH_EFORMAT;
    }
    // RoPE: pairwise ("normal") layout, as llama.cpp runs deepseek2 GGUFs.
    hp->rope.n_rot = (int)hp->n_rot;
    hp->rope.neox = false;
    float mscale = 1.0f;
    const char *stype = NULL;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", mesh_gguf_arch(g));
    if (mesh_gguf_get_str(g, key, &stype, NULL) == 0 && !strcmp(stype, "yarn")) {
        float factor = 1.0f, logmul = 0.0f;
        uint32_t orig = 0;
        if ((rc = s_f32(g, "rope.scaling.factor", &factor, true, err, el)) ||
            (rc = s_u32(g, "rope.scaling.original_context_length", &orig, true, err, el)) ||
            (rc = s_f32(g, "rope.scaling.yarn_log_multiplier", &logmul, false, err, el)))
            return rc;
        if (factor > 1.0f) {
            hp->rope.yarn = true;
            hp->rope.yarn_factor = factor;
            hp->rope.yarn_orig_ctx = (int)orig;
            hp->rope.yarn_beta_fast = 32.0f;
            hp->rope.yarn_beta_slow = 1.0f;
            hp->rope.yarn_attn_factor = 1.0f; // DeepSeek folds mscale into the attention scale
            mscale = 1.0f + logmul * logf(factor);
        }
    }
    hp->attn_scale = mscale * mscale / sqrtf((float)(hp->d_nope + hp->n_rot));
    return 0;
}

// Binds a tensor after checking it exists (unless optional), has a type we
// can compute with, and exactly the expected shape (ne2 = 1 for 2-D).
static int s_bind(mesh_model_t *m, mesh_bweight_t *w, const char *name, int64_t ne0,
                  int64_t ne1, int64_t ne2, bool optional, char *err, size_t el) {
    memset(w, 0, sizeof *w);
    const mesh_gguf_tensor_t *t = mesh_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional)
            return 0;
        s_err(err, el, "model: tensor '%s' is missing", name);
        return MESH_EFORMAT;
    }
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(t->type);
    if (!tr || !tr->to_float) {
        s_err(err, el, "model: tensor '%s' has type %s, which this engine cannot compute with",
              name, mesh_qtype_name(t->type));
        return MESH_EUNSUPPORTED;
    }
    if (t->n_dims > 3 || (int64_t)t->ne[0] != ne0 || (int64_t)t->ne[1] != ne1 ||
        (int64_t)t->ne[2] != ne2) {
        s_err(err, el, "model: tensor '%s' has shape [%llu,%llu,%llu], want [%lld,%lld,%lld]",
              name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
              (unsigned long long)t->ne[2], (long long)ne0, (long long)ne1, (long long)ne2);
        return MESH_EFORMAT;
    }
    w->data.buf = m->weights_buf;
    w->data.off = (size_t)t->offset;
    w->type = t->type;
    w->ne[0] = ne0;
    w->ne[1] = ne1;
    w->ne[2] = ne2;
    w->nb[1] = mesh_qtype_row_size(t->type, ne0);
    w->nb[2] = w->nb[1] * (size_t)ne1;
    if (w->nb[1] == 0) {
        s_err(err, el, "model: tensor '%s' rows of %lld are not whole %s blocks", name,
              (long long)ne0, tr->name);
        return MESH_EFORMAT;
    }
    if (m->be->iface->weight_prepare) {
        int rc = m->be->iface->weight_prepare(m->be->ctx, w);
        if (rc) {
            s_err(err, el, "model: backend could not prepare tensor '%s': %s", name,
                  mesh_strerror(rc));
            return rc;
        }
    }
    if (w->type != MESH_QT_F32 && (w == &m->out_norm || ne1 == 1)) {
        // Norm vectors and biases are read directly as f32 by the ops.
        s_err(err, el, "model: tensor '%s' must be f32 (is %s)", name, tr->name);
        return MESH_EUNSUPPORTED;
    }
    return 0;
}

static int s_bind_weights(mesh_model_t *m, char *err, size_t el) {
    const mesh_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, H = hp->n_head, dq = hp->d_nope + hp->n_rot;
    int rc;
    const mesh_gguf_tensor_t *te = mesh_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te || te->n_dims != 2) {
        s_err(err, el, "model: tensor 'token_embd.weight' is missing or not 2-D");
        return MESH_EFORMAT;
    }
    if (hp->n_vocab && hp->n_vocab != te->ne[1]) {
        s_err(err, el, "model: vocabulary %u does not match token_embd rows %llu", hp->n_vocab,
              (unsigned long long)te->ne[1]);
        return MESH_EFORMAT;
    }
    m->hp.n_vocab = (uint32_t)te->ne[1];
    const int64_t V = m->hp.n_vocab;
    if ((rc = s_bind(m, &m->tok_embd, "token_embd.weight", E, V, 1, false, err, el)) ||
        (rc = s_bind(m, &m->out_norm, "output_norm.weight", E, 1, 1, false, err, el)))
        return rc;
    if (mesh_gguf_find_tensor(m->gguf, "output.weight"))
        rc = s_bind(m, &m->output, "output.weight", E, V, 1, false, err, el);
    else // tied embeddings
        rc = s_bind(m, &m->output, "token_embd.weight", E, V, 1, false, err, el);
    if (rc)
        return rc;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return MESH_ENOMEM;
    char n[96];
#define S_B(field, suffix, a, b, c, opt)                                                          \
    do {                                                                                          \
        snprintf(n, sizeof n, "blk.%u.%s", il, suffix);                                           \
        if ((rc = s_bind(m, &L->field, n, a, b, c, opt, err, el)))                                \
            return rc;                                                                            \
    } while (0)
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        mesh_layer_t *L = &m->layers[il];
        S_B(attn_norm, "attn_norm.weight", E, 1, 1, false);
        if (hp->q_lora) {
            S_B(q_a, "attn_q_a.weight", E, hp->q_lora, 1, false);
            S_B(q_a_norm, "attn_q_a_norm.weight", hp->q_lora, 1, 1, false);
            S_B(q_b, "attn_q_b.weight", hp->q_lora, H * dq, 1, false);
        } else {
            S_B(q, "attn_q.weight", E, H * dq, 1, false);
        }
        S_B(kv_a, "attn_kv_a_mqa.weight", E, hp->kv_lora + hp->n_rot, 1, false);
        S_B(kv_a_norm, "attn_kv_a_norm.weight", hp->kv_lora, 1, 1, false);
        snprintf(n, sizeof n, "blk.%u.attn_k_b.weight", il);
        if (!mesh_gguf_find_tensor(m->gguf, n)) {
            s_err(err, el, "model: tensor '%s' is missing (files with a combined attn_kv_b are "
                           "not supported: re-convert with a current llama.cpp)", n);
            return MESH_EUNSUPPORTED;
        }
        S_B(k_b, "attn_k_b.weight", hp->d_nope, hp->kv_lora, H, false);
        S_B(v_b, "attn_v_b.weight", hp->kv_lora, hp->d_v, H, false);
        S_B(o, "attn_output.weight", H * hp->d_v, E, 1, false);
        S_B(ffn_norm, "ffn_norm.weight", E, 1, 1, false);
        if (il < hp->n_dense) {
            if (!hp->n_ff) {
                s_err(err, el, "model: metadata feed_forward_length is missing");
                return MESH_EFORMAT;
            }
            S_B(gate, "ffn_gate.weight", E, hp->n_ff, 1, false);
            S_B(up, "ffn_up.weight", E, hp->n_ff, 1, false);
            S_B(down, "ffn_down.weight", hp->n_ff, E, 1, false);
        } else {
            L->moe = true;
            const int64_t X = hp->n_expert, F = hp->n_ff_exp, FS = F * hp->n_expert_shared;
            S_B(router, "ffn_gate_inp.weight", E, X, 1, false);
            S_B(sel_bias, "exp_probs_b.bias", X, 1, 1, true);
            S_B(gate_exps, "ffn_gate_exps.weight", E, F, X, false);
            S_B(up_exps, "ffn_up_exps.weight", E, F, X, false);
            S_B(down_exps, "ffn_down_exps.weight", F, E, X, false);
            if (FS) {
                S_B(gate_sh, "ffn_gate_shexp.weight", E, FS, 1, false);
                S_B(up_sh, "ffn_up_shexp.weight", E, FS, 1, false);
                S_B(down_sh, "ffn_down_shexp.weight", FS, E, 1, false);
            }
        }
        if (L->attn_norm.type != MESH_QT_F32 || L->kv_a_norm.type != MESH_QT_F32 ||
            L->ffn_norm.type != MESH_QT_F32 || (hp->q_lora && L->q_a_norm.type != MESH_QT_F32) ||
            (L->sel_bias.data.buf && L->sel_bias.type != MESH_QT_F32)) {
            s_err(err, el, "model: layer %u norm weights must be f32", il);
            return MESH_EUNSUPPORTED;
        }
    }
#undef S_B
    return 0;
}

static size_t s_take(size_t *at, size_t bytes) {
    size_t o = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return o;
}

static size_t s_max(size_t a, size_t b) {
    return a > b ? a : b;
}

static int s_alloc_work(mesh_model_t *m) {
    const mesh_hparams_t *hp = &m->hp;
    const size_t B = (size_t)m->max_batch, F = sizeof(float);
    const size_t H = hp->n_head, E = hp->n_embd, dq = hp->d_nope + hp->n_rot;
    const size_t dkv = hp->kv_lora + hp->n_rot;
    mesh_work_layout_t *w = &m->wl;
    size_t at = 0;
    size_t ffmax = s_max(hp->n_ff, (size_t)hp->n_ff_exp * hp->n_expert_shared);
    w->x = s_take(&at, B * E * F);
    w->xn = s_take(&at, B * E * F);
    w->qa = s_take(&at, B * s_max(hp->q_lora, 1) * F);
    w->q = s_take(&at, B * H * dq * F);
    w->qcat = s_take(&at, B * H * dkv * F);
    w->kv = s_take(&at, B * dkv * F);
    w->olat = s_take(&at, B * H * hp->kv_lora * F);
    w->o = s_take(&at, B * s_max(H * hp->d_v, E) * F);
    w->g = s_take(&at, B * s_max(ffmax, 1) * F);
    w->u = s_take(&at, B * s_max(ffmax, 1) * F);
    size_t moe = 0;
    if (hp->n_dense < hp->n_layer)
        moe = m->be->iface->moe_scratch_bytes(m->be->ctx, m->max_batch, (int)E, (int)hp->n_ff_exp,
                                              (int)(hp->n_ff_exp * hp->n_expert_shared),
                                              (int)hp->n_expert, (int)hp->n_expert_used);
    w->moe = s_take(&at, s_max(moe, 64));
    w->logits_in = s_take(&at, B * E * F);
    w->logits = s_take(&at, (size_t)MESH_LOGIT_ROWS * hp->n_vocab * F);
    w->ids = s_take(&at, B * 4);
    w->pos = s_take(&at, B * 4);
    w->slots = s_take(&at, B * 4);
    w->lidx = s_take(&at, B * 4);
    w->atok = s_take(&at, B * sizeof(mesh_attn_tok_t));
    size_t nseq = s_max(1, B < (size_t)m->kv->max_seqs ? B : (size_t)m->kv->max_seqs);
    m->h_tables_cap = nseq * (size_t)m->kv->max_blocks_per_seq;
    w->tables = s_take(&at, m->h_tables_cap * 4);
    w->total = at;
    m->h_i32 = malloc(B * 4 * 4);
    m->h_atok = malloc(B * sizeof(mesh_attn_tok_t));
    m->h_tables = malloc(m->h_tables_cap * 4);
    m->h_seq_len = malloc((size_t)m->kv->max_seqs * 4);
    m->h_seq_off = malloc((size_t)m->kv->max_seqs * 4);
    if (!m->h_i32 || !m->h_atok || !m->h_tables || !m->h_seq_len || !m->h_seq_off)
        return MESH_ENOMEM;
    return m->be->iface->buf_alloc(m->be->ctx, at, &m->work);
}

int mesh_model_load(const char *path, const mesh_model_params_t *pin, mesh_model_t **out,
                    char *err, size_t el) {
    *out = NULL;
    mesh_model_params_t p;
    if (pin)
        p = *pin;
    else
        mesh_model_params_default(&p);
    if (!p.max_batch)
        p.max_batch = 512;
    if (!p.max_seqs)
        p.max_seqs = 64;
    if (!p.kv_type)
        p.kv_type = MESH_QT_F32;
    if (p.kv_type != MESH_QT_F32 && p.kv_type != MESH_QT_F16) {
        s_err(err, el, "model: KV element type must be f32 or f16");
        return MESH_EINVAL;
    }
    mesh_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return MESH_ENOMEM;
    int rc = mesh_gguf_open(path, &m->gguf, err, el);
    if (rc)
        goto fail;
    if (strcmp(mesh_gguf_arch(m->gguf), "deepseek2") != 0) {
        s_err(err, el, "model: architecture '%s' is not supported (want deepseek2)",
              mesh_gguf_arch(m->gguf));
        rc = MESH_EUNSUPPORTED;
        goto fail;
    }
    if ((rc = s_hparams(m, err, el)))
        goto fail;
    mesh_backend_params_t bp = {p.device, p.n_threads};
    if ((rc = mesh_backend_new(p.backend, &bp, &m->be))) {
        s_err(err, el, "model: backend '%s' %s", p.backend ? p.backend : "cpu",
              rc == MESH_ENOTFOUND ? "is not built into this engine" : "failed to start");
        goto fail;
    }
    m->n_threads = bp.n_threads > 0 ? bp.n_threads : mesh_cpu_features()->physical_cores;
    // The whole file as one buffer: the CPU wraps the mapping (no copy).
    {
        uint64_t fsz = mesh_gguf_file_size(m->gguf);
        const mesh_gguf_tensor_t *t0 = mesh_gguf_n_tensors(m->gguf) > 0 ? mesh_gguf_tensor(m->gguf, 0) : NULL;
        if (!t0) {
            s_err(err, el, "model: file has no tensors");
            rc = MESH_EFORMAT;
            goto fail;
        }
        const uint8_t *base = (const uint8_t *)t0->data - t0->offset;
        if (m->be->iface->buf_wrap_host) {
            rc = m->be->iface->buf_wrap_host(m->be->ctx, base, (size_t)fsz, &m->weights_buf);
        } else {
            rc = m->be->iface->buf_alloc(m->be->ctx, (size_t)fsz, &m->weights_buf);
            if (!rc)
                rc = m->be->iface->buf_upload(m->be->ctx, (mesh_bptr_t){m->weights_buf, 0}, base,
                                              (size_t)fsz);
        }
        if (rc) {
            s_err(err, el, "model: could not place weights on the backend: %s", mesh_strerror(rc));
            goto fail;
        }
    }
    if ((rc = s_bind_weights(m, err, el)))
        goto fail;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(m->gguf); i++)
        m->n_params += mesh_gguf_tensor(m->gguf, i)->n_elements;
    uint32_t ft = 0;
    snprintf(m->file_type, sizeof m->file_type, "%s",
             mesh_gguf_get_u32(m->gguf, "general.file_type", &ft) == 0 ? s_ftype_name(ft) : "?");
    {
        const uint32_t dkv = m->hp.kv_lora + m->hp.n_rot;
        const uint64_t per_tok = (uint64_t)m->hp.n_layer * dkv * (p.kv_type == MESH_QT_F32 ? 4 : 2);
        // Default pool: the training context, capped at 8192 tokens (the full
        // 200k context of GLM-4.7-Flash would be 21 GiB of f32 KV).
        uint64_t dflt = m->hp.n_ctx_train < 8192 ? m->hp.n_ctx_train : 8192;
        uint64_t tokens = p.kv_bytes ? p.kv_bytes / per_tok : p.kv_tokens ? p.kv_tokens : dflt;
        rc = mesh_kv_new(m->be, p.kv_type, (int)m->hp.n_layer, (int)dkv, tokens, p.max_seqs,
                         m->hp.n_ctx_train > tokens ? m->hp.n_ctx_train : (uint32_t)tokens, &m->kv);
        if (rc) {
            s_err(err, el, "model: could not allocate the KV cache (%llu tokens): %s",
                  (unsigned long long)tokens, mesh_strerror(rc));
            goto fail;
        }
    }
    m->max_batch = (int)p.max_batch;
    if ((rc = s_alloc_work(m))) {
        s_err(err, el, "model: could not allocate scratch: %s", mesh_strerror(rc));
        goto fail;
    }
    *out = m;
    return 0;
fail:
    mesh_model_destroy(&m);
    return rc;
}

void mesh_model_destroy(mesh_model_t **pm) {
    mesh_model_t *m = *pm;
    if (!m)
        return;
    if (m->be) {
        mesh_kv_destroy(&m->kv);
        m->be->iface->buf_free(m->be->ctx, m->work);
        m->be->iface->buf_free(m->be->ctx, m->weights_buf);
        mesh_backend_destroy(&m->be);
    }
    free(m->layers);
    free(m->h_i32);
    free(m->h_atok);
    free(m->h_tables);
    free(m->h_seq_len);
    free(m->h_seq_off);
    mesh_gguf_close(&m->gguf);
    free(m);
    *pm = NULL;
}

void mesh_model_info(const mesh_model_t *m, mesh_model_info_t *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->arch, sizeof o->arch, "%s", mesh_gguf_arch(m->gguf));
    const char *name = NULL;
    if (mesh_gguf_get_str(m->gguf, "general.name", &name, NULL) == 0)
        snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->file_type, sizeof o->file_type, "%s", m->file_type);
    o->n_params = m->n_params;
    o->file_bytes = mesh_gguf_file_size(m->gguf);
    o->n_vocab = m->hp.n_vocab;
    o->n_ctx_train = m->hp.n_ctx_train;
    o->n_layer = m->hp.n_layer;
    o->n_embd = m->hp.n_embd;
    o->n_head = m->hp.n_head;
    o->n_expert = m->hp.n_expert;
    o->n_expert_used = m->hp.n_expert_used;
    o->kv_bytes_per_token = mesh_kv_bytes_per_token(m->kv);
    o->kv_capacity_tokens = mesh_kv_capacity_tokens(m->kv);
    snprintf(o->backend, sizeof o->backend, "%s", m->be->iface->name);
    m->be->iface->device_info(m->be->ctx, o->device, sizeof o->device, &o->mem_total,
                              &o->mem_free);
}

const mesh_gguf_t *mesh_model_gguf(const mesh_model_t *m) {
    return m->gguf;
}
uint32_t mesh_model_n_vocab(const mesh_model_t *m) {
    return m->hp.n_vocab;
}
mesh_kv_t *mesh_model_kv(mesh_model_t *m) {
    return m->kv;
}

int mesh_model_forward(mesh_model_t *m, mesh_kv_t *kv, const mesh_batch_t *b, float *logits) {
    if (!m || !kv || kv != m->kv || !b || b->n < 0 || (b->n > 0 && !b->tok))
        return MESH_EINVAL;
    // Validate everything and compute each sequence's new length before
    // changing anything: a refused batch leaves the cache as it was.
    for (int32_t i = 0; i < b->n; i++) {
        const mesh_batch_tok_t *t = &b->tok[i];
        if (t->token < 0 || (uint32_t)t->token >= m->hp.n_vocab || !mesh_kv_seq_live(kv, t->seq) ||
            t->pos < 0)
            return MESH_EINVAL;
        if (t->logits && !logits)
            return MESH_EINVAL;
        m->h_seq_len[t->seq] = kv->seqs[t->seq].len;
    }
    for (int32_t i = 0; i < b->n; i++) {
        const mesh_batch_tok_t *t = &b->tok[i];
        if (t->pos > m->h_seq_len[t->seq])
            return MESH_EINVAL; // a gap: positions must be filled in order
        if (t->pos + 1 > m->h_seq_len[t->seq])
            m->h_seq_len[t->seq] = t->pos + 1;
    }
    int32_t need = 0;
    for (int32_t i = 0; i < b->n; i++) {
        int32_t s = b->tok[i].seq;
        if (m->h_seq_len[s] < 0)
            continue; // counted already
        int32_t nb = mesh_kv_blocks_needed(kv, s, m->h_seq_len[s]);
        if (kv->seqs[s].n_blocks + nb > kv->max_blocks_per_seq)
            return MESH_ENOSPACE;
        need += nb;
        m->h_seq_len[s] = -1 - m->h_seq_len[s]; // mark, keep the value
    }
    if (need > kv->n_free) {
        for (int32_t i = 0; i < b->n; i++)
            if (m->h_seq_len[b->tok[i].seq] < 0)
                m->h_seq_len[b->tok[i].seq] = -1 - m->h_seq_len[b->tok[i].seq];
        return MESH_ENOSPACE;
    }
    for (int32_t i = 0; i < b->n; i++) {
        int32_t s = b->tok[i].seq;
        if (m->h_seq_len[s] < 0) {
            m->h_seq_len[s] = -1 - m->h_seq_len[s];
            int rc = mesh_kv_grow(kv, s, m->h_seq_len[s]);
            if (rc)
                return rc; // cannot happen after the checks above
        }
    }
    int rc = 0;
    float *lp = logits;
    for (int32_t c0 = 0; c0 < b->n && !rc; c0 += m->max_batch) {
        int n = b->n - c0 < m->max_batch ? b->n - c0 : m->max_batch;
        rc = mesh_ds2_forward_chunk(m, b->tok + c0, n, lp);
        for (int i = 0; i < n; i++)
            if (b->tok[c0 + i].logits)
                lp += m->hp.n_vocab;
    }
    for (int32_t i = 0; i < b->n && !rc; i++) {
        int32_t s = b->tok[i].seq;
        if (b->tok[i].pos + 1 > kv->seqs[s].len)
            kv->seqs[s].len = b->tok[i].pos + 1;
    }
    return rc;
}
