/*
 * fuzz_sampler.c: the sampler (sampling/sampler.h) on fuzz-chosen logits (NaN, +-inf, denormals,
 * huge values), parameters (any float for temperature, top-p, min-p and the penalties, any int
 * for top-k, window and top-logprobs, logit biases with out-of-range tokens and infinite
 * biases), penalty history, and allowed-token masks; then the stop-string scanner on fuzz text.
 *
 * Properties: creation either succeeds or fails with BN_ERR_INVALID / BN_ERR_RANGE and a
 * message; a successful sample returns 0 <= token < n_vocab, a token the mask allows and no
 * -inf bias bans, a finite log-probability in [BN_LOGPROB_FLOOR, 0] and n_top entries sorted
 * most likely first; BN_ERR_STATE only when no token is allowed at all; greedy without biases,
 * history or mask picks the first maximal logit (NaN as -inf); the same seed gives the same
 * token. Stop scan: `found` matches a naive search for the earliest stop string (first listed on
 * ties), cut and emit_len never exceed the text, and held-back bytes are a prefix of some stop.
 */
#include "bitnet.h"
#include "fuzz_input.h"
#include "sampling/sampler.h"

#define MAX_VOCAB 300
#define MAX_BIAS 6

static void fuzz_stop_scan(bn_fuzz_input *in) {
    char stops_buf[4][16];
    const char *stops[4];
    size_t n_stops = (size_t)bn_fuzz_range(in, 0, 4);
    for (size_t i = 0; i < n_stops; i++) {
        size_t len;
        const uint8_t *p = bn_fuzz_bytes(in, (size_t)bn_fuzz_range(in, 0, 6), &len);
        memcpy(stops_buf[i], p, len);
        stops_buf[i][len] = '\0';
        stops[i] = stops_buf[i];
    }
    size_t len;
    const char *text = (const char *)bn_fuzz_bytes(in, 256, &len);
    size_t from = (size_t)bn_fuzz_range(in, 0, 255);
    if (from > len) from = len;

    /* naive: earliest start at or after `from`, first listed among equal starts */
    bool found = false;
    size_t best_at = 0, best_which = 0;
    for (size_t at = 0; at <= len && !found; at++)
        for (size_t k = 0; k < n_stops; k++) {
            size_t sl = strlen(stops[k]);
            if (sl && at + sl <= len && memcmp(text + at, stops[k], sl) == 0) {
                found = true;
                best_at = at;
                best_which = k;
                break;
            }
        }
    bn_stop_scan scan;
    bn_stop_scan_text(&scan, text, len, 0, stops, n_stops);
    BN_FUZZ_CHECK(scan.found == found, "stop found %d, naive %d", scan.found, found);
    if (found) {
        BN_FUZZ_CHECK(scan.cut == best_at && scan.which == best_which && scan.emit_len == scan.cut,
                      "stop at %zu (#%zu), naive %zu (#%zu)", scan.cut, scan.which, best_at, best_which);
    } else {
        BN_FUZZ_CHECK(scan.emit_len <= len, "emit_len %zu of %zu", scan.emit_len, len);
        size_t tail = len - scan.emit_len;
        if (tail > 0) {
            bool prefix = false;
            for (size_t k = 0; k < n_stops; k++)
                if (strlen(stops[k]) > tail && memcmp(stops[k], text + scan.emit_len, tail) == 0) prefix = true;
            BN_FUZZ_CHECK(prefix, "held back %zu bytes that start no stop string", tail);
        }
    }
    /* resuming from an earlier emit_len finds the same result */
    if (!found) {
        bn_stop_scan again;
        bn_stop_scan_text(&again, text, len, scan.emit_len < from ? scan.emit_len : from, stops, n_stops);
        BN_FUZZ_CHECK(again.found == scan.found && again.emit_len == scan.emit_len, "resumed scan differs");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t mode = bn_fuzz_u8(&in);
    if (mode >= 0xE0) {
        fuzz_stop_scan(&in);
        return 0;
    }
    size_t n_vocab = (size_t)bn_fuzz_range(&in, 1, MAX_VOCAB);
    bn_sampler_params p = bn_sampler_params_default();
    if (mode & 1) p.temperature = bn_fuzz_float(&in);
    if (mode & 2) p.top_k = (int32_t)bn_fuzz_range(&in, -2, MAX_VOCAB + 2);
    if (mode & 4) p.top_p = bn_fuzz_float(&in);
    if (mode & 8) p.min_p = bn_fuzz_float(&in);
    if (mode & 32) p.typical_p = bn_fuzz_float(&in);
    if (mode & 16) {
        p.repetition_penalty = bn_fuzz_float(&in);
        p.presence_penalty = bn_fuzz_float(&in);
        p.frequency_penalty = bn_fuzz_float(&in);
        p.penalty_last_n = (int32_t)bn_fuzz_range(&in, -1, 70);
    }
    p.seed = bn_fuzz_u8(&in);
    p.n_top_logprobs = (int32_t)bn_fuzz_range(&in, -1, BN_SAMPLER_MAX_TOP_LOGPROBS + 1);
    bn_logit_bias bias[MAX_BIAS];
    p.n_logit_bias = (size_t)bn_fuzz_range(&in, 0, MAX_BIAS);
    for (size_t i = 0; i < p.n_logit_bias; i++) {
        bias[i].token = (int32_t)bn_fuzz_range(&in, -1, (int64_t)n_vocab);
        bias[i].bias = bn_fuzz_float(&in);
    }
    p.logit_bias = p.n_logit_bias ? bias : NULL;

    bn_error err;
    bn_sampler *s = NULL;
    bn_status st = bn_sampler_create(&s, &p, n_vocab, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK((st == BN_ERR_INVALID || st == BN_ERR_RANGE) && err.message[0], "create: status %d", (int)st);
        return 0;
    }

    /* history for the penalties */
    size_t n_hist = (size_t)bn_fuzz_range(&in, 0, 8);
    int32_t hist[8];
    bool hist_generated[8];
    for (size_t i = 0; i < n_hist; i++) {
        hist[i] = (int32_t)bn_fuzz_range(&in, 0, (int64_t)n_vocab - 1);
        hist_generated[i] = bn_fuzz_bool(&in);
        if (hist_generated[i]) bn_sampler_accept(s, hist[i]);
        else bn_sampler_accept_context(s, hist[i]);
    }

    /* mask */
    static uint64_t bits[(MAX_VOCAB + 63) / 64];
    bool use_mask = bn_fuzz_bool(&in);
    for (size_t i = 0; i < (n_vocab + 63) / 64; i++) bits[i] = use_mask ? bn_fuzz_u64(&in) : ~0ull;
    if (use_mask) bn_sampler_set_allowed(s, bits);

    static float logits[MAX_VOCAB];
    for (size_t i = 0; i < n_vocab; i++) logits[i] = bn_fuzz_float(&in);

    bool banned[MAX_VOCAB] = {false};
    for (size_t i = 0; i < p.n_logit_bias; i++)
        if (bias[i].bias == -INFINITY) banned[bias[i].token] = true;
    bool any_allowed = false;
    for (size_t t = 0; t < n_vocab; t++)
        if ((bits[t / 64] >> (t % 64) & 1) && !banned[t]) any_allowed = true;

    bn_sample_result r;
    st = bn_sampler_sample_ex(s, &r, logits, n_vocab, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(st == BN_ERR_STATE && !any_allowed, "sample failed (%d) with tokens allowed: %s", (int)st,
                      err.message);
        bn_sampler_free(s);
        return 0;
    }
    BN_FUZZ_CHECK(r.token >= 0 && (size_t)r.token < n_vocab, "token %d of %zu", r.token, n_vocab);
    BN_FUZZ_CHECK(bits[r.token / 64] >> (r.token % 64) & 1, "token %d is masked", r.token);
    bool only_neg_inf = banned[r.token];
    for (size_t i = 0; i < p.n_logit_bias; i++)
        if (bias[i].token == r.token && bias[i].bias != -INFINITY) only_neg_inf = false;
    BN_FUZZ_CHECK(!only_neg_inf, "token %d is banned by a -inf bias", r.token);
    BN_FUZZ_CHECK(!isnan(r.logprob) && r.logprob >= BN_LOGPROB_FLOOR && r.logprob <= 1e-5f, "logprob %g",
                  (double)r.logprob);
    int32_t want_top = p.n_top_logprobs < (int32_t)n_vocab ? p.n_top_logprobs : (int32_t)n_vocab;
    BN_FUZZ_CHECK(r.n_top == want_top, "n_top %d, expected %d", r.n_top, want_top);
    for (int32_t i = 0; i < r.n_top; i++) {
        BN_FUZZ_CHECK(r.top[i].token >= 0 && (size_t)r.top[i].token < n_vocab, "top token %d", r.top[i].token);
        BN_FUZZ_CHECK(!isnan(r.top[i].logprob) && r.top[i].logprob >= BN_LOGPROB_FLOOR && r.top[i].logprob <= 1e-5f,
                      "top logprob %g", (double)r.top[i].logprob);
        if (i > 0) {
            /* most likely first (by the model's logit, NaN as -inf), lower id on equal logits */
            float a = logits[r.top[i - 1].token], b = logits[r.top[i].token];
            a = isnan(a) ? -INFINITY : a;
            b = isnan(b) ? -INFINITY : b;
            BN_FUZZ_CHECK(r.top[i - 1].logprob >= r.top[i].logprob && (a > b || (a == b && r.top[i - 1].token < r.top[i].token)),
                          "top entries out of order at %d: (%d, logit %a, %g) then (%d, logit %a, %g)", i,
                          r.top[i - 1].token, (double)a, (double)r.top[i - 1].logprob, r.top[i].token, (double)b,
                          (double)r.top[i].logprob);
        }
    }

    /* exact greedy */
    if (p.temperature <= 0 && p.n_logit_bias == 0 && n_hist == 0 && !use_mask) {
        size_t best = 0;
        float best_v = -INFINITY;
        for (size_t t = 0; t < n_vocab; t++)
            if (!isnan(logits[t]) && logits[t] > best_v) {
                best_v = logits[t];
                best = t;
            }
        BN_FUZZ_CHECK((size_t)r.token == best, "greedy chose %d, argmax is %zu", r.token, best);
    }

    /* same seed and history, same token */
    bn_sampler *s2 = NULL;
    BN_FUZZ_CHECK(bn_sampler_create(&s2, &p, n_vocab, &err) == BN_OK, "second create failed");
    for (size_t i = 0; i < n_hist; i++) {
        if (hist_generated[i]) bn_sampler_accept(s2, hist[i]);
        else bn_sampler_accept_context(s2, hist[i]);
    }
    if (use_mask) bn_sampler_set_allowed(s2, bits);
    int32_t again = -1;
    BN_FUZZ_CHECK(bn_sampler_sample(s2, &again, logits, n_vocab, &err) == BN_OK && again == r.token,
                  "same seed gave token %d, then %d", r.token, again);
    bn_sampler_free(s);
    bn_sampler_free(s2);
    return 0;
}
