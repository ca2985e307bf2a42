// SPDX-License-Identifier: MIT
// Routing rules (see coord_route.h). No allocation, no I/O.
#include "coord_route.h"

#include "mesh_err.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int mesh_route_quant_rank(const char *q) {
    static const struct { const char *name; int rank; } s_ranks[] = {
        {"f32", 100}, {"bf16", 95}, {"f16", 95}, {"q8_0", 80}, {"q6_k", 70},
        {"q5_k_m", 62}, {"q5_k_s", 60}, {"q5_1", 58}, {"q5_0", 57}, {"q4_k_m", 52},
        {"q4_k_s", 50}, {"q4_1", 48}, {"q4_0", 47}, {"iq4_nl", 46}, {"iq4_xs", 45},
        {"q3_k_l", 40}, {"q3_k_m", 38}, {"q3_k_s", 36}, {"q2_k", 20},
    };
    if (!q)
        return 0;
    for (size_t i = 0; i < sizeof s_ranks / sizeof s_ranks[0]; i++)
        if (strcasecmp(q, s_ranks[i].name) == 0)
            return s_ranks[i].rank;
    return 1;
}

// 1 if a is clearly more than b (over 5% of the larger apart).
static int s_clearly_more(uint64_t a, uint64_t b) {
    if (a <= b)
        return 0;
    return (a - b) > a / 20;
}

typedef struct {
    int node, model;
    uint64_t kv, headroom;
} s_cand_t;

// Compares two candidates; <0 if a is better. *why gets the deciding rule.
static int s_compare(const s_cand_t *a, const s_cand_t *b, const mesh_route_node_t *nodes,
                     const char **why) {
    const mesh_route_node_t *na = &nodes[a->node], *nb = &nodes[b->node];
    if (s_clearly_more(a->headroom, b->headroom)) {
        *why = "most headroom";
        return -1;
    }
    if (s_clearly_more(b->headroom, a->headroom)) {
        *why = "most headroom";
        return 1;
    }
    uint32_t qa = na->active + na->queued, qb = nb->active + nb->queued;
    if (qa != qb) {
        *why = "shortest queue";
        return qa < qb ? -1 : 1;
    }
    float sa = na->models[a->model].decode_tps, sb = nb->models[b->model].decode_tps;
    if (sa != sb) {
        *why = "fastest";
        return sa > sb ? -1 : 1;
    }
    if (a->headroom != b->headroom) {
        *why = "most headroom";
        return a->headroom > b->headroom ? -1 : 1;
    }
    *why = "first of equals";
    return a->node <= b->node ? -1 : 1;
}

int mesh_route_pick(const mesh_route_req_t *req, const mesh_route_node_t *nodes, size_t n,
                    mesh_route_result_t *out) {
    memset(out, 0, sizeof *out);
    out->node = out->model = -1;
    const char *quant = (req->quant && *req->quant) ? req->quant : NULL;
    // What we saw, to name what was missing.
    int saw_model = 0, saw_quant = 0, saw_up = 0, saw_ctx = 0, saw_tried = 0;
    uint32_t best_ctx = 0;
    uint64_t best_free = 0, need_kv = 0;
    char quants[128] = "";
    s_cand_t best = {-1, -1, 0, 0}, second = {-1, -1, 0, 0};

    for (size_t i = 0; i < n; i++) {
        const mesh_route_node_t *nd = &nodes[i];
        int pick = -1, pick_rank = -1;
        uint64_t pick_kv = 0;
        uint64_t avail = nd->mem_free > nd->reserved ? nd->mem_free - nd->reserved : 0;
        for (size_t m = 0; m < nd->n_models; m++) {
            const mesh_route_model_t *md = &nd->models[m];
            if (!md->name || strcasecmp(md->name, req->model) != 0)
                continue;
            saw_model = 1;
            if (quant && strcasecmp(md->quant ? md->quant : "", quant) != 0) {
                if (md->quant && !strstr(quants, md->quant) &&
                    strlen(quants) + strlen(md->quant) + 3 < sizeof quants) {
                    if (*quants)
                        strcat(quants, ", ");
                    strcat(quants, md->quant);
                }
                continue;
            }
            saw_quant = 1;
            if (req->exclude && req->exclude[i] && nd->up && !nd->draining)
                saw_tried = 1;
            if (!nd->up || nd->draining || (req->exclude && req->exclude[i]))
                continue;
            saw_up = 1;
            if (md->ctx_limit > best_ctx)
                best_ctx = md->ctx_limit;
            if (req->tokens > md->ctx_limit)
                continue;
            saw_ctx = 1;
            uint64_t kv = md->kv_bytes_per_token * req->tokens;
            if (avail > best_free)
                best_free = avail;
            if (!need_kv || kv < need_kv)
                need_kv = kv;
            if (kv > avail)
                continue;
            int rank = mesh_route_quant_rank(md->quant);
            if (rank > pick_rank) {
                pick = (int)m;
                pick_rank = rank;
                pick_kv = kv;
            }
        }
        if (pick < 0)
            continue;
        s_cand_t c = {(int)i, pick, pick_kv, avail - pick_kv};
        const char *why;
        if (best.node < 0 || s_compare(&c, &best, nodes, &why) < 0) {
            second = best;
            best = c;
        } else if (second.node < 0 || s_compare(&c, &second, nodes, &why) < 0) {
            second = c;
        }
    }
    if (best.node >= 0) {
        out->node = best.node;
        out->model = best.model;
        out->kv_bytes = best.kv;
        out->headroom = best.headroom;
        const char *why = "only fit";
        if (second.node >= 0)
            s_compare(&best, &second, nodes, &why);
        snprintf(out->reason, sizeof out->reason, "%s", why);
        return 0;
    }
    if (!saw_model) {
        snprintf(out->missing, sizeof out->missing, "no node serves model '%s'", req->model);
        return MESH_ENOTFOUND;
    }
    if (!saw_quant) {
        snprintf(out->missing, sizeof out->missing,
                 "model '%s' is not served in quant '%s' (available: %s)", req->model, quant,
                 *quants ? quants : "none");
        return MESH_ENOTFOUND;
    }
    if (!saw_up && saw_tried) {
        snprintf(out->missing, sizeof out->missing,
                 "every live node serving '%s' was tried", req->model);
        return MESH_EBUSY;
    }
    if (!saw_up) {
        snprintf(out->missing, sizeof out->missing,
                 "every node serving '%s' is down or draining", req->model);
        return MESH_EBUSY;
    }
    if (!saw_ctx) {
        snprintf(out->missing, sizeof out->missing,
                 "context of %llu tokens is over every node's limit for '%s' (largest: %u)",
                 (unsigned long long)req->tokens, req->model, best_ctx);
        return MESH_ERANGE;
    }
    snprintf(out->missing, sizeof out->missing,
             "not enough free memory for the KV cache of %llu tokens (needs %.1f MiB, most "
             "free: %.1f MiB)",
             (unsigned long long)req->tokens, (double)need_kv / 1048576.0,
             (double)best_free / 1048576.0);
    return MESH_ENOSPACE;
}
