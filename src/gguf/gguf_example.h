/*
 * gguf_example.h: GGUF files built by the project itself, for tests, demos and the README's run
 * command until a real model is present: the exact tensor table of microsoft/bitnet-b1.58-2B-4T
 * (spec/MODEL_FORMAT.md section 1, zero-filled, written sparse) and a small example file that
 * carries metadata of every type and one tensor of every format in the table.
 */
#ifndef BN_GGUF_EXAMPLE_H
#define BN_GGUF_EXAMPLE_H

#include "gguf/gguf.h"

#define BN_2B4T_TENSOR_COUNT 332

/* Adds the 2B-4T hyper-parameters of section 1 (architecture bitnet-b1.58, no tokenizer). */
bn_status bn_gguf_example_add_2b4t_metadata(bn_gguf_writer *w, bn_error *err);
/* Adds the 332 tensors of section 1 in the order bitnet.cpp's converter writes them, without
 * data (the writer writes zeros as holes). */
bn_status bn_gguf_example_add_2b4t_tensors(bn_gguf_writer *w, bn_error *err);
/* Writes the 2B-4T-shaped file (about 1.18 GB, sparse: it takes almost no disk). */
bn_status bn_gguf_example_write_2b4t(const char *path, bn_error *err);
/* Writes the small example file (a few KB): every metadata type including arrays of strings
 * and nested arrays, and one tensor of each format with deterministic contents. */
bn_status bn_gguf_example_write_small(const char *path, bn_error *err);

#endif
