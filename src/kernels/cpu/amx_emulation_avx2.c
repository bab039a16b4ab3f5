/*
 * amx_emulation_avx2.c: a scalar emulation of the six AMX tile instructions the AMX GEMM uses
 * (LDTILECFG, TILERELEASE, TILEZERO, TILELOADD, TILESTORED, TDPBSSD; Intel SDM vol. 2, palette 1)
 * and the GEMM body (amx_gemm_body.h) compiled over it, so the tests check the kernel's loops,
 * tile layouts and edge handling bit for bit against the scalar reference on CPUs without AMX.
 * Built with the AVX2 flags: the body expands weights with AVX2, as the real kernel does.
 *
 * Each thread has its own 8 tile registers and configuration, as the hardware's are per thread.
 * A load fills rows[t] rows of colsb[t] bytes and zeroes the rest of the register; TDPBSSD takes
 * M = rows[c], N = colsb[c] / 4, K = colsb[a] / 4 and wraps its int32 sums. What the hardware
 * refuses (#UD) is counted (bn_amx_emu_faults) and the instruction does nothing.
 */
#include "kernels/cpu/amx_tiles.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

typedef struct emulated_tiles {
    bool configured;
    bn_amx_tile_config config;
    uint8_t tile[8][BN_AMX_TILE_BYTES];
} emulated_tiles;

static _Thread_local emulated_tiles regs;
static atomic_long faults;

long bn_amx_emu_faults(void) { return atomic_load(&faults); }

static bool usable(int t) {
    const bool ok = regs.configured && t >= 0 && t < 8 && regs.config.rows[t] > 0 &&
                    regs.config.rows[t] <= 16 && regs.config.colsb[t] > 0 &&
                    regs.config.colsb[t] <= 64;
    if (!ok) atomic_fetch_add(&faults, 1);
    return ok;
}

void bn_amx_emu_loadconfig(const bn_amx_tile_config *config) {
    memset(&regs, 0, sizeof regs);
    if (config->palette != 1) { /* palette 0 would mean "release"; others do not exist */
        atomic_fetch_add(&faults, 1);
        return;
    }
    regs.config = *config;
    regs.configured = true;
}

void bn_amx_emu_release(void) { memset(&regs, 0, sizeof regs); }

void bn_amx_emu_zero(int t) {
    if (usable(t)) memset(regs.tile[t], 0, BN_AMX_TILE_BYTES);
}

void bn_amx_emu_load(int t, const void *base, size_t stride) {
    if (!usable(t)) return;
    memset(regs.tile[t], 0, BN_AMX_TILE_BYTES);
    for (int r = 0; r < regs.config.rows[t]; r++)
        memcpy(regs.tile[t] + 64 * r, (const uint8_t *)base + (size_t)r * stride,
               regs.config.colsb[t]);
}

void bn_amx_emu_store(int t, void *base, size_t stride) {
    if (!usable(t)) return;
    for (int r = 0; r < regs.config.rows[t]; r++)
        memcpy((uint8_t *)base + (size_t)r * stride, regs.tile[t] + 64 * r, regs.config.colsb[t]);
}

void bn_amx_emu_dpbssd(int c, int a, int b) {
    if (!usable(c) || !usable(a) || !usable(b)) return;
    const bn_amx_tile_config *k = &regs.config;
    const int m_rows = k->rows[c], n_cols = k->colsb[c] / 4, k_groups = k->colsb[a] / 4;
    if (c == a || c == b || a == b || k->rows[a] != m_rows || k->colsb[b] != k->colsb[c] ||
        k->rows[b] != k_groups || k->colsb[c] % 4 || k->colsb[a] % 4) {
        atomic_fetch_add(&faults, 1);
        return;
    }
    for (int m = 0; m < m_rows; m++)
        for (int n = 0; n < n_cols; n++) {
            int32_t sum;
            memcpy(&sum, regs.tile[c] + 64 * m + 4 * n, 4);
            uint32_t acc = (uint32_t)sum; /* the hardware's sums wrap */
            for (int g = 0; g < k_groups; g++)
                for (int j = 0; j < 4; j++)
                    acc += (uint32_t)((int32_t)(int8_t)regs.tile[a][64 * m + 4 * g + j] *
                                      (int32_t)(int8_t)regs.tile[b][64 * g + 4 * n + j]);
            sum = (int32_t)acc;
            memcpy(regs.tile[c] + 64 * m + 4 * n, &sum, 4);
        }
}

#define AMX_FN(name) bn_amx_emulated_##name
#define AMX_LOADCONFIG(config) bn_amx_emu_loadconfig(config)
#define AMX_RELEASE() bn_amx_emu_release()
#define AMX_ZERO(t) bn_amx_emu_zero(t)
#define AMX_LOAD(t, base, stride) bn_amx_emu_load(t, base, stride)
#define AMX_STORE(t, base, stride) bn_amx_emu_store(t, base, stride)
#define AMX_DPBSSD(c, a, b) bn_amx_emu_dpbssd(c, a, b)
#include "kernels/cpu/amx_gemm_body.h"
