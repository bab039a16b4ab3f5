/*
 * backend_cuda.h: the CUDA backend (backend_cuda.c) over the kernels of kernels/cuda/. Built with
 * or without CUDA: without it, creation says so.
 */
#ifndef BN_BACKEND_CUDA_H
#define BN_BACKEND_CUDA_H

#include "backend/backend.h"

/* The CUDA backend for config (copied) on GPU device_index (cuda:N). BN_ERR_UNSUPPORTED for what
 * the CUDA kernels do not implement (llama's NORM RoPE, RoPE scaling, widths not a multiple of
 * 16), BN_ERR_DEVICE when the build has no CUDA or no usable device exists. Its bind_weights
 * uploads every tensor once, from the file's format straight into the GPU layout, and keeps no
 * host copy. Owned by the caller (backend->destroy). */
bn_status bn_backend_cuda_create(const bn_backend_config *config, int device_index,
                                 bn_backend **out, bn_error *err);
/* The GPU's name for a CUDA backend ("NVIDIA H100 ... (sm_90, 79.1 GiB)"), else NULL. */
const char *bn_backend_cuda_device(const bn_backend *backend);

#endif
