/*
 * matmul_avx512.c: AVX-512 (F/BW/VL + VNNI) matrix kernels; contracts in ref_matmul.h and
 * matmul_isa.h.
 *
 * Ternary: vpdpbusd multiplies unsigned codes (w + 1) by int8 activations and sums four products
 * per int32 lane; the activation sum is subtracted afterwards (spec section 4). One 64-byte load
 * covers two I2_S blocks (or one TQ2_0 block); its 2-bit field n holds columns 32n.. of the first
 * block in the low half and of the second in the high half, so the dispatcher hands us the
 * activations reordered the same way (q_pairs) and four shift+mask steps feed four vpdpbusd with
 * no shuffles. GEMV runs over the I2S_TILE8 layout one tile of 8 rows at a time (a sequential
 * stream, software prefetch 12 KiB ahead) sharing the activation registers; GEMM keeps a 2-row x
 * 8-token tile of accumulators, so each decoded weight vector feeds 8 tokens and each activation
 * load 2 rows. GEMM is bound by vpdpbusd throughput (two 512-bit vpdpbusd per cycle on the
 * development machine's Zen 5 cores, 128 MACs), not by memory.
 *
 * F16: one 16-lane accumulator per output (lane = column % 16), one fused multiply-add per
 * product, reduced by the shared pairwise step: bit-identical to the reference; GEMV reads two
 * sequential row streams (the halves of the thread's rows) with a short software prefetch; GEMM
 * takes groups of 32 rows in 512-column blocks, two rows and up to 8 tokens in registers.
 * Int8: vpdpbusd on q + 128 and the weights, minus 128 * (row sum of the weights), computed with
 * the same instruction.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/matmul_isa.h"

#include "kernels/cpu_features.h"

#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <immintrin.h>
#include <stdbool.h>
#include <math.h>
#include <string.h>

/* Bytes ahead of the current load (tuned on the 2B-4T shapes: 8-16 KiB is the plateau; the
 * hardware prefetchers alone reach about a third of the bandwidth with 4 interleaved rows). */
#define PREFETCH_DISTANCE 12288
/* The one-token GEMV: see BN_I2S_GEMV_PREFETCH_DISTANCE in matmul_isa.h. */
#define GEMV_PREFETCH_DISTANCE BN_I2S_GEMV_PREFETCH_DISTANCE
/* Columns per block of a GEMM over wide matrices: 8 tokens' activations for one block (24 KiB)
 * stay in L1 (the 2560 x 6912 down projection ran at 78 MACs per cycle unblocked, against 119
 * for the 2560-column matrices). */
#define GEMM_COLUMN_BLOCK 3072

/* Makes the compiler load v once into a register: left alone, GCC folds the load into each
 * vpdpbusd that uses it (a memory operand), so one activation vector feeding two rows is loaded
 * twice and the GEMM tile becomes bound by the two load ports instead of by vpdpbusd (6912 x 2560,
 * 64 tokens, one thread, same run: 93 -> 110 MACs per cycle of the 128 two vpdpbusd give). */
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))

/* ---- activation quantization ---- */

void bn_avx512_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                    int n_tokens, int cols) {
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * cols;
        int8_t *qt = q + (size_t)t * cols;
        __m512 vmax = _mm512_setzero_ps();
        int c = 0;
        for (; c + 16 <= cols; c += 16)
            vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xt + c)), vmax);
        if (c < cols) {
            __mmask16 mask = (__mmask16)((1u << (cols - c)) - 1);
            vmax = _mm512_mask_max_ps(vmax, mask, _mm512_abs_ps(_mm512_maskz_loadu_ps(mask, xt + c)),
                                      vmax);
        }
        float lanes[16];
        _mm512_storeu_ps(lanes, vmax);
        float max_abs = 0.0f;
        for (int i = 0; i < 16; i++)
            if (lanes[i] > max_abs) max_abs = lanes[i];
        double denominator = max_abs > 1e-5f ? (double)max_abs : 1e-5;
        float scale = (float)(127.0 / denominator);
        const __m512 vs = _mm512_set1_ps(scale);
        __m512i vsum = _mm512_setzero_si512();
        for (c = 0; c + 16 <= cols; c += 16) {
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xt + c), vs));
            __m128i packed = _mm512_cvtsepi32_epi8(v);
            _mm_storeu_si128((__m128i *)(qt + c), packed);
            vsum = _mm512_add_epi32(vsum, _mm512_cvtepi8_epi32(packed));
        }
        if (c < cols) {
            __mmask16 mask = (__mmask16)((1u << (cols - c)) - 1);
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, xt + c), vs));
            __m128i packed = _mm512_maskz_cvtsepi32_epi8(mask, v);
            _mm_mask_storeu_epi8(qt + c, mask, packed);
            vsum = _mm512_add_epi32(vsum, _mm512_cvtepi8_epi32(packed));
        }
        scales[t] = scale;
        sums[t] = _mm512_reduce_add_epi32(vsum);
    }
}

/* ---- ternary ---- */

void bn_avx512_pair_activations(int8_t *q_pairs, const int8_t *q, int n_tokens, int cols) {
    for (int t = 0; t < n_tokens; t++) {
        const int8_t *src = q + (size_t)t * cols;
        int8_t *dst = q_pairs + (size_t)t * cols;
        int c = 0;
        for (; c + 256 <= cols; c += 256)
            for (int n = 0; n < 4; n++) {
                __m256i first = _mm256_loadu_si256((const __m256i *)(src + c + 32 * n));
                __m256i second = _mm256_loadu_si256((const __m256i *)(src + c + 128 + 32 * n));
                _mm512_storeu_si512(dst + c + 64 * n,
                                    _mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1));
            }
        memcpy(dst + c, src + c, (size_t)(cols - c)); /* odd trailing 128-block as is */
    }
}

/* Four code vectors of a 64-byte load; shift order per format (I2_S 6,4,2,0; TQ2_0 0,2,4,6). */
#define CODES(w, s0, s1, s2, s3, c)                                                   \
    do {                                                                                \
        const __m512i m3_ = _mm512_set1_epi8(3);                                        \
        c[0] = _mm512_and_si512(_mm512_srli_epi16(w, s0), m3_);                         \
        c[1] = _mm512_and_si512(_mm512_srli_epi16(w, s1), m3_);                         \
        c[2] = _mm512_and_si512(_mm512_srli_epi16(w, s2), m3_);                         \
        c[3] = _mm512_and_si512(_mm512_srli_epi16(w, s3), m3_);                         \
    } while (0)

/* The one-token tile GEMV with shift-and-mask decoding (i2s_gemv_tile.h; the GFNI version is in
 * matmul_avx512gfni.c). */
#define I2S_GEMV_TILE_NAME i2s_gemv_tile
#define I2S_GEMV_FIELD(packed, shift) _mm512_and_si512(_mm512_srli_epi16((packed), (shift)), m3)
#include "kernels/cpu/i2s_gemv_tile.h"
#undef I2S_GEMV_TILE_NAME
#undef I2S_GEMV_FIELD

