/*
 * head_ref.c: scalar references of the LM head kernels and the embedding dequantizers
 * (contracts and the exact arithmetic in head_ref.h).
 *
 * Design: each quantized dot product is a loop over blocks of one "block step" that computes
 * the block's exact int32 lanes the way ggml's AVX2 kernel groups them (lane L: bytes 4L..4L+3
 * of each 32-byte vector) and then does the float step, lane by lane, with the same fused
 * multiply-adds (fmaf) and roundings. The SIMD files do the float step with the same operations
 * on whole vectors. The unbuffered fallback reuses the block steps on blocks quantized in place.
 */
#include "kernels/cpu/head_ref.h"

#include "core/fp16.h"
#include "kernels/cpu/ref_matmul.h"
#include "quant/quant_format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* _mm256_sign_epi8(a, w) on one byte: -a (wrapping) where w < 0, 0 where w == 0, else a. */
static inline int sign_byte(int a, int w) {
    return w < 0 ? (int8_t)(uint8_t)(-a) : w == 0 ? 0 : a;
}

/* ---- block steps ---- */

static void q8_0_step(float acc[BN_HEAD_LANES], const bn_q8_0_block *w, const bn_q8_0_block *a) {
    const float d = bn_fp16_to_fp32(w->d) * bn_fp16_to_fp32(a->d);
    for (int lane = 0; lane < BN_HEAD_LANES; lane++) {
        int32_t sum = 0;
        for (int i = 4 * lane; i < 4 * lane + 4; i++)
            sum += abs(w->qs[i]) * sign_byte(a->qs[i], w->qs[i]);
        acc[lane] = fmaf(d, (float)sum, acc[lane]);
    }
}

/* The 6-bit code of value 128h + 32k + l (l < 32) of a Q6_K block, 0..63. */
static inline int q6k_code(const bn_block_q6_k *w, int h, int k, int l) {
    const uint8_t low = w->ql[64 * h + 32 * (k & 1) + l];
    const int nibble = k < 2 ? low & 0xF : low >> 4;
    return nibble | (((w->qh[32 * h + l] >> (2 * k)) & 3) << 4);
}

static void q6_k_step(float acc[BN_HEAD_LANES], const bn_block_q6_k *w, const bn_q8k_block *a) {
    const float d = a->d * bn_fp16_to_fp32(w->d);
    int32_t lanes[BN_HEAD_LANES] = {0};
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 32; i++) {
                const int scale = w->scales[8 * h + 2 * k + (i >= 16)];
                const int v = 128 * h + 32 * k + i;
                lanes[i / 4] += scale * (q6k_code(w, h, k, i) - 32) * a->qs[v];
            }
    for (int lane = 0; lane < BN_HEAD_LANES; lane++)
        acc[lane] = fmaf(d, (float)lanes[lane], acc[lane]);
}

static void q4_k_step(float acc[BN_HEAD_LANES], float acc_min[4], const bn_block_q4_k *w,
                      const bn_q8k_block *a) {
    const float d = a->d * bn_fp16_to_fp32(w->d);
    const float dmin = -a->d * bn_fp16_to_fp32(w->dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) bn_q4k_scale_min(j, w->scales, &sc[j], &mn[j]);
    for (int i = 0; i < 4; i++) {
        const int16_t s0 = (int16_t)(a->bsums[4 * i] + a->bsums[4 * i + 1]);
        const int16_t s1 = (int16_t)(a->bsums[4 * i + 2] + a->bsums[4 * i + 3]);
        const int32_t prod = mn[2 * i] * s0 + mn[2 * i + 1] * s1;
        acc_min[i] = fmaf(dmin, (float)prod, acc_min[i]);
    }
    int32_t lanes[BN_HEAD_LANES] = {0};
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 32; i++) {
            const uint8_t q = w->qs[32 * j + i];
            lanes[i / 4] += sc[2 * j] * (q & 0xF) * a->qs[64 * j + i] +
                            sc[2 * j + 1] * (q >> 4) * a->qs[64 * j + 32 + i];
        }
    for (int lane = 0; lane < BN_HEAD_LANES; lane++)
        acc[lane] = fmaf(d, (float)lanes[lane], acc[lane]);
}

/* ---- kernels ---- */

static const void *weight_row(const bn_head_matrix *m, int r, size_t row_bytes) {
    return (const uint8_t *)m->data + (size_t)r * row_bytes;
}

void bn_ref_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                     int row_end) {
    for (int r = row_begin; r < row_end; r++) {
        const float *w = (const float *)m->data + (size_t)r * m->cols;
        for (int t = 0; t < act->n_tokens; t++) {
            const float *x = act->x + (size_t)t * m->cols;
            float lanes[BN_F16_LANES] = {0};
            for (int c = 0; c < m->cols; c++)
                lanes[c % BN_F16_LANES] = fmaf(w[c], x[c], lanes[c % BN_F16_LANES]);
            y[(size_t)t * m->rows + r] = bn_f16_reduce_lanes(lanes);
        }
    }
}

void bn_ref_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    for (int r = row_begin; r < row_end; r++) {
        const uint16_t *w = (const uint16_t *)m->data + (size_t)r * m->cols;
        for (int t = 0; t < act->n_tokens; t++) {
            const float *x = act->x + (size_t)t * m->cols;
            float lanes[BN_F16_LANES] = {0};
            for (int c = 0; c < m->cols; c++)
                lanes[c % BN_F16_LANES] = fmaf(bn_bf16_to_fp32(w[c]), x[c], lanes[c % BN_F16_LANES]);
            y[(size_t)t * m->rows + r] = bn_f16_reduce_lanes(lanes);
        }
    }
}

