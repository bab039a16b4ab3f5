/*
 * backend_cpu.h: the CPU backend (backend_cpu.c) over the kernels of kernels/ops.h, and what the
 * model's kernel tuning (model/tune.c) reads of the weights it bound.
 */
#ifndef BN_BACKEND_CPU_H
#define BN_BACKEND_CPU_H

#include "backend/backend.h"
#include "core/large_alloc.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"

/* The CPU backend for config (copied) with pool (NULL: one thread; it outlives the backend).
 * Owned by the caller (backend->destroy). Its bind_weights prepares the ternary matrices in the
 * kernels' layout (I2_S repacked into row tiles, all in one huge-page arena, the repacked file
 * pages dropped), copies the LM head into huge pages (a mapped file only) and builds the int8
 * head when config->int8_lm_head. */
bn_status bn_backend_cpu_create(const bn_backend_config *config, bn_threadpool *pool,
                                bn_backend **out, bn_error *err);

/* The bound projections in the order a decode step reads them (at most max; returns how many),
 * for the kernel tuner. */
int bn_backend_cpu_matrices(const bn_backend *backend, const bn_ternary_matrix **out, int max);
/* The F16 LM head the head kernels read (the huge-page copy when made), NULL with the int8 head
 * or a head of another type. */
const uint16_t *bn_backend_cpu_f16_head(const bn_backend *backend);
/* The arena holding the repacked projections (tests). */
const bn_large_arena *bn_backend_cpu_arena(const bn_backend *backend);

#endif
