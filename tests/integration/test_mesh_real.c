// SPDX-License-Identifier: MIT
// Real generation through the mesh: one meshcoord and two real meshnode
// processes serving the reference tiny GLM (bf16 file) on 127.0.0.1.
//   (a) greedy answers through the coordinator equal what mesh_sched gives
//       alone in this process, and the reference data (tiny-glm.golden.json);
//   (b) kill -9 of the serving node before its first token and in
//       mid-stream: the client's answer is complete and equal to (a); and
//       through the OpenAI endpoint, top_logprobs equal to the solo run's
//       on every token, before and after the failover;
//   (d) SIGTERM drains a node: what runs finishes there, new requests go
//       elsewhere, the node exits 0.
// The "slow" node runs with MESH_NODE_DEBUG_TOKEN_DELAY_MS so the kills land
// where they should; it has more memory, so routing picks it first.
// Needs $MESH_TESTDATA (fails without).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine.h"
#include "mesh_harness.h"
#include "scheduler.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_NEW 40
#define DELAY_MS "250" // ms before each token on "slow": room for a loaded CI machine

static mh_mesh_t s_m;
static char s_model_path[1024];
static int32_t s_prompt[2][256];
static int s_n_prompt[2];
static int32_t s_golden[2][N_NEW]; // reference greedy continuations
static int32_t s_argmax_last[2];   // reference logits' argmax at the last position
static int32_t s_solo[2][N_NEW];   // mesh_sched alone, in this process
static int s_n_solo[2];
#define N_TOP 5                    // top_logprobs asked for in the failover test
static float s_solo_lp[2][N_NEW];         // the sampled tokens' logprobs, solo
static float s_solo_top[2][N_NEW][N_TOP]; // their alternatives' logprobs, best first
static char s_solo_text[2][N_NEW][64];    // each token decoded alone ("" if not UTF-8-clean)
static int s_cur_prompt;                  // the solo run's prompt, for s_on_event

typedef struct {
    const char *name;
    long long extra; // budget beyond the weights, bytes
    int slow;
    int port;
    char pub[64];
    pid_t pid;
} s_node_t;

static s_node_t s_nodes[2] = {{"slow", 64ll << 20, 1, 0, "", 0},
                              {"fast", 32ll << 20, 0, 0, "", 0}};

static void s_start_node(s_node_t *n) {
    struct stat st;
    assert_int_equal(stat(s_model_path, &st), 0);
    char model[1200], mem[32], listen[64], key[400], log[400];
    snprintf(model, sizeof model, "tiny=%s", s_model_path);
    snprintf(mem, sizeof mem, "%lld", (long long)st.st_size + n->extra);
    if (!n->port)
        n->port = mh_free_port();
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", n->port);
    snprintf(key, sizeof key, "%s/%s.key", s_m.dir, n->name);
    snprintf(log, sizeof log, "%s/%s.log", s_m.dir, n->name);
    char *argv[] = {s_m.node_bin, "--listen", listen, "--key", key, "--trust", s_m.pub,
                    "--model", model, "--mem-limit", mem, "--ctx-limit", "1024",
                    "--heartbeat-ms", "100", "--threads", "1", "--name", (char *)n->name,
                    NULL};
    if (n->slow)
        setenv("MESH_NODE_DEBUG_TOKEN_DELAY_MS", DELAY_MS, 1);
    n->pid = mh_spawn(log, argv);
    unsetenv("MESH_NODE_DEBUG_TOKEN_DELAY_MS");
}

