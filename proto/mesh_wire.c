// SPDX-License-Identifier: MIT
// Envelope pack/unpack with bounds and version checks, and ZeroMQ send.
#include "mesh_wire.h"

#include "mesh_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int mesh_wire_pack(Mesh__Envelope *env, uint8_t **buf, size_t *len) {
    if (!env || !buf || !len)
        return MESH_EINVAL;
    if (env->protocol_version == 0)
        env->protocol_version = MESH_PROTO_VERSION;
    size_t n = mesh__envelope__get_packed_size(env);
    if (n > MESH_WIRE_MAX_BYTES)
        return MESH_ERANGE;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return MESH_ENOMEM;
    *len = mesh__envelope__pack(env, b);
    *buf = b;
    return 0;
}

int mesh_wire_unpack(const uint8_t *buf, size_t len, Mesh__Envelope **out, char *err,
                     size_t err_len) {
    *out = NULL;
    if (len > MESH_WIRE_MAX_BYTES) {
        snprintf(err, err_len, "message of %zu bytes is over the %u-byte limit", len,
                 MESH_WIRE_MAX_BYTES);
        return MESH_ERANGE;
    }
    Mesh__Envelope *env = mesh__envelope__unpack(NULL, len, buf);
    if (!env) {
        snprintf(err, err_len, "malformed envelope (%zu bytes)", len);
        return MESH_EFORMAT;
    }
    *out = env;
    if (env->protocol_version > MESH_PROTO_VERSION) {
        snprintf(err, err_len, "protocol version %u is newer than ours (%u)",
                 env->protocol_version, MESH_PROTO_VERSION);
        return MESH_EUNSUPPORTED;
    }
    if (env->kind_case == MESH__ENVELOPE__KIND__NOT_SET) {
        snprintf(err, err_len, "unknown message kind");
        return MESH_EPROTO;
    }
    return 0;
}

void mesh_wire_free(Mesh__Envelope **env) {
    if (env && *env) {
        mesh__envelope__free_unpacked(*env, NULL);
        *env = NULL;
    }
}

const char *mesh_wire_kind_name(const Mesh__Envelope *env) {
    switch (env->kind_case) {
    case MESH__ENVELOPE__KIND_HELLO: return "hello";
    case MESH__ENVELOPE__KIND_CAPABILITIES: return "capabilities";
    case MESH__ENVELOPE__KIND_HEARTBEAT: return "heartbeat";
    case MESH__ENVELOPE__KIND_GENERATE: return "generate";
    case MESH__ENVELOPE__KIND_CHUNK: return "chunk";
    case MESH__ENVELOPE__KIND_DONE: return "done";
    case MESH__ENVELOPE__KIND_CANCEL: return "cancel";
    case MESH__ENVELOPE__KIND_ERROR: return "error";
    case MESH__ENVELOPE__KIND_TOKENIZE: return "tokenize";
    case MESH__ENVELOPE__KIND_TOKENIZE_REPLY: return "tokenize_reply";
    case MESH__ENVELOPE__KIND_DRAIN: return "drain";
    case MESH__ENVELOPE__KIND_PING: return "ping";
    case MESH__ENVELOPE__KIND_PONG: return "pong";
    default: return "unknown";
    }
}

int mesh_wire_send(void *sock, const void *rid, size_t rid_len, Mesh__Envelope *env,
                   int dontwait) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = mesh_wire_pack(env, &buf, &len);
    if (rc)
        return rc;
    int flags = dontwait ? ZMQ_DONTWAIT : 0;
    if (rid && zmq_send(sock, rid, rid_len, flags | ZMQ_SNDMORE) < 0) {
        free(buf);
        return errno == EAGAIN ? MESH_EBUSY : MESH_EIO;
    }
    int n = zmq_send(sock, buf, len, flags);
    free(buf);
    if (n < 0)
        return errno == EAGAIN ? MESH_EBUSY : MESH_EIO;
    return 0;
}

int mesh_wire_send_error(void *sock, const void *rid, size_t rid_len, int code,
                         uint64_t request_id, const char *msg) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Error e = MESH__ERROR__INIT;
    e.code = code;
    e.message = (char *)msg;
    e.request_id = request_id;
    env.kind_case = MESH__ENVELOPE__KIND_ERROR;
    env.error = &e;
    return mesh_wire_send(sock, rid, rid_len, &env, 1);
}

int mesh_wire_send_ping(void *sock, const void *rid, size_t rid_len, int pong, uint64_t nonce) {
    Mesh__Envelope env = MESH__ENVELOPE__INIT;
    Mesh__Ping pi = MESH__PING__INIT;
    Mesh__Pong po = MESH__PONG__INIT;
    if (pong) {
        po.nonce = nonce;
        env.kind_case = MESH__ENVELOPE__KIND_PONG;
        env.pong = &po;
    } else {
        pi.nonce = nonce;
        env.kind_case = MESH__ENVELOPE__KIND_PING;
        env.ping = &pi;
    }
    return mesh_wire_send(sock, rid, rid_len, &env, 1);
}
