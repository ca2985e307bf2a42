// SPDX-License-Identifier: MIT
// Byte-level BPE tokenizer: vocabulary and merge tables, special-token
// cutting, pre-tokenizers (one hand-written matcher per published regex
// family), BPE merging with a min-heap, decoding and the streaming decoder.
//
// The pre-tokenizer patterns (facts taken from the models' tokenizer.json
// files and llama.cpp's table of them):
//   llama3 family (llama3, llama-bpe, glm4, chatglm-bpe, dbrx, smaug-bpe):
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//     ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2: the same with \p{N} (one digit per piece).
//   gpt2 / default: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   deepseek-v3: three splits in sequence, \p{N}{1,3}; [一-龥぀-ゟ゠-ヿ]+; and
//     [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//      ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Each split keeps the text between matches as pieces of its own (Hugging
// Face's "Isolated" behaviour), and a later split works inside each piece
// of the earlier one (so "end of text" in a lookahead is the piece's end).
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh_err.h"
#include "unicode.h"

typedef enum {
    S_PRE_LLAMA3 = 0, // digit groups of up to 3
    S_PRE_QWEN2,      // single digits
    S_PRE_GPT2,
    S_PRE_DEEPSEEK3,
} s_pre_t;

static const struct {
    const char *name;
    s_pre_t pre;
} s_pre_names[] = {
    {"glm4", S_PRE_LLAMA3},     {"chatglm-bpe", S_PRE_LLAMA3}, {"llama-bpe", S_PRE_LLAMA3},
    {"llama3", S_PRE_LLAMA3},   {"dbrx", S_PRE_LLAMA3},        {"smaug-bpe", S_PRE_LLAMA3},
    {"qwen2", S_PRE_QWEN2},     {"deepseek-v3", S_PRE_DEEPSEEK3}, {"default", S_PRE_GPT2},
    {"gpt2", S_PRE_GPT2},       {"gpt-2", S_PRE_GPT2},
};

const char *mesh_tok_supported_pre(void) {
    return "glm4, chatglm-bpe, llama-bpe, llama3, dbrx, smaug-bpe, qwen2, deepseek-v3, "
           "default, gpt2, gpt-2";
}

typedef struct {
    uint64_t key;  // (left id << 32) | right id; 0 with rank < 0 marks empty
    int32_t rank;  // merge priority (lower first); -1 = empty slot
    int32_t id;    // id of the merged token
} s_merge_slot_t;

struct mesh_tok {
    s_pre_t pre;
    char *pre_name;
    size_t n_vocab;
    char *text;          // all token strings, NUL-separated
    size_t *text_off;    // [n_vocab] offset into text
    uint32_t *text_len;  // [n_vocab] bytes
    uint8_t *type;       // [n_vocab] mesh_tok_type_t
    char *dec;           // decoded bytes of every token, back to back
    size_t *dec_off;     // [n_vocab + 1] offsets into dec
    size_t max_dec;      // longest decoded token, bytes
    int32_t *vhash;      // open addressing over ids, -1 empty; [vhash_mask + 1]
    size_t vhash_mask;
    s_merge_slot_t *mhash; // [mhash_mask + 1]
    size_t mhash_mask;
    int32_t byte_id[256];  // token for each single byte, -1 when missing
    int32_t *special;      // ids of CONTROL/USER_DEFINED tokens, by first byte then length desc
    size_t n_special;
    size_t sp_start[257];  // special[sp_start[b] .. sp_start[b+1]) start with byte b
    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos;
};

// ---- GPT-2 byte <-> unicode mapping ----
// Printable Latin-1 bytes map to themselves; the other 68 bytes map to
// U+0100.. in byte order, so every byte has a visible character.
static uint32_t s_byte_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE)))
            n++;
    return 256 + n;
}

// Inverse: code point -> byte, or -1.
static int s_cp_byte(uint32_t cp) {
    if (cp < 256)
        return ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE)
                   ? (int)cp
                   : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (unsigned x = 0; x < 256; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE)) && n-- == 0)
            return (int)x;
    return -1;
}

// ---- hashing ----
static uint64_t s_fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t s_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t s_pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

int32_t mesh_tok_find(const mesh_tok_t *t, const char *s, size_t n) {
    size_t i = (size_t)s_fnv(s, n) & t->vhash_mask;
    for (;;) {
        int32_t id = t->vhash[i];
        if (id < 0)
            return -1;
        if (t->text_len[id] == n && !memcmp(t->text + t->text_off[id], s, n))
            return id;
        i = (i + 1) & t->vhash_mask;
    }
}

static const s_merge_slot_t *s_merge_find(const mesh_tok_t *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)s_mix(key) & t->mhash_mask;
    for (;;) {
        const s_merge_slot_t *m = &t->mhash[i];
        if (m->rank < 0)
            return NULL;
        if (m->key == key)
            return m;
        i = (i + 1) & t->mhash_mask;
    }
}

static void s_err(char *err, size_t err_len, const char *fmt, const char *a, long b) {
    if (err && err_len)
        snprintf(err, err_len, fmt, a, b);
}

