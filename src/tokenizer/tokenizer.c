/*
 * tokenizer.c: building a tokenizer from GGUF metadata or arrays, byte-level BPE encoding, and
 * decoding for both algorithms (see tokenizer.h for the design, tokenizer_internal.h for the
 * tables, spm.c for SentencePiece encoding).
 */
#include "tokenizer/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- GPT-2 byte <-> unicode mapping ---- */

/* Bytes that are printable stand for themselves; the other 68 are mapped, in byte order, to the
 * code points 256, 257, ... */
static bool byte_is_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* code point -> byte, or -1. Covers 0..323. */
static void build_unicode_to_byte(int16_t map[324]) {
    for (int i = 0; i < 324; i++) map[i] = -1;
    unsigned next = 256;
    for (unsigned b = 0; b < 256; b++) {
        if (byte_is_printable(b)) map[b] = (int16_t)b;
        else map[next++] = (int16_t)b;
    }
}

/* ---- UTF-8 ---- */

int bn_tokenizer_utf8_classify(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        if (cp) *cp = b0;
        return 1;
    }
    int need;
    uint32_t c;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        c = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (b0 == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        c = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;
        else if (b0 == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return -1;
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
        c = (c << 6) | (b & 0x3F);
    }
    if (cp) *cp = c;
    return need;
}

/* ---- hashing ---- */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A power of two with a load factor of at most 2/3 (probes stay short, 280k merges take 8 MB). */
static size_t table_size_for(size_t n) {
    size_t size = 16;
    while (size < n + n / 2) size <<= 1;
    return size;
}

static const uint8_t *tok_bytes(const bn_tokenizer *t, int32_t id, size_t *len) {
    *len = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes + t->bytes_off[id];
}

/* The hash key of a token: its bytes (BPE) or its stored text (SentencePiece). */
static const uint8_t *vocab_key(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (t->kind == BN_TOKENIZER_SPM) {
        *len = t->text_off[id + 1] - t->text_off[id] - 1;
        return (const uint8_t *)t->text + t->text_off[id];
    }
    return tok_bytes(t, id, len);
}

int32_t bn_tokenizer_vocab_lookup(const bn_tokenizer *t, const uint8_t *p, size_t n) {
    size_t i = (size_t)hash_bytes(p, n) & t->vocab_mask;
    for (;;) {
        int32_t slot = t->vocab_slots[i];
        if (slot == 0) return -1;
        size_t len;
        const uint8_t *b = vocab_key(t, slot - 1, &len);
        if (len == n && memcmp(b, p, n) == 0) return slot - 1;
        i = (i + 1) & t->vocab_mask;
    }
}

/* Inserts id; returns -1, or the id already holding the same key (which keeps it). */
static int32_t vocab_insert(bn_tokenizer *t, int32_t id) {
    size_t len;
    const uint8_t *b = vocab_key(t, id, &len);
    size_t i = (size_t)hash_bytes(b, len) & t->vocab_mask;
    for (;;) {
        int32_t slot = t->vocab_slots[i];
        if (slot == 0) {
            t->vocab_slots[i] = id + 1;
            return -1;
        }
        size_t other_len;
        const uint8_t *o = vocab_key(t, slot - 1, &other_len);
        if (other_len == len && memcmp(o, b, len) == 0) return slot - 1;
        i = (i + 1) & t->vocab_mask;
    }
}

static const merge_slot *merge_lookup(const bn_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t i = (size_t)hash_u64(key) & t->merge_mask;
    for (;;) {
        const merge_slot *s = &t->merge_slots[i];
        if (s->key == 0) return NULL;
        if (s->key == key) return s;
        i = (i + 1) & t->merge_mask;
    }
}

static void merge_insert(bn_tokenizer *t, int32_t left, int32_t right, uint32_t rank, int32_t result) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t i = (size_t)hash_u64(key) & t->merge_mask;
    for (;;) {
        merge_slot *s = &t->merge_slots[i];
        if (s->key == key) return; /* a repeated merge keeps its first (best) rank */
        if (s->key == 0) {
            s->key = key;
            s->rank = rank;
            s->result = result;
            return;
        }
        i = (i + 1) & t->merge_mask;
    }
}

/* ---- construction ---- */

static const char *const PATTERN_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const PATTERN_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* llama.cpp's split for BPE vocabularies without a known `pre` (each pattern refines the pieces
 * of the one before; text between matches is kept as a piece). */
static const char *const PATTERNS_LLAMACPP_DEFAULT[4] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
};

const char *bn_tokenizer_pre_name(bn_pretokenizer pre) {
    switch (pre) {
    case BN_PRE_AUTO: return "auto";
    case BN_PRE_LLAMA3: return "llama3";
    case BN_PRE_GPT2: return "gpt2";
    case BN_PRE_LLAMACPP_DEFAULT: return "llamacpp-default";
    case BN_PRE_NONE: return "none";
    }
    return "?";
}

bn_pretokenizer bn_tokenizer_pre_from_name(const char *name, size_t len) {
    static const struct {
        const char *name;
        bn_pretokenizer pre;
    } known[] = {
        {"llama3", BN_PRE_LLAMA3},   {"llama-bpe", BN_PRE_LLAMA3}, {"llama-v3", BN_PRE_LLAMA3},
        {"falcon3", BN_PRE_LLAMA3},  {"gpt2", BN_PRE_GPT2},        {"gpt-2", BN_PRE_GPT2},
        {"default", BN_PRE_LLAMACPP_DEFAULT}, {"llamacpp-default", BN_PRE_LLAMACPP_DEFAULT},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == len && memcmp(known[i].name, name, len) == 0) return known[i].pre;
    return BN_PRE_AUTO;
}

