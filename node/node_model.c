// SPDX-License-Identifier: MIT
// GGUF header scan for capability reports (see node_model.h). Format facts:
// magic "GGUF", u32 version (2 or 3), u64 tensor count, u64 KV count, then
// KVs: u64-length key, u32 value type, value (strings are u64 length + bytes,
// arrays are u32 element type + u64 count + elements). Little-endian.
#include "node_model.h"

#include "mesh_err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *mesh_node_ftype_name(uint32_t t) {
    switch (t) {
    case 0: return "f32";
    case 1: return "f16";
    case 2: return "q4_0";
    case 3: return "q4_1";
    case 7: return "q8_0";
    case 8: return "q5_0";
    case 9: return "q5_1";
    case 10: return "q2_k";
    case 11: return "q3_k_s";
    case 12: return "q3_k_m";
    case 13: return "q3_k_l";
    case 14: return "q4_k_s";
    case 15: return "q4_k_m";
    case 16: return "q5_k_s";
    case 17: return "q5_k_m";
    case 18: return "q6_k";
    case 25: return "iq4_nl";
    case 30: return "iq4_xs";
    case 32: return "bf16";
    default: return NULL;
    }
}

typedef struct {
    FILE *f;
    uint64_t size, pos;
    int bad;
} s_rd_t;

static int s_read(s_rd_t *r, void *dst, uint64_t n) {
    if (r->bad || n > r->size - r->pos || fread(dst, 1, n, r->f) != n) {
        r->bad = 1;
        return -1;
    }
    r->pos += n;
    return 0;
}

static int s_skip(s_rd_t *r, uint64_t n) {
    if (r->bad || n > r->size - r->pos || fseeko(r->f, (off_t)n, SEEK_CUR) != 0) {
        r->bad = 1;
        return -1;
    }
    r->pos += n;
    return 0;
}

static uint64_t s_u64(s_rd_t *r) {
    uint64_t v = 0;
    s_read(r, &v, 8);
    return v;
}
static uint32_t s_u32(s_rd_t *r) {
    uint32_t v = 0;
    s_read(r, &v, 4);
    return v;
}

