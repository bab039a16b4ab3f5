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
    bn_grammar_matcher *matcher;
    int64_t tokens_left;     /* for the grammar filter: tokens that may follow the one sampled */
    bool budget_off;         /* max_tokens cannot hold any complete sentence: valid bytes only */
    bn_tokens plan;          /* a completion of the grammar state in tokens (see grammar_budget) */
    size_t plan_pos;         /* plan.ids[plan_pos..] complete the current state */
    bool plan_valid;
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

/* Tokens left in the plan (the grammar's shortest completion, encoded). */
static size_t plan_left(const bn_gen *g) { return g->plan_valid ? g->plan.n - g->plan_pos : SIZE_MAX; }

/* Makes the plan for the current state: its shortest completion, encoded by the tokenizer, when
 * the ids give back exactly those bytes and none is a control token (else no plan: the budget is
 * then counted in bytes, which byte-level vocabularies always cover). */
static void make_plan(bn_gen *g) {
    g->plan.n = 0;
    g->plan_pos = 0;
    g->plan_valid = false;
    char buf[4096];
    size_t n = bn_grammar_matcher_completion(g->matcher, buf, sizeof buf);
    if (n == (size_t)-1) return;
    bn_error ignored;
    if (n && bn_tokenizer_encode(g->tok, buf, n, false, false, &g->plan, &ignored) != BN_OK) return;
    size_t at = 0;
    for (size_t i = 0; i < g->plan.n; i++) {
        size_t len = 0;
        const uint8_t *bytes = bn_tokenizer_token_bytes(g->tok, g->plan.ids[i], &len);
        if (!bytes || bn_tokenizer_token_type(g->tok, g->plan.ids[i]) == BN_TOKEN_CONTROL || len > n - at ||
            memcmp(bytes, buf + at, len) != 0)
            return;
        at += len;
    }
    g->plan_valid = at == n;
}

/* Says whether the token keeps the output a prefix of a sentence of the grammar that can still be
 * completed within the tokens left: when its shortest completion in bytes fits (each byte is a
 * token of a byte-level vocabulary), or when it is the next token of the plan and the plan fits.
 * An end-of-generation token is allowed where the sentence may end. */
static bool grammar_filter(void *user, int32_t token) {
    bn_gen *g = user;
    if (bn_tokenizer_is_eog(g->tok, token))
        return !g->cfg.ignore_eog && bn_grammar_matcher_outlook(g->matcher).accepting;
    if (bn_tokenizer_token_type(g->tok, token) == BN_TOKEN_CONTROL) return false;
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(g->tok, token, &len);
    if (!bytes || len == 0 || !bn_grammar_matcher_allows_byte(g->matcher, bytes[0])) return false;
    bn_grammar_outlook o = bn_grammar_matcher_try(g->matcher, bytes, len);
    if (!o.ok) return false;
    if (g->budget_off) return true;
    size_t left = g->tokens_left > 0 ? (size_t)g->tokens_left : 0;
    if (o.completion_len <= left) return true;
    return g->plan_valid && g->plan_pos < g->plan.n && token == g->plan.ids[g->plan_pos] && plan_left(g) - 1 <= left;
}

/* Before sampling under a grammar: the tokens left after this one, and the plan when the bytes
 * bound alone could cut the sentence. */
static void grammar_budget(bn_gen *g, int ctx_left) {
    int64_t left = (int64_t)(ctx_left > 0 ? ctx_left : 0) + 1;
    int32_t max_tokens = g->cfg.max_tokens;
    if (max_tokens >= 0 && (int64_t)(max_tokens - g->n_generated) < left) left = max_tokens - g->n_generated;
    g->tokens_left = left - 1;
    bn_grammar_outlook now = bn_grammar_matcher_outlook(g->matcher);
    if (g->budget_off || now.completion_len <= (size_t)(left - 1)) return;
    if (!g->plan_valid) make_plan(g);
    size_t need = g->plan_valid ? plan_left(g) : now.completion_len;
    /* max_tokens too small for any complete sentence: valid bytes only (ends with "length") */
    if (need > (size_t)left) g->budget_off = true;
}

void bn_gen_free(bn_gen *g) {
    if (!g) return;
    for (size_t i = 0; g->stops && i < g->cfg.n_stops; i++) free(g->stops[i]);
    free(g->stops);
    bn_sampler_free(g->sampler);
    bn_grammar_matcher_free(g->matcher);
    bn_tokens_free(&g->plan);
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
        st = bn_grammar_matcher_new(&g->matcher, config->grammar, err);
        if (!st) bn_sampler_set_filter(g->sampler, grammar_filter, g);
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
    if (g->cfg.grammar) grammar_budget(g, ctx_left);
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

    if (!g->cfg.ignore_eog && bn_tokenizer_is_eog(g->tok, token)) {
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
        if (!bytes || !bn_grammar_matcher_accept(g->matcher, bytes, blen))
            return fail(g, out, bn_error_set(err, BN_ERR_STATE, "the grammar refused token %d", (int)token));
        bn_grammar_outlook o = bn_grammar_matcher_outlook(g->matcher);
        done = o.accepting && !o.can_continue;
        if (g->plan_valid && g->plan_pos < g->plan.n && g->plan.ids[g->plan_pos] == token) g->plan_pos++;
        else g->plan_valid = false;
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
int32_t bn_gen_max_tokens(const bn_gen *g) { return g->cfg.max_tokens; }
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