static int s_ids(cJSON *arr, int32_t *out, int cap) {
    int n = cJSON_GetArraySize(arr);
    if (n > cap)
        return -1;
    for (int i = 0; i < n; i++)
        out[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return n;
}

static void s_on_event(const mesh_sched_event_t *ev, void *user) {
    int *n = user;
    if (ev->type == MESH_SCHED_EV_TOKEN && n[0] < N_NEW) {
        int i = n[0]++;
        ((int32_t *)(n + 1))[i] = ev->token;
        s_solo_lp[s_cur_prompt][i] = ev->sample->logprob;
        assert_int_equal(ev->sample->n_top, N_TOP);
        for (int j = 0; j < N_TOP; j++)
            s_solo_top[s_cur_prompt][i][j] = ev->sample->top[j].logprob;
    }
}

// 1 if t[0..n) is whole UTF-8 characters (what the endpoint shows as is).
static int s_utf8_clean(const char *t, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                      : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)t[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

// Greedy with the scheduler alone, as a node runs it (end tokens stop).
static void s_solo_run(void) {
    mesh_model_params_t mp;
    mesh_model_params_default(&mp);
    mp.kv_tokens = 512;
    mp.max_seqs = 4;
    mp.n_threads = 1;
    mesh_model_t *model = NULL;
    mesh_tok_t *tok = NULL;
    mesh_sched_t *s = NULL;
    char err[256];
    assert_int_equal(mesh_model_load(s_model_path, &mp, &model, err, sizeof err), 0);
    assert_int_equal(mesh_tok_new_from_gguf(mesh_model_gguf(model), &tok, err, sizeof err), 0);
    assert_int_equal(mesh_sched_new_engine(model, tok, NULL, &s), 0);
    for (int p = 0; p < 2; p++) {
        int buf[1 + N_NEW] = {0};
        mesh_sched_request_t r;
        mesh_sched_request_init(&r);
        r.prompt = s_prompt[p];
        r.n_prompt = s_n_prompt[p];
        r.max_tokens = N_NEW;
        r.sampling.temperature = 0;
        r.sampling.logprobs = true; // changes no token: only what is reported
        r.sampling.n_logprobs = N_TOP;
        r.on_event = s_on_event;
        r.user = buf;
        s_cur_prompt = p;
        uint64_t id;
        assert_int_equal(mesh_sched_submit(s, &r, &id, err, sizeof err), 0);
        for (int guard = 0; guard < 10000 && mesh_sched_wait(s, 0); guard++)
            assert_true(mesh_sched_step(s) >= 0);
        s_n_solo[p] = buf[0];
        memcpy(s_solo[p], buf + 1, sizeof s_solo[p]);
        for (int i = 0; i < s_n_solo[p]; i++) {
            char *t = s_solo_text[p][i];
            size_t len = 0;
            if (mesh_tok_decode(tok, &s_solo[p][i], 1, false, t, 63, &len) || len > 62 ||
                memchr(t, 0, len) || !s_utf8_clean(t, len))
                len = 0;
            t[len] = 0;
        }
    }
    mesh_sched_destroy(&s);
    mesh_tok_destroy(&tok);
    mesh_model_destroy(&model);
}

static int s_setup(void **st) {
    (void)st;
    char path[1024], *text = malloc(1 << 20);
    assert_non_null(text);
    mh_testdata(path, sizeof path, "tiny-glm.golden.json");
    assert_true(mh_read_file(path, text, 1 << 20) > 0);
    cJSON *g = cJSON_Parse(text);
    free(text);
    assert_non_null(g);
    for (int p = 0; p < 2; p++) {
        cJSON *pr = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "prompts"), p);
        s_n_prompt[p] = s_ids(cJSON_GetObjectItem(pr, "ids"), s_prompt[p], 256);
        cJSON *gr = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "greedy"), p);
        assert_int_equal((int)cJSON_GetObjectItem(gr, "prompt_index")->valuedouble, p);
        assert_int_equal(s_ids(cJSON_GetObjectItem(gr, "new_tokens"), s_golden[p], N_NEW),
                         N_NEW);
        cJSON *ls = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "logits_stats"), p);
        s_argmax_last[p] = (int32_t)cJSON_GetObjectItem(ls, "argmax_last")->valuedouble;
        assert_true(s_n_prompt[p] > 0);
    }
    cJSON_Delete(g);
    mh_testdata(s_model_path, sizeof s_model_path, "tiny-glm.bf16.gguf");
    s_solo_run();
    mh_mesh_init(&s_m);
    for (int i = 0; i < 2; i++) {
        mh_mesh_node_key(&s_m, s_nodes[i].name, s_nodes[i].pub, sizeof s_nodes[i].pub);
        s_start_node(&s_nodes[i]);
        assert_int_equal(mh_mesh_add(&s_m, s_nodes[i].name, s_nodes[i].port, s_nodes[i].pub),
                         200);
    }
    if (mh_wait_up(s_m.port, s_m.token, 2, 15000) != 2)
        fail_msg("two nodes did not come up (logs in %s)", s_m.dir);
    return 0;
}

