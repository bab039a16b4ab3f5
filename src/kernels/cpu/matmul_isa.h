/*
 * matmul_isa.h: the AVX2 (matmul_avx2.c) and AVX-512 VNNI (matmul_avx512.c) matrix kernels that
 * kernels/matmul.c dispatches to. Each has the contract of its scalar reference in ref_matmul.h
 * and must produce identical results (exact integer sums; the same F16 lane order).
 *
 * Activation views (bn_act_view) the dispatcher prepares per path:
 *   ternary, both paths: lane_sums for TQ formats (Q8_K activations; the kernels use unsigned
 *                     codes and take off the lane sums: ref_matmul.h);
 *   ternary, AVX-512: q_pairs (per 256 columns, for group n = 0..3: q[32n..32n+31] then
 *                     q[128+32n..128+32n+31], so one 64-byte load of two I2_S blocks or of one
 *                     TQ2_0 block lines up with its activations; a trailing odd 128-block of I2_S
 *                     is copied as is);
 *   int8, AVX2: q_unsigned = |q| (maddubs of |q| with w * sign(q));
 *   int8, AVX-512: q_unsigned = q + 128 (vpdpbusd, corrected by 128 * sum of the row's weights).
 */
#ifndef BN_KERNELS_CPU_MATMUL_ISA_H
#define BN_KERNELS_CPU_MATMUL_ISA_H

#include "kernels/cpu/ref_matmul.h"

void bn_avx2_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                  int n_tokens, int cols);
void bn_avx512_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                    int n_tokens, int cols);

/* Fills q_pairs (layout above) from natural-order q, n_tokens rows of cols bytes. */
void bn_avx512_pair_activations(int8_t *q_pairs, const int8_t *q, int n_tokens, int cols);

void bn_avx2_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end);
void bn_avx512_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix,
                            const bn_act_view *act, int row_begin, int row_end);

/* bn_ternary_finish of an I2_S matrix (sums: one per row and token), the same float formula
 * (float)sum / scales[t] * tensor_scale vectorized over the rows, so bit-identical to it. */
void bn_avx2_ternary_finish_i2s(float *y, int rows, float tensor_scale, const int32_t *sums,
                                const float *scales, int n_tokens, int row_begin, int row_end);
void bn_avx512_ternary_finish_i2s(float *y, int rows, float tensor_scale, const int32_t *sums,
                                  const float *scales, int n_tokens, int row_begin, int row_end);

/* The AVX-512 one-token I2_S GEMV prefetches this many bytes ahead (with the hint of
 * the variant's hint, kernels/variants.h: T0 unless tuned or forced). When the
 * machine's bandwidth is high a 4 KiB distance fell behind (2 threads, 6912 x 2560 on huge pages, probe at 75-80 GB/s, three
 * rounds: 4 KiB NTA 62-73 GB/s, 8 KiB NTA 80-83, 12 KiB T0 82-83, 16 KiB T0 62-82; a model-like
 * sequence of the 2B-4T projections at a probe of 81-82: 8 KiB NTA 70.5-70.7, 12 KiB T0
 * 70.6-71.0, 8 and 16 KiB T0 69-70.6, T1/T2 hints 65-66, no prefetch 56). On that AMD EPYC NTA kept the weight
 * stream out of the outer caches, so what decode reads again (the KV cache, the norm weights,
 * activations) stays there: with the F16 head's prefetch NTA too, bench_decode_batch at batch 1
 * ran 39.2 against 37.9 t/s at a 48 GB/s probe and 56.8-57.9 against 56.0-57.7 at 80-84 GB/s,
 * the attention taking 0.83-0.88 ms per token against 0.91 (paired runs). */
#define BN_I2S_GEMV_PREFETCH_DISTANCE 8192

/* The AVX-512 one-token GEMV over one full I2S_TILE8 tile with GFNI field decoding
 * (matmul_avx512gfni.c, built with -mgfni); only for CPUs with GFNI (bn_i2s_gfni_supported) and
 * the variants that ask for it (bn_act_view.gfni). */
void bn_avx512gfni_i2s_gemv_tile(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile,
                                 const int8_t *xp, int cols, bn_prefetch_hint hint);

/* The one-token F16 GEMV prefetches this many elements (4 KiB) ahead in each row stream. When
 * the machine reads at about 80 GB/s, 2 KiB fell behind (128256 x 2560 head, 2 threads, four
 * rounds with the probe at 79-85 GB/s: 1024 elements 71-72 GB/s, 1536 77-78, 2048 78-80, 2560
 * 77-79, 3072 75-77, 4096 74-76); at about 50 GB/s they all read at the probe's rate. The
 * AVX-512 one prefetches non-temporal (see BN_I2S_GEMV_PREFETCH_DISTANCE). */
#define BN_F16_PREFETCH_AHEAD 2048

/* hint: the prefetch hint of the AVX-512 one-token stream (the AVX2 kernel ignores it). */
void bn_avx2_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint);
void bn_avx512_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                          int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint);

void bn_avx2_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                       int row_begin, int row_end);

/* The AVX2 ternary and int8 sums with AVX-VNNI's vpdpbusd (matmul_avxvnni.c, the "avx2.vnni"
 * variants); the same contracts and helper copies as the AVX2 ones. BN_AVXVNNI_KERNEL(fn) is
 * NULL where the compiler cannot build them (bn_avxvnni_supported() is then false). */
void bn_avxvnni_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                             int row_begin, int row_end);
void bn_avxvnni_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end);
#ifdef BITNET_HAVE_AVXVNNI
#define BN_AVXVNNI_KERNEL(fn) fn
#else
#define BN_AVXVNNI_KERNEL(fn) NULL
#endif
#ifdef BITNET_HAVE_AMX
#define BN_AMX_KERNEL(fn) fn
#else
#define BN_AMX_KERNEL(fn) NULL
#endif
void bn_avx512_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                         int row_begin, int row_end);

#endif
