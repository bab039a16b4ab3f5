/*
 * matmul_neon.c: aarch64 Advanced SIMD matrix kernels (every ARMv8-A CPU); contracts in
 * ref_matmul.h / neon_isa.h.
 *
 * Activation quantization: the reference's float operations lane by lane (|x| max by compare
 * and select, so a NaN never becomes the max; the scale from double; x * s rounded to nearest
 * even by FRINTN; NaN to -128, as the reference). I2_S: codes 0..2 times the int8 activations by
 * widening multiplies into int16 (at most 16 products of |256| per lane per block), pairwise
 * added into int32; the driver is i2s_neon_sums.h. TQ2_0: the same products summed four bytes
 * per lane as llama.cpp's lanes (tq2_neon_sums.h); TQ1_0 the same once its base-3 digits are
 * decoded (tq1_neon_sums.h). F16: the reference's 16 lanes as four
 * registers of four, one fused multiply-add per product, the same pairwise reduction. Int8:
 * widening multiplies, two products per int16 lane (|w| <= 127, so at most 32512).
 */
#include "kernels/cpu/neon_isa.h"

#include "kernels/cpu/i2s_neon_sums.h"
#include "kernels/cpu/tq1_neon_sums.h"
#include "kernels/cpu/tq2_neon_sums.h"

#include "core/fp16.h"
#include "quant/quant_format.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* ---- activation quantization ---- */

void bn_neon_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                  int n_tokens, int cols) {
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * cols;
        int8_t *qt = q + (size_t)t * cols;
        float32x4_t vmax = vdupq_n_f32(0.0f);
        int c = 0;
        for (; c + 4 <= cols; c += 4) {
            const float32x4_t a = vabsq_f32(vld1q_f32(xt + c));
            vmax = vbslq_f32(vcgtq_f32(a, vmax), a, vmax); /* a > max: false for NaN */
        }
        float max_abs = 0.0f;
        for (int i = 0; i < 4; i++) {
            const float a = vgetq_lane_f32(vmax, 0);
            if (a > max_abs) max_abs = a;
            vmax = vextq_f32(vmax, vmax, 1);
        }
        for (; c < cols; c++) {
            const float a = fabsf(xt[c]);
            if (a > max_abs) max_abs = a;
        }
        const double denominator = max_abs > 1e-5f ? (double)max_abs : 1e-5;
        const float scale = (float)(127.0 / denominator);
        const float32x4_t vscale = vdupq_n_f32(scale), lo = vdupq_n_f32(-128.0f),
                          hi = vdupq_n_f32(127.0f);
        int32x4_t vsum = vdupq_n_s32(0);
        c = 0;
        for (; c + 16 <= cols; c += 16) {
            int32x4_t v[4];
            for (int k = 0; k < 4; k++) {
                const float32x4_t r = vrndnq_f32(vmulq_f32(vld1q_f32(xt + c + 4 * k), vscale));
                /* !(r >= -128) (NaN included) -> -128, r > 127 -> 127 */
                const float32x4_t clamped = vbslq_f32(vcgeq_f32(r, lo), vminq_f32(r, hi), lo);
                v[k] = vcvtq_s32_f32(clamped);
                vsum = vaddq_s32(vsum, v[k]);
            }
            const int16x8_t h0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            const int16x8_t h1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
            vst1q_s8(qt + c, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
        }
        int32_t sum = vaddvq_s32(vsum);
        for (; c < cols; c++) {
            const float v = nearbyintf(xt[c] * scale);
            const int value = !(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v;
            qt[c] = (int8_t)value;
            sum += value;
        }
        scales[t] = scale;
        sums[t] = sum;
    }
}

/* ---- I2_S ---- */

static inline int32x4_t i2s_block_acc(int32x4_t acc, const uint8_t *block, const int8_t *x) {
    uint8x16_t codes[8];
    i2s_neon_codes(codes, block);
    int16x8_t p0 = vdupq_n_s16(0), p1 = vdupq_n_s16(0);
    for (int k = 0; k < 8; k++) {
        const int8x16_t c = vreinterpretq_s8_u8(codes[k]), a = vld1q_s8(x + 16 * k);
        p0 = vmlal_s8(p0, vget_low_s8(c), vget_low_s8(a));
        p1 = vmlal_high_s8(p1, c, a);
    }
    return vpadalq_s16(vpadalq_s16(acc, p0), p1);
}

/* ---- TQ2_0 ---- */

/* Products in int16 (8 fields of |3 * 128| per lane at most), then bytes summed in fours. */
static inline void tq2_block_lanes(int32x4_t lanes[2], const uint8_t *qs, const int8_t *x) {
    int16x8_t p[4] = {vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0)};
    for (int h = 0; h < 2; h++) {
        const uint8x16_t lo = vld1q_u8(qs + 32 * h), hi = vld1q_u8(qs + 32 * h + 16);
        for (int n = 0; n < 4; n++) {
            const int8_t *xp = x + 128 * h + 32 * n;
            const int8x16_t c_lo = tq2_field(lo, n), c_hi = tq2_field(hi, n);
            const int8x16_t x_lo = vld1q_s8(xp), x_hi = vld1q_s8(xp + 16);
            p[0] = vmlal_s8(p[0], vget_low_s8(c_lo), vget_low_s8(x_lo));
            p[1] = vmlal_high_s8(p[1], c_lo, x_lo);
            p[2] = vmlal_s8(p[2], vget_low_s8(c_hi), vget_low_s8(x_hi));
            p[3] = vmlal_high_s8(p[3], c_hi, x_hi);
        }
    }
    lanes[0] = vpaddq_s32(vpaddlq_s16(p[0]), vpaddlq_s16(p[1]));
    lanes[1] = vpaddq_s32(vpaddlq_s16(p[2]), vpaddlq_s16(p[3]));
}