// ---- construction ----
static int s_build_decoded(mesh_tok_t *t) {
    size_t total = 0;
    for (size_t i = 0; i < t->n_vocab; i++)
        total += t->text_len[i]; // decoding never makes a token longer
    t->dec = malloc(total + 1);
    t->dec_off = malloc((t->n_vocab + 1) * sizeof *t->dec_off);
    if (!t->dec || !t->dec_off)
        return MESH_ENOMEM;
    size_t o = 0;
    t->max_dec = 0;
    for (size_t i = 0; i < t->n_vocab; i++) {
        const uint8_t *s = (const uint8_t *)t->text + t->text_off[i];
        size_t n = t->text_len[i];
        t->dec_off[i] = o;
        int ty = t->type[i];
        unsigned hx;
        char tail;
        if (ty == MESH_TOK_TYPE_CONTROL || ty == MESH_TOK_TYPE_USER_DEFINED) {
            memcpy(t->dec + o, s, n);
            o += n;
        } else if (ty == MESH_TOK_TYPE_BYTE && n == 6 &&
                   sscanf((const char *)s, "<0x%2x%c", &hx, &tail) == 2 && tail == '>') {
            t->dec[o++] = (char)hx;
        } else {
            for (size_t k = 0; k < n;) {
                uint32_t cp;
                size_t l = mesh_utf8_next(s + k, n - k, &cp);
                int b = s_cp_byte(cp);
                if (b >= 0) {
                    t->dec[o++] = (char)b;
                } else {
                    memcpy(t->dec + o, s + k, l); // not a mapped byte: keep as written
                    o += l;
                }
                k += l;
            }
        }
        if (o - t->dec_off[i] > t->max_dec)
            t->max_dec = o - t->dec_off[i];
    }
    t->dec_off[t->n_vocab] = o;
    return 0;
}

// Sort key for special tokens: first byte, then longest first (so the first
// hit while scanning a bucket is the longest match), then id.
typedef struct {
    uint8_t first;
    uint32_t len;
    int32_t id;
} s_sp_key_t;

