// SPDX-License-Identifier: MIT
// Continuous-batching generation: many sequences, one forward pass per step.
//
// A request (prompt ids, sampling params, max_tokens, stop strings) is
// submitted; each mesh_sched_step() runs ONE forward pass over every active
// sequence: a decoding sequence contributes its last sampled token, a
// prefilling one a chunk of its prompt (within a per-step token budget, so a
// long prompt does not stall the others). Sequences join between steps as
// they are admitted and leave as they finish, so the batch changes every
// step. Each sampled token goes to the request's callback as an event whose
// text is UTF-8 complete and stop-string filtered; a last DONE event says why
// it ended.
//
// KV accounting: a request reserves, on admission, the KV blocks for
// prompt + max_tokens tokens, so a running sequence never runs out of
// memory; the reservation is freed when it finishes or is canceled. A
// request that could never fit (more than the whole KV pool or the context
// length) is refused at submit with MESH_ENOSPACE / MESH_ERANGE and a
// message with the numbers; one that fits the pool but not its free part
// waits in a FIFO queue until enough running sequences finish.
//
// Threading model: mesh_sched_submit(), mesh_sched_cancel(),
// mesh_sched_stats() and mesh_sched_wait() may be called from any thread at
// any time (one mutex guards the queue and the counters, held for O(slots)
// at most, never during a forward pass). mesh_sched_step() must be called by
// ONE thread (the engine thread) which alone touches the model. Callbacks
// run on the step thread, outside the mutex, so a callback may call submit or
// cancel; it must not call step or destroy.
//
// The model is reached through mesh_sched_model_t (a small table of function
// pointers), so the scheduler is tested with a fake model; mesh_sched_new_engine()
// drives a loaded engine model (engine.h) and its tokenizer.
#ifndef MESH_SCHEDULER_H
#define MESH_SCHEDULER_H

#include "sampler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- the model, as the scheduler sees it --------------------------------

typedef struct {
    int32_t token;
    int32_t seq;  // sequence id from seq_new
    int32_t pos;  // position in the sequence (= tokens cached so far)
    bool logits;  // this token's logits row is wanted
} mesh_sched_tok_t;

typedef struct {
    void *ctx; // passed to every call
    int32_t n_vocab;
    int32_t n_ctx;               // most positions one sequence may have
    uint32_t kv_capacity_tokens; // tokens the whole KV pool holds
    uint32_t kv_block_tokens;    // allocation granularity of the pool (>= 1)
    uint64_t kv_bytes_per_token; // KV bytes per token (all layers)
    int32_t max_seqs;            // sequences the model can hold at once
    // New empty sequence; 0 and *seq, or a negative MESH_E* code.
    int (*seq_new)(void *ctx, int32_t *seq);
    void (*seq_free)(void *ctx, int32_t seq);
    // Evaluates n tokens of any sequences; writes one [n_vocab] row per
    // token with logits set, in batch order. 0 or a negative code.
    int (*forward)(void *ctx, int32_t n, const mesh_sched_tok_t *toks, float *logits);
    // (optional) text side. Without it events carry no text, stop strings
    // are refused and only max_tokens ends a request.
    void *(*stream_new)(void *ctx); // per-request UTF-8-safe decoder; NULL = no memory
    void (*stream_destroy)(void *stream);
    // *text (owned by the stream, valid until its next call) gets the
    // complete UTF-8 that token adds (maybe none).
    int (*stream_push)(void *stream, int32_t token, const char **text, size_t *len);
    int (*stream_flush)(void *stream, const char **text, size_t *len);
    bool (*is_eog)(void *ctx, int32_t token); // eos / eot / eom
    // (optional) text to ids (special tokens parsed, no BOS added); *ids is
    // malloc'd, caller frees. Needed for requests given as text.
    int (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n);
} mesh_sched_model_t;

// ---- requests and events ------------------------------------------------

typedef enum {
    MESH_SCHED_FINISH_STOP = 0, // stop string or end-of-generation token
    MESH_SCHED_FINISH_LENGTH,   // max_tokens reached
    MESH_SCHED_FINISH_CANCEL,   // mesh_sched_cancel() or scheduler destroyed
    MESH_SCHED_FINISH_ERROR,    // the forward pass or the sampler failed
    MESH_SCHED_FINISH_COUNT
} mesh_sched_finish_t;

// "stop", "length", "cancel", "error" (OpenAI's finish_reason words).
const char *mesh_sched_finish_name(mesh_sched_finish_t f);

typedef enum {
    MESH_SCHED_EV_TOKEN = 0, // one generated token
    MESH_SCHED_EV_DONE,      // the request ended; last event of a request
    MESH_SCHED_EV_COUNT
} mesh_sched_ev_type_t;

typedef struct {
    mesh_sched_ev_type_t type;
    uint64_t id;     // the request's id from submit
    void *user;      // the request's user pointer
    // TOKEN: the token, its logprob and top logprobs (sampler.h semantics;
    // computed only when the request's sampling.logprobs or n_logprobs asks),
    // and the text it releases (UTF-8 complete, stop strings removed; may be
    // empty while text is held back). DONE: text is what was still held
    // back (emit it too); token is -1.
    int32_t token;
    const char *text; // not NUL-terminated; valid during the callback only
    size_t text_len;
    const mesh_sampler_result_t *sample; // TOKEN only, else NULL
    // DONE only:
    mesh_sched_finish_t finish;
    int error;          // MESH_E* code when finish is ERROR, else 0
    int32_t n_prompt;   // prompt tokens
    int32_t n_gen;      // generated tokens (an end token counts)
} mesh_sched_event_t;

