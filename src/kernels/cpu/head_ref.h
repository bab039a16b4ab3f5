/*
 * head_ref.h: the kernels of the LM head (kernels/head.h) on every path: the scalar references
 * (head_ref.c), which define the result, and the AVX2 (head_avx2.c) and AVX-512 (head_avx512.c)
 * kernels that kernels/head.c dispatches to, which must give the same bits.
 *
 * The arithmetic, ggml's as bitnet.cpp's x86 build computes it (ggml-quants.c of Microsoft's
 * fork; fl() = one float rounding, fma() = one fused multiply-add):
 *
 *   F32 / BF16 weights, float activations: the F16 head's order (ref_matmul.h): 16 lanes, lane l
 *   takes fma(w[c], x[c], lane) over c % 16 == l in column order, then bn_f16_reduce_lanes.
 *
 *   Q8_0 (vec_dot_q8_0_q8_0, AVX2; llamafile's tinyBLAS_Q0_AVX computes the same floats):
 *   8 float lanes, zero; per 32-block b in order: d = fl(fp16(w.d) * fp16(a.d)); int32 lane L
 *   = sum over bytes i = 4L..4L+3 of |w_i| * sign(a_i, w_i) (the maddubs sign trick; equals
 *   w_i * a_i unless a_i = -128, which the Q8_0 quantizer never writes); lane L = fma(d,
 *   (float)int_L, lane L). Result hsum8 (below).
 *
 *   Q6_K (vec_dot_q6_K_q8_K, AVX2): 8 float lanes, zero; per 256-block: d = fl(a.d * fp16(w.d));
 *   int32 lane L = sum over halves h = 0, 1, chunks k = 0..3 and bytes i = 4L..4L+3 of
 *   sc[8h + 2k + (L >= 4)] * (q6[128h + 32k + i] - 32) * a.qs[128h + 32k + i], where
 *   q6[128h + 32k + l] = low nibble (k = 0, 1) / high nibble (k = 2, 3) of ql[64h + 32(k & 1) + l]
 *   | ((qh[32h + l] >> 2k) & 3) << 4; lane L = fma(d, (float)int_L, lane L). Result hsum8.
 *
 *   Q4_K (vec_dot_q4_K_q8_K, AVX2): 8 float lanes and 4 "min" lanes, zero; per 256-block:
 *   d = fl(a.d * fp16(w.d)), dmin = fl(-a.d * fp16(w.dmin)); 6-bit scales sc[0..7] and mins
 *   mn[0..7] as ggml's get_scale_min_k4; min lane i (0..3) = fma(dmin, (float)(mn[2i] *
 *   S[2i] + mn[2i+1] * S[2i+1]), min lane i) with S[k] = bsums[2k] + bsums[2k+1] (int16); int32
 *   lane L = sum over j = 0..3 and bytes i = 4L..4L+3 of sc[2j] * (qs[32j + i] & 15) *
 *   a.qs[64j + i] + sc[2j+1] * (qs[32j + i] >> 4) * a.qs[64j + 32 + i]; lane L = fma(d,
 *   (float)int_L, lane L). Result fl(hsum8(lanes) + fl(fl(min0 + min2) + fl(min1 + min3))).
 *
 *   hsum8 (ggml's hsum_float_8): r_i = fl(lane_i + lane_{i+4}) for i < 4, then
 *   fl(fl(r0 + r2) + fl(r1 + r3)).
 *
 * Integer parts are exact (no int16 step saturates for codes the quantizers write: maddubs pairs
 * stay within 2 * 63 * 128, madd scales fit int32), so a path may sum them in any order; the
 * float steps above are the same operations in the same order on every path.
 *
 * Dequantization (embedding rows), ggml's dequantize_row_*: Q8_0 y = fl((float)q * d); Q6_K
 * y = fl(fl(d * sc) * q6s) with q6s = q6 - 32; Q4_K y = fma(fl(d * sc), q, -fl(dmin * mn))
 * (clang contracts `d1 * q - m1` into one FMA).
 */
#ifndef BN_KERNELS_CPU_HEAD_REF_H
#define BN_KERNELS_CPU_HEAD_REF_H