static int s_teardown(void **st) {
    (void)st;
    mh_kill_all();
    mh_rmtree(s_m.dir);
    return 0;
}

typedef struct {
    int prompt, max_tokens;
    pthread_t thread;
    int status;
    char node[64], reason[64], finish[16];
    int32_t ids[N_NEW];
    int n;
} s_gen_t;

static void *s_gen_run(void *arg) {
    s_gen_t *g = arg;
    char body[4096];
    int o = snprintf(body, sizeof body, "{\"model\":\"tiny\",\"max_tokens\":%d,\"tokens\":[",
                     g->max_tokens);
    for (int i = 0; i < s_n_prompt[g->prompt]; i++)
        o += snprintf(body + o, sizeof body - (size_t)o, "%s%d", i ? "," : "",
                      s_prompt[g->prompt][i]);
    snprintf(body + o, sizeof body - (size_t)o, "]}");
    cJSON *js = NULL;
    g->status = mh_mesh_call(&s_m, "POST", "/admin/v1/generate", body, &js);
    if (g->status == 200 && js) {
        snprintf(g->node, sizeof g->node, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "node")));
        snprintf(g->reason, sizeof g->reason, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "route_reason")));
        snprintf(g->finish, sizeof g->finish, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(js, "finish_reason")));
        g->n = s_ids(cJSON_GetObjectItem(js, "tokens"), g->ids, N_NEW);
    }
    cJSON_Delete(js);
    return NULL;
}

// One OpenAI endpoint request on its own thread (the kill happens meanwhile).
typedef struct {
    const char *body;
    pthread_t thread;
    int status;
    char *reply;
} s_http_job_t;

static void *s_http_run(void *arg) {
    s_http_job_t *j = arg;
    j->status = mh_http(s_m.http_port, "POST", "/v1/completions", NULL, j->body, &j->reply);
    return NULL;
}

static void s_gen_start(s_gen_t *g, int prompt, int max_tokens) {
    memset(g, 0, sizeof *g);
    g->prompt = prompt;
    g->max_tokens = max_tokens;
    assert_int_equal(pthread_create(&g->thread, NULL, s_gen_run, g), 0);
}

static void s_gen_wait(s_gen_t *g) {
    pthread_join(g->thread, NULL);
}

// Occurrences of needle in the coordinator's log.
static int s_log_count(const char *needle) {
    static char buf[1 << 20];
    if (mh_read_file(s_m.log, buf, sizeof buf) < 0)
        return 0;
    int n = 0;
    for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

// Waits until the coordinator has routed `count` requests to node `name`.
static void s_wait_routed(const char *name, int count) {
    char needle[96];
    snprintf(needle, sizeof needle, "-> node %s (", name);
    for (int i = 0; i < 3000; i++) {
        if (s_log_count(needle) >= count)
            return;
        usleep(2000);
    }
    fail_msg("no request was routed to %s (logs in %s)", name, s_m.dir);
}

// Sequences the node reports running (heartbeats), -1 if unknown.
static int s_node_active(const char *name) {
    cJSON *js = NULL, *nd;
    int active = -1;
    if (mh_mesh_call(&s_m, "GET", "/admin/v1/nodes", NULL, &js) == 200) {
        cJSON_ArrayForEach(nd, js) {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(nd, "name")), name) == 0)
                active = (int)cJSON_GetObjectItem(nd, "active")->valuedouble;
        }
    }
    cJSON_Delete(js);
    return active;
}

static void s_drain(const char *name, int on) {
    char path[128];
    snprintf(path, sizeof path, "/admin/v1/nodes/%s/drain", name);
    assert_int_equal(mh_mesh_call(&s_m, "POST", path, on ? "{\"on\":true}" : "{\"on\":false}",
                                  NULL),
                     200);
    // The node is told too and reports it: wait until both agree.
    const char *want = on ? "draining" : "up";
    char state[32] = "";
    for (int i = 0; i < 1000 && strcmp(state, want) != 0; i++) {
        mh_node_state(s_m.port, s_m.token, name, state, sizeof state);
        usleep(5000);
    }
    assert_string_equal(state, want);
}

