/*
 * tokenizer.h: the tokenizers of GGUF vocabularies, built from GGUF metadata only, plus a
 * streaming detokenizer. Two algorithms, chosen by `tokenizer.ggml.model`:
 *
 *   "gpt2"  byte-level BPE. Every token's text is decoded once at load time into its raw bytes
 *           (the GPT-2 byte<->unicode mapping undone), so encoding works on the input bytes
 *           directly: one hash table maps token bytes to ids, another maps a pair of ids to its
 *           merge rank and result. Encoding is (1) split on special tokens when the caller asks,
 *           (2) split into valid-UTF-8 runs and single invalid bytes, (3) pre-tokenize each run
 *           with a PCRE2 pattern (UTF + UCP), (4) per pre-token: the whole pre-token when
 *           ignore_merges and it is a vocabulary entry, else BPE with a heap of candidate pairs
 *           (lowest rank first, leftmost on ties, as Hugging Face does).
 *   "llama" SentencePiece (spm.c), as llama.cpp's llm_tokenizer_spm: no pre-tokenizer; spaces
 *           become U+2581 (written ▁ below) and, with add_space_prefix, a ▁ starts the text and
 *           every stretch of text after a special token; then the characters are merged pairwise,
 *           always the adjacent pair whose concatenation is the vocabulary piece of highest score
 *           (leftmost on ties); a character that is no piece falls back to its byte pieces
 *           <0xNN>, or to the unknown piece when the vocabulary has no byte pieces.
 *
 * Decoding is the same for both: each token stands for fixed bytes (bn_tokenizer_token_bytes).
 * SentencePiece pieces stand for their text with ▁ as a space (byte pieces for their byte), and
 * a whole-sequence decode with add_space_prefix drops the one leading space of the text, as
 * Hugging Face's decoder does (so decode(encode(s)) == s without special-token parsing, except
 * that a ▁ written in s comes back as a space).
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
    BN_TOKEN_CONTROL = 3,      /* special: <|eot_id|>, <s>, ...; matched in text only with parse_special */
    BN_TOKEN_USER_DEFINED = 4, /* added non-special token: always matched in text */
    BN_TOKEN_UNUSED = 5,
    BN_TOKEN_BYTE = 6          /* SentencePiece byte fallback piece <0xNN> */
} bn_token_type;

/* The algorithm (GGUF tokenizer.ggml.model). */
typedef enum bn_tokenizer_model_kind {
    BN_TOKENIZER_BPE = 0, /* "gpt2": byte-level BPE */
    BN_TOKENIZER_SPM      /* "llama": SentencePiece */
} bn_tokenizer_model_kind;

/* Pre-tokenization (the split before byte-level BPE). */
typedef enum bn_pretokenizer {
    BN_PRE_AUTO = 0,         /* from tokenizer.ggml.pre; absent -> BN_PRE_LLAMA3 (spec section 5) */
    BN_PRE_LLAMA3,           /* LLaMA-3 pattern, ignore_merges */
    BN_PRE_GPT2,             /* GPT-2 pattern, merges always applied */
    BN_PRE_LLAMACPP_DEFAULT, /* llama.cpp/bitnet.cpp fallback when `pre` is absent: four patterns
                                applied one after the other, merges always applied (comparisons) */
    BN_PRE_NONE              /* SentencePiece: no split (never an option for BPE) */
} bn_pretokenizer;

/* The `pre` names understood, in files and in `bitnet tokenize --pre`, as llama.cpp writes them:
 * llama3, llama-bpe, llama-v3 and falcon3 (llama.cpp's src/llama-vocab.cpp maps Falcon3's name
 * to its LLaMA-3 pre-tokenizer type, ignore_merges included); gpt2 and gpt-2; default and
 * llamacpp-default (llama.cpp's split for files without `pre`). */
#define BN_TOKENIZER_PRE_NAMES "llama3, llama-bpe, llama-v3, falcon3, gpt2, gpt-2, default, llamacpp-default"
/* The pre-tokenizer of a name (len bytes, not NUL-terminated), or BN_PRE_AUTO when unknown. */
bn_pretokenizer bn_tokenizer_pre_from_name(const char *name, size_t len);

typedef struct bn_tokenizer_options {
    bn_pretokenizer pre; /* BN_PRE_AUTO unless overriding the file (byte-level BPE only: an
                            override on a SentencePiece vocabulary is BN_ERR_INVALID) */
} bn_tokenizer_options;

