/*
 * cuda_ops.cu: the non-matrix kernels of the CUDA backend: RMSNorm, NEOX RoPE, the KV cache
 * store, causal GQA attention, softmax, the FFN activations, residual add, embedding gather, row
 * gather, and the auxiliary batch normalization and activations.
 *
 * Design: the ops of the forward pass compute spec section 4.1's arithmetic (bitnet.cpp's batch
 * path) exactly as the CPU's scalar reference does (kernels/cpu/ref_ops.c with the pieces of
 * kernels/cpu/exact_arith.h), operation by operation and in the same order inside every float
 * reduction, so their outputs equal the CPU's bit for bit. Every float operation is an explicit
 * round-to-nearest intrinsic: __fmaf_rn exactly where the reference has fmaf, __fmul_rn /
 * __fadd_rn / __fsub_rn / __fdiv_rn / __fsqrt_rn elsewhere, so nvcc contracts nothing (and the
 * build uses no fast-math, no flush-to-zero). Parallel work is only ever split where the
 * reference's order allows it: over tokens, heads, positions of the score dots, dimensions, and
 * the 16 lanes of a lane reduction; the one parallel sum whose order differs (RMSNorm's sum of
 * squares) is accepted only under the exactness guard the CPU's SIMD paths use.
 *
 * Known difference: SiLU's elements after the last full group of 16 of a row use glibc's expf on
 * the CPU, which the device cannot reproduce; here they take exp in double rounded to float, which
 * may differ by one ulp in rare cases. No supported model has such elements (the CUDA backend
 * requires ffn_dim % 16 == 0).
 */
#include "kernels/cuda/cuda_common.cuh"

/* the constants of ggml's exp and the lane count (header-only; its host functions go unused) */
#include "kernels/cpu/exact_arith.h"

#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#define FULL_MASK 0xffffffffu
#define LANES BN_EXACT_LANES /* 16 */

/* ---- block reductions (blockDim.x a multiple of 32, at most 1024; scratch of 32 slots) ----
 * Used only where the order cannot change the result: integer counts, the max, and RMSNorm's
 * double sum under its guard. */

template <typename T>
__device__ T block_sum(T v, T *scratch) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    __syncthreads(); /* scratch may still be read by a previous reduction */
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) total += scratch[w];
    return total;
}

__device__ float block_max(float v, float *scratch) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, off));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) m = fmaxf(m, scratch[w]);
    return m;
}

/* ---- the pieces of exact_arith.h on the device ---- */

/* bn_pow2f: 2^k as a float for -126 <= k <= 127. */
__device__ __forceinline__ float pow2f(int k) { return __int_as_float((k + 127) << 23); }

/* bn_expf_ggml (ggml_v_expf), operation for operation: every fmaf an __fmaf_rn, every other
 * float operation correctly rounded, 2^n applied as two exact powers. */
__device__ __forceinline__ float expf_ggml(float x) {
    const float z = __fmaf_rn(x, BN_EXPF_LOG2E, BN_EXPF_SHIFT);
    const float n = __fsub_rn(z, BN_EXPF_SHIFT);
    const float b = __fmaf_rn(-n, BN_EXPF_LN2_LO, __fmaf_rn(-n, BN_EXPF_LN2_HI, x));
    if (fabsf(n) > BN_EXPF_N_LIMIT) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return n;
    const float u = __fmul_rn(b, b);
    const float j = __fmaf_rn(__fmaf_rn(__fmaf_rn(BN_EXPF_C5, b, BN_EXPF_C4), u, __fmaf_rn(BN_EXPF_C3, b, BN_EXPF_C2)),
                              u, __fmaf_rn(BN_EXPF_C1, b, 1.0f));
    const int ni = (int)n, n1 = ni / 2, n2 = ni - n1;
    return __fmul_rn(__fmul_rn(j, pow2f(n1)), pow2f(n2));
}

/* bn_tree16 across 16 consecutive threads of a warp (thread 16g + l holds lane l of group g):
 * lanes l and l + 8, then + 4, + 2, + 1, each sum rounded to float. The result is valid in the
 * group's first thread (l == 0). Every thread of the warp must call it. */
__device__ __forceinline__ float tree16_shfl(float v) {
    v = __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, 8, 16));
    v = __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, 4, 16));
    v = __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, 2, 16));
    return __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, 1, 16));
}

