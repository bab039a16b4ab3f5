/*
 * convert.h: a Hugging Face BitNet b1.58 checkpoint directory -> one GGUF file that `bitnet run`,
 * `chat` and `serve` load (spec/HF_CHECKPOINTS.md; the GGUF layouts of spec/MODEL_FORMAT.md
 * sections 1-4 and 9).
 *
 * Input: config.json, model.safetensors (or shards named by model.safetensors.index.json) and
 * tokenizer.json, or without it a SentencePiece tokenizer.model (spm_model.h); tokenizer_config.json (chat template, special tokens, add_bos_token),
 * generation_config.json and chat_template.jinja when present.
 *
 * The class in config.json picks the GGUF architecture:
 *   BitNetForCausalLM -> bitnet-b1.58  microsoft/bitnet-b1.58-2B-4T (and -bf16): sub-norms,
 *                                      squared ReLU, head tied to token_embd
 *   BitnetForCausalLM -> bitnet        1bitLLM bitnet_b1_58-*: sub-norms (inner_attn_ln,
 *                                      ffn_layernorm), SiLU, tied
 *   LlamaForCausalLM  -> llama         Falcon3-*-1.58bit, Falcon-E, Llama3-8B-1.58: no sub-norms,
 *                                      SiLU, NORM RoPE (q/k rows permuted, see below)
 * and quantization_config the flavour of the seven projections of each layer:
 *   packed  U8 [ceil(out/4), in]: row i*R + r of the ternary matrix t (R = ceil(out/4)) is bits
 *           2i+1:2i of packed row r, code 0/1/2 = -1/0/+1 (3 is corrupt); one weight_scale per
 *           tensor (BF16/F16/F32, shape [1] or []): W = t * s when linear_class is
 *           "autobitlinear", else W = t / s. The GGUF scale is s, or the float nearest 1/s.
 *   master  F32/F16/BF16 [out, in] full-precision weights (quantization_mode "online", or the
 *           1bitLLM class), ternarized once per tensor as HF's WeightQuant and 1bitLLM's
 *           weight_quant do: m = max(mean|W|, 1e-5) (the mean summed in double, rounded to float
 *           once), inv = 1.0f / m, t = clamp(round_half_even(W * inv), -1, 1), W = t / inv; the
 *           GGUF scale is the float 1.0f / inv (so each weight is exactly HF's t / inv).
 * LlamaForCausalLM without a quantization_config is not a ternary model and is refused, as is
 * any other class (the error names it).
 *
 * Output: projections in I2_S (per-tensor scale), TQ2_0 or TQ1_0 (every 256-weight block gets
 * the fp16 of that scale); token_embd in --embd-type and an untied head (llama only) in
 * --head-type (F32, F16, BF16, Q8_0, Q6_K, Q4_K); norms F32. Tensor names and order as the
 * official 2B-4T file: token_embd, [rope_freqs], per block attn_norm, attn_q, attn_k, attn_v,
 * [attn_sub_norm], attn_output, ffn_norm, ffn_gate, ffn_up, [ffn_sub_norm], ffn_down, then
 * output_norm and [output]. HF stores q_proj / k_proj rows for rotate_half (pairs j, j + D/2);
 * the llama architecture rotates pairs (2j, 2j+1), so for llama output row h*D + 2j + i is
 * source row h*D + i*D/2 + j (D the head size), on the unpacked ternary rows as llama.cpp's
 * converter permutes them. Llama 3.1 rope scaling ("llama3") becomes rope_freqs.weight
 * (llama.cpp's factors); linear scaling the rope.scaling keys. Metadata: the keys
 * model/config.c reads, general.file_type, the tokenizer (tokenizer.json through
 * bn_hf_vocab_load, padded with [PAD<id>] tokens up to vocab_size), BOS/EOS (tokenizer_config's
 * tokens, else generation_config.json's, else config.json's ids), EOT (<|eot_id|> when the
 * vocabulary has it), the chat template verbatim.
 *
 * Streaming: the GGUF header and tensor table are written first with every tensor's data as a
 * hole (the GGUF writer's), then each tensor is read through the safetensors mapping in slices
 * of rows, converted and written into place before the next; the source pages are dropped
 * (madvise) as they are done. Peak memory is a few slices (about 20 MB) plus the mapped pages of
 * one tensor, never the model. The file is written as OUT.tmp-XXXXXX and renamed to OUT only when
 * complete; any error removes it. The same input gives byte-identical output.
 *
 * Errors are one line naming the file or tensor: every tensor is checked before anything is
 * written (presence, dtype, shape, the weight_scale's dtype, shape and value, tensors the class
 * does not have); values while converting (a 2-bit code 3, NaN or infinite weights, an embedding
 * beyond F16's range).
 */
