// SPDX-License-Identifier: MIT
// The deepseek2 graph (GLM-4.7-Flash, DeepSeek-V2/V3 style): MLA attention
// with the absorbed form over a latent KV cache, dense or MoE FFN.
//
// Per layer, for a chunk of n tokens (shapes per token):
//   xn   = rmsnorm(x) * attn_norm                          [n_embd]
//   q    = q_b(rmsnorm(q_a(xn)) * q_a_norm)  (or attn_q)   [H][d_nope + n_rot]
//   qcat = per head [k_b_h^T q_nope_h, rope(q_pe_h)]       [H][kv_lora + n_rot]
//   kv   = [rmsnorm(kv_a(xn)[:kv_lora]) * kv_a_norm, rope(kv_a(xn)[kv_lora:])]
//          stored in the cache at the token's position     [kv_lora + n_rot]
//   olat = softmax(qcat . cache rows * scale) . cache c     [H][kv_lora]
//   x   += attn_output(v_b_h olat_h)                       [n_embd]
//   x   += ffn(rmsnorm(x) * ffn_norm)   (SwiGLU or MoE)
// then logits = output(rmsnorm(x) * output_norm) for the flagged tokens only.
// Only backend slots are called (the fused ones through mesh_be_*, which
// fall back to the plain ops), so the graph runs on any backend.
#include "mesh_err.h"
#include "model.h"

#include <string.h>

static mesh_bptr_t s_at(const mesh_model_t *m, size_t off) {
    return (mesh_bptr_t){m->work, off};
}
static mesh_bptr_t s_atf(const mesh_model_t *m, size_t off, size_t floats) {
    return (mesh_bptr_t){m->work, off + floats * sizeof(float)};
}

#define S_CK(expr)                                                                                \
    do {                                                                                          \
        int rc_ = (expr);                                                                         \
        if (rc_)                                                                                  \
            return rc_;                                                                           \
    } while (0)