/* ---- TQ1_0 ---- */

/* Products in int16 (8 of |2 * 128| per lane at most), then bytes summed in fours. */
static inline void tq1_block_lanes(int32x4_t lanes[2], const int8x16_t codes[16], const int8_t *x) {
    for (int half = 0; half < 2; half++) {
        int16x8_t p0 = vdupq_n_s16(0), p1 = vdupq_n_s16(0);
        for (int k = 8 * half; k < 8 * half + 8; k++) {
            const int8x16_t a = vld1q_s8(x + tq1_column[k]);
            p0 = vmlal_s8(p0, vget_low_s8(codes[k]), vget_low_s8(a));
            p1 = vmlal_high_s8(p1, codes[k], a);
        }
        lanes[half] = vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
    }
}

void bn_neon_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end) {
    if (matrix->file_type == BN_TYPE_TQ2_0)
        tq2_neon_sums(out, matrix, act, row_begin, row_end);
    else if (matrix->file_type == BN_TYPE_TQ1_0)
        tq1_neon_sums(out, matrix, act, row_begin, row_end);
    else
        i2s_neon_sums(out, matrix, act, row_begin, row_end);
}

/* ---- F16 ---- */

/* Elements ahead of the current load that the one-token stream prefetches (4 KiB). */
#define F16_PREFETCH_AHEAD 2048

/* The reference's 16-lane dot product (ref_matmul.h): lanes 4k..4k+3 in register k. */
static float f16_dot(const uint16_t *w, const float *x, int cols, bool prefetch) {
    float32x4_t l0 = vdupq_n_f32(0.0f), l1 = l0, l2 = l0, l3 = l0;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        if (prefetch) __builtin_prefetch(w + c + F16_PREFETCH_AHEAD, 0, 0);
        const float16x8_t w0 = vreinterpretq_f16_u16(vld1q_u16(w + c));
        const float16x8_t w1 = vreinterpretq_f16_u16(vld1q_u16(w + c + 8));
        l0 = vfmaq_f32(l0, vcvt_f32_f16(vget_low_f16(w0)), vld1q_f32(x + c));
        l1 = vfmaq_f32(l1, vcvt_high_f32_f16(w0), vld1q_f32(x + c + 4));
        l2 = vfmaq_f32(l2, vcvt_f32_f16(vget_low_f16(w1)), vld1q_f32(x + c + 8));
        l3 = vfmaq_f32(l3, vcvt_high_f32_f16(w1), vld1q_f32(x + c + 12));
    }
    float lanes[BN_F16_LANES];
    vst1q_f32(lanes, l0);
    vst1q_f32(lanes + 4, l1);
    vst1q_f32(lanes + 8, l2);
    vst1q_f32(lanes + 12, l3);
    for (; c < cols; c++)
        lanes[c % BN_F16_LANES] = fmaf(bn_fp16_to_fp32(w[c]), x[c], lanes[c % BN_F16_LANES]);
    return bn_f16_reduce_lanes(lanes);
}

void bn_neon_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint) {
    (void)hint;
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < n_tokens; t++)
            y[(size_t)t * rows + r] =
                f16_dot(w + (size_t)r * cols, x + (size_t)t * cols, cols, t == 0);
}

/* ---- int8 ---- */

void bn_neon_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                       int row_begin, int row_end) {
    const int cols = matrix->cols;
    for (int r = row_begin; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t = 0; t < act->n_tokens; t++) {
            const int8_t *qt = act->q + (size_t)t * cols;
            int32x4_t acc = vdupq_n_s32(0);
            int c = 0;
            for (; c + 16 <= cols; c += 16) {
                const int8x16_t a = vld1q_s8(wr + c), b = vld1q_s8(qt + c);
                const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b);
                acc = vpadalq_s16(acc, p);
            }
            int32_t sum = vaddvq_s32(acc);
            for (; c < cols; c++) sum += wr[c] * qt[c];
            out[(size_t)(r - row_begin) * act->n_tokens + t] = sum;
        }
    }
}
