/*
 * amx_tiles.h: the AMX int8 GEMM of I2_S prompts (the "avx512.amx" variant of the gemm class,
 * kernels/variants.h) and the scalar emulation of the tile instructions it uses, so that its
 * loops, layouts and edge handling run in tests on any AVX2 CPU.
 *
 * The product per tile instruction (TDPBSSD, palette 1): C[m][n] += sum over k < K/4 and j < 4
 * of A[m][4k + j] * B[k][4n + j], all int8 signed, int32 sums that wrap. Here A holds 16 weight
 * rows x 64 columns (-1, 0, +1, expanded from I2_S per 32 rows in each worker, no cached copy)
 * and B holds 64 columns x 16 tokens in the VNNI layout: byte 4n + j of row k is token n's
 * activation at column 4k + j. A call's activations are laid out once (bn_amx_tile_activations):
 * per group of 16 tokens (the last padded with zero tokens) and per 64 columns, one 1 KiB B tile;
 * group g starts at byte g * 16 * cols, so a slice of tokens starting on a multiple of 16 is the
 * same pointer arithmetic as the natural layout. C is 16 rows x 16 tokens of exact int32 sums:
 * the sums of the scalar reference, so the float finish (and every logit) is unchanged.
 *
 * The kernel body (amx_gemm_body.h) is written once against six tile operations and compiled
 * twice: by matmul_amx.c with the AMX intrinsics (-mamx-tile -mamx-int8) and by
 * amx_emulation_avx2.c with the functions below. BITNET_AMX_EMULATE=1 (tests) makes
 * bn_amx_supported() true on any AVX-512 CPU and the dispatcher run the emulation, counted as
 * "cpu.i2s.gemm.amx-emulated" so that a receipt never claims AMX it did not run.
 */
#ifndef BN_KERNELS_CPU_AMX_TILES_H
#define BN_KERNELS_CPU_AMX_TILES_H

#include "kernels/cpu/ref_matmul.h"

#include <stddef.h>
#include <stdint.h>

#define BN_AMX_TILE_ROWS 16   /* M: weight rows of an A tile, rows of C */
#define BN_AMX_TILE_TOKENS 16 /* N: tokens of a B tile, columns of C */
#define BN_AMX_TILE_K 64      /* K: columns (bytes) of an A row */
#define BN_AMX_TILE_BYTES 1024

/* LDTILECFG's 64-byte operand (palette 1: 8 tiles of up to 16 rows x 64 bytes). */
typedef struct bn_amx_tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16]; /* bytes per row of tile i */
    uint8_t rows[16];
} bn_amx_tile_config;

/* Bytes of the B tiles of n_tokens x cols activations (cols a multiple of 64). */
static inline size_t bn_amx_act_tiles_bytes(int n_tokens, int cols) {
    return (size_t)((n_tokens + BN_AMX_TILE_TOKENS - 1) / BN_AMX_TILE_TOKENS) * BN_AMX_TILE_TOKENS *
           (size_t)cols;
}

/* The kernels (matmul_amx.c; the AMX path of kernels/matmul.c): B tiles of q (n_tokens x cols,
 * natural order) into tiles (bn_amx_act_tiles_bytes), and the I2_S sums of bn_ref_ternary_sums
 * from act->q_tiles (act->q for the fallback when the worker's weight scratch cannot grow). */
void bn_amx_tile_activations(int8_t *tiles, const int8_t *q, int n_tokens, int cols);
void bn_amx_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                         int row_begin, int row_end);
/* The same body over the emulated tiles (amx_emulation_avx2.c). */
void bn_amx_emulated_tile_activations(int8_t *tiles, const int8_t *q, int n_tokens, int cols);
void bn_amx_emulated_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix,
                                  const bn_act_view *act, int row_begin, int row_end);

/* ---- the emulated tile instructions (per thread, as the tile registers are) ---- */
void bn_amx_emu_loadconfig(const bn_amx_tile_config *config);
void bn_amx_emu_release(void);
void bn_amx_emu_zero(int tile);
void bn_amx_emu_load(int tile, const void *base, size_t stride);
void bn_amx_emu_store(int tile, void *base, size_t stride);
void bn_amx_emu_dpbssd(int c, int a, int b);
/* Uses the hardware would refuse (#UD): no configuration loaded, a palette other than 1, a
 * tile not configured, shapes that do not fit TDPBSSD; counted over all threads (tests check
 * that it stays 0). */
long bn_amx_emu_faults(void);

#endif