static bn_status compile_patterns(bn_tokenizer *t, bn_error *err) {
    const char *list[N_PRE_PATTERNS_MAX];
    size_t n = 0;
    switch (t->pre) {
    case BN_PRE_LLAMA3: list[n++] = PATTERN_LLAMA3; break;
    case BN_PRE_GPT2: list[n++] = PATTERN_GPT2; break;
    case BN_PRE_LLAMACPP_DEFAULT:
        for (size_t i = 0; i < 4; i++) list[n++] = PATTERNS_LLAMACPP_DEFAULT[i];
        break;
    case BN_PRE_NONE: return BN_OK; /* SentencePiece */
    case BN_PRE_AUTO: return bn_error_set(err, BN_ERR_INVALID, "tokenizer: pre-tokenizer not resolved");
    }
    for (size_t i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE offset;
        t->patterns[i] = pcre2_compile((PCRE2_SPTR)list[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                       &code, &offset, NULL);
        if (!t->patterns[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return bn_error_set(err, BN_ERR_STATE, "tokenizer: compiling pattern %zu at %zu: %s", i,
                                (size_t)offset, (const char *)msg);
        }
        t->n_patterns = i + 1;
        /* JIT is an optimisation only: without it pcre2_match interprets. */
        (void)pcre2_jit_compile(t->patterns[i], PCRE2_JIT_COMPLETE);
    }
    return BN_OK;
}

/* Decodes a stored byte-level token text into the bytes it stands for. Characters outside the
 * mapping (not produced by byte-level vocabularies) are kept as their UTF-8 bytes. Returns the
 * number of bytes written to dst (dst holds at least len bytes: decoding never grows). */
static size_t byte_level_decode(uint8_t *dst, const uint8_t *src, size_t len, const int16_t map[324]) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int r = bn_tokenizer_utf8_classify(src + i, len - i, &cp);
        if (r <= 0) {
            dst[o++] = src[i++];
            continue;
        }
        if (cp < 324 && map[cp] >= 0) {
            dst[o++] = (uint8_t)map[cp];
        } else {
            memcpy(dst + o, src + i, (size_t)r);
            o += (size_t)r;
        }
        i += (size_t)r;
    }
    return o;
}

static bool type_is_bpe(int32_t type) {
    return type == BN_TOKEN_NORMAL || type == BN_TOKEN_UNDEFINED || type == BN_TOKEN_BYTE ||
           type == BN_TOKEN_UNKNOWN;
}

static int compare_specials(const void *a, const void *b, void *ctx);

/* Arrays of (pointer, length) shared by both constructors. */
typedef struct raw_vocab {
    const char *const *tokens;
    const size_t *token_lens;
    const int32_t *types; /* NULL: normal */
    uint32_t n_tokens;
    const char *const *merges;
    const size_t *merge_lens;
    uint32_t n_merges;
    const float *scores; /* SentencePiece */
    int32_t bos, eos, eot, unk;
    int add_bos;
    int add_space_prefix; /* SentencePiece: -1 default (true) */
    const char *pre;      /* not NUL-terminated, or NULL */
    size_t pre_len;
    bn_tokenizer_model_kind kind;
} raw_vocab;

static bn_pretokenizer resolve_pre(const raw_vocab *rv, const bn_tokenizer_options *opts,
                                   bn_error *err, bn_status *status) {
    *status = BN_OK;
    if (rv->kind == BN_TOKENIZER_SPM) {
        /* llama.cpp ignores tokenizer.ggml.pre for SentencePiece; an override is a mistake. */
        if (opts && opts->pre != BN_PRE_AUTO && opts->pre != BN_PRE_NONE)
            *status = bn_error_set(err, BN_ERR_INVALID,
                                   "tokenizer: pre-tokenizer '%s' does not apply to a SentencePiece vocabulary",
                                   bn_tokenizer_pre_name(opts->pre));
        return BN_PRE_NONE;
    }
    if (opts && opts->pre == BN_PRE_NONE) {
        *status = bn_error_set(err, BN_ERR_INVALID,
                               "tokenizer: pre-tokenizer 'none' applies to SentencePiece vocabularies only");
        return BN_PRE_AUTO;
    }
    if (opts && opts->pre != BN_PRE_AUTO) return opts->pre;
    if (!rv->pre) return BN_PRE_LLAMA3;
    bn_pretokenizer pre = bn_tokenizer_pre_from_name(rv->pre, rv->pre_len);
    if (pre == BN_PRE_AUTO) {
        char quoted[BN_GGUF_QUOTE_MAX];
        *status = bn_error_set(err, BN_ERR_UNSUPPORTED, "tokenizer.ggml.pre: unsupported pre-tokenizer '%s' (known: %s)",
                               bn_gguf_string_quote((bn_gguf_string){rv->pre_len, rv->pre}, quoted, sizeof quoted),
                               BN_TOKENIZER_PRE_NAMES);
    }
    return pre;
}

/* Byte-level BPE: the merges as (left id, right id) -> (rank, result id). */
static bn_status build_merges(bn_tokenizer *t, const raw_vocab *rv, const int16_t map[324], bn_error *err) {
    uint8_t *scratch = NULL;
    size_t scratch_cap = 0;
    bn_status st = BN_OK;
    /* "left right" in byte-level form, split at the first space after the first byte. */
    for (uint32_t r = 0; r < rv->n_merges && st == BN_OK; r++) {
        const char *m = rv->merges[r];
        size_t len = rv->merge_lens[r];
        const char *space = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        char quoted[BN_GGUF_QUOTE_MAX];
        if (!space || space + 1 == m + len) {
            st = bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.merges[%u]: not \"left right\": '%s'", r,
                              bn_gguf_string_quote((bn_gguf_string){len, m}, quoted, sizeof quoted));
            break;
        }
        if (len > scratch_cap) {
            uint8_t *grown = realloc(scratch, len);
            if (!grown) {
                st = bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            scratch = grown;
            scratch_cap = len;
        }
        size_t left_len = (size_t)(space - m);
        size_t lb = byte_level_decode(scratch, (const uint8_t *)m, left_len, map);
        size_t rb = byte_level_decode(scratch + lb, (const uint8_t *)space + 1, len - left_len - 1, map);
        int32_t left = bn_tokenizer_vocab_lookup(t, scratch, lb);
        int32_t right = bn_tokenizer_vocab_lookup(t, scratch + lb, rb);
        int32_t result = bn_tokenizer_vocab_lookup(t, scratch, lb + rb);
        if (left < 0 || right < 0 || result < 0) {
            st = bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.merges[%u]: '%s' uses a token missing from the vocabulary",
                              r, bn_gguf_string_quote((bn_gguf_string){len, m}, quoted, sizeof quoted));
            break;
        }
        merge_insert(t, left, right, r, result);
    }
    free(scratch);
    return st;
}

