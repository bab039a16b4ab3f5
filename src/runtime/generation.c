/*
 * generation.c: one generated sequence's state and its step function (see generation.h).
 */
#include "runtime/generation.h"

#include <stdlib.h>
#include <string.h>

struct bn_gen {
    const bn_tokenizer *tok;
    size_t n_vocab;
    bn_gen_config cfg;       /* stops point at `stops` below; sampling.logit_bias is NULL */
    char **stops;
    bn_sampler *sampler;
    bn_detokenizer detok;
    bn_json_state gstate;
    size_t completion_now;   /* shortest completion of gstate before this step's token */
    int64_t tokens_left;     /* for the grammar filter: tokens that may follow the one sampled */
    char *text;              /* everything generated so far (the stop string cut off once found) */
    size_t text_len, text_cap;
    size_t emitted;          /* bytes of text already handed out */
    size_t *ends;            /* per output id: text length after it, SIZE_MAX while bytes pended */
    size_t ends_cap;
    bn_tokens ids;           /* output ids */
    int n_generated;
    bn_finish_reason finish;
    bn_sample_result sample;
};

const char *bn_finish_reason_name(bn_finish_reason reason) {
    switch (reason) {
    case BN_FINISH_NONE: return "none";
    case BN_FINISH_LENGTH: return "length";
    case BN_FINISH_EOG: return "eog";
    case BN_FINISH_STOP: return "stop";
    case BN_FINISH_GRAMMAR: return "grammar";
    case BN_FINISH_CONTEXT: return "context";
    case BN_FINISH_CANCELLED: return "cancelled";
    case BN_FINISH_ERROR: return "error";
    }
    return "unknown";
}

const char *bn_finish_reason_openai(bn_finish_reason reason) {
    return reason == BN_FINISH_LENGTH || reason == BN_FINISH_CONTEXT ? "length" : "stop";
}

bool bn_text_append(char **text, size_t *len, size_t *cap, const char *s, size_t n) {
    if (n > SIZE_MAX - 1 - *len) return false; /* Catch size_t overflow */
    const size_t need = *len + n + 1;
    if (need > *cap) {
        size_t grown_cap = *cap ? *cap : 256;
        while (grown_cap < need) grown_cap = grown_cap <= SIZE_MAX / 2 ? grown_cap * 2 : need;
        char *grown = realloc(*text, grown_cap);
        if (!grown) return false;
        *text = grown;
        *cap = grown_cap;
    }
    if (n) memcpy(*text + *len, s, n);
    *len += n;
    (*text)[*len] = '\0';
    return true;
}

/* Says whether the token keeps the output a prefix of a document that can still be completed
 * within the tokens left (the JSON grammar's filter). */
static bool grammar_filter(void *user, int32_t token) {
    bn_gen *g = user;
    if (bn_tokenizer_token_type(g->tok, token) == BN_TOKEN_CONTROL) return false;
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(g->tok, token, &len);
    if (!bytes || len == 0) return false;
    bn_json_state next = g->gstate;
    if (!bn_json_state_feed(&next, bytes, len)) return false;
    if (bn_json_state_done(&next)) return true;
    size_t left = g->tokens_left > 0 ? (size_t)g->tokens_left : 0;
    /* max_tokens too small for any complete document: valid bytes only (ends with "length") */
    if (g->completion_now > left + 1) return true;
    /* one byte lengthens the shortest completion by at most max_growth */
    size_t growth = bn_json_grammar_max_growth(g->cfg.grammar);
    if (g->completion_now <= left && len <= left / growth && g->completion_now + len * growth <= left)
        return true;
    return bn_json_state_completion_len(&next, left) <= left;
}

void bn_gen_free(bn_gen *g) {
    if (!g) return;
    for (size_t i = 0; g->stops && i < g->cfg.n_stops; i++) free(g->stops[i]);
    free(g->stops);
    bn_sampler_free(g->sampler);
    bn_detokenizer_free(&g->detok);
    free(g->text);
    free(g->ends);
    bn_tokens_free(&g->ids);
    free(g);
}

