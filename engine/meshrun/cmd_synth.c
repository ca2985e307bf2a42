// SPDX-License-Identifier: MIT
// meshrun synth: writes a random-weight model of a real architecture's shape
// (see engine/synth.h), for benchmarks and demos without downloads.
#include "meshrun.h"

#include "cpu_features.h"
#include "mesh_err.h"
#include "synth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshrun synth --preset NAME --type TYPE --out FILE [options]\n"
            "\n"
            "Writes a GGUF model with random weights in a real architecture's exact shapes.\n"
            "Its output is gibberish; its speed and memory are those of the real model.\n"
            "\n"
            "  --arch deepseek2        architecture (only deepseek2, GLM-4.7-Flash's, for now)\n"
            "  --preset NAME           glm-4.7-flash (29.9B), small (~1B), tiny (~9M)\n"
            "  --type TYPE             a file type as for meshrun quantize: f32, f16, bf16,\n"
            "                          q8_0, q4_0, q4_k_m, q5_k_m, q6_k, ...\n"
            "  --out FILE              where to write (written to FILE.tmp, then renamed)\n"
            "  --seed N                random seed (default 1): same seed, same file\n"
            "  --threads N             quantization threads (default: physical cores)\n"
            "  --vocab-from GGUF       copy the tokenizer and chat template of another model\n"
            "                          (default: a built-in byte-level BPE vocabulary)\n"
            "  --list                  print the presets and their shapes\n"
            "  --quiet                 no progress line\n"
            "shape overrides (after --preset): --layers N --dense-layers N --hidden N\n"
            "  --ff N --heads N --q-lora N (0: plain attn_q) --kv-lora N --nope N --rope N\n"
            "  --v-dim N --experts N --experts-used N --shared-experts N --expert-ff N\n"
            "  --vocab N --ctx N --gating softmax|sigmoid --no-expert-norm --expert-scale X\n");
}

static int s_u32(const char *opt, const char *v, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long x = strtoul(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x > 0xffffffffUL || v[0] == '-') {
        fprintf(stderr, "meshrun synth: %s needs a non-negative integer, got '%s'\n", opt,
                v ? v : "");
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static void s_list(void) {
    printf("%-14s %6s %6s %6s %5s %6s %6s %7s %6s %7s %9s\n", "preset", "layers", "hidden",
           "heads", "q_lr", "kv_lr", "experts", "used+sh", "exp_ff", "vocab", "params");
    for (size_t i = 0; mesh_synth_preset_at(i); i++) {
        const mesh_synth_preset_t *p = mesh_synth_preset_at(i);
        double n = (double)mesh_synth_n_params(p);
        printf("%-14s %6u %6u %6u %5u %6u %6u %5u+%u %6u %7u %8.2f%c\n", p->name, p->n_layer,
               p->hidden, p->n_head, p->q_lora, p->kv_lora, p->n_expert, p->n_used, p->n_shared,
               p->expert_ff, p->vocab, n >= 1e9 ? n / 1e9 : n / 1e6, n >= 1e9 ? 'B' : 'M');
    }
}

int meshrun_cmd_synth(int argc, char **argv) {
    mesh_synth_params_t sp = {0};
    sp.seed = 1;
    sp.n_threads = mesh_cpu_features()->physical_cores;
    const char *preset = NULL;
    int have_shape = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t u = 0;
#define S_SHAPE(flag, field)                                                               \
    if (!strcmp(a, flag)) {                                                                \
        if (!have_shape) {                                                                 \
            fprintf(stderr, "meshrun synth: %s must come after --preset\n", a);            \
            return 2;                                                                      \
        }                                                                                  \
        if (s_u32(a, v, &u))                                                               \
            return 2;                                                                      \
        sp.shape.field = u;                                                                \
        i++;                                                                               \
        continue;                                                                          \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            s_list();
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            sp.quiet = true;
            continue;
        }
        if (!strcmp(a, "--no-expert-norm")) {
            sp.shape.expert_norm = false;
            continue;
        }
        if (!v) {
            fprintf(stderr, "meshrun synth: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--arch")) {
            if (strcmp(v, "deepseek2")) {
                fprintf(stderr, "meshrun synth: unknown architecture '%s' (only deepseek2)\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--preset")) {
            const mesh_synth_preset_t *p = mesh_synth_find_preset(v);
            if (!p) {
                fprintf(stderr, "meshrun synth: unknown preset '%s' (see --list)\n", v);
                return 2;
            }
            preset = v;
            sp.shape = *p;
            have_shape = 1;
            i++;
        } else if (!strcmp(a, "--type")) {
            sp.ftype = v;
            i++;
        } else if (!strcmp(a, "--out")) {
            sp.out_path = v;
            i++;
        } else if (!strcmp(a, "--vocab-from")) {
            sp.vocab_from = v;
            i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            sp.seed = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') {
                fprintf(stderr, "meshrun synth: --seed needs a non-negative integer\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (s_u32(a, v, &u) || u == 0 || u > 1024) {
                fprintf(stderr, "meshrun synth: --threads must be 1..1024\n");
                return 2;
            }
            sp.n_threads = (int)u;
            i++;
        } else if (!strcmp(a, "--gating")) {
            if (!have_shape) {
                fprintf(stderr, "meshrun synth: --gating must come after --preset\n");
                return 2;
            }
            if (!strcmp(v, "softmax"))
                sp.shape.gating = 1;
            else if (!strcmp(v, "sigmoid"))
                sp.shape.gating = 2;
            else {
                fprintf(stderr, "meshrun synth: --gating is softmax or sigmoid\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--expert-scale")) {
            char *end;
            float x = strtof(v, &end);
            if (!*v || *end || !(x > 0.0f && x < 1e6f)) {
                fprintf(stderr, "meshrun synth: --expert-scale needs a positive number\n");
                return 2;
            }
            sp.shape.expert_scale = x;
            i++;
        } else {
            S_SHAPE("--layers", n_layer)
            S_SHAPE("--dense-layers", n_dense)
            S_SHAPE("--hidden", hidden)
            S_SHAPE("--ff", ff_dense)
            S_SHAPE("--heads", n_head)
            S_SHAPE("--q-lora", q_lora)
            S_SHAPE("--kv-lora", kv_lora)
            S_SHAPE("--nope", nope)
            S_SHAPE("--rope", rope)
            S_SHAPE("--v-dim", v_dim)
            S_SHAPE("--experts", n_expert)
            S_SHAPE("--experts-used", n_used)
            S_SHAPE("--shared-experts", n_shared)
            S_SHAPE("--expert-ff", expert_ff)
            S_SHAPE("--vocab", vocab)
            S_SHAPE("--ctx", ctx)
            fprintf(stderr, "meshrun synth: unknown option '%s' (see --help)\n", a);
            return 2;
        }
#undef S_SHAPE
    }
    if (!preset || !sp.ftype || !sp.out_path) {
        fprintf(stderr, "meshrun synth: --preset, --type and --out are required (see --help)\n");
        return 2;
    }
    char err[512] = "";
    int rc = mesh_synth_write(&sp, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun %s\n", err[0] ? err : mesh_strerror(rc));
        return 1;
    }
    if (!sp.quiet)
        fprintf(stderr, "meshrun synth: wrote %s (random weights: its text is gibberish)\n",
                sp.out_path);
    return 0;
}