/* bn_tree16 of 16 values one thread holds (lane l at lanes[l * stride]). */
__device__ __forceinline__ float tree16_serial(const float *lanes, int stride) {
    float v[8];
#pragma unroll
    for (int l = 0; l < 8; l++) v[l] = __fadd_rn(lanes[l * stride], lanes[(l + 8) * stride]);
#pragma unroll
    for (int l = 0; l < 4; l++) v[l] = __fadd_rn(v[l], v[l + 4]);
#pragma unroll
    for (int l = 0; l < 2; l++) v[l] = __fadd_rn(v[l], v[l + 2]);
    return __fadd_rn(v[0], v[1]);
}

/* bn_rmsnorm_mean: (float)(sum_squares / cols). */
__device__ __forceinline__ float rmsnorm_mean(double sum_squares, int cols) {
    return __double2float_rn(__ddiv_rn(sum_squares, (double)cols));
}

/* bn_rmsnorm_mean_certain: a sum of the squares in any order lies within 4 cols 2^-53 of the
 * sequential one; when the means of both ends of that interval round to the same float, the
 * sequential sum's mean is that float too (true, *mean set). Otherwise (rare, and NaN) false. */
__device__ __forceinline__ bool rmsnorm_mean_certain(double any_order_sum, int cols, float *mean) {
    const double margin = __dmul_rn(__dmul_rn(4.0, (double)cols), 0x1p-53);
    const float low = rmsnorm_mean(__dmul_rn(any_order_sum, __dadd_rn(1.0, -margin)), cols);
    const float high = rmsnorm_mean(__dmul_rn(any_order_sum, __dadd_rn(1.0, margin)), cols);
    if (low != high) return false;
    *mean = low;
    return true;
}

/* ---- RMSNorm (bn_ref_rmsnorm) ----
 * Block per token. The float squares x*x are summed in double across the block (any order); the
 * guard above turns that into the sequential sum's mean, else thread 0 adds the squares in order
 * (bn_ref_sum_squares). scale = 1.0f / sqrtf(mean + eps) in float; out = (x * scale) * w. */

__global__ void rmsnorm_kernel(float *out, const float *x, const float *weight, int cols, float eps) {
    __shared__ double scratch[32];
    __shared__ float scale_shared;
    const float *xt = x + (size_t)blockIdx.x * cols;
    float *ot = out + (size_t)blockIdx.x * cols;
    double ss = 0.0;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) ss = __dadd_rn(ss, (double)__fmul_rn(xt[i], xt[i]));
    ss = block_sum(ss, scratch);
    if (threadIdx.x == 0) {
        float mean;
        if (!rmsnorm_mean_certain(ss, cols, &mean)) {
            double sequential = 0.0;
            for (int i = 0; i < cols; i++) sequential = __dadd_rn(sequential, (double)__fmul_rn(xt[i], xt[i]));
            mean = rmsnorm_mean(sequential, cols);
        }
        scale_shared = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
    }
    __syncthreads(); /* also: no thread writes out (which may be x) before thread 0 has read x */
    const float scale = scale_shared;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) ot[i] = __fmul_rn(__fmul_rn(xt[i], scale), weight[i]);
}

extern "C" void bn_cuda_rmsnorm(bn_cuda_context *ctx, float *out, const float *x, const float *weight,
                                int n, int cols, float eps) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    rmsnorm_kernel<<<n, 256, 0, ctx->stream>>>(out, x, weight, cols, eps);
    BN_CUDA_LAUNCHED(ctx, "cuda.rmsnorm", t0);
}

/* ---- NEOX RoPE: dimension i pairs with i + half, angles from the host's table ----
 * The rotation of rope_rotate (ref_ops.c): x0' = fmaf(x0, c, -(x1 * s)), x1' = fmaf(x0, s, x1 * c)
 * with x1 * s and x1 * c rounded first. */

__global__ void rope_kernel(float *x, int n_heads, int head_dim, int half, const float *angles) {
    const int t = blockIdx.x;
    float *xt = x + (size_t)t * n_heads * head_dim;
    const float *cos_t = angles + (size_t)t * 2 * half, *sin_t = cos_t + half;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float c = cos_t[i], s = sin_t[i];
        for (int h = 0; h < n_heads; h++) {
            float *x0 = xt + (size_t)h * head_dim + i;
            const float a = x0[0], b = x0[half];
            const float b_sin = __fmul_rn(b, s), b_cos = __fmul_rn(b, c);
            x0[0] = __fmaf_rn(a, c, -b_sin);
            x0[half] = __fmaf_rn(a, s, b_cos);
        }
    }
}