/* One row (any layout) against up to 8 tokens: each decoded pair feeds n accumulators. Inlined
 * with a constant n (see i2s_row_tokens) so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void i2s_row_tokens_n(int32_t *raw, bn_i2s_row w,
                                                                   const int8_t *xp, const int n,
                                                                   int cols) {
    __m512i acc[8];
    for (int t = 0; t < n; t++) acc[t] = _mm512_setzero_si512();
    const int pairs = cols / 256;
    for (int p = 0; p < pairs; p++) {
        __m512i c[4];
        CODES(_mm512_loadu_si512(w.first + (size_t)p * w.pair_stride), 6, 4, 2, 0, c);
        for (int t = 0; t < n; t++) {
            const int8_t *xb = xp + (size_t)t * cols + (size_t)p * 256;
            acc[t] = _mm512_dpbusd_epi32(acc[t], c[0], _mm512_loadu_si512(xb));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c[1], _mm512_loadu_si512(xb + 64));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c[2], _mm512_loadu_si512(xb + 128));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c[3], _mm512_loadu_si512(xb + 192));
        }
    }
    for (int t = 0; t < n; t++) {
        int32_t sum = _mm512_reduce_add_epi32(acc[t]);
        if (cols % 256)
            sum += reduce256(i2s_tail_block(_mm256_setzero_si256(), w.tail,
                                            xp + (size_t)t * cols + (size_t)pairs * 256));
        raw[t] = sum;
    }
}

static void i2s_row_tokens(int32_t *raw, bn_i2s_row w, const int8_t *xp, int n, int cols) {
    switch (n) {
    case 1: i2s_row_tokens_n(raw, w, xp, 1, cols); break;
    case 2: i2s_row_tokens_n(raw, w, xp, 2, cols); break;
    case 3: i2s_row_tokens_n(raw, w, xp, 3, cols); break;
    case 4: i2s_row_tokens_n(raw, w, xp, 4, cols); break;
    case 5: i2s_row_tokens_n(raw, w, xp, 5, cols); break;
    case 6: i2s_row_tokens_n(raw, w, xp, 6, cols); break;
    case 7: i2s_row_tokens_n(raw, w, xp, 7, cols); break;
    default: i2s_row_tokens_n(raw, w, xp, 8, cols); break;
    }
}

/* Lane sums of 8 accumulators at once (a transposing add tree: about 2 instructions per sum
 * instead of a full reduction each). */
static inline __m256i reduce8(const __m512i a[8]) {
    __m512i w[2];
    for (int h = 0; h < 2; h++) {
        const __m512i *v = a + 4 * h;
        __m512i u01 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]),
                                       _mm512_unpackhi_epi32(v[0], v[1]));
        __m512i u23 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]),
                                       _mm512_unpackhi_epi32(v[2], v[3]));
        /* per 128-bit lane: partial sums of v[0], v[1], v[2], v[3] */
        w[h] = _mm512_add_epi32(_mm512_unpacklo_epi64(u01, u23), _mm512_unpackhi_epi64(u01, u23));
    }
    /* lanes: w0.l0+w0.l1, w0.l2+w0.l3, w1.l0+w1.l1, w1.l2+w1.l3 */
    __m512i x = _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], 0x88),
                                 _mm512_shuffle_i32x4(w[0], w[1], 0xdd));
    /* lane 0: totals of a[0..3]; lane 2: totals of a[4..7] */
    x = _mm512_add_epi32(x, _mm512_shuffle_i32x4(x, x, 0xb1));
    return _mm512_castsi512_si256(_mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0), x));
}

/* The GEMM register tile: 2 rows x n tokens (n a constant up to 8 after inlining: up to 16
 * accumulators); every activation load feeds two vpdpbusd and every decoded weight vector 2n.
 * Writes raw - x_sums for the n tokens. With ahead (else NULL), each pair block p also prefetches
 * ahead_step bytes at ahead + (p - pair_begin) * ahead_step (the caller's stream of the weights to
 * come). The 8-token case is inlined where it is called: through the out-of-line dispatch below it
 * ran the 64-token GEMM 16% slower. */
static inline __attribute__((always_inline)) void i2s_rows2_tokens_n(int32_t *out0, int32_t *out1,
                                                                     bn_i2s_row w0, bn_i2s_row w1,
                                                                     const int8_t *xp,
                                                                     const int32_t *x_sums,
                                                                     const int n, int cols,
                                                                     int pair_begin, int pair_end,
                                                                     const uint8_t *ahead,
                                                                     int ahead_step) {
    __m512i acc0[8], acc1[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc0[t] = acc1[t] = _mm512_setzero_si512();
    const int pairs = cols / 256;
    const __m512i m3 = _mm512_set1_epi8(3);
    for (int p = pair_begin; p < pair_end; p++) {
        const __m512i p0 = _mm512_loadu_si512(w0.first + (size_t)p * w0.pair_stride);
        const __m512i p1 = _mm512_loadu_si512(w1.first + (size_t)p * w1.pair_stride);
        const int8_t *xb = xp + (size_t)p * 256;
        if (ahead) { /* ahead_step bytes of the stream ahead per pair block */
            const uint8_t *a = ahead + (size_t)(p - pair_begin) * (size_t)ahead_step;
            for (int line = 0; line < ahead_step; line += 64) _mm_prefetch((const char *)(a + line), _MM_HINT_T0);
        }
        /* one 2-bit field at a time keeps 16 accumulators + 2 code vectors in registers */
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m512i a = _mm512_and_si512(_mm512_srli_epi16(p0, 6 - 2 * g), m3);
            const __m512i b = _mm512_and_si512(_mm512_srli_epi16(p1, 6 - 2 * g), m3);
#pragma GCC unroll 8
            for (int t = 0; t < n; t++) {
                __m512i x = _mm512_loadu_si512(xb + (size_t)t * cols + 64 * g);
                KEEP_IN_REGISTER(x);
                acc0[t] = _mm512_dpbusd_epi32(acc0[t], a, x);
                acc1[t] = _mm512_dpbusd_epi32(acc1[t], b, x);
            }
        }
    }
    __m256i s0 = reduce8(acc0), s1 = reduce8(acc1); /* lanes n..7 are zero */
    const __mmask8 mask = (__mmask8)((1u << n) - 1u);
    if (cols % 256 && pair_end == pairs) {
        int32_t extra[2][8] = {{0}};
        for (int t = 0; t < n; t++) {
            const int8_t *xt = xp + (size_t)t * cols + (size_t)pairs * 256;
            extra[0][t] = reduce256(i2s_tail_block(_mm256_setzero_si256(), w0.tail, xt));
            extra[1][t] = reduce256(i2s_tail_block(_mm256_setzero_si256(), w1.tail, xt));
        }
        s0 = _mm256_add_epi32(s0, _mm256_loadu_si256((const __m256i *)extra[0]));
        s1 = _mm256_add_epi32(s1, _mm256_loadu_si256((const __m256i *)extra[1]));
    }
    if (pair_begin == 0) { /* unsigned codes: subtract each token's activation sum */
        __m256i sums = _mm256_maskz_loadu_epi32(mask, x_sums);
        _mm256_mask_storeu_epi32(out0, mask, _mm256_sub_epi32(s0, sums));
        _mm256_mask_storeu_epi32(out1, mask, _mm256_sub_epi32(s1, sums));
    } else { /* a later column block: add to the exact integer sums so far */
        _mm256_mask_storeu_epi32(out0, mask, _mm256_add_epi32(_mm256_maskz_loadu_epi32(mask, out0), s0));
        _mm256_mask_storeu_epi32(out1, mask, _mm256_add_epi32(_mm256_maskz_loadu_epi32(mask, out1), s1));
    }
}