static int s_sp_cmp(const void *pa, const void *pb) {
    const s_sp_key_t *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

int mesh_tok_new(const mesh_tok_vocab_t *v, mesh_tok_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (!v || !v->tokens || v->n_tokens == 0 || v->n_tokens > INT32_MAX / 2) {
        s_err(err, err_len, "tokenizer: %s (%ld tokens)", "empty or oversized vocabulary",
              v ? (long)v->n_tokens : 0L);
        return MESH_EINVAL;
    }
    if (!v->model || strcmp(v->model, "gpt2")) {
        s_err(err, err_len, "tokenizer: model '%s' is not supported (only 'gpt2', byte-level BPE)%.0ld",
              v->model ? v->model : "(none)", 0L);
        return MESH_EUNSUPPORTED;
    }
    const char *pre_name = v->pre ? v->pre : "default";
    int pre = -1;
    for (size_t i = 0; i < sizeof s_pre_names / sizeof s_pre_names[0]; i++)
        if (!strcmp(pre_name, s_pre_names[i].name))
            pre = (int)s_pre_names[i].pre;
    if (pre < 0) {
        if (err && err_len)
            snprintf(err, err_len, "tokenizer: unknown pre-tokenizer '%s' (supported: %s)",
                     pre_name, mesh_tok_supported_pre());
        return MESH_EUNSUPPORTED;
    }
    const int32_t ids[6] = {v->bos, v->eos, v->eot, v->eom, v->unk, v->pad};
    static const char *const id_names[6] = {"bos", "eos", "eot", "eom", "unknown", "padding"};
    for (int i = 0; i < 6; i++)
        if (ids[i] >= (int64_t)v->n_tokens || ids[i] < -1) {
            s_err(err, err_len, "tokenizer: %s token id %ld is outside the vocabulary", id_names[i],
                  (long)ids[i]);
            return MESH_ERANGE;
        }

    int rc = MESH_ENOMEM;
    mesh_tok_t *t = calloc(1, sizeof *t);
    if (!t)
        goto err;
    t->pre = (s_pre_t)pre;
    t->n_vocab = v->n_tokens;
    t->bos = v->bos, t->eos = v->eos, t->eot = v->eot, t->eom = v->eom;
    t->unk = v->unk, t->pad = v->pad, t->add_bos = v->add_bos;
    t->pre_name = strdup(pre_name);
    t->text_off = malloc(t->n_vocab * sizeof *t->text_off);
    t->text_len = malloc(t->n_vocab * sizeof *t->text_len);
    t->type = malloc(t->n_vocab);
    if (!t->pre_name || !t->text_off || !t->text_len || !t->type)
        goto err;
    size_t total = 0;
    for (size_t i = 0; i < t->n_vocab; i++) {
        if (!v->tokens[i]) {
            rc = MESH_EFORMAT;
            s_err(err, err_len, "tokenizer: %s %ld is missing", "token", (long)i);
            goto err;
        }
        size_t n = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        if (n > UINT32_MAX / 4) {
            rc = MESH_EFORMAT;
            s_err(err, err_len, "tokenizer: %s %ld is too long", "token", (long)i);
            goto err;
        }
        t->text_len[i] = (uint32_t)n;
        t->text_off[i] = total;
        total += n + 1;
        int ty = v->token_types ? v->token_types[i] : MESH_TOK_TYPE_NORMAL;
        if (ty < 0 || ty >= MESH_TOK_TYPE_COUNT) {
            rc = MESH_EFORMAT;
            s_err(err, err_len, "tokenizer: token type %s of token %ld is not 0..6", "", (long)i);
            goto err;
        }
        t->type[i] = (uint8_t)ty;
    }
    t->text = malloc(total ? total : 1);
    if (!t->text)
        goto err;
    for (size_t i = 0; i < t->n_vocab; i++) {
        memcpy(t->text + t->text_off[i], v->tokens[i], t->text_len[i]);
        t->text[t->text_off[i] + t->text_len[i]] = 0;
    }

    // Vocabulary hash: first id wins for duplicate strings.
    size_t vcap = s_pow2_at_least(t->n_vocab * 2);
    t->vhash = malloc(vcap * sizeof *t->vhash);
    if (!t->vhash)
        goto err;
    memset(t->vhash, 0xff, vcap * sizeof *t->vhash);
    t->vhash_mask = vcap - 1;
    for (size_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->text + t->text_off[id];
        size_t n = t->text_len[id];
        size_t i = (size_t)s_fnv(s, n) & t->vhash_mask;
        bool dup = false;
        while (t->vhash[i] >= 0) {
            int32_t o = t->vhash[i];
            if (t->text_len[o] == n && !memcmp(t->text + t->text_off[o], s, n)) {
                dup = true;
                break;
            }
            i = (i + 1) & t->vhash_mask;
        }
        if (!dup)
            t->vhash[i] = (int32_t)id;
    }

    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = mesh_utf8_encode(s_byte_cp((uint8_t)b), u);
        t->byte_id[b] = mesh_tok_find(t, u, n);
    }

    // Merge table over id pairs. A merge whose halves or result are not in
    // the vocabulary can never fire and is dropped (as Hugging Face does).
    size_t mcap = s_pow2_at_least(v->n_merges * 2 + 1);
    t->mhash = malloc(mcap * sizeof *t->mhash);
    if (!t->mhash)
        goto err;
    for (size_t i = 0; i < mcap; i++)
        t->mhash[i].rank = -1, t->mhash[i].key = 0, t->mhash[i].id = -1;
    t->mhash_mask = mcap - 1;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (size_t r = 0; r < v->n_merges && r < INT32_MAX; r++) {
        const char *m = v->merges ? v->merges[r] : NULL;
        if (!m)
            continue;
        size_t n = v->merge_lens ? v->merge_lens[r] : strlen(m);
        const char *sp = memchr(m, ' ', n);
        if (!sp || sp == m || sp == m + n - 1)
            continue;
        size_t la = (size_t)(sp - m), lb = n - la - 1;
        int32_t a = mesh_tok_find(t, m, la), b = mesh_tok_find(t, sp + 1, lb);
        if (a < 0 || b < 0)
            continue;
        if (la + lb > cat_cap) {
            char *nc = realloc(cat, la + lb);
            if (!nc) {
                free(cat);
                goto err;
            }
            cat = nc;
            cat_cap = la + lb;
        }
        memcpy(cat, m, la);
        memcpy(cat + la, sp + 1, lb);
        int32_t id = mesh_tok_find(t, cat, la + lb);
        if (id < 0)
            continue;
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        size_t i = (size_t)s_mix(key) & t->mhash_mask;
        while (t->mhash[i].rank >= 0 && t->mhash[i].key != key)
            i = (i + 1) & t->mhash_mask;
        if (t->mhash[i].rank < 0) { // the first (lowest) rank of a pair wins
            t->mhash[i].key = key;
            t->mhash[i].rank = (int32_t)r;
            t->mhash[i].id = id;
        }
    }
    free(cat);

    // Special tokens: CONTROL and USER_DEFINED with non-empty text.
    t->special = malloc(t->n_vocab * sizeof *t->special);
    s_sp_key_t *keys = malloc(t->n_vocab * sizeof *keys);
    if (!t->special || !keys) {
        free(keys);
        goto err;
    }
    for (size_t i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == MESH_TOK_TYPE_CONTROL || t->type[i] == MESH_TOK_TYPE_USER_DEFINED) &&
            t->text_len[i] > 0)
            keys[t->n_special++] = (s_sp_key_t){(uint8_t)t->text[t->text_off[i]], t->text_len[i],
                                                (int32_t)i};
    qsort(keys, t->n_special, sizeof *keys, s_sp_cmp);
    for (size_t k = 0; k < t->n_special; k++)
        t->special[k] = keys[k].id;
    for (size_t b = 0, k = 0; b < 256; b++) {
        while (k < t->n_special && keys[k].first < b)
            k++;
        t->sp_start[b] = k;
    }
    t->sp_start[256] = t->n_special;
    free(keys);

    if ((rc = s_build_decoded(t)) < 0)
        goto err;
    *out = t;
    return 0;
err:
    if (rc == MESH_ENOMEM)
        s_err(err, err_len, "tokenizer: %s (%ld tokens)", "out of memory", (long)v->n_tokens);
    mesh_tok_destroy(&t);
    return rc;
}

void mesh_tok_destroy(mesh_tok_t **tp) {
    if (!tp || !*tp)
        return;
    mesh_tok_t *t = *tp;
    free(t->pre_name);
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->type);
    free(t->dec);
    free(t->dec_off);
    free(t->vhash);
    free(t->mhash);
    free(t->special);
    free(t);
    *tp = NULL;
}

size_t mesh_tok_n_vocab(const mesh_tok_t *t) { return t->n_vocab; }
const char *mesh_tok_pre(const mesh_tok_t *t) { return t->pre_name; }
int32_t mesh_tok_bos(const mesh_tok_t *t) { return t->bos; }
int32_t mesh_tok_eos(const mesh_tok_t *t) { return t->eos; }
int32_t mesh_tok_eot(const mesh_tok_t *t) { return t->eot; }
int32_t mesh_tok_eom(const mesh_tok_t *t) { return t->eom; }
int32_t mesh_tok_unk(const mesh_tok_t *t) { return t->unk; }
int32_t mesh_tok_pad(const mesh_tok_t *t) { return t->pad; }
bool mesh_tok_add_bos_default(const mesh_tok_t *t) { return t->add_bos; }

