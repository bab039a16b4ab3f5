/*
 * generate.h: the generation loop of `bitnet run` and `bitnet chat`: prompt ids -> prefill ->
 * sample -> stream text, ending at an end-of-generation token, a stop string, the token limit,
 * a full context or a cancel flag. (The server has its own scheduler.)
 *
 * Design: a bn_generation keeps a sequence together with the list of ids its KV cache holds, so
 * a caller that extends the previous prompt (a chat turn appends to the conversation) has only
 * the new tokens prefilled: the longest common prefix of the cached ids and the new prompt is
 * reused. The model API has no way to drop cached positions, so a prompt that diverges from the
 * cache before its end is recomputed from position 0 (clear and prefill).
 *
 * Text is streamed through a callback as soon as it is final: bytes of an incomplete UTF-8
 * character and a tail that could still become a stop string are held back.
 */
#ifndef BN_TOOLS_GENERATE_H
#define BN_TOOLS_GENERATE_H

#include "bitnet.h"
#include "chat/chat.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bn_finish_reason {
    BN_FINISH_LENGTH = 0, /* max_tokens generated */
    BN_FINISH_EOG,        /* the model produced an end-of-generation token (EOS/EOT) */
    BN_FINISH_STOP,       /* a stop string appeared */
    BN_FINISH_CANCELLED,  /* the cancel flag was set */
    BN_FINISH_CONTEXT     /* the sequence is full */
} bn_finish_reason;

const char *bn_finish_reason_name(bn_finish_reason reason); /* "length", "eog", ... */

/* Receives final text; returning false stops the generation (as cancelled). */
typedef bool (*bn_generate_text_fn)(void *user, const char *text, size_t len);

typedef struct bn_generate_config {
    int32_t max_tokens;             /* < 0: until the context is full */
    const char *const *stops;       /* stop strings (may be NULL) */
    size_t n_stops;
    unsigned detok_flags;           /* BN_DETOK_* (default 0: specials shown as their text) */
    bn_generate_text_fn on_text;    /* may be NULL */
    void *user;
    const volatile sig_atomic_t *cancel; /* checked before each step; may be NULL */
} bn_generate_config;

/* A sequence and the ids in its cache. */
typedef struct bn_generation {
    bn_model *model;
    bn_sequence *seq;      /* owned */
    bn_tokens cached;      /* ids at positions 0..length-1 of seq (owned) */
    float *logits;         /* n_vocab scratch (owned) */
} bn_generation;

/* Creates the sequence (capacity 0: the model's training context). Free with
 * bn_generation_free. */
bn_status bn_generation_init(bn_generation *g, bn_model *model, int capacity, bn_error *err);
void bn_generation_free(bn_generation *g);
int bn_generation_capacity(const bn_generation *g);

typedef struct bn_generate_result {
    int n_prompt;           /* prompt tokens */
    int n_reused;           /* of them, already in the cache */
    int n_prefilled;        /* of them, computed by this call */
    int n_generated;        /* tokens sampled (an end-of-generation token included) */
    double prefill_ms;
    double generate_ms;     /* from the end of the prefill to the end */
    bn_finish_reason finish;
    bn_tokens ids;          /* sampled ids, without an end-of-generation token (owned) */
    /* ids[0..n_ids_in_text) produce exactly text[0..text_prefix_len): the rest of the ids was
     * cut by a stop string or holds bytes of an unfinished character */
    size_t n_ids_in_text;
    size_t text_prefix_len;
    char *text;             /* the final text, stop string excluded (owned, NUL-terminated) */
    size_t text_len;
} bn_generate_result;

void bn_generate_result_free(bn_generate_result *r);

/* Runs prompt[0..n_prompt) (n_prompt >= 1) and generates with sampler s (the prompt tokens are
 * first accepted into its penalty window). On success *result is filled (caller frees it); the
 * prompt and every generated token but the last sampled one are in the cache afterwards
 * (g->cached says which). Errors: BN_ERR_RANGE when the prompt does not fit the context, and
 * whatever the model or sampler return. */
bn_status bn_generate(bn_generate_result *result, bn_generation *g, const bn_tokenizer *tok,
                      bn_sampler *s, const int32_t *prompt, size_t n_prompt,
                      const bn_generate_config *config, bn_error *err);

/* Tokenizes rendered chat text from byte `from` on, appending to *out: the format's own text with
 * special tokens recognised, message content (the spans) as plain text, so a user who types
 * "<|eot_id|>" cannot end a turn. `from` must not fall inside a content span. With add_bos the
 * tokenizer's BOS is prepended when the tokenizer asks for one and the format does not render it. */
bn_status bn_generate_tokenize_chat(bn_tokens *out, const bn_tokenizer *tok,
                                    const bn_chat_format *format, const bn_chat_text *text,
                                    size_t from, bool add_bos, bn_error *err);

/* Appends s[0..n) to *text, a NUL-terminated string of *len bytes in a buffer of *cap bytes (all
 * zero/NULL at first), growing the buffer by doubling (from 256 bytes). Returns false, changing
 * nothing, when memory or size_t runs out. Used for generated text here and in the server. The
 * caller owns *text (free). */
bool bn_text_append(char **text, size_t *len, size_t *cap, const char *s, size_t n);

#endif
