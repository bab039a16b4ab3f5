/*
 * tokenizer_internal.h: what tokenizer.c (construction, byte-level BPE, decoding) and spm.c
 * (SentencePiece) share, not part of the public interface: the tokenizer's tables, the UTF-8
 * classifier and the piece hash.
 *
 * Tables built at load time:
 *   - text:   every token as stored (byte-level "Ġthe", SentencePiece "▁the"), for
 *             bn_tokenizer_token_text / find, and SentencePiece's lookups;
 *   - bytes:  every token as the bytes it stands for, for decoding (see tokenizer.h);
 *   - vocab:  open-addressing hash over the pieces that merges may produce, keyed by bytes (BPE:
 *             normal/byte/unknown/undefined types) or by stored text (SentencePiece: every
 *             non-empty piece, so that duplicates are found; lookups keep normal/undefined ones);
 *   - merges: BPE: open-addressing hash from (left id, right id) to (rank, result id);
 *   - scores: SentencePiece piece scores; byte_token: the piece of each byte (BPE: the token of
 *             that one byte; SentencePiece: <0xNN>).
 */
#ifndef BN_TOKENIZER_INTERNAL_H
#define BN_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/tokenizer.h"

#include <pcre2.h>

#define N_PRE_PATTERNS_MAX 4

typedef struct merge_slot {
    uint64_t key; /* (left << 32) | right, plus one so that 0 means empty */
    uint32_t rank;
    int32_t result;
} merge_slot;

typedef struct special_token {
    int32_t id;
    bool control; /* true: only with parse_special */
} special_token;

struct bn_tokenizer {
    bn_tokenizer_model_kind kind;
    uint32_t n_tokens;
    int32_t *types;
    char *text;            /* all stored texts, each NUL-terminated */
    size_t *text_off;      /* n_tokens + 1 offsets into text */
    uint8_t *bytes;        /* all decoded byte strings, concatenated */
    size_t *bytes_off;     /* n_tokens + 1 offsets into bytes */
    int32_t *vocab_slots;  /* id + 1, 0 = empty */
    size_t vocab_mask;
    merge_slot *merge_slots;
    size_t merge_mask;
    float *scores;           /* SentencePiece: n_tokens scores; NULL for BPE */
    int32_t byte_token[256]; /* id of each byte's token, -1 when the vocabulary lacks it */
    special_token *specials; /* control + user-defined (+ SentencePiece unknown) tokens, longest first */
    size_t n_specials;
    uint8_t special_first[256]; /* bit 0: a user-defined token starts with this byte, bit 1: control */
    int32_t bos, eos, eot, unk;
    bool add_bos;
    bool add_space_prefix; /* SentencePiece */
    bn_pretokenizer pre;
    bool ignore_merges;
    pcre2_code *patterns[N_PRE_PATTERNS_MAX];
    size_t n_patterns;
};

/* Classifies the bytes at s (n > 0): returns the length (1..4) of a valid character, 0 when s[0]
 * cannot start a valid character given what follows, or -1 when s is a valid but incomplete
 * prefix of a character (more bytes could complete it). *cp gets the code point when valid. */
int bn_tokenizer_utf8_classify(const uint8_t *s, size_t n, uint32_t *cp);

/* Id of the piece whose hash key (see above) is p[0..n), or -1. */
int32_t bn_tokenizer_vocab_lookup(const bn_tokenizer *t, const uint8_t *p, size_t n);

/* ---- SentencePiece (spm.c) ---- */

/* The piece text of U+2581, which stands for a space. */
#define BN_SPM_SPACE "\xe2\x96\x81"
#define BN_SPM_SPACE_LEN 3

/* Load-time checks and tables of a SentencePiece vocabulary, once t has its types, texts, bytes
 * and the hash over all pieces: scores (copied; n_tokens of them), the byte pieces (byte_token)
 * and the checks of tokenizer.h (byte pieces <0xNN>, all 256 or none, no NaN score). */
bn_status bn_spm_prepare(bn_tokenizer *t, const float *scores, bn_error *err);

/* The bytes a SentencePiece token of this type stands for, written to dst (room for len bytes:
 * never longer than the text); returns their count. */
size_t bn_spm_piece_bytes(uint8_t *dst, const uint8_t *text, size_t len, int32_t type);

/* Scratch space of one encode call (zero-initialised; bn_spm_scratch_free releases it). */
typedef struct bn_spm_scratch {
    uint8_t *text; /* the fragment with ▁ for spaces */
    size_t text_cap;
    struct spm_symbol *symbols;
    size_t symbols_cap;
    struct spm_bigram *heap;
    size_t heap_n, heap_cap;
} bn_spm_scratch;

void bn_spm_scratch_free(bn_spm_scratch *s);

/* Encodes one stretch of plain text (no special tokens in it), appending ids to *out; space_prefix
 * puts a ▁ before it. */
bn_status bn_spm_encode(const bn_tokenizer *t, bn_spm_scratch *s, const uint8_t *text, size_t len,
                        bool space_prefix, bn_tokens *out, bn_error *err);

#endif