/* The tile for 1..7 tokens: the last token tile of a GEMM, or a decode batch of 5-7. */
static void i2s_rows2_tokens(int32_t *out0, int32_t *out1, bn_i2s_row w0, bn_i2s_row w1,
                             const int8_t *xp, const int32_t *x_sums, int n, int cols, int pb,
                             int pe, const uint8_t *ahead, int ahead_step) {
    switch (n) {
    case 1: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 1, cols, pb, pe, ahead, ahead_step); break;
    case 2: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 2, cols, pb, pe, ahead, ahead_step); break;
    case 3: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 3, cols, pb, pe, ahead, ahead_step); break;
    case 4: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 4, cols, pb, pe, ahead, ahead_step); break;
    case 5: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 5, cols, pb, pe, ahead, ahead_step); break;
    case 6: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 6, cols, pb, pe, ahead, ahead_step); break;
    default: i2s_rows2_tokens_n(out0, out1, w0, w1, xp, x_sums, 7, cols, pb, pe, ahead, ahead_step); break;
    }
}

/* One or two tokens over one full tile (layout I2S_TILE8), each decoded vector feeding n
 * accumulators; the activations come from L1, the tile from L1 after the first sweep. Sweep
 * `sweep` of `sweeps` over this tile also prefetches every sweeps-th 512-byte pair block of the
 * tile at `ahead` (NULL: none), so the next tiles stream in while all the sweeps compute instead
 * of only during the first one (bench_decode_batch batch 8 on the 2B-4T shape, 2 threads, three
 * paired runs: ternary 23.4-24.4 ms per step against 25.4-25.6 with the whole prefetch in the
 * first sweep). Raw sums (codes * q) per row and token. */
static inline __attribute__((always_inline)) void i2s_tile_tokens_n(int32_t raw[BN_I2S_TILE_ROWS][2],
                                                                    const uint8_t *tile,
                                                                    const int8_t *xp, const int n,
                                                                    int cols, const uint8_t *ahead,
                                                                    int sweep, int sweeps) {
    __m512i acc[BN_I2S_TILE_ROWS][2];
#pragma GCC unroll 8
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++)
#pragma GCC unroll 2
        for (int t = 0; t < n; t++) acc[r][t] = _mm512_setzero_si512();
    const int pairs = cols / 256;
    int fetch_pair = ahead ? sweep : pairs; /* the next pair block to prefetch (no division) */
    for (int p = 0; p < pairs; p++) {
        const int8_t *xb = xp + (size_t)p * 256;
        const uint8_t *wp = tile + (size_t)p * 64 * BN_I2S_TILE_ROWS;
        const bool fetch = p == fetch_pair;
        if (fetch) fetch_pair += sweeps;
#pragma GCC unroll 8
        for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
            const uint8_t *wb = wp + 64 * r;
            if (fetch) _mm_prefetch((const char *)(ahead + (wb - tile)), _MM_HINT_T0);
            __m512i c[4];
            CODES(_mm512_loadu_si512(wb), 6, 4, 2, 0, c);
#pragma GCC unroll 2
            for (int t = 0; t < n; t++) {
                const int8_t *xt = xb + (size_t)t * cols;
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[0], _mm512_loadu_si512(xt));
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[1], _mm512_loadu_si512(xt + 64));
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[2], _mm512_loadu_si512(xt + 128));
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[3], _mm512_loadu_si512(xt + 192));
            }
        }
    }
    /* fully unrolled, so acc is only ever indexed by constants and stays in registers (a loop
     * over r here made GCC keep all of acc on the stack, loaded and stored around every row) */
    const uint8_t *tails = tile + (size_t)pairs * 64 * BN_I2S_TILE_ROWS;
#pragma GCC unroll 8
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++)
#pragma GCC unroll 2
        for (int t = 0; t < n; t++) raw[r][t] = _mm512_reduce_add_epi32(acc[r][t]);
    if (cols % 256)
        for (int r = 0; r < BN_I2S_TILE_ROWS; r++)
            for (int t = 0; t < n; t++)
                raw[r][t] += reduce256(i2s_tail_block(_mm256_setzero_si256(), tails + 32 * r,
                                                      xp + (size_t)t * cols + (size_t)pairs * 256));
}

/* The tile kernel for two tokens and for one, each in a function of its own (a small function
 * GCC allocates registers for well). With the unrolled end of i2s_tile_tokens_n, 8 tokens over
 * 30 cached 2560 x 2560 matrices at 2 threads ran at 93 MACs per cycle per core against 82 inlined
 * with acc on the stack (2560 x 6912: 103 against 96); in the model, batch 8 on the 2B-4T shape,
 * ternary 25.4-26.5 -> 22.2-22.7 ms per step (with the arena of the commit before). */
static __attribute__((noinline)) void i2s_tile_tokens_2(int32_t raw[BN_I2S_TILE_ROWS][2],
                                                       const uint8_t *tile, const int8_t *xp,
                                                       int cols, const uint8_t *ahead, int sweep,
                                                       int sweeps) {
    i2s_tile_tokens_n(raw, tile, xp, 2, cols, ahead, sweep, sweeps);
}
static __attribute__((noinline)) void i2s_tile_tokens_1(int32_t raw[BN_I2S_TILE_ROWS][2],
                                                       const uint8_t *tile, const int8_t *xp,
                                                       int cols, const uint8_t *ahead, int sweep,
                                                       int sweeps) {
    i2s_tile_tokens_n(raw, tile, xp, 1, cols, ahead, sweep, sweeps);
}

/* The most tokens the tile sweeps take; more go to the row pairs of the GEMM path (see i2s_sums). */
#define FEW_TOKENS_MAX 4

/* Tiles ahead of the one being computed that the few-token sweeps prefetch (4 measured the same). */
#define FEW_TOKENS_TILES_AHEAD 2

