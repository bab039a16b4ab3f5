/*
 * spm_model.c: SentencePiece tokenizer.model -> bn_hf_vocab (see spm_model.h).
 *
 * Design: one cursor type walks a message's bytes [pos, end) inside the whole file (offsets in
 * messages are file offsets); read_field reads one tag and its value, and a length-delimited
 * value becomes a sub-cursor whose end is checked against its parent's. Pieces are collected in
 * a growing array, then checked and moved into the vocabulary in one go.
 */
#include "convert/spm_model.h"

#include "convert/convert_json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };
enum { MODEL_UNIGRAM = 1, MODEL_BPE = 2 };

typedef struct cursor {
    const uint8_t *base; /* the whole file */
    size_t pos, end;     /* this message: base[pos..end) */
    const char *name;
} cursor;

typedef struct field {
    uint32_t number, wire;
    size_t offset;       /* of the tag */
    uint64_t varint;     /* WIRE_VARINT */
    uint32_t fixed32;    /* WIRE_FIXED32 */
    cursor sub;          /* WIRE_LEN: the value's bytes */
} field;

typedef struct spm_piece {
    const uint8_t *text;
    size_t len;
    float score;
    int32_t type;
} spm_piece;

static bn_status read_varint(cursor *c, uint64_t *out, bn_error *err) {
    const size_t start = c->pos;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (c->pos >= c->end)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: truncated varint at byte %zu", c->name, start);
        const uint8_t b = c->base[c->pos++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return BN_OK;
        }
    }
    return bn_error_set(err, BN_ERR_FORMAT, "%s: varint at byte %zu is longer than 10 bytes", c->name, start);
}

/* Reads the next field of c (c->pos < c->end). */
static bn_status read_field(cursor *c, field *f, bn_error *err) {
    memset(f, 0, sizeof *f);
    f->offset = c->pos;
    uint64_t tag;
    bn_status st = read_varint(c, &tag, err);
    if (st != BN_OK) return st;
    f->wire = (uint32_t)(tag & 7);
    if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: invalid field number %llu at byte %zu", c->name,
                            (unsigned long long)(tag >> 3), f->offset);
    f->number = (uint32_t)(tag >> 3);
    const size_t left = c->end - c->pos;
    switch (f->wire) {
    case WIRE_VARINT: return read_varint(c, &f->varint, err);
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
        const size_t n = f->wire == WIRE_FIXED64 ? 8 : 4;
        if (left < n)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: field %u at byte %zu: %zu-byte value runs past the end (%zu "
                                "bytes left)", c->name, f->number, f->offset, n, left);
        if (n == 4)
            f->fixed32 = (uint32_t)c->base[c->pos] | (uint32_t)c->base[c->pos + 1] << 8 |
                         (uint32_t)c->base[c->pos + 2] << 16 | (uint32_t)c->base[c->pos + 3] << 24;
        c->pos += n;
        return BN_OK;
    }
    case WIRE_LEN: {
        uint64_t len;
        if ((st = read_varint(c, &len, err))) return st;
        if (len > c->end - c->pos)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "%s: field %u at byte %zu: length %llu runs past the end of its message (%zu bytes "
                                "left)", c->name, f->number, f->offset, (unsigned long long)len, c->end - c->pos);
        f->sub = (cursor){c->base, c->pos, c->pos + (size_t)len, c->name};
        c->pos += (size_t)len;
        return BN_OK;
    }
    default:
        return bn_error_set(err, BN_ERR_FORMAT, "%s: field %u at byte %zu has wire type %u (%s)", c->name, f->number,
                            f->offset, f->wire, f->wire == 3 || f->wire == 4 ? "groups are not supported" : "invalid");
    }
}

static bn_status want_wire(const cursor *c, const field *f, const char *what, uint32_t wire, bn_error *err) {
    static const char *const wire_names[6] = {"varint", "64-bit", "length-delimited", "", "", "32-bit"};
    if (f->wire == wire) return BN_OK;
    return bn_error_set(err, BN_ERR_FORMAT, "%s: %s (byte %zu) has wire type %u, expected %u (%s)", c->name, what,
                        f->offset, f->wire, wire, wire_names[wire]);
}

/* A varint holding an int32 (negative values are sign-extended to 64 bits on the wire). */
static bn_status varint_int32(const cursor *c, const field *f, const char *what, int32_t *out, bn_error *err) {
    if (f->varint <= INT32_MAX) *out = (int32_t)f->varint;
    else if (f->varint >= (uint64_t)0 - ((uint64_t)1 << 31)) *out = (int32_t)-(int64_t)((uint64_t)0 - f->varint);
    else return bn_error_set(err, BN_ERR_FORMAT, "%s: %s (byte %zu) is not an int32", c->name, what, f->offset);
    return BN_OK;
}