int mesh_ds2_forward_chunk(mesh_model_t *m, const mesh_batch_tok_t *tok, int n, float *logits) {
    const mesh_backend_iface_t *B = m->be->iface;
    void *bc = m->be->ctx;
    const mesh_hparams_t *hp = &m->hp;
    const mesh_work_layout_t *w = &m->wl;
    mesh_kv_t *kv = m->kv;
    const int E = (int)hp->n_embd, H = (int)hp->n_head, L = (int)hp->kv_lora, R = (int)hp->n_rot;
    const int dq = (int)(hp->d_nope + hp->n_rot), dkv = L + R, V = (int)hp->n_vocab;

    // Host-side plan: ids, positions, cache slots, attention table, flagged rows.
    int32_t *ids = m->h_i32, *pos = ids + m->max_batch, *slots = pos + m->max_batch,
            *lidx = slots + m->max_batch;
    int nf = 0, ntab = 0;
    for (int i = 0; i < n; i++)
        m->h_seq_off[tok[i].seq] = -1;
    for (int i = 0; i < n; i++) {
        int32_t s = tok[i].seq;
        ids[i] = tok[i].token;
        pos[i] = tok[i].pos;
        slots[i] = kv->seqs[s].blocks[tok[i].pos / kv->block_tokens] * kv->block_tokens +
                   tok[i].pos % kv->block_tokens;
        if (m->h_seq_off[s] < 0) {
            if ((size_t)(ntab + kv->seqs[s].n_blocks) > m->h_tables_cap)
                return MESH_ENOSPACE; // cannot happen: cap covers min(batch, seqs) full tables
            m->h_seq_off[s] = ntab;
            memcpy(m->h_tables + ntab, kv->seqs[s].blocks, sizeof(int32_t) * (size_t)kv->seqs[s].n_blocks);
            ntab += kv->seqs[s].n_blocks;
        }
        m->h_atok[i].n_ctx = tok[i].pos + 1;
        m->h_atok[i].table_off = m->h_seq_off[s];
        if (tok[i].logits)
            lidx[nf++] = i;
    }
    S_CK(B->buf_upload(bc, s_at(m, w->ids), ids, sizeof(int32_t) * (size_t)n));
    S_CK(B->buf_upload(bc, s_at(m, w->pos), pos, sizeof(int32_t) * (size_t)n));
    S_CK(B->buf_upload(bc, s_at(m, w->slots), slots, sizeof(int32_t) * (size_t)n));
    if (nf)
        S_CK(B->buf_upload(bc, s_at(m, w->lidx), lidx, sizeof(int32_t) * (size_t)nf));
    S_CK(B->buf_upload(bc, s_at(m, w->atok), m->h_atok, sizeof(mesh_attn_tok_t) * (size_t)n));
    S_CK(B->buf_upload(bc, s_at(m, w->tables), m->h_tables, sizeof(int32_t) * (size_t)ntab));

    const mesh_bptr_t X = s_at(m, w->x), XN = s_at(m, w->xn), QA = s_at(m, w->qa),
                      Q = s_at(m, w->q), QC = s_at(m, w->qcat), KV = s_at(m, w->kv),
                      OL = s_at(m, w->olat), O = s_at(m, w->o), G = s_at(m, w->g),
                      U = s_at(m, w->u);
    S_CK(B->get_rows(bc, &m->tok_embd, s_at(m, w->ids), n, X, E));
    // Each residual add is fused with the norm that follows it (the ffn norm,
    // the next layer's attention norm); only layer 0's attention norm and
    // the last layer's add stand alone.
    S_CK(B->rms_norm(bc, X, E, XN, E, n, E, &m->layers[0].attn_norm, hp->eps));
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const mesh_layer_t *ly = &m->layers[il];
        // attention (XN = the normalised input). The two products of XN
        // come first and back to back (a GPU backend may run them as one).
        if (hp->q_lora) {
            const int QL = (int)hp->q_lora;
            S_CK(B->matmul(bc, &ly->q_a, 0, 1, XN, E, 0, n, QA, QL, 0));
            S_CK(B->matmul(bc, &ly->kv_a, 0, 1, XN, E, 0, n, KV, dkv, 0));
            S_CK(B->rms_norm(bc, QA, QL, QA, QL, n, QL, &ly->q_a_norm, hp->eps));
            S_CK(B->matmul(bc, &ly->q_b, 0, 1, QA, QL, 0, n, Q, (int64_t)H * dq, 0));
        } else {
            S_CK(B->matmul(bc, &ly->q, 0, 1, XN, E, 0, n, Q, (int64_t)H * dq, 0));
            S_CK(B->matmul(bc, &ly->kv_a, 0, 1, XN, E, 0, n, KV, dkv, 0));
        }
        // q_abs[h] = k_b[h] q_nope[h]: k_b's rows are latent dims, so it is a
        // plain per-head matmul into the first kv_lora of each qcat head.
        S_CK(B->matmul(bc, &ly->k_b, 0, H, Q, (int64_t)H * dq, dq, n, QC, (int64_t)H * dkv, dkv));
        mesh_mla_prep_t pa = {.q = s_atf(m, w->q, hp->d_nope), .q_stride = (int64_t)H * dq,
                              .q_head = dq, .qc = s_atf(m, w->qcat, L),
                              .qc_stride = (int64_t)H * dkv, .qc_head = dkv, .n_head = H,
                              .kv = KV, .kv_stride = dkv, .kv_lora = L, .kv_norm = &ly->kv_a_norm,
                              .eps = hp->eps, .pos = s_at(m, w->pos), .slot = s_at(m, w->slots),
                              .cache = {kv->pool, 0}, .cache_type = kv->type,
                              .n_layer = kv->n_layer, .layer = (int)il,
                              .block_tokens = kv->block_tokens, .n = n, .rope = &hp->rope};
        S_CK(mesh_be_mla_prep(m->be, &pa));
        mesh_mla_args_t aa = {.q = QC, .out = OL, .toks = s_at(m, w->atok),
                              .tables = s_at(m, w->tables), .cache = {kv->pool, 0}, .n = n,
                              .n_head = H, .kv_lora = L, .d_kv = dkv, .layer = (int)il,
                              .n_layer = kv->n_layer, .block_tokens = kv->block_tokens,
                              .cache_type = kv->type, .scale = hp->attn_scale};
        S_CK(B->mla_attn(bc, &aa));
        S_CK(B->matmul(bc, &ly->v_b, 0, H, OL, (int64_t)H * L, L, n, O, (int64_t)H * hp->d_v,
                       hp->d_v));
        S_CK(B->matmul(bc, &ly->o, 0, 1, O, (int64_t)H * hp->d_v, 0, n, XN, E, 0));
        // x += attention; XN = ffn norm of x
        S_CK(mesh_be_add_rms_norm(m->be, X, E, XN, E, XN, E, n, E, &ly->ffn_norm, hp->eps));
        // feed-forward
        if (!ly->moe) {
            const int F = (int)hp->n_ff;
            S_CK(B->matmul(bc, &ly->gate, 0, 1, XN, E, 0, n, G, F, 0));
            S_CK(B->matmul(bc, &ly->up, 0, 1, XN, E, 0, n, U, F, 0));
            S_CK(B->swiglu(bc, G, F, U, F, G, F, n, F));
            S_CK(B->matmul(bc, &ly->down, 0, 1, G, F, 0, n, O, E, 0));
        } else {
            mesh_moe_args_t ma = {
                .x = XN, .out = O, .scratch = s_at(m, w->moe), .n = n, .router = &ly->router,
                .sel_bias = ly->sel_bias.data.buf ? &ly->sel_bias : NULL,
                .gate_exps = &ly->gate_exps, .up_exps = &ly->up_exps, .down_exps = &ly->down_exps,
                .gate_sh = ly->gate_sh.data.buf ? &ly->gate_sh : NULL, .up_sh = &ly->up_sh,
                .down_sh = &ly->down_sh, .n_embd = E, .n_ff = (int)hp->n_ff_exp,
                .n_ff_sh = (int)(hp->n_ff_exp * hp->n_expert_shared), .n_expert = (int)hp->n_expert,
                .n_used = (int)hp->n_expert_used, .gating = hp->gating, .norm_w = hp->w_norm,
                .w_scale = hp->w_scale};
            S_CK(B->moe(bc, &ma));
        }
        // x += ffn; XN = the next layer's attention norm of x
        if (il + 1 < hp->n_layer)
            S_CK(mesh_be_add_rms_norm(m->be, X, E, O, E, XN, E, n, E,
                                      &m->layers[il + 1].attn_norm, hp->eps));
        else
            S_CK(B->add(bc, X, E, O, E, n, E));
    }
    // output head, only for the flagged tokens, MESH_LOGIT_ROWS at a time
    for (int r0 = 0; r0 < nf; r0 += MESH_LOGIT_ROWS) {
        int rn = nf - r0 < MESH_LOGIT_ROWS ? nf - r0 : MESH_LOGIT_ROWS;
        mesh_bptr_t LI = s_at(m, w->logits_in), LO = s_at(m, w->logits);
        S_CK(B->copy_rows(bc, X, E, (mesh_bptr_t){m->work, w->lidx + (size_t)r0 * 4}, rn, LI, E, E));
        S_CK(B->rms_norm(bc, LI, E, LI, E, rn, E, &m->out_norm, hp->eps));
        S_CK(B->matmul(bc, &m->output, 0, 1, LI, E, 0, rn, LO, V, 0));
        S_CK(B->buf_download(bc, logits + (size_t)r0 * (size_t)V, LO, sizeof(float) * (size_t)rn * (size_t)V));
    }
    return 0;
}
