/*
 * generate.c: prompt prefill with cache-prefix reuse, then sample / detokenize / stop-scan / decode
 * one token at a time (see generate.h).
 */
#include "tools/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prompt entries per bn_model_decode call, so a cancel is noticed during a long prefill. */
#define PREFILL_CHUNK 512

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *bn_finish_reason_name(bn_finish_reason reason) {
    switch (reason) {
    case BN_FINISH_LENGTH: return "length";
    case BN_FINISH_EOG: return "eog";
    case BN_FINISH_STOP: return "stop";
    case BN_FINISH_CANCELLED: return "cancelled";
    case BN_FINISH_CONTEXT: return "context";
    }
    return "unknown";
}

bn_status bn_generation_init(bn_generation *g, bn_model *model, int capacity, bn_error *err) {
    memset(g, 0, sizeof *g);
    g->model = model;
    size_t n_vocab = (size_t)bn_model_get_config(model)->n_vocab;
    g->logits = malloc(n_vocab * sizeof *g->logits);
    if (!g->logits) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %zu logits", n_vocab);
    bn_status st = bn_sequence_create(model, capacity, &g->seq, err);
    if (st != BN_OK) {
        free(g->logits);
        g->logits = NULL;
    }
    return st;
}

void bn_generation_free(bn_generation *g) {
    bn_sequence_free(g->seq);
    bn_tokens_free(&g->cached);
    free(g->logits);
    memset(g, 0, sizeof *g);
}

int bn_generation_capacity(const bn_generation *g) { return bn_sequence_capacity(g->seq); }