static bn_status parse_piece(cursor c, uint32_t index, spm_piece *p, bn_error *err) {
    char what[64];
    p->text = NULL;
    p->len = 0;
    p->score = 0.0f;
    p->type = BN_TOKEN_NORMAL;
    bool has_text = false;
    while (c.pos < c.end) {
        field f;
        bn_status st = read_field(&c, &f, err);
        if (st != BN_OK) return st;
        if (f.number == 1) {
            snprintf(what, sizeof what, "piece %u: text", index);
            if ((st = want_wire(&c, &f, what, WIRE_LEN, err))) return st;
            p->text = c.base + f.sub.pos;
            p->len = f.sub.end - f.sub.pos;
            if (memchr(p->text, 0, p->len))
                return bn_error_set(err, BN_ERR_FORMAT, "%s: piece %u (byte %zu) contains a NUL byte", c.name, index,
                                    f.offset);
            has_text = true;
        } else if (f.number == 2) {
            snprintf(what, sizeof what, "piece %u: score", index);
            if ((st = want_wire(&c, &f, what, WIRE_FIXED32, err))) return st;
            memcpy(&p->score, &f.fixed32, sizeof p->score);
            if (!isfinite(p->score))
                return bn_error_set(err, BN_ERR_FORMAT, "%s: piece %u: score (byte %zu) is not finite", c.name, index,
                                    f.offset);
        } else if (f.number == 3) {
            snprintf(what, sizeof what, "piece %u: type", index);
            if ((st = want_wire(&c, &f, what, WIRE_VARINT, err))) return st;
            if (f.varint < BN_TOKEN_NORMAL || f.varint > BN_TOKEN_BYTE)
                return bn_error_set(err, BN_ERR_FORMAT, "%s: piece %u: type %llu (byte %zu) is not one of 1-6", c.name,
                                    index, (unsigned long long)f.varint, f.offset);
            p->type = (int32_t)f.varint;
        }
    }
    if (!has_text) return bn_error_set(err, BN_ERR_FORMAT, "%s: piece %u has no text (field 1)", c.name, index);
    return BN_OK;
}

typedef struct spm_trainer {
    int32_t model_type, unk_id, bos_id, eos_id;
    bool byte_fallback;
} spm_trainer;

static bn_status parse_trainer(cursor c, spm_trainer *t, bn_error *err) {
    while (c.pos < c.end) {
        field f;
        bn_status st = read_field(&c, &f, err);
        if (st != BN_OK) return st;
        const char *what = f.number == 3    ? "trainer_spec.model_type"
                           : f.number == 35 ? "trainer_spec.byte_fallback"
                           : f.number == 40 ? "trainer_spec.unk_id"
                           : f.number == 41 ? "trainer_spec.bos_id"
                           : f.number == 42 ? "trainer_spec.eos_id"
                                            : NULL;
        if (!what) continue;
        if ((st = want_wire(&c, &f, what, WIRE_VARINT, err))) return st;
        if (f.number == 35) {
            t->byte_fallback = f.varint != 0;
            continue;
        }
        int32_t *dst = f.number == 3 ? &t->model_type : f.number == 40 ? &t->unk_id : f.number == 41 ? &t->bos_id : &t->eos_id;
        if ((st = varint_int32(&c, &f, what, dst, err))) return st;
    }
    return BN_OK;
}

static bn_status parse_normalizer(cursor c, bool *add_dummy_prefix, bn_error *err) {
    while (c.pos < c.end) {
        field f;
        bn_status st = read_field(&c, &f, err);
        if (st != BN_OK) return st;
        if (f.number != 3) continue;
        if ((st = want_wire(&c, &f, "normalizer_spec.add_dummy_prefix", WIRE_VARINT, err))) return st;
        *add_dummy_prefix = f.varint != 0;
    }
    return BN_OK;
}

static bn_status check_id(const char *name, const char *what, int32_t id, uint32_t n, bn_error *err) {
    if (id >= -1 && (id < 0 || (uint32_t)id < n)) return BN_OK;
    return bn_error_set(err, BN_ERR_FORMAT, "%s: trainer_spec.%s %d is not a piece id (%u pieces)", name, what, id, n);
}

