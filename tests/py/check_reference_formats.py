#!/usr/bin/python3
"""check_reference_formats.py - checks of the reference's block formats, activation quantizers, dot
kernels and model graphs (reference/ggml_quants.py, ggml_arith.py, bitnet_ref.py; spec sections 3,
4.1, 9). Run with /usr/bin/python3 (numpy + torch); exit 0 when every check passes.

- Q8_K and Q8_0 activation quantizers on hand cases (ties, negative and positive max, first of equal
  |x|, zero block, bsums).
- Decoders against blocks packed by hand here (TQ2_0, TQ1_0 incl. literal bytes, Q8_0, Q4_K with
  6-bit scales above 15, Q6_K with negative scales), and the module's encoders against the same bytes.
- The TQ / Q8_0 / Q6_K / Q4_K dots against a scalar emulation written here from the kernels (explicit
  lane loops, the kernel's bsums subtraction, exact FMAs with fractions): bit for bit; and against a
  float64 dot of the dequantized weights and the float activations: close.
- SiLU (16-lane groups + libm tail) against float64; glibc expf against numpy's float32 exp.
- Graphs: `llama` (GQA, key_length != dim/heads, rope_freqs, untied output) and `bitnet` (scales,
  SiLU and relu2) with float weights against a float64 forward written here; TQ1_0 / TQ2_0 models
  with F16, BF16, F32, Q8_0, Q6_K and Q4_K heads/embeddings against the float64 forward (cosine);
  bitnet-b1.58 ignores an output.weight; the committed bitnet.cpp logits (testdata oracle A) still
  bit for bit when that data is present.
"""
import math
import os
import struct
import sys
import tempfile
from fractions import Fraction

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "reference"))
import bitnet_ref  # noqa: E402
import ggml_arith  # noqa: E402
import ggml_quants as Q  # noqa: E402

F32 = np.float32
FAIL = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ((" (" + detail + ")") if detail else ""))
    if not ok:
        FAIL.append(what)


def h16(v):
    return np.float16(v).astype("<f2").tobytes()


# ---------------- exact scalar float32 helpers ----------------
def round_f32(fr):
    """correctly rounded float32 of a Fraction (ties to even)"""
    if fr == 0:
        return F32(0)
    c = F32(float(fr))
    best = None
    for cand in (np.nextafter(c, F32(-np.inf)), c, np.nextafter(c, F32(np.inf))):
        err = abs(Fraction(float(cand)) - fr)
        key = (err, int(np.array(cand, F32).view(np.uint32)) & 1)
        if best is None or key < best[0]:
            best = (key, cand)
    return F32(best[1])


def fmaf(a, b, c):
    return round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def hsum8_scalar(acc):
    r = [F32(acc[i + 4] + acc[i]) for i in range(4)]
    return F32(F32(r[0] + r[2]) + F32(r[1] + r[3]))


# ---------------- 1. activation quantizers ----------------
def check_q8k():
    x = np.zeros((1, 256), F32)
    x[0, :6] = [-127, 2.5, 3.5, -2.5, 0.5, 1.5]
    q, d, bs = Q.quantize_q8_k(x)
    check("Q8_K negative max: iscale 1, d 1, ties to even (2.5->2, 3.5->4, -2.5->-2, 0.5->0, 1.5->2)",
          list(q[0, 0, :6]) == [-127, 2, 4, -2, 0, 2] and d[0, 0] == 1.0, "q %s d %r" % (list(q[0, 0, :6]), d[0, 0]))
    x[0, 0] = 127
    q, d, bs = Q.quantize_q8_k(x)
    check("Q8_K positive max: iscale -1, d -1, q = -x", list(q[0, 0, :6]) == [-127, -2, -4, 2, 0, -2] and d[0, 0] == -1.0)
    x = np.zeros((2, 512), F32)
    x[0, 10], x[0, 20] = 3.0, -3.0       # first of equal |x| is +3 -> iscale -127/3
    x[0, 30] = 1.0
    x[1, 300], x[1, 301] = -3.0, 3.0     # second row, second block: first is -3
    q, d, bs = Q.quantize_q8_k(x)
    isc = F32(-127.0) / F32(3.0)
    exp30 = int(np.rint(F32(isc * F32(1.0))))
    check("Q8_K first of equal |x| sets the sign (+3 first: q -127/+127, d = 1/(-127/3f))",
          q[0, 0, 10] == -127 and q[0, 0, 20] == 127 and q[0, 0, 30] == exp30 and d[0, 0] == F32(F32(1) / isc))
    check("Q8_K (-3 first): iscale +127/3, q(-3) = -127, q(+3) = +127, d > 0",
          q[1, 1, 44] == -127 and q[1, 1, 45] == 127 and d[1, 1] == F32(F32(1) / -isc) and d[1, 1] > 0)
    check("Q8_K all-zero block: d 0, q 0, bsums 0", d[0, 1] == 0 and not q[0, 1].any() and not bs[0, 1].any()
          and d[1, 0] == 0)
    check("Q8_K bsums = sums of 16", bs[0, 0, 0] == -127 and bs[0, 0, 1] == 127 + exp30 and bs.shape == (2, 2, 16))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 768)).astype(F32)
    q, d, bs = Q.quantize_q8_k(x)
    ok = True
    for t in range(3):                     # scalar transcription of quantize_row_q8_K_ref
        for b in range(3):
            blk = x[t, 256 * b:256 * (b + 1)]
            amax, mx = F32(0), F32(0)
            for v in blk:
                if abs(v) > amax:
                    amax, mx = abs(v), v
            iscale = F32(F32(-127.0) / mx)
            qq = [min(127, int(np.rint(F32(iscale * v)))) for v in blk]
            ok &= qq == list(q[t, b]) and d[t, b] == F32(F32(1) / iscale)
            ok &= [sum(qq[16 * k:16 * k + 16]) for k in range(16)] == list(bs[t, b])
    check("Q8_K random rows equal a scalar transcription of quantize_row_q8_K_ref", ok)
    x = np.zeros((1, 64), F32)
    x[0, :4] = [1.0, 0.5, -0.5, 1.0 / 127 * 2.5]
    x[0, 40] = -2.0
    q, d = Q.quantize_q8_0(x)
    check("Q8_0 activations: d = fp16(amax/127), q = rint(x*127/amax)",
          d[0, 0] == F32(np.float16(F32(1.0) / F32(127))) and list(q[0, 0, :3]) == [127, 64, -64]
          and q[0, 0, 3] == int(np.rint(F32(x[0, 3] * F32(127)))) and q[0, 1, 8] == -127
          and d[0, 1] == F32(np.float16(F32(2.0) / F32(127))))
    q, d = Q.quantize_q8_0(np.zeros((1, 32), F32))
    check("Q8_0 zero block: d 0, q 0", d[0, 0] == 0 and not q.any())