/* An in-memory vocabulary (the same content as the GGUF keys) for bn_tokenizer_from_vocab. */
typedef struct bn_tokenizer_vocab {
    const char *model;          /* tokenizer.ggml.model: "gpt2" (or NULL) or "llama" */
    const char *const *tokens;  /* n_tokens token texts in GGUF form (byte-level "Ġthe", SPM "▁the") */
    const size_t *token_lens;   /* NULL: NUL-terminated */
    const int32_t *token_types; /* NULL: all BN_TOKEN_NORMAL */
    uint32_t n_tokens;
    const char *const *merges;  /* BPE: "left right", rank = index */
    uint32_t n_merges;
    const float *scores;        /* SentencePiece: n_tokens piece scores (required) */
    int32_t bos_id, eos_id, eot_id; /* -1: none (eot -1: looked up as "<|eot_id|>") */
    int32_t unk_id;                 /* SentencePiece: the unknown piece, -1: none */
    int add_bos;                    /* -1: default (true when bos_id exists), 0, 1 */
    int add_space_prefix;           /* SentencePiece: -1: default (true), 0, 1 */
    const char *pre;                /* BPE: tokenizer.ggml.pre value or NULL when absent */
} bn_tokenizer_vocab;

/* Builds a tokenizer from a GGUF file's tokenizer.ggml.* keys. opts may be NULL. On success *out
 * is owned by the caller (bn_tokenizer_free); it does not reference the bn_gguf afterwards.
 * A SentencePiece vocabulary ("llama") needs tokens and scores of the same length; token_type is
 * optional (all normal); BOS, EOS and unknown default to ids 1, 2 and 0 as in llama.cpp;
 * add_bos_token and add_space_prefix default to true. It is refused, with the key named, when
 * a piece is empty or appears twice, a byte piece is not <0xNN>, the byte pieces are neither all
 * 256 nor none, or a score is not a number. */
bn_status bn_tokenizer_from_gguf(bn_tokenizer **out, const bn_gguf *gguf,
                                 const bn_tokenizer_options *opts, bn_error *err);
/* The same from arrays (copied). */
bn_status bn_tokenizer_from_vocab(bn_tokenizer **out, const bn_tokenizer_vocab *vocab,
                                  const bn_tokenizer_options *opts, bn_error *err);
void bn_tokenizer_free(bn_tokenizer *tok);

uint32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok);
bn_tokenizer_model_kind bn_tokenizer_model(const bn_tokenizer *tok);
int32_t bn_tokenizer_bos(const bn_tokenizer *tok); /* -1 when none */
int32_t bn_tokenizer_eos(const bn_tokenizer *tok);
int32_t bn_tokenizer_eot(const bn_tokenizer *tok);
int32_t bn_tokenizer_unk(const bn_tokenizer *tok); /* SentencePiece's unknown piece; -1 when none */
bool bn_tokenizer_add_bos(const bn_tokenizer *tok);
/* SentencePiece: a ▁ starts the text (and text after a special token); false for BPE. */
bool bn_tokenizer_add_space_prefix(const bn_tokenizer *tok);
/* A SentencePiece piece's score (0 for BPE and out-of-range ids). */
float bn_tokenizer_score(const bn_tokenizer *tok, int32_t id);
/* The pre-tokenizer actually in use (never BN_PRE_AUTO; BN_PRE_NONE for SentencePiece) and its
 * name ("llama3", ...). */
bn_pretokenizer bn_tokenizer_pre(const bn_tokenizer *tok);
const char *bn_tokenizer_pre_name(bn_pretokenizer pre);
/* End of generation: EOS or EOT. */
bool bn_tokenizer_is_eog(const bn_tokenizer *tok, int32_t id);
/* BN_TOKEN_UNDEFINED for an out-of-range id. */
bn_token_type bn_tokenizer_token_type(const bn_tokenizer *tok, int32_t id);
/* The token as stored in the file (byte-level form); NULL for an out-of-range id. */
const char *bn_tokenizer_token_text(const bn_tokenizer *tok, int32_t id, size_t *len);
/* The bytes the token stands for (special tokens: their text; SentencePiece: ▁ as a space, a
 * byte piece its byte); NULL for an out-of-range id. Points into the tokenizer. */
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
 * parse_special: control tokens written in the text ("<|eot_id|>", "<s>"; SentencePiece's
 * unknown piece too) become their ids; otherwise they are encoded as ordinary text. User-defined
 * tokens are always matched. A character that a SentencePiece vocabulary can spell neither with
 * pieces nor bytes and that has no unknown piece is BN_ERR_UNSUPPORTED. */