bool mesh_tok_is_end_of_generation(const mesh_tok_t *t, int32_t id) {
    return id >= 0 && (id == t->eos || id == t->eot || id == t->eom);
}

const char *mesh_tok_token_text(const mesh_tok_t *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->text_len[id];
    return t->text + t->text_off[id];
}

mesh_tok_type_t mesh_tok_token_type(const mesh_tok_t *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->n_vocab)
        return MESH_TOK_TYPE_UNDEFINED;
    return (mesh_tok_type_t)t->type[id];
}

// ---- from GGUF ----
static int s_gguf_id(const mesh_gguf_t *g, const char *key, int32_t *out, char *err,
                     size_t err_len) {
    uint32_t v;
    int rc = mesh_gguf_get_u32(g, key, &v);
    *out = -1;
    if (rc == MESH_ENOENT)
        return 0;
    if (rc < 0 || v > INT32_MAX) {
        s_err(err, err_len, "tokenizer: key '%s' is not a token id%.0ld", key, 0L);
        return MESH_EFORMAT;
    }
    *out = (int32_t)v;
    return 0;
}

int mesh_tok_new_from_gguf(const mesh_gguf_t *g, mesh_tok_t **out, char *err,
                           size_t err_len) {
    *out = NULL;
    mesh_tok_vocab_t v = {0};
    const char **tokens = NULL, **merges = NULL;
    size_t *token_lens = NULL, *merge_lens = NULL;
    int32_t *types = NULL;
    int rc = mesh_gguf_get_str(g, "tokenizer.ggml.model", &v.model, NULL);
    if (rc < 0) {
        s_err(err, err_len, "tokenizer: the file has no %s%.0ld", "tokenizer.ggml.model string", 0L);
        return rc == MESH_ENOENT ? MESH_ENOENT : MESH_EFORMAT;
    }
    if (strcmp(v.model, "gpt2")) {
        s_err(err, err_len, "tokenizer: model '%s' is not supported (only 'gpt2', byte-level BPE)%.0ld",
              v.model, 0L);
        return MESH_EUNSUPPORTED;
    }
    rc = mesh_gguf_get_str(g, "tokenizer.ggml.pre", &v.pre, NULL);
    if (rc == MESH_ENOENT)
        v.pre = "default";
    else if (rc < 0) {
        s_err(err, err_len, "tokenizer: %s is not a string%.0ld", "tokenizer.ggml.pre", 0L);
        return MESH_EFORMAT;
    }
    mesh_gguf_type_t et;
    uint64_t n = 0, nm = 0;
    rc = mesh_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n);
    if (rc < 0 || et != MESH_GGUF_STRING || n == 0 || n > INT32_MAX / 2) {
        s_err(err, err_len, "tokenizer: %s is missing or not a non-empty string array%.0ld",
              "tokenizer.ggml.tokens", 0L);
        return rc == MESH_ENOENT ? MESH_ENOENT : MESH_EFORMAT;
    }
    rc = mesh_gguf_get_arr_info(g, "tokenizer.ggml.merges", &et, &nm);
    if (rc == MESH_ENOENT) {
        nm = 0;
    } else if (rc < 0 || et != MESH_GGUF_STRING || nm > INT32_MAX) {
        s_err(err, err_len, "tokenizer: %s is not a string array%.0ld", "tokenizer.ggml.merges", 0L);
        return MESH_EFORMAT;
    }
    rc = MESH_ENOMEM;
    tokens = malloc(n * sizeof *tokens);
    token_lens = malloc(n * sizeof *token_lens);
    types = malloc(n * sizeof *types);
    merges = malloc((nm ? nm : 1) * sizeof *merges);
    merge_lens = malloc((nm ? nm : 1) * sizeof *merge_lens);
    if (!tokens || !token_lens || !types || !merges || !merge_lens) {
        s_err(err, err_len, "tokenizer: %s (%ld tokens)", "out of memory", (long)n);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++)
        if ((rc = mesh_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &tokens[i],
                                        &token_lens[i])) < 0) {
            s_err(err, err_len, "tokenizer: cannot read %s %ld", "tokenizer.ggml.tokens entry", (long)i);
            goto done;
        }
    for (uint64_t i = 0; i < nm; i++)
        if ((rc = mesh_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &merges[i],
                                        &merge_lens[i])) < 0) {
            s_err(err, err_len, "tokenizer: cannot read %s %ld", "tokenizer.ggml.merges entry", (long)i);
            goto done;
        }
    uint64_t nt = 0;
    rc = mesh_gguf_get_arr_info(g, "tokenizer.ggml.token_type", &et, &nt);
    if (rc == MESH_ENOENT) {
        for (uint64_t i = 0; i < n; i++)
            types[i] = MESH_TOK_TYPE_NORMAL;
    } else {
        const void *data = NULL;
        if (rc < 0 || (et != MESH_GGUF_INT32 && et != MESH_GGUF_UINT32) || nt != n ||
            mesh_gguf_get_arr_data(g, "tokenizer.ggml.token_type", &data) < 0) {
            s_err(err, err_len, "tokenizer: %s must be an int32 array with one entry per token (%ld)",
                  "tokenizer.ggml.token_type", (long)n);
            rc = MESH_EFORMAT;
            goto done;
        }
        memcpy(types, data, n * sizeof *types); // little-endian host, as the reader assumes
    }
    if ((rc = s_gguf_id(g, "tokenizer.ggml.bos_token_id", &v.bos, err, err_len)) < 0 ||
        (rc = s_gguf_id(g, "tokenizer.ggml.eos_token_id", &v.eos, err, err_len)) < 0 ||
        (rc = s_gguf_id(g, "tokenizer.ggml.eot_token_id", &v.eot, err, err_len)) < 0 ||
        (rc = s_gguf_id(g, "tokenizer.ggml.eom_token_id", &v.eom, err, err_len)) < 0 ||
        (rc = s_gguf_id(g, "tokenizer.ggml.unknown_token_id", &v.unk, err, err_len)) < 0 ||
        (rc = s_gguf_id(g, "tokenizer.ggml.padding_token_id", &v.pad, err, err_len)) < 0)
        goto done;
    rc = mesh_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v.add_bos);
    if (rc == MESH_ENOENT) {
        v.add_bos = false; // gpt2-style vocabularies add no BOS unless told to
    } else if (rc < 0) {
        s_err(err, err_len, "tokenizer: %s is not a bool%.0ld", "tokenizer.ggml.add_bos_token", 0L);
        goto done;
    }
    v.tokens = tokens;
    v.token_lens = token_lens;
    v.token_types = types;
    v.n_tokens = (size_t)n;
    v.merges = merges;
    v.merge_lens = merge_lens;
    v.n_merges = (size_t)nm;
    rc = mesh_tok_new(&v, out, err, err_len);
