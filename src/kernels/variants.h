/*
 * variants.h: the tunable kernel classes and the variant each one runs.
 *
 * The hot CPU kernels come in variants that give the same bits and differ only in speed, and
 * which one is fastest is a property of the machine (an AMD EPYC and an Intel Xeon disagree on
 * the prefetch hint of the one-token weight stream, and on some Xeons AVX2 streams faster than
 * AVX-512). A variant is a path (scalar, AVX2, AVX-512; NEON, NEON + dotprod on aarch64, which
 * have no knobs) plus the knobs of that path: the cache
 * hint of the software prefetch in the one-token streams (T0, NTA or none) and, for the ternary
 * GEMV, GFNI field decoding. Its name reads "avx512.t0.gfni", "avx512.nta", "avx2", "scalar".
 *
 * Each class is bound to one variant. Unbound, a class runs the active path of cpu_features.h
 * with the T0 hint and GFNI, AVX-VNNI and AMX where the CPU has them. The tuner (model/tune.h) binds the fastest
 * variant it measured. Forcing always wins over a binding, so tests and users can pin any path:
 *   --isa / BITNET_ISA (bn_isa_set_active)   the path of every class;
 *   BITNET_VARIANT=gemv=avx512.nta,head=avx2  whole variants per class (comma-separated);
 *   BITNET_PREFETCH=t0|nta|none               the hint of the one-token streams (gemv, head);
 *   BITNET_GFNI=0                              no GFNI decoding;
 *   BITNET_AVXVNNI=0                           no AVX-VNNI on the AVX2 path ("avx2.vnni");
 *   BITNET_AMX=0                               no AMX tiles on the AVX-512 path ("avx512.amx").
 * Every environment variable is read once; bn_kernel_variant_check_environment reports a bad
 * value as an error (main calls it before any kernel runs).
 */
#ifndef BN_KERNELS_VARIANTS_H
#define BN_KERNELS_VARIANTS_H

#include "bitnet.h"
#include "kernels/cpu_features.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bn_kernel_class {
    BN_KCLASS_GEMV = 0,  /* ternary matmul of one token (decode) */
    BN_KCLASS_GEMM_FEW,  /* ternary matmul of 2..8 tokens (decode batches) */
    BN_KCLASS_GEMM,      /* ternary matmul of more tokens (prompts) */
    BN_KCLASS_HEAD,      /* F16 matmul (the LM head) */
    BN_KCLASS_ATTENTION, /* attention over the KV cache */
    BN_KCLASS_COUNT
} bn_kernel_class;

/* Token counts up to this run the GEMM_FEW class. */
#define BN_KCLASS_FEW_TOKENS_MAX 8

typedef enum bn_prefetch_hint {
    BN_PREFETCH_T0 = 0,
    BN_PREFETCH_NTA = 1,
    BN_PREFETCH_NONE = 2,
    BN_PREFETCH_COUNT
} bn_prefetch_hint;

typedef struct bn_kernel_variant {
    bn_isa isa;
    bn_prefetch_hint prefetch; /* AVX-512 one-token streams of the gemv and head classes */
    bool gfni;                 /* AVX-512 GEMV field decoding (gemv class) */
    bool vnni;                 /* AVX2: AVX-VNNI vpdpbusd in the integer dot products (every class
                                  but attention; "avx2.vnni") */
    bool amx;                  /* AVX-512: AMX int8 tiles for prompts (gemm class; "avx512.amx") */
} bn_kernel_variant;

/* Longest variant name plus its NUL ("avx512.none.gfni"). */
#define BN_KERNEL_VARIANT_NAME_MAX 24
/* Most variants a class has. */
#define BN_KERNEL_VARIANTS_MAX 12

/* "gemv", "gemm_few", "gemm", "head", "attention". */
const char *bn_kernel_class_name(bn_kernel_class c);
/* The class of a ternary matmul over n_tokens tokens. */
bn_kernel_class bn_kernel_class_of_tokens(int n_tokens);
/* The variant's name, with only the knobs the class has ("avx512.t0" for a head). */
void bn_kernel_variant_name(bn_kernel_variant v, bn_kernel_class c, char *buf, size_t size);
/* Parses a name for the class; BN_ERR_INVALID names it when it is not one of the class's
 * variants, BN_ERR_UNSUPPORTED when this CPU cannot run it. */
bn_status bn_kernel_variant_parse(bn_kernel_variant *out, const char *name, bn_kernel_class c,
                                  bn_error *err);
/* The variants of the class this CPU runs, in a fixed order (scalar first); returns the count
 * (at most BN_KERNEL_VARIANTS_MAX). */
int bn_kernel_variants(bn_kernel_class c, bn_kernel_variant *out);
bool bn_kernel_variant_equal(bn_kernel_variant a, bn_kernel_variant b);

/* The variant a kernel of the class runs now (forcing applied; see above). Cheap: the
 * dispatchers call it on every call. */
bn_kernel_variant bn_kernel_variant_of(bn_kernel_class c);
/* Binds the class (the tuner, tests); forcing still wins. v must be one of bn_kernel_variants. */
void bn_kernel_bind(bn_kernel_class c, bn_kernel_variant v);
/* Back to unbound (the defaults above): one class, or every class. */
void bn_kernel_unbind(bn_kernel_class c);
void bn_kernel_unbind_all(void);
/* Whether the class is bound, and to what (*out, when bound). */
bool bn_kernel_bound(bn_kernel_class c, bn_kernel_variant *out);
/* The variant with the forcing applied to v: what dispatch runs when v is bound. Knobs the
 * class or the path does not have are normalized (a head has no GFNI, AVX2 no prefetch hint),
 * so two candidates the forcing makes equal compare equal (the tuner measures each once). */
bn_kernel_variant bn_kernel_variant_forced(bn_kernel_class c, bn_kernel_variant v);

/* Checks BITNET_VARIANT, BITNET_PREFETCH, BITNET_GFNI, BITNET_AVXVNNI and BITNET_AMX. */
bn_status bn_kernel_variant_check_environment(bn_error *err);

#endif