void bn_ref_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    const int nb = m->cols / BN_Q8_0_ROW_BLOCK;
    for (int r = row_begin; r < row_end; r++) {
        const bn_q8_0_block *w = weight_row(m, r, (size_t)nb * sizeof *w);
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8_0_block *a = bn_head_act_row(act, t);
            float acc[BN_HEAD_LANES] = {0};
            for (int b = 0; b < nb; b++) q8_0_step(acc, &w[b], &a[b]);
            y[(size_t)t * m->rows + r] = bn_head_hsum8(acc);
        }
    }
}

void bn_ref_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++) {
        const bn_block_q6_k *w = weight_row(m, r, (size_t)nb * sizeof *w);
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8k_block *a = bn_head_act_row(act, t);
            float acc[BN_HEAD_LANES] = {0};
            for (int b = 0; b < nb; b++) q6_k_step(acc, &w[b], &a[b]);
            y[(size_t)t * m->rows + r] = bn_head_hsum8(acc);
        }
    }
}

void bn_ref_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++) {
        const bn_block_q4_k *w = weight_row(m, r, (size_t)nb * sizeof *w);
        for (int t = 0; t < act->n_tokens; t++) {
            const bn_q8k_block *a = bn_head_act_row(act, t);
            float acc[BN_HEAD_LANES] = {0}, acc_min[4] = {0};
            for (int b = 0; b < nb; b++) q4_k_step(acc, acc_min, &w[b], &a[b]);
            y[(size_t)t * m->rows + r] = bn_head_hsum8(acc) + bn_head_hsum4(acc_min);
        }
    }
}

void bn_ref_head_unbuffered(float *y, const bn_head_matrix *m, const float *x, int n_tokens,
                            int row_begin, int row_end) {
    const int cols = m->cols;
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < n_tokens; t++) {
            const float *xt = x + (size_t)t * cols;
            float acc[BN_HEAD_LANES] = {0}, acc_min[4] = {0}, out = 0.0f;
            if (m->type == BN_TYPE_Q8_0) {
                const bn_q8_0_block *w = weight_row(m, r, (size_t)(cols / 32) * sizeof *w);
                for (int b = 0; b < cols / BN_Q8_0_ROW_BLOCK; b++) {
                    bn_q8_0_block a;
                    bn_quantize_row_q8_0(&a, xt + (size_t)b * BN_Q8_0_ROW_BLOCK, BN_Q8_0_ROW_BLOCK);
                    q8_0_step(acc, &w[b], &a);
                }
                out = bn_head_hsum8(acc);
            } else if (m->type == BN_TYPE_Q6_K) {
                const bn_block_q6_k *w = weight_row(m, r, (size_t)(cols / BN_QK_K) * sizeof *w);
                for (int b = 0; b < cols / BN_QK_K; b++) {
                    bn_q8k_block a;
                    bn_quantize_row_q8k(&a, xt + (size_t)b * BN_QK_K, BN_QK_K);
                    q6_k_step(acc, &w[b], &a);
                }
                out = bn_head_hsum8(acc);
            } else if (m->type == BN_TYPE_Q4_K) {
                const bn_block_q4_k *w = weight_row(m, r, (size_t)(cols / BN_QK_K) * sizeof *w);
                for (int b = 0; b < cols / BN_QK_K; b++) {
                    bn_q8k_block a;
                    bn_quantize_row_q8k(&a, xt + (size_t)b * BN_QK_K, BN_QK_K);
                    q4_k_step(acc, acc_min, &w[b], &a);
                }
                out = bn_head_hsum8(acc) + bn_head_hsum4(acc_min);
            }
            y[(size_t)t * m->rows + r] = out;
        }
}

/* ---- dequantization ---- */

void bn_ref_dequantize_q8_0(float *out, const void *row, int cols) {
    const bn_q8_0_block *w = row;
    for (int b = 0; b < cols / BN_Q8_0_ROW_BLOCK; b++) {
        const float d = bn_fp16_to_fp32(w[b].d);
        for (int i = 0; i < BN_Q8_0_ROW_BLOCK; i++) out[BN_Q8_0_ROW_BLOCK * b + i] = (float)w[b].qs[i] * d;
    }
}

void bn_ref_dequantize_q4_k(float *out, const void *row, int cols) {
    const bn_block_q4_k *w = row;
    for (int b = 0; b < cols / BN_QK_K; b++, out += BN_QK_K) {
        const float d = bn_fp16_to_fp32(w[b].d), dmin = bn_fp16_to_fp32(w[b].dmin);
        for (int j = 0; j < 4; j++) {
            uint8_t sc, mn;
            bn_q4k_scale_min(2 * j, w[b].scales, &sc, &mn);
            const float d1 = d * sc, m1 = dmin * mn;
            bn_q4k_scale_min(2 * j + 1, w[b].scales, &sc, &mn);
            const float d2 = d * sc, m2 = dmin * mn;
            const uint8_t *q = w[b].qs + 32 * j;
            for (int l = 0; l < 32; l++) {
                out[64 * j + l] = fmaf(d1, (float)(q[l] & 0xF), -m1);
                out[64 * j + 32 + l] = fmaf(d2, (float)(q[l] >> 4), -m2);
            }
        }
    }
}

void bn_ref_dequantize_q6_k(float *out, const void *row, int cols) {
    const bn_block_q6_k *w = row;
    for (int b = 0; b < cols / BN_QK_K; b++, out += BN_QK_K) {
        const float d = bn_fp16_to_fp32(w[b].d);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    const float scale = d * (float)w[b].scales[8 * h + 2 * k + l / 16];
                    out[128 * h + 32 * k + l] = scale * (float)(q6k_code(&w[b], h, k, l) - 32);
                }
    }
}