void bn_generate_result_free(bn_generate_result *r) {
    bn_tokens_free(&r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static bool cancelled(const bn_generate_config *c) { return c->cancel && *c->cancel; }

/* Feeds ids[0..n) at the end of the sequence; the logits of the last one go to g->logits. */
static bn_status feed(bn_generation *g, const int32_t *ids, size_t n, const bn_generate_config *c,
                      bool *was_cancelled, bn_error *err) {
    bn_batch_entry entries[PREFILL_CHUNK];
    for (size_t begin = 0; begin < n; begin += PREFILL_CHUNK) {
        if (begin > 0 && cancelled(c)) {
            *was_cancelled = true;
            return BN_OK;
        }
        size_t count = n - begin < PREFILL_CHUNK ? n - begin : PREFILL_CHUNK;
        int32_t pos0 = bn_sequence_length(g->seq);
        for (size_t i = 0; i < count; i++)
            entries[i] = (bn_batch_entry){g->seq, pos0 + (int32_t)i, ids[begin + i],
                                          begin + i == n - 1};
        bn_status st = bn_model_decode(g->model, entries, (int)count,
                                       begin + count == n ? g->logits : NULL, err);
        if (st != BN_OK) return st;
        for (size_t i = 0; i < count; i++)
            if ((st = bn_tokens_push(&g->cached, ids[begin + i], err)) != BN_OK) return st;
    }
    return BN_OK;
}

/* Text accumulated so far plus, per sampled id, where its bytes end in it. */
typedef struct text_state {
    char *text;
    size_t len, cap;
    size_t emitted;         /* bytes handed to on_text (final) */
    size_t *ends;           /* per id: text length after it, SIZE_MAX when bytes were pending */
    size_t n_ends, ends_cap;
} text_state;

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

static bn_status append_text(text_state *t, const char *s, size_t n, bn_error *err) {
    if (!bn_text_append(&t->text, &t->len, &t->cap, s, n))
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for generated text");
    return BN_OK;
}

static bn_status push_end(text_state *t, size_t end, bn_error *err) {
    if (t->n_ends == t->ends_cap) {
        size_t cap = t->ends_cap ? t->ends_cap * 2 : 64;
        size_t *grown = realloc(t->ends, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        t->ends = grown;
        t->ends_cap = cap;
    }
    t->ends[t->n_ends++] = end;
    return BN_OK;
}

/* Hands text[emitted..upto) to the callback; false when the callback asks to stop. */
static bool emit(text_state *t, size_t upto, const bn_generate_config *c) {
    bool go_on = true;
    if (upto > t->emitted && c->on_text) go_on = c->on_text(c->user, t->text + t->emitted,
                                                            upto - t->emitted);
    if (upto > t->emitted) t->emitted = upto;
    return go_on;
}

bn_status bn_generate(bn_generate_result *result, bn_generation *g, const bn_tokenizer *tok,
                      bn_sampler *s, const int32_t *prompt, size_t n_prompt,
                      const bn_generate_config *config, bn_error *err) {
    memset(result, 0, sizeof *result);
    const size_t n_vocab = (size_t)bn_model_get_config(g->model)->n_vocab;
    const size_t capacity = (size_t)bn_sequence_capacity(g->seq);
    if (n_prompt == 0) return bn_error_set(err, BN_ERR_INVALID, "empty prompt");
    if (n_prompt > capacity)
        return bn_error_set(err, BN_ERR_RANGE,
                            "the prompt has %zu tokens but the context holds %zu (use -c)",
                            n_prompt, capacity);

    /* Reuse the longest cached prefix; the last prompt token is always run for its logits. */
    size_t common = 0;
    while (common < g->cached.n && common < n_prompt - 1 && g->cached.ids[common] == prompt[common])
        common++;
    if (common < g->cached.n) {
        bn_sequence_truncate(g->seq, (int)common);
        g->cached.n = common;
    }
    result->n_prompt = (int)n_prompt;
    result->n_reused = (int)common;
    result->n_prefilled = (int)(n_prompt - common);
    for (size_t i = 0; i < n_prompt; i++) bn_sampler_accept(s, prompt[i]);

    bn_detokenizer detok;
    bn_detokenizer_init(&detok, tok, config->detok_flags);
    text_state t = {0};
    bn_status st = BN_OK;
    bool stop = false;
    double t0 = now_ms();
    bool was_cancelled = false;
    st = feed(g, prompt + common, n_prompt - common, config, &was_cancelled, err);
    double t1 = now_ms();
    result->prefill_ms = t1 - t0;
    if (st != BN_OK) goto done;
    if (was_cancelled) {
        result->finish = BN_FINISH_CANCELLED;
        stop = true;
    }
    if ((st = append_text(&t, "", 0, err)) != BN_OK) goto done;

    while (!stop) {
        if (cancelled(config)) {
            result->finish = BN_FINISH_CANCELLED;
            break;
        }
        if (config->max_tokens >= 0 && result->n_generated >= config->max_tokens) {
            result->finish = BN_FINISH_LENGTH;
            break;
        }
        int32_t token;
        if ((st = bn_sampler_sample(s, &token, g->logits, n_vocab, err)) != BN_OK) goto done;
        result->n_generated++;
        if (bn_tokenizer_is_eog(tok, token)) {
            result->finish = BN_FINISH_EOG;
            break;
        }
        if ((st = bn_tokens_push(&result->ids, token, err)) != BN_OK) goto done;
        const char *piece;
        size_t piece_len;
        if ((st = bn_detokenizer_push(&detok, token, &piece, &piece_len, err)) != BN_OK) goto done;
        if ((st = append_text(&t, piece, piece_len, err)) != BN_OK) goto done;
        if ((st = push_end(&t, detok.n_pending ? SIZE_MAX : t.len, err)) != BN_OK) goto done;

        bn_stop_scan scan;
        bn_stop_scan_text(&scan, t.text, t.len, t.emitted, config->stops, config->n_stops);
        if (scan.found) {
            t.len = scan.cut;
            t.text[t.len] = '\0';
            emit(&t, t.len, config);
            result->finish = BN_FINISH_STOP;
            break;
        }
        if (!emit(&t, scan.emit_len, config)) {
            result->finish = BN_FINISH_CANCELLED;
            break;
        }
        if (config->max_tokens >= 0 && result->n_generated >= config->max_tokens) {
            result->finish = BN_FINISH_LENGTH;
            break;
        }
        if ((size_t)bn_sequence_length(g->seq) >= capacity) {
            result->finish = BN_FINISH_CONTEXT;
            break;
        }
        if ((st = feed(g, &token, 1, config, &was_cancelled, err)) != BN_OK) goto done;
    }
    if (result->finish != BN_FINISH_STOP) {
        /* Whatever was held back (an unfinished character, a possible stop-string start) is
         * final now. */
        const char *rest;
        size_t rest_len;
        if ((st = bn_detokenizer_flush(&detok, &rest, &rest_len, err)) != BN_OK) goto done;
        if ((st = append_text(&t, rest, rest_len, err)) != BN_OK) goto done;
        emit(&t, t.len, config);
    }
    result->generate_ms = now_ms() - t1;
    for (size_t i = 0; i < t.n_ends && t.ends[i] != SIZE_MAX && t.ends[i] <= t.len; i++) {
        result->n_ids_in_text = i + 1;
        result->text_prefix_len = t.ends[i];
    }
    result->text = t.text;
    result->text_len = t.len;
    t.text = NULL;
done:
    bn_detokenizer_free(&detok);
    free(t.text);
    free(t.ends);
    if (st != BN_OK) bn_generate_result_free(result);
    return st;
}

bn_status bn_generate_tokenize_chat(bn_tokens *out, const bn_tokenizer *tok,
                                    const bn_chat_format *format, const bn_chat_text *text,
                                    size_t from, bool add_bos, bn_error *err) {
    bn_status st;
    if (add_bos && !format->renders_bos && bn_tokenizer_add_bos(tok) && bn_tokenizer_bos(tok) >= 0)
        if ((st = bn_tokens_push(out, bn_tokenizer_bos(tok), err)) != BN_OK) return st;
    size_t pos = from;
    for (size_t i = 0; i <= text->n_content; i++) {
        size_t span_start = i < text->n_content ? text->content[i].offset : text->len;
        size_t span_end = i < text->n_content ? span_start + text->content[i].len : text->len;
        if (span_end <= pos) continue;
        if (span_start > pos) {
            st = bn_tokenizer_encode(tok, text->text + pos, span_start - pos, false, true, out, err);
            if (st != BN_OK) return st;
            pos = span_start;
        }
        if (span_end > pos) {
            st = bn_tokenizer_encode(tok, text->text + pos, span_end - pos, false, false, out, err);
            if (st != BN_OK) return st;
            pos = span_end;
        }
    }
    return BN_OK;
}