/* The lookup hash: BPE over the pieces merges may produce (first id wins); SentencePiece over
 * every piece, which must be non-empty and unique. */
static bn_status build_vocab_hash(bn_tokenizer *t, bn_error *err) {
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        size_t len;
        if (t->kind == BN_TOKENIZER_BPE) {
            if (!type_is_bpe(t->types[i])) continue;
            const uint8_t *b = tok_bytes(t, (int32_t)i, &len);
            if (len == 0) continue;
            vocab_insert(t, (int32_t)i);
            if (len == 1 && t->byte_token[b[0]] < 0) t->byte_token[b[0]] = (int32_t)i;
            continue;
        }
        const uint8_t *text = vocab_key(t, (int32_t)i, &len);
        if (len == 0) return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens[%u]: empty piece", i);
        int32_t first = vocab_insert(t, (int32_t)i);
        if (first >= 0) {
            char quoted[BN_GGUF_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens[%u]: piece '%s' is also id %d", i,
                                bn_gguf_string_quote((bn_gguf_string){len, (const char *)text}, quoted, sizeof quoted),
                                first);
        }
    }
    return BN_OK;
}

/* Special tokens, longest first so that matching takes the longest at each position: control
 * and user-defined tokens, and SentencePiece's unknown piece (matched like a control token, as
 * llama.cpp does). */
static bool is_special(const bn_tokenizer *t, uint32_t id) {
    int32_t type = t->types[id];
    bool special = type == BN_TOKEN_CONTROL || type == BN_TOKEN_USER_DEFINED ||
                   (t->kind == BN_TOKENIZER_SPM && type == BN_TOKEN_UNKNOWN);
    return special && t->text_off[id + 1] - t->text_off[id] > 1;
}

static bn_status build_specials(bn_tokenizer *t, bn_error *err) {
    size_t n = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) n += is_special(t, i);
    t->specials = malloc((n ? n : 1) * sizeof *t->specials);
    if (!t->specials) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        if (!is_special(t, i)) continue;
        bool control = t->types[i] != BN_TOKEN_USER_DEFINED;
        t->specials[t->n_specials].id = (int32_t)i;
        t->specials[t->n_specials].control = control;
        t->n_specials++;
        t->special_first[t->bytes[t->bytes_off[i]]] |= control ? 2 : 1;
    }
    qsort_r(t->specials, t->n_specials, sizeof *t->specials, compare_specials, t);
    return BN_OK;
}

/* An optional special id: -1 stays none, anything else must be a token. */
static bn_status check_id(int32_t id, uint32_t n, const char *key, int32_t *out, bn_error *err) {
    *out = -1;
    if (id < 0) return BN_OK;
    if ((uint32_t)id >= n) return bn_error_set(err, BN_ERR_FORMAT, "%s: %d is outside the vocabulary (%u)", key, id, n);
    *out = id;
    return BN_OK;
}

static bn_status build(bn_tokenizer **out, const raw_vocab *rv, const bn_tokenizer_options *opts,
                       bn_error *err) {
    *out = NULL;
    if (rv->n_tokens == 0) return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens: empty vocabulary");
    if (rv->n_tokens > (uint32_t)INT32_MAX - 1)
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens: %u tokens is too many", rv->n_tokens);
    bn_status st;
    bn_pretokenizer pre = resolve_pre(rv, opts, err, &st);
    if (st != BN_OK) return st;

    bn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    t->kind = rv->kind;
    t->n_tokens = rv->n_tokens;
    t->pre = pre;
    t->ignore_merges = pre == BN_PRE_LLAMA3;
    uint32_t n = rv->n_tokens;
    uint32_t n_merges = t->kind == BN_TOKENIZER_BPE ? rv->n_merges : 0;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = rv->token_lens[i];
        if (len > SIZE_MAX / 2 - total - 1) {
            st = bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens: sizes overflow");
            goto fail;
        }
        total += len + 1;
    }
    t->types = malloc(n * sizeof *t->types);
    t->text = malloc(total);
    t->text_off = malloc((n + (size_t)1) * sizeof *t->text_off);
    t->bytes = malloc(total);
    t->bytes_off = malloc((n + (size_t)1) * sizeof *t->bytes_off);
    size_t vocab_size = table_size_for(n);
    t->vocab_slots = calloc(vocab_size, sizeof *t->vocab_slots);
    t->vocab_mask = vocab_size - 1;
    size_t merge_size = table_size_for(n_merges);
    t->merge_slots = calloc(merge_size, sizeof *t->merge_slots);
    t->merge_mask = merge_size - 1;
    if (!t->types || !t->text || !t->text_off || !t->bytes || !t->bytes_off || !t->vocab_slots ||
        !t->merge_slots) {
        st = bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory for %u tokens", n);
        goto fail;
    }

    int16_t map[324];
    build_unicode_to_byte(map);
    size_t text_pos = 0, bytes_pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        int32_t type = rv->types ? rv->types[i] : BN_TOKEN_NORMAL;
        if (type < BN_TOKEN_UNDEFINED || type > BN_TOKEN_BYTE) {
            st = bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.token_type[%u]: invalid type %d", i, type);
            goto fail;
        }
        t->types[i] = type;
        size_t len = rv->token_lens[i];
        const uint8_t *src = (const uint8_t *)rv->tokens[i];
        t->text_off[i] = text_pos;
        memcpy(t->text + text_pos, src, len);
        t->text[text_pos + len] = '\0';
        text_pos += len + 1;
        t->bytes_off[i] = bytes_pos;
        if (t->kind == BN_TOKENIZER_SPM) {
            bytes_pos += bn_spm_piece_bytes(t->bytes + bytes_pos, src, len, type);
        } else if (type == BN_TOKEN_CONTROL || type == BN_TOKEN_USER_DEFINED) {
            memcpy(t->bytes + bytes_pos, src, len);
            bytes_pos += len;
        } else {
            bytes_pos += byte_level_decode(t->bytes + bytes_pos, src, len, map);
        }
    }
    t->text_off[n] = text_pos;
    t->bytes_off[n] = bytes_pos;

    st = build_vocab_hash(t, err);
    if (st == BN_OK && t->kind == BN_TOKENIZER_BPE) st = build_merges(t, rv, map, err);
    if (st == BN_OK && t->kind == BN_TOKENIZER_SPM) st = bn_spm_prepare(t, rv->scores, err);
    if (st == BN_OK) st = build_specials(t, err);
    if (st == BN_OK) st = check_id(rv->bos, n, "tokenizer.ggml.bos_token_id", &t->bos, err);
    if (st == BN_OK) st = check_id(rv->eos, n, "tokenizer.ggml.eos_token_id", &t->eos, err);
    if (st == BN_OK) st = check_id(rv->unk, n, "tokenizer.ggml.unknown_token_id", &t->unk, err);
    if (st == BN_OK) st = check_id(rv->eot, n, "tokenizer.ggml.eot_token_id", &t->eot, err);
    if (st != BN_OK) goto fail;
    if (t->kind == BN_TOKENIZER_BPE) t->unk = -1; /* byte-level BPE spells every byte */
    if (rv->eot < 0) t->eot = bn_tokenizer_find(t, "<|eot_id|>");
    t->add_bos = rv->add_bos < 0 ? t->bos >= 0 : (rv->add_bos && t->bos >= 0);
    t->add_space_prefix = t->kind == BN_TOKENIZER_SPM && rv->add_space_prefix != 0;

    st = compile_patterns(t, err);
    if (st != BN_OK) goto fail;
    *out = t;
    return BN_OK;
