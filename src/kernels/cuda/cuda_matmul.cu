/*
 * cuda_matmul.cu: the matrix kernels of the CUDA backend: per-token int8 activation quantization
 * (spec section 4), the ternary W1.58 A8 product over the GPU layout (cuda_layout.h) with dp4a,
 * the int8 LM head and the F16 LM head.
 *
 * Design: one warp per output row. The integer part is exact (dp4a on int8 activations and the
 * weight codes turned into signed bytes), so it equals the CPU reference whatever the order; the
 * float finishing step then follows bn_ternary_finish / bn_int8_finish operation for operation
 * with correctly rounded intrinsics (__fmul_rn and friends are never contracted into FMAs), and
 * the F16 head reproduces the CPU's 16-lane summation order with the same fused multiply-adds
 * (__fmaf_rn), so every result here is bit-identical to the CPU's. Each kernel is instantiated for 1 token (GEMV: decode) and for tiles of 8 tokens
 * (GEMM: each weight word read once per 8 tokens); no other instantiations, to keep nvcc fast.
 */
#include "kernels/cuda/cuda_common.cuh"

#include <cuda_fp16.h>
#include <stdint.h>

#define WARP 32
#define ROWS_PER_BLOCK 4 /* warps per block, one row each */
#define GEMM_TOKENS 8
#define MAX_TOKEN_TILES 65535

/* ---- activation quantization ---- */

__global__ void quantize_kernel(int8_t *q, float *scales, const float *x, int cols) {
    __shared__ float warp_max[32];
    const int t = blockIdx.x;
    const float *xt = x + (size_t)t * cols;
    float m = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, fabsf(xt[c])); /* NaN ignored */
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
    __syncthreads();
    m = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) m = fmaxf(m, warp_max[w]);
    double denominator = m > 1e-5f ? (double)m : 1e-5;
    float scale = (float)(127.0 / denominator);
    int8_t *qt = q + (size_t)t * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = rintf(__fmul_rn(xt[c], scale));
        int value = !(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v; /* NaN -> -128 as the CPU */
        qt[c] = (int8_t)value;
    }
    if (threadIdx.x == 0) scales[t] = scale;
}

extern "C" void bn_cuda_quantize(bn_cuda_context *ctx, int8_t *q, float *scales, const float *x, int n,
                                 int cols) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    quantize_kernel<<<n, 256, 0, ctx->stream>>>(q, scales, x, cols);
    BN_CUDA_LAUNCHED(ctx, "cuda.quantize_i8", t0);
}

/* ---- ternary product ---- */

/* Codes 0..3 in four bytes -> signed bytes code - 1 (no borrow crosses bytes: each byte is >= 0x80
 * before the subtraction). */
__device__ __forceinline__ int codes_to_signed(uint32_t codes) {
    return (int)(((codes | 0x80808080u) - 0x01010101u) ^ 0x80808080u);
}

/* Adds word's 16 weights times the 16 activations xv to acc. */
__device__ __forceinline__ int ternary_word_dot(uint32_t word, int4 xv, int acc) {
    acc = __dp4a(codes_to_signed(word & 0x03030303u), xv.x, acc);
    acc = __dp4a(codes_to_signed((word >> 2) & 0x03030303u), xv.y, acc);
    acc = __dp4a(codes_to_signed((word >> 4) & 0x03030303u), xv.z, acc);
    acc = __dp4a(codes_to_signed((word >> 6) & 0x03030303u), xv.w, acc);
    return acc;
}

