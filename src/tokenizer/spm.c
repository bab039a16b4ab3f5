/*
 * spm.c: the SentencePiece tokenizer of GGUF vocabularies with tokenizer.ggml.model = "llama"
 * (LLaMA-1/2, Mistral), the algorithm of llama.cpp's llm_tokenizer_spm written afresh.
 *
 * Design: a stretch of text (no special tokens in it) is escaped (spaces become ▁, U+2581, and a
 * ▁ is put in front when asked) and cut into symbols, one per UTF-8 character (each byte of an
 * invalid sequence on its own). Every adjacent pair whose concatenation is a vocabulary piece
 * goes into a max-heap keyed by that piece's score; the best pair (highest score, leftmost on
 * ties) is merged, its neighbours' pairs are offered, and so on until no pair is a piece. The
 * symbols are substrings of the escaped text, so a pair's text is one contiguous range and
 * looking it up allocates nothing; a pair popped after one of its symbols changed is stale and is
 * skipped (its recorded length no longer matches). A symbol left that is no piece (a character
 * the vocabulary lacks) becomes its byte pieces <0xNN>, or the unknown piece when there are no
 * byte pieces. Only normal (and undefined-type) pieces take part: control, byte, unknown,
 * user-defined and unused pieces are never produced by merging, as in SentencePiece itself.
 */
#include "tokenizer/tokenizer_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct spm_symbol {
    int32_t start; /* byte offset in the escaped text */
    int32_t len;   /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
    int32_t id;    /* the piece it spells, -1 when none */
} spm_symbol;

typedef struct spm_bigram {
    float score;
    int32_t left, right;
    int32_t len; /* len(left) + len(right) when pushed: detects stale pairs */
    int32_t id;  /* the piece of the concatenation */
} spm_bigram;

/* ---- load time ---- */

static int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" piece, or -1 when the text is not of that form. */
static int byte_piece_value(const uint8_t *text, size_t len) {
    if (len != 6 || memcmp(text, "<0x", 3) != 0 || text[5] != '>') return -1;
    int hi = hex_digit(text[3]), lo = hex_digit(text[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

size_t bn_spm_piece_bytes(uint8_t *dst, const uint8_t *text, size_t len, int32_t type) {
    if (type == BN_TOKEN_CONTROL || type == BN_TOKEN_USER_DEFINED || type == BN_TOKEN_UNKNOWN) {
        memcpy(dst, text, len);
        return len;
    }
    if (type == BN_TOKEN_BYTE) {
        int b = byte_piece_value(text, len);
        if (b >= 0) {
            dst[0] = (uint8_t)b;
            return 1;
        }
        memcpy(dst, text, len); /* refused by bn_spm_prepare */
        return len;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= BN_SPM_SPACE_LEN && memcmp(text + i, BN_SPM_SPACE, BN_SPM_SPACE_LEN) == 0) {
            dst[o++] = ' ';
            i += BN_SPM_SPACE_LEN;
        } else {
            dst[o++] = text[i++];
        }
    }
    return o;
}

bn_status bn_spm_prepare(bn_tokenizer *t, const float *scores, bn_error *err) {
    if (!scores)
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.scores: missing (a SentencePiece vocabulary needs "
                                                "the score of every piece)");
    t->scores = malloc((size_t)t->n_tokens * sizeof *t->scores);
    if (!t->scores) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory for %u scores", t->n_tokens);
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        if (isnan(scores[i])) return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.scores[%u]: not a number", i);
        t->scores[i] = scores[i];
    }

    int n_bytes = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        if (t->types[i] != BN_TOKEN_BYTE) continue;
        const uint8_t *text = (const uint8_t *)t->text + t->text_off[i];
        size_t len = t->text_off[i + 1] - t->text_off[i] - 1;
        int b = byte_piece_value(text, len);
        char quoted[BN_GGUF_QUOTE_MAX];
        if (b < 0)
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens[%u]: byte piece (token_type 6) '%s' is "
                                                    "not of the form <0xNN>",
                                i, bn_gguf_string_quote((bn_gguf_string){len, (const char *)text}, quoted, sizeof quoted));
        if (t->byte_token[b] >= 0)
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens[%u]: a second byte piece for 0x%02X "
                                                    "(the first is id %d)",
                                i, b, t->byte_token[b]);
        t->byte_token[b] = (int32_t)i;
        n_bytes++;
    }
    if (n_bytes != 0 && n_bytes != 256) {
        int missing = 0;
        while (t->byte_token[missing] >= 0) missing++;
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens: byte pieces for %d of the 256 bytes (<0x%02X> "
                                                "is missing); a SentencePiece vocabulary has all of them or none",
                            n_bytes, missing);
    }
    return BN_OK;
}

/* ---- encoding ---- */