bn_status bn_gen_create(bn_gen **out, const bn_tokenizer *tok, size_t n_vocab,
                        const bn_gen_config *config, bn_error *err) {
    *out = NULL;
    bn_gen *g = calloc(1, sizeof *g);
    if (!g) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a generation");
    g->tok = tok;
    g->n_vocab = n_vocab;
    g->cfg = *config;
    bn_detokenizer_init(&g->detok, tok, config->detok_flags);
    bn_status st = BN_OK;
    g->stops = calloc(config->n_stops ? config->n_stops : 1, sizeof *g->stops);
    if (!g->stops) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < config->n_stops; i++)
        if (!(g->stops[i] = strdup(config->stops[i] ? config->stops[i] : "")))
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    g->cfg.stops = (const char *const *)g->stops;
    if (!st) st = bn_sampler_create(&g->sampler, &config->sampling, n_vocab, err);
    g->cfg.sampling.logit_bias = NULL;
    g->cfg.sampling.n_logit_bias = 0;
    if (!st && !bn_text_append(&g->text, &g->text_len, &g->text_cap, "", 0))
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    if (!st && config->grammar) {
        bn_json_state_init(&g->gstate, config->grammar);
        bn_sampler_set_filter(g->sampler, grammar_filter, g);
    }
    if (st) {
        bn_gen_free(g);
        return st;
    }
    *out = g;
    return BN_OK;
}

void bn_gen_accept(bn_gen *g, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) bn_sampler_accept_context(g->sampler, ids[i]);
}

/* Fills *out with the text from g->emitted to upto and marks it handed out. */
static void deliver(bn_gen *g, bn_gen_delta *out, size_t upto) {
    if (upto < g->emitted) upto = g->emitted;
    out->text = g->text + g->emitted;
    out->text_len = upto - g->emitted;
    g->emitted = upto;
}

/* Appends the detokenizer's held bytes to the text. */
static bool flush_detok(bn_gen *g) {
    const char *rest;
    size_t rest_len;
    bn_error ignored;
    if (bn_detokenizer_flush(&g->detok, &rest, &rest_len, &ignored) != BN_OK) return false;
    return bn_text_append(&g->text, &g->text_len, &g->text_cap, rest, rest_len);
}

static bn_status fail(bn_gen *g, bn_gen_delta *out, bn_status st) {
    g->finish = BN_FINISH_ERROR;
    out->finish = BN_FINISH_ERROR;
    deliver(g, out, g->emitted);
    return st;
}