#ifndef BN_CONVERT_CONVERT_H
#define BN_CONVERT_CONVERT_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_convert bn_convert;

/* Called after each tensor is written: done of total tensors, its GGUF name, output bytes
 * written so far of bytes_total. */
typedef void (*bn_convert_progress_fn)(void *user, size_t done, size_t total, const char *name,
                                       uint64_t bytes_done, uint64_t bytes_total);

typedef struct bn_convert_options {
    uint32_t type;      /* projections: BN_TYPE_I2_S (default), BN_TYPE_TQ2_0, BN_TYPE_TQ1_0 */
    uint32_t embd_type; /* token_embd: BN_TYPE_F16 (default), F32, BF16, Q8_0, Q6_K, Q4_K */
    uint32_t head_type; /* output.weight of an untied model: as embd_type (default F16) */
    const char *pre;    /* tokenizer.ggml.pre (BN_TOKENIZER_PRE_NAMES), written without looking at
                           tokenizer.json's pre_tokenizer (which then need not be one the engine
                           recognises); NULL: from the pre_tokenizer ("gpt2" for the GPT-2 split,
                           "llama-bpe" for the LLaMA-3 one, anything else an error naming it) */
    const char *name;   /* general.name; NULL: the directory's name */
    bn_convert_progress_fn progress;
    void *progress_user;
} bn_convert_options;

void bn_convert_options_init(bn_convert_options *options);

/* What was found in the checkpoint (valid while the bn_convert lives). */
typedef struct bn_convert_info {
    const char *hf_class;      /* "BitNetForCausalLM" */
    const char *arch;          /* "bitnet-b1.58", "bitnet" or "llama" */
    const char *flavour;       /* one line: packed or master weights, the scale rule */
    bool packed;               /* U8 + weight_scale; false: float master weights */
    bool scale_multiplies;     /* packed: W = t * weight_scale (else t / weight_scale) */
    bool tied;                 /* no output.weight: token_embd is the head */
    bool permuted;             /* q/k rows permuted for NORM RoPE (llama) */
    uint32_t n_layers, n_vocab;
    uint32_t n_tokens;         /* tokens in tokenizer.json (n_vocab after padding) */
    const char *tokenizer;     /* "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    const char *vocab_file;    /* "tokenizer.json", or "tokenizer.model" when there is no tokenizer.json */
    const char *pre;           /* tokenizer.ggml.pre written; NULL: none */
    int32_t bos, eos, eot;     /* -1: none */
    bool chat_template;
    size_t n_files;            /* safetensors files read */
    size_t n_tensors;          /* in the GGUF */
    uint64_t input_bytes;      /* tensor bytes read from the checkpoint */
    uint64_t output_bytes;     /* tensor data bytes of the GGUF (without padding) */
} bn_convert_info;

/* One GGUF tensor of the plan. */
typedef struct bn_convert_tensor {
    const char *name;          /* GGUF name */
    const char *source;        /* the checkpoint's tensor name, or NULL (rope_freqs) */
    uint32_t type;             /* ggml type id */
    uint32_t n_dims;
    uint64_t ne[2];            /* GGUF order: ne[0] is the row length */
    uint64_t bytes;
} bn_convert_tensor;

/* Reads and checks everything but the tensor values and plans the output. On success *out is
 * owned by the caller (bn_convert_close). Errors: BN_ERR_IO (missing files), BN_ERR_FORMAT
 * (malformed input, shapes, dtypes), BN_ERR_UNSUPPORTED (a class or feature not converted),
 * BN_ERR_INVALID (options). */
bn_status bn_convert_open(bn_convert **out, const char *hf_dir, const bn_convert_options *options,
                          bn_error *err);
void bn_convert_close(bn_convert *c);

const bn_convert_info *bn_convert_get_info(const bn_convert *c);
/* The i-th tensor of the output (i < info.n_tensors). */
bn_convert_tensor bn_convert_tensor_at(const bn_convert *c, size_t i);

/* Writes the GGUF to out_path (via a temporary file in the same directory, renamed at the end;
 * removed on any error). Call once. */
bn_status bn_convert_write(bn_convert *c, const char *out_path, bn_error *err);

/* The temporary file bn_convert_write is filling ("" before and after): for a signal handler
 * that must remove it. */
const char *bn_convert_temp_path(const bn_convert *c);

#endif
