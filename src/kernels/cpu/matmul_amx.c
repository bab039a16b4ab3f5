/*
 * matmul_amx.c: the AMX int8 GEMM of I2_S prompts (amx_tiles.h) over the real tile instructions
 * (-mamx-tile -mamx-int8; built where the compiler has them). kernels/matmul.c runs it for the
 * "avx512.amx" variant of the gemm class, which exists only where bn_amx_supported() holds
 * (CPUID, the OS's XSAVE state and Linux's permission for the tile data).
 *
 * Measuring it on an AMX Xeon (Sapphire Rapids or later; not possible on the machines this was
 * written on, whose hypervisor hides AMX), prompt throughput at the 2B-4T shape, 2 threads:
 *   BITNET_VARIANT=gemm=avx512.amx bitnet bench -m ggml-model-i2_s.gguf -p 512 -n 0 -t 2
 *   BITNET_VARIANT=gemm=avx512     bitnet bench -m ggml-model-i2_s.gguf -p 512 -n 0 -t 2
 *   BITNET_ISA=avx2 BITNET_VARIANT=gemm=avx2.vnni bitnet bench ... (the AVX-VNNI path)
 * and the receipt names cpu.i2s.gemm.amx. The goal is pp512 at least 3x the AVX-VNNI path.
 */
#include "kernels/cpu/amx_tiles.h"

#include <immintrin.h>

#define AMX_FN(name) bn_amx_##name
#define AMX_LOADCONFIG(config) _tile_loadconfig(config)
#define AMX_RELEASE() _tile_release()
#define AMX_ZERO(t) _tile_zero(t)
#define AMX_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define AMX_STORE(t, base, stride) _tile_stored(t, base, stride)
#define AMX_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#include "kernels/cpu/amx_gemm_body.h"