// Runs on the step thread; see the threading model above.
typedef void (*mesh_sched_event_fn)(const mesh_sched_event_t *ev, void *user);

typedef struct {
    const int32_t *prompt; // (n_prompt) token ids, copied at submit
    int32_t n_prompt;      // >= 1
    // Or, when prompt is NULL: text tokenized at submit (special tokens such
    // as <|user|> parsed, no BOS added: chat templates write their own).
    const char *prompt_text;
    size_t prompt_text_len;
    mesh_sampler_params_t sampling;
    int32_t max_tokens;    // >= 1: generated tokens at most
    const char *const *stop; // (n_stop) stop strings, copied; may be NULL
    int32_t n_stop;
    bool stop_at_eog;      // end at the model's eos / eot / eom tokens
    bool penalize_prompt;  // feed prompt tokens to the penalty history
    mesh_sched_event_fn on_event; // required
    void *user;            // passed back in every event
} mesh_sched_request_t;

// Zeroes *r and sets sampling defaults, max_tokens 256, stop_at_eog true.
void mesh_sched_request_init(mesh_sched_request_t *r);

// ---- the scheduler ------------------------------------------------------

typedef struct {
    int32_t max_active;       // sequences decoding/prefilling at once; 0 = min(model max_seqs, 64)
    int32_t max_queue;        // requests waiting for admission; 0 = 256
    int32_t step_tokens;      // token budget of one forward pass; 0 = 512 (>= max_active)
} mesh_sched_params_t;

typedef struct {
    int32_t active;          // sequences admitted (prefilling or decoding)
    int32_t queued;          // waiting for KV or a slot
    uint32_t kv_capacity_tokens;
    uint32_t kv_reserved_tokens; // reserved by admitted sequences
    uint64_t kv_bytes_per_token;
    uint64_t steps;          // forward passes run
    uint64_t prompt_tokens;  // prompt tokens evaluated, all time
    uint64_t gen_tokens;     // tokens generated, all time
    double busy_s;           // seconds spent inside steps that did work
    double gen_tok_per_s;    // gen_tokens / busy_s (0 before any step)
} mesh_sched_stats_t;

typedef struct mesh_sched mesh_sched_t;

// Creates a scheduler over *model (copied; model->ctx must outlive the
// scheduler). params may be NULL (defaults). Returns 0 and *out, or
// MESH_EINVAL / MESH_ENOMEM. Caller destroys *out with mesh_sched_destroy().
int mesh_sched_new(const mesh_sched_model_t *model, const mesh_sched_params_t *params,
                   mesh_sched_t **out);

typedef struct mesh_model mesh_model_t; // engine.h
typedef struct mesh_tok mesh_tok_t;     // tokenizer.h

// Creates a scheduler over a loaded engine model: its KV cache (capacity,
// block size, bytes per token, sequences) and mesh_model_forward(). tok (may
// be NULL: then no text, no stop strings, no end tokens) gives the text
// stream and the end-of-generation ids. Both must outlive the scheduler,
// which must be the only user of the model's KV cache. Caller destroys *out.
int mesh_sched_new_engine(mesh_model_t *model, const mesh_tok_t *tok,
                          const mesh_sched_params_t *params, mesh_sched_t **out);

// Ends every request (DONE with CANCEL, on the calling thread), frees the
// model's sequences and everything else, sets *s_p to NULL. Call only when
// no step is running. NULL or *s_p == NULL is a no-op.
void mesh_sched_destroy(mesh_sched_t **s_p);

// Queues a request (copies everything in *r). Returns 0 and *id (> 0), or
// MESH_EINVAL (bad request or sampling params), MESH_ERANGE (prompt +
// max_tokens beyond the context length), MESH_ENOSPACE (more KV than the
// whole pool), MESH_EBUSY (queue full), MESH_ENOMEM. On error nothing was
// queued, no event will come, and msg (if not NULL) holds one line, e.g.
// "sched: request needs 9000 tokens x 13824 B = 124416000 B of KV; the pool
// holds 4096 tokens (56623104 B), 1024 free (14155776 B)". Thread-safe.
int mesh_sched_submit(mesh_sched_t *s, const mesh_sched_request_t *r, uint64_t *id,
                      char *msg, size_t msg_len);

// Asks to end request id: it ends at the next step with DONE / CANCEL and
// its KV is freed then. Returns 0, or MESH_ENOENT when no such request is
// queued or running. Thread-safe.
int mesh_sched_cancel(mesh_sched_t *s, uint64_t id);

// Runs one forward pass over all active sequences (admitting queued requests
// first, ending canceled ones) and delivers the events. Returns the number
// of tokens evaluated (0 when there was nothing to do) or a negative code
// (the forward pass failed: the requests in that batch end with ERROR; the
// scheduler stays usable). Step thread only.
int mesh_sched_step(mesh_sched_t *s);

// Blocks until there is work (a queued, active or canceled request) or
// timeout_ms passes (< 0: forever). Returns true when there is work. For the
// engine thread's loop: while (run) { if (mesh_sched_wait(s, 100)) mesh_sched_step(s); }
bool mesh_sched_wait(mesh_sched_t *s, int timeout_ms);

// Wakes mesh_sched_wait() callers (e.g. at shutdown). Thread-safe.
void mesh_sched_wake(mesh_sched_t *s);

// Counters for heartbeats. Thread-safe.
void mesh_sched_stats(mesh_sched_t *s, mesh_sched_stats_t *out);

#endif