void bn_spm_scratch_free(bn_spm_scratch *s) {
    free(s->text);
    free(s->symbols);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

/* The normal piece spelled by p[0..n), or -1. */
static int32_t piece_lookup(const bn_tokenizer *t, const uint8_t *p, size_t n) {
    int32_t id = bn_tokenizer_vocab_lookup(t, p, n);
    if (id < 0) return -1;
    int32_t type = t->types[id];
    return type == BN_TOKEN_NORMAL || type == BN_TOKEN_UNDEFINED ? id : -1;
}

/* a goes before b in the heap: higher score, then leftmost. */
static bool bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

static bn_status heap_push(bn_spm_scratch *s, spm_bigram b, bn_error *err) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        spm_bigram *grown = realloc(s->heap, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
        s->heap = grown;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
    return BN_OK;
}

static spm_bigram heap_pop(bn_spm_scratch *s) {
    spm_bigram top = s->heap[0];
    spm_bigram last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!bigram_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

/* Offers the pair (left, right) when their concatenation is a piece. */
static bn_status try_bigram(const bn_tokenizer *t, bn_spm_scratch *s, int32_t left, int32_t right, bn_error *err) {
    if (left < 0 || right < 0) return BN_OK;
    const spm_symbol *l = &s->symbols[left], *r = &s->symbols[right];
    int32_t id = piece_lookup(t, s->text + l->start, (size_t)l->len + (size_t)r->len);
    if (id < 0) return BN_OK;
    spm_bigram b = {t->scores[id], left, right, l->len + r->len, id};
    return heap_push(s, b, err);
}

/* Appends the ids of a symbol that is no piece: its byte pieces, else the unknown piece. */
static bn_status emit_unknown(const bn_tokenizer *t, const uint8_t *p, size_t n, bn_tokens *out, bn_error *err) {
    bool all_bytes = true;
    for (size_t i = 0; i < n; i++) all_bytes = all_bytes && t->byte_token[p[i]] >= 0;
    if (all_bytes) {
        for (size_t i = 0; i < n; i++) {
            bn_status st = bn_tokens_push(out, t->byte_token[p[i]], err);
            if (st != BN_OK) return st;
        }
        return BN_OK;
    }
    if (t->unk >= 0) return bn_tokens_push(out, t->unk, err);
    char hex[4 * 3 + 1] = "";
    for (size_t i = 0; i < n && i < 4; i++) snprintf(hex + 3 * i, 4, " %02x", p[i]);
    return bn_error_set(err, BN_ERR_UNSUPPORTED,
                        "tokenizer: the vocabulary has neither a piece, byte pieces nor an unknown piece for the "
                        "character of bytes%s",
                        hex);
}

bn_status bn_spm_encode(const bn_tokenizer *t, bn_spm_scratch *s, const uint8_t *text, size_t len,
                        bool space_prefix, bn_tokens *out, bn_error *err) {
    if (len == 0 && !space_prefix) return BN_OK;
    size_t n_spaces = 0;
    for (size_t i = 0; i < len; i++) n_spaces += text[i] == ' ';
    /* Each space grows to 3 bytes; the symbols and their offsets are int32. */
    if (len > (size_t)INT32_MAX / BN_SPM_SPACE_LEN - 1)
        return bn_error_set(err, BN_ERR_RANGE, "tokenizer: a text of %zu bytes is too long", len);
    size_t n = len + n_spaces * (BN_SPM_SPACE_LEN - 1) + (space_prefix ? BN_SPM_SPACE_LEN : 0);
    if (n > s->text_cap) {
        uint8_t *grown = realloc(s->text, n);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
        s->text = grown;
        s->text_cap = n;
    }
    size_t o = 0;
    if (space_prefix) {
        memcpy(s->text, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
        o = BN_SPM_SPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->text + o, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
            o += BN_SPM_SPACE_LEN;
        } else {
            s->text[o++] = text[i];
        }
    }

    if (n > s->symbols_cap) {
        spm_symbol *grown = realloc(s->symbols, n * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
        s->symbols = grown;
        s->symbols_cap = n;
    }
    int32_t n_symbols = 0;
    for (size_t i = 0; i < n;) {
        int r = bn_tokenizer_utf8_classify(s->text + i, n - i, NULL);
        size_t step = r > 0 ? (size_t)r : 1;
        s->symbols[n_symbols] = (spm_symbol){(int32_t)i, (int32_t)step, n_symbols - 1, n_symbols + 1,
                                             piece_lookup(t, s->text + i, step)};
        n_symbols++;
        i += step;
    }
    s->symbols[n_symbols - 1].next = -1;

    s->heap_n = 0;
    bn_status st = BN_OK;
    for (int32_t i = 1; i < n_symbols && st == BN_OK; i++) st = try_bigram(t, s, i - 1, i, err);
    while (st == BN_OK && s->heap_n > 0) {
        spm_bigram b = heap_pop(s);
        spm_symbol *l = &s->symbols[b.left], *r = &s->symbols[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.len) continue;
        l->len += r->len;
        l->id = b.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->symbols[r->next].prev = b.left;
        st = try_bigram(t, s, l->prev, b.left, err);
        if (st == BN_OK) st = try_bigram(t, s, b.left, l->next, err);
    }
    for (int32_t i = 0; st == BN_OK && i >= 0; i = s->symbols[i].next) {
        const spm_symbol *sym = &s->symbols[i];
        st = sym->id >= 0 ? bn_tokens_push(out, sym->id, err)
                          : emit_unknown(t, s->text + sym->start, (size_t)sym->len, out, err);
    }
    return st;
}
