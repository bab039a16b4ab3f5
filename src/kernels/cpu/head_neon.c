/*
 * head_neon.c: aarch64 Advanced SIMD LM head kernels for the F32, BF16, Q8_0, Q4_K and Q6_K
 * weights (the F16 head is bn_neon_f16_matmul); contracts and the exact arithmetic in
 * head_ref.h, declarations in neon_isa.h.
 *
 * F32 / BF16: the reference's 16 lanes as four registers of four, one fused multiply-add per
 * product, the shared pairwise reduction. Quantized types: ggml's eight int32 lanes of a block
 * (lane L: bytes 4L..4L+3 of each 32-byte group) as two registers (lanes 0-3 from bytes 0-15,
 * lanes 4-7 from bytes 16-31): products widened to int16 (exact: at most 128 * 128 for Q8_0's
 * sign trick, 32 * 128 for Q6_K, 15 * 128 for Q4_K), four summed per int32 lane, then times
 * the block scales in int32; then the reference's float step, lane by lane the same fused
 * multiply-add. The Q4_K min lanes (four fmaf per block) are the reference's scalar code.
 */
#include "kernels/cpu/neon_isa.h"

#include "core/fp16.h"
#include "kernels/cpu/ref_matmul.h"

#include <arm_neon.h>
#include <math.h>

/* ---- helpers ---- */

/* Sums the int16 products of 16 bytes (p0: bytes 0-7, p1: bytes 8-15) four bytes per lane. */
static inline int32x4_t sum_fours(int16x8_t p0, int16x8_t p1) {
    return vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
}

/* Products of 16 unsigned codes (at most 255 after any offset the caller applies) and 16 int8
 * activations summed four bytes per lane; codes - offset and the products fit int16. */
static inline int32x4_t codes_dot(uint8x16_t codes, int offset, int8x16_t a) {
    const int16x8_t c0 = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(codes))),
                                   vdupq_n_s16((int16_t)offset));
    const int16x8_t c1 =
        vsubq_s16(vreinterpretq_s16_u16(vmovl_high_u8(codes)), vdupq_n_s16((int16_t)offset));
    return sum_fours(vmulq_s16(c0, vmovl_s8(vget_low_s8(a))), vmulq_s16(c1, vmovl_high_s8(a)));
}

/* The 8 float lanes (two registers) reduced as bn_head_hsum8. */
static inline float hsum8(float32x4_t lo, float32x4_t hi) {
    float lanes[BN_HEAD_LANES];
    vst1q_f32(lanes, lo);
    vst1q_f32(lanes + 4, hi);
    return bn_head_hsum8(lanes);
}

/* lanes = fma(d, (float)sums, lanes) for the 8 lanes. */
static inline void float_step(float32x4_t acc[2], const int32x4_t sums[2], float d) {
    acc[0] = vfmaq_n_f32(acc[0], vcvtq_f32_s32(sums[0]), d);
    acc[1] = vfmaq_n_f32(acc[1], vcvtq_f32_s32(sums[1]), d);
}

/* ---- F32 and BF16 ---- */

/* The 16-lane dot product of ref_matmul.h with weights in float (w32) or BF16 (w16). */
static float float_dot(const float *w32, const uint16_t *w16, const float *x, int cols) {
    float32x4_t l[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int c = 0;
    for (; c + BN_F16_LANES <= cols; c += BN_F16_LANES)
        for (int k = 0; k < 4; k++) {
            const float32x4_t w =
                w32 ? vld1q_f32(w32 + c + 4 * k)
                    : vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(w16 + c + 4 * k), 16));
            l[k] = vfmaq_f32(l[k], w, vld1q_f32(x + c + 4 * k));
        }
    float lanes[BN_F16_LANES];
    for (int k = 0; k < 4; k++) vst1q_f32(lanes + 4 * k, l[k]);
    for (; c < cols; c++) {
        const float w = w32 ? w32[c] : bn_bf16_to_fp32(w16[c]);
        lanes[c % BN_F16_LANES] = fmaf(w, x[c], lanes[c % BN_F16_LANES]);
    }
    return bn_f16_reduce_lanes(lanes);
}

void bn_neon_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < act->n_tokens; t++)
            y[(size_t)t * m->rows + r] = float_dot((const float *)m->data + (size_t)r * m->cols,
                                                   NULL, act->x + (size_t)t * m->cols, m->cols);
}

void bn_neon_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < act->n_tokens; t++)
            y[(size_t)t * m->rows + r] =
                float_dot(NULL, (const uint16_t *)m->data + (size_t)r * m->cols,
                          act->x + (size_t)t * m->cols, m->cols);
}

/* ---- Q8_0 ---- */

/* |w| times sign(a, w) (a negated, wrapping, where w < 0; 0 where w == 0) of 16 bytes, four
 * bytes per lane: the reference's maddubs sign trick, exact in int16 (|w| <= 128). */
