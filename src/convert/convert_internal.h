/*
 * convert_internal.h: what the files of the converter share (convert.c plans and writes,
 * convert_tensors.c turns one checkpoint tensor into GGUF bytes, convert_vocab.c writes the
 * tokenizer). Not a public interface.
 */
#ifndef BN_CONVERT_INTERNAL_H
#define BN_CONVERT_INTERNAL_H

#include "convert/convert.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <limits.h>

#define BN_CONVERT_NAME_MAX 64 /* GGUF tensor names: "blk.N.attn_output.weight" */

typedef enum convert_kind {
    CONVERT_VECTOR,     /* a norm: F32/F16/BF16 [n] -> F32 */
    CONVERT_TABLE,      /* token_embd / output: float [rows, cols] -> an embedding/head type */
    CONVERT_PACKED,     /* U8 [ceil(out/4), in] + weight_scale -> ternary type */
    CONVERT_MASTER,     /* float [out, in] -> ternarized -> ternary type */
    CONVERT_ROPE_FREQS  /* generated: llama3 rope scaling factors, F32 */
} convert_kind;

typedef struct convert_tensor {
    char name[BN_CONVERT_NAME_MAX];
    convert_kind kind;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[2];                       /* ne[0] row length (in), ne[1] rows (out; 1: vector) */
    uint64_t bytes;                       /* in the GGUF */
    const bn_safetensors_tensor *src;     /* NULL for CONVERT_ROPE_FREQS */
    float scale;                          /* CONVERT_PACKED: the GGUF tensor scale */
    uint32_t permute_heads;               /* q/k of llama: heads of the row permutation; 0: none */
} convert_tensor;

struct bn_convert {
    char *dir;
    bn_convert_options options;
    char name[256];                       /* general.name */
    bn_hf_config config;
    bn_hf_generation_config generation;
    bn_hf_tokenizer_config tokenizer_config;
    bn_safetensors_set *set;
    bn_hf_vocab vocab;                    /* padded to n_vocab tokens */
    char *chat_template;                  /* owned, NULL: none */
    const char *pre;                      /* static or options->pre; NULL: none */
    bn_convert_info info;
    char flavour[160];
    convert_tensor *tensors;
    size_t n_tensors;
    float *rope_freqs;                    /* head_dim / 2 factors, NULL: none */
    char temp_path[PATH_MAX];
    bool written;
};

/* dir/file in a new string (caller frees); NULL when out of memory. */
char *bn_convert_path(const char *dir, const char *file);

/* ---- convert_tensors.c ---- */

/* Reusable buffers for the slices of one tensor (about 20 MB at most). */
typedef struct convert_scratch {
    float *floats;
    int8_t *values;
    uint8_t *bytes;
    size_t cap_elements;                  /* of floats and values; bytes holds cap_bytes */
    size_t cap_bytes;
} convert_scratch;

void bn_convert_scratch_free(convert_scratch *s);

/* The per-tensor scale of a packed projection from its weight_scale tensor (checked: dtype
 * F32/F16/BF16, shape [1] or [], finite and > 0): s when multiplies, else the float nearest 1/s. */
bn_status bn_convert_packed_scale(const bn_safetensors_tensor *weight_scale, bool multiplies, float *out,
                                  bn_error *err);

/* Converts t and writes its bytes at offset of fd (path for messages). rope_freqs is used for
 * CONVERT_ROPE_FREQS. */
bn_status bn_convert_fill(const convert_tensor *t, const float *rope_freqs, int fd, uint64_t offset,
                          const char *path, convert_scratch *s, bn_error *err);

/* ---- convert_vocab.c ---- */

/* Loads tokenizer.json (and chat_template.jinja when tokenizer_config.json has no template),
 * pads the vocabulary to info.n_vocab, resolves BOS/EOS/EOT and the pre-tokenizer name; fills
 * c->vocab, c->chat_template, c->pre and the tokenizer fields of c->info. */
bn_status bn_convert_vocab_load(bn_convert *c, bn_error *err);

/* Adds the tokenizer.* keys (and tokenizer.chat_template) to w. */
bn_status bn_convert_vocab_write(const bn_convert *c, bn_gguf_writer *w, bn_error *err);

#endif
