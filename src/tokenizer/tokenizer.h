/*
 * tokenizer.h: byte-level BPE tokenizer (GGUF `tokenizer.ggml.model` = "gpt2") built from GGUF
 * metadata only, plus a streaming detokenizer.
 *
 * Design: every token's text is decoded once at load time into its raw bytes (the GPT-2
 * byte<->unicode mapping undone), so encoding works on the input bytes directly: one hash table
 * maps token bytes to ids, another maps a pair of ids to its merge rank and result. Encoding is
 * (1) split on special tokens when the caller asks, (2) split into valid-UTF-8 runs and single
 * invalid bytes, (3) pre-tokenize each run with a PCRE2 pattern (UTF + UCP), (4) per pre-token:
 * the whole pre-token when ignore_merges and it is a vocabulary entry, else BPE with a heap of
 * candidate pairs (lowest rank first, leftmost on ties, as Hugging Face does).
 *
 * A bn_tokenizer is immutable after construction and may be shared by threads.
 */
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include "bitnet.h"
#include "gguf/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_tokenizer bn_tokenizer;

/* GGUF tokenizer.ggml.token_type values (llama.cpp's numbering). */
typedef enum bn_token_type {
    BN_TOKEN_UNDEFINED = 0,
    BN_TOKEN_NORMAL = 1,
    BN_TOKEN_UNKNOWN = 2,
    BN_TOKEN_CONTROL = 3,      /* special: <|eot_id|>, ...; matched in text only with parse_special */
    BN_TOKEN_USER_DEFINED = 4, /* added non-special token: always matched in text */
    BN_TOKEN_UNUSED = 5,
    BN_TOKEN_BYTE = 6
} bn_token_type;

/* Pre-tokenization (the split before BPE). */
typedef enum bn_pretokenizer {
    BN_PRE_AUTO = 0,        /* from tokenizer.ggml.pre; absent -> BN_PRE_LLAMA3 (spec section 5) */
    BN_PRE_LLAMA3,          /* LLaMA-3 pattern, ignore_merges */
    BN_PRE_GPT2,            /* GPT-2 pattern, merges always applied */
    BN_PRE_LLAMACPP_DEFAULT /* llama.cpp/bitnet.cpp fallback when `pre` is absent: four patterns
                               applied one after the other, merges always applied (comparisons) */
} bn_pretokenizer;

typedef struct bn_tokenizer_options {
    bn_pretokenizer pre; /* BN_PRE_AUTO unless overriding the file */
} bn_tokenizer_options;

/* An in-memory vocabulary (the same content as the GGUF keys) for bn_tokenizer_from_vocab. */
typedef struct bn_tokenizer_vocab {
    const char *const *tokens;  /* n_tokens token texts in GGUF form (byte-level "Ġthe") */
    const size_t *token_lens;   /* NULL: NUL-terminated */
    const int32_t *token_types; /* NULL: all BN_TOKEN_NORMAL */
    uint32_t n_tokens;
    const char *const *merges;  /* "left right", rank = index */
    uint32_t n_merges;
    int32_t bos_id, eos_id, eot_id; /* -1: none (eot -1: looked up as "<|eot_id|>") */
    int add_bos;                    /* -1: default (true when bos_id exists), 0, 1 */
    const char *pre;                /* tokenizer.ggml.pre value or NULL when absent */
} bn_tokenizer_vocab;

/* Builds a tokenizer from a GGUF file's tokenizer.ggml.* keys. opts may be NULL. On success *out
 * is owned by the caller (bn_tokenizer_free); it does not reference the bn_gguf afterwards. */
bn_status bn_tokenizer_from_gguf(bn_tokenizer **out, const bn_gguf *gguf,
                                 const bn_tokenizer_options *opts, bn_error *err);
/* The same from arrays (copied). */
bn_status bn_tokenizer_from_vocab(bn_tokenizer **out, const bn_tokenizer_vocab *vocab,
                                  const bn_tokenizer_options *opts, bn_error *err);
void bn_tokenizer_free(bn_tokenizer *tok);

uint32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok);
int32_t bn_tokenizer_bos(const bn_tokenizer *tok); /* -1 when none */
int32_t bn_tokenizer_eos(const bn_tokenizer *tok);
int32_t bn_tokenizer_eot(const bn_tokenizer *tok);
bool bn_tokenizer_add_bos(const bn_tokenizer *tok);
/* The pre-tokenizer actually in use (never BN_PRE_AUTO) and its name ("llama3", ...). */
bn_pretokenizer bn_tokenizer_pre(const bn_tokenizer *tok);
const char *bn_tokenizer_pre_name(bn_pretokenizer pre);
/* End of generation: EOS or EOT. */
bool bn_tokenizer_is_eog(const bn_tokenizer *tok, int32_t id);
/* BN_TOKEN_UNDEFINED for an out-of-range id. */
bn_token_type bn_tokenizer_token_type(const bn_tokenizer *tok, int32_t id);
/* The token as stored in the file (byte-level form); NULL for an out-of-range id. */
const char *bn_tokenizer_token_text(const bn_tokenizer *tok, int32_t id, size_t *len);
/* The bytes the token stands for (special tokens: their text); NULL for an out-of-range id.
 * Points into the tokenizer. */