/* The tiles of [row_begin, row_end) (aligned, full) against n_tokens (2..FEW_TOKENS_MAX)
 * tokens, two per sweep (16 accumulators and the decoded codes stay in registers; three per sweep
 * spilled some and measured no faster when these sweeps took batches of up to 8: bench_decode_batch
 * batch 8, 122-132 t/s against 126-127); returns the first row not done (a partial last tile is
 * left to the caller). */
static int i2s_tiles_few_tokens(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                                int row_begin, int row_end) {
    const int n_tokens = act->n_tokens, sweeps = (n_tokens + 1) / 2;
    const size_t tile_bytes = (size_t)BN_I2S_TILE_ROWS * (size_t)(m->cols / 4);
    int r = row_begin;
    for (; r + BN_I2S_TILE_ROWS <= row_end; r += BN_I2S_TILE_ROWS) {
        const uint8_t *tile = bn_i2s_row_at(m, r).first;
        /* (the caller's ranges are a few tiles: the stream runs on into the next range; a
         * prefetch past the matrix is harmless) */
        const uint8_t *ahead = tile + FEW_TOKENS_TILES_AHEAD * tile_bytes;
        for (int t0 = 0; t0 < n_tokens; t0 += 2) {
            const int n = n_tokens - t0 < 2 ? n_tokens - t0 : 2;
            const int8_t *xp = act->q_pairs + (size_t)t0 * m->cols;
            int32_t raw[BN_I2S_TILE_ROWS][2];
            if (n == 2)
                i2s_tile_tokens_2(raw, tile, xp, m->cols, ahead, t0 / 2, sweeps);
            else
                i2s_tile_tokens_1(raw, tile, xp, m->cols, ahead, t0 / 2, sweeps);
            for (int i = 0; i < BN_I2S_TILE_ROWS; i++)
                for (int t = 0; t < n; t++)
                    out[(size_t)(r - row_begin + i) * n_tokens + t0 + t] = raw[i][t] - act->sums[t0 + t];
        }
    }
    return r;
}

static void i2s_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                     int row_begin, int row_end) {
    const int n_tokens = act->n_tokens;
    const bool tiled = m->layout == BN_LAYOUT_I2S_TILE8;
    if (n_tokens == 1) {
        int r = row_begin;
        /* full tiles (row_begin is a multiple of the tile height: chunks are 16-row aligned) */
        if (tiled && r % BN_I2S_TILE_ROWS == 0)
            for (; r + BN_I2S_TILE_ROWS <= row_end; r += BN_I2S_TILE_ROWS) {
                int32_t raw[BN_I2S_TILE_ROWS];
                if (act->gfni)
                    bn_avx512gfni_i2s_gemv_tile(raw, bn_i2s_row_at(m, r).first, act->q_pairs, m->cols, act->prefetch);
                else
                    i2s_gemv_tile(raw, bn_i2s_row_at(m, r).first, act->q_pairs, m->cols, act->prefetch);
                for (int i = 0; i < BN_I2S_TILE_ROWS; i++)
                    out[r - row_begin + i] = raw[i] - act->sums[0];
            }
        for (; r < row_end; r++) {
            int32_t raw;
            i2s_row_tokens(&raw, bn_i2s_row_at(m, r), act->q_pairs, 1, m->cols);
            out[r - row_begin] = raw - act->sums[0];
        }
        return;
    }
    /* A decode batch of 2 to 4 tokens: sequential tile sweeps as in the GEMV (the row-pair path
     * below took longer for 2 tokens than two GEMVs). From 5 tokens on, the row pairs below are
     * faster (each activation load feeds two vpdpbusd and each decoded vector up to 8): 30
     * 2560 x 2560 and 30 2560 x 6912 matrices from memory at 2 threads, MACs per cycle per core,
     * tile sweeps against row pairs: 5 tokens 82-89 / 77-81 against 94-96 / 84-86, 8 tokens 90-95
     * / 81-84 against 96-99 / 85-87 (4 tokens: 88-91 / 66-67 against 81 / 74-77). */
    int done = row_begin;
    if (tiled && n_tokens <= FEW_TOKENS_MAX && row_begin % BN_I2S_TILE_ROWS == 0)
        done = i2s_tiles_few_tokens(out, m, act, row_begin, row_end);
    if (done == row_end) return;
    out += (size_t)(done - row_begin) * n_tokens;
    row_begin = done;
    /* Token tiles outside, rows inside: the tile's activations and the span's rows stay in
     * L1/L2 while every row pair of the span passes over them. Wide matrices go in column blocks
     * of GEMM_COLUMN_BLOCK so that a token tile's activations (8 x the block) stay in L1; the
     * integer sums of the blocks add up exactly. */
    const int pairs = m->cols / 256;
    const int block = m->cols > GEMM_COLUMN_BLOCK ? GEMM_COLUMN_BLOCK / 256 : (pairs > 0 ? pairs : 1);
    for (int t0 = 0; t0 < n_tokens; t0 += 8) {
        const int n = n_tokens - t0 < 8 ? n_tokens - t0 : 8;
        const int8_t *xp = act->q_pairs + (size_t)t0 * m->cols;
        int r = row_begin;
        if (n >= 2)
            for (int pb = 0; pb == 0 || pb < pairs; pb += block) {
                const int pe = pairs - pb < block ? pairs : pb + block;
                for (r = row_begin; r + 2 <= row_end; r += 2) {
                    /* The first token tile streams the weights from memory in the tiled layout's
                     * strided order: prefetch the tile two ahead, a quarter per row pair (later
                     * column blocks and token tiles find the span in L1/L2). A decode batch (one
                     * token tile) spreads its quarter over the pair blocks of the first column
                     * block (8 tokens from memory: 96-99 / 85-87 MACs per cycle per core against
                     * 86-91 / 76-79 with the quarter prefetched at once); the GEMM of a prompt
                     * prefetches it at once (64 tokens: 106-108 / 105-106 against 103-104 /
                     * 104 spread). */
                    const uint8_t *ahead = NULL;
                    int ahead_step = 0;
                    if (tiled && t0 == 0 && pb == 0) {
                        const size_t tile_bytes = (size_t)BN_I2S_TILE_ROWS * (size_t)(m->cols / 4);
                        const size_t quarter = tile_bytes / 4;
                        const uint8_t *next = m->data + (size_t)(r - r % BN_I2S_TILE_ROWS) * (size_t)(m->cols / 4) +
                                              2 * tile_bytes + (size_t)(r % BN_I2S_TILE_ROWS / 2) * quarter;
                        if (n_tokens <= 8) {
                            /* no pair block (fewer than 256 columns): nothing to spread over */
                            const size_t lines = (quarter + 63) / 64, steps = (size_t)(pe - pb);
                            if (steps > 0) {
                                ahead = next;
                                ahead_step = (int)((lines + steps - 1) / steps * 64);
                            }
                        } else {
                            for (size_t b = 0; b < quarter; b += 64) _mm_prefetch((const char *)(next + b), _MM_HINT_T0);
                        }
                    }
                    int32_t *o0 = out + (size_t)(r - row_begin) * n_tokens + t0, *o1 = o0 + n_tokens;
                    if (n == 8)
                        i2s_rows2_tokens_n(o0, o1, bn_i2s_row_at(m, r), bn_i2s_row_at(m, r + 1), xp,
                                           act->sums + t0, 8, m->cols, pb, pe, ahead, ahead_step);
                    else
                        i2s_rows2_tokens(o0, o1, bn_i2s_row_at(m, r), bn_i2s_row_at(m, r + 1), xp,
                                         act->sums + t0, n, m->cols, pb, pe, ahead, ahead_step);
                }
            }
        for (; r < row_end; r++) {
            int32_t raw[8];
            i2s_row_tokens(raw, bn_i2s_row_at(m, r), xp, n, m->cols);
            for (int t = 0; t < n; t++)
                out[(size_t)(r - row_begin) * n_tokens + t0 + t] = raw[t] - act->sums[t0 + t];
        }
    }
}

