/*
 * cpu_features.c: run-time ISA selection. On x86-64 CPUID tells what the CPU implements and
 * XGETBV what register state the OS saves; a path is usable only when both agree. On aarch64 the
 * kernel's AT_HWCAP bits say it (ASIMD on every ARMv8-A Linux, ASIMDDP for sdot/udot). The choice is made once
 * (BITNET_ISA or the best supported) and can be forced by tests through bn_isa_set_active().
 */
#include "kernels/cpu_features.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BN_X86 1
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1UL << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#endif

typedef struct cpu_flags {
    bool sse42, avx, avx2, fma, f16c, bmi2;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avx512fp16, amx_tile, gfni;
    bool avxvnni, amx_int8;
    bool os_amx; /* XCR0 bits 17-18: the OS saves the tile configuration and data */
    bool os_ymm, os_zmm;
    bool asimd, asimddp, fphp, asimdhp; /* aarch64 */
} cpu_flags;

static cpu_flags read_flags(void) {
    cpu_flags f;
    memset(&f, 0, sizeof f);
#ifdef BN_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.sse42 = c & (1u << 20);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    f.avx = c & (1u << 28);
    bool osxsave = c & (1u << 27);
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        f.os_ymm = (lo & 0x6u) == 0x6u;
        f.os_zmm = (lo & 0xe6u) == 0xe6u;
        f.os_amx = (lo & 0x60000u) == 0x60000u;
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = b & (1u << 5);
        f.bmi2 = b & (1u << 8);
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
        f.gfni = c & (1u << 8);
        f.avx512fp16 = d & (1u << 23);
        f.amx_tile = d & (1u << 24);
        f.amx_int8 = d & (1u << 25);
        __cpuid_count(7, 1, a, b, c, d);
        f.avx512bf16 = a & (1u << 5);
        f.avxvnni = a & (1u << 4);
    }
#endif
#if defined(__aarch64__)
    const unsigned long hwcap = getauxval(AT_HWCAP);
    f.asimd = hwcap & HWCAP_ASIMD;
    f.asimddp = hwcap & HWCAP_ASIMDDP;
    f.fphp = hwcap & HWCAP_FPHP;
    f.asimdhp = hwcap & HWCAP_ASIMDHP;
#endif
    return f;
}

static const cpu_flags *flags(void) {
    static cpu_flags cached;
    static atomic_int ready;
    if (!atomic_load_explicit(&ready, memory_order_acquire)) {
        cached = read_flags();
        atomic_store_explicit(&ready, 1, memory_order_release);
    }
    return &cached;
}

bool bn_isa_supported(bn_isa isa) {
    const cpu_flags *f = flags();
    switch (isa) {
    case BN_ISA_SCALAR: return true;
    case BN_ISA_AVX2: return f->avx && f->avx2 && f->fma && f->f16c && f->bmi2 && f->os_ymm;
    case BN_ISA_AVX512:
        return bn_isa_supported(BN_ISA_AVX2) && f->avx512f && f->avx512bw && f->avx512vl &&
               f->avx512dq && f->avx512vnni && f->os_zmm;
#if defined(__aarch64__)
    case BN_ISA_NEON: return f->asimd;
    case BN_ISA_NEONDOT: return f->asimd && f->asimddp;
#else
    case BN_ISA_NEON:
    case BN_ISA_NEONDOT: return false;
#endif
    case BN_ISA_COUNT: break;
    }
    return false;
}

bn_isa bn_isa_best_supported(void) {
    if (bn_isa_supported(BN_ISA_NEONDOT)) return BN_ISA_NEONDOT;
    if (bn_isa_supported(BN_ISA_NEON)) return BN_ISA_NEON;
    if (bn_isa_supported(BN_ISA_AVX512)) return BN_ISA_AVX512;
    if (bn_isa_supported(BN_ISA_AVX2)) return BN_ISA_AVX2;
    return BN_ISA_SCALAR;
}

const char *bn_isa_name(bn_isa isa) {
    switch (isa) {
    case BN_ISA_SCALAR: return "scalar";
    case BN_ISA_AVX2: return "avx2";
    case BN_ISA_AVX512: return "avx512";
    case BN_ISA_NEON: return "neon";
    case BN_ISA_NEONDOT: return "neondot";
    case BN_ISA_COUNT: break;
    }
    return "unknown";
}

bn_isa bn_isa_narrower(bn_isa isa) {
    switch (isa) {
    case BN_ISA_AVX512: return BN_ISA_AVX2;
    case BN_ISA_NEONDOT: return BN_ISA_NEON;
    default: return BN_ISA_SCALAR;
    }
}

static bn_isa parse_isa(const char *name) {
    for (int i = 0; i < BN_ISA_COUNT; i++)
        if (!strcmp(name, bn_isa_name((bn_isa)i))) return (bn_isa)i;
    return BN_ISA_COUNT;
}

/* -1: not chosen yet. */
static atomic_int active_isa = -1;
/* Set when BITNET_ISA or bn_isa_set_active chose the path (the tuner then keeps it). */
static atomic_bool isa_forced;

