"""ggml_quants.py - ggml's block formats (TQ1_0, TQ2_0, Q8_0, Q4_K, Q6_K), its activation quantizers
(Q8_K, Q8_0) and its AVX2 dot-product kernels, emulated in numpy/torch with ggml's exact rounding,
for bitnet_ref.py (spec sections 3 and 9.3).

Design: every function is defined by the integer arithmetic and the float32 roundings of the ggml
code it mirrors (llama.cpp ggml/src/ggml-quants.c for the dequantizers and quantize_row_q8_K_ref,
ggml/src/ggml-cpu/arch/x86/quants.c for the AVX2 quantize_row_q8_0 and the vec_dot kernels), read
from the public source and rewritten here; shares no code with the C engine. The integer parts of
a dot are exact (computed with float matmuls whose every partial sum is an integer below 2^24, or
in float64), so only the float steps written down below decide the result.

All the AVX2 dots used here share one lane layout: a 256-bit register of 8 int32 lanes, where lane
L (0..7) holds the products of the elements i of a block with (i % 32) // 4 == L (maddubs pairs
bytes 2k, 2k+1 into int16 k, madd with ones pairs int16 2L, 2L+1 into int32 L, and every 32-byte
load covers 32 consecutive elements of the block). The float accumulator has the same 8 lanes, and
hsum_float_8 reduces it as r_i = acc[i+4] + acc[i] (i = 0..3), then (r0 + r2) + (r1 + r3).

Activation quantizers
- Q8_K (quantize_row_q8_K_ref; ggml-cpu's x86 quantize_row_q8_K calls it): per 256-block,
  amax = max|x| and m = the first x with |x| == amax; all-zero block: d = 0, q = 0. Else
  iscale = -127.0f / m (float division), q = min(127, nearest_int(fl(iscale * x))) with
  nearest_int = round half to even (the 1.5*2^23 trick), d = 1.0f / iscale (float);
  bsums[k] = sum of q over elements 16k..16k+15. (Note the sign: q has the opposite sign of x and
  d is negative; the products d * q come out right.)
- Q8_0, AVX2 (quantize_row_q8_0): per 32-block, amax = max|x|; d = fp16(amax / 127.f) (float
  division, round-to-nearest-even to half); id = amax != 0 ? 127.f / amax : 0;
  q = round_half_even(fl(x * id)) (_mm256_round_ps nearest, packs saturate to int8).

Dot kernels (one output row against one activation row; `dx` is the activation block scale)
- TQ2_0 / TQ1_0 x Q8_K (ggml_vec_dot_tq2_0_q8_K / tq1_0): per block the int16/int32 lanes are
  lane_L = sum_{(i%32)//4 == L} code_i * q_i - (bsums[2L] + bsums[2L+1]), code = weight + 1 in
  {0,1,2} (so lane_L = sum w_i q_i + sum_{(i%32)//4==L} q_i - sum_{32L <= i < 32L+32} q_i: the
  bsums subtraction is not per lane what the products added, only the total agrees).
  dd = fl(dx * fp16_to_f32(d_w)); acc_L = fl(acc_L + fl(float(lane_L) * dd)) (_mm256_mul_ps then
  _mm256_add_ps: no FMA); result = hsum_float_8(acc).
- Q8_0 x Q8_0 (ggml_vec_dot_q8_0_q8_0, AVX2): lane_L = sum of q_w * q_x over elements 4L..4L+3 of
  the 32-block; d = fl(fp16(d_w) * fp16(d_x)); acc_L = fmaf(d, float(lane_L), acc_L)
  (_mm256_fmadd_ps); hsum_float_8.
- Q6_K x Q8_K (ggml_vec_dot_q6_K_q8_K, AVX2): element i of a block has the 6-bit code
  q6_i in 0..63 and the int8 scale sc[i // 16]; the kernel forms maddubs(q6, q8) - maddubs(32, q8)
  per int16 pair, then madd with the int16 scales, so lane_L = sum_{(i%32)//4 == L}
  sc[i//16] * (q6_i - 32) * q_i; d = fl(dx * fp16(d_w)); acc_L = fmaf(d, float(lane_L), acc_L);
  hsum_float_8.
- Q4_K x Q8_K (ggml_vec_dot_q4_K_q8_K, AVX2): 6-bit scales sc[j] and mins mn[j] (j = 0..7, one per
  32 elements, unpacked as get_scale_min_k4); lane_L = sum_{(i%32)//4 == L} sc[i//32] * q4_i * q_i;
  d = fl(dx * fp16(d_w)); acc_L = fmaf(d, float(lane_L), acc_L). The mins go to a separate 4-lane
  accumulator: S_g = bsums[2g] + bsums[2g+1] (sum of q over 32-group g), prod_k = mn[2k]*S_2k +
  mn[2k+1]*S_2k+1 (k = 0..3, _mm_madd_epi16), dmin = fl(-dx * fp16(dmin_w)), accm_k =
  fmaf(dmin, float(prod_k), accm_k). Result = fl(hsum_float_8(acc) + fl(fl(accm0 + accm2) +
  fl(accm1 + accm3))).

Dequantizers (dequantize_row_*, used for embedding rows; built with clang -march=native
-ffp-contract=on, so `a * b - c` in one statement is an FMA)
- Q8_0: y = float(q) * fp16(d) (exact).
- Q6_K: y = fl(fl(fp16(d) * sc) * q), q = q6 - 32 (two multiplies, no add to fuse).
- Q4_K: d1 = fl(fp16(d) * sc), m1 = fl(fp16(dmin) * mn), y = fmaf(d1, q4, -m1); d1 * q4 has at
  most 11 + 6 + 4 bits, so it is exact and the FMA equals fl(fl(d1 * q4) - m1).
- TQ2_0 / TQ1_0: y = float(code - 1) * fp16(d) (exact).

Block layouts (ggml-common.h): block_q8_0 {f16 d; i8 qs[32]} 34 B; block_q4_K {f16 d; f16 dmin;
u8 scales[12]; u8 qs[128]} 144 B (qs[32j + l] holds element 64j + l in the low nibble and
64j + 32 + l in the high nibble); block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} 210 B;
block_tq2_0 {u8 qs[64]; f16 d} 66 B; block_tq1_0 {u8 qs[48]; u8 qh[4]; f16 d} 54 B (spec section 3).
"""
import numpy as np