fail:
    bn_tokenizer_free(t);
    return st;
}

static int compare_specials(const void *a, const void *b, void *ctx) {
    const bn_tokenizer *t = ctx;
    const special_token *x = a, *y = b;
    size_t lx = t->bytes_off[x->id + 1] - t->bytes_off[x->id];
    size_t ly = t->bytes_off[y->id + 1] - t->bytes_off[y->id];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void bn_tokenizer_free(bn_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_patterns; i++) pcre2_code_free(t->patterns[i]);
    free(t->types);
    free(t->text);
    free(t->text_off);
    free(t->bytes);
    free(t->bytes_off);
    free(t->vocab_slots);
    free(t->merge_slots);
    free(t->scores);
    free(t->specials);
    free(t);
}

/* The algorithm of a tokenizer.ggml.model value; false when unknown. */
static bool model_kind(const char *name, size_t len, bn_tokenizer_model_kind *kind) {
    if (len == 4 && memcmp(name, "gpt2", 4) == 0) *kind = BN_TOKENIZER_BPE;
    else if (len == 5 && memcmp(name, "llama", 5) == 0) *kind = BN_TOKENIZER_SPM;
    else return false;
    return true;
}

bn_status bn_tokenizer_from_vocab(bn_tokenizer **out, const bn_tokenizer_vocab *v,
                                  const bn_tokenizer_options *opts, bn_error *err) {
    *out = NULL;
    bn_tokenizer_model_kind kind = BN_TOKENIZER_BPE;
    if (v->model && !model_kind(v->model, strlen(v->model), &kind))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "tokenizer: model '%s' is not supported (gpt2, llama)", v->model);
    size_t *token_lens = malloc((v->n_tokens ? v->n_tokens : 1) * sizeof *token_lens);
    size_t *merge_lens = malloc((v->n_merges ? v->n_merges : 1) * sizeof *merge_lens);
    if (!token_lens || !merge_lens) {
        free(token_lens);
        free(merge_lens);
        return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (uint32_t i = 0; i < v->n_tokens; i++)
        token_lens[i] = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
    for (uint32_t i = 0; i < v->n_merges; i++) merge_lens[i] = strlen(v->merges[i]);
    raw_vocab rv = {
        .tokens = v->tokens, .token_lens = token_lens, .types = v->token_types, .n_tokens = v->n_tokens,
        .merges = v->merges, .merge_lens = merge_lens, .n_merges = v->n_merges, .scores = v->scores,
        .bos = v->bos_id, .eos = v->eos_id, .eot = v->eot_id, .unk = v->unk_id, .add_bos = v->add_bos,
        .add_space_prefix = v->add_space_prefix, .pre = v->pre, .pre_len = v->pre ? strlen(v->pre) : 0,
        .kind = kind,
    };
    bn_status st = build(out, &rv, opts, err);
    free(token_lens);
    free(merge_lens);
    return st;
}

/* Optional integer id key. Absent: dflt when that is a token (llama.cpp's SentencePiece
 * defaults), else -1. */
static bn_status gguf_optional_id(const bn_gguf *g, const char *key, int32_t dflt, uint32_t n, int32_t *out,
                                  bn_error *err) {
    *out = dflt >= 0 && (uint32_t)dflt < n ? dflt : -1;
    if (!bn_gguf_find_kv(g, key)) return BN_OK;
    uint32_t v;
    bn_status st = bn_gguf_get_u32(g, key, &v, err);
    if (st != BN_OK) return st;
    if (v > INT32_MAX) return bn_error_set(err, BN_ERR_FORMAT, "%s: %u is out of range", key, v);
    *out = (int32_t)v;
    return BN_OK;
}

/* Optional boolean key: -1 when absent. */
static bn_status gguf_optional_bool(const bn_gguf *g, const char *key, int *out, bn_error *err) {
    *out = -1;
    if (!bn_gguf_find_kv(g, key)) return BN_OK;
    bool v;
    bn_status st = bn_gguf_get_bool(g, key, &v, err);
    if (st == BN_OK) *out = v;
    return st;
}

/* tokenizer.ggml.scores as floats (float32 or int32 elements, as llama.cpp reads them), one per
 * token; *out (caller frees) stays NULL when the key is absent. */
static bn_status gguf_scores(const bn_gguf *g, uint32_t n, float **out, bn_error *err) {
    *out = NULL;
    if (!bn_gguf_find_kv(g, "tokenizer.ggml.scores")) return BN_OK;
    const bn_gguf_array *scores;
    bn_status st = bn_gguf_get_array(g, "tokenizer.ggml.scores", BN_GGUF_TYPE_COUNT, &scores, err);
    if (st != BN_OK) return st;
    if (scores->elem_type != BN_GGUF_FLOAT32 && scores->elem_type != BN_GGUF_INT32)
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.scores: elements are %s, not float32",
                            bn_gguf_type_name(scores->elem_type));
    if (scores->count != n)
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.scores: %llu scores for %u tokens",
                            (unsigned long long)scores->count, n);
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory for %u scores", n);
    for (uint32_t i = 0; i < n; i++) (*out)[i] = (float)bn_gguf_array_f64(scores, i);
    return BN_OK;
}