/* Moves the checked pieces into out. */
static bn_status fill_vocab(bn_hf_vocab *out, const spm_piece *pieces, uint32_t n, const char *name, bn_error *err) {
    out->tokens = calloc(n, sizeof *out->tokens);
    out->token_types = malloc(n * sizeof *out->token_types);
    out->scores = malloc(n * sizeof *out->scores);
    if (!out->tokens || !out->token_types || !out->scores)
        return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory for %u pieces", name, n);
    out->n_tokens = n;
    for (uint32_t i = 0; i < n; i++) {
        if (!(out->tokens[i] = malloc(pieces[i].len + 1)))
            return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", name);
        memcpy(out->tokens[i], pieces[i].text, pieces[i].len);
        out->tokens[i][pieces[i].len] = '\0';
        out->token_types[i] = pieces[i].type;
        out->scores[i] = pieces[i].score;
    }
    return BN_OK;
}

bn_status bn_spm_model_parse(bn_hf_vocab *out, const uint8_t *data, size_t size, const char *name, bn_error *err) {
    memset(out, 0, sizeof *out);
    out->bos_id = out->eos_id = out->unk_id = -1;
    spm_trainer trainer = {.model_type = MODEL_UNIGRAM, .unk_id = 0, .bos_id = 1, .eos_id = 2}; /* proto defaults */
    bool add_dummy_prefix = true;
    spm_piece *pieces = NULL;
    uint32_t n = 0, cap = 0;
    bn_status st = BN_OK;
    cursor c = {data, 0, data ? size : 0, name};
    while (st == BN_OK && c.pos < c.end) {
        field f;
        if ((st = read_field(&c, &f, err))) break;
        if (f.number == 1) {
            if ((st = want_wire(&c, &f, "a piece", WIRE_LEN, err))) break;
            if (n == cap) {
                if (cap >= INT32_MAX / 2) {
                    st = bn_error_set(err, BN_ERR_FORMAT, "%s: more than %u pieces", name, cap);
                    break;
                }
                const uint32_t grown = cap ? cap * 2 : 1024;
                spm_piece *p = realloc(pieces, grown * sizeof *p);
                if (!p) {
                    st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory for %u pieces", name, grown);
                    break;
                }
                pieces = p, cap = grown;
            }
            st = parse_piece(f.sub, n, &pieces[n], err);
            n++;
        } else if (f.number == 2) {
            if (!(st = want_wire(&c, &f, "trainer_spec", WIRE_LEN, err))) st = parse_trainer(f.sub, &trainer, err);
        } else if (f.number == 3) {
            if (!(st = want_wire(&c, &f, "normalizer_spec", WIRE_LEN, err)))
                st = parse_normalizer(f.sub, &add_dummy_prefix, err);
        }
    }
    if (st == BN_OK && n == 0)
        st = bn_error_set(err, BN_ERR_FORMAT, "%s: no pieces (ModelProto field 1): not a SentencePiece model", name);
    if (st == BN_OK && trainer.model_type != MODEL_BPE)
        st = bn_error_set(err, BN_ERR_UNSUPPORTED,
                          "%s: trainer_spec.model_type %d (%s) is not supported: only BPE SentencePiece models are",
                          name, trainer.model_type, trainer.model_type == MODEL_UNIGRAM ? "UNIGRAM" : "not BPE");
    if (st == BN_OK && !trainer.byte_fallback)
        st = bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: a SentencePiece BPE without byte_fallback is not supported",
                          name);
    if (st == BN_OK && !(st = check_id(name, "unk_id", trainer.unk_id, n, err)) &&
        !(st = check_id(name, "bos_id", trainer.bos_id, n, err)))
        st = check_id(name, "eos_id", trainer.eos_id, n, err);
    if (st == BN_OK) st = fill_vocab(out, pieces, n, name, err);
    free(pieces);
    if (st != BN_OK) {
        bn_hf_vocab_free(out);
        out->bos_id = out->eos_id = out->unk_id = -1;
        return st;
    }
    out->model = "llama";
    out->unk_id = trainer.unk_id;
    out->bos_id = trainer.bos_id;
    out->eos_id = trainer.eos_id;
    out->add_bos = trainer.bos_id >= 0;
    out->add_space_prefix = add_dummy_prefix;
    return BN_OK;
}

bn_status bn_spm_model_load(bn_hf_vocab *out, const char *path, bn_error *err) {
    memset(out, 0, sizeof *out);
    out->bos_id = out->eos_id = out->unk_id = -1;
    char *data = NULL;
    size_t size = 0;
    bn_status st = bn_convert_read_file(path, BN_SPM_MODEL_MAX_BYTES, &data, &size, err);
    if (st == BN_OK) st = bn_spm_model_parse(out, (const uint8_t *)data, size, path, err);
    free(data);
    return st;
}