/* Multiplies every byte by k modulo 256. */
static inline __m512i mul_bytes(__m512i v, int k) {
    const __m512i vk = _mm512_set1_epi16((short)k);
    __m512i even = _mm512_mullo_epi16(v, vk);
    __m512i odd = _mm512_slli_epi16(_mm512_mullo_epi16(_mm512_srli_epi16(v, 8), vk), 8);
    return _mm512_mask_blend_epi8(0xaaaaaaaaaaaaaaaaull, even, odd);
}

/* Base-3 digit of scaled bytes: (t * 3) >> 8 = (t >= 86) + (t >= 171). */
static inline __m512i tq1_digit(__m512i t) {
    __mmask64 ge86 = _mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)86));
    __mmask64 ge171 = _mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)171));
    const __m512i one = _mm512_set1_epi8(1);
    return _mm512_add_epi8(_mm512_maskz_mov_epi8(ge86, one), _mm512_maskz_mov_epi8(ge171, one));
}

/* Codes (0..2, natural column order) of one TQ1_0 block. */
static void tq1_decode(uint8_t codes[256], const uint8_t *block) {
    static const int pow3[5] = {1, 3, 9, 27, 81};
    /* qs[0..31] twice: digits n (low half) and n + 1 (high half) per vector */
    __m512i head = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)block));
    for (int n = 0; n < 4; n += 2) {
        __m512i s = _mm512_mask_blend_epi64(0xf0, mul_bytes(head, pow3[n]),
                                            mul_bytes(head, pow3[n + 1]));
        _mm512_storeu_si512(codes + 32 * n, tq1_digit(s));
    }
    _mm256_storeu_si256((__m256i *)(codes + 128),
                        _mm512_castsi512_si256(tq1_digit(mul_bytes(head, pow3[4]))));
    /* qs[32..47] four times: digits 0..3, then digit 4 */
    __m512i tail = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(block + 32)));
    __m512i s = _mm512_mask_blend_epi64(
        0xc0,
        _mm512_mask_blend_epi64(0x30,
                                _mm512_mask_blend_epi64(0x0c, mul_bytes(tail, pow3[0]),
                                                        mul_bytes(tail, pow3[1])),
                                mul_bytes(tail, pow3[2])),
        mul_bytes(tail, pow3[3]));
    _mm512_storeu_si512(codes + 160, tq1_digit(s));
    _mm_storeu_si128((__m128i *)(codes + 224),
                     _mm512_castsi512_si128(tq1_digit(mul_bytes(tail, pow3[4]))));
    for (int j = 0; j < 4; j++)
        for (int n = 0; n < 4; n++) codes[240 + j + 4 * n] = (uint8_t)bn_tq1_digit(block[48 + j], n);
}

/* TQ formats: row by row, block by block, every token per block (one decode per block); eight
 * lanes per block, less the activations' lane sums. */
static void tq_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                    int row_begin, int row_end) {
    const int blocks = m->cols / BN_TQ_BLOCK, n_tokens = act->n_tokens;
    const bool tq2 = m->file_type == BN_TYPE_TQ2_0;
    const size_t block_bytes = tq2 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
    uint8_t codes[256];
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = m->data + (size_t)r * blocks * block_bytes;
        for (int b = 0; b < blocks; b++) {
            const uint8_t *block = row + (size_t)b * block_bytes;
            _mm_prefetch((const char *)(block + PREFETCH_DISTANCE), _MM_HINT_T0);
            __m512i c[4];
            if (tq2) {
                CODES(_mm512_loadu_si512(block), 0, 2, 4, 6, c);
            } else {
                tq1_decode(codes, block);
                for (int i = 0; i < 4; i++) c[i] = _mm512_loadu_si512(codes + 64 * i);
            }
            for (int t = 0; t < n_tokens; t++) {
                /* TQ2_0 pairs its halves like two I2_S blocks (q_pairs); TQ1_0 is natural. */
                const int8_t *x = (tq2 ? act->q_pairs : act->q) + (size_t)t * m->cols +
                                  (size_t)b * BN_TQ_BLOCK;
                __m512i acc0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[0],
                                                   _mm512_loadu_si512(x));
                __m512i acc1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[1],
                                                   _mm512_loadu_si512(x + 64));
                acc0 = _mm512_dpbusd_epi32(acc0, c[2], _mm512_loadu_si512(x + 128));
                acc1 = _mm512_dpbusd_epi32(acc1, c[3], _mm512_loadu_si512(x + 192));
                /* int32 lane k holds bytes 4k..4k+3 of its vector; each 32-byte half of a vector
                 * is one 32-column chunk, so lanes k and k + 8 both belong to lane k of the
                 * eight (ref_matmul.h) */
                const __m512i acc = _mm512_add_epi32(acc0, acc1);
                const __m256i raw = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
                const size_t at = ((size_t)t * blocks + b) * BN_TQ_LANES;
                const __m256i lane_sums = _mm256_loadu_si256((const __m256i *)(act->lane_sums + at));
                _mm256_storeu_si256((__m256i *)(out + ((size_t)(r - row_begin) * n_tokens + t) * blocks * BN_TQ_LANES +
                                                (size_t)b * BN_TQ_LANES),
                                    _mm256_sub_epi32(raw, lane_sums));
            }
        }
    }
}

void bn_avx512_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix,
                            const bn_act_view *act, int row_begin, int row_end) {
    if (matrix->file_type == BN_TYPE_I2_S)
        i2s_sums(out, matrix, act, row_begin, row_end);
    else
        tq_sums(out, matrix, act, row_begin, row_end);
}

/* ---- float finish of I2_S sums: 16 rows of one token per vector ----
 * For each token the rows' sums (stride n_tokens in the small sums buffer) are gathered and the
 * 16 results stored contiguously: stores along y's token stride (rows * 4 bytes) touched one
 * page per token and cost a TLB miss each. */