__device__ __forceinline__ int warp_sum(int v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* y[t][r] for rows of one warp each and token tiles of TT (blockIdx.y strides over tiles).
 * I2_S (block_scales NULL): one exact sum per row, (float)acc / s_x * s_w. TQ: exact sums per
 * 256-column block, combined in block order f = f + d_b * (float)sum_b, then f / s_x * 1. */
template <int TT>
__global__ void ternary_kernel(float *y, const uint32_t *codes, const float *block_scales,
                               float tensor_scale, bool has_out_scale, float out_scale, int rows,
                               int cols, const int8_t *q, const float *scales, int n) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int words = cols / 16;
    const uint32_t *wr = codes + (size_t)r * words;
    for (int t0 = blockIdx.y * TT; t0 < n; t0 += gridDim.y * TT) {
        const int nt = min(TT, n - t0);
        const int4 *xq[TT];
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
            xq[tt] = (const int4 *)(q + (size_t)(t0 + (tt < nt ? tt : 0)) * cols);
        float value[TT];
        if (!block_scales) {
            int acc[TT];
#pragma unroll
            for (int tt = 0; tt < TT; tt++) acc[tt] = 0;
            for (int i = lane; i < words; i += WARP) {
                const uint32_t word = __ldg(wr + i);
#pragma unroll
                for (int tt = 0; tt < TT; tt++)
                    if (tt < nt) acc[tt] = ternary_word_dot(word, __ldg(xq[tt] + i), acc[tt]);
            }
#pragma unroll
            for (int tt = 0; tt < TT; tt++) {
                int total = warp_sum(acc[tt]);
                if (tt < nt) value[tt] = __fmul_rn(__fdiv_rn((float)total, scales[t0 + tt]), tensor_scale);
            }
        } else {
            /* Iteration j: lanes 0-15 hold block 2j's words, lanes 16-31 block 2j+1's. */
            const int n_blocks = cols / 256;
            const float *bs = block_scales + (size_t)r * n_blocks;
            float f[TT];
#pragma unroll
            for (int tt = 0; tt < TT; tt++) f[tt] = 0.0f;
            for (int j = 0; 32 * j < words; j++) {
                const int i = 32 * j + lane;
                const uint32_t word = i < words ? __ldg(wr + i) : 0x55555555u; /* codes 1: weight 0 */
#pragma unroll
                for (int tt = 0; tt < TT; tt++) {
                    int s = (tt < nt && i < words) ? ternary_word_dot(word, __ldg(xq[tt] + i), 0) : 0;
                    for (int off = 8; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off, 16);
                    const int s0 = __shfl_sync(0xffffffffu, s, 0), s1 = __shfl_sync(0xffffffffu, s, 16);
                    f[tt] = __fadd_rn(f[tt], __fmul_rn(bs[2 * j], (float)s0));
                    if (2 * j + 1 < n_blocks) f[tt] = __fadd_rn(f[tt], __fmul_rn(bs[2 * j + 1], (float)s1));
                }
            }
#pragma unroll
            for (int tt = 0; tt < TT; tt++)
                if (tt < nt) value[tt] = __fmul_rn(__fdiv_rn(f[tt], scales[t0 + tt]), tensor_scale);
        }
        if (lane == 0) {
#pragma unroll
            for (int tt = 0; tt < TT; tt++)
                if (tt < nt)
                    y[(size_t)(t0 + tt) * rows + r] = has_out_scale ? __fmul_rn(value[tt], out_scale) : value[tt];
        }
    }
}

static unsigned token_tiles(int n, int tile) {
    unsigned tiles = bn_cuda_blocks((size_t)n, (unsigned)tile);
    return tiles > MAX_TOKEN_TILES ? MAX_TOKEN_TILES : tiles;
}

extern "C" void bn_cuda_ternary_matmul(bn_cuda_context *ctx, float *y, const bn_cuda_ternary *w,
                                       const int8_t *q, const float *scales, int n) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    const bool tq = w->block_scales != NULL;
    dim3 block(WARP * ROWS_PER_BLOCK);
    if (n == 1) {
        dim3 grid(bn_cuda_blocks((size_t)w->rows, ROWS_PER_BLOCK), 1);
        ternary_kernel<1><<<grid, block, 0, ctx->stream>>>(y, w->codes, w->block_scales, w->tensor_scale,
                                                           w->has_out_scale, w->out_scale, w->rows,
                                                           w->cols, q, scales, n);
        if (w->file_type == BN_CUDA_FILE_TQ1_0)
            BN_CUDA_LAUNCHED(ctx, "cuda.tq1.gemv", t0);
        else if (tq)
            BN_CUDA_LAUNCHED(ctx, "cuda.tq2.gemv", t0);
        else
            BN_CUDA_LAUNCHED(ctx, "cuda.i2s.gemv", t0);
    } else {
        dim3 grid(bn_cuda_blocks((size_t)w->rows, ROWS_PER_BLOCK), token_tiles(n, GEMM_TOKENS));
        ternary_kernel<GEMM_TOKENS><<<grid, block, 0, ctx->stream>>>(
            y, w->codes, w->block_scales, w->tensor_scale, w->has_out_scale, w->out_scale, w->rows,
            w->cols, q, scales, n);
        if (w->file_type == BN_CUDA_FILE_TQ1_0)
            BN_CUDA_LAUNCHED(ctx, "cuda.tq1.gemm", t0);
        else if (tq)
            BN_CUDA_LAUNCHED(ctx, "cuda.tq2.gemm", t0);
        else
            BN_CUDA_LAUNCHED(ctx, "cuda.i2s.gemm", t0);
    }
}

/* ---- int8 LM head ---- */

template <int TT>
__global__ void int8_kernel(float *y, const int8_t *w, const float *row_scales, int rows, int cols,
                            const int8_t *q, const float *scales, int n) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int chunks = cols / 16;
    const int4 *wr = (const int4 *)(w + (size_t)r * cols);
    for (int t0 = blockIdx.y * TT; t0 < n; t0 += gridDim.y * TT) {
        const int nt = min(TT, n - t0);
        int acc[TT];
#pragma unroll
        for (int tt = 0; tt < TT; tt++) acc[tt] = 0;
        for (int i = lane; i < chunks; i += WARP) {
            const int4 wv = __ldg(wr + i);
#pragma unroll
            for (int tt = 0; tt < TT; tt++) {
                if (tt < nt) {
                    const int4 xv = __ldg((const int4 *)(q + (size_t)(t0 + tt) * cols) + i);
                    acc[tt] = __dp4a(wv.x, xv.x, acc[tt]);
                    acc[tt] = __dp4a(wv.y, xv.y, acc[tt]);
                    acc[tt] = __dp4a(wv.z, xv.z, acc[tt]);
                    acc[tt] = __dp4a(wv.w, xv.w, acc[tt]);
                }
            }
        }
#pragma unroll
        for (int tt = 0; tt < TT; tt++) {
            int total = warp_sum(acc[tt]);
            if (lane == 0 && tt < nt)
                y[(size_t)(t0 + tt) * rows + r] =
                    __fdiv_rn(__fmul_rn((float)total, row_scales[r]), scales[t0 + tt]);
        }
    }
}

