// SPDX-License-Identifier: MIT
// meshrun info: what a GGUF file holds, without loading the weights.
//
// Prints the architecture, name and file type, every "<arch>.*" hyperparameter,
// a tokenizer summary (never the chat template's text, only its size), the
// parameter count and sizes, and with --tensors the tensor table. --json
// prints the same as one JSON object (our own small escaper: the engine
// cannot use cJSON). Cost: the header only; tensor data stays on disk.
#include "meshrun.h"

#include "gguf.h"
#include "mesh_err.h"
#include "quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ARR_SHOW_TEXT 16   // array elements shown in text before "..."
#define S_ARR_SHOW_JSON 4096 // numeric arrays longer than this become a summary

static void s_usage(FILE *f) {
    fprintf(f, "usage: meshrun info --model FILE.gguf [--json] [--tensors]\n\n"
               "Prints a GGUF file's metadata: architecture, hyperparameters, tokenizer\n"
               "summary, parameter count and sizes. The tensor data is not read.\n\n"
               "options:\n"
               "  -m, --model FILE  the GGUF file\n"
               "  --json            one JSON object instead of text\n"
               "  --tensors         add the tensor table (name, type, shape, bytes)\n"
               "  -h, --help        this help\n");
}

// llama.cpp's general.file_type numbers (LLAMA_FTYPE_*), for display only.
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
    default: return "other";
    }
}

// ---------------------------------------------------------------- output helpers