bn_status bn_tokenizer_encode(const bn_tokenizer *tok, const char *text, size_t len, bool add_bos,
                              bool parse_special, bn_tokens *out, bn_error *err);

/* Whole-sequence decode: *out (NUL-terminated, caller frees) gets the bytes of ids[0..n).
 * Control tokens (and SentencePiece's unknown piece) are rendered as their text unless
 * skip_special. SentencePiece with add_space_prefix: the result loses one leading space (after
 * skipping, so [<s>, ▁Hi] gives "Hi" with skip_special and "<s> Hi" without, as Hugging Face
 * decodes; llama.cpp's detokenizer differs only in leaving " Hi" when it drops an unrendered
 * BOS). Invalid id: BN_ERR_RANGE. */
bn_status bn_tokenizer_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n,
                              bool skip_special, char **out, size_t *out_len, bn_error *err);

/* Streaming detokenizer: push ids one at a time; each push returns the text that is complete so
 * far. Bytes of a UTF-8 character split across tokens are held until the character is complete;
 * bytes that can never form a valid character are passed through as they are (so decoding
 * round-trips any input) or, with BN_DETOK_REPLACE_INVALID, replaced by U+FFFD. It continues a
 * text (generated tokens after a prompt), so no SentencePiece leading space is dropped: its
 * output is bn_tokenizer_decode's with that space kept (llama.cpp's token_to_piece). */
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

/* Adds the tokenizer.ggml.* metadata equivalent to a Hugging Face tokenizer.json to a GGUF
 * writer. Byte-level BPE: model "gpt2", tokens, token_type, merges, bos/eos ids, add_bos_token,
 * and `pre` = "gpt2" for a GPT-2 ByteLevel split (the LLaMA-3 split is written as no `pre` key,
 * which means LLaMA-3 here, as in the official BitNet file). SentencePiece-style BPE (LLaMA-2,
 * Mistral: byte_fallback with a ▁ normalizer or a Metaspace pre-tokenizer without split): model
 * "llama", tokens, scores, token_type, bos/eos/unknown ids, add_bos_token, add_space_prefix, no
 * merges; scores as MODEL_FORMAT.md 9.3 gives them: 0 for control, unknown and byte pieces,
 * -1e9 for pieces made only of ▁, -(id - first learned id) for the others (-(id - 259) for
 * LLaMA-2 and Mistral). BOS/EOS (and the unknown piece) come from tokenizer_config.json beside
 * the file when it exists, else from the texts <|begin_of_text|> / <|end_of_text|> (BPE) or
 * <s> / </s> / model.unk_token (SentencePiece). */
bn_status bn_tokenizer_add_hf_json_metadata(bn_gguf_writer *writer, const char *tokenizer_json_path,
                                            bn_error *err);

/* The same content as arrays, for tests and tools that do not go through a GGUF file. */
typedef struct bn_hf_vocab {
    const char *model; /* "gpt2" or "llama" (static) */
    char **tokens;
    int32_t *token_types;
    uint32_t n_tokens;
    char **merges;     /* BPE only */
    uint32_t n_merges;
    float *scores;     /* SentencePiece only: n_tokens scores */
    int32_t bos_id, eos_id, unk_id;
    bool add_bos;
    bool add_space_prefix; /* SentencePiece */
    const char *pre; /* static string, bn_hf_vocab_options.pre, or NULL */
} bn_hf_vocab;

typedef struct bn_hf_vocab_options {
    /* A BN_TOKENIZER_PRE_NAMES name to use as `pre` of a byte-level BPE instead of the one
     * recognised from pre_tokenizer, which is then not looked at (so one the engine does not
     * recognise is accepted). Kept by pointer: must outlive the vocabulary. Unused for
     * SentencePiece files. NULL: recognise it, and refuse one not recognised, naming it. */
    const char *pre;
} bn_hf_vocab_options;

/* Fills *out (owned by the caller: bn_hf_vocab_free). options may be NULL (all defaults). */
bn_status bn_hf_vocab_load_with(bn_hf_vocab *out, const char *tokenizer_json_path, const bn_hf_vocab_options *options,
                                bn_error *err);
/* bn_hf_vocab_load_with without options. */
bn_status bn_hf_vocab_load(bn_hf_vocab *out, const char *tokenizer_json_path, bn_error *err);
void bn_hf_vocab_free(bn_hf_vocab *vocab);
/* A bn_tokenizer_vocab view of v (valid while v lives). */
bn_tokenizer_vocab bn_hf_vocab_view(const bn_hf_vocab *v);

#endif
