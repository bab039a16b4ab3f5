/*
 * scratch.h: per-thread scratch of the matrix dispatchers (kernels/matmul.c). A matmul prepares
 * per-path activation copies (AVX-512 pair order, TQ block sums, the int8 helper) on its calling
 * thread; they live in buffers that belong to that thread, grow when a call needs more, are kept
 * for the next call and are freed when the thread exits. The model reserves them at load
 * (bn_thread_scratch_reserve) so decoding allocates nothing; a call on a thread that has not
 * reserved grows its buffer then, and when that fails the dispatcher runs the scalar path, which
 * needs no copy (ops cannot fail: backend/backend.h).
 */
#ifndef BN_KERNELS_SCRATCH_H
#define BN_KERNELS_SCRATCH_H

#include "bitnet.h"

#include <stddef.h>

typedef enum bn_scratch_slot {
    BN_SCRATCH_ACTIVATIONS = 0, /* q_pairs / q_unsigned: n_tokens x cols bytes */
    BN_SCRATCH_BLOCK_SUMS = 1,  /* TQ block sums: n_tokens x cols / 256 int32 */
    BN_SCRATCH_HEAD_BLOCKS = 2, /* LM head (kernels/head.h): n_tokens rows of Q8_K / Q8_0 blocks */
    BN_SCRATCH_AMX_WEIGHTS = 3, /* AMX GEMM (cpu/amx_gemm_body.h), in each worker: 32 weight rows
                                   expanded to int8 tiles, 32 x cols bytes */
    BN_SCRATCH_SLOTS
} bn_scratch_slot;

/* At least `bytes` bytes, 64-byte aligned, owned by the calling thread (valid until its next
 * call for the same slot); NULL when the buffer cannot grow. */
void *bn_thread_scratch(bn_scratch_slot slot, size_t bytes);
/* Grows the calling thread's slot to `bytes` now: BN_ERR_NOMEM when it cannot. */
bn_status bn_thread_scratch_reserve(bn_scratch_slot slot, size_t bytes, bn_error *err);
/* Bytes the calling thread holds in the slot (tests). */
size_t bn_thread_scratch_size(bn_scratch_slot slot);

#endif
