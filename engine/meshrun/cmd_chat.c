// SPDX-License-Identifier: MIT
// meshrun chat: an interactive, streaming chat with one model.
//
// Each user line is added to the conversation, the whole conversation is
// rendered with the model's own chat template (tokenizer.chat_template),
// tokenized and generated through the scheduler; the answer streams to
// stdout and joins the conversation. Works with stdin from a pipe (no
// prompt marker is printed unless stdin is a terminal). "/exit" or EOF
// quits. Cost: every turn prefills the whole conversation again (no prefix
// reuse across turns yet), which is fine at chat lengths on the tiny and
// small models.
#include "meshrun.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "engine.h"
#include "gguf.h"
#include "json.h"
#include "mesh_err.h"
#include "scheduler.h"
#include "tokenizer.h"

static void s_usage(FILE *f) {
    fprintf(f, "usage: meshrun chat --model F [options]\n"
               "\n"
               "Interactive chat: reads one user message per line from stdin, renders the\n"
               "conversation with the model's chat template and streams the answer.\n"
               "'/exit' or end of input quits.\n"
               "\n"
               "  --model F        GGUF model file (needs tokenizer.chat_template)\n"
               "  --system TEXT    a system message at the start of the conversation\n"
               "  -n N             tokens per answer at most (default 512)\n"
               "  --ctx N          KV cache size in tokens (default 4096, at most the model's)\n"
               MESHRUN_SAMPLING_USAGE
               "  --think | --no-think  set enable_thinking (default: the template's)\n"
               "  --threads N      CPU threads (default: physical cores)\n"
               "  --help           this text\n");
}


// The answer being streamed: its text is kept for the conversation.
typedef struct {
    char *text;
    size_t len, cap;
    bool done, oom;
    mesh_sched_finish_t finish;
    int error;
} s_answer_t;

static void s_on_event(const mesh_sched_event_t *ev, void *user) {
    s_answer_t *a = user;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
        if (a->len + ev->text_len + 1 > a->cap) {
            size_t cap = (a->cap ? a->cap : 256);
            while (cap < a->len + ev->text_len + 1)
                cap *= 2;
            char *nt = realloc(a->text, cap);
            if (!nt) {
                a->oom = true;
            } else {
                a->text = nt;
                a->cap = cap;
            }
        }
        if (!a->oom) {
            memcpy(a->text + a->len, ev->text, ev->text_len);
            a->len += ev->text_len;
            a->text[a->len] = 0;
        }
    }
    if (ev->type == MESH_SCHED_EV_DONE) {
        a->done = true;
        a->finish = ev->finish;
        a->error = ev->error;
    }
}

// {"role": role, "content": content[, "reasoning_content": rc]} appended to msgs.
static int s_add_message(mesh_json_t *msgs, const char *role, const char *content, size_t len,
                         const char *reasoning, size_t rlen) {
    mesh_json_t *m = mesh_json_new_object();
    if (!m)
        return MESH_ENOMEM;
    if (mesh_json_set(m, "role", 4, mesh_json_new_cstr(role)) ||
        mesh_json_set(m, "content", 7, mesh_json_new_string(content, len)) ||
        (reasoning && mesh_json_set(m, "reasoning_content", 17,
                                    mesh_json_new_string(reasoning, rlen)))) {
        mesh_json_destroy(&m);
        return MESH_ENOMEM;
    }
    return mesh_json_append(msgs, m);
}

// Drops the last message (a user turn that could not be answered).
static void s_drop_last(mesh_json_t **msgs) {
    mesh_json_t *n = mesh_json_new_array();
    if (!n)
        return;
    size_t len = mesh_json_len(*msgs);
    for (size_t i = 0; i + 1 < len; i++)
        if (mesh_json_append(n, mesh_json_clone(mesh_json_at(*msgs, i)))) {
            mesh_json_destroy(&n);
            return;
        }
    mesh_json_destroy(msgs);
    *msgs = n;
}