done:
    free(tokens);
    free(token_lens);
    free(types);
    free(merges);
    free(merge_lens);
    return rc;
}

// ---- pre-tokenizers ----
// A matcher looks at code points cp[0..n) (one piece of the previous split)
// with their class flags fl[], and returns how many code points the pattern
// matches at position i (0: no match starting at i).
typedef size_t (*s_match_fn)(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i);

static inline bool s_is_nl(uint32_t c) { return c == '\r' || c == '\n'; }
static inline uint32_t s_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static size_t s_run(const uint8_t *fl, size_t n, size_t i, unsigned mask) {
    size_t j = i;
    while (j < n && (fl[j] & mask))
        j++;
    return j;
}

// [^\s\p{L}\p{N}]: anything that is not whitespace, letter or number
// (pseudo code points of invalid bytes included).
static inline bool s_is_other(uint8_t f) {
    return !(f & (MESH_UNI_WS | MESH_UNI_L | MESH_UNI_N));
}

// Contractions 's 't 're 've 'm 'll 'd; ci: ASCII case-insensitive.
static size_t s_contraction(const uint32_t *cp, size_t n, size_t i, bool ci) {
    if (cp[i] != '\'' || i + 1 >= n)
        return 0;
    uint32_t a = ci ? s_lower(cp[i + 1]) : cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (i + 2 < n) {
        uint32_t b = ci ? s_lower(cp[i + 2]) : cp[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    return 0;
}

// \s*[\r\n]+|\s+(?!\S)|\s+ at a whitespace code point.
static size_t s_whitespace(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i,
                           bool nl_rule) {
    size_t e = s_run(fl, n, i, MESH_UNI_WS);
    if (nl_rule) {
        // \s*[\r\n]+: backtracking settles on the last newline of the run.
        for (size_t j = e; j > i; j--)
            if (s_is_nl(cp[j - 1]))
                return j - i;
    }
    if (e == n || e - i == 1)
        return e - i; // \s+(?!\S) to the end, or \s+ for a lone space before text
    return e - i - 1; // leave one space to prefix the next word
}

static size_t s_match_llama3_impl(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i,
                                  size_t max_digits) {
    size_t m = s_contraction(cp, n, i, true);
    if (m)
        return m;
    uint8_t f = fl[i];
    if (f & MESH_UNI_L)
        return s_run(fl, n, i, MESH_UNI_L) - i;
    if (!(f & MESH_UNI_N) && !s_is_nl(cp[i]) && i + 1 < n && (fl[i + 1] & MESH_UNI_L))
        return s_run(fl, n, i + 1, MESH_UNI_L) - i;
    if (f & MESH_UNI_N) {
        size_t e = s_run(fl, n, i, MESH_UNI_N) - i;
        return e < max_digits ? e : max_digits;
    }
    size_t j = (cp[i] == ' ' && i + 1 < n && s_is_other(fl[i + 1])) ? i + 1 : i;
    if (s_is_other(fl[j])) {
        while (j < n && s_is_other(fl[j]))
            j++;
        while (j < n && s_is_nl(cp[j]))
            j++;
        return j - i;
    }
    return s_whitespace(cp, fl, n, i, true);
}

static size_t s_match_llama3(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    return s_match_llama3_impl(cp, fl, n, i, 3);
}

static size_t s_match_qwen2(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    return s_match_llama3_impl(cp, fl, n, i, 1);
}

static size_t s_match_gpt2(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    size_t m = s_contraction(cp, n, i, false);
    if (m)
        return m;
    size_t j = (cp[i] == ' ' && i + 1 < n) ? i + 1 : i;
    uint8_t f = fl[j];
    if (f & MESH_UNI_L)
        return s_run(fl, n, j, MESH_UNI_L) - i;
    if (f & MESH_UNI_N)
        return s_run(fl, n, j, MESH_UNI_N) - i;
    if (s_is_other(f)) {
        while (j < n && s_is_other(fl[j]))
            j++;
        return j - i;
    }
    return s_whitespace(cp, fl, n, i, false);
}

static size_t s_match_digits3(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    (void)cp;
    if (!(fl[i] & MESH_UNI_N))
        return 0;
    size_t e = s_run(fl, n, i, MESH_UNI_N) - i;
    return e < 3 ? e : 3;
}

static inline bool s_is_cjk_kana(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) ||
           (c >= 0x30A0 && c <= 0x30FF);
}

static size_t s_match_cjk(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    (void)fl;
    size_t j = i;
    while (j < n && s_is_cjk_kana(cp[j]))
        j++;
    return j - i;
}

static inline bool s_is_ascii_punct(uint32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
}

static inline bool s_is_ascii_alpha(uint32_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static size_t s_match_ds3(const uint32_t *cp, const uint8_t *fl, size_t n, size_t i) {
    const unsigned LM = MESH_UNI_L | MESH_UNI_M, PS = MESH_UNI_P | MESH_UNI_S;
    uint32_t c = cp[i];
    uint8_t f = fl[i];
    if (s_is_ascii_punct(c) && i + 1 < n && s_is_ascii_alpha(cp[i + 1])) {
        size_t j = i + 1;
        while (j < n && s_is_ascii_alpha(cp[j]))
            j++;
        return j - i;
    }
    if (f & LM)
        return s_run(fl, n, i, LM) - i;
    if (!s_is_nl(c) && !(f & (MESH_UNI_L | PS)) && i + 1 < n && (fl[i + 1] & LM))
        return s_run(fl, n, i + 1, LM) - i;
    size_t j = (c == ' ' && i + 1 < n && (fl[i + 1] & PS)) ? i + 1 : i;
    if (fl[j] & PS) {
        j = s_run(fl, n, j, PS);
        while (j < n && s_is_nl(cp[j]))
            j++;
        return j - i;
    }
    if (f & MESH_UNI_WS)
        return s_whitespace(cp, fl, n, i, true);
    return 0;
}

// ---- encoding ----
typedef struct {
    int32_t *v;
    size_t n, cap;
} s_ids_t;

static int s_push(s_ids_t *a, int32_t id) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv)
            return MESH_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = id;
    return 0;
}

