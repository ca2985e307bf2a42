// SPDX-License-Identifier: MIT
// Wire format: every message kind survives pack -> unpack unchanged; the
// unpack checks classify malformed bytes, oversized input, a newer protocol
// version and an unknown message kind.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_err.h"
#include "mesh_wire.h"

#include <stdlib.h>
#include <string.h>

static Mesh__Envelope *s_roundtrip(Mesh__Envelope *in) {
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(mesh_wire_pack(in, &buf, &len), 0);
    Mesh__Envelope *out = NULL;
    char err[128];
    assert_int_equal(mesh_wire_unpack(buf, len, &out, err, sizeof err), 0);
    free(buf);
    assert_int_equal(out->protocol_version, MESH_PROTO_VERSION);
    assert_int_equal(out->msg_id, in->msg_id);
    assert_int_equal(out->kind_case, in->kind_case);
    return out;
}

static void test_capabilities(void **st) {
    (void)st;
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Capabilities k = MESH__CAPABILITIES__INIT;
    Mesh__Device d = MESH__DEVICE__INIT, *dp = &d;
    Mesh__ModelInfo m = MESH__MODEL_INFO__INIT, *mp = &m;
    d.name = "NVIDIA H100";
    d.arch = "sm_90";
    d.mem_total = 80ull << 30;
    d.mem_free = 12345678901ull;
    m.name = "glm-4.7-flash";
    m.arch = "deepseek2";
    m.quant = "q4_k_m";
    m.file_size = 18ull << 30;
    m.ctx_limit = 202752;
    m.kv_bytes_per_token = 47 * 576 * 2;
    m.prefill_tps = 1234.5f;
    m.decode_tps = 88.25f;
    k.node_name = "gpu1";
    k.sw_version = "0.1.0";
    k.proto_version = 1;
    k.backend = "cuda";
    k.n_devices = 1;
    k.devices = &dp;
    k.n_models = 1;
    k.models = &mp;
    env.msg_id = 77;
    env.kind_case = MESH__ENVELOPE__KIND_CAPABILITIES;
    env.capabilities = &k;
    Mesh__Envelope *o = s_roundtrip(&env);
    Mesh__Capabilities *c = o->capabilities;
    assert_string_equal(c->node_name, "gpu1");
    assert_string_equal(c->backend, "cuda");
    assert_int_equal(c->n_devices, 1);
    assert_string_equal(c->devices[0]->arch, "sm_90");
    assert_true(c->devices[0]->mem_free == 12345678901ull);
    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0]->quant, "q4_k_m");
    assert_int_equal(c->models[0]->ctx_limit, 202752);
    assert_true(c->models[0]->kv_bytes_per_token == 47 * 576 * 2);
    assert_true(c->models[0]->decode_tps == 88.25f);
    mesh_wire_free(&o);
    assert_null(o);
}

static void test_generate_and_stream(void **st) {
    (void)st;
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__GenerateRequest g = MESH__GENERATE_REQUEST__INIT;
    Mesh__Sampling s = MESH__SAMPLING__INIT;
    Mesh__ChatInput chat = MESH__CHAT_INPUT__INIT;
    char *stops[] = {"</s>", "\n\n"};
    int32_t cont[] = {5, 6, 7};
    chat.messages_json = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    chat.add_generation_prompt = 1;
    chat.enable_thinking = 1;
    g.request_id = 0xfffffffffffull;
    g.model = "glm-4.7-flash";
    g.quant = "q8_0";
    g.input_case = MESH__GENERATE_REQUEST__INPUT_CHAT;
    g.chat = &chat;
    s.temperature = 0.7f;
    s.top_k = 40;
    s.seed = 42;
    s.has_seed = 1;
    s.n_stop = 2;
    s.stop = stops;
    s.max_tokens = 128;
    g.sampling = &s;
    g.n_continue_ids = 3;
    g.continue_ids = cont;
    g.index_base = 3;
    env.kind_case = MESH__ENVELOPE__KIND_GENERATE;
    env.generate = &g;
    Mesh__Envelope *o = s_roundtrip(&env);
    Mesh__GenerateRequest *r = o->generate;
    assert_true(r->request_id == 0xfffffffffffull);
    assert_int_equal(r->input_case, MESH__GENERATE_REQUEST__INPUT_CHAT);
    assert_string_equal(r->chat->messages_json, chat.messages_json);
    assert_true(r->chat->enable_thinking);
    assert_int_equal(r->sampling->n_stop, 2);
    assert_string_equal(r->sampling->stop[1], "\n\n");
    assert_int_equal(r->sampling->max_tokens, 128);
    assert_true(r->sampling->temperature == 0.7f);
    assert_int_equal(r->n_continue_ids, 3);
    assert_int_equal(r->continue_ids[2], 7);
    mesh_wire_free(&o);

    Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
    int32_t ids[] = {1, 2022, 0};
    float lp[] = {-0.5f, -1.25f, 0.0f};
    k.request_id = 9;
    k.n_ids = 3;
    k.ids = ids;
    k.text = "h\xc3\xa9llo";
    k.n_logprobs = 3;
    k.logprobs = lp;
    k.index = 10;
    Mesh__Envelope e2 = MESH__ENVELOPE__INIT;
    e2.kind_case = MESH__ENVELOPE__KIND_CHUNK;
    e2.chunk = &k;
    o = s_roundtrip(&e2);
    assert_int_equal(o->chunk->n_ids, 3);
    assert_int_equal(o->chunk->ids[1], 2022);
    assert_string_equal(o->chunk->text, "h\xc3\xa9llo");
    assert_true(o->chunk->logprobs[1] == -1.25f);
    assert_int_equal(o->chunk->index, 10);
    mesh_wire_free(&o);
}