/* Transposes 16 vectors of 16 int32 (v[i] element k becomes v[k] element i). */
static inline void transpose16(__m512i v[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    /* u[4i + j], 128-bit lane L: element 4L + j of rows 4i..4i+3 */
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* a 4 x 4 transpose of 128-bit lanes per j */
    for (int j = 0; j < 4; j++) {
        __m512i p0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), p1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
        __m512i q0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44), q1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        v[j] = _mm512_shuffle_i32x4(p0, q0, 0x88);
        v[4 + j] = _mm512_shuffle_i32x4(p0, q0, 0xdd);
        v[8 + j] = _mm512_shuffle_i32x4(p1, q1, 0x88);
        v[12 + j] = _mm512_shuffle_i32x4(p1, q1, 0xdd);
    }
}

/* The finish for 16 or more tokens: each block of 16 rows x 16 tokens of sums (rows n_tokens
 * apart) is loaded row by row and transposed, so every token's 16 results are stored
 * contiguously without a gather (the gathers took about 4% of a 64-token GEMM). */
static void finish_i2s_transposed(float *y, int rows, __m512 ts, const int32_t *sums,
                                  const float *scales, int n_tokens, int row_begin, int row_end) {
    for (int r0 = row_begin; r0 < row_end; r0 += 16) {
        const int count = row_end - r0 < 16 ? row_end - r0 : 16;
        const __mmask16 row_mask = (__mmask16)((1u << count) - 1u);
        const int32_t *block = sums + (size_t)(r0 - row_begin) * (size_t)n_tokens;
        for (int t0 = 0; t0 < n_tokens; t0 += 16) {
            const int tokens = n_tokens - t0 < 16 ? n_tokens - t0 : 16;
            const __mmask16 token_mask = (__mmask16)((1u << tokens) - 1u);
            __m512i v[16];
            for (int i = 0; i < 16; i++)
                v[i] = i < count ? _mm512_maskz_loadu_epi32(token_mask, block + (size_t)i * n_tokens + t0)
                                 : _mm512_setzero_si512();
            transpose16(v);
            for (int t = 0; t < tokens; t++) {
                __m512 f = _mm512_div_ps(_mm512_cvtepi32_ps(v[t]), _mm512_set1_ps(scales[t0 + t]));
                _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * (size_t)rows + (size_t)r0, row_mask,
                                      _mm512_mul_ps(f, ts));
            }
        }
    }
}

void bn_avx512_ternary_finish_i2s(float *y, int rows, float tensor_scale, const int32_t *sums,
                                  const float *scales, int n_tokens, int row_begin, int row_end) {
    const __m512 ts = _mm512_set1_ps(tensor_scale);
    if (n_tokens == 1) { /* one token: the rows' sums are contiguous */
        const __m512 sc = _mm512_set1_ps(scales[0]);
        for (int r0 = row_begin; r0 < row_end; r0 += 16) {
            int count = row_end - r0 < 16 ? row_end - r0 : 16;
            __mmask16 m = (__mmask16)((1u << count) - 1u);
            __m512 v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, sums + (r0 - row_begin)));
            _mm512_mask_storeu_ps(y + r0, m, _mm512_mul_ps(_mm512_div_ps(v, sc), ts));
        }
        return;
    }
    if (n_tokens >= 16) { /* many tokens: 16 x 16 blocks transposed in registers */
        finish_i2s_transposed(y, rows, ts, sums, scales, n_tokens, row_begin, row_end);
        return;
    }
    const __m512i index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(n_tokens));
    for (int r0 = row_begin; r0 < row_end; r0 += 16) {
        int count = row_end - r0 < 16 ? row_end - r0 : 16;
        __mmask16 m = (__mmask16)((1u << count) - 1u);
        const int32_t *block = sums + (size_t)(r0 - row_begin) * (size_t)n_tokens;
        for (int t = 0; t < n_tokens; t++) {
            __m512i s = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, index, block + t, 4);
            __m512 v = _mm512_div_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(scales[t]));
            _mm512_mask_storeu_ps(y + (size_t)t * (size_t)rows + (size_t)r0, m, _mm512_mul_ps(v, ts));
        }
    }
}

/* ---- F16 ---- */

/* One output from its 16-lane accumulator: the scalar tail (columns from..cols-1) joins its
 * lanes, then the shared pairwise reduction. */
static inline float f16_finish(__m512 acc, const uint16_t *w, const float *x, int from, int cols) {
    if (from == cols) { /* no tail: the halving tree of bn_f16_reduce_lanes in registers */
        __m256 half = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
        __m128 quarter = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        __m128 eighth = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
        return _mm_cvtss_f32(_mm_add_ss(eighth, _mm_movehdup_ps(eighth)));
    }
    float lanes[BN_F16_LANES];
    _mm512_storeu_ps(lanes, acc);
    for (int c = from; c < cols; c++)
        lanes[c % BN_F16_LANES] = fmaf(_cvtsh_ss(w[c]), x[c], lanes[c % BN_F16_LANES]);
    return bn_f16_reduce_lanes(lanes);
}

static inline __m512 load_f16(const uint16_t *w) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w));
}

/* Columns per block of the batched F16 path: 8 tokens' activations for one block (16 KiB) stay
 * in L1 while every row of the group passes over them. Unblocked, each row pair streamed all
 * 8 x 2560 activations (80 KiB) from L2 and the 8-token LM head took 25.2 ms against 14.3 for
 * one token (2 threads). */
#define F16_COLUMN_BLOCK 512
/* Rows per group: the accumulators of the group's rows wait in memory (16 KiB) between column
 * blocks. 32 rows against 16: the 8-token head took 19.3-20.3 ms against 20.5-21.3 per step in
 * five paired runs of bench_decode_batch at batch 8 (64 rows: 21.2-21.8; 256-column blocks about
 * the same as 512). */
#define F16_GROUP_ROWS 32

/* Two F16 rows against n tokens (n a constant after inlining) over columns [from, to), 16
 * columns a step: each activation load feeds both rows' fused multiply-adds, so a step is 2 weight
 * loads (converted) and n activation loads for 2n FMAs; the accumulators come from acc0 / acc1
 * (zero for the first block, from == 0) and go back to them. Against one row a call (1 + n loads
 * for n FMAs): 8-token head 14.4-15.8 against 17.9-18.1 ms (harness, 2 threads, weights from
 * memory; with a separate multiply and add, two rows gained only 17.5 against 18.0). Each lane
 * adds its products in column order, as every other F16 path, whatever the blocking. */