static void test_greedy_equals_single_node(void **st) {
    (void)st;
    // Ground truth: the engine alone reproduces the reference where the
    // reference agrees with itself. Prompt 1: the 40 greedy ids. Prompt 0:
    // the reference's greedy list starts with a token that is not its own
    // logits' argmax (1055 vs 1286), so there the first token must be the
    // logits' argmax.
    assert_int_equal(s_n_solo[1], N_NEW);
    assert_memory_equal(s_solo[1], s_golden[1], sizeof s_golden[1]);
    assert_true(s_n_solo[0] >= 1);
    assert_int_equal(s_solo[0][0], s_argmax_last[0]);
    // Through the coordinator and a real node (the fast one: slow drained).
    s_drain("slow", 1);
    for (int p = 0; p < 2; p++) {
        s_gen_t g;
        s_gen_start(&g, p, N_NEW);
        s_gen_wait(&g);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.node, "fast");
        assert_int_equal(g.n, s_n_solo[p]);
        assert_memory_equal(g.ids, s_solo[p], (size_t)g.n * sizeof(int32_t));
    }
    s_drain("slow", 0);
}

static void test_kill_before_first_token(void **st) {
    (void)st;
    int before = s_log_count("-> node slow (");
    s_gen_t g;
    s_gen_start(&g, 0, N_NEW);
    // Routed to slow (most headroom); its first token waits DELAY_MS: kill now.
    s_wait_routed("slow", before + 1);
    mh_stop(s_nodes[0].pid, SIGKILL);
    s_gen_wait(&g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "fast");
    assert_string_equal(g.reason, "failover");
    assert_int_equal(g.n, s_n_solo[0]);
    assert_memory_equal(g.ids, s_solo[0], (size_t)g.n * sizeof(int32_t));
    assert_int_equal(s_log_count("failover after 0 tokens"), 1);
    // The node comes back without a new `node add`.
    s_start_node(&s_nodes[0]);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 15000), 2);
}

static void test_kill_mid_stream(void **st) {
    (void)st;
    int before = s_log_count("-> node slow (");
    int failovers = s_log_count("failover after");
    s_gen_t g;
    s_gen_start(&g, 0, N_NEW);
    s_wait_routed("slow", before + 1);
    usleep(1200 * 1000); // about 4 tokens at DELAY_MS each, well short of 40
    mh_stop(s_nodes[0].pid, SIGKILL);
    s_gen_wait(&g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "fast");
    assert_int_equal(g.n, s_n_solo[0]);
    assert_memory_equal(g.ids, s_solo[0], (size_t)g.n * sizeof(int32_t));
    assert_int_equal(s_log_count("failover after"), failovers + 1);
    assert_int_equal(s_log_count("failover after 0 tokens"), 1); // this one had tokens
    s_start_node(&s_nodes[0]);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 15000), 2);
}