extern "C" int bn_cuda_rope_half(int head_dim, int rope_dim) {
    return (rope_dim < head_dim ? rope_dim : head_dim) / 2;
}

extern "C" void bn_cuda_rope_neox(bn_cuda_context *ctx, float *x, int n_heads, int head_dim, int rope_dim,
                                  const float *angles, int n) {
    if (n <= 0) return;
    const int half = bn_cuda_rope_half(head_dim, rope_dim);
    if (half <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    rope_kernel<<<n, half < 128 ? 32 * ((half + 31) / 32) : 128, 0, ctx->stream>>>(x, n_heads, head_dim, half,
                                                                                   angles);
    BN_CUDA_LAUNCHED(ctx, "cuda.rope_neox", t0);
}

/* ---- KV cache store ---- */

/* The cache types (quant/quant_format.h's ids) and ggml's block_q8_0. */
#define KV_F32 0u
#define KV_F16 1u
#define KV_Q8_0 8u
#define Q8_0_BLOCK 32
struct q8_0_block {
    unsigned short d; /* fp16 */
    int8_t qs[Q8_0_BLOCK];
};
static_assert(sizeof(q8_0_block) == 34, "block_q8_0 is 34 bytes");

/* One row of kv_dim values from element index row on, in the type. Q8_0: a thread per block,
 * bn_quantize_row_q8_0's arithmetic (d = fp16(amax / 127), q = rint(x * (127 / amax)) saturated,
 * amax 0 gives d = 0, q = 0), every operation rounded as on the CPU. */
__device__ void store_kv_row(void *cache, uint32_t type, size_t row, const float *x, int kv_dim) {
    if (type == KV_Q8_0) {
        for (int b = threadIdx.x; b < kv_dim / Q8_0_BLOCK; b += blockDim.x) {
            q8_0_block *block = (q8_0_block *)cache + row / Q8_0_BLOCK + b;
            const float *xb = x + (size_t)b * Q8_0_BLOCK;
            float amax = 0.0f;
            for (int j = 0; j < Q8_0_BLOCK; j++) {
                const float ax = fabsf(xb[j]);
                amax = amax > ax ? amax : ax;
            }
            block->d = __half_as_ushort(__float2half_rn(__fdiv_rn(amax, 127.0f)));
            const float id = amax != 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
            for (int j = 0; j < Q8_0_BLOCK; j++) {
                const float v = rintf(__fmul_rn(xb[j], id));
                block->qs[j] = (int8_t)(!(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v);
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        if (type == KV_F16) ((__half *)cache)[row + i] = __float2half_rn(x[i]);
        else ((float *)cache)[row + i] = x[i];
    }
}

__global__ void kv_store_kernel(const bn_cuda_kv_entry *entries, int layer, int kv_dim, uint32_t k_type,
                                uint32_t v_type, const float *k, const float *v) {
    const int t = blockIdx.x;
    const bn_cuda_kv_entry e = entries[t];
    const size_t row = ((size_t)layer * (size_t)e.capacity + (size_t)e.pos) * (size_t)kv_dim;
    store_kv_row(e.k, k_type, row, k + (size_t)t * kv_dim, kv_dim);
    store_kv_row(e.v, v_type, row, v + (size_t)t * kv_dim, kv_dim);
}

extern "C" void bn_cuda_kv_store(bn_cuda_context *ctx, const bn_cuda_kv_entry *entries, int n, int layer,
                                 int kv_dim, uint32_t k_type, uint32_t v_type, const float *k, const float *v) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    kv_store_kernel<<<n, 128, 0, ctx->stream>>>(entries, layer, kv_dim, k_type, v_type, k, v);
    BN_CUDA_LAUNCHED(ctx, "cuda.kv_store", t0);
}

/* ---- softmax of one row in place (one block), bn_ref_softmax ----
 * The special cases of bn_ref_softmax_special: any NaN -> all NaN; a +inf maximum shares 1 among
 * the +infs; an all -inf row is uniform. Otherwise e_i = expf_ggml(x_i - max); each 16-element
 * chunk of e (zero past n) summed by the lane tree in float, the chunk sums added in double in
 * chunk order (thread 0, SOFTMAX_THREADS / 16 chunks per round); p_i = e_i * (float)(1.0 / sum).
 * blockDim.x must be SOFTMAX_THREADS. */

#define SOFTMAX_THREADS 256

__device__ void softmax_row(float *row, int n, float *scratch, float *chunk_sums) {
    float m = -INFINITY;
    int nan_count = 0, inf_count = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = row[i];
        if (isnan(v)) nan_count++;
        else m = fmaxf(m, v);
        inf_count += v == INFINITY;
    }
    m = block_max(m, scratch);
    nan_count = block_sum(nan_count, (int *)scratch);
    inf_count = block_sum(inf_count, (int *)scratch);
    if (nan_count > 0 || m == INFINITY || m == -INFINITY) {
        const float share = m == INFINITY ? __double2float_rn(__ddiv_rn(1.0, (double)inf_count))
                                          : __double2float_rn(__ddiv_rn(1.0, (double)n));
        for (int i = threadIdx.x; i < n; i += blockDim.x)
            row[i] = nan_count > 0 ? NAN : m == -INFINITY ? share : (row[i] == INFINITY ? share : 0.0f);
        return;
    }
    /* element i = base + threadIdx.x: lane i % 16 of chunk i / 16 (base is a multiple of 16) */
    double sum = 0.0; /* thread 0's */
    for (int base = 0; base < n; base += blockDim.x) {
        const int i = base + threadIdx.x;
        float e = 0.0f;
        if (i < n) {
            e = expf_ggml(__fsub_rn(row[i], m));
            row[i] = e;
        }
        const float chunk = tree16_shfl(e);
        if ((threadIdx.x & (LANES - 1)) == 0) chunk_sums[threadIdx.x / LANES] = chunk;
        __syncthreads();
        if (threadIdx.x == 0) {
            const int n_chunks = (min(n - base, (int)blockDim.x) + LANES - 1) / LANES;
            for (int c = 0; c < n_chunks; c++) sum = __dadd_rn(sum, (double)chunk_sums[c]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) scratch[0] = __double2float_rn(__ddiv_rn(1.0, sum));
    __syncthreads();
    const float inv = scratch[0];
    for (int i = threadIdx.x; i < n; i += blockDim.x) row[i] = __fmul_rn(row[i], inv);
}

/* ---- attention (bn_ref_attention) ----
 * Three kernels, each in the reference's order:
 *   scores: block per (token, head, SCORE_POSITIONS positions), a warp per position computing
 *     bn_ref_score_dot: thread j (0..31) keeps the 2 of the 64 accumulator lanes whose dims are
 *     j and j + 32 mod 64 (accumulators j / 16 and j / 16 + 2, lane j % 16), one __fmaf_rn per
 *     dim in dim order; acc0 + acc2 and acc1 + acc3 in the thread, their sum across threads j
 *     and j + 16, the 16-lane tree by shuffles; thread 0 adds the leftover dims' float products
 *     (head_dim % 64) one by one in double, rounds once and multiplies by the scale in float;
 *   softmax: block per (token, head), softmax_row;
 *   values: block per (token, head, 16 dims), thread per (dim, lane l): lane l of out[d] is the
 *     __fmaf_rn chain over the positions t = l mod 16 in increasing order, then thread l == 0
 *     sums the 16 lanes by the tree.
 * With an F16 K cache q is rounded to F16 (RNE) before the score dots (bn_ref_query_value); a
 * q8_0 value is (float)q * d, exact, as the reference reads it. */

#define SCORE_THREADS 128
#define SCORE_POSITIONS 64 /* positions per score block */
#define VALUE_DIMS 16      /* dims per value block: VALUE_DIMS x LANES threads */

__device__ __forceinline__ float cache_value(const void *cache, uint32_t type, size_t index) {
    if (type == KV_F16) return __half2float(((const __half *)cache)[index]);
    if (type == KV_Q8_0) {
        const q8_0_block *block = (const q8_0_block *)cache + index / Q8_0_BLOCK;
        return __fmul_rn((float)block->qs[index % Q8_0_BLOCK], __half2float(__ushort_as_half(block->d)));
    }
    return ((const float *)cache)[index];
}

__global__ void attention_scores_kernel(float *scores, int stride, const float *q,
                                        const bn_cuda_kv_entry *entries, int layer, int n_heads, int group,
                                        int head_dim, int kv_dim, uint32_t k_type, float scale) {
    extern __shared__ float qs[];
    const int item = blockIdx.x, t = item / n_heads, h = item % n_heads;
    const bn_cuda_kv_entry e = entries[t];
    const int p0 = blockIdx.y * SCORE_POSITIONS, p1 = min(e.pos + 1, p0 + SCORE_POSITIONS);
    if (p0 >= p1) return; /* the whole block */
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        const float v = q[((size_t)t * n_heads + h) * head_dim + d];
        qs[d] = k_type == KV_F16 ? __half2float(__float2half_rn(v)) : v;
    }
    __syncthreads();
    const size_t base = (size_t)layer * (size_t)e.capacity * (size_t)kv_dim + (size_t)(h / group) * head_dim;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const int full = head_dim - head_dim % (4 * LANES);
    for (int p = p0 + warp; p < p1; p += n_warps) {
        const size_t row = base + (size_t)p * kv_dim;
        float acc_a = 0.0f, acc_b = 0.0f; /* accumulator lane / 16 and lane / 16 + 2, lane lane % 16 */
        for (int d = 0; d < full; d += 4 * LANES) {
            acc_a = __fmaf_rn(qs[d + lane], cache_value(e.k, k_type, row + d + lane), acc_a);
            acc_b = __fmaf_rn(qs[d + 32 + lane], cache_value(e.k, k_type, row + d + 32 + lane), acc_b);
        }
        float v = __fadd_rn(acc_a, acc_b);                     /* acc0 + acc2 (j < 16), acc1 + acc3 */
        v = __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, 16)); /* lanes[l] = a0 + a1, in threads 0..15 */
        v = tree16_shfl(v);
        if (lane == 0) {
            double sum = (double)v;
            for (int d = full; d < head_dim; d++)
                sum = __dadd_rn(sum, (double)__fmul_rn(qs[d], cache_value(e.k, k_type, row + d)));
            scores[(size_t)item * stride + p] = __fmul_rn(__double2float_rn(sum), scale);
        }
    }
}

__global__ void attention_softmax_kernel(float *scores, int stride, const bn_cuda_kv_entry *entries, int n_heads) {
    __shared__ float scratch[32];
    __shared__ float chunk_sums[SOFTMAX_THREADS / LANES];
    const int item = blockIdx.x;
    softmax_row(scores + (size_t)item * stride, entries[item / n_heads].pos + 1, scratch, chunk_sums);
}

__global__ void attention_values_kernel(float *out, const float *probs, int stride,
                                        const bn_cuda_kv_entry *entries, int layer, int n_heads, int group,
                                        int head_dim, int kv_dim, uint32_t v_type) {
    __shared__ float lanes[LANES][VALUE_DIMS + 1];
    const int item = blockIdx.x, t = item / n_heads, h = item % n_heads;
    const int dl = threadIdx.x % VALUE_DIMS, l = threadIdx.x / VALUE_DIMS;
    const int d = blockIdx.y * VALUE_DIMS + dl;
    const bn_cuda_kv_entry e = entries[t];
    const int n_pos = e.pos + 1;
    const float *p = probs + (size_t)item * stride;
    const size_t base = (size_t)layer * (size_t)e.capacity * (size_t)kv_dim + (size_t)(h / group) * head_dim;
    float acc = 0.0f;
    if (d < head_dim)
        for (int tp = l; tp < n_pos; tp += LANES)
            acc = __fmaf_rn(cache_value(e.v, v_type, base + (size_t)tp * kv_dim + d), p[tp], acc);
    lanes[l][dl] = acc;
    __syncthreads();
    if (l == 0 && d < head_dim) out[(size_t)item * head_dim + d] = tree16_serial(&lanes[0][dl], VALUE_DIMS + 1);
}

extern "C" size_t bn_cuda_attention_scratch_floats(int n, int n_heads, int max_context) {
    return (size_t)n * (size_t)n_heads * (size_t)max_context;
}

extern "C" void bn_cuda_attention(bn_cuda_context *ctx, float *out, const float *q,
                                  const bn_cuda_kv_entry *entries, int n, int layer, int n_heads,
                                  int n_kv_heads, int head_dim, uint32_t k_type, uint32_t v_type, int max_pos,
                                  float *scratch) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    const int stride = max_pos + 1;
    const float scale = 1.0f / sqrtf((float)head_dim); /* bn_attention_scale, on the host */
    const int group = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim;
    const unsigned items = (unsigned)n * (unsigned)n_heads;
    float *scores = scratch;
    const dim3 score_grid(items, (unsigned)((stride + SCORE_POSITIONS - 1) / SCORE_POSITIONS));
    attention_scores_kernel<<<score_grid, SCORE_THREADS, (size_t)head_dim * sizeof(float), ctx->stream>>>(
        scores, stride, q, entries, layer, n_heads, group, head_dim, kv_dim, k_type, scale);
    attention_softmax_kernel<<<items, SOFTMAX_THREADS, 0, ctx->stream>>>(scores, stride, entries, n_heads);
    const dim3 value_grid(items, (unsigned)((head_dim + VALUE_DIMS - 1) / VALUE_DIMS));
    attention_values_kernel<<<value_grid, VALUE_DIMS * LANES, 0, ctx->stream>>>(
        out, scores, stride, entries, layer, n_heads, group, head_dim, kv_dim, v_type);
    BN_CUDA_LAUNCHED(ctx, "cuda.attention", t0);
}