static inline __attribute__((always_inline)) void f16_rows2_tokens_span(__m512 acc0[8], __m512 acc1[8],
                                                                       const uint16_t *w0,
                                                                       const uint16_t *w1,
                                                                       const float *x, const int n,
                                                                       int cols, int from, int to,
                                                                       const char *ahead) {
    __m512 a[8], b[8];
#pragma GCC unroll 8
    for (int t = 0; t < n; t++) {
        a[t] = from == 0 ? _mm512_setzero_ps() : acc0[t];
        b[t] = from == 0 ? _mm512_setzero_ps() : acc1[t];
    }
    for (int c = from; c < to; c += 16, ahead += 64) { /* a cache line of weights per step */
        _mm_prefetch(ahead, _MM_HINT_T0);
        const __m512 v0 = load_f16(w0 + c), v1 = load_f16(w1 + c);
#pragma GCC unroll 8
        for (int t = 0; t < n; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * cols + c);
            KEEP_IN_REGISTER(xv);
            a[t] = _mm512_fmadd_ps(v0, xv, a[t]);
            b[t] = _mm512_fmadd_ps(v1, xv, b[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < n; t++) {
        acc0[t] = a[t];
        acc1[t] = b[t];
    }
}

/* One F16 row against n tokens over columns [from, to): the odd last row of a group. */
static inline __attribute__((always_inline)) void f16_row_tokens_span(__m512 acc[8],
                                                                      const uint16_t *wr,
                                                                      const float *x, const int n,
                                                                      int cols, int from, int to) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int t = 0; t < n; t++) a[t] = from == 0 ? _mm512_setzero_ps() : acc[t];
    for (int c = from; c < to; c += 16) {
        const __m512 v = load_f16(wr + c);
#pragma GCC unroll 8
        for (int t = 0; t < n; t++)
            a[t] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + (size_t)t * cols + c), a[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < n; t++) acc[t] = a[t];
}

/* Rows [r, r + count) (count at most F16_GROUP_ROWS) against n tokens: column blocks outside,
 * rows inside, then each output's tail and reduction. */
static inline __attribute__((always_inline)) void f16_group_tokens(float *y, int rows,
                                                                   const uint16_t *w, const float *x,
                                                                   const int n, int cols,
                                                                   int cols16, int count,
                                                                   const uint16_t *next_group) {
    /* (set by the first column block: zeroing it here cost a 16 KiB memset per group) */
    __m512 acc[F16_GROUP_ROWS][8];
    if (cols16 == 0) /* no block: only the scalar tail */
        for (int i = 0; i < count; i++)
            for (int t = 0; t < n; t++) acc[i][t] = _mm512_setzero_ps();
    /* The next group's weights are prefetched as one sequential stream, a cache line per step:
     * a row pair has as many 16-column steps as lines (2 x 16 x 2 bytes = 64). Prefetching each
     * row's next block instead (16 short streams) left the 8-token head at 24.4 ms (2 threads);
     * without any prefetch it took 37.6. (The odd last row, when there is one, prefetches
     * nothing: the stream then ends a row early.) */
    const char *ahead = (const char *)next_group;
    for (int from = 0; from < cols16; from += F16_COLUMN_BLOCK) {
        const int to = cols16 - from < F16_COLUMN_BLOCK ? cols16 : from + F16_COLUMN_BLOCK;
        int i = 0;
        for (; i + 2 <= count; i += 2, ahead += (size_t)(to - from) / 16 * 64)
            f16_rows2_tokens_span(acc[i], acc[i + 1], w + (size_t)i * cols, w + (size_t)(i + 1) * cols,
                                  x, n, cols, from, to, ahead);
        if (i < count) f16_row_tokens_span(acc[i], w + (size_t)i * cols, x, n, cols, from, to);
    }
    for (int i = 0; i < count; i++)
        for (int t = 0; t < n; t++)
            y[(size_t)t * rows + i] = f16_finish(acc[i][t], w + (size_t)i * cols,
                                                 x + (size_t)t * cols, cols16, cols);
}

/* One token: two row streams, the first and the second half of the range, each read row after
 * row (sequential, which the hardware prefetchers follow) with a software prefetch 2 KiB ahead in
 * its own stream; two independent accumulator chains hide the add latency. Measured on the
 * 2560 x 128256 LM head at 2 threads: about 100% of the streaming read bandwidth probed beside
 * it, against about 75-80% for four interleaved rows prefetched one pass ahead. */