typedef struct {
    int32_t rank;
    int32_t left;  // symbol index
    int32_t right; // symbol index
    int32_t lid, rid; // ids at push time (stale entries are skipped)
} s_heap_ent_t;

// Scratch reused across the pieces of one encode call.
typedef struct {
    uint32_t *cp;   // [cap] code points of the current span
    uint8_t *fl;    // [cap] their class flags
    size_t *off;    // [cap + 1] byte offset of each code point
    size_t *pa, *pb; // [2 * (cap + 1)] piece boundaries (ping-pong between splits)
    size_t cap;
    int32_t *sym_id, *sym_prev, *sym_next; // [bcap] BPE symbols
    s_heap_ent_t *heap;                    // [3 * bcap]
    size_t bcap;
} s_scratch_t;

static void s_scratch_free(s_scratch_t *s) {
    free(s->cp);
    free(s->fl);
    free(s->off);
    free(s->pa);
    free(s->pb);
    free(s->sym_id);
    free(s->sym_prev);
    free(s->sym_next);
    free(s->heap);
}

static int s_scratch_cps(s_scratch_t *s, size_t n) {
    if (n <= s->cap)
        return 0;
    size_t c = s_pow2_at_least(n);
    free(s->cp), free(s->fl), free(s->off), free(s->pa), free(s->pb);
    s->cp = malloc(c * sizeof *s->cp);
    s->fl = malloc(c);
    s->off = malloc((c + 1) * sizeof *s->off);
    s->pa = malloc(2 * (c + 1) * sizeof *s->pa);
    s->pb = malloc(2 * (c + 1) * sizeof *s->pb);
    s->cap = (s->cp && s->fl && s->off && s->pa && s->pb) ? c : 0;
    return s->cap ? 0 : MESH_ENOMEM;
}

static int s_scratch_bpe(s_scratch_t *s, size_t n) {
    if (n <= s->bcap)
        return 0;
    size_t c = s_pow2_at_least(n);
    free(s->sym_id), free(s->sym_prev), free(s->sym_next), free(s->heap);
    s->sym_id = malloc(c * sizeof *s->sym_id);
    s->sym_prev = malloc(c * sizeof *s->sym_prev);
    s->sym_next = malloc(c * sizeof *s->sym_next);
    s->heap = malloc(3 * c * sizeof *s->heap); // n - 1 initial pairs + 2 per merge
    s->bcap = (s->sym_id && s->sym_prev && s->sym_next && s->heap) ? c : 0;
    return s->bcap ? 0 : MESH_ENOMEM;
}

