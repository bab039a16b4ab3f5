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
/* GFNI field decoding inside the AVX-512 path (its one-token I2_S GEMV; the same integer
 * results): used when the CPU has GFNI, unless BITNET_GFNI=0 (read once) or
 * bn_i2s_set_gfni(false) turns it off, so tests cover both. */
bool bn_i2s_gfni_supported(void);
bool bn_i2s_gfni_active(void);
/* Turns GFNI decoding on (only where supported) or off. */
void bn_i2s_set_gfni(bool enabled);
/* Cache hint of the software prefetch in the one-token weight streams (the AVX-512 I2_S GEMV and
 * F16 head; the same results either way): T0 by default, NTA (non-temporal) with
 * BITNET_PREFETCH=nta (read once) or bn_set_stream_prefetch_nta(true). Measured with the 2B-4T
 * shape at 2 threads: on an Intel Xeon (12-28 GB/s) tg64 at 14.7-15.5 t/s with NTA against
 * 21.4-23.6 with T0; on the AMD EPYC where NTA was chosen it gained 2-3% (commit bd965df). Which
 * one wins is a property of the machine, so a per-machine tuner will choose (issue of step 5). */
bool bn_stream_prefetch_nta(void);
void bn_set_stream_prefetch_nta(bool nta);
/* Checks BITNET_PREFETCH (if set) is "t0" or "nta"; main() calls it with the ISA check. */
bn_status bn_stream_prefetch_check_environment(bn_error *err);
/* Space-separated feature names this CPU has ("sse4.2 avx2 fma f16c avx512f ..."). */
void bn_cpu_features_describe(char *buf, size_t size);

#endif