bn_status bn_gen_step(bn_gen *g, const float *logits, int ctx_left, bn_gen_delta *out,
                      bn_error *err) {
    memset(out, 0, sizeof *out);
    out->token = -1;
    out->text = "";
    if (g->finish != BN_FINISH_NONE) {
        out->finish = g->finish;
        return bn_error_set(err, BN_ERR_STATE, "the generation has finished (%s)",
                            bn_finish_reason_name(g->finish));
    }
    const int32_t max_tokens = g->cfg.max_tokens;
    if (max_tokens >= 0 && g->n_generated >= max_tokens) {
        bn_gen_finish(g, BN_FINISH_LENGTH, out);
        return BN_OK;
    }
    if (g->cfg.grammar) {
        g->completion_now = bn_json_state_completion_len(&g->gstate, (size_t)1 << 20);
        int64_t left = (int64_t)(ctx_left > 0 ? ctx_left : 0) + 1;
        if (max_tokens >= 0 && (int64_t)(max_tokens - g->n_generated) < left)
            left = max_tokens - g->n_generated;
        g->tokens_left = left - 1;
    }
    /* log-probabilities cost an exp per vocabulary entry: only when asked for */
    memset(&g->sample, 0, sizeof g->sample);
    bn_status st = g->cfg.want_logprobs
                       ? bn_sampler_sample_ex(g->sampler, &g->sample, logits, g->n_vocab, err)
                       : bn_sampler_sample(g->sampler, &g->sample.token, logits, g->n_vocab, err);
    if (st != BN_OK) return fail(g, out, st);
    const int32_t token = g->sample.token;
    g->n_generated++;
    out->token = token;
    out->sample = g->cfg.want_logprobs ? &g->sample : NULL;

    if (!g->cfg.grammar && !g->cfg.ignore_eog && bn_tokenizer_is_eog(g->tok, token)) {
        if (!flush_detok(g)) return fail(g, out, bn_error_set(err, BN_ERR_NOMEM, "out of memory"));
        deliver(g, out, g->text_len);
        g->finish = out->finish = BN_FINISH_EOG;
        return BN_OK;
    }
    out->token_in_output = true;
    bool done = false;
    if (g->cfg.grammar) {
        size_t blen = 0;
        const uint8_t *bytes = bn_tokenizer_token_bytes(g->tok, token, &blen);
        bn_json_state_feed(&g->gstate, bytes, blen);
        done = bn_json_state_done(&g->gstate);
    }
    const char *piece;
    size_t piece_len;
    if ((st = bn_detokenizer_push(&g->detok, token, &piece, &piece_len, err)) != BN_OK)
        return fail(g, out, st);
    if (!bn_text_append(&g->text, &g->text_len, &g->text_cap, piece, piece_len) ||
        bn_tokens_push(&g->ids, token, err) != BN_OK)
        return fail(g, out, bn_error_set(err, BN_ERR_NOMEM, "out of memory for generated text"));
    if (g->ids.n > g->ends_cap) {
        size_t cap = g->ends_cap ? 2 * g->ends_cap : 64;
        size_t *ends = realloc(g->ends, cap * sizeof *ends);
        if (!ends) return fail(g, out, bn_error_set(err, BN_ERR_NOMEM, "out of memory"));
        g->ends = ends;
        g->ends_cap = cap;
    }
    g->ends[g->ids.n - 1] = g->detok.n_pending ? SIZE_MAX : g->text_len;

    size_t upto = g->text_len;
    if (!g->cfg.grammar && g->cfg.n_stops) {
        bn_stop_scan scan;
        bn_stop_scan_text(&scan, g->text, g->text_len, g->emitted, g->cfg.stops, g->cfg.n_stops);
        if (scan.found) {
            g->text_len = scan.cut < g->emitted ? g->emitted : scan.cut;
            g->text[g->text_len] = '\0';
            deliver(g, out, g->text_len);
            g->finish = out->finish = BN_FINISH_STOP;
            return BN_OK;
        }
        upto = scan.emit_len;
    }
    bn_finish_reason reason = done ? BN_FINISH_GRAMMAR
                            : max_tokens >= 0 && g->n_generated >= max_tokens ? BN_FINISH_LENGTH
                            : ctx_left <= 0 ? BN_FINISH_CONTEXT : BN_FINISH_NONE;
    if (reason != BN_FINISH_NONE) {
        if (!flush_detok(g)) return fail(g, out, bn_error_set(err, BN_ERR_NOMEM, "out of memory"));
        upto = g->text_len;
    }
    deliver(g, out, upto);
    g->finish = out->finish = reason;
    return BN_OK;
}

void bn_gen_finish(bn_gen *g, bn_finish_reason reason, bn_gen_delta *out) {
    memset(out, 0, sizeof *out);
    out->token = -1;
    out->text = "";
    if (g->finish != BN_FINISH_NONE) {
        out->finish = g->finish;
        return;
    }
    flush_detok(g); /* out of memory here only loses the held bytes */
    deliver(g, out, g->text_len);
    g->finish = out->finish = reason;
}

bn_finish_reason bn_gen_finish_reason(const bn_gen *g) { return g->finish; }
int bn_gen_n_generated(const bn_gen *g) { return g->n_generated; }
uint64_t bn_gen_seed(const bn_gen *g) { return bn_sampler_seed(g->sampler); }

const char *bn_gen_text(const bn_gen *g, size_t *len) {
    if (len) *len = g->text_len;
    return g->text;
}

const int32_t *bn_gen_ids(const bn_gen *g, size_t *n) {
    *n = g->ids.n;
    return g->ids.ids;
}

void bn_gen_ids_in_text(const bn_gen *g, size_t *n_ids, size_t *text_len) {
    *n_ids = 0;
    *text_len = 0;
    for (size_t i = 0; i < g->ids.n && g->ends[i] != SIZE_MAX && g->ends[i] <= g->text_len; i++) {
        *n_ids = i + 1;
        *text_len = g->ends[i];
    }
}