// top_logprobs (Sampling) and per-token info (TokenChunk): pieces are bytes,
// so a partial UTF-8 character and a NUL survive; a chunk without info (an
// older node's) unpacks with none.
static void test_token_info(void **st) {
    (void)st;
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__GenerateRequest g = MESH__GENERATE_REQUEST__INIT;
    Mesh__Sampling s = MESH__SAMPLING__INIT;
    Mesh__TokenIds ids = MESH__TOKEN_IDS__INIT;
    int32_t pid[] = {1, 2};
    ids.n_ids = 2;
    ids.ids = pid;
    g.input_case = MESH__GENERATE_REQUEST__INPUT_TOKENS;
    g.tokens = &ids;
    s.logprobs = 1;
    s.top_logprobs = 20;
    s.max_tokens = 4;
    g.sampling = &s;
    env.kind_case = MESH__ENVELOPE__KIND_GENERATE;
    env.generate = &g;
    Mesh__Envelope *o = s_roundtrip(&env);
    assert_int_equal(o->generate->sampling->logprobs, 1);
    assert_int_equal(o->generate->sampling->top_logprobs, 20);
    mesh_wire_free(&o);

    uint8_t half[] = {0xe4, 0xbd}, zero[] = {'a', 0, 'b'}, full[] = {0xe4, 0xbd, 0xa0};
    Mesh__TokenLogprob t0 = MESH__TOKEN_LOGPROB__INIT, t1 = MESH__TOKEN_LOGPROB__INIT;
    Mesh__TokenLogprob *tops[] = {&t0, &t1};
    t0.id = 7;
    t0.logprob = -0.125f;
    t0.piece = (ProtobufCBinaryData){sizeof half, half};
    t1.id = 70000;
    t1.logprob = -3.5f;
    t1.piece = (ProtobufCBinaryData){sizeof zero, zero};
    Mesh__TokenInfo i0 = MESH__TOKEN_INFO__INIT, i1 = MESH__TOKEN_INFO__INIT;
    Mesh__TokenInfo *infos[] = {&i0, &i1};
    i0.piece = (ProtobufCBinaryData){sizeof half, half};
    i0.n_top = 2;
    i0.top = tops;
    i1.piece = (ProtobufCBinaryData){sizeof full, full};
    Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
    int32_t kid[] = {7, 9};
    float lp[] = {-0.125f, -0.5f};
    k.request_id = 5;
    k.n_ids = 2;
    k.ids = kid;
    k.text = "";
    k.n_logprobs = 2;
    k.logprobs = lp;
    k.n_info = 2;
    k.info = infos;
    Mesh__Envelope e2 = MESH__ENVELOPE__INIT;
    e2.kind_case = MESH__ENVELOPE__KIND_CHUNK;
    e2.chunk = &k;
    o = s_roundtrip(&e2);
    const Mesh__TokenChunk *c = o->chunk;
    assert_int_equal(c->n_info, 2);
    assert_int_equal(c->info[0]->piece.len, sizeof half);
    assert_memory_equal(c->info[0]->piece.data, half, sizeof half);
    assert_int_equal(c->info[0]->n_top, 2);
    assert_int_equal(c->info[0]->top[1]->id, 70000);
    assert_true(c->info[0]->top[0]->logprob == -0.125f);
    assert_int_equal(c->info[0]->top[1]->piece.len, sizeof zero);
    assert_memory_equal(c->info[0]->top[1]->piece.data, zero, sizeof zero);
    assert_int_equal(c->info[1]->n_top, 0);
    assert_memory_equal(c->info[1]->piece.data, full, sizeof full);
    mesh_wire_free(&o);

    k.n_info = 0;
    o = s_roundtrip(&e2);
    assert_int_equal(o->chunk->n_info, 0);
    assert_int_equal(o->chunk->n_logprobs, 2);
    mesh_wire_free(&o);
}