bn_isa bn_isa_active(void) {
    int isa = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (isa >= 0) return (bn_isa)isa;
    bn_isa chosen = bn_isa_best_supported();
    const char *forced = getenv("BITNET_ISA");
    if (forced && *forced) {
        bn_isa wanted = parse_isa(forced);
        /* An unusable request falls back to the best path; bn_isa_check_environment() lets
         * main() report it as an error before any kernel runs. */
        if (wanted != BN_ISA_COUNT && bn_isa_supported(wanted)) {
            chosen = wanted;
            atomic_store_explicit(&isa_forced, true, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&active_isa, (int)chosen, memory_order_relaxed);
    return chosen;
}

bool bn_i2s_gfni_supported(void) { return bn_isa_supported(BN_ISA_AVX512) && flags()->gfni; }

bool bn_avxvnni_supported(void) {
#ifdef BITNET_HAVE_AVXVNNI
    return bn_isa_supported(BN_ISA_AVX2) && flags()->avxvnni;
#else
    return false; /* the compiler cannot build cpu/matmul_avxvnni.c */
#endif
}

/* Linux hands out the 8 KiB tile data state only on request (arch_prctl ARCH_REQ_XCOMP_PERM for
 * XFEATURE_XTILEDATA, once per process, before any thread touches a tile); without the grant the
 * first tile instruction faults. */
static bool request_amx_permission(void) {
#if defined(__linux__) && defined(__x86_64__)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return false;
#endif
}

bool bn_amx_emulated(void) {
    static atomic_int state; /* 0: not read yet, 1: on, 2: off */
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == 0) {
        const char *value = getenv("BITNET_AMX_EMULATE");
        s = value && !strcmp(value, "1") && bn_isa_supported(BN_ISA_AVX512) ? 1 : 2;
        atomic_store_explicit(&state, s, memory_order_release);
    }
    return s == 1;
}

bool bn_amx_supported(void) {
    static atomic_int state; /* 0: not asked yet, 1: granted, 2: not available */
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == 0 && bn_amx_emulated()) s = 1;
    if (s == 0) {
        const cpu_flags *f = flags();
#ifdef BITNET_HAVE_AMX
        const bool usable = bn_isa_supported(BN_ISA_AVX512) && f->amx_tile && f->amx_int8 &&
                            f->os_amx && request_amx_permission();
#else
        const bool usable = false; /* the compiler cannot build cpu/matmul_amx.c */
        (void)f;
        (void)request_amx_permission;
#endif
        s = usable ? 1 : 2;
        atomic_store_explicit(&state, s, memory_order_release);
    }
    return s == 1;
}

void bn_isa_set_active(bn_isa isa) {
    atomic_store_explicit(&isa_forced, true, memory_order_relaxed);
    atomic_store_explicit(&active_isa, (int)isa, memory_order_relaxed);
}

bool bn_isa_forced(void) {
    (void)bn_isa_active(); /* reads BITNET_ISA */
    return atomic_load_explicit(&isa_forced, memory_order_relaxed);
}

bn_status bn_isa_set_active_by_name(const char *name, bn_error *err) {
    bn_isa isa = parse_isa(name);
    if (isa == BN_ISA_COUNT)
        return bn_error_set(err, BN_ERR_INVALID,
                            "unknown ISA path '%s' (expected scalar, avx2, avx512, neon or neondot)",
                            name);
    if (!bn_isa_supported(isa))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "this CPU does not support the %s path", name);
    bn_isa_set_active(isa);
    return BN_OK;
}

bn_status bn_isa_check_environment(bn_error *err) {
    const char *forced = getenv("BITNET_ISA");
    if (!forced || !*forced) return BN_OK;
    bn_status status = bn_isa_set_active_by_name(forced, err);
    if (status != BN_OK) bn_error_prefix(err, "BITNET_ISA: ");
    return status;
}

void bn_cpu_features_describe(char *buf, size_t size) {
    const cpu_flags *f = flags();
    struct { bool on; const char *name; } list[] = {
        {f->sse42, "sse4.2"}, {f->avx, "avx"}, {f->avx2, "avx2"}, {f->fma, "fma"},
        {f->f16c, "f16c"}, {f->bmi2, "bmi2"}, {f->avx512f, "avx512f"}, {f->avx512bw, "avx512bw"},
        {f->avx512vl, "avx512vl"}, {f->avx512dq, "avx512dq"}, {f->avx512vnni, "avx512vnni"},
        {f->avx512bf16, "avx512bf16"}, {f->avx512fp16, "avx512fp16"}, {f->amx_tile, "amx-tile"},
        {f->gfni, "gfni"}, {f->avxvnni, "avxvnni"}, {f->amx_int8, "amx-int8"}, {f->asimd, "asimd"}, {f->asimddp, "asimddp"}, {f->fphp, "fphp"},
        {f->asimdhp, "asimdhp"},
    };
    size_t used = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (!list[i].on) continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? " " : "", list[i].name);
        if (n < 0 || (size_t)n >= size - used) break;
        used += (size_t)n;
    }
}

void bn_cpu_model_name(char *buf, size_t size) {
    snprintf(buf, size, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512], implementer[32] = "", part[32] = "";
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (!colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        /* ARM kernels name no model: the first core's implementer and part ids stand for it */
        if (!strncmp(line, "CPU implementer", 15) && !implementer[0])
            snprintf(implementer, sizeof implementer, "%.*s", (int)strcspn(colon, "\n"), colon);
        if (!strncmp(line, "CPU part", 8) && !part[0])
            snprintf(part, sizeof part, "%.*s", (int)strcspn(colon, "\n"), colon);
        if (strncmp(line, "model name", 10) != 0) continue;
        snprintf(buf, size, "%s", colon);
        buf[strcspn(buf, "\n")] = '\0';
        implementer[0] = '\0';
        break;
    }
    if (implementer[0] && part[0])
        snprintf(buf, size, "ARM CPU implementer %s part %s", implementer, part);
    fclose(f);
}