extern "C" void bn_cuda_int8_matmul(bn_cuda_context *ctx, float *y, const int8_t *w,
                                    const float *row_scales, int rows, int cols, const int8_t *q,
                                    const float *scales, int n) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    dim3 block(WARP * ROWS_PER_BLOCK);
    if (n == 1) {
        int8_kernel<1><<<dim3(bn_cuda_blocks((size_t)rows, ROWS_PER_BLOCK), 1), block, 0, ctx->stream>>>(
            y, w, row_scales, rows, cols, q, scales, n);
        BN_CUDA_LAUNCHED(ctx, "cuda.i8.gemv", t0);
    } else {
        dim3 grid(bn_cuda_blocks((size_t)rows, ROWS_PER_BLOCK), token_tiles(n, GEMM_TOKENS));
        int8_kernel<GEMM_TOKENS><<<grid, block, 0, ctx->stream>>>(y, w, row_scales, rows, cols, q, scales, n);
        BN_CUDA_LAUNCHED(ctx, "cuda.i8.gemm", t0);
    }
}

/* ---- F16 LM head ----
 * Half a warp per row: lane l (0..15) accumulates, in column order, the products of columns c
 * with c % 16 == l, each by one fused multiply-add (__fmaf_rn, as the CPU's fmaf), then the 16
 * lanes are reduced pairwise (+8, +4, +2, +1): the CPU's definition (kernels/cpu/ref_matmul.h),
 * so the logits are bit-identical to the CPU's. */
#define F16_ROWS_PER_BLOCK (2 * ROWS_PER_BLOCK)

template <int TT>
__global__ void f16_kernel(float *y, const __half *w, const float *x, int rows, int cols, int n) {
    const int lane = threadIdx.x & 15;
    const int r = blockIdx.x * F16_ROWS_PER_BLOCK + (threadIdx.x >> 4);
    const bool active = r < rows;
    const __half *wr = w + (size_t)(active ? r : 0) * cols;
    for (int t0 = blockIdx.y * TT; t0 < n; t0 += gridDim.y * TT) {
        const int nt = min(TT, n - t0);
        float acc[TT];
#pragma unroll
        for (int tt = 0; tt < TT; tt++) acc[tt] = 0.0f;
        if (active) {
            int c = lane;
            /* eight independent loads in flight, then the adds in column order */
            for (; c + 16 * 7 < cols; c += 16 * 8) {
                float wv[8];
#pragma unroll
                for (int k = 0; k < 8; k++) wv[k] = __half2float(wr[c + 16 * k]);
#pragma unroll
                for (int tt = 0; tt < TT; tt++) {
                    if (tt < nt) {
                        const float *xt = x + (size_t)(t0 + tt) * cols + c;
#pragma unroll
                        for (int k = 0; k < 8; k++) acc[tt] = __fmaf_rn(wv[k], xt[16 * k], acc[tt]);
                    }
                }
            }
            for (; c < cols; c += 16) {
                float wv = __half2float(wr[c]);
#pragma unroll
                for (int tt = 0; tt < TT; tt++)
                    if (tt < nt) acc[tt] = __fmaf_rn(wv, x[(size_t)(t0 + tt) * cols + c], acc[tt]);
            }
        }
#pragma unroll
        for (int tt = 0; tt < TT; tt++) {
            float v = acc[tt];
            for (int off = 8; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, off, 16));
            if (active && lane == 0 && tt < nt) y[(size_t)(t0 + tt) * rows + r] = v;
        }
    }
}

extern "C" void bn_cuda_f16_matmul(bn_cuda_context *ctx, float *y, const uint16_t *w, const float *x,
                                   int rows, int cols, int n) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    dim3 block(WARP * ROWS_PER_BLOCK);
    const __half *wh = (const __half *)w;
    if (n == 1) {
        f16_kernel<1><<<dim3(bn_cuda_blocks((size_t)rows, F16_ROWS_PER_BLOCK), 1), block, 0, ctx->stream>>>(
            y, wh, x, rows, cols, n);
        BN_CUDA_LAUNCHED(ctx, "cuda.f16.gemv", t0);
    } else {
        dim3 grid(bn_cuda_blocks((size_t)rows, F16_ROWS_PER_BLOCK), token_tiles(n, GEMM_TOKENS));
        f16_kernel<GEMM_TOKENS><<<grid, block, 0, ctx->stream>>>(y, wh, x, rows, cols, n);
        BN_CUDA_LAUNCHED(ctx, "cuda.f16.gemm", t0);
    }
}