int meshrun_cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL;
    long n_predict = 512, n_ctx = 4096;
    int n_threads = 0, think = -1;
    meshrun_sampling_t smp;
    meshrun_sampling_init(&smp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        int taken = meshrun_sampling_opt(&smp, "chat", argc, argv, &i);
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        if (!strcmp(a, "--think") || !strcmp(a, "--no-think")) {
            think = !strcmp(a, "--think");
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "meshrun chat: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        double x;
        if (!strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "--system"))
            system = v;
        else if (!strcmp(a, "-n") && meshrun_parse_double(v, 1, 1 << 24, &x))
            n_predict = (long)x;
        else if (!strcmp(a, "--ctx") && meshrun_parse_double(v, 16, 1 << 24, &x))
            n_ctx = (long)x;
        else if (!strcmp(a, "--threads") && meshrun_parse_double(v, 1, 1024, &x))
            n_threads = (int)x;
        else {
            fprintf(stderr, "meshrun chat: unknown option or bad value: %s %s (see --help)\n", a,
                    v);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "meshrun chat: --model is required (see --help)\n");
        return 2;
    }
    meshrun_sampling_finish(&smp);

    int status = 1;
    char err[512] = "";
    mesh_model_t *model = NULL;
    mesh_tok_t *tok = NULL;
    mesh_tmpl_t *tmpl = NULL;
    mesh_sched_t *sched = NULL;
    mesh_json_t *msgs = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    s_answer_t ans;
    memset(&ans, 0, sizeof ans);

    mesh_model_params_t mp;
    mesh_model_params_default(&mp);
    mp.n_threads = n_threads;
    mp.max_seqs = 2;
    mp.kv_tokens = (uint32_t)n_ctx;
    int rc = mesh_model_load(model_path, &mp, &model, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun chat: %s\n", err[0] ? err : mesh_strerror(rc));
        goto out;
    }
    const mesh_gguf_t *g = mesh_model_gguf(model);
    rc = mesh_tok_new_from_gguf(g, &tok, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun chat: tokenizer: %s\n", err[0] ? err : mesh_strerror(rc));
        goto out;
    }
    const char *src = NULL;
    if (mesh_gguf_get_str(g, "tokenizer.chat_template", &src, NULL) || !src) {
        fprintf(stderr, "meshrun chat: %s has no tokenizer.chat_template\n", model_path);
        goto out;
    }
    if (!(tmpl = mesh_tmpl_new(src, err, sizeof err))) {
        fprintf(stderr, "meshrun chat: chat template: %s\n", err);
        goto out;
    }
    rc = mesh_sched_new_engine(model, tok, NULL, &sched);
    if (rc) {
        fprintf(stderr, "meshrun chat: cannot start the scheduler: %s\n", mesh_strerror(rc));
        goto out;
    }
    if (!(msgs = mesh_json_new_array()) ||
        (system && s_add_message(msgs, "system", system, strlen(system), NULL, 0)))
        goto oom;
    mesh_tmpl_chat_t chat = {.add_generation_prompt = true, .enable_thinking = think};
    mesh_tmpl_chat_specials_from_gguf(&chat, g);
    mesh_sched_stats_t st;
    mesh_sched_stats(sched, &st);
    bool tty = isatty(STDIN_FILENO);

    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0)
            break; // EOF
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!strcmp(line, "/exit"))
            break;
        if (n == 0)
            continue;
        if (s_add_message(msgs, "user", line, (size_t)n, NULL, 0))
            goto oom;
        chat.messages = msgs;
        char *prompt = NULL;
        size_t prompt_len = 0;
        rc = mesh_tmpl_render_chat(tmpl, &chat, &prompt, &prompt_len, err, sizeof err);
        if (rc) {
            fprintf(stderr, "meshrun chat: chat template: %s\n", err);
            goto out;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        rc = mesh_tok_encode_alloc(tok, prompt, prompt_len, true, false, &ids, &n_ids);
        free(prompt);
        if (rc) {
            fprintf(stderr, "meshrun chat: cannot tokenize the conversation: %s\n",
                    mesh_strerror(rc));
            goto out;
        }
        // Answer within what the KV cache holds after the conversation.
        long room = (long)st.kv_capacity_tokens - (long)n_ids;
        long max_tokens = n_predict < room ? n_predict : room;
        if (max_tokens < 1) {
            fprintf(stderr, "meshrun chat: the conversation (%zu tokens) fills the KV cache (%u "
                            "tokens); start again with a larger --ctx\n",
                    n_ids, st.kv_capacity_tokens);
            free(ids);
            s_drop_last(&msgs);
            if (!msgs)
                goto oom;
            continue;
        }
        mesh_sched_request_t req;
        mesh_sched_request_init(&req);
        req.prompt = ids;
        req.n_prompt = (int32_t)n_ids;
        req.sampling = smp.params;
        req.sampling.seed = smp.params.seed + (uint64_t)mesh_json_len(msgs); // new stream each turn
        req.max_tokens = (int32_t)max_tokens;
        req.on_event = s_on_event;
        req.user = &ans;
        ans.len = 0;
        ans.done = ans.oom = false;
        if (ans.text)
            ans.text[0] = 0;
        uint64_t id;
        rc = mesh_sched_submit(sched, &req, &id, err, sizeof err);
        free(ids);
        if (rc) {
            fprintf(stderr, "meshrun chat: %s\n", err);
            s_drop_last(&msgs);
            if (!msgs)
                goto oom;
            continue;
        }
        while (!ans.done) {
            rc = mesh_sched_step(sched);
            if (rc < 0 && !ans.done) {
                fprintf(stderr, "meshrun chat: forward pass failed: %s\n", mesh_strerror(rc));
                goto out;
            }
        }
        fputs("\n", stdout);
        fflush(stdout);
        if (ans.finish == MESH_SCHED_FINISH_ERROR) {
            fprintf(stderr, "meshrun chat: generation failed: %s\n", mesh_strerror(ans.error));
            goto out;
        }
        if (ans.oom)
            goto oom;
        // Reasoning before </think> is kept apart, as the template expects.
        const char *text = ans.text ? ans.text : "";
        const char *end_think = strstr(text, "</think>");
        const char *content = end_think ? end_think + 8 : text;
        while (*content == '\n' || *content == ' ')
            content++;
        if (s_add_message(msgs, "assistant", content, strlen(content), end_think ? text : NULL,
                          end_think ? (size_t)(end_think - text) : 0))
            goto oom;
    }
    status = 0;
    goto out;
oom:
    fprintf(stderr, "meshrun chat: out of memory\n");
out:
    free(line);
    free(ans.text);
    mesh_json_destroy(&msgs);
    mesh_sched_destroy(&sched);
    mesh_tmpl_destroy(&tmpl);
    mesh_tok_destroy(&tok);
    mesh_model_destroy(&model);
    return status;
}
