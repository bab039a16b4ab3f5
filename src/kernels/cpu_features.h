/*
 * cpu_features.h: which instruction-set path the CPU kernels use. The best path the CPU supports
 * (CPUID plus the OS's XSAVE state) is chosen at run time; BITNET_ISA=scalar|avx2|avx512 forces
 * one, so tests cover every path. The scalar path runs on any x86-64 (and any other) CPU.
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
    BN_ISA_COUNT
} bn_isa;

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
bn_status bn_isa_check_environment(bn_error *err); /* "scalar", "avx2", "avx512" */
/* Whether BITNET_ISA or bn_isa_set_active (--isa, tests) chose the path rather than the CPU's
 * best: kernels/variants.h then runs every class on it. */
bool bn_isa_forced(void);
/* Whether the AVX-512 path can decode I2_S fields with GFNI (a knob of its GEMV variants, see
 * kernels/variants.h). */
bool bn_i2s_gfni_supported(void);
/* The CPU's model name ("Intel(R) Xeon(R) Processor", from /proc/cpuinfo), else "unknown cpu";
 * benchmarks name it, and the tuner's cache keys on it. */
void bn_cpu_model_name(char *buf, size_t size);
/* Space-separated feature names this CPU has ("sse4.2 avx2 fma f16c avx512f ..."). */
void bn_cpu_features_describe(char *buf, size_t size);

#endif