// JSON string: quotes, backslash and control characters escaped; invalid
// UTF-8 bytes become U+FFFD so the output is always valid JSON.
static void s_json_str(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            fputc((int)c, f);
            i++;
        } else {
            // Length and minimum value of the sequence a lead byte starts.
            size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            uint32_t cp = len == 4 ? (c & 7) : len == 3 ? (c & 15) : (c & 31);
            bool ok = len && i + len <= n;
            for (size_t k = 1; ok && k < len; k++) {
                if ((p[i + k] & 0xc0) != 0x80)
                    ok = false;
                cp = (cp << 6) | (p[i + k] & 0x3f);
            }
            if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
                       (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
                ok = false;
            if (ok) {
                fwrite(p + i, 1, len, f);
                i += len;
            } else {
                fputs("\\ufffd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

// Text: control characters (terminal escapes included) shown as '?'.
static void s_text_str(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
}

static void s_num_f(FILE *f, double v, bool json, bool f64) {
    if (json && !isfinite(v))
        fputs("null", f);
    else
        fprintf(f, f64 ? "%.17g" : "%.9g", v);
}

// One element of a numeric array.
static void s_elem(FILE *f, mesh_gguf_type_t t, const unsigned char *d, uint64_t i, bool json) {
    switch (t) {
    case MESH_GGUF_UINT8: fprintf(f, "%u", d[i]); break;
    case MESH_GGUF_INT8: fprintf(f, "%d", (int8_t)d[i]); break;
    case MESH_GGUF_UINT16: { uint16_t v; memcpy(&v, d + 2 * i, 2); fprintf(f, "%u", v); break; }
    case MESH_GGUF_INT16: { int16_t v; memcpy(&v, d + 2 * i, 2); fprintf(f, "%d", v); break; }
    case MESH_GGUF_UINT32: { uint32_t v; memcpy(&v, d + 4 * i, 4); fprintf(f, "%" PRIu32, v); break; }
    case MESH_GGUF_INT32: { int32_t v; memcpy(&v, d + 4 * i, 4); fprintf(f, "%" PRId32, v); break; }
    case MESH_GGUF_UINT64: { uint64_t v; memcpy(&v, d + 8 * i, 8); fprintf(f, "%" PRIu64, v); break; }
    case MESH_GGUF_INT64: { int64_t v; memcpy(&v, d + 8 * i, 8); fprintf(f, "%" PRId64, v); break; }
    case MESH_GGUF_FLOAT32: { float v; memcpy(&v, d + 4 * i, 4); s_num_f(f, v, json, false); break; }
    case MESH_GGUF_FLOAT64: { double v; memcpy(&v, d + 8 * i, 8); s_num_f(f, v, json, true); break; }
    case MESH_GGUF_BOOL: fputs(d[i] ? "true" : "false", f); break;
    default: fputs(json ? "null" : "?", f);
    }
}

// Prints the value of key i (any type).
static void s_value(FILE *f, const mesh_gguf_t *g, int64_t i, bool json) {
    const char *key = mesh_gguf_key_name(g, i);
    mesh_gguf_type_t t = mesh_gguf_key_type(g, i);
    uint64_t u;
    int64_t s;
    double d;
    bool b;
    const char *str;
    size_t len;
    switch (t) {
    case MESH_GGUF_STRING:
        mesh_gguf_get_str(g, key, &str, &len);
        if (json) {
            s_json_str(f, str, len);
        } else {
            fputc('"', f);
            s_text_str(f, str, len > 200 ? 200 : len);
            fputs(len > 200 ? "...\"" : "\"", f);
        }
        return;
    case MESH_GGUF_BOOL:
        mesh_gguf_get_bool(g, key, &b);
        fputs(b ? "true" : "false", f);
        return;
    case MESH_GGUF_FLOAT32:
    case MESH_GGUF_FLOAT64:
        mesh_gguf_get_f64(g, key, &d);
        s_num_f(f, d, json, t == MESH_GGUF_FLOAT64);
        return;
    case MESH_GGUF_ARRAY: {
        mesh_gguf_type_t et;
        uint64_t n;
        const void *data = NULL;
        mesh_gguf_get_arr_info(g, key, &et, &n);
        bool numeric = et != MESH_GGUF_STRING && et != MESH_GGUF_ARRAY;
        if (numeric)
            mesh_gguf_get_arr_data(g, key, &data);
        if (json) {
            if (!numeric || n > S_ARR_SHOW_JSON) {
                fprintf(f, "{\"array_of\":\"%s\",\"length\":%" PRIu64 "}",
                        mesh_gguf_type_name(et), n);
                return;
            }
            fputc('[', f);
            for (uint64_t k = 0; k < n; k++) {
                if (k)
                    fputc(',', f);
                s_elem(f, et, data, k, true);
            }
            fputc(']', f);
            return;
        }
        if (!numeric) {
            fprintf(f, "[%" PRIu64 " x %s]", n, mesh_gguf_type_name(et));
            return;
        }
        fputc('[', f);
        for (uint64_t k = 0; k < n && k < S_ARR_SHOW_TEXT; k++) {
            if (k)
                fputs(", ", f);
            s_elem(f, et, data, k, false);
        }
        if (n > S_ARR_SHOW_TEXT)
            fprintf(f, ", ... (%" PRIu64 " x %s)", n, mesh_gguf_type_name(et));
        fputc(']', f);
        return;
    }
    default:
        if (!mesh_gguf_get_u64(g, key, &u))
            fprintf(f, "%" PRIu64, u);
        else if (!mesh_gguf_get_i64(g, key, &s))
            fprintf(f, "%" PRId64, s);
        else
            fputs(json ? "null" : "?", f);
    }
}

// ---------------------------------------------------------------- report

typedef struct {
    const char *model, *pre, *tmpl;
    size_t tmpl_len;
    uint64_t vocab, merges;
    bool has_vocab, has_merges;
} s_tok_t;

static const char *const s_tok_ids[] = {"bos", "eos", "eot", "eom", "unknown", "padding"};

static void s_tok_summary(const mesh_gguf_t *g, s_tok_t *t) {
    memset(t, 0, sizeof *t);
    mesh_gguf_get_str(g, "tokenizer.ggml.model", &t->model, NULL);
    mesh_gguf_get_str(g, "tokenizer.ggml.pre", &t->pre, NULL);
    mesh_gguf_get_str(g, "tokenizer.chat_template", &t->tmpl, &t->tmpl_len);
    t->has_vocab = !mesh_gguf_get_arr_info(g, "tokenizer.ggml.tokens", NULL, &t->vocab);
    t->has_merges = !mesh_gguf_get_arr_info(g, "tokenizer.ggml.merges", NULL, &t->merges);
}

static int s_tok_id(const mesh_gguf_t *g, const char *name, uint64_t *out) {
    char key[64];
    snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", name);
    return mesh_gguf_get_u64(g, key, out);
}

// Hyperparameters are the keys "<arch>.*"; returns the suffix or NULL.
static const char *s_hparam(const mesh_gguf_t *g, int64_t i) {
    const char *arch = mesh_gguf_arch(g), *k = mesh_gguf_key_name(g, i);
    size_t al = strlen(arch);
    if (!al || strncmp(k, arch, al) || k[al] != '.')
        return NULL;
    return k + al + 1;
}

static void s_print_json(const mesh_gguf_t *g, const char *path, bool tensors) {
    FILE *f = stdout;
    const char *s;
    size_t len;
    uint32_t ft;
    fputs("{\"file\":", f);
    s_json_str(f, path, strlen(path));
    fprintf(f, ",\"gguf_version\":%u,\"alignment\":%u,\"file_size\":%" PRIu64,
            mesh_gguf_version(g), mesh_gguf_alignment(g), mesh_gguf_file_size(g));
    fputs(",\"architecture\":", f);
    s_json_str(f, mesh_gguf_arch(g), strlen(mesh_gguf_arch(g)));
    fputs(",\"name\":", f);
    if (!mesh_gguf_get_str(g, "general.name", &s, &len))
        s_json_str(f, s, len);
    else
        fputs("null", f);
    if (!mesh_gguf_get_u32(g, "general.file_type", &ft))
        fprintf(f, ",\"file_type\":%u,\"file_type_name\":\"%s\"", ft, s_ftype_name(ft));
    else
        fputs(",\"file_type\":null,\"file_type_name\":null", f);

    fputs(",\"hyperparameters\":{", f);
    bool first = true;
    for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++) {
        const char *suffix = s_hparam(g, i);
        if (!suffix)
            continue;
        if (!first)
            fputc(',', f);
        first = false;
        s_json_str(f, suffix, strlen(suffix));
        fputc(':', f);
        s_value(f, g, i, true);
    }
    fputc('}', f);

    s_tok_t t;
    s_tok_summary(g, &t);
    fputs(",\"tokenizer\":{\"model\":", f);
    if (t.model)
        s_json_str(f, t.model, strlen(t.model));
    else
        fputs("null", f);
    fputs(",\"pre\":", f);
    if (t.pre)
        s_json_str(f, t.pre, strlen(t.pre));
    else
        fputs("null", f);
    if (t.has_vocab)
        fprintf(f, ",\"vocab_size\":%" PRIu64, t.vocab);
    else
        fputs(",\"vocab_size\":null", f);
    if (t.has_merges)
        fprintf(f, ",\"merges\":%" PRIu64, t.merges);
    else
        fputs(",\"merges\":null", f);
    for (size_t k = 0; k < sizeof s_tok_ids / sizeof s_tok_ids[0]; k++) {
        uint64_t id;
        if (!s_tok_id(g, s_tok_ids[k], &id))
            fprintf(f, ",\"%s_token_id\":%" PRIu64, s_tok_ids[k], id);
        else
            fprintf(f, ",\"%s_token_id\":null", s_tok_ids[k]);
    }
    fprintf(f, ",\"chat_template\":%s,\"chat_template_bytes\":%zu}", t.tmpl ? "true" : "false",
            t.tmpl ? t.tmpl_len : 0);

    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        params += mesh_gguf_tensor(g, i)->n_elements;
        bytes += mesh_gguf_tensor(g, i)->n_bytes;
    }
    fprintf(f, ",\"n_params\":%" PRIu64 ",\"tensor_bytes\":%" PRIu64 ",\"n_tensors\":%" PRId64,
            params, bytes, mesh_gguf_n_tensors(g));
    fputs(",\"tensor_types\":{", f);
    first = true;
    for (uint32_t ty = 0; ty < MESH_QT_COUNT; ty++) {
        int64_t c = 0;
        for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++)
            c += mesh_gguf_tensor(g, i)->type == ty;
        if (!c)
            continue;
        fprintf(f, "%s\"%s\":%" PRId64, first ? "" : ",", mesh_qtype_name(ty), c);
        first = false;
    }
    fputc('}', f);
    if (tensors) {
        fputs(",\"tensors\":[", f);
        for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
            const mesh_gguf_tensor_t *te = mesh_gguf_tensor(g, i);
            fputs(i ? ",{\"name\":" : "{\"name\":", f);
            s_json_str(f, te->name, strlen(te->name));
            fprintf(f, ",\"type\":\"%s\",\"shape\":[", mesh_qtype_name(te->type));
            for (uint32_t d = 0; d < te->n_dims; d++)
                fprintf(f, "%s%" PRIu64, d ? "," : "", te->ne[d]);
            fprintf(f, "],\"n_elements\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"offset\":%" PRIu64 "}",
                    te->n_elements, te->n_bytes, te->offset);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

static void s_human(FILE *f, double v, const char *const *units, double step) {
    int u = 0;
    while (v >= step && units[u + 1]) {
        v /= step;
        u++;
    }
    fprintf(f, u ? "%.2f %s" : "%.0f%s", v, units[u]);
}
static const char *const s_bytes_u[] = {" B", "KiB", "MiB", "GiB", "TiB", NULL};
static const char *const s_count_u[] = {"", "K", "M", "B", "T", NULL};

static void s_print_text(const mesh_gguf_t *g, const char *path, bool tensors) {
    FILE *f = stdout;
    const char *s;
    size_t len;
    uint32_t ft;
    fputs("file:          ", f);
    s_text_str(f, path, strlen(path));
    fprintf(f, "\ngguf:          version %u, alignment %u, %" PRId64 " keys, %" PRId64 " tensors\n",
            mesh_gguf_version(g), mesh_gguf_alignment(g), mesh_gguf_n_kv(g),
            mesh_gguf_n_tensors(g));
    const char *arch = mesh_gguf_arch(g);
    fputs("architecture:  ", f);
    s_text_str(f, *arch ? arch : "(none)", strlen(*arch ? arch : "(none)"));
    fputs("\nname:          ", f);
    if (!mesh_gguf_get_str(g, "general.name", &s, &len))
        s_text_str(f, s, len);
    else
        fputs("(none)", f);
    if (!mesh_gguf_get_u32(g, "general.file_type", &ft))
        fprintf(f, "\nfile type:     %u (%s)\n", ft, s_ftype_name(ft));
    else
        fputs("\nfile type:     (none)\n", f);

    if (*arch) {
        fputs("\nhyperparameters (", f);
        s_text_str(f, arch, strlen(arch));
        fputs(".*):\n", f);
        for (int64_t i = 0; i < mesh_gguf_n_kv(g); i++) {
            const char *suffix = s_hparam(g, i);
            if (!suffix)
                continue;
            fputs("  ", f);
            s_text_str(f, suffix, strlen(suffix));
            for (size_t p = strlen(suffix); p < 40; p++)
                fputc(' ', f);
            fputc(' ', f);
            s_value(f, g, i, false);
            fputc('\n', f);
        }
    }

    s_tok_t t;
    s_tok_summary(g, &t);
    fputs("\ntokenizer:\n  model ", f);
    s_text_str(f, t.model ? t.model : "(none)", strlen(t.model ? t.model : "(none)"));
    fputs(", pre ", f);
    s_text_str(f, t.pre ? t.pre : "(none)", strlen(t.pre ? t.pre : "(none)"));
    if (t.has_vocab)
        fprintf(f, ", vocab %" PRIu64, t.vocab);
    if (t.has_merges)
        fprintf(f, ", merges %" PRIu64, t.merges);
    fputs("\n  special ids:", f);
    int n_ids = 0;
    for (size_t k = 0; k < sizeof s_tok_ids / sizeof s_tok_ids[0]; k++) {
        uint64_t id;
        if (!s_tok_id(g, s_tok_ids[k], &id))
            n_ids += fprintf(f, " %s %" PRIu64, s_tok_ids[k], id) > 0;
    }
    if (!n_ids)
        fputs(" (none)", f);
    if (t.tmpl)
        fprintf(f, "\n  chat template: present, %zu bytes\n", t.tmpl_len);
    else
        fputs("\n  chat template: absent\n", f);

    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
        params += mesh_gguf_tensor(g, i)->n_elements;
        bytes += mesh_gguf_tensor(g, i)->n_bytes;
    }
    fputs("\nparameters:    ", f);
    s_human(f, (double)params, s_count_u, 1000);
    fprintf(f, " (%" PRIu64 ")\ntensor data:   ", params);
    s_human(f, (double)bytes, s_bytes_u, 1024);
    fprintf(f, " (%" PRIu64 " bytes, %.2f bits per parameter)\nfile size:     ", bytes,
            params ? 8.0 * (double)bytes / (double)params : 0.0);
    s_human(f, (double)mesh_gguf_file_size(g), s_bytes_u, 1024);
    fputs("\ntensor types: ", f);
    for (uint32_t ty = 0; ty < MESH_QT_COUNT; ty++) {
        int64_t c = 0;
        for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++)
            c += mesh_gguf_tensor(g, i)->type == ty;
        if (c)
            fprintf(f, " %s x%" PRId64, mesh_qtype_name(ty), c);
    }
    if (!mesh_gguf_n_tensors(g))
        fputs(" (none)", f);
    fputc('\n', f);

    if (tensors) {
        fprintf(f, "\n%-40s %-6s %-24s %12s\n", "tensor", "type", "shape", "bytes");
        for (int64_t i = 0; i < mesh_gguf_n_tensors(g); i++) {
            const mesh_gguf_tensor_t *te = mesh_gguf_tensor(g, i);
            char shape[96];
            size_t o = 0;
            for (uint32_t d = 0; d < te->n_dims && o < sizeof shape; d++)
                o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRIu64, d ? " x " : "",
                                      te->ne[d]);
            size_t nl = strlen(te->name);
            s_text_str(f, te->name, nl);
            for (size_t p = nl; p < 40; p++)
                fputc(' ', f);
            fprintf(f, " %-6s %-24s %12" PRIu64 "\n", mesh_qtype_name(te->type), shape,
                    te->n_bytes);
        }
    }
}

int meshrun_cmd_info(int argc, char **argv) {
    const char *model = NULL;
    bool json = false, tensors = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "meshrun info: %s needs a file name\n", a);
                return 2;
            }
            model = argv[++i];
        } else if (!strncmp(a, "--model=", 8)) {
            model = a + 8;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--tensors")) {
            tensors = true;
        } else {
            fprintf(stderr, "meshrun info: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model || !*model) {
        fprintf(stderr, "meshrun info: --model FILE is required (see --help)\n");
        return 2;
    }
    char err[512] = "";
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open(model, &g, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun info: %s: %s\n", model, err[0] ? err : mesh_strerror(rc));
        return 1;
    }
    if (json)
        s_print_json(g, model, tensors);
    else
        s_print_text(g, model, tensors);
    mesh_gguf_close(&g);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "meshrun info: cannot write the output\n");
        return 1;
    }
    return 0;
}