const uint8_t *bn_tokenizer_token_bytes(const bn_tokenizer *tok, int32_t id, size_t *len);
/* Id of the token whose stored text is exactly `text` (any type), or -1. */
int32_t bn_tokenizer_find(const bn_tokenizer *tok, const char *text);

/* A list of token ids. Growable when zero-initialised ({0}: realloc'd, free with
 * bn_tokens_free); or over caller storage with bn_tokens_fixed (never grown: encoding more than
 * cap ids fails with BN_ERR_RANGE, and n then tells how many fitted). */
typedef struct bn_tokens {
    int32_t *ids;
    size_t n;
    size_t cap;
    bool fixed;
} bn_tokens;

bn_tokens bn_tokens_fixed(int32_t *storage, size_t cap);
void bn_tokens_free(bn_tokens *tokens);
bn_status bn_tokens_push(bn_tokens *tokens, int32_t id, bn_error *err);

/* Encodes len bytes of text (any bytes: invalid UTF-8 is encoded byte by byte) and APPENDS the
 * ids to *out. add_bos: prepend BOS when the model asks for it (bn_tokenizer_add_bos).
 * parse_special: control tokens written in the text ("<|eot_id|>") become their ids; otherwise
 * they are encoded as ordinary text. User-defined tokens are always matched. */
bn_status bn_tokenizer_encode(const bn_tokenizer *tok, const char *text, size_t len, bool add_bos,
                              bool parse_special, bn_tokens *out, bn_error *err);

/* Whole-sequence decode: *out (NUL-terminated, caller frees) gets the bytes of ids[0..n).
 * Control tokens are rendered as their text unless skip_special. Invalid id: BN_ERR_RANGE. */
bn_status bn_tokenizer_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n,
                              bool skip_special, char **out, size_t *out_len, bn_error *err);

/* Streaming detokenizer: push ids one at a time; each push returns the text that is complete so
 * far. Bytes of a UTF-8 character split across tokens are held until the character is complete;
 * bytes that can never form a valid character are passed through as they are (so decoding
 * round-trips any input) or, with BN_DETOK_REPLACE_INVALID, replaced by U+FFFD. */
enum { BN_DETOK_SKIP_SPECIAL = 1, BN_DETOK_REPLACE_INVALID = 2 };

typedef struct bn_detokenizer {
    const bn_tokenizer *tok;
    unsigned flags;
    uint8_t pending[4]; /* an incomplete UTF-8 character */
    size_t n_pending;
    char *buf;          /* output of the last push/flush (owned) */
    size_t buf_cap;
} bn_detokenizer;

void bn_detokenizer_init(bn_detokenizer *d, const bn_tokenizer *tok, unsigned flags);
void bn_detokenizer_free(bn_detokenizer *d);
/* text, len: the newly complete bytes (NUL-terminated; valid until the next call). An invalid
 * id gives BN_ERR_RANGE and leaves the state unchanged. */
bn_status bn_detokenizer_push(bn_detokenizer *d, int32_t id, const char **text, size_t *len,
                              bn_error *err);
/* End of stream: returns the held bytes (as they are, or U+FFFD when replacing) and resets. */
bn_status bn_detokenizer_flush(bn_detokenizer *d, const char **text, size_t *len, bn_error *err);

/* ---- Hugging Face tokenizer.json import (hf_import.c) ---- */

/* Adds the tokenizer.ggml.* metadata equivalent to a Hugging Face tokenizer.json (byte-level
 * BPE) to a GGUF writer: model, tokens, token_type, merges, bos/eos ids, add_bos_token, and
 * `pre` = "gpt2" for a GPT-2 ByteLevel split (the LLaMA-3 split is written as no `pre` key, which
 * means LLaMA-3 here, as in the official BitNet file). BOS/EOS come from tokenizer_config.json
 * beside the file when it exists, else from the texts <|begin_of_text|> / <|end_of_text|>. */
bn_status bn_tokenizer_add_hf_json_metadata(bn_gguf_writer *writer, const char *tokenizer_json_path,
                                            bn_error *err);

/* The same content as arrays, for tests and tools that do not go through a GGUF file. */
typedef struct bn_hf_vocab {
    char **tokens;
    int32_t *token_types;
    uint32_t n_tokens;
    char **merges;
    uint32_t n_merges;
    int32_t bos_id, eos_id;
    bool add_bos;
    const char *pre; /* static string or NULL */
} bn_hf_vocab;

/* Fills *out (owned by the caller: bn_hf_vocab_free). */
bn_status bn_hf_vocab_load(bn_hf_vocab *out, const char *tokenizer_json_path, bn_error *err);
void bn_hf_vocab_free(bn_hf_vocab *vocab);
/* A bn_tokenizer_vocab view of v (valid while v lives). */
bn_tokenizer_vocab bn_hf_vocab_view(const bn_hf_vocab *v);

#endif