static void test_small_kinds(void **st) {
    (void)st;
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Heartbeat h = MESH__HEARTBEAT__INIT;
    h.mem_free = 1ull << 40;
    h.active = 3;
    h.queued = 4;
    h.recent_tps = 55.5f;
    h.seq = 99;
    env.kind_case = MESH__ENVELOPE__KIND_HEARTBEAT;
    env.heartbeat = &h;
    Mesh__Envelope *o = s_roundtrip(&env);
    assert_true(o->heartbeat->mem_free == 1ull << 40);
    assert_int_equal(o->heartbeat->queued, 4);
    mesh_wire_free(&o);

    Mesh__Error e = MESH__ERROR__INIT;
    e.code = MESH_ENOSPACE;
    e.message = "no room";
    e.request_id = 5;
    env.kind_case = MESH__ENVELOPE__KIND_ERROR;
    env.error = &e;
    o = s_roundtrip(&env);
    assert_int_equal(o->error->code, MESH_ENOSPACE);
    assert_string_equal(o->error->message, "no room");
    mesh_wire_free(&o);

    Mesh__GenerateDone d = MESH__GENERATE_DONE__INIT;
    d.request_id = 5;
    d.finish_reason = "length";
    d.prompt_tokens = 10;
    d.completion_tokens = 20;
    env.kind_case = MESH__ENVELOPE__KIND_DONE;
    env.done = &d;
    o = s_roundtrip(&env);
    assert_string_equal(o->done->finish_reason, "length");
    assert_int_equal(o->done->completion_tokens, 20);
    mesh_wire_free(&o);

    Mesh__Cancel c = MESH__CANCEL__INIT;
    c.request_id = 8;
    env.kind_case = MESH__ENVELOPE__KIND_CANCEL;
    env.cancel = &c;
    o = s_roundtrip(&env);
    assert_int_equal(o->cancel->request_id, 8);
    mesh_wire_free(&o);

    Mesh__TokenizeReply tr = MESH__TOKENIZE_REPLY__INIT;
    int32_t ids[] = {4, 5};
    tr.request_id = 1;
    tr.n_ids = 2;
    tr.ids = ids;
    env.kind_case = MESH__ENVELOPE__KIND_TOKENIZE_REPLY;
    env.tokenize_reply = &tr;
    o = s_roundtrip(&env);
    assert_int_equal(o->tokenize_reply->ids[1], 5);
    mesh_wire_free(&o);

    Mesh__Ping p = MESH__PING__INIT;
    p.nonce = 0xabcdef;
    env.kind_case = MESH__ENVELOPE__KIND_PING;
    env.ping = &p;
    o = s_roundtrip(&env);
    assert_int_equal(o->ping->nonce, 0xabcdef);
    mesh_wire_free(&o);

    Mesh__Drain dr = MESH__DRAIN__INIT;
    dr.on = 1;
    env.kind_case = MESH__ENVELOPE__KIND_DRAIN;
    env.drain = &dr;
    o = s_roundtrip(&env);
    assert_true(o->drain->on);
    mesh_wire_free(&o);
}

static void test_bad_input(void **st) {
    (void)st;
    Mesh__Envelope *o = NULL;
    char err[128];
    // Truncated varint.
    const uint8_t trunc[] = {0x08};
    assert_int_equal(mesh_wire_unpack(trunc, sizeof trunc, &o, err, sizeof err), MESH_EFORMAT);
    assert_null(o);
    // Length-delimited field claiming more bytes than there are.
    const uint8_t overlong[] = {0x52, 0x7f, 0x01};
    assert_int_equal(mesh_wire_unpack(overlong, sizeof overlong, &o, err, sizeof err),
                     MESH_EFORMAT);
    // Unknown kind: field 99, length 0.
    const uint8_t unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x00};
    assert_int_equal(mesh_wire_unpack(unknown, sizeof unknown, &o, err, sizeof err),
                     MESH_EPROTO);
    assert_non_null(o);
    mesh_wire_free(&o);
    // Newer protocol version with a ping.
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Ping p = MESH__PING__INIT;
    env.protocol_version = MESH_PROTO_VERSION + 1;
    env.kind_case = MESH__ENVELOPE__KIND_PING;
    env.ping = &p;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mesh_wire_pack(&env, &buf, &len), 0);
    assert_int_equal(mesh_wire_unpack(buf, len, &o, err, sizeof err), MESH_EUNSUPPORTED);
    assert_non_null(strstr(err, "newer"));
    mesh_wire_free(&o);
    free(buf);
    // Oversized: refused before parsing.
    size_t big = MESH_WIRE_MAX_BYTES + 1;
    uint8_t *huge = calloc(1, big);
    assert_non_null(huge);
    assert_int_equal(mesh_wire_unpack(huge, big, &o, err, sizeof err), MESH_ERANGE);
    assert_null(o);
    free(huge);
    // Packing something over the limit is refused too.
    Mesh__TokenChunk k = MESH__TOKEN_CHUNK__INIT;
    char *text = malloc(MESH_WIRE_MAX_BYTES + 10);
    memset(text, 'a', MESH_WIRE_MAX_BYTES + 9);
    text[MESH_WIRE_MAX_BYTES + 9] = 0;
    k.text = text;
    Mesh__Envelope e2 = MESH__ENVELOPE__INIT;
    e2.kind_case = MESH__ENVELOPE__KIND_CHUNK;
    e2.chunk = &k;
    assert_int_equal(mesh_wire_pack(&e2, &buf, &len), MESH_ERANGE);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capabilities),
        cmocka_unit_test(test_generate_and_stream),
        cmocka_unit_test(test_token_info),
        cmocka_unit_test(test_small_kinds),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