/* ---- softmax (rows in place), bn_ref_softmax ---- */

__global__ void softmax_kernel(float *x, int n) {
    __shared__ float scratch[32];
    __shared__ float chunk_sums[SOFTMAX_THREADS / LANES];
    softmax_row(x + (size_t)blockIdx.x * n, n, scratch, chunk_sums);
}

extern "C" void bn_cuda_softmax(bn_cuda_context *ctx, float *x, int rows, int n) {
    if (rows <= 0 || n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    softmax_kernel<<<rows, SOFTMAX_THREADS, 0, ctx->stream>>>(x, n);
    BN_CUDA_LAUNCHED(ctx, "cuda.softmax", t0);
}

/* ---- element-wise ---- */

__device__ __forceinline__ float relu(float x) { return x < 0.0f ? 0.0f : x; }

/* The auxiliary activations (bn_ref_silu, bn_ref_gelu): double evaluation. */
__device__ __forceinline__ float silu(float x) {
    if (x == -INFINITY) return -0.0f;
    const double d = x;
    return (float)(d / (1.0 + exp(-d)));
}

__device__ __forceinline__ float gelu(float x) {
    if (x == -INFINITY) return -0.0f;
    const double k = 0.7978845608028654; /* sqrt(2/pi) */
    const double d = x;
    const double y = k * (d + 0.044715 * d * d * d);
    return (float)(d / (1.0 + exp(-2.0 * y)));
}

/* bn_ref_relu2_mul, or bn_ref_silu_mul applied per row of row_width values (as the CPU backend
 * calls it; the last row may be shorter): in a row of width w, the elements of the full groups
 * of 16 (index < w - w % 16) take expf_ggml(-x), the rest exp(-x) in double rounded to float
 * (the CPU's glibc expf: at most a rare one-ulp difference); y = (x / (1.0f + e)) * up. */
__global__ void ffn_activation_kernel(float *out, const float *gate, const float *up, size_t n, size_t row_width,
                                      bool relu2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (relu2) {
            const float r = relu(gate[i]);
            out[i] = __fmul_rn(__fmul_rn(r, r), up[i]);
        } else {
            const size_t col = i % row_width, row_start = i - col;
            const size_t width = n - row_start < row_width ? n - row_start : row_width;
            const float x = gate[i];
            const float e = col < width - width % LANES ? expf_ggml(-x) : __double2float_rn(exp(-(double)x));
            out[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, e)), up[i]);
        }
    }
}