// Size of a scalar of a GGUF value type, 0 for string/array/unknown.
static uint64_t s_scalar_size(uint32_t t) {
    static const uint8_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

typedef struct {
    char key[96];
    uint64_t val;
} s_num_t;

int mesh_node_model_probe(const char *path, const char *name, mesh_node_model_t *m,
                          char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    struct stat st;
    s_rd_t r = {0};
    if (stat(path, &st) != 0 || !(r.f = fopen(path, "rb"))) {
        snprintf(err, err_len, "%s: cannot open model file", path);
        return MESH_ENOENT;
    }
    r.size = (uint64_t)st.st_size;
    m->file_size = r.size;
    char magic[4];
    int rc = 0;
    s_read(&r, magic, 4);
    uint32_t ver = s_u32(&r);
    s_u64(&r); // tensor count
    uint64_t n_kv = s_u64(&r);
    if (r.bad || memcmp(magic, "GGUF", 4) != 0 || (ver != 2 && ver != 3)) {
        snprintf(err, err_len, "%s: not a GGUF v2/v3 file", path);
        fclose(r.f);
        return MESH_EFORMAT;
    }
    char gname[64] = "";
    s_num_t nums[32];
    int n_nums = 0;
    uint32_t ftype = UINT32_MAX;
    for (uint64_t i = 0; i < n_kv && !r.bad; i++) {
        uint64_t klen = s_u64(&r);
        char key[256];
        if (klen == 0 || klen >= sizeof key) {
            r.bad = 1;
            break;
        }
        s_read(&r, key, klen);
        key[klen] = 0;
        uint32_t t = s_u32(&r);
        if (t == 8) { // string
            uint64_t slen = s_u64(&r);
            if (strcmp(key, "general.architecture") == 0 && slen < sizeof m->arch) {
                s_read(&r, m->arch, slen);
                m->arch[slen] = 0;
            } else if (strcmp(key, "general.name") == 0 && slen < sizeof gname) {
                s_read(&r, gname, slen);
                gname[slen] = 0;
            } else {
                s_skip(&r, slen);
            }
        } else if (t == 9) { // array
            uint32_t et = s_u32(&r);
            uint64_t cnt = s_u64(&r);
            if (et == 8) {
                for (uint64_t k = 0; k < cnt && !r.bad; k++)
                    s_skip(&r, s_u64(&r));
            } else if (s_scalar_size(et) && cnt <= (r.size - r.pos) / s_scalar_size(et)) {
                s_skip(&r, cnt * s_scalar_size(et));
            } else {
                r.bad = 1;
            }
        } else if (s_scalar_size(t)) {
            uint64_t v = 0;
            s_read(&r, &v, s_scalar_size(t));
            if (t == 1 || t == 3 || t == 5 || t == 11) { // signed: sign-extend
                int sh = 64 - 8 * (int)s_scalar_size(t);
                int64_t sv = (int64_t)(v << sh) >> sh;
                v = sv < 0 ? 0 : (uint64_t)sv;
            }
            if (strcmp(key, "general.file_type") == 0)
                ftype = (uint32_t)v;
            else if (n_nums < 32 && t != 6 && t != 12 && strlen(key) < sizeof nums[0].key) {
                memcpy(nums[n_nums].key, key, strlen(key) + 1); // length checked above
                nums[n_nums++].val = v;
            }
        } else {
            r.bad = 1;
        }
    }
    fclose(r.f);
    if (r.bad) {
        snprintf(err, err_len, "%s: GGUF header is truncated or malformed", path);
        return MESH_EFORMAT;
    }
    if (!m->arch[0]) {
        snprintf(err, err_len, "%s: GGUF has no general.architecture", path);
        return MESH_EFORMAT;
    }
    // Numeric keys of this architecture.
    uint64_t ctx = 0, layers = 0, kv_lora = 0, rope = 0, heads = 0, heads_kv = 0, klen = 0,
             vlen = 0, embd = 0;
    struct { const char *suffix; uint64_t *dst; } want[] = {
        {"context_length", &ctx}, {"block_count", &layers},
        {"attention.kv_lora_rank", &kv_lora}, {"rope.dimension_count", &rope},
        {"attention.head_count", &heads}, {"attention.head_count_kv", &heads_kv},
        {"attention.key_length", &klen}, {"attention.value_length", &vlen},
        {"embedding_length", &embd}};
    size_t alen = strlen(m->arch);
    for (int i = 0; i < n_nums; i++) {
        if (strncmp(nums[i].key, m->arch, alen) != 0 || nums[i].key[alen] != '.')
            continue;
        for (size_t w = 0; w < sizeof want / sizeof want[0]; w++)
            if (strcmp(nums[i].key + alen + 1, want[w].suffix) == 0)
                *want[w].dst = nums[i].val;
    }
    m->ctx_limit = ctx > UINT32_MAX ? UINT32_MAX : (uint32_t)ctx;
    m->n_layers = (uint32_t)layers;
    // KV cache bytes per token with an f16 cache. MLA keeps one latent
    // (kv_lora_rank) plus the rope key per layer; others keep K and V per
    // KV head.
    if (kv_lora)
        m->kv_bytes_per_token = layers * (kv_lora + rope) * 2;
    else {
        if (!heads_kv)
            heads_kv = heads;
        if (!klen && heads)
            klen = embd / heads;
        if (!vlen)
            vlen = klen;
        m->kv_bytes_per_token = layers * heads_kv * (klen + vlen) * 2;
    }
    const char *q = mesh_node_ftype_name(ftype);
    snprintf(m->quant, sizeof m->quant, "%s", q ? q : "unknown");
    if (name && *name)
        snprintf(m->name, sizeof m->name, "%s", name);
    else if (gname[0])
        snprintf(m->name, sizeof m->name, "%s", gname);
    else {
        const char *base = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
        char *dot = strchr(m->name, '.');
        if (dot)
            *dot = 0;
    }
    for (char *p = m->name; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (*p == ' ')
            *p = '-';
    }
    if (!m->ctx_limit || !m->n_layers) {
        snprintf(err, err_len, "%s: GGUF lacks %s.context_length or %s.block_count", path,
                 m->arch, m->arch);
        rc = MESH_EFORMAT;
    }
    return rc;
}
