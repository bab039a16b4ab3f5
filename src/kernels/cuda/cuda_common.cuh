/*
 * cuda_common.cuh: what the .cu files of the CUDA backend share: the context struct, launch
 * checking (the first failed launch is kept, see cuda_backend.h) and the registry counting of
 * every launch wrapper.
 */
#ifndef BN_KERNELS_CUDA_COMMON_CUH
#define BN_KERNELS_CUDA_COMMON_CUH

#include "kernels/cuda/cuda_backend.h"

extern "C" {
#include "kernels/registry.h"
}

#include <cuda_runtime.h>

struct bn_cuda_context {
    cudaStream_t stream;
    cudaError_t first_error; /* first failed launch (cudaSuccess: none) */
    char first_error_op[48];  /* the kernel id of that launch */
};

/* Keeps the first launch error of ctx (called after every launch). */
void bn_cuda_note_launch(bn_cuda_context *ctx, const char *op);

/* Counts one call of kernel id in the registry and checks its launch; t0 from bn_kernel_begin(). */
#define BN_CUDA_LAUNCHED(ctx, id, t0)                   \
    do {                                                \
        static bn_kernel_slot bn_slot_;                 \
        bn_cuda_note_launch((ctx), (id));               \
        bn_kernel_end(&bn_slot_, (id), (t0));           \
    } while (0)

/* Blocks of `per_block` items covering n items. */
static inline unsigned bn_cuda_blocks(size_t n, unsigned per_block) {
    return (unsigned)((n + per_block - 1) / per_block);
}

#endif
