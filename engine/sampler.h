// SPDX-License-Identifier: MIT
// Token sampler: turns one row of logits into one token id.
//
// The chain, in order: logit bias -> repetition / presence / frequency
// penalties -> temperature (0 = greedy argmax) -> top-k -> top-p -> min-p ->
// one draw from the remaining distribution with a seeded xoshiro256** RNG.
// Same seed + same logits + same accepted history => same tokens.
//
// A sampler holds one sequence's state (RNG, counts of recently accepted
// tokens) and all its work arrays, sized for the vocabulary at creation, so
// sampling a token never allocates. Cost per token: O(V) for the copy and
// the argmax, penalties over the distinct tokens in the window, O(V)
// expected for a top-k quickselect, then exp() over the survivors (the whole
// vocabulary without top-k), a sort of only the prefix top-p needs (doubling
// from 64 until it covers top_p) and a linear draw. Logprobs add one exp()
// over the vocabulary.
//
// Not thread-safe: one sampler per sequence, used by one thread at a time.
#ifndef MESH_SAMPLER_H
#define MESH_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The most top logprobs a sampler returns per token (OpenAI's limit).
#define MESH_SAMPLER_MAX_LOGPROBS 20

typedef struct {
    int32_t token; // token id, 0 <= token < vocab
    float bias;    // added to the raw logit; -INFINITY bans the token
} mesh_sampler_bias_t;

typedef struct {
    float temperature; // 0 (or less) = greedy argmax; 1 = the model's distribution
    int32_t top_k;     // keep the k most likely tokens; 0 = off
    float top_p;       // keep the smallest prefix of mass >= top_p; >= 1 = off
    float min_p;       // keep tokens with p >= min_p * p_max; 0 = off
    // llama.cpp / Hugging Face: over the tokens in the penalty window, a
    // positive logit is divided by it, a negative one multiplied. 1 = off.
    float repetition_penalty;
    // OpenAI: logit -= presence * (count > 0) + frequency * count, with count
    // the token's occurrences in the penalty window. 0 = off.
    float presence_penalty;
    float frequency_penalty;
    // How many of the most recently accepted tokens the penalties look at:
    // > 0 the last N, 0 = penalties off, -1 = every accepted token.
    int32_t penalty_last_n;
    uint64_t seed; // RNG seed (splitmix64 expands it into xoshiro256** state)
    const mesh_sampler_bias_t *logit_bias; // copied at creation; may be NULL
    int32_t n_logit_bias;
    // Compute the chosen token's logprob. Costs an exp over the whole
    // vocabulary per token (~1 ms at 150k), so off unless asked for;
    // implied by n_logprobs > 0. When off, result.logprob is 0.
    bool logprobs;
    int32_t n_logprobs; // top logprobs to return per token, 0..MESH_SAMPLER_MAX_LOGPROBS
} mesh_sampler_params_t;

typedef struct {
    int32_t token;
    float logprob; // log-probability (see below)
} mesh_sampler_logprob_t;

// What one draw returns. Log-probabilities (token's and top[]) are those of
// the model's own distribution: the log-softmax of the raw logits over the
// whole vocabulary, before logit bias, penalties, temperature and top-k /
// top-p / min-p truncation. They say what the model predicts, the same
// whatever the request's sampling settings, so greedy and sampled runs
// report comparable numbers. The cost of that choice: with bias or
// penalties on, the drawn token need not be top[0] (a banned token can
// still be listed), and its logprob is its raw one.
typedef struct {
    int32_t token;
    float logprob;
    int32_t n_top; // entries filled in top[], = params.n_logprobs (<= vocab)
    mesh_sampler_logprob_t top[MESH_SAMPLER_MAX_LOGPROBS]; // most likely first
} mesh_sampler_result_t;

typedef struct mesh_sampler mesh_sampler_t;

// Defaults: greedy, every filter off, penalty window 64, seed 0.
mesh_sampler_params_t mesh_sampler_params_default(void);

// Checks ranges (temperature, top_p and min_p finite and in range, top_k >= 0,
// repetition_penalty > 0, n_logprobs in range, bias tokens < vocab). Returns 0
// or MESH_EINVAL; when msg is not NULL, writes a one-line reason into it.
int mesh_sampler_params_check(const mesh_sampler_params_t *p, int32_t vocab, char *msg,
                              size_t msg_len);

// Creates a sampler for a vocabulary of `vocab` tokens. Copies *params
// (logit_bias included). Returns 0 and *out, MESH_EINVAL for bad params, or
// MESH_ENOMEM. Caller destroys *out with mesh_sampler_destroy().
int mesh_sampler_new(const mesh_sampler_params_t *params, int32_t vocab, mesh_sampler_t **out);

// Frees the sampler and sets *s_p to NULL. NULL or *s_p == NULL is a no-op.
void mesh_sampler_destroy(mesh_sampler_t **s_p);

// Draws one token from `logits` (vocab floats; not modified; NaN counts as
// -inf). Does not add the token to the history: call mesh_sampler_accept().
// Returns 0, or MESH_ERANGE when every token has -inf logit (nothing to draw).
int mesh_sampler_sample(mesh_sampler_t *s, const float *logits, mesh_sampler_result_t *out);

// Adds a token to the penalty history (prompt tokens too, if the caller wants
// them penalised, as llama.cpp and Hugging Face do). O(1). Ids outside the
// vocabulary are ignored.
void mesh_sampler_accept(mesh_sampler_t *s, int32_t token);

// Forgets the history and reseeds the RNG with params.seed. O(window).
void mesh_sampler_reset(mesh_sampler_t *s);

// Applies logit bias and penalties to `logits` in place, exactly as
// mesh_sampler_sample() does before temperature. For tests and tools.
void mesh_sampler_apply_penalties(const mesh_sampler_t *s, float *logits);

// The parameters this sampler was created with (logit_bias points into the
// sampler's own copy).
const mesh_sampler_params_t *mesh_sampler_params(const mesh_sampler_t *s);

#endif