static inline bool s_heap_less(const s_heap_ent_t *a, const s_heap_ent_t *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void s_heap_push(s_heap_ent_t *h, size_t *n, s_heap_ent_t e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static s_heap_ent_t s_heap_pop(s_heap_ent_t *h, size_t *n) {
    s_heap_ent_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && s_heap_less(&h[c + 1], &h[c]))
            c++;
        if (!s_heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void s_heap_try(const mesh_tok_t *t, s_scratch_t *s, size_t *hn, int32_t l, int32_t r) {
    if (l < 0 || r < 0)
        return;
    const s_merge_slot_t *m = s_merge_find(t, s->sym_id[l], s->sym_id[r]);
    if (m)
        s_heap_push(s->heap, hn, (s_heap_ent_t){m->rank, l, r, s->sym_id[l], s->sym_id[r]});
}

// BPE over the bytes of one piece: start from one symbol per byte, merge the
// lowest-ranked adjacent pair (leftmost on ties) until none is left.
// O(n log n): each merge removes a symbol and pushes at most two entries.
static int s_bpe(const mesh_tok_t *t, s_scratch_t *s, const uint8_t *b, size_t n, s_ids_t *out) {
    int rc = s_scratch_bpe(s, n);
    if (rc < 0)
        return rc;
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[b[i]];
        if (id < 0)
            id = t->unk; // a vocabulary without this byte: unknown token, or dropped
        if (id < 0)
            continue;
        s->sym_id[ns] = id;
        s->sym_prev[ns] = ns - 1;
        s->sym_next[ns] = ns + 1;
        ns++;
    }
    if (ns == 0)
        return 0;
    s->sym_next[ns - 1] = -1;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        s_heap_try(t, s, &hn, i, i + 1);
    while (hn > 0) {
        s_heap_ent_t e = s_heap_pop(s->heap, &hn);
        // Stale when either side merged since the push (ids change) or the
        // right symbol was absorbed (then it is no longer left's neighbour).
        if (s->sym_id[e.left] != e.lid || s->sym_next[e.left] != e.right ||
            s->sym_id[e.right] != e.rid)
            continue;
        const s_merge_slot_t *m = s_merge_find(t, e.lid, e.rid);
        s->sym_id[e.left] = m->id;
        int32_t nx = s->sym_next[e.right];
        s->sym_next[e.left] = nx;
        if (nx >= 0)
            s->sym_prev[nx] = e.left;
        s->sym_id[e.right] = -1; // dead
        s->sym_next[e.right] = -2;
        s_heap_try(t, s, &hn, s->sym_prev[e.left], e.left);
        s_heap_try(t, s, &hn, e.left, nx);
    }
    for (int32_t i = 0; i >= 0; i = s->sym_next[i])
        if ((rc = s_push(out, s->sym_id[i])) < 0)
            return rc;
    return 0;
}

// Pre-tokenizes and BPE-encodes text without special tokens.
static int s_encode_text(const mesh_tok_t *t, s_scratch_t *s, const char *text, size_t len,
                         s_ids_t *out) {
    if (len == 0)
        return 0;
    int rc = s_scratch_cps(s, len);
    if (rc < 0)
        return rc;
    const uint8_t *u = (const uint8_t *)text;
    size_t n = 0;
    for (size_t o = 0; o < len; n++) {
        s->off[n] = o;
        o += mesh_utf8_next(u + o, len - o, &s->cp[n]);
        s->fl[n] = (uint8_t)mesh_uni_flags(s->cp[n]);
    }
    s->off[n] = len;

    s_match_fn stages[3];
    size_t n_stages = 0;
    switch (t->pre) {
    case S_PRE_LLAMA3: stages[n_stages++] = s_match_llama3; break;
    case S_PRE_QWEN2: stages[n_stages++] = s_match_qwen2; break;
    case S_PRE_GPT2: stages[n_stages++] = s_match_gpt2; break;
    case S_PRE_DEEPSEEK3:
        stages[n_stages++] = s_match_digits3;
        stages[n_stages++] = s_match_cjk;
        stages[n_stages++] = s_match_ds3;
        break;
    }
    // Pieces are [pa[2k], pa[2k+1]) in code point indexes.
    size_t *pa = s->pa, *pb = s->pb, np = 1;
    pa[0] = 0, pa[1] = n;
    for (size_t st = 0; st < n_stages; st++) {
        size_t nq = 0;
        for (size_t k = 0; k < np; k++) {
            size_t a = pa[2 * k], e = pa[2 * k + 1], gap = a;
            for (size_t i = a; i < e;) {
                size_t m = stages[st](s->cp + a, s->fl + a, e - a, i - a);
                if (m == 0) {
                    i++;
                    continue;
                }
                if (gap < i)
                    pb[2 * nq] = gap, pb[2 * nq + 1] = i, nq++;
                pb[2 * nq] = i, pb[2 * nq + 1] = i + m, nq++;
                i += m;
                gap = i;
            }
            if (gap < e)
                pb[2 * nq] = gap, pb[2 * nq + 1] = e, nq++;
        }
        size_t *tmp = pa;
        pa = pb, pb = tmp, np = nq;
    }
    for (size_t k = 0; k < np; k++) {
        size_t bo = s->off[pa[2 * k]], be = s->off[pa[2 * k + 1]];
        if (be - bo == 1) {
            int32_t id = t->byte_id[u[bo]] >= 0 ? t->byte_id[u[bo]] : t->unk;
            if (id >= 0 && (rc = s_push(out, id)) < 0)
                return rc;
            continue;
        }
        if ((rc = s_bpe(t, s, u + bo, be - bo, out)) < 0)
            return rc;
    }
    return 0;
}

static int s_encode(const mesh_tok_t *t, const char *text, size_t len, bool parse_special,
                    bool add_bos, s_ids_t *out) {
    s_scratch_t s = {0};
    int rc = 0;
    if (add_bos && t->bos >= 0 && (rc = s_push(out, t->bos)) < 0)
        return rc;
    size_t seg = 0;
    for (size_t pos = 0; parse_special && pos < len;) {
        uint8_t b = (uint8_t)text[pos];
        int32_t hit = -1;
        for (size_t k = t->sp_start[b]; k < t->sp_start[b + 1]; k++) {
            int32_t id = t->special[k];
            size_t l = t->text_len[id];
            if (l <= len - pos && !memcmp(text + pos, t->text + t->text_off[id], l)) {
                hit = id; // longest first within the bucket
                break;
            }
        }
        if (hit < 0) {
            pos++;
            continue;
        }
        if ((rc = s_encode_text(t, &s, text + seg, pos - seg, out)) < 0 ||
            (rc = s_push(out, hit)) < 0)
            goto done;
        pos += t->text_len[hit];
        seg = pos;
    }
    rc = s_encode_text(t, &s, text + seg, len - seg, out);
done:
    s_scratch_free(&s);
    return rc;
}

int mesh_tok_encode_alloc(const mesh_tok_t *t, const char *text, size_t len,
                          bool parse_special, bool add_bos, int32_t **ids_out,
                          size_t *n_out) {
    s_ids_t a = {0};
    *ids_out = NULL;
    *n_out = 0;
    int rc = s_encode(t, text, len, parse_special, add_bos, &a);
    if (rc < 0) {
        free(a.v);
        return rc;
    }
    if (!a.v && !(a.v = malloc(sizeof *a.v))) // a valid pointer even for no ids
        return MESH_ENOMEM;
    *ids_out = a.v;
    *n_out = a.n;
    return 0;
}

int mesh_tok_encode(const mesh_tok_t *t, const char *text, size_t len, bool parse_special,
                    bool add_bos, int32_t *ids, size_t cap, size_t *n_out) {
    s_ids_t a = {0};
    int rc = s_encode(t, text, len, parse_special, add_bos, &a);
    *n_out = a.n;
    if (rc == 0) {
        size_t k = a.n < cap ? a.n : cap;
        if (k)
            memcpy(ids, a.v, k * sizeof *ids);
        if (a.n > cap)
            rc = MESH_ENOSPACE;
    }
    free(a.v);
    return rc;
}

// ---- decoding ----
static bool s_skip(const mesh_tok_t *t, int32_t id, bool skip_special) {
    return skip_special && t->type[id] == MESH_TOK_TYPE_CONTROL;
}

int mesh_tok_decode(const mesh_tok_t *t, const int32_t *ids, size_t n, bool skip_special,
                    char *buf, size_t cap, size_t *n_out) {
    size_t o = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_vocab) {
            rc = MESH_ERANGE;
            break;
        }
        if (s_skip(t, id, skip_special))
            continue;
        size_t l = t->dec_off[id + 1] - t->dec_off[id];
        if (l == 0)
            continue;
        if (o + l <= cap)
            memcpy(buf + o, t->dec + t->dec_off[id], l);
        else if (o < cap)
            memcpy(buf + o, t->dec + t->dec_off[id], cap - o);
        o += l;
    }
    *n_out = o;
    if (rc == 0 && o > cap)
        rc = MESH_ENOSPACE;
    if (o < cap)
        buf[o] = 0;
    return rc;
}