static unsigned elementwise_blocks(size_t n) {
    unsigned blocks = bn_cuda_blocks(n, 256);
    return blocks > 65535u ? 65535u : (blocks ? blocks : 1u);
}

extern "C" void bn_cuda_ffn_activation(bn_cuda_context *ctx, float *out, const float *gate, const float *up,
                                       size_t n_values, size_t row_width, bool relu2) {
    if (n_values == 0) return;
    if (row_width == 0 || row_width > n_values) row_width = n_values;
    uint64_t t0 = bn_kernel_begin();
    ffn_activation_kernel<<<elementwise_blocks(n_values), 256, 0, ctx->stream>>>(out, gate, up, n_values, row_width,
                                                                                 relu2);
    if (relu2)
        BN_CUDA_LAUNCHED(ctx, "cuda.relu2_mul", t0);
    else
        BN_CUDA_LAUNCHED(ctx, "cuda.silu_mul", t0);
}

__global__ void add_kernel(float *x, const float *y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], y[i]);
}

extern "C" void bn_cuda_add(bn_cuda_context *ctx, float *x, const float *y, size_t n_values) {
    if (n_values == 0) return;
    uint64_t t0 = bn_kernel_begin();
    add_kernel<<<elementwise_blocks(n_values), 256, 0, ctx->stream>>>(x, y, n_values);
    BN_CUDA_LAUNCHED(ctx, "cuda.add", t0);
}