bn_status bn_tokenizer_from_gguf(bn_tokenizer **out, const bn_gguf *g, const bn_tokenizer_options *opts,
                                 bn_error *err) {
    *out = NULL;
    bn_gguf_string model;
    bn_status st = bn_gguf_get_string(g, "tokenizer.ggml.model", &model, err);
    if (st != BN_OK) return st;
    raw_vocab rv = {.add_bos = -1, .add_space_prefix = -1};
    if (!model_kind(model.data, (size_t)model.len, &rv.kind)) {
        char quoted[BN_GGUF_QUOTE_MAX];
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "tokenizer.ggml.model: '%s' is not supported (gpt2: byte-level BPE, llama: SentencePiece)",
                            bn_gguf_string_quote(model, quoted, sizeof quoted));
    }
    const bool spm = rv.kind == BN_TOKENIZER_SPM;
    const bn_gguf_array *tokens;
    st = bn_gguf_get_array(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, &tokens, err);
    if (st != BN_OK) return st;
    if (tokens->count > (uint64_t)INT32_MAX - 1)
        return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.tokens: %llu tokens is too many",
                            (unsigned long long)tokens->count);
    uint32_t n = (uint32_t)tokens->count;
    rv.n_tokens = n;
    const bn_gguf_array *merges = NULL;
    if (!spm && bn_gguf_find_kv(g, "tokenizer.ggml.merges")) { /* SentencePiece has no merges */
        st = bn_gguf_get_array(g, "tokenizer.ggml.merges", BN_GGUF_STRING, &merges, err);
        if (st != BN_OK) return st;
        if (merges->count > UINT32_MAX)
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.merges: too many merges");
        rv.n_merges = (uint32_t)merges->count;
    }
    const bn_gguf_array *types = NULL;
    if (bn_gguf_find_kv(g, "tokenizer.ggml.token_type")) {
        st = bn_gguf_get_array(g, "tokenizer.ggml.token_type", BN_GGUF_TYPE_COUNT, &types, err);
        if (st != BN_OK) return st;
        bn_gguf_type et = types->elem_type;
        if (et == BN_GGUF_STRING || et == BN_GGUF_ARRAY || et == BN_GGUF_FLOAT32 || et == BN_GGUF_FLOAT64 ||
            et == BN_GGUF_BOOL)
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.token_type: elements are %s, not integers",
                                bn_gguf_type_name(et));
        if (types->count != n)
            return bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.token_type: %llu entries for %u tokens",
                                (unsigned long long)types->count, n);
    }
    st = gguf_optional_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n, &rv.bos, err);
    if (st == BN_OK) st = gguf_optional_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n, &rv.eos, err);
    if (st == BN_OK) st = gguf_optional_id(g, "tokenizer.ggml.eot_token_id", -1, n, &rv.eot, err);
    if (st == BN_OK && spm) st = gguf_optional_id(g, "tokenizer.ggml.unknown_token_id", 0, n, &rv.unk, err);
    if (st == BN_OK) st = gguf_optional_bool(g, "tokenizer.ggml.add_bos_token", &rv.add_bos, err);
    if (st == BN_OK && spm) st = gguf_optional_bool(g, "tokenizer.ggml.add_space_prefix", &rv.add_space_prefix, err);
    if (st != BN_OK) return st;
    if (!spm && bn_gguf_find_kv(g, "tokenizer.ggml.pre")) { /* llama.cpp ignores it for SentencePiece */
        bn_gguf_string pre;
        st = bn_gguf_get_string(g, "tokenizer.ggml.pre", &pre, err);
        if (st != BN_OK) return st;
        rv.pre = pre.data;
        rv.pre_len = (size_t)pre.len;
    }

    float *scores = NULL;
    if (spm) {
        st = gguf_scores(g, n, &scores, err);
        if (st != BN_OK) return st;
    }
    const char **tok_ptrs = malloc((n ? n : 1) * sizeof *tok_ptrs);
    size_t *tok_lens = malloc((n ? n : 1) * sizeof *tok_lens);
    int32_t *tok_types = types ? malloc((n ? n : 1) * sizeof *tok_types) : NULL;
    const char **merge_ptrs = malloc((rv.n_merges ? rv.n_merges : 1) * sizeof *merge_ptrs);
    size_t *merge_lens = malloc((rv.n_merges ? rv.n_merges : 1) * sizeof *merge_lens);
    if (!tok_ptrs || !tok_lens || (types && !tok_types) || !merge_ptrs || !merge_lens) {
        st = bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        tok_ptrs[i] = tokens->strings[i].data;
        tok_lens[i] = (size_t)tokens->strings[i].len;
        if (types) {
            int64_t v = bn_gguf_array_i64(types, i);
            if (v < BN_TOKEN_UNDEFINED || v > BN_TOKEN_BYTE) {
                st = bn_error_set(err, BN_ERR_FORMAT, "tokenizer.ggml.token_type[%u]: invalid type %lld (0..6)", i,
                                  (long long)v);
                goto done;
            }
            tok_types[i] = (int32_t)v;
        }
    }
    for (uint32_t i = 0; i < rv.n_merges; i++) {
        merge_ptrs[i] = merges->strings[i].data;
        merge_lens[i] = (size_t)merges->strings[i].len;
    }
    rv.tokens = tok_ptrs;
    rv.token_lens = tok_lens;
    rv.types = tok_types;
    rv.merges = merge_ptrs;
    rv.merge_lens = merge_lens;
    rv.scores = scores;
    st = build(out, &rv, opts, err);
done:
    free(scores);
    free(tok_ptrs);
    free(tok_lens);
    free(tok_types);
    free(merge_ptrs);
    free(merge_lens);
    return st;
}

/* ---- accessors ---- */