struct mesh_tok_stream {
    const mesh_tok_t *t;
    bool skip_special;
    uint8_t held[4];  // an incomplete UTF-8 sequence waiting for more bytes
    size_t n_held;
    uint8_t *work;    // [max_dec + 4] held bytes + the new token's bytes
    char *out;        // [3 * (max_dec + 4)] worst case: every byte becomes U+FFFD
};

mesh_tok_stream_t *mesh_tok_stream_new(const mesh_tok_t *t, bool skip_special) {
    mesh_tok_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->t = t;
    s->skip_special = skip_special;
    s->work = malloc(t->max_dec + 4);
    s->out = malloc(3 * (t->max_dec + 4));
    if (!s->work || !s->out)
        mesh_tok_stream_destroy(&s);
    return s;
}

void mesh_tok_stream_destroy(mesh_tok_stream_t **sp) {
    if (!sp || !*sp)
        return;
    free((*sp)->work);
    free((*sp)->out);
    free(*sp);
    *sp = NULL;
}

// Copies the valid UTF-8 of w[0..n) to out, U+FFFD for each maximal
// ill-formed subpart; a valid but incomplete tail is held back.
static size_t s_stream_emit(mesh_tok_stream_t *s, const uint8_t *w, size_t n) {
    size_t o = 0;
    s->n_held = 0;
    for (size_t i = 0; i < n;) {
        size_t need, bad, l = mesh_utf8_check(w + i, n - i, &need, &bad);
        if (l) {
            memcpy(s->out + o, w + i, l);
            o += l;
            i += l;
        } else if (need) {
            memcpy(s->held, w + i, n - i); // < 4 bytes by construction
            s->n_held = n - i;
            break;
        } else {
            memcpy(s->out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    return o;
}

int mesh_tok_stream_push(mesh_tok_stream_t *s, int32_t id, const char **out, size_t *len) {
    const mesh_tok_t *t = s->t;
    *out = s->out;
    *len = 0;
    if (id < 0 || (size_t)id >= t->n_vocab)
        return MESH_ERANGE;
    if (s_skip(t, id, s->skip_special))
        return 0;
    size_t l = t->dec_off[id + 1] - t->dec_off[id];
    memcpy(s->work, s->held, s->n_held);
    memcpy(s->work + s->n_held, t->dec + t->dec_off[id], l);
    *len = s_stream_emit(s, s->work, s->n_held + l);
    return 0;
}

int mesh_tok_stream_flush(mesh_tok_stream_t *s, const char **out, size_t *len) {
    *out = s->out;
    *len = 0;
    if (s->n_held) {
        memcpy(s->out, "\xEF\xBF\xBD", 3);
        *len = 3;
        s->n_held = 0;
    }
    return 0;
}
