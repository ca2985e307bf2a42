// SPDX-License-Identifier: MIT
// The built-in vocabulary of synthetic models: byte-level BPE in GPT-2's
// byte-to-unicode form, merges learned at write time from a short text of
// our own, filler tokens up to the requested size, GLM's special tokens and a
// GLM-style chat template. Real enough for the tokenizer, the template
// interpreter and the HTTP layer to run end to end; the model's text is
// gibberish anyway because its weights are random.
#include "synth_vocab.h"

#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// GLM's special tokens, in GLM's order; ids follow the ordinary tokens.
static const char *const s_specials[] = {
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<think>", "</think>",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
};
#define S_N_SPECIAL (sizeof s_specials / sizeof s_specials[0])
// Index of the first special that is a plain "user-defined" token (type 4)
// rather than a control token (type 3): GLM marks <think> and the tool tags so.
#define S_FIRST_USER_DEFINED 12

// A chat template in GLM-4.x's conversation format, written for synthetic
// models: system/user/assistant/tool turns, tool definitions, tool calls with
// <arg_key>/<arg_value> pairs, and the thinking switch.
static const char s_template[] =
    "[gMASK]<sop>"
    "{%- if tools -%}<|system|>\n# Tools\n\nYou may call functions. Their signatures:\n<tools>\n"
    "{%- for tool in tools %}\n{{ tool | tojson(ensure_ascii=False) }}{% endfor %}\n</tools>\n"
    "Call one as <tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value></tool_call>"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    // A namespace, because a plain `set` inside a for loop does not outlive it.
    "{%- set ns = namespace(text='') -%}"
    "{%- if m.content is string -%}{%- set ns.text = m.content -%}"
    "{%- elif m.content is iterable and m.content is not mapping -%}"
    "{%- for part in m.content -%}{%- if part.type == 'text' -%}"
    "{%- set ns.text = ns.text + part.text -%}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- if m.role == 'system' -%}<|system|>{{ ns.text }}"
    "{%- elif m.role == 'user' -%}<|user|>{{ ns.text }}"
    "{%- elif m.role == 'assistant' -%}<|assistant|></think>{{ ns.text.strip() }}"
    "{%- if m.tool_calls -%}{%- for tc in m.tool_calls -%}"
    "{%- set f = tc.function if tc.function is defined else tc -%}"
    "<tool_call>{{ f.name }}"
    "{%- if f.arguments is mapping -%}{%- for k, v in f.arguments.items() -%}"
    "<arg_key>{{ k }}</arg_key><arg_value>{{ v if v is string else v | tojson(ensure_ascii=False) }}</arg_value>"
    "{%- endfor -%}{%- endif -%}</tool_call>"
    "{%- endfor -%}{%- endif -%}"
    "{%- elif m.role == 'tool' -%}<|observation|><tool_response>{{ ns.text }}</tool_response>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>"
    "{{- '</think>' if (enable_thinking is defined and not enable_thinking) else '<think>' -}}"
    "{%- endif -%}";

// Text the merges are learned from (our own words).
static const char s_corpus[] =
    "A mesh of machines serves one model together. Each node runs the engine on its "
    "own card and reports what it can do: the model, the quantization, the free "
    "memory and the context it can hold. The coordinator reads those reports and "
    "sends every request to the node that fits it best. When a node goes away, the "
    "request moves to another node and the answer goes on where it stopped. Experts "
    "of a mixture of experts layer can live on different nodes, so a large model or "
    "a long context fits where one card would not. The engine reads the weights from "
    "the file as they are, computes attention over the latent cache, routes every "
    "token to its experts and writes the logits. Then the sampler picks the next "
    "token, the tokenizer turns it into text, and the text streams back to the "
    "client that asked. Hello world! The quick brown fox jumps over the lazy dog. "
    "Numbers like 1234 and 56 are split into groups; questions end with a mark? "
    "Yes, and answers are short when the question is short.";