#include "kernels/cpu/act_blocks.h"
#include "kernels/head.h"

#include <stddef.h>
#include <stdint.h>

#define BN_HEAD_LANES 8 /* float lanes of the quantized dot products (ggml's __m256) */
#define BN_QK_K 256
#define BN_Q8_0_ROW_BLOCK 32

/* ggml's block_q4_K and block_q6_K (fp16 fields as raw bits); Q8_0 weights are laid out as
 * the activation block bn_q8_0_block (act_blocks.h). */
typedef struct bn_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12]; /* 6-bit scales and mins, packed (bn_q4k_scale_min) */
    uint8_t qs[128];    /* 4-bit codes: byte 32j + l holds value 64j + l (low) and 64j + 32 + l */
} bn_block_q4_k;

typedef struct bn_block_q6_k {
    uint8_t ql[128];   /* low 4 bits */
    uint8_t qh[64];    /* high 2 bits */
    int8_t scales[16]; /* one per 16 values */
    uint16_t d;
} bn_block_q6_k;

_Static_assert(sizeof(bn_block_q4_k) == 144, "block_q4_K is 144 bytes");
_Static_assert(sizeof(bn_block_q6_k) == 210, "block_q6_K is 210 bytes");
_Static_assert(sizeof(bn_q8_0_block) == 34, "block_q8_0 is 34 bytes");

/* The activations of one call as the kernels see them. */
typedef struct bn_head_act {
    const float *x;      /* F32 / BF16: n_tokens x cols floats */
    const void *blocks;  /* Q8_0 / Q4_K / Q6_K: per token one row of Q8_0 / Q8_K blocks */
    size_t token_bytes;  /* bytes of one token's blocks */
    int n_tokens;
} bn_head_act;

/* Token t's activation blocks. */
static inline const void *bn_head_act_row(const bn_head_act *act, int t) {
    return (const uint8_t *)act->blocks + (size_t)t * act->token_bytes;
}

/* y[t * rows + r] for rows [row_begin, row_end) and every token of act. */
typedef void (*bn_head_kernel_fn)(float *y, const bn_head_matrix *m, const bn_head_act *act,
                                  int row_begin, int row_end);

/* ggml's get_scale_min_k4: 6-bit scale and min j (0..7) of a Q4_K block. */
static inline void bn_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ggml's hsum_float_8 on 8 lanes. */
static inline float bn_head_hsum8(const float l[BN_HEAD_LANES]) {
    const float r0 = l[4] + l[0], r1 = l[5] + l[1], r2 = l[6] + l[2], r3 = l[7] + l[3];
    return (r0 + r2) + (r1 + r3);
}

/* The Q4_K min lanes' sum: fl(fl(m0 + m2) + fl(m1 + m3)). */
static inline float bn_head_hsum4(const float m[4]) { return (m[0] + m[2]) + (m[1] + m[3]); }

/* ---- scalar references ---- */
void bn_ref_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                     int row_end);
void bn_ref_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
void bn_ref_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
void bn_ref_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
void bn_ref_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
/* A Q type without activation blocks: each block of x is quantized where it is used (the
 * fallback when no scratch can be had; the same bits as the kernels above). */
void bn_ref_head_unbuffered(float *y, const bn_head_matrix *m, const float *x, int n_tokens,
                            int row_begin, int row_end);

/* One row of cols values (a multiple of the block) as ggml's dequantize_row_*. */
void bn_ref_dequantize_q8_0(float *out, const void *row, int cols);
void bn_ref_dequantize_q4_k(float *out, const void *row, int cols);
void bn_ref_dequantize_q6_k(float *out, const void *row, int cols);

/* ---- AVX2 (head_avx2.c) and AVX-512 (head_avx512.c): the same contracts ---- */
void bn_avx2_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
void bn_avx2_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_avx2_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_avx2_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_avx2_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);

void bn_avx512_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                        int row_end);
void bn_avx512_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end);
void bn_avx512_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end);
void bn_avx512_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end);
void bn_avx512_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end);

#endif