# ---------------- 2. decoders against hand-packed blocks ----------------
def check_decoders():
    rng = np.random.default_rng(1)
    # TQ2_0: qs[32h+m] bits 2n..2n+1 = element 128h + 32n + m
    codes = rng.integers(0, 3, 256)
    qs = bytearray(64)
    for i in range(256):
        h, n, m = i // 128, (i % 128) // 32, i % 32
        qs[32 * h + m] |= int(codes[i]) << (2 * n)
    blk = np.frombuffer(bytes(qs) + h16(0.5), np.uint8)
    c, d = Q.decode_tq2_0(blk)
    check("TQ2_0 decode of a hand-packed block", list(c) == list(codes) and d == 0.5)
    check("TQ2_0 encoder gives the same bytes", Q.encode_tq2_0(codes, 0.5).tobytes() == blk.tobytes())
    lit = np.frombuffer(bytes([0b10010010]) + bytes(63) + h16(2.0), np.uint8)
    v = Q.dequantize(lit, Q.T_TQ2_0)
    check("TQ2_0 literal byte 0b10_01_00_10 -> elements 0, 32, 64, 96 = +2, -2, 0, +2 (d 2)",
          [v[0], v[32], v[64], v[96]] == [2.0, -2.0, 0.0, 2.0] and v[1] == -2.0)
    # TQ1_0: literal bytes
    t = [2, 1, 0, 2, 1]                   # v = 196, byte = ceil(196*256/243) = 207
    qs = bytearray([math.ceil(196 * 256 / 243)] + [0] * 47)
    qh = bytearray([math.ceil(46 * 3 * 256 / 243)] + [0] * 3)   # trits 1,2,0,1: v = 46
    blk = np.frombuffer(bytes(qs) + bytes(qh) + h16(1.0), np.uint8)
    c, d = Q.decode_tq1_0(blk)
    check("TQ1_0 literal qs byte 207 -> trits 2,1,0,2,1 at elements 0,32,64,96,128",
          [c[32 * n] for n in range(5)] == t and qs[0] == 207)
    check("TQ1_0 literal qh byte 146 -> trits 1,2,0,1 at elements 240,244,248,252",
          [c[240 + 4 * n] for n in range(4)] == [1, 2, 0, 1] and qh[0] == 146)
    zero_byte = math.ceil(0 * 256 / 243)
    check("TQ1_0 code 0 bytes decode to 0 everywhere else", c[1] == 0 and c[160] == 0 and zero_byte == 0)
    # random TQ1_0 block packed by hand (5 trits per byte, first most significant)
    codes = rng.integers(0, 3, 256)
    qs = bytearray(48)
    qh = bytearray(4)
    for m in range(32):
        v = 0
        for n in range(5):
            v = v * 3 + int(codes[32 * n + m])
        qs[m] = (v * 256 + 242) // 243
    for m in range(16):
        v = 0
        for n in range(5):
            v = v * 3 + int(codes[160 + 16 * n + m])
        qs[32 + m] = (v * 256 + 242) // 243
    for j in range(4):
        v = 0
        for n in range(4):
            v = v * 3 + int(codes[240 + j + 4 * n])
        qh[j] = (v * 3 * 256 + 242) // 243
    blk = np.frombuffer(bytes(qs) + bytes(qh) + h16(0.75), np.uint8)
    c, d = Q.decode_tq1_0(blk)
    check("TQ1_0 decode of a hand-packed random block", list(c) == list(codes) and d == 0.75)
    check("TQ1_0 encoder gives the same bytes", Q.encode_tq1_0(codes, 0.75).tobytes() == blk.tobytes())
    avx = []
    for b in range(256):                  # the AVX2 kernel's trit extraction equals ((b*3)>>8)
        vp = max(b - 1, 0)
        avx.append(((vp + ((vp + 1) >> 1) + 1) >> 1) >> 6)
    check("TQ1_0 AVX2 subs/avg/shift trit extraction == ((b*3)>>8) for all 256 bytes",
          avx == [(b * 3) >> 8 for b in range(256)])
    # Q8_0
    qv = rng.integers(-128, 128, 32)
    blk = np.frombuffer(h16(0.125) + qv.astype(np.int8).tobytes(), np.uint8)
    check("Q8_0 dequantize = q * d", list(Q.dequantize(blk, Q.T_Q8_0)) == [float(v) * 0.125 for v in qv])
    # Q4_K: hand-packed 6-bit scales/mins, some above 15 (high bits in bytes 0..7)
    sc = [3, 1, 2, 60, 37, 5, 15, 63]
    mn = [2, 0, 9, 33, 7, 50, 16, 1]
    q4 = rng.integers(0, 16, 256)
    q4[0] = 5
    s12 = bytearray(12)
    for j in range(4):
        s12[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
        s12[j + 4] = (mn[j] & 63) | ((mn[j + 4] >> 4) << 6)
        s12[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4)
    qs = bytearray(128)
    for j in range(4):
        for l in range(32):
            qs[32 * j + l] = int(q4[64 * j + l]) | (int(q4[64 * j + 32 + l]) << 4)
    blk = np.frombuffer(h16(0.5) + h16(0.25) + bytes(s12) + bytes(qs), np.uint8)
    v = Q.dequantize(blk, Q.T_Q4_K)
    expect = [F32(F32(F32(0.5) * sc[i // 32]) * F32(q4[i])) - F32(F32(0.25) * mn[i // 32]) for i in range(256)]
    check("Q4_K: element 0 = 0.5*3*5 - 0.25*2 = 7.0", v[0] == 7.0, "got %r" % v[0])
    check("Q4_K dequantize of a hand-packed block (scales > 15 in the high bits)", list(v) == expect)
    s_, m_ = Q.scale_min_k4(np.frombuffer(bytes(s12), np.uint8))
    check("Q4_K get_scale_min_k4 unpack", list(s_) == sc and list(m_) == mn)
    check("Q4_K encoder gives the same bytes", Q.encode_q4_k(q4, sc, mn, 0.5, 0.25).tobytes() == blk.tobytes())
    # Q6_K: hand-packed, negative scales
    q6 = rng.integers(0, 64, 256)
    q6[0] = 40
    sc6 = rng.integers(-128, 128, 16)
    sc6[0] = -3
    ql, qh = bytearray(128), bytearray(64)
    for half in range(2):
        for l in range(32):
            e = [128 * half + 32 * k + l for k in range(4)]
            ql[64 * half + l] = (q6[e[0]] & 15) | ((q6[e[2]] & 15) << 4)
            ql[64 * half + 32 + l] = (q6[e[1]] & 15) | ((q6[e[3]] & 15) << 4)
            qh[32 * half + l] = (q6[e[0]] >> 4) | ((q6[e[1]] >> 4) << 2) | ((q6[e[2]] >> 4) << 4) | ((q6[e[3]] >> 4) << 6)
    blk = np.frombuffer(bytes(ql) + bytes(qh) + sc6.astype(np.int8).tobytes() + h16(0.125), np.uint8)
    v = Q.dequantize(blk, Q.T_Q6_K)
    expect = [F32(F32(F32(0.125) * F32(sc6[i // 16])) * F32(int(q6[i]) - 32)) for i in range(256)]
    check("Q6_K: element 0 = 0.125 * -3 * (40-32) = -3.0", v[0] == -3.0, "got %r" % v[0])
    check("Q6_K dequantize of a hand-packed block (negative scales)", list(v) == expect)
    check("Q6_K encoder gives the same bytes", Q.encode_q6_k(q6, sc6, 0.125).tobytes() == blk.tobytes())


# ---------------- 3. dot kernels vs scalar emulation ----------------
def scalar_tq(codes_row, dw_row, qx, dx, bs):
    """ggml_vec_dot_tq*_q8_K transcribed: codes (nb, 256) in 0..2, per block 8 lanes"""
    acc = [F32(0)] * 8
    for b in range(len(dw_row)):
        lanes = [0] * 8
        for i in range(256):
            lanes[(i % 32) // 4] += int(codes_row[b, i]) * int(qx[b, i])
        for L in range(8):
            lanes[L] -= int(bs[b, 2 * L]) + int(bs[b, 2 * L + 1])
        dd = F32(dx[b] * dw_row[b])
        acc = [F32(acc[L] + F32(F32(lanes[L]) * dd)) for L in range(8)]
    return hsum8_scalar(acc)


def scalar_q8_0(qw, dw, qx, dx):
    acc = [F32(0)] * 8
    for b in range(len(dw)):
        lanes = [sum(int(qw[b, 4 * L + k]) * int(qx[b, 4 * L + k]) for k in range(4)) for L in range(8)]
        d = F32(dw[b] * dx[b])
        acc = [fmaf(d, F32(lanes[L]), acc[L]) for L in range(8)]
    return hsum8_scalar(acc)


def scalar_q6_k(q6, sc, dw, qx, dx):
    acc = [F32(0)] * 8
    for b in range(len(dw)):
        lanes = [0] * 8
        for i in range(256):
            lanes[(i % 32) // 4] += int(sc[b, i // 16]) * (int(q6[b, i]) - 32) * int(qx[b, i])
        d = F32(dx[b] * dw[b])
        acc = [fmaf(d, F32(lanes[L]), acc[L]) for L in range(8)]
    return hsum8_scalar(acc)


def scalar_q4_k(q4, sc, mn, dw, dmw, qx, dx, bs):
    acc = [F32(0)] * 8
    accm = [F32(0)] * 4
    for b in range(len(dw)):
        lanes = [0] * 8
        for i in range(256):
            lanes[(i % 32) // 4] += int(sc[b, i // 32]) * int(q4[b, i]) * int(qx[b, i])
        d = F32(dx[b] * dw[b])
        acc = [fmaf(d, F32(lanes[L]), acc[L]) for L in range(8)]
        S = [int(bs[b, 2 * g]) + int(bs[b, 2 * g + 1]) for g in range(8)]
        prod = [int(mn[b, 2 * k]) * S[2 * k] + int(mn[b, 2 * k + 1]) * S[2 * k + 1] for k in range(4)]
        dmin = F32(-dx[b] * dmw[b])
        accm = [fmaf(dmin, F32(prod[k]), accm[k]) for k in range(4)]
    m = F32(F32(accm[0] + accm[2]) + F32(accm[1] + accm[3]))
    return F32(hsum8_scalar(acc) + m)


def cos_close(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def check_dots():
    rng = np.random.default_rng(7)
    T, n_in, n_out = 3, 512, 5
    x = (rng.standard_normal((T, n_in)) * 0.7).astype(F32)
    x[1, :256] = 0                       # a zero block
    qx, dx, bs = Q.quantize_q8_k(x)
    for ttype, enc, name in ((Q.T_TQ2_0, Q.encode_tq2_0, "TQ2_0"), (Q.T_TQ1_0, Q.encode_tq1_0, "TQ1_0")):
        codes = rng.integers(0, 3, (n_out, 2, 256))
        dws = rng.uniform(0.01, 0.1, (n_out, 2)).astype(np.float16).astype(F32)
        raw = enc(codes, dws).tobytes()
        w, d = Q.decode_ternary(raw, ttype, n_out, n_in)
        got = Q.TernaryTQ(w, d, ttype)(torch.from_numpy(x)).numpy()
        want = np.array([[scalar_tq(codes[r], dws[r], qx[t], dx[t], bs[t]) for r in range(n_out)] for t in range(T)], F32)
        check("%s x Q8_K dot equals the scalar kernel emulation bit for bit (%d x %d)" % (name, T, n_out),
              np.array_equal(got, want), "max diff %g" % np.abs(got - want).max())
        wf = (codes.astype(np.float64) - 1) * np.repeat(dws, 256, axis=1).reshape(n_out, 2, 256)
        ref = x.astype(np.float64) @ wf.reshape(n_out, n_in).T
        err = np.abs(got - ref).max() / np.abs(ref).max()
        check("%s dot close to the float64 dot (relative %.2e < 2e-2)" % (name, err), err < 2e-2)
        got_small = Q.TernaryTQ(w, d, ttype)(torch.from_numpy(x), token_chunk=1).numpy()
        check("%s dot independent of the token chunking" % name, np.array_equal(got, got_small))
    # heads
    V = 6
    xq0, dx0 = Q.quantize_q8_0(x)
    qw = rng.integers(-127, 128, (V, n_in // 32, 32))
    dw = rng.uniform(0.001, 0.02, (V, n_in // 32)).astype(np.float16).astype(F32)
    blk = np.concatenate([dw.astype(np.float16).astype("<f2")[..., None].view(np.uint8),
                          qw.astype(np.int8).view(np.uint8)], axis=-1)
    M = Q.QuantMatrix(blk.tobytes(), Q.T_Q8_0, V, n_in)
    got = M.matmul(torch.from_numpy(x)).numpy()
    want = np.array([[scalar_q8_0(qw[r], dw[r], xq0[t], dx0[t]) for r in range(V)] for t in range(T)], F32)
    check("Q8_0 x Q8_0 head equals the scalar kernel emulation (fused FMA lanes)", np.array_equal(got, want),
          "max diff %g" % np.abs(got - want).max())
    ref = x.astype(np.float64) @ (qw * np.repeat(dw, 32, axis=1).reshape(qw.shape)).reshape(V, n_in).T
    check("Q8_0 head close to the float64 dot", np.abs(got - ref).max() / np.abs(ref).max() < 2e-2)
    check("Q8_0 rows() = dequantize", np.array_equal(M.rows([2]).numpy()[0], (qw[2] * dw[2][:, None]).astype(F32).ravel()))
    q6 = rng.integers(0, 64, (V, 2, 256))
    sc6 = rng.integers(-128, 128, (V, 2, 16))
    d6 = rng.uniform(0.0001, 0.001, (V, 2)).astype(np.float16).astype(F32)
    M = Q.QuantMatrix(Q.encode_q6_k(q6, sc6, d6).tobytes(), Q.T_Q6_K, V, n_in)
    got = M.matmul(torch.from_numpy(x)).numpy()
    want = np.array([[scalar_q6_k(q6[r], sc6[r], d6[r], qx[t], dx[t]) for r in range(V)] for t in range(T)], F32)
    check("Q6_K x Q8_K head equals the scalar kernel emulation", np.array_equal(got, want),
          "max diff %g" % np.abs(got - want).max())
    deq = M.rows(np.arange(V)).numpy().astype(np.float64)
    ref = x.astype(np.float64) @ deq.T
    check("Q6_K head close to the float64 dot", np.abs(got - ref).max() / np.abs(ref).max() < 2e-2)
    q4 = rng.integers(0, 16, (V, 2, 256))
    sc4 = rng.integers(0, 64, (V, 2, 8))
    mn4 = rng.integers(0, 64, (V, 2, 8))
    d4 = rng.uniform(0.001, 0.01, (V, 2)).astype(np.float16).astype(F32)
    m4 = rng.uniform(0.001, 0.01, (V, 2)).astype(np.float16).astype(F32)
    M = Q.QuantMatrix(Q.encode_q4_k(q4, sc4, mn4, d4, m4).tobytes(), Q.T_Q4_K, V, n_in)
    got = M.matmul(torch.from_numpy(x)).numpy()
    want = np.array([[scalar_q4_k(q4[r], sc4[r], mn4[r], d4[r], m4[r], qx[t], dx[t], bs[t]) for r in range(V)]
                     for t in range(T)], F32)
    check("Q4_K x Q8_K head equals the scalar kernel emulation (mins through bsums)", np.array_equal(got, want),
          "max diff %g" % np.abs(got - want).max())
    deq = M.rows(np.arange(V)).numpy().astype(np.float64)
    ref = x.astype(np.float64) @ deq.T
    check("Q4_K head close to the float64 dot", np.abs(got - ref).max() / np.abs(ref).max() < 2e-2)


# ---------------- 4. SiLU ----------------
def check_silu():
    rng = np.random.default_rng(3)
    x = torch.from_numpy((rng.standard_normal((4, 200)) * 4).astype(F32))
    y = ggml_arith.silu(x).numpy().astype(np.float64)
    xd = x.numpy().astype(np.float64)
    ref = xd / (1 + np.exp(-xd))
    check("SiLU (16-lane groups + libm tail, 200 = 12*16 + 8) close to float64", np.abs(y - ref).max() < 1e-5 * np.abs(ref).max())
    tail = x[:, 192:]
    want = tail / (1 + torch.from_numpy(ggml_arith.expf((-tail).numpy())))
    check("SiLU tail uses x / (1 + expf(-x))", torch.equal(ggml_arith.silu(x)[:, 192:], want))
    z = (rng.standard_normal(200000) * 10).astype(F32)
    diff = int((ggml_arith.expf(z) != np.exp(z)).sum())
    print("info: glibc expf and numpy's float32 exp differ on %d of %d random inputs" % (diff, z.size))


# ---------------- 5. GGUF writer and graphs ----------------
def write_gguf(path, kv, tensors):
    """kv: list of (key, value); tensors: list of (name, ne list, ggml type, bytes)"""
    def s(b):
        b = b.encode()
        return struct.pack("<Q", len(b)) + b
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for k, v in kv:
        out.append(s(k))
        if isinstance(v, bool):
            out.append(struct.pack("<IB", 7, v))
        elif isinstance(v, int):
            out.append(struct.pack("<Iq", 11, v))
        elif isinstance(v, float):
            out.append(struct.pack("<If", 6, v))
        elif isinstance(v, str):
            out.append(struct.pack("<I", 8) + s(v))
        else:
            raise TypeError(k)
    off = 0
    datas = []
    for name, ne, tt, data in tensors:
        out.append(s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
                   + struct.pack("<IQ", tt, off))
        pad = bytes((-len(data)) % 32)
        datas.append(data + pad)
        off += len(data) + len(pad)
    head = b"".join(out)
    head += bytes((-len(head)) % 32)
    with open(path, "wb") as f:
        f.write(head + b"".join(datas))


def f32b(a):
    return np.ascontiguousarray(a, "<f4").tobytes()


class Synth:
    """random weights for a small model; `proj` picks the projection storage (F32 values, or TQ1_0 /
    TQ2_0 with random codes and block scales); returns the float64 weights the file holds"""

    def __init__(self, arch, dim, n_layers, n_heads, n_kv, ffn, vocab, head_dim=None, seed=0):
        self.arch, self.dim, self.n_layers, self.n_heads, self.n_kv = arch, dim, n_layers, n_heads, n_kv
        self.ffn, self.vocab = ffn, vocab
        self.hd = head_dim or dim // n_heads
        self.rng = np.random.default_rng(seed)
        self.kv = [("general.architecture", arch), (arch + ".embedding_length", dim),
                   (arch + ".block_count", n_layers), (arch + ".attention.head_count", n_heads),
                   (arch + ".attention.head_count_kv", n_kv), (arch + ".feed_forward_length", ffn),
                   (arch + ".context_length", 256), (arch + ".attention.layer_norm_rms_epsilon", 1e-5),
                   (arch + ".rope.freq_base", 10000.0)]
        if head_dim:
            self.kv += [(arch + ".attention.key_length", head_dim), (arch + ".attention.value_length", head_dim)]
        self.tensors, self.W = [], {}

    def norm(self, name, n):
        g = (1 + 0.1 * self.rng.standard_normal(n)).astype(F32)
        self.tensors.append((name, [n], 0, f32b(g)))
        self.W[name] = g.astype(np.float64)

    def proj(self, name, n_out, n_in, kind):
        if kind == "f32":
            w = (self.rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)).astype(F32)
            self.tensors.append((name, [n_in, n_out], 0, f32b(w)))
            self.W[name] = w.astype(np.float64)
            return
        codes = self.rng.integers(0, 3, (n_out, n_in // 256, 256))
        d = (self.rng.uniform(0.5, 1.5, (n_out, n_in // 256)) / math.sqrt(n_in * 2 / 3)).astype(np.float16)
        tt, enc = (Q.T_TQ2_0, Q.encode_tq2_0) if kind == "tq2" else (Q.T_TQ1_0, Q.encode_tq1_0)
        self.tensors.append((name, [n_in, n_out], tt, enc(codes, d).tobytes()))
        self.W[name] = ((codes - 1) * d.astype(np.float64)[..., None]).reshape(n_out, n_in)

    def matrix(self, name, rows, cols, kind, scale=0.5):
        w = (self.rng.standard_normal((rows, cols)) * scale).astype(F32)
        if kind == "f32":
            data, tt, val = f32b(w), 0, w.astype(np.float64)
        elif kind == "f16":
            h = w.astype(np.float16)
            data, tt, val = h.astype("<f2").tobytes(), 1, h.astype(np.float64)
        elif kind == "bf16":
            u = (w.view(np.uint32) >> 16).astype("<u2")
            data, tt, val = u.tobytes(), 30, (u.astype(np.uint32) << 16).view(F32).astype(np.float64)
        else:
            tt = {"q8_0": Q.T_Q8_0, "q6_k": Q.T_Q6_K, "q4_k": Q.T_Q4_K}[kind]
            be = Q.BLOCK[tt][0]
            nb = cols // be
            if tt == Q.T_Q8_0:
                d = (np.abs(w).reshape(rows, nb, 32).max(-1) / 127).astype(np.float16)
                qv = np.rint(w.reshape(rows, nb, 32) / np.maximum(d.astype(F32), 1e-8)[..., None]).clip(-127, 127)
                blk = np.concatenate([d.astype("<f2")[..., None].view(np.uint8), qv.astype(np.int8).view(np.uint8)], -1)
            elif tt == Q.T_Q6_K:
                blk = Q.encode_q6_k(self.rng.integers(0, 64, (rows, nb, 256)), self.rng.integers(-60, 60, (rows, nb, 16)),
                                    np.full((rows, nb), scale / 600, np.float16))
            else:
                blk = Q.encode_q4_k(self.rng.integers(0, 16, (rows, nb, 256)), self.rng.integers(1, 64, (rows, nb, 8)),
                                    self.rng.integers(0, 64, (rows, nb, 8)), np.full((rows, nb), scale / 100, np.float16),
                                    np.full((rows, nb), scale / 200, np.float16))
            data = blk.tobytes()
            val = Q.dequantize(blk, tt).reshape(rows, cols).astype(np.float64)
        self.tensors.append((name, [cols, rows], tt, data))
        self.W[name] = val

    def build(self, path, proj="f32", embd="f32", head=None, scales=False, sub=False, rope_freqs=None, extra_kv=()):
        hq, hkv = self.n_heads * self.hd, self.n_kv * self.hd
        self.matrix("token_embd.weight", self.vocab, self.dim, embd)
        if head:
            self.matrix("output.weight", self.vocab, self.dim, head, scale=0.1)
        self.norm("output_norm.weight", self.dim)
        if rope_freqs is not None:
            self.tensors.append(("rope_freqs.weight", [len(rope_freqs)], 0, f32b(rope_freqs)))
        for i in range(self.n_layers):
            p = "blk.%d." % i
            self.norm(p + "attn_norm.weight", self.dim)
            self.norm(p + "ffn_norm.weight", self.dim)
            if sub:
                self.norm(p + "attn_sub_norm.weight", hq)
                self.norm(p + "ffn_sub_norm.weight", self.ffn)
            for n, (o, k) in (("attn_q", (hq, self.dim)), ("attn_k", (hkv, self.dim)), ("attn_v", (hkv, self.dim)),
                              ("attn_output", (self.dim, hq)), ("ffn_gate", (self.ffn, self.dim)),
                              ("ffn_up", (self.ffn, self.dim)), ("ffn_down", (self.dim, self.ffn))):
                self.proj(p + n + ".weight", o, k, proj)
                if scales:
                    sv = np.array([self.rng.uniform(0.5, 2.0)], F32)
                    self.tensors.append((p + n + ".scale", [1], 0, f32b(sv)))
                    self.W[p + n + ".scale"] = float(sv[0])
        write_gguf(path, self.kv + list(extra_kv), self.tensors)
        return self.W


def naive_forward(W, cfg, ids):
    """float64 forward of spec 9.1 / 9.2 / 4 (no activation quantization, no F16 KV)"""
    arch, nh, nkv, hd = cfg["arch"], cfg["n_heads"], cfg["n_kv"], cfg["hd"]
    T = len(ids)

    def rms(v, g):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + 1e-5) * g

    def lin(v, name):
        y = v @ W[name + ".weight"].T
        return y * W[name + ".scale"] if name + ".scale" in W else y
    ff = cfg.get("rope_freqs")
    inv = 10000.0 ** (-np.arange(hd // 2) * 2.0 / hd)
    if ff is not None:
        inv = inv / ff
    ang = np.arange(T)[:, None] * inv[None, :]
    c, s = np.cos(ang), np.sin(ang)

    def rope(v):                           # v (T, H, hd)
        if arch == "llama":
            x0, x1 = v[..., 0::2], v[..., 1::2]
        else:
            x0, x1 = v[..., :hd // 2], v[..., hd // 2:]
        d0 = x0 * c[:, None] - x1 * s[:, None]
        d1 = x0 * s[:, None] + x1 * c[:, None]
        if arch == "llama":
            return np.stack([d0, d1], -1).reshape(v.shape)
        return np.concatenate([d0, d1], -1)
    x = W["token_embd.weight"][ids]
    for i in range(cfg["n_layers"]):
        p = "blk.%d." % i
        a = rms(x, W[p + "attn_norm.weight"])
        q = rope(lin(a, p + "attn_q").reshape(T, nh, hd))
        k = rope(lin(a, p + "attn_k").reshape(T, nkv, hd))
        v = lin(a, p + "attn_v").reshape(T, nkv, hd)
        o = np.empty((T, nh, hd))
        for h in range(nh):
            kh = h // (nh // nkv)
            sc = q[:, h] @ k[:, kh].T / math.sqrt(hd)
            sc = np.where(np.tril(np.ones((T, T))) > 0, sc, -np.inf)
            e = np.exp(sc - sc.max(-1, keepdims=True))
            o[:, h] = (e / e.sum(-1, keepdims=True)) @ v[:, kh]
        o = o.reshape(T, nh * hd)
        if arch != "llama":
            o = rms(o, W[p + "attn_sub_norm.weight"])
        x = x + lin(o, p + "attn_output")
        f = rms(x, W[p + "ffn_norm.weight"])
        g, u = lin(f, p + "ffn_gate"), lin(f, p + "ffn_up")
        h = (np.maximum(g, 0) ** 2 if cfg.get("relu2") else g / (1 + np.exp(-g))) * u
        if arch != "llama":
            h = rms(h, W[p + "ffn_sub_norm.weight"])
        x = x + lin(h, p + "ffn_down")
    hw = W["output.weight"] if (arch == "llama" and "output.weight" in W) else W["token_embd.weight"]
    return rms(x, W["output_norm.weight"]) @ hw.T


def check_graphs(tmp):
    ids = [1, 7, 3, 99, 42, 5, 17, 60, 2, 8]
    # llama, float weights: GQA 8/2, key_length 48 (q width 384 != dim 256), rope_freqs, untied F32 head
    S = Synth("llama", 256, 2, 8, 2, 200, 100, head_dim=48, seed=11)
    ff = np.linspace(1.0, 8.0, 24).astype(F32)
    W = S.build(os.path.join(tmp, "llama_f32.gguf"), proj="f32", embd="f32", head="f32", rope_freqs=ff)
    cfg = dict(arch="llama", dim=256, n_heads=8, n_kv=2, hd=48, n_layers=2, rope_freqs=ff.astype(np.float64))
    m = bitnet_ref.RefModel(os.path.join(tmp, "llama_f32.gguf"), kv_f16=False)
    got = m.logits(ids).numpy().astype(np.float64)
    ref = naive_forward(W, cfg, ids)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    check("llama (float weights, GQA, key_length 48, rope_freqs, output.weight) vs float64 forward: rel %.1e" % err, err < 1e-4)
    cfg_nof = dict(cfg, rope_freqs=None)
    err2 = np.abs(got - naive_forward(W, cfg_nof, ids)).max() / np.abs(ref).max()
    check("llama: rope_freqs matter (without them the float64 forward differs: rel %.1e)" % err2, err2 > 1e-3)
    m16 = bitnet_ref.RefModel(os.path.join(tmp, "llama_f32.gguf"))
    check("llama with the default F16 K/V runs and stays close (cos %.6f)" % cos_close(m16.logits(ids).numpy(), ref),
          cos_close(m16.logits(ids).numpy(), ref) > 0.9999)
    # bitnet, float weights, scales, SiLU and relu2
    for act in ("silu", "relu2"):
        S = Synth("bitnet", 256, 2, 4, 4, 200, 100, seed=12)
        extra = [("bitnet.hidden_activation", "relu2")] if act == "relu2" else []
        path = os.path.join(tmp, "bitnet_%s.gguf" % act)
        W = S.build(path, proj="f32", embd="f16", scales=True, sub=True, extra_kv=extra)
        cfg = dict(arch="bitnet", dim=256, n_heads=4, n_kv=4, hd=64, n_layers=2, relu2=act == "relu2")
        m = bitnet_ref.RefModel(path, kv_f16=False)
        got = m.logits(ids).numpy().astype(np.float64)
        ref = naive_forward(W, cfg, ids)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        check("bitnet (%s, scales, sub-norms, NEOX, tied F16 head) vs float64 forward: rel %.1e" % (act, err), err < 1e-4)
        W2 = {k: v for k, v in W.items() if not k.endswith(".scale")}
        check("bitnet (%s): the scale tensors are applied" % act,
              np.abs(got - naive_forward(W2, cfg, ids)).max() / np.abs(ref).max() > 1e-3)
    # ternary models with every head / embedding type
    combos = [("llama", "tq2", "f16", None), ("llama", "tq1", "f32", "q6_k"), ("llama", "tq2", "q4_k", "q8_0"),
              ("llama", "tq1", "q8_0", "bf16"), ("llama", "tq2", "q6_k", "q4_k"), ("bitnet", "tq2", "bf16", None),
              ("bitnet", "tq1", "q4_k", None)]
    for arch, proj, embd, head in combos:
        S = Synth(arch, 256, 2, 8, 2, 512, 120, head_dim=64, seed=13)
        path = os.path.join(tmp, "%s_%s_%s_%s.gguf" % (arch, proj, embd, head))
        W = S.build(path, proj=proj, embd=embd, head=head, sub=arch == "bitnet", scales=arch == "bitnet")
        cfg = dict(arch=arch, dim=256, n_heads=8, n_kv=2, hd=64, n_layers=2)
        m = bitnet_ref.RefModel(path)
        got = m.logits(ids).numpy()
        ref = naive_forward(W, cfg, ids)
        c = min(cos_close(got[t], ref[t]) for t in range(len(ids)))
        ok = np.isfinite(got).all() and c > 0.99
        check("%s %s projections, embd %s, head %s: runs, min cosine vs float64 %.5f" % (arch, proj.upper(), embd, head or "tied", c), ok)
        if arch == "llama" and proj == "tq2" and embd == "f16" and head is None:
            one = m.logits(ids[:1]).numpy()
            check("  position 0 alone equals position 0 of the batch", np.array_equal(one[0], got[0]))
    # bitnet-b1.58 ignores output.weight
    S = Synth("bitnet-b1.58", 256, 1, 4, 2, 256, 120, seed=14)
    W = S.build(os.path.join(tmp, "b158_out.gguf"), proj="f32", embd="f16", head="f32", sub=True)
    m = bitnet_ref.RefModel(os.path.join(tmp, "b158_out.gguf"), kv_f16=False)
    cfg = dict(arch="bitnet-b1.58", dim=256, n_heads=4, n_kv=2, hd=64, n_layers=1, relu2=True)
    got = m.logits(ids).numpy().astype(np.float64)
    ref = naive_forward(W, cfg, ids)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    check("bitnet-b1.58 with an output.weight uses token_embd as its head (rel %.1e vs float64)" % err,
          err < 1e-4 and m.head is m.tok_embd)


def check_oracle_a():
    data = os.path.join(ROOT, "..", "shared", "testdata", "bitnetcpp-oracle-a")
    if not os.path.exists(os.path.join(data, "logits.f32")):
        print("skip: testdata/bitnetcpp-oracle-a not present")
        return
    import json
    ids = json.load(open(os.path.join(data, "tokens.json")))
    m = bitnet_ref.RefModel(os.path.join(data, "model.gguf"))
    got = m.logits(ids).numpy()
    want = np.fromfile(os.path.join(data, "logits.f32"), "<f4").reshape(got.shape)
    check("bitnet-b1.58 oracle A: bitnet.cpp's logits bit for bit (48 x %d)" % got.shape[1], np.array_equal(got, want))


def main():
    torch.set_num_threads(2)
    check_q8k()
    check_decoders()
    check_dots()
    check_silu()
    with tempfile.TemporaryDirectory() as tmp:
        check_graphs(tmp)
    check_oracle_a()
    print("%d failed" % len(FAIL) if FAIL else "all checks passed")
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