// GPT-2's byte-to-unicode map: printable bytes map to themselves, the rest to
// U+0100 upwards in byte order. Writes the UTF-8 of byte b's symbol; returns its length.
static int s_byte_symbol(unsigned b, char out[3]) {
    unsigned cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        unsigned k = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

typedef struct {
    char **tok;     // token strings (byte-symbol form), owned
    int32_t *type;  // token types
    char **merges;  // "a b" strings, owned
    size_t n_tok, cap_tok, n_merge, cap_merge;
} s_vocab_t;

static int s_push(char ***arr, size_t *n, size_t *cap, char *s) {
    if (!s)
        return MESH_ENOMEM;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        char **na = realloc(*arr, nc * sizeof *na);
        if (!na) {
            free(s);
            return MESH_ENOMEM;
        }
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = s;
    return 0;
}

// Linear search: used while learning merges, when the vocabulary is small.
static int s_find(const s_vocab_t *v, const char *s) {
    for (size_t i = 0; i < v->n_tok; i++)
        if (!strcmp(v->tok[i], s))
            return (int)i;
    return -1;
}

// A set of strings (open addressing, FNV-1a) so adding 150k fillers stays O(n).
typedef struct {
    const char **slot;
    size_t cap; // power of two
} s_set_t;

static uint64_t s_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// Returns 1 if s was added, 0 if present. The set borrows s.
static int s_set_add(s_set_t *set, const char *s) {
    size_t i = (size_t)s_hash(s) & (set->cap - 1);
    while (set->slot[i]) {
        if (!strcmp(set->slot[i], s))
            return 0;
        i = (i + 1) & (set->cap - 1);
    }
    set->slot[i] = s;
    return 1;
}

// Learns up to max_merges merges from the corpus: words are runs split before
// spaces (a leading space belongs to the word, as GPT-2-style pre-tokenizers
// split). O(max_merges * corpus) with a naive pair count: the corpus is short.
static int s_learn_merges(s_vocab_t *v, size_t max_merges) {
    enum { MAXW = 512, MAXS = 48 };
    static int words[MAXW][MAXS]; // token ids per word symbol
    int wlen[MAXW];
    int nw = 0;
    const char *p = s_corpus;
    while (*p && nw < MAXW) {
        int n = 0;
        do {
            char sym[3];
            int l = s_byte_symbol((unsigned char)*p, sym);
            char buf[4] = {0};
            memcpy(buf, sym, (size_t)l);
            int id = s_find(v, buf);
            if (n < MAXS)
                words[nw][n++] = id;
            p++;
        } while (*p && *p != ' ');
        wlen[nw++] = n;
    }
    for (size_t m = 0; m < max_merges; m++) {
        int best_a = -1, best_b = -1, best_c = 1;
        for (int w = 0; w < nw; w++) {
            for (int i = 0; i + 1 < wlen[w]; i++) {
                int a = words[w][i], b = words[w][i + 1], c = 0;
                if (a == best_a && b == best_b)
                    continue;
                for (int w2 = 0; w2 < nw; w2++)
                    for (int j = 0; j + 1 < wlen[w2]; j++)
                        if (words[w2][j] == a && words[w2][j + 1] == b)
                            c++;
                if (c > best_c) {
                    best_c = c;
                    best_a = a;
                    best_b = b;
                }
            }
        }
        if (best_a < 0)
            break; // nothing occurs twice any more
        size_t la = strlen(v->tok[best_a]), lb = strlen(v->tok[best_b]);
        char *joined = malloc(la + lb + 1);
        char *merge = malloc(la + lb + 2);
        if (!joined || !merge) {
            free(joined);
            free(merge);
            return MESH_ENOMEM;
        }
        memcpy(joined, v->tok[best_a], la);
        memcpy(joined + la, v->tok[best_b], lb + 1);
        memcpy(merge, v->tok[best_a], la);
        merge[la] = ' ';
        memcpy(merge + la + 1, v->tok[best_b], lb + 1);
        int id = s_find(v, joined);
        if (id < 0) {
            id = (int)v->n_tok;
            int rc = s_push(&v->tok, &v->n_tok, &v->cap_tok, joined);
            if (rc)
                return rc;
        } else {
            free(joined);
        }
        int rc = s_push(&v->merges, &v->n_merge, &v->cap_merge, merge);
        if (rc)
            return rc;
        for (int w = 0; w < nw; w++) { // apply the merge everywhere
            int o = 0;
            for (int i = 0; i < wlen[w]; i++) {
                if (i + 1 < wlen[w] && words[w][i] == best_a && words[w][i + 1] == best_b) {
                    words[w][o++] = id;
                    i++;
                } else {
                    words[w][o++] = words[w][i];
                }
            }
            wlen[w] = o;
        }
    }
    return 0;
}

static void s_vocab_free(s_vocab_t *v) {
    for (size_t i = 0; i < v->n_tok; i++)
        free(v->tok[i]);
    for (size_t i = 0; i < v->n_merge; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->merges);
    free(v->type);
}

int mesh__synth_vocab(mesh_gguf_writer_t *w, uint32_t vocab, char *err, size_t err_len) {
    const uint32_t min_vocab = 256 + S_N_SPECIAL;
    if (vocab < min_vocab) {
        snprintf(err, err_len, "synth: vocabulary of %u is too small (at least %u)", vocab,
                 min_vocab);
        return MESH_EINVAL;
    }
    s_vocab_t v = {0};
    int rc = 0;
    for (unsigned b = 0; b < 256 && !rc; b++) {
        char sym[4] = {0};
        s_byte_symbol(b, sym);
        rc = s_push(&v.tok, &v.n_tok, &v.cap_tok, strdup(sym));
    }
    size_t n_ordinary = vocab - S_N_SPECIAL;
    size_t want_merges = n_ordinary - 256 < 2000 ? n_ordinary - 256 : 2000;
    if (!rc)
        rc = s_learn_merges(&v, want_merges);
    // Fillers: two- and three-letter lowercase strings, with and without the
    // leading-space symbol, skipping any string already present. They decode to
    // text but no merge produces them, as unused pieces of real vocabularies do.
    static const char letters[] = "etaoinshrdlucmfwypvbgkqjxz";
    char buf[16];
    s_set_t set = {NULL, 1};
    while (set.cap < 2 * (size_t)vocab)
        set.cap <<= 1;
    set.slot = rc ? NULL : calloc(set.cap, sizeof *set.slot);
    if (!rc && !set.slot)
        rc = MESH_ENOMEM;
    for (size_t i = 0; !rc && i < v.n_tok; i++)
        s_set_add(&set, v.tok[i]);
    for (size_t i = 0; !rc && v.n_tok < n_ordinary; i++) {
        size_t x = i;
        int space = (int)(x & 1);
        x >>= 1;
        int len = 0;
        if (space) {
            buf[len++] = (char)0xc4; // U+0120, GPT-2's symbol for a space
            buf[len++] = (char)0xa0;
        }
        do {
            buf[len++] = letters[x % 26];
            x /= 26;
        } while (x && len < 12);
        buf[len] = 0;
        char *tok = strdup(buf);
        if (!tok) {
            rc = MESH_ENOMEM;
        } else if (s_set_add(&set, tok)) {
            rc = s_push(&v.tok, &v.n_tok, &v.cap_tok, tok);
        } else {
            free(tok);
        }
    }
    free(set.slot);
    for (size_t i = 0; !rc && i < S_N_SPECIAL; i++)
        rc = s_push(&v.tok, &v.n_tok, &v.cap_tok, strdup(s_specials[i]));
    if (!rc) {
        v.type = malloc(v.n_tok * sizeof *v.type);
        if (!v.type)
            rc = MESH_ENOMEM;
    }
    if (rc) {
        snprintf(err, err_len, "synth: out of memory building the vocabulary");
        s_vocab_free(&v);
        return rc;
    }
    for (size_t i = 0; i < v.n_tok; i++)
        v.type[i] = 1; // normal
    uint32_t first_special = (uint32_t)(v.n_tok - S_N_SPECIAL);
    for (size_t i = 0; i < S_N_SPECIAL; i++)
        v.type[first_special + i] = i < S_FIRST_USER_DEFINED ? 3 : 4;

    rc = mesh_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!rc)
        rc = mesh_gguf_writer_set_str(w, "tokenizer.ggml.pre", "glm4");
    if (!rc)
        rc = mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                          (const char *const *)v.tok, v.n_tok);
    if (!rc)
        rc = mesh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MESH_GGUF_INT32, v.type,
                                      v.n_tok);
    if (!rc)
        rc = mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                          (const char *const *)v.merges, v.n_merge);
    // Special ids as in GLM: eos <|endoftext|>, bos [gMASK], eot <|user|>, eom <|observation|>.
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", first_special + 0);
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", first_special + 0);
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", first_special + 0);
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", first_special + 2);
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", first_special + 7);
    if (!rc)
        rc = mesh_gguf_writer_set_u32(w, "tokenizer.ggml.eom_token_id", first_special + 9);
    if (!rc)
        rc = mesh_gguf_writer_set_str(w, "tokenizer.chat_template", s_template);
    if (rc)
        snprintf(err, err_len, "synth: cannot store the vocabulary: %s", mesh_strerror(rc));
    s_vocab_free(&v);
    return rc;
}
