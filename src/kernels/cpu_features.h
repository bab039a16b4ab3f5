/*
 * cpu_features.h: which instruction-set path the CPU kernels use. The best path the CPU supports
 * (x86-64: CPUID plus the OS's XSAVE state; aarch64: the kernel's HWCAP bits) is chosen at run
 * time; BITNET_ISA=scalar|avx2|avx512 (x86-64) or scalar|neon|neondot (aarch64) forces one, so
 * tests cover every path. The scalar path runs on any CPU.
 */
#ifndef BN_KERNELS_CPU_FEATURES_H
#define BN_KERNELS_CPU_FEATURES_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bn_isa {
    BN_ISA_SCALAR = 0,
    BN_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    BN_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
    BN_ISA_NEON = 3,    /* aarch64 Advanced SIMD (every ARMv8-A CPU) */
    BN_ISA_NEONDOT = 4, /* NEON + the dot-product instructions sdot/udot (HWCAP_ASIMDDP, ARMv8.2) */
    BN_ISA_COUNT
} bn_isa;

/* Which family's kernels this build compiles: the x86 files (*_avx2.c, *_avx512*.c) only on
 * x86-64, the NEON files (*_neon.c, *_neondot.c) only on aarch64. Kernel tables name both
 * families' functions through these, which give NULL for the other family. */
#if defined(__x86_64__)
#define BN_ARCH_X86 1
#define BN_X86_KERNEL(fn) fn
#else
#define BN_X86_KERNEL(fn) NULL
#endif
#if defined(__aarch64__)
#define BN_ARCH_ARM64 1
#define BN_ARM_KERNEL(fn) fn
#else
#define BN_ARM_KERNEL(fn) NULL
#endif

/* The next narrower path, where a kernel table has no entry for isa: avx512 -> avx2 -> scalar,
 * neondot -> neon -> scalar. */
bn_isa bn_isa_narrower(bn_isa isa);

/* Best path this CPU supports. */
bn_isa bn_isa_best_supported(void);
bool bn_isa_supported(bn_isa isa);
/* The path kernels use now: BITNET_ISA if set (read once), else the best supported. */
bn_isa bn_isa_active(void);
/* Forces a path (tests, --isa). Fails when the CPU lacks it or the name is unknown. */
bn_status bn_isa_set_active_by_name(const char *name, bn_error *err);
void bn_isa_set_active(bn_isa isa); /* caller has checked bn_isa_supported */
const char *bn_isa_name(bn_isa isa);
/* Checks BITNET_ISA (if set) names a path this CPU supports; main() calls it first so a bad
 * value is an error, not a silent fallback. */
bn_status bn_isa_check_environment(bn_error *err); /* "scalar", "avx2", "avx512", "neon", ... */
/* Whether BITNET_ISA or bn_isa_set_active (--isa, tests) chose the path rather than the CPU's
 * best: kernels/variants.h then runs every class on it. */
bool bn_isa_forced(void);
/* Whether the AVX-512 path can decode I2_S fields with GFNI (a knob of its GEMV variants, see
 * kernels/variants.h). */
bool bn_i2s_gfni_supported(void);
/* Whether the AVX2 path can use the 256-bit VEX vpdpbusd/vpdpwssd of AVX-VNNI (Alder Lake and
 * later clients, Zen 5; a knob of its variants, kernels/variants.h). */
bool bn_avxvnni_supported(void);
/* Whether the AVX-512 path can run AMX int8 tiles: CPUID (AMX-TILE, AMX-INT8), the OS's XSAVE
 * state, the AMX kernel in this build (cpu/matmul_amx.c, where the compiler has -mamx-int8) and,
 * on Linux, the process's permission for the tile data, requested on the first call. */
bool bn_amx_supported(void);
/* BITNET_AMX_EMULATE=1 (tests, on AVX-512 CPUs): the AMX variants run over a scalar emulation of
 * the tile instructions (cpu/amx_tiles.h) and bn_amx_supported() holds without AMX. */
bool bn_amx_emulated(void);
/* The CPU's model name ("Intel(R) Xeon(R) Processor", from /proc/cpuinfo), else "unknown cpu";
 * benchmarks name it, and the tuner's cache keys on it. */
void bn_cpu_model_name(char *buf, size_t size);
/* Space-separated feature names this CPU has ("sse4.2 avx2 fma f16c avx512f ...", "asimd asimddp"). */
void bn_cpu_features_describe(char *buf, size_t size);

#endif