// top_logprobs survive a failover: /v1/completions (token-id prompt, greedy,
// logprobs N_TOP) on slow, killed after a few tokens; every token, those
// from slow and those replayed on fast, has N_TOP alternatives whose
// logprobs are the solo run's at that position (an off-by-one after the
// replay would show another position's numbers), the sampled one first.
static void test_kill_mid_stream_logprobs(void **st) {
    (void)st;
    int before = s_log_count("-> node slow (");
    int failovers = s_log_count("failover after");
    char body[4096];
    int o = snprintf(body, sizeof body,
                     "{\"model\":\"tiny\",\"max_tokens\":%d,\"temperature\":0,"
                     "\"logprobs\":%d,\"prompt\":[",
                     N_NEW, N_TOP);
    for (int i = 0; i < s_n_prompt[0]; i++)
        o += snprintf(body + o, sizeof body - (size_t)o, "%s%d", i ? "," : "", s_prompt[0][i]);
    snprintf(body + o, sizeof body - (size_t)o, "]}");
    s_http_job_t job = {.body = body};
    assert_int_equal(pthread_create(&job.thread, NULL, s_http_run, &job), 0);
    s_wait_routed("slow", before + 1);
    usleep(1200 * 1000); // about 4 tokens at DELAY_MS each
    mh_stop(s_nodes[0].pid, SIGKILL);
    pthread_join(job.thread, NULL);
    assert_int_equal(job.status, 200);
    assert_int_equal(s_log_count("failover after"), failovers + 1);
    assert_int_equal(s_log_count("failover after 0 tokens"), 1); // this one had tokens
    cJSON *js = cJSON_Parse(job.reply);
    assert_non_null(js);
    cJSON *mesh = cJSON_GetObjectItem(js, "mesh");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(mesh, "route")), "failover");
    cJSON *lp = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "choices"), 0),
                                    "logprobs");
    cJSON *toks = cJSON_GetObjectItem(lp, "tokens");
    cJSON *tlp = cJSON_GetObjectItem(lp, "token_logprobs");
    cJSON *top = cJSON_GetObjectItem(lp, "top_logprobs");
    assert_int_equal(cJSON_GetArraySize(tlp), s_n_solo[0]);
    assert_int_equal(cJSON_GetArraySize(top), s_n_solo[0]);
    for (int i = 0; i < s_n_solo[0]; i++) {
        double got = cJSON_GetArrayItem(tlp, i)->valuedouble;
        if (fabs(got - s_solo_lp[0][i]) > 1e-3)
            fail_msg("token %d: logprob %g, solo %g", i, got, (double)s_solo_lp[0][i]);
        if (s_solo_text[0][i][0])
            assert_string_equal(cJSON_GetArrayItem(toks, i)->valuestring, s_solo_text[0][i]);
        cJSON *d = cJSON_GetArrayItem(top, i), *a;
        assert_int_equal(cJSON_GetArraySize(d), N_TOP);
        int j = 0;
        cJSON_ArrayForEach(a, d) {
            if (fabs(a->valuedouble - s_solo_top[0][i][j]) > 1e-3)
                fail_msg("token %d alternative %d: %g, solo %g", i, j, a->valuedouble,
                         (double)s_solo_top[0][i][j]);
            assert_true(a->valuedouble <= 0);
            j++;
        }
        assert_true(cJSON_GetArrayItem(d, 0)->valuedouble == got); // greedy: top-1
    }
    cJSON_Delete(js);
    free(job.reply);
    s_start_node(&s_nodes[0]);
    assert_int_equal(mh_wait_up(s_m.port, s_m.token, 2, 15000), 2);
}

static void test_sigterm_drains(void **st) {
    (void)st;
    int before = s_log_count("-> node slow (");
    s_gen_t g;
    s_gen_start(&g, 1, 8); // 8 tokens at DELAY_MS: about 2 s on slow
    s_wait_routed("slow", before + 1);
    // Admitted by the node (not still on the wire, where a draining node
    // would rightly refuse it): its heartbeat counts it.
    for (int i = 0; i < 400 && s_node_active("slow") < 1; i++)
        usleep(5000);
    assert_int_equal(s_node_active("slow"), 1);
    kill(s_nodes[0].pid, SIGTERM);
    // The node says it drains (capabilities at once): new work goes to fast.
    char state[32] = "";
    for (int i = 0; i < 500 && strcmp(state, "draining") != 0; i++) {
        mh_node_state(s_m.port, s_m.token, "slow", state, sizeof state);
        usleep(2000);
    }
    assert_string_equal(state, "draining");
    s_gen_t g2;
    s_gen_start(&g2, 1, 4);
    s_gen_wait(&g2);
    assert_int_equal(g2.status, 200);
    assert_string_equal(g2.node, "fast");
    assert_memory_equal(g2.ids, s_solo[1], 4 * sizeof(int32_t));
    // What ran on slow finished there, complete; then slow exited 0.
    s_gen_wait(&g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.node, "slow");
    assert_string_not_equal(g.reason, "failover");
    assert_string_equal(g.finish, "length");
    assert_int_equal(g.n, 8);
    assert_memory_equal(g.ids, s_solo[1], 8 * sizeof(int32_t));
    int status = mh_stop(s_nodes[0].pid, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    // It left on the coordinator's Pong to its goodbye Ping (node/README.md).
    char log[400];
    snprintf(log, sizeof log, "%s/slow.log", s_m.dir);
    assert_true(mh_file_has(log, "drained, exiting"));
    assert_false(mh_file_has(log, "did not confirm"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equals_single_node),
        cmocka_unit_test(test_kill_before_first_token),
        cmocka_unit_test(test_kill_mid_stream),
        cmocka_unit_test(test_kill_mid_stream_logprobs),
        cmocka_unit_test(test_sigterm_drains),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
