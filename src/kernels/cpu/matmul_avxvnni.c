/*
 * matmul_avxvnni.c: the AVX2 path's integer matrix kernels (ternary I2_S/TQ2_0/TQ1_0 sums, int8
 * sums) with AVX-VNNI: the 256-bit VEX vpdpbusd of Alder Lake and later Intel clients and of
 * Zen 5, which multiplies u8 by s8 bytes and adds each group of four into an int32 lane in one
 * instruction where plain AVX2 takes maddubs, an int16 add, madd and an int32 add. The kernels
 * are matmul_avx2_body.h compiled with that step, so they give the plain AVX2 kernels' exact
 * sums; kernels/matmul.c runs them for the "avx2.vnni" variants (kernels/variants.h), the default
 * of the AVX2 path on CPUs with AVX-VNNI.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define AVX2_BODY_VNNI 1
#define AVX2_BODY_FN(name) bn_avxvnni_##name
#include "kernels/cpu/matmul_avx2_body.h"
