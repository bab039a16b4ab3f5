/*
 * spm_model.h: a SentencePiece tokenizer.model (a serialized sentencepiece.ModelProto) read into
 * the bn_hf_vocab that convert_vocab.c writes as GGUF keys, for checkpoints that ship no
 * tokenizer.json (the 1bitLLM repositories).
 *
 * What is read (sentencepiece_model.proto field numbers; everything else is skipped):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (1 NORMAL, 2 UNKNOWN, 3 CONTROL,
 *                   4 USER_DEFINED, 5 UNUSED, 6 BYTE: the GGUF token types as they are)
 *   TrainerSpec     3 model_type (1 UNIGRAM, 2 BPE), 35 byte_fallback, 40 unk_id, 41 bos_id,
 *                   42 eos_id (defaults 0, 1, 2; -1 disables one)
 *   NormalizerSpec  3 add_dummy_prefix (default true) -> add_space_prefix
 * The result is model "llama" with the pieces' scores as stored (as llama.cpp's converter writes
 * a tokenizer.model), no merges and no `pre`. Only BPE models with byte_fallback are accepted:
 * that is what the engine's SentencePiece tokenizer reproduces (and what hf_import requires of a
 * SentencePiece tokenizer.json).
 *
 * The reader is a bounds-checked protobuf wire-format walker: every varint, fixed-size value and
 * length is checked against the bytes of its enclosing message before it is used, so a hostile
 * file is refused with a message naming the byte offset and never read out of bounds.
 */
#ifndef BN_CONVERT_SPM_MODEL_H
#define BN_CONVERT_SPM_MODEL_H

#include "bitnet.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#define BN_SPM_MODEL_MAX_BYTES (64u << 20) /* LLaMA's is 500 KB, Gemma's 4 MB */

/* Parses data[0..size) (name is used in messages only). On success *out is filled and owned by
 * the caller (bn_hf_vocab_free); on failure it is zeroed. Errors: BN_ERR_FORMAT (malformed wire
 * format, no pieces, an id out of range), BN_ERR_UNSUPPORTED (not BPE, no byte_fallback),
 * BN_ERR_NOMEM. */
bn_status bn_spm_model_parse(bn_hf_vocab *out, const uint8_t *data, size_t size, const char *name, bn_error *err);

/* bn_spm_model_parse of the file at path (at most BN_SPM_MODEL_MAX_BYTES); BN_ERR_IO when it
 * cannot be read. */
bn_status bn_spm_model_load(bn_hf_vocab *out, const char *path, bn_error *err);

#endif
