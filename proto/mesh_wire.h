// SPDX-License-Identifier: MIT
// Envelope pack/unpack and ZeroMQ send/receive for the mesh wire format.
//
// Every message between coordinator and node is one Mesh__Envelope. These
// helpers stamp the protocol version, bound the size of what is accepted
// (MESH_WIRE_MAX_BYTES, checked before protobuf-c allocates anything), and
// classify what cannot be used: malformed bytes, a newer protocol version,
// an unknown message kind. Each costs one protobuf-c pack or unpack (O(size)).
#ifndef MESH_WIRE_H
#define MESH_WIRE_H

#include "mesh.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_PROTO_VERSION 1u
// Largest envelope we accept or send, bytes. A chat request with a long
// context is well under this; anything bigger is refused unread.
#define MESH_WIRE_MAX_BYTES (8u << 20)

// Packs env (stamping protocol_version if it is 0) into a new buffer.
// Caller frees *buf with free(). Returns 0, MESH_ENOMEM or MESH_ERANGE (too big).
int mesh_wire_pack(Mesh__Envelope *env, uint8_t **buf, size_t *len);

// Unpacks len bytes. On 0, *out is a new envelope the caller frees with
// mesh_wire_free(). Errors (with a one-line reason in err):
//   MESH_ERANGE       larger than MESH_WIRE_MAX_BYTES
//   MESH_EFORMAT      not a valid envelope
//   MESH_EUNSUPPORTED protocol_version newer than ours (*out still set, so the
//                     caller can answer; caller frees it)
//   MESH_EPROTO       no known message kind (*out still set; caller frees it)
int mesh_wire_unpack(const uint8_t *buf, size_t len, Mesh__Envelope **out, char *err,
                     size_t err_len);

// Frees an envelope from mesh_wire_unpack (NULL is fine) and nulls the pointer.
void mesh_wire_free(Mesh__Envelope **env);

// A short name for the envelope's kind ("heartbeat", "unknown").
const char *mesh_wire_kind_name(const Mesh__Envelope *env);

// Sends env on a ZeroMQ socket; with rid (ROUTER identity) it goes first as
// its own frame. Non-blocking when dontwait (a full queue gives MESH_EBUSY).
// Returns 0 or a negative MESH_E*.
int mesh_wire_send(void *sock, const void *rid, size_t rid_len, Mesh__Envelope *env,
                   int dontwait);

// Builds an Error envelope and sends it (best effort).
int mesh_wire_send_error(void *sock, const void *rid, size_t rid_len, int code,
                         uint64_t request_id, const char *msg);

// Sends a Ping (pong = 0) or the Pong answering one (pong = 1) with `nonce`.
int mesh_wire_send_ping(void *sock, const void *rid, size_t rid_len, int pong, uint64_t nonce);

#endif
