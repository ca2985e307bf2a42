// SPDX-License-Identifier: MIT
// Stop-string matcher (see stop.h).
//
// Invariant: the released text never contains the start of a stop string
// that has not been ruled out, because after each piece we keep the longest
// tail of the pending text that is a proper prefix of some stop string. Any
// stop occurrence therefore lies entirely within the pending text once it
// completes, and a plain memmem over the pending text finds it.
#include "stop.h"

#include "mesh_err.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct mesh_stop {
    char **stops;  // (n) owned copies
    size_t *lens;  // (n) byte lengths
    int n;
    int matched;   // index of the stop string that completed, or -1
    char *buf;     // pending text: [0, held) held back from the previous call
    size_t held;   // bytes held back (pending, not yet released)
    size_t cap;    // bytes allocated in buf
    size_t out_off; // where the text released by the last call starts in buf
};

int mesh_stop_new(const char *const *stops, int n, mesh_stop_t **out) {
    *out = NULL;
    if (n < 0 || (n > 0 && !stops))
        return MESH_EINVAL;
    for (int i = 0; i < n; i++)
        if (!stops[i] || !stops[i][0])
            return MESH_EINVAL;
    mesh_stop_t *m = calloc(1, sizeof *m);
    if (!m)
        return MESH_ENOMEM;
    m->matched = -1;
    if (n > 0) {
        m->stops = calloc((size_t)n, sizeof *m->stops);
        m->lens = calloc((size_t)n, sizeof *m->lens);
        if (!m->stops || !m->lens)
            goto nomem;
        m->n = n;
        for (int i = 0; i < n; i++) {
            m->lens[i] = strlen(stops[i]);
            m->stops[i] = malloc(m->lens[i] + 1);
            if (!m->stops[i])
                goto nomem;
            memcpy(m->stops[i], stops[i], m->lens[i] + 1);
        }
    }
    *out = m;
    return 0;
nomem:
    mesh_stop_destroy(&m);
    return MESH_ENOMEM;
}

void mesh_stop_destroy(mesh_stop_t **m_p) {
    if (!m_p || !*m_p)
        return;
    mesh_stop_t *m = *m_p;
    for (int i = 0; i < m->n && m->stops; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->buf);
    free(m);
    *m_p = NULL;
}

int mesh_stop_matched(const mesh_stop_t *m) { return m->matched; }

void mesh_stop_reset(mesh_stop_t *m) {
    m->matched = -1;
    m->held = 0;
}

// Length of the longest tail of buf[0..len) that is a proper prefix of some
// stop string. O(len * n) comparisons of up to max stop length each.
static size_t s_partial_tail(const mesh_stop_t *m, const char *buf, size_t len) {
    size_t best = 0;
    for (int i = 0; i < m->n; i++) {
        size_t max = m->lens[i] - 1 < len ? m->lens[i] - 1 : len;
        for (size_t k = max; k > best; k--) {
            if (!memcmp(buf + len - k, m->stops[i], k)) {
                best = k;
                break;
            }
        }
    }
    return best;
}

static void s_reverse(char *a, size_t n) {
    for (size_t i = 0; n > 1 && i < n - 1 - i; i++) {
        char t = a[i];
        a[i] = a[n - 1 - i];
        a[n - 1 - i] = t;
    }
}

// Appends a piece, looks for a completed stop string, and releases what can
// no longer start one (everything when `final`).
static int s_feed(mesh_stop_t *m, const char *piece, size_t piece_len, bool final,
                  const char **text, size_t *len) {
    *text = "";
    *len = 0;
    if (m->matched >= 0)
        return 1;
    if (m->held + piece_len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->held + piece_len)
            cap *= 2;
        char *nb = realloc(m->buf, cap);
        if (!nb)
            return MESH_ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    if (piece_len)
        memcpy(m->buf + m->held, piece, piece_len);
    size_t total = m->held + piece_len;

    // The stop string that completes first (earliest end, then earliest
    // start): the same answer however the text was split into pieces.
    size_t first = total, first_end = (size_t)-1;
    for (int i = 0; i < m->n; i++) {
        if (m->lens[i] > total)
            continue;
        const char *hit = memmem(m->buf, total, m->stops[i], m->lens[i]);
        if (!hit)
            continue;
        size_t pos = (size_t)(hit - m->buf), end = pos + m->lens[i];
        if (end < first_end || (end == first_end && pos < first)) {
            first = pos;
            first_end = end;
            m->matched = i;
        }
    }
    if (m->matched >= 0) {
        m->held = 0;
        *text = m->buf;
        *len = first;
        return 1;
    }

    size_t keep = final ? 0 : s_partial_tail(m, m->buf, total);
    // Never split a UTF-8 sequence between released and held text: move the
    // cut back over continuation bytes (only matters for stop strings that
    // are not themselves valid UTF-8 at their start).
    size_t cut = total - keep;
    while (cut > 0 && cut < total && ((unsigned char)m->buf[cut] & 0xC0) == 0x80)
        cut--;
    keep = total - cut;
    // Release buf[0..cut) and keep buf[cut..total). The released view must
    // stay valid until the next call, which appends after the held tail, so
    // rotate: held tail to the front, released text right after it. The
    // tail is shorter than the longest stop string, so this is cheap.
    m->out_off = 0;
    if (keep && cut) {
        char tmp[256];
        if (keep <= sizeof tmp) {
            memcpy(tmp, m->buf + cut, keep);
            memmove(m->buf + keep, m->buf, cut);
            memcpy(m->buf, tmp, keep);
        } else {
            // Stop strings over 256 bytes: rotation by three reversals.
            s_reverse(m->buf, total);
            s_reverse(m->buf, keep);
            s_reverse(m->buf + keep, cut);
        }
        m->out_off = keep;
    }
    m->held = keep;
    *text = cut ? m->buf + m->out_off : "";
    *len = cut;
    return 0;
}

int mesh_stop_feed(mesh_stop_t *m, const char *piece, size_t piece_len, const char **text,
                   size_t *len) {
    return s_feed(m, piece, piece_len, false, text, len);
}

int mesh_stop_flush(mesh_stop_t *m, const char *piece, size_t piece_len, const char **text,
                    size_t *len) {
    return s_feed(m, piece, piece_len, true, text, len);
}