uint32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t->n_tokens; }
bn_tokenizer_model_kind bn_tokenizer_model(const bn_tokenizer *t) { return t->kind; }
int32_t bn_tokenizer_bos(const bn_tokenizer *t) { return t->bos; }
int32_t bn_tokenizer_eos(const bn_tokenizer *t) { return t->eos; }
int32_t bn_tokenizer_eot(const bn_tokenizer *t) { return t->eot; }
int32_t bn_tokenizer_unk(const bn_tokenizer *t) { return t->unk; }
bool bn_tokenizer_add_bos(const bn_tokenizer *t) { return t->add_bos; }
bool bn_tokenizer_add_space_prefix(const bn_tokenizer *t) { return t->add_space_prefix; }
bn_pretokenizer bn_tokenizer_pre(const bn_tokenizer *t) { return t->pre; }

static bool id_valid(const bn_tokenizer *t, int32_t id) { return id >= 0 && (uint32_t)id < t->n_tokens; }

float bn_tokenizer_score(const bn_tokenizer *t, int32_t id) {
    return t->scores && id_valid(t, id) ? t->scores[id] : 0.0f;
}

bool bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id) {
    return id >= 0 && (id == t->eos || id == t->eot);
}

bn_token_type bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id) {
    return id_valid(t, id) ? (bn_token_type)t->types[id] : BN_TOKEN_UNDEFINED;
}

const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!id_valid(t, id)) return NULL;
    if (len) *len = t->text_off[id + 1] - t->text_off[id] - 1;
    return t->text + t->text_off[id];
}

const uint8_t *bn_tokenizer_token_bytes(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!id_valid(t, id)) return NULL;
    size_t l;
    const uint8_t *b = tok_bytes(t, id, &l);
    if (len) *len = l;
    return b;
}

int32_t bn_tokenizer_find(const bn_tokenizer *t, const char *text) {
    size_t len = strlen(text);
    for (uint32_t i = 0; i < t->n_tokens; i++)
        if (t->text_off[i + 1] - t->text_off[i] == len + 1 && memcmp(t->text + t->text_off[i], text, len) == 0)
            return (int32_t)i;
    return -1;
}

/* ---- token lists ---- */

bn_tokens bn_tokens_fixed(int32_t *storage, size_t cap) {
    bn_tokens t = {.ids = storage, .n = 0, .cap = cap, .fixed = true};
    return t;
}

void bn_tokens_free(bn_tokens *tokens) {
    if (!tokens->fixed) free(tokens->ids);
    tokens->ids = NULL;
    tokens->n = tokens->cap = 0;
}

bn_status bn_tokens_push(bn_tokens *tokens, int32_t id, bn_error *err) {
    if (tokens->n == tokens->cap) {
        if (tokens->fixed)
            return bn_error_set(err, BN_ERR_RANGE, "tokenizer: more than %zu tokens", tokens->cap);
        size_t cap = tokens->cap ? tokens->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *tokens->ids) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: too many tokens");
        int32_t *grown = realloc(tokens->ids, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        tokens->ids = grown;
        tokens->cap = cap;
    }
    tokens->ids[tokens->n++] = id;
    return BN_OK;
}

/* ---- encoding ---- */

typedef struct bpe_symbol {
    int32_t id;
    uint32_t len; /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} bpe_symbol;

typedef struct bpe_pair {
    uint32_t rank;
    int32_t left, right;
    uint32_t len; /* len(left) + len(right) when pushed: detects stale pairs */
} bpe_pair;

typedef struct range {
    size_t start, end;
} range;

/* Scratch space for one encode call (never shared between threads). */
typedef struct encoder {
    const bn_tokenizer *tok;
    bn_tokens *out;
    bn_error *err;
    bpe_symbol *symbols;
    size_t symbols_cap;
    bpe_pair *heap;
    size_t heap_n, heap_cap;
    range *ranges[2];
    size_t ranges_cap[2];
    pcre2_match_data *match;
    bn_spm_scratch spm;
} encoder;

static bool pair_less(const bpe_pair *a, const bpe_pair *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static bn_status heap_push(encoder *e, bpe_pair p) {
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        bpe_pair *grown = realloc(e->heap, cap * sizeof *grown);
        if (!grown) return bn_error_set(e->err, BN_ERR_NOMEM, "tokenizer: out of memory");
        e->heap = grown;
        e->heap_cap = cap;
    }
    size_t i = e->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = p;
    return BN_OK;
}