try:                      # gguf_reader imports this module for the block tables; it needs only numpy
    import torch
except ImportError:       # pragma: no cover
    torch = None

QK_K = 256
# ggml type id -> (elements per block, bytes per block)
T_Q8_0, T_Q4_K, T_Q6_K, T_TQ1_0, T_TQ2_0 = 8, 12, 14, 34, 35
BLOCK = {T_Q8_0: (32, 34), T_Q4_K: (256, 144), T_Q6_K: (256, 210), T_TQ1_0: (256, 54), T_TQ2_0: (256, 66)}
TYPE_NAMES = {0: "F32", 1: "F16", 30: "BF16", 36: "I2_S", T_Q8_0: "Q8_0", T_Q4_K: "Q4_K", T_Q6_K: "Q6_K",
              T_TQ1_0: "TQ1_0", T_TQ2_0: "TQ2_0"}
_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)
F32 = np.float32


def f16(b):
    """little-endian fp16 bytes (uint8 array, last axis 2) -> float32 values (exact)"""
    return np.ascontiguousarray(b).view("<f2")[..., 0].astype(F32)


def blocks(raw, ttype, n_rows, n_cols):
    """raw tensor bytes -> uint8 array (n_rows, n_cols / block_elems, block_bytes)"""
    be, bb = BLOCK[ttype]
    if n_cols % be:
        raise ValueError("%s rows of %d elements are not a multiple of %d" % (TYPE_NAMES[ttype], n_cols, be))
    a = np.frombuffer(raw, dtype=np.uint8, count=n_rows * (n_cols // be) * bb)
    return a.reshape(n_rows, n_cols // be, bb)


def hsum8(acc):
    """hsum_float_8 over the last axis (8 float32 lanes): r_i = acc[i+4] + acc[i], then
    (r0 + r2) + (r1 + r3); works on numpy float32 and torch float32"""
    r = acc[..., 4:8] + acc[..., 0:4]
    return (r[..., 0] + r[..., 2]) + (r[..., 1] + r[..., 3])


# ---------------- ternary formats ----------------
def _trits(b, n):
    """trit n (0 = most significant) of base-3 packed bytes: ((uint8)(b * 3^n) * 3) >> 8. (The AVX2
    kernel's subs/avg/shift sequence gives the same value for all 256 bytes.)"""
    q = (b.astype(np.uint16) * _POW3[n]) & 0xFF
    return ((q * 3) >> 8).astype(np.uint8)


def decode_tq2_0(blk):
    """TQ2_0 blocks (..., 66) -> (codes uint8 (..., 256) in element order, d float32 (...)).
    qs[32h + m] bits 2n..2n+1 hold element 128h + 32n + m."""
    qs = blk[..., :64].reshape(blk.shape[:-1] + (2, 1, 32))
    codes = (qs >> (2 * np.arange(4, dtype=np.uint8))[:, None]) & 3          # (..., 2 h, 4 n, 32 m)
    return codes.reshape(blk.shape[:-1] + (256,)), f16(blk[..., 64:66])


def decode_tq1_0(blk):
    """TQ1_0 blocks (..., 54) -> (codes uint8 (..., 256), d float32 (...)). qs[0..32): trit n of byte
    m is element 32n + m; qs[32..48): element 160 + 16n + m; qh[j]: trit n is element 240 + 4n + j."""
    lead = blk.shape[:-1]
    a = np.stack([_trits(blk[..., 0:32], n) for n in range(5)], axis=-2)      # (..., 5, 32)
    b = np.stack([_trits(blk[..., 32:48], n) for n in range(5)], axis=-2)     # (..., 5, 16)
    c = np.stack([_trits(blk[..., 48:52], n) for n in range(4)], axis=-2)     # (..., 4, 4)
    codes = np.concatenate([a.reshape(lead + (160,)), b.reshape(lead + (80,)), c.reshape(lead + (16,))], axis=-1)
    return codes, f16(blk[..., 52:54])


def encode_tq2_0(codes, d):
    """codes (..., 256) in {0,1,2} (weight + 1), d (...) float -> TQ2_0 blocks (..., 66)"""
    c = np.asarray(codes, np.uint8).reshape(np.shape(codes)[:-1] + (2, 4, 32))
    qs = np.zeros(c.shape[:-3] + (2, 32), np.uint8)
    for n in range(4):
        qs |= c[..., n, :] << (2 * n)
    dd = np.asarray(d, np.float16).astype("<f2")[..., None].view(np.uint8)
    return np.concatenate([qs.reshape(qs.shape[:-2] + (64,)), dd], axis=-1)


def _pack_trits(t):
    """t (..., k) trits, first most significant -> ceil(v * 256 / 243) as quantize_row_tq1_0_ref"""
    v = np.zeros(t.shape[:-1], np.uint16)
    for i in range(t.shape[-1]):
        v = v * 3 + t[..., i]
    if t.shape[-1] == 4:
        v = v * 3                      # qh: the 4 trits sit in the top positions
    return ((v * 256 + 242) // 243).astype(np.uint8)


def encode_tq1_0(codes, d):
    """codes (..., 256) in {0,1,2}, d (...) -> TQ1_0 blocks (..., 54), packed as quantize_row_tq1_0_ref"""
    c = np.asarray(codes, np.uint16)
    qs0 = _pack_trits(np.moveaxis(c[..., :160].reshape(c.shape[:-1] + (5, 32)), -2, -1))
    qs1 = _pack_trits(np.moveaxis(c[..., 160:240].reshape(c.shape[:-1] + (5, 16)), -2, -1))
    qh = _pack_trits(np.moveaxis(c[..., 240:].reshape(c.shape[:-1] + (4, 4)), -2, -1))
    dd = np.asarray(d, np.float16).astype("<f2")[..., None].view(np.uint8)
    return np.concatenate([qs0, qs1, qh, dd], axis=-1)


def decode_ternary(raw, ttype, n_rows, n_cols):
    """TQ1_0 / TQ2_0 tensor -> (weights int8 (n_rows, n_cols) in {-1,0,1} (2 for a TQ2_0 code 3, which
    the kernel multiplies as 3 - 1), d float32 (n_rows, n_cols / 256))"""
    out = np.empty((n_rows, n_cols), np.int8)
    ds = np.empty((n_rows, n_cols // QK_K), F32)
    blk = blocks(raw, ttype, n_rows, n_cols)
    dec = decode_tq2_0 if ttype == T_TQ2_0 else decode_tq1_0
    step = max(1, (1 << 22) // n_cols)
    for r0 in range(0, n_rows, step):
        codes, d = dec(blk[r0:r0 + step])
        out[r0:r0 + step] = (codes.reshape(codes.shape[0], -1).astype(np.int8) - 1)
        ds[r0:r0 + step] = d
    return out, ds


# ---------------- activation quantizers ----------------
def quantize_q8_k(x):
    """x (T, n) float32 (n % 256 == 0) -> (q int8 (T, nb, 256), d float32 (T, nb), bsums int32 (T, nb, 16))
    as quantize_row_q8_K_ref (see the module docstring)"""
    x = np.ascontiguousarray(x, dtype=F32)
    T, n = x.shape
    if n % QK_K:
        raise ValueError("Q8_K: row of %d elements is not a multiple of 256" % n)
    xb = x.reshape(T, n // QK_K, QK_K)
    ax = np.abs(xb)
    idx = np.argmax(ax, axis=-1)[..., None]                      # first index of the largest |x|
    m = np.take_along_axis(xb, idx, axis=-1)[..., 0]
    zero = ax.max(axis=-1) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(-127.0) / np.where(zero, F32(1), m)         # float division
        prod = (iscale[..., None] * xb).astype(F32)              # fl(iscale * x)
        q = np.minimum(np.rint(prod), 127)                       # nearest_int: half to even
        d = (F32(1.0) / iscale).astype(F32)
    q = np.where(zero[..., None], 0, q).astype(np.int8)
    d = np.where(zero, F32(0), d).astype(F32)
    bsums = q.reshape(T, n // QK_K, 16, 16).astype(np.int32).sum(-1)
    return q, d, bsums


def quantize_q8_0(x):
    """x (T, n) float32 (n % 32 == 0) -> (q int8 (T, nb, 32), d float32 (T, nb): the fp16 scale's value)
    as the AVX2 quantize_row_q8_0"""
    x = np.ascontiguousarray(x, dtype=F32)
    T, n = x.shape
    if n % 32:
        raise ValueError("Q8_0: row of %d elements is not a multiple of 32" % n)
    xb = x.reshape(T, n // 32, 32)
    amax = np.abs(xb).max(axis=-1)
    d = (amax / F32(127.0)).astype(F32).astype(np.float16).astype(F32)
    with np.errstate(divide="ignore"):
        iden = np.where(amax != 0, F32(127.0) / np.where(amax != 0, amax, F32(1)), F32(0)).astype(F32)
    q = np.clip(np.rint((xb * iden[..., None]).astype(F32)), -128, 127).astype(np.int8)
    return q, d


# ---------------- lane sums ----------------
def _lane_layout(a):
    """(..., nb, S) with S a multiple of 32 -> (..., nb, 8 lanes, S/8): element i goes to lane (i%32)//4"""
    s = a.shape[-1]
    a = a.reshape(a.shape[:-1] + (s // 32, 8, 4))
    return np.swapaxes(a, -3, -2).reshape(a.shape[:-3] + (8, s // 8))


def lane_dot(w, q, dtype=None):
    """exact integer lane sums: w (R, nb, S) ints, q (T, nb, S) ints -> (nb, 8, R, T) float tensor with
    out[b, L, r, t] = sum over elements i of block b with (i%32)//4 == L of w[r,b,i] * q[t,b,i]"""
    wl = torch.from_numpy(np.ascontiguousarray(np.moveaxis(_lane_layout(w), 0, 2)).astype(np.float64))
    ql = torch.from_numpy(np.ascontiguousarray(np.moveaxis(_lane_layout(q), 0, 3)).astype(np.float64))
    return torch.matmul(wl.to(dtype or torch.float64), ql.to(dtype or torch.float64))   # (nb,8,R,S/8)@(nb,8,S/8,T)


def _rows_per_chunk(n_blocks, T, budget=1 << 25):
    return max(1, budget // max(1, n_blocks * 8 * T))


# ---------------- TQ1_0 / TQ2_0 projections ----------------
class TernaryTQ:
    """a TQ1_0 / TQ2_0 projection: weights int8 kept in the lane order of the kernel,
    (nb, 8 lanes, n_out, 32), and the fp16 block scales as float32 (n_out, nb)"""

    def __init__(self, w, d, ttype):
        self.n_out, self.n_in = w.shape
        if self.n_in % QK_K:
            raise ValueError("%s: rows of %d are not a multiple of 256" % (TYPE_NAMES[ttype], self.n_in))
        self.nb = self.n_in // QK_K
        self.ttype = ttype
        wl = _lane_layout(w.reshape(self.n_out, self.nb, QK_K))          # (n_out, nb, 8, 32)
        self.w = torch.from_numpy(np.ascontiguousarray(wl.transpose(1, 2, 0, 3)))   # int8
        self.d = torch.from_numpy(np.ascontiguousarray(d, dtype=F32))

    def __call__(self, x, token_chunk=None):
        """x (T, n_in) float32 torch -> (T, n_out) float32: Q8_K activations, ggml_vec_dot_tq*_q8_K"""
        T = x.shape[0]
        step = token_chunk or max(1, (1 << 26) // (self.nb * 8 * self.n_out * 4))
        out = torch.empty(T, self.n_out, dtype=torch.float32)
        wf = self.w.float()                                               # (nb, 8, n_out, 32)
        for t0 in range(0, T, step):
            q, dx, bs = quantize_q8_k(x[t0:t0 + step].numpy())
            tt = q.shape[0]
            ql = _lane_layout(q)                                          # (tt, nb, 8, 32)
            # integer part: sum w*q per lane (every partial sum below 32*127*2: exact in float32)
            wq = torch.matmul(wf, torch.from_numpy(np.ascontiguousarray(ql.transpose(1, 2, 3, 0)).astype(F32)))
            # + sum over the lane's own elements of q (the +1 of the codes) - bsums[2L] - bsums[2L+1]
            corr = ql.astype(np.int32).sum(-1) - bs.reshape(tt, self.nb, 8, 2).sum(-1)   # (tt, nb, 8)
            lanes = wq + torch.from_numpy(np.ascontiguousarray(corr.transpose(1, 2, 0)).astype(F32))[:, :, None, :]
            dxt = torch.from_numpy(dx)                                    # (tt, nb)
            acc = torch.zeros(8, self.n_out, tt, dtype=torch.float32)
            for b in range(self.nb):
                dd = dxt[:, b][None, :] * self.d[:, b][:, None]          # fl(d_x * d_w), (n_out, tt)
                acc = acc + lanes[b] * dd                                 # fl(acc + fl(lane * dd))
            out[t0:t0 + tt] = hsum8(acc.permute(2, 1, 0)).contiguous()
        return out


# ---------------- heads: Q8_0, Q6_K, Q4_K ----------------
def decode_q8_0(blk):
    """Q8_0 blocks (..., 34) -> (q int8 (..., 32), d float32 (...))"""
    return np.ascontiguousarray(blk[..., 2:34]).view(np.int8), f16(blk[..., 0:2])


def decode_q6_k(blk):
    """Q6_K blocks (..., 210) -> (q6 uint8 codes 0..63 (..., 256), sc int8 (..., 16), d float32 (...))"""
    lead = blk.shape[:-1]
    ql = blk[..., 0:128].reshape(lead + (2, 64))
    qh = blk[..., 128:192].reshape(lead + (2, 32))
    sc = np.ascontiguousarray(blk[..., 192:208]).view(np.int8)
    q = np.empty(lead + (2, 4, 32), np.uint8)
    q[..., 0, :] = (ql[..., 0:32] & 0xF) | (((qh >> 0) & 3) << 4)
    q[..., 1, :] = (ql[..., 32:64] & 0xF) | (((qh >> 2) & 3) << 4)
    q[..., 2, :] = (ql[..., 0:32] >> 4) | (((qh >> 4) & 3) << 4)
    q[..., 3, :] = (ql[..., 32:64] >> 4) | (((qh >> 6) & 3) << 4)
    return q.reshape(lead + (256,)), sc, f16(blk[..., 208:210])


def encode_q6_k(q6, sc, d):
    """q6 (..., 256) codes 0..63, sc (..., 16) int8, d (...) -> Q6_K blocks (..., 210)"""
    q = np.asarray(q6, np.uint8).reshape(np.shape(q6)[:-1] + (2, 4, 32))
    ql = np.concatenate([(q[..., 0, :] & 0xF) | ((q[..., 2, :] & 0xF) << 4),
                         (q[..., 1, :] & 0xF) | ((q[..., 3, :] & 0xF) << 4)], axis=-1)   # (..., 2, 64)
    qh = (q[..., 0, :] >> 4) | ((q[..., 1, :] >> 4) << 2) | ((q[..., 2, :] >> 4) << 4) | ((q[..., 3, :] >> 4) << 6)
    lead = ql.shape[:-2]
    return np.concatenate([ql.reshape(lead + (128,)), qh.reshape(lead + (64,)),
                           np.asarray(sc, np.int8).view(np.uint8),
                           np.asarray(d, np.float16).astype("<f2")[..., None].view(np.uint8)], axis=-1)


def scale_min_k4(sc12):
    """the 12 packed scale bytes of a Q4_K block (..., 12) -> (sc (..., 8), mn (..., 8)) as get_scale_min_k4"""
    q = sc12.astype(np.int32)
    sc = np.concatenate([q[..., 0:4] & 63, (q[..., 8:12] & 0xF) | ((q[..., 0:4] >> 6) << 4)], axis=-1)
    mn = np.concatenate([q[..., 4:8] & 63, (q[..., 8:12] >> 4) | ((q[..., 4:8] >> 6) << 4)], axis=-1)
    return sc, mn


def decode_q4_k(blk):
    """Q4_K blocks (..., 144) -> (q4 uint8 (..., 256), sc int32 (..., 8), mn int32 (..., 8), d, dmin float32)"""
    lead = blk.shape[:-1]
    qs = blk[..., 16:144].reshape(lead + (4, 32))
    q = np.stack([qs & 0xF, qs >> 4], axis=-2)                      # (..., 4 j, 2, 32): 64j + 32h + l
    sc, mn = scale_min_k4(blk[..., 4:16])
    return q.reshape(lead + (256,)), sc, mn, f16(blk[..., 0:2]), f16(blk[..., 2:4])


def encode_q4_k(q4, sc, mn, d, dmin):
    """q4 (..., 256) in 0..15, sc / mn (..., 8) in 0..63, d, dmin (...) -> Q4_K blocks (..., 144)"""
    q = np.asarray(q4, np.uint8).reshape(np.shape(q4)[:-1] + (4, 2, 32))
    qs = (q[..., 0, :] | (q[..., 1, :] << 4)).reshape(q.shape[:-3] + (128,))
    sc, mn = np.asarray(sc, np.uint8), np.asarray(mn, np.uint8)
    s12 = np.concatenate([(sc[..., 0:4] & 63) | ((sc[..., 4:8] >> 4) << 6),
                          (mn[..., 0:4] & 63) | ((mn[..., 4:8] >> 4) << 6),
                          (sc[..., 4:8] & 0xF) | ((mn[..., 4:8] & 0xF) << 4)], axis=-1).astype(np.uint8)
    hd = [np.asarray(v, np.float16).astype("<f2")[..., None].view(np.uint8) for v in (d, dmin)]
    return np.concatenate(hd + [s12, qs], axis=-1)


def dequantize(blk, ttype):
    """blocks (..., bytes) -> float32 (..., block elements) as ggml's dequantize_row_*"""
    if ttype == T_Q8_0:
        q, d = decode_q8_0(blk)
        return q.astype(F32) * d[..., None]
    if ttype == T_Q6_K:
        q, sc, d = decode_q6_k(blk)
        dsc = (d[..., None] * sc.astype(F32)).astype(F32)                         # fl(d * sc), exact
        return (np.repeat(dsc, 16, axis=-1) * (q.astype(F32) - F32(32))).astype(F32)   # fl(. * q)
    if ttype == T_Q4_K:
        q, sc, mn, d, dmin = decode_q4_k(blk)
        d1 = np.repeat((d[..., None] * sc.astype(F32)).astype(F32), 32, axis=-1)
        m1 = np.repeat((dmin[..., None] * mn.astype(F32)).astype(F32), 32, axis=-1)
        return ((d1 * q.astype(F32)).astype(F32) - m1).astype(F32)                 # fmaf(d1, q, -m1)
    if ttype in (T_TQ1_0, T_TQ2_0):
        codes, d = (decode_tq2_0 if ttype == T_TQ2_0 else decode_tq1_0)(blk)
        return (codes.astype(F32) - F32(1)) * d[..., None]
    raise ValueError("no dequantizer for type %d" % ttype)


class QuantMatrix:
    """a Q8_0 / Q6_K / Q4_K matrix (n_rows x n_cols) kept as its raw blocks: rows(ids) dequantizes the
    looked-up rows (embedding), matmul(x) is the head (ggml_vec_dot_*, rows done in chunks)"""

    def __init__(self, raw, ttype, n_rows, n_cols):
        self.blk = blocks(raw, ttype, n_rows, n_cols)
        self.ttype, self.n_rows, self.n_cols = ttype, n_rows, n_cols
        self.shape = (n_rows, n_cols)

    def rows(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        return torch.from_numpy(dequantize(self.blk[ids], self.ttype).reshape(len(ids), self.n_cols))

    def matmul(self, x):
        """x (T, n_cols) float32 torch -> logits (T, n_rows) float32"""
        x = x.numpy()
        T = x.shape[0]
        out = np.empty((T, self.n_rows), F32)
        if self.ttype == T_Q8_0:
            qx, dx = quantize_q8_0(x)
            fn = self._chunk_q8_0
        else:
            qx, dx, bs = quantize_q8_k(x)
            fn = self._chunk_q6_k if self.ttype == T_Q6_K else (lambda b, qx, dx: self._chunk_q4_k(b, qx, dx, bs))
        step = _rows_per_chunk(self.blk.shape[1], T)
        for r0 in range(0, self.n_rows, step):
            out[:, r0:r0 + step] = fn(self.blk[r0:r0 + step], qx, dx).T
        return torch.from_numpy(out)

    @staticmethod
    def _fma_blocks(lanes, dscale):
        """acc_L = fmaf(dscale[b], float(lane[b, L]), acc_L) over blocks b in order; lanes (nb, 8, R, T),
        dscale (nb, R, T) float32 -> (R, T, 8) float32"""
        import ggml_arith
        lanes = lanes.numpy().astype(F32)                 # exact: integers below 2^24
        acc = np.zeros(lanes.shape[2:] + (8,), F32)
        for b in range(lanes.shape[0]):
            acc = ggml_arith.fma32(dscale[b][..., None], np.moveaxis(lanes[b], 0, -1), acc).numpy()
        return acc

    @staticmethod
    def _chunk_q8_0(blk, qx, dx):
        qw, dw = decode_q8_0(blk)                                         # (R, nb, 32), (R, nb)
        lanes = lane_dot(qw, qx)
        d = (dw.T[:, :, None] * dx.T[:, None, :]).astype(F32)             # fl(fp16(d_w) * fp16(d_x))
        return hsum8(QuantMatrix._fma_blocks(lanes, d))

    @staticmethod
    def _chunk_q6_k(blk, qx, dx):
        q6, sc, dw = decode_q6_k(blk)
        w = np.repeat(sc.astype(np.int32), 16, axis=-1) * (q6.astype(np.int32) - 32)
        lanes = lane_dot(w, qx)
        d = (dx.T[:, None, :] * dw.T[:, :, None]).astype(F32)             # fl(y.d * fp16(x.d))
        return hsum8(QuantMatrix._fma_blocks(lanes, d))

    @staticmethod
    def _chunk_q4_k(blk, qx, dx, bs):
        q4, sc, mn, dw, dmw = decode_q4_k(blk)
        w = np.repeat(sc, 32, axis=-1) * q4.astype(np.int32)
        lanes = lane_dot(w, qx)
        d = (dx.T[:, None, :] * dw.T[:, :, None]).astype(F32)
        acc = QuantMatrix._fma_blocks(lanes, d)
        # mins: S_g = bsums[2g] + bsums[2g+1]; prod_k = mn[2k] S_2k + mn[2k+1] S_2k+1
        S = bs.reshape(bs.shape[0], bs.shape[1], 8, 2).sum(-1)            # (T, nb, 8)
        prod = np.einsum("rbkh,tbkh->brtk", mn.reshape(mn.shape[0], mn.shape[1], 4, 2).astype(np.int64),
                         S.reshape(S.shape[0], S.shape[1], 4, 2).astype(np.int64)).astype(F32)
        dmin = (-dx.T[:, None, :] * dmw.T[:, :, None]).astype(F32)        # fl(-y.d * fp16(x.dmin))
        import ggml_arith
        accm = np.zeros(prod.shape[1:], F32)
        for b in range(prod.shape[0]):
            accm = ggml_arith.fma32(dmin[b][..., None], prod[b], accm).numpy()
        m = (accm[..., 0] + accm[..., 2]) + (accm[..., 1] + accm[..., 3])
        return hsum8(acc) + m