static void f16_gemv_two_streams(float *y, const uint16_t *w, const float *x, int cols, int cols16,
                                 int row_begin, int row_end, bn_prefetch_hint hint) {
    const int half = (row_end - row_begin) / 2;
    for (int i = 0; i < half; i++) {
        const int ra = row_begin + i, rb = row_begin + half + i;
        const uint16_t *wa = w + (size_t)ra * cols, *wb = w + (size_t)rb * cols;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        for (int c = 0; c < cols16; c += 16) {
            __m512 xv = _mm512_loadu_ps(x + c);
            if (hint == BN_PREFETCH_T0) { /* the hint must be a constant */
                _mm_prefetch((const char *)(wa + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
                _mm_prefetch((const char *)(wb + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
            } else if (hint == BN_PREFETCH_NTA) {
                _mm_prefetch((const char *)(wa + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_NTA);
                _mm_prefetch((const char *)(wb + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_NTA);
            }
            a = _mm512_fmadd_ps(load_f16(wa + c), xv, a);
            b = _mm512_fmadd_ps(load_f16(wb + c), xv, b);
        }
        y[ra] = f16_finish(a, wa, x, cols16, cols);
        y[rb] = f16_finish(b, wb, x, cols16, cols);
    }
    for (int r = row_begin + 2 * half; r < row_end; r++) {
        const uint16_t *wr = w + (size_t)r * cols;
        __m512 a = _mm512_setzero_ps();
        for (int c = 0; c < cols16; c += 16)
            a = _mm512_fmadd_ps(load_f16(wr + c), _mm512_loadu_ps(x + c), a);
        y[r] = f16_finish(a, wr, x, cols16, cols);
    }
}

/* The group kernel with a constant token count (1..8). */
static void f16_group_by_tokens(float *y, int rows, const uint16_t *w, const float *x, int n,
                                int cols, int cols16, int count, const uint16_t *next_group) {
    switch (n) {
    case 1: f16_group_tokens(y, rows, w, x, 1, cols, cols16, count, next_group); break;
    case 2: f16_group_tokens(y, rows, w, x, 2, cols, cols16, count, next_group); break;
    case 3: f16_group_tokens(y, rows, w, x, 3, cols, cols16, count, next_group); break;
    case 4: f16_group_tokens(y, rows, w, x, 4, cols, cols16, count, next_group); break;
    case 5: f16_group_tokens(y, rows, w, x, 5, cols, cols16, count, next_group); break;
    case 6: f16_group_tokens(y, rows, w, x, 6, cols, cols16, count, next_group); break;
    case 7: f16_group_tokens(y, rows, w, x, 7, cols, cols16, count, next_group); break;
    default: f16_group_tokens(y, rows, w, x, 8, cols, cols16, count, next_group); break;
    }
}

void bn_avx512_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                          int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint) {
    const int cols16 = cols / 16 * 16;
    if (n_tokens == 1) {
        f16_gemv_two_streams(y, w, x, cols, cols16, row_begin, row_end, hint);
        return;
    }
    /* groups of up to 16 rows, up to 8 tokens per pass; the kernels take a constant token count
     * so their accumulators stay in registers */
    for (int r = row_begin; r < row_end; r += F16_GROUP_ROWS) {
        const int count = row_end - r < F16_GROUP_ROWS ? row_end - r : F16_GROUP_ROWS;
        const uint16_t *wr = w + (size_t)r * cols;
        /* the last group prefetches itself (already cached), never past the range */
        const uint16_t *next = r + count + F16_GROUP_ROWS <= row_end ? wr + (size_t)count * cols : wr;
        for (int t0 = 0; t0 < n_tokens; t0 += 8) {
            const int n = n_tokens - t0 < 8 ? n_tokens - t0 : 8;
            f16_group_by_tokens(y + (size_t)t0 * rows + r, rows, wr, x + (size_t)t0 * cols, n, cols,
                                cols16, count, next);
        }
    }
}

/* ---- int8 ---- */

/* GEMV over 4 rows sharing the activation loads; two accumulators per row (products, and the
 * weight sum for the +128 correction). */
static void int8_gemv4(int32_t *out, const int8_t *w, const uint8_t *xu, int cols) {
    const __m512i ones = _mm512_set1_epi8(1);
    const size_t ahead = 4 * (size_t)cols; /* the next pass's rows */
    __m512i acc[4], wsum[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) acc[i] = wsum[i] = _mm512_setzero_si512();
    for (int c = 0; c < cols; c += 64) {
        __mmask64 mask = cols - c >= 64 ? ~0ull : (1ull << (cols - c)) - 1;
        __m512i xv = _mm512_maskz_loadu_epi8(mask, xu + c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const int8_t *wr = w + (size_t)i * cols + c;
            _mm_prefetch((const char *)(wr + ahead), _MM_HINT_T0);
            __m512i wv = _mm512_maskz_loadu_epi8(mask, wr);
            acc[i] = _mm512_dpbusd_epi32(acc[i], xv, wv);
            wsum[i] = _mm512_dpbusd_epi32(wsum[i], ones, wv);
        }
    }
    for (int i = 0; i < 4; i++)
        out[i] = _mm512_reduce_add_epi32(acc[i]) - 128 * _mm512_reduce_add_epi32(wsum[i]);
}

/* Two int8 rows against n tokens (a constant after inlining, so the accumulators stay in
 * registers): each activation load feeds both rows; the next two rows are prefetched. Raw sums
 * minus 128 x the row's weight sum, as in the one-token path. */
static inline __attribute__((always_inline)) void int8_rows2_tokens(int32_t *out, size_t out_stride,
                                                                    const int8_t *w0, const uint8_t *xu,
                                                                    const int n, int cols) {
    const int8_t *w1 = w0 + cols;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i a[8], b[8], s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int t = 0; t < n; t++) a[t] = b[t] = _mm512_setzero_si512();
    for (int c = 0; c < cols; c += 64) {
        const __mmask64 mask = cols - c >= 64 ? ~0ull : (1ull << (cols - c)) - 1;
        _mm_prefetch((const char *)(w0 + 2 * (size_t)cols + c), _MM_HINT_T0);
        _mm_prefetch((const char *)(w1 + 2 * (size_t)cols + c), _MM_HINT_T0);
        const __m512i v0 = _mm512_maskz_loadu_epi8(mask, w0 + c), v1 = _mm512_maskz_loadu_epi8(mask, w1 + c);
        s0 = _mm512_dpbusd_epi32(s0, ones, v0);
        s1 = _mm512_dpbusd_epi32(s1, ones, v1);
#pragma GCC unroll 8
        for (int t = 0; t < n; t++) {
            const __m512i x = _mm512_maskz_loadu_epi8(mask, xu + (size_t)t * cols + c);
            a[t] = _mm512_dpbusd_epi32(a[t], x, v0);
            b[t] = _mm512_dpbusd_epi32(b[t], x, v1);
        }
    }
    const int32_t c0 = 128 * _mm512_reduce_add_epi32(s0), c1 = 128 * _mm512_reduce_add_epi32(s1);
    for (int t = 0; t < n; t++) {
        out[t] = _mm512_reduce_add_epi32(a[t]) - c0;
        out[out_stride + t] = _mm512_reduce_add_epi32(b[t]) - c1;
    }
}

void bn_avx512_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                         int row_begin, int row_end) {
    const int cols = matrix->cols, n_tokens = act->n_tokens;
    const __m512i ones = _mm512_set1_epi8(1);
    int r = row_begin;
    if (n_tokens == 1)
        for (; r + 4 <= row_end; r += 4)
            int8_gemv4(out + (r - row_begin), matrix->q + (size_t)r * cols, act->q_unsigned, cols);
    else
        for (; r + 2 <= row_end; r += 2)
            for (int t0 = 0; t0 < n_tokens; t0 += 8) {
                const int n = n_tokens - t0 < 8 ? n_tokens - t0 : 8;
                int32_t *o = out + (size_t)(r - row_begin) * n_tokens + t0;
                const int8_t *w = matrix->q + (size_t)r * cols;
                const uint8_t *xu = act->q_unsigned + (size_t)t0 * cols;
                switch (n) {
                case 1: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 1, cols); break;
                case 2: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 2, cols); break;
                case 3: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 3, cols); break;
                case 4: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 4, cols); break;
                case 5: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 5, cols); break;
                case 6: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 6, cols); break;
                case 7: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 7, cols); break;
                default: int8_rows2_tokens(o, (size_t)n_tokens, w, xu, 8, cols); break;
                }
            }
    for (; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t0 = 0; t0 < n_tokens; t0 += 8) {
            int n = n_tokens - t0 < 8 ? n_tokens - t0 : 8;
            __m512i acc[8], wsum = _mm512_setzero_si512();
            for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_si512();
            for (int c = 0; c < cols; c += 64) {
                __mmask64 mask = cols - c >= 64 ? ~0ull : (1ull << (cols - c)) - 1;
                __m512i wv = _mm512_maskz_loadu_epi8(mask, wr + c);
                if (n_tokens == 1)
                    _mm_prefetch((const char *)(wr + c + PREFETCH_DISTANCE), _MM_HINT_T0);
                wsum = _mm512_dpbusd_epi32(wsum, ones, wv);
                for (int t = 0; t < n; t++)
                    acc[t] = _mm512_dpbusd_epi32(
                        acc[t],
                        _mm512_maskz_loadu_epi8(mask, act->q_unsigned + (size_t)(t0 + t) * cols + c),
                        wv);
            }
            int32_t correction = 128 * _mm512_reduce_add_epi32(wsum);
            for (int t = 0; t < n; t++)
                out[(size_t)(r - row_begin) * n_tokens + t0 + t] =
                    _mm512_reduce_add_epi32(acc[t]) - correction;
        }
    }
}