static bpe_pair heap_pop(encoder *e) {
    bpe_pair top = e->heap[0];
    bpe_pair last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&e->heap[c + 1], &e->heap[c])) c++;
        if (!pair_less(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

static bn_status try_pair(encoder *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return BN_OK;
    const merge_slot *m = merge_lookup(e->tok, e->symbols[left].id, e->symbols[right].id);
    if (!m) return BN_OK;
    bpe_pair p = {m->rank, left, right, e->symbols[left].len + e->symbols[right].len};
    return heap_push(e, p);
}

/* Encodes one pre-token (n > 0 bytes). */
static bn_status encode_word(encoder *e, const uint8_t *p, size_t n) {
    const bn_tokenizer *t = e->tok;
    if (n == 1 || t->ignore_merges) {
        int32_t id = bn_tokenizer_vocab_lookup(t, p, n);
        if (id >= 0) return bn_tokens_push(e->out, id, e->err);
    }
    if (n > UINT32_MAX / 2) return bn_error_set(e->err, BN_ERR_RANGE, "tokenizer: pre-token of %zu bytes", n);
    if (n > e->symbols_cap) {
        bpe_symbol *grown = realloc(e->symbols, n * sizeof *grown);
        if (!grown) return bn_error_set(e->err, BN_ERR_NOMEM, "tokenizer: out of memory");
        e->symbols = grown;
        e->symbols_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_token[p[i]];
        if (id < 0)
            return bn_error_set(e->err, BN_ERR_UNSUPPORTED, "tokenizer: the vocabulary has no token for byte 0x%02x",
                                p[i]);
        e->symbols[i] = (bpe_symbol){id, 1, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    }
    e->heap_n = 0;
    bn_status st = BN_OK;
    for (size_t i = 0; i + 1 < n && st == BN_OK; i++) st = try_pair(e, (int32_t)i, (int32_t)i + 1);
    while (st == BN_OK && e->heap_n > 0) {
        bpe_pair pr = heap_pop(e);
        bpe_symbol *l = &e->symbols[pr.left], *r = &e->symbols[pr.right];
        if (l->len == 0 || r->len == 0 || l->next != pr.right || l->len + r->len != pr.len) continue;
        l->id = merge_lookup(t, l->id, r->id)->result;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) e->symbols[r->next].prev = pr.left;
        r->len = 0;
        st = try_pair(e, l->prev, pr.left);
        if (st == BN_OK) st = try_pair(e, pr.left, l->next);
    }
    for (int32_t i = 0; st == BN_OK && i >= 0; i = e->symbols[i].next)
        st = bn_tokens_push(e->out, e->symbols[i].id, e->err);
    return st;
}

static bn_status ranges_reserve(encoder *e, int which, size_t n) {
    if (n <= e->ranges_cap[which]) return BN_OK;
    size_t cap = e->ranges_cap[which] ? e->ranges_cap[which] : 16;
    while (cap < n) cap *= 2;
    range *grown = realloc(e->ranges[which], cap * sizeof *grown);
    if (!grown) return bn_error_set(e->err, BN_ERR_NOMEM, "tokenizer: out of memory");
    e->ranges[which] = grown;
    e->ranges_cap[which] = cap;
    return BN_OK;
}

/* Splits [start, end) of s by a pattern: matches and the text between them become pieces,
 * appended to ranges[which]. */
static bn_status split_with(encoder *e, pcre2_code *re, const uint8_t *s, range in, int which, size_t *n_out) {
    size_t pos = in.start, n = *n_out;
    const uint8_t *subject = s + in.start;
    size_t subject_len = in.end - in.start;
    while (pos < in.end) {
        int rc = pcre2_match(re, subject, subject_len, pos - in.start, PCRE2_NO_UTF_CHECK, e->match, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, subject, subject_len, pos - in.start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             e->match, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return bn_error_set(e->err, BN_ERR_RANGE, "tokenizer: pre-tokenizer failed at byte %zu: %s", pos,
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match);
        size_t ms = in.start + ov[0], me = in.start + ov[1];
        if (ms > pos) {
            bn_status st = ranges_reserve(e, which, n + 1);
            if (st != BN_OK) return st;
            e->ranges[which][n++] = (range){pos, ms};
        }
        if (me == ms) { /* empty match: step over one character (keeps it with the next gap) */
            int len = bn_tokenizer_utf8_classify(s + me, in.end - me, NULL);
            pos = me;
            if (me >= in.end) break;
            size_t step = len > 0 ? (size_t)len : 1;
            bn_status st = ranges_reserve(e, which, n + 1);
            if (st != BN_OK) return st;
            e->ranges[which][n++] = (range){me, me + step};
            pos = me + step;
            continue;
        }
        bn_status st = ranges_reserve(e, which, n + 1);
        if (st != BN_OK) return st;
        e->ranges[which][n++] = (range){ms, me};
        pos = me;
    }
    if (pos < in.end) {
        bn_status st = ranges_reserve(e, which, n + 1);
        if (st != BN_OK) return st;
        e->ranges[which][n++] = (range){pos, in.end};
    }
    *n_out = n;
    return BN_OK;
}

/* Pre-tokenizes and encodes a run of valid UTF-8. */
static bn_status encode_valid_run(encoder *e, const uint8_t *s, size_t start, size_t end) {
    const bn_tokenizer *t = e->tok;
    bn_status st = ranges_reserve(e, 0, 1);
    if (st != BN_OK) return st;
    e->ranges[0][0] = (range){start, end};
    size_t n = 1;
    int cur = 0;
    for (size_t p = 0; p < t->n_patterns; p++) {
        size_t n_next = 0;
        for (size_t i = 0; i < n; i++) {
            st = split_with(e, t->patterns[p], s, e->ranges[cur][i], 1 - cur, &n_next);
            if (st != BN_OK) return st;
        }
        cur = 1 - cur;
        n = n_next;
    }
    for (size_t i = 0; i < n; i++) {
        range r = e->ranges[cur][i];
        st = encode_word(e, s + r.start, r.end - r.start);
        if (st != BN_OK) return st;
    }
    return BN_OK;
}

/* Encodes text without special tokens: valid UTF-8 runs through the pre-tokenizer, each byte of
 * an invalid sequence on its own. */
static bn_status encode_plain(encoder *e, const uint8_t *s, size_t start, size_t end) {
    size_t run = start, i = start;
    while (i < end) {
        int r = bn_tokenizer_utf8_classify(s + i, end - i, NULL);
        if (r > 0) {
            i += (size_t)r;
            continue;
        }
        if (i > run) {
            bn_status st = encode_valid_run(e, s, run, i);
            if (st != BN_OK) return st;
        }
        bn_status st = encode_word(e, s + i, 1);
        if (st != BN_OK) return st;
        i++;
        run = i;
    }
    if (end > run) return encode_valid_run(e, s, run, end);
    return BN_OK;
}

/* Longest special token starting at s (id, or -1). */
static int32_t match_special(const bn_tokenizer *t, const uint8_t *s, size_t n, bool parse_special,
                             size_t *len) {
    uint8_t want = parse_special ? 3 : 1;
    if (!(t->special_first[s[0]] & want)) return -1;
    for (size_t i = 0; i < t->n_specials; i++) {
        const special_token *sp = &t->specials[i];
        if (sp->control && !parse_special) continue;
        size_t l;
        const uint8_t *b = tok_bytes(t, sp->id, &l);
        if (l <= n && memcmp(b, s, l) == 0) {
            *len = l;
            return sp->id;
        }
    }
    return -1;
}

/* Encodes text between special tokens: BPE through the pre-tokenizer; SentencePiece with a ▁
 * in front at the start and after a special token (llama.cpp's rule, and Hugging Face's
 * Prepend normalizer applied to each stretch between added tokens). */
static bn_status encode_text(encoder *e, const uint8_t *s, size_t start, size_t end, bool after_special) {
    const bn_tokenizer *t = e->tok;
    if (t->kind == BN_TOKENIZER_BPE) return encode_plain(e, s, start, end);
    return bn_spm_encode(t, &e->spm, s + start, end - start, t->add_space_prefix && after_special, e->out, e->err);
}

bn_status bn_tokenizer_encode(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                              bool parse_special, bn_tokens *out, bn_error *err) {
    if (!text && len > 0) return bn_error_set(err, BN_ERR_INVALID, "tokenizer: NULL text");
    encoder e = {.tok = t, .out = out, .err = err};
    bn_status st = BN_OK;
    if (add_bos && t->add_bos) st = bn_tokens_push(out, t->bos, err);
    if (st != BN_OK) return st;
    if (t->n_patterns > 0) {
        e.match = pcre2_match_data_create(1, NULL);
        if (!e.match) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    }
    const uint8_t *s = (const uint8_t *)text;
    size_t seg = 0;
    bool after_special = true; /* the start counts as one */
    for (size_t i = 0; i < len && st == BN_OK;) {
        size_t sl;
        int32_t id = t->n_specials ? match_special(t, s + i, len - i, parse_special, &sl) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        if (i > seg) st = encode_text(&e, s, seg, i, after_special);
        if (st == BN_OK) st = bn_tokens_push(out, id, err);
        after_special = true;
        i += sl;
        seg = i;
    }
    if (st == BN_OK && len > seg) st = encode_text(&e, s, seg, len, after_special);
    pcre2_match_data_free(e.match);
    free(e.symbols);
    free(e.heap);
    free(e.ranges[0]);
    free(e.ranges[1]);
    bn_spm_scratch_free(&e.spm);
    return st;
}

/* ---- decoding ---- */

static bn_status buf_reserve(char **buf, size_t *cap, size_t need, bn_error *err) {
    if (need <= *cap) return BN_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: text too long");
        c *= 2;
    }
    char *grown = realloc(*buf, c);
    if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    *buf = grown;
    *cap = c;
    return BN_OK;
}

/* Left out by skip_special: control tokens, and SentencePiece's unknown piece. */
static bool skipped_special(const bn_tokenizer *t, int32_t id) {
    return t->types[id] == BN_TOKEN_CONTROL || (t->kind == BN_TOKENIZER_SPM && t->types[id] == BN_TOKEN_UNKNOWN);
}

bn_status bn_tokenizer_decode(const bn_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                              char **out, size_t *out_len, bn_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    bn_status st = buf_reserve(&buf, &cap, 1, err);
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        if (!id_valid(t, ids[i])) {
            st = bn_error_set(err, BN_ERR_RANGE, "token id %d at position %zu is outside the vocabulary (0..%u)",
                              ids[i], i, t->n_tokens - 1);
            break;
        }
        if (skip_special && skipped_special(t, ids[i])) continue;
        size_t l;
        const uint8_t *b = tok_bytes(t, ids[i], &l);
        st = buf_reserve(&buf, &cap, len + l + 1, err);
        if (st != BN_OK) break;
        memcpy(buf + len, b, l);
        len += l;
    }
    if (st != BN_OK) {
        free(buf);
        return st;
    }
    if (t->add_space_prefix && len > 0 && buf[0] == ' ') { /* the ▁ the encoder put in front */
        memmove(buf, buf + 1, len - 1);
        len--;
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return BN_OK;
}

void bn_detokenizer_init(bn_detokenizer *d, const bn_tokenizer *tok, unsigned flags) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->flags = flags;
}

void bn_detokenizer_free(bn_detokenizer *d) {
    free(d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
    d->n_pending = 0;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Writes the complete characters of pending + (b, n) to d->buf and keeps an incomplete tail. */
static bn_status detok_emit(bn_detokenizer *d, const uint8_t *b, size_t n, bool final, size_t *out_len,
                            bn_error *err) {
    size_t total = d->n_pending + n;
    /* Replacement can triple a byte's size. */
    if (total > (SIZE_MAX - 1) / 3) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: text too long");
    bn_status st = buf_reserve(&d->buf, &d->buf_cap, total * 3 + 1 + 4, err);
    if (st != BN_OK) return st;
    uint8_t *in = malloc(total ? total : 1);
    if (!in) return bn_error_set(err, BN_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(in, d->pending, d->n_pending);
    if (n) memcpy(in + d->n_pending, b, n);
    size_t o = 0, i = 0;
    d->n_pending = 0;
    while (i < total) {
        int r = bn_tokenizer_utf8_classify(in + i, total - i, NULL);
        if (r > 0) {
            memcpy(d->buf + o, in + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        } else if (r < 0 && !final) {
            memcpy(d->pending, in + i, total - i); /* fewer than 4 bytes */
            d->n_pending = total - i;
            break;
        } else {
            /* An invalid byte (or an incomplete character at the end of the stream). */
            if (d->flags & BN_DETOK_REPLACE_INVALID) {
                memcpy(d->buf + o, REPLACEMENT, 3);
                o += 3;
                if (r < 0) break; /* one replacement for the whole truncated character */
            } else {
                d->buf[o++] = (char)in[i];
            }
            i++;
        }
    }
    free(in);
    d->buf[o] = '\0';
    *out_len = o;
    return BN_OK;
}

bn_status bn_detokenizer_push(bn_detokenizer *d, int32_t id, const char **text, size_t *len, bn_error *err) {
    *text = "";
    *len = 0;
    if (!id_valid(d->tok, id))
        return bn_error_set(err, BN_ERR_RANGE, "token id %d is outside the vocabulary (0..%u)", id,
                            d->tok->n_tokens - 1);
    size_t n = 0;
    const uint8_t *b = NULL;
    if (!((d->flags & BN_DETOK_SKIP_SPECIAL) && skipped_special(d->tok, id))) b = tok_bytes(d->tok, id, &n);
    bn_status st = detok_emit(d, b, n, false, len, err);
    if (st != BN_OK) return st;
    *text = d->buf;
    return BN_OK;
}

bn_status bn_detokenizer_flush(bn_detokenizer *d, const char **text, size_t *len, bn_error *err) {
    *text = "";
    *len = 0;
    bn_status st = detok_emit(d, NULL, 0, true, len, err);
    if (st != BN_OK) return st;
    *text = d->buf;
    return BN_OK;
}