__global__ void embed_kernel(float *x, const __half *table, const int32_t *tokens, int cols) {
    const __half *row = table + (size_t)tokens[blockIdx.x] * cols;
    float *xt = x + (size_t)blockIdx.x * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) xt[i] = __half2float(row[i]);
}

extern "C" void bn_cuda_embed(bn_cuda_context *ctx, float *x, const uint16_t *table, const int32_t *tokens,
                              int n, int cols) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    embed_kernel<<<n, 256, 0, ctx->stream>>>(x, (const __half *)table, tokens, cols);
    BN_CUDA_LAUNCHED(ctx, "cuda.embedding_f16", t0);
}

__global__ void gather_kernel(float *dst, const float *src, const int32_t *rows, int cols) {
    const float *s = src + (size_t)rows[blockIdx.x] * cols;
    float *d = dst + (size_t)blockIdx.x * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) d[i] = s[i];
}

extern "C" void bn_cuda_gather_rows(bn_cuda_context *ctx, float *dst, const float *src, const int32_t *rows,
                                    int n, int cols) {
    if (n <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    gather_kernel<<<n, 256, 0, ctx->stream>>>(dst, src, rows, cols);
    BN_CUDA_LAUNCHED(ctx, "cuda.gather_rows", t0);
}

/* ---- auxiliary: batch normalization and activations ---- */

__global__ void batchnorm_kernel(float *out, const float *x, const float *mean, const float *var,
                                 const float *gamma, const float *beta, int length, float eps) {
    const int c = blockIdx.x;
    const float a = (float)((double)gamma[c] / sqrt((double)var[c] + (double)eps));
    const float m = mean[c], b = beta[c];
    const float *xc = x + (size_t)c * length;
    float *oc = out + (size_t)c * length;
    for (int i = threadIdx.x; i < length; i += blockDim.x) oc[i] = __fadd_rn(__fmul_rn(__fsub_rn(xc[i], m), a), b);
}

extern "C" void bn_cuda_batchnorm(bn_cuda_context *ctx, float *out, const float *x, const float *mean,
                                  const float *var, const float *gamma, const float *beta, int channels,
                                  int length, float eps) {
    if (channels <= 0 || length <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    batchnorm_kernel<<<channels, 256, 0, ctx->stream>>>(out, x, mean, var, gamma, beta, length, eps);
    BN_CUDA_LAUNCHED(ctx, "cuda.batchnorm", t0);
}

__global__ void activation_kernel(float *out, const float *x, size_t n, int act) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = x[i];
        float r;
        switch (act) {
        case 0: r = relu(v); break;
        case 1: r = relu(v), r = __fmul_rn(r, r); break;
        case 2: r = silu(v); break;
        default: r = gelu(v); break;
        }
        out[i] = r;
    }
}

extern "C" void bn_cuda_activation(bn_cuda_context *ctx, float *out, const float *x, size_t n, int act) {
    static const char *const ids[4] = {"cuda.relu", "cuda.relu2", "cuda.silu", "cuda.gelu"};
    static bn_kernel_slot slots[4]; /* one registry slot per id */
    if (n == 0 || act < 0 || act > 3) return;
    uint64_t t0 = bn_kernel_begin();
    activation_kernel<<<elementwise_blocks(n), 256, 0, ctx->stream>>>(out, x, n, act);
    bn_cuda_note_launch(ctx, ids[act]);
    bn_kernel_end(&slots[act], ids[act], t0);
}