static inline int32x4_t q8_0_dot(int8x16_t w, int8x16_t a) {
    const uint8x16_t negative = vcltzq_s8(w), nonzero = vtstq_s8(w, w);
    const int8x16_t signed_a =
        vandq_s8(vbslq_s8(negative, vnegq_s8(a), a), vreinterpretq_s8_u8(nonzero));
    return codes_dot(vreinterpretq_u8_s8(vabsq_s8(w)), 0, signed_a);
}

void bn_neon_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    const int nb = m->cols / BN_Q8_0_ROW_BLOCK;
    for (int r = row_begin; r < row_end; r++) {
        const bn_q8_0_block *w = (const bn_q8_0_block *)m->data + (size_t)r * nb;
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8_0_block *a = bn_head_act_row(act, t);
            float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
            for (int b = 0; b < nb; b++) {
                const float d = bn_fp16_to_fp32(w[b].d) * bn_fp16_to_fp32(a[b].d);
                const int32x4_t sums[2] = {
                    q8_0_dot(vld1q_s8(w[b].qs), vld1q_s8(a[b].qs)),
                    q8_0_dot(vld1q_s8(w[b].qs + 16), vld1q_s8(a[b].qs + 16))};
                float_step(acc, sums, d);
            }
            y[(size_t)t * m->rows + r] = hsum8(acc[0], acc[1]);
        }
    }
}

/* ---- Q6_K ---- */

/* The block's 8 int32 lanes (head_ref.h). */
static inline void q6_k_lanes(int32x4_t sums[2], const bn_block_q6_k *w, const int8_t *a) {
    sums[0] = sums[1] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int half = 0; half < 2; half++) { /* bytes 16 * half .. + 15 of the chunk */
                const int l = 16 * half;
                const uint8x16_t low = vld1q_u8(w->ql + 64 * h + 32 * (k & 1) + l);
                const uint8x16_t nibble =
                    k < 2 ? vandq_u8(low, vdupq_n_u8(0xF)) : vshrq_n_u8(low, 4);
                const uint8x16_t high =
                    vandq_u8(vshlq_u8(vld1q_u8(w->qh + 32 * h + l), vdupq_n_s8((int8_t)(-2 * k))),
                             vdupq_n_u8(3));
                const uint8x16_t code = vorrq_u8(nibble, vshlq_n_u8(high, 4));
                const int32x4_t dot = codes_dot(code, 32, vld1q_s8(a + 128 * h + 32 * k + l));
                sums[half] = vmlaq_n_s32(sums[half], dot, w->scales[8 * h + 2 * k + half]);
            }
}

void bn_neon_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++) {
        const bn_block_q6_k *w = (const bn_block_q6_k *)m->data + (size_t)r * nb;
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8k_block *a = bn_head_act_row(act, t);
            float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
            for (int b = 0; b < nb; b++) {
                int32x4_t sums[2];
                q6_k_lanes(sums, &w[b], a[b].qs);
                float_step(acc, sums, a[b].d * bn_fp16_to_fp32(w[b].d));
            }
            y[(size_t)t * m->rows + r] = hsum8(acc[0], acc[1]);
        }
    }
}

/* ---- Q4_K ---- */

void bn_neon_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++) {
        const bn_block_q4_k *w = (const bn_block_q4_k *)m->data + (size_t)r * nb;
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8k_block *a = bn_head_act_row(act, t);
            float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
            float acc_min[4] = {0};
            for (int b = 0; b < nb; b++) {
                const float d = a[b].d * bn_fp16_to_fp32(w[b].d);
                const float dmin = -a[b].d * bn_fp16_to_fp32(w[b].dmin);
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 8; j++) bn_q4k_scale_min(j, w[b].scales, &sc[j], &mn[j]);
                for (int i = 0; i < 4; i++) {
                    const int16_t s0 = (int16_t)(a[b].bsums[4 * i] + a[b].bsums[4 * i + 1]);
                    const int16_t s1 = (int16_t)(a[b].bsums[4 * i + 2] + a[b].bsums[4 * i + 3]);
                    const int32_t prod = mn[2 * i] * s0 + mn[2 * i + 1] * s1;
                    acc_min[i] = fmaf(dmin, (float)prod, acc_min[i]);
                }
                int32x4_t sums[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
                for (int j = 0; j < 4; j++)
                    for (int half = 0; half < 2; half++) {
                        const uint8x16_t q = vld1q_u8(w[b].qs + 32 * j + 16 * half);
                        const int8_t *aj = a[b].qs + 64 * j + 16 * half;
                        const int32x4_t low =
                            codes_dot(vandq_u8(q, vdupq_n_u8(0xF)), 0, vld1q_s8(aj));
                        const int32x4_t high = codes_dot(vshrq_n_u8(q, 4), 0, vld1q_s8(aj + 32));
                        sums[half] = vmlaq_n_s32(sums[half], low, sc[2 * j]);
                        sums[half] = vmlaq_n_s32(sums[half], high, sc[2 * j + 1]);
                    }
                float_step(acc, sums, d);
            }
            y[(size_t)t * m->rows + r] = hsum8(acc[0], acc[1]) + bn_head_hsum4(acc_min);
        }
    }
}
