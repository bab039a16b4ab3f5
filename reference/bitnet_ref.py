#!/usr/bin/python3
"""bitnet_ref.py - PyTorch reference implementation of the BitNet b1.58 forward pass (spec section 4)
and of the other families bitnet.cpp runs (spec 9: `bitnet`, `llama`), with the exact arithmetic of
spec sections 4.1 and 9.3 (bit-identical to bitnet.cpp's batch path).

Design: an independent oracle for the C engine's backends. It reads GGUF files with its own reader
(gguf_reader.py), builds the tokenizer from the file's metadata (tokenizer.py; GPT-2 BPE
vocabularies only, other files take --tokens) and computes full-sequence logits in float32.
Architectures (general.architecture):
- bitnet-b1.58 / bitnet-25 (2B-4T): RMSNorm -> Q/K/V -> NEOX RoPE -> causal GQA attention ->
  attn_sub_norm -> Wo; RMSNorm -> relu(Wgate f)^2 * (Wup f) -> ffn_sub_norm -> Wdown; the head is
  always token_embd (an output.weight is ignored).
- bitnet (1bitLLM): the same with SiLU(Wgate f) * (Wup f) (squared ReLU when
  bitnet.hidden_activation = "relu2"), optional F32 {1} tensors blk.N.<proj>.scale multiplying each
  projection's result (one float multiply), head = token_embd.
- llama: no sub-norms, NORM RoPE (pairs 2i, 2i+1), SiLU FFN, attention.key_length/value_length
  (equal) as head_dim (q is n_heads*head_dim wide, Wo maps it back to the embedding), optional
  rope_freqs [n_rot/2] (pair i turns by theta/ff[i]), optional linear rope scaling, head =
  output.weight when present, else token_embd.
Projection types: I2_S (per-token activation quantization below), TQ1_0 / TQ2_0 (Q8_K activations
and the AVX2 lane order, ggml_quants.TernaryTQ), and float (F32/F16/BF16 values used as they are,
in double; not an official layout). Weights stay int8 (the 2B-4T shape fits in about 2 GB).
token_embd / output: F16, BF16, F32 (float activations in tinyBLAS order), Q8_0 (Q8_0 activations),
Q6_K and Q4_K (Q8_K activations): ggml_quants.QuantMatrix keeps those as raw blocks, dequantizes
only the embedding rows looked up (dequantize_row_*) and runs the head through ggml's AVX2 dot
arithmetic (written down in ggml_quants.py).
Random-weight models turn a 1-ulp difference into an int8 rounding flip, so every operation rounds
where bitnet.cpp's ggml rounds (spec 4.1; the float32 primitives are in ggml_arith.py):
- RMSNorm: float squares summed in order in double; mean = (float)(sum/n); scale = 1.0f/sqrtf(mean+eps);
  y = x*scale, then y*g, in float.
- W1.58 A8 linear (I2_S): s_x = 127 / max(max|x|, 1e-5) (division in double, stored as float32),
  x_q = clamp(round_half_even(x * s_x), -128, 127), acc = exact integer sum of w * x_q,
  y = fl(fl(acc / s_x) * s_w).
- TQ1_0 / TQ2_0: Q8_K per 256-block, 8 int32 lanes per block, acc_L = fl(acc_L + fl(lane_L * fl(d_x * d_w))),
  hsum_float_8 (ggml_quants.py).
- RoPE: theta_scale = powf(base, -2.0f/n_rot); theta = (float)pos, theta *= theta_scale per pair in
  float; glibc cosf/sinf of theta (of theta/ff[i] with rope_freqs); d0 = fmaf(x0, c, -(x1*s)),
  d1 = fmaf(x0, s, x1*c); pairs (i, i + n_rot/2) for NEOX, (2i, 2i+1) for NORM.
- Q, K and V rounded to F16 (bitnet.cpp's F16 KV cache; Q is converted for the F16 dot).
  Q.K = ggml_vec_dot_f16 (4 x 16 float lanes in steps of 64, reduced acc0+acc2, acc1+acc3, then
  the 16-lane halving tree; dims past a multiple of 64 added in double).
- softmax: w = (float)(score * (1.0f/sqrtf(head_dim))); e = ggml_v_expf(w - max) (polynomial exp);
  16-element chunk sums by the halving tree in float, added in double; p = e * (float)(1.0/sum).
- P.V and the F16/BF16/F32 heads (float activations): tinyBLAS order, 16 float lanes of fmaf over
  k = j, j+16, ..., then the halving tree.
- squared ReLU r*r, SiLU (per row: x / (1.0f + ggml_v_expf(-x)) in full groups of 16, glibc expf
  for the tail), the elementwise products and the residual adds: single float operations.
Checked bit for bit against bitnet.cpp's logits on testdata/bitnetcpp-oracle-a (48 positions) and
bitnetcpp-oracle-full (2B-4T shape, 16 positions). The other families and types are checked by
tests/py/check_reference_formats.py (hand-packed blocks, scalar kernel emulations, float64 graphs).
--kv-f32 keeps Q, K and V in float32 with the same lane orders (fmaf products in Q.K); bitnet.cpp
has no such mode. --cache-type-k/-v q8_0 (before the subcommand) stores K / V as llama.cpp's q8_0
cache does: each row of n_kv_heads * head_dim values in blocks of 32, d = fp16(amax / 127),
q = round-half-even(x * (127 / amax)) (ggml's x86 quantize_row_q8_0), read back as q * d; Q stays
float32 and Q.K takes the float32 path (fmaf products), as bitnet-c's q8_0 attention does.
Perplexity follows llama.cpp's protocol (also `bitnet perplexity`): the text is tokenized with BOS,
cut into non-overlapping windows of CTX tokens, the first token of each window is replaced by BOS,
and the loss is taken over the second half of each window (positions CTX/2 .. CTX-2 predicting the
next token).

Usage:
  /usr/bin/python3 reference/bitnet_ref.py logits -m MODEL (--tokens 1,2,3 | --prompt TEXT) [--out FILE]
      writes float32 LE logits, position-major (n_tokens x n_vocab), and prints a summary
  /usr/bin/python3 reference/bitnet_ref.py perplexity -m MODEL -f TEXT [-c CTX] [--chunks N]
  /usr/bin/python3 reference/bitnet_ref.py tokenize -m MODEL --prompt TEXT
  /usr/bin/python3 reference/bitnet_ref.py generate -m MODEL --prompt TEXT [-n N] (greedy)
Exit status: 0 on success, 1 on errors (message on stderr), 2 on usage errors.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_arith  # noqa: E402
import ggml_quants  # noqa: E402
import gguf_reader  # noqa: E402
import tokenizer as tokmod  # noqa: E402

ARCHS = ("bitnet-b1.58", "bitnet-25", "bitnet", "llama")
PROJ = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


class Matrix:
    """token_embd / output as stored: rows(ids) gives embedding rows in float32 (ggml's get_rows:
    dequantize_row_* for block types), matmul(h) gives logits (T, n_rows). F16 stays float16 (half
    the memory of float32; its values are what bitnet.cpp multiplies), F32 and BF16 become float32;
    those three run the tinyBLAS 16-lane FMA order on float activations. Q8_0 / Q6_K / Q4_K stay as
    raw blocks (ggml_quants.QuantMatrix: activations quantized to Q8_0 / Q8_K, AVX2 dot kernels)."""

    def __init__(self, g, name):
        t = g.tensors.get(name)
        if t is None:
            raise gguf_reader.GGUFError("%s: missing tensor %s" % (g.path, name))
        if len(t.ne) != 2:
            raise gguf_reader.GGUFError("%s: tensor %s is not a matrix" % (g.path, name))
        self.type = t.type
        n_cols, n_rows = t.ne
        self.shape = (n_rows, n_cols)
        if t.type == gguf_reader.T_F16:
            raw = np.frombuffer(g.raw(name), dtype="<f2").reshape(n_rows, n_cols)
            self.w = torch.from_numpy(raw.astype(np.float16))
        elif t.type in (gguf_reader.T_F32, gguf_reader.T_BF16):
            self.w = torch.from_numpy(np.ascontiguousarray(g.tensor(name)[0], dtype=np.float32))
        elif t.type in (gguf_reader.T_Q8_0, gguf_reader.T_Q6_K, gguf_reader.T_Q4_K):
            self.w = ggml_quants.QuantMatrix(g.raw(name), t.type, n_rows, n_cols)
        else:
            raise gguf_reader.GGUFError("%s: tensor %s has type %s, not an embedding/head type"
                                        % (g.path, name, ggml_quants.TYPE_NAMES.get(t.type, t.type)))

    def rows(self, ids):
        if isinstance(self.w, ggml_quants.QuantMatrix):
            return self.w.rows(ids)
        return self.w[ids].float()

    def matmul(self, h):
        if isinstance(self.w, ggml_quants.QuantMatrix):
            return self.w.matmul(h)
        return ggml_arith.lanes16_matmul(self.w, h)


def q8_0_round_trip(x):
    """x (H_kv, T, hd) float32 -> the values a q8_0 cache row (all heads of a position, blocks of 32)
    reads back: d = fp16(amax / 127), q = rint(x * (127 / amax)) clamped to int8, value q * d."""
    h, t, hd = x.shape
    rows = x.permute(1, 0, 2).reshape(t, h * hd).numpy().astype(np.float32)
    blocks = rows.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float16).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.rint(blocks * inv[:, None]), -128, 127).astype(np.float32)
    values = (q * d[:, None]).astype(np.float32).reshape(t, h, hd)
    return torch.from_numpy(values).permute(1, 0, 2).contiguous()


class RefModel:
    def __init__(self, path, kv_f16=True, k_q8_0=False, v_q8_0=False):
        self.kv_f16 = kv_f16
        self.k_q8_0, self.v_q8_0 = k_q8_0, v_q8_0
        g = gguf_reader.GGUFFile(path)
        self.gguf = g
        arch = g.kv.get("general.architecture")
        if arch not in ARCHS:
            raise gguf_reader.GGUFError("%s: general.architecture %r is not one of %s" % (path, arch, ", ".join(ARCHS)))
        self.arch = arch
        # bitnet-b1.58 (2B-4T, spec 4): NEOX, sub-norms, relu^2, head = token_embd.
        # bitnet (spec 9.2): NEOX, sub-norms, SiLU (relu^2 if hidden_activation = relu2), optional
        # per-projection scales, head = token_embd. llama (spec 9.1): NORM, no sub-norms, SiLU,
        # head = output.weight when present, else token_embd.
        self.neox = arch != "llama"
        self.sub_norms = arch != "llama"

        def key(k, default=None):
            v = g.kv.get(arch + "." + k, default)
            if v is None:
                raise gguf_reader.GGUFError("%s: missing key %s.%s" % (path, arch, k))
            return v
        self.dim = int(key("embedding_length"))
        self.n_layers = int(key("block_count"))
        self.n_heads = int(key("attention.head_count"))
        self.n_kv = int(key("attention.head_count_kv", self.n_heads))
        self.ffn = int(key("feed_forward_length"))
        self.eps = float(key("attention.layer_norm_rms_epsilon", 1e-5 if arch != "llama" else None))
        self.rope_base = float(key("rope.freq_base", 10000.0))
        self.ctx = int(key("context_length"))
        self.head_dim = int(key("attention.key_length", self.dim // self.n_heads))
        self.head_dim_v = int(key("attention.value_length", self.head_dim))
        if self.head_dim_v != self.head_dim:
            raise gguf_reader.GGUFError("%s: attention.value_length %d != key_length %d (not supported)"
                                        % (path, self.head_dim_v, self.head_dim))
        self.rope_dims = int(key("rope.dimension_count", self.head_dim))
        if self.rope_dims != self.head_dim:
            raise gguf_reader.GGUFError("%s: rope.dimension_count %d != head_dim %d (partial RoPE not supported)"
                                        % (path, self.rope_dims, self.head_dim))
        if self.n_heads % self.n_kv:
            raise gguf_reader.GGUFError("%s: head_count %d not a multiple of head_count_kv %d"
                                        % (path, self.n_heads, self.n_kv))
        act = g.kv.get(arch + ".hidden_activation")
        self.relu2 = arch in ("bitnet-b1.58", "bitnet-25") or (arch == "bitnet" and act == "relu2")
        freq_scale = 1.0
        stype = g.kv.get(arch + ".rope.scaling.type")
        factor = float(g.kv.get(arch + ".rope.scaling.factor", 0.0) or 0.0)
        if stype not in (None, "none", "linear"):
            raise gguf_reader.GGUFError("%s: rope scaling type %r not supported" % (path, stype))
        if stype == "linear" and factor not in (0.0, 1.0):
            freq_scale = np.float32(1.0) / np.float32(factor)   # llama.cpp: 1.0f/rope_scaling_factor
        freqs = None
        if arch == "llama" and "rope_freqs.weight" in g.tensors:
            freqs = g.tensor("rope_freqs.weight")[0].reshape(-1)
        self.rope = ggml_arith.RopeTable(self.rope_dims, self.rope_base, freqs, freq_scale)
        self.tok_embd = Matrix(g, "token_embd.weight")
        if self.tok_embd.shape[1] != self.dim:
            raise gguf_reader.GGUFError("%s: token_embd rows of %d, expected %d" % (path, self.tok_embd.shape[1], self.dim))
        self.vocab = self.tok_embd.shape[0]
        # bitnet-b1.58 and bitnet always take token_embd as the head (spec 9.2), llama its output
        # tensor when there is one
        self.head = Matrix(g, "output.weight") if arch == "llama" and "output.weight" in g.tensors else self.tok_embd
        if self.head.shape != (self.vocab, self.dim):
            raise gguf_reader.GGUFError("%s: output.weight shape %s, expected %s" % (path, self.head.shape, (self.vocab, self.dim)))
        self.embd = self.tok_embd.w          # kept for callers of the earlier attribute
        self.output_norm = torch.from_numpy(g.tensor("output_norm.weight")[0].copy())
        bias = [n for n in g.tensors if n.startswith("blk.") and n.endswith(".bias")]
        if bias:
            raise gguf_reader.GGUFError("%s: bias tensors (%s) are not supported" % (path, bias[0]))
        self.layers = []
        norms = ("attn_norm", "ffn_norm") + (("attn_sub_norm", "ffn_sub_norm") if self.sub_norms else ())
        hq, hkv = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        shapes = {"attn_q": (hq, self.dim), "attn_k": (hkv, self.dim), "attn_v": (hkv, self.dim),
                  "attn_output": (self.dim, hq), "ffn_gate": (self.ffn, self.dim), "ffn_up": (self.ffn, self.dim),
                  "ffn_down": (self.dim, self.ffn)}
        for i in range(self.n_layers):
            L = {}
            for n in norms:
                L[n] = torch.from_numpy(g.tensor("blk.%d.%s.weight" % (i, n))[0].copy())
            for n in PROJ:
                L[n] = self._projection(g, "blk.%d.%s.weight" % (i, n), shapes[n])
                sname = "blk.%d.%s.scale" % (i, n)
                L[n + ".scale"] = None
                if arch == "bitnet" and sname in g.tensors:
                    sv = g.tensor(sname)[0].reshape(-1)
                    if sv.size != 1:
                        raise gguf_reader.GGUFError("%s: %s has %d elements, expected 1" % (path, sname, sv.size))
                    L[n + ".scale"] = torch.tensor(sv[0], dtype=torch.float32)
            self.layers.append(L)
        self.tokenizer = self._tokenizer()

    @staticmethod
    def _projection(g, name, shape):
        """one linear weight: I2_S -> (int8 ternary (n_out, n_in), float32 scale); TQ1_0 / TQ2_0 ->
        ggml_quants.TernaryTQ (int8 weights, fp16 block scales); F32 / F16 / BF16 -> (float64, None)
        (not the official layout, used as they are)"""
        t = g.tensors.get(name)
        if t is None:
            raise gguf_reader.GGUFError("%s: missing tensor %s" % (g.path, name))
        if tuple(reversed(t.ne)) != shape:
            raise gguf_reader.GGUFError("%s: tensor %s has ne %s, expected %s" % (g.path, name, t.ne, list(reversed(shape))))
        if t.type in (gguf_reader.T_TQ1_0, gguf_reader.T_TQ2_0):
            w, d = ggml_quants.decode_ternary(g.raw(name), t.type, shape[0], shape[1])
            return ggml_quants.TernaryTQ(w, d, t.type)
        if t.type not in (gguf_reader.T_I2_S, gguf_reader.T_F32, gguf_reader.T_F16, gguf_reader.T_BF16):
            raise gguf_reader.GGUFError("%s: projection %s has type %s (supported: I2_S, TQ1_0, TQ2_0, F32, F16, BF16)"
                                        % (g.path, name, ggml_quants.TYPE_NAMES.get(t.type, t.type)))
        w, s = g.tensor(name)
        if s is None:  # float weights: use them as they are (not the official layout)
            return (torch.from_numpy(w.astype(np.float64)), None)
        # ternary: int8 keeps the 2B-4T shape at 2 GB (float64 would need 17 GB)
        return (torch.from_numpy(w.astype(np.int8)), np.float32(s))

    def _tokenizer(self):
        kv = self.gguf.kv
        if kv.get("tokenizer.ggml.model") != "gpt2" or "tokenizer.ggml.tokens" not in kv:
            return None
        return tokmod.Tokenizer(kv["tokenizer.ggml.tokens"], kv.get("tokenizer.ggml.merges", []),
                                kv.get("tokenizer.ggml.token_type"), kv.get("tokenizer.ggml.pre"),
                                kv.get("tokenizer.ggml.bos_token_id"), kv.get("tokenizer.ggml.eos_token_id"),
                                bool(kv.get("tokenizer.ggml.add_bos_token", True)))

    # --- building blocks (float32; the rounding of each step is spec 4.1's, see ggml_arith.py) ---
    def rmsnorm(self, x, g):
        return ggml_arith.rmsnorm(x, g, self.eps)

    @staticmethod
    def bitlinear(x, wq):
        """x: (T, n_in) float32; wq: (ternary int8 (n_out, n_in), scale float32), or (float64 weights, None)
        for a file that is not in the official layout."""
        w, s_w = wq
        if s_w is None:
            return (x.double() @ w.t()).float()
        amax = x.abs().amax(dim=-1, keepdim=True).double()
        s_x = (127.0 / torch.clamp(amax, min=1e-5)).float()          # division in double, stored as float
        xq = torch.clamp(torch.round(x * s_x), -128, 127)             # float product, half-to-even
        # Integer sums: every partial sum is an integer below 128 * n_in < 2^24, so float32 arithmetic
        # is exact in any summation order (float64 weights would need 17 GB at the 2B-4T shape).
        # A 1x1 convolution runs on oneDNN, about 3x faster than this torch build's generic BLAS.
        if w.shape[1] * 128 >= 1 << 24:
            acc = (xq.double() @ w.t().double()).float()
        else:
            wf = torch.from_numpy(w.numpy().astype(np.float32))    # numpy's int8 -> float is faster
            acc = torch.nn.functional.conv1d(xq.t()[None], wf[:, :, None])[0].t().contiguous()
        return acc / s_x * torch.tensor(s_w, dtype=torch.float32)    # fl(fl(acc / s_x) * s_w)

    def proj(self, x, L, name):
        """one projection of layer L: I2_S / float by bitlinear, TQ1_0 / TQ2_0 with Q8_K activations;
        then the bitnet arch's optional scale tensor as one float multiply"""
        w = L[name]
        y = w(x) if isinstance(w, ggml_quants.TernaryTQ) else self.bitlinear(x, w)
        s = L.get(name + ".scale")
        return y if s is None else y * s

    def attention(self, q, k, v):
        """q (H, T, hd), k and v (H_kv, T, hd), rotated; causal GQA (query head h uses KV head h // g).
        Returns (T, H * hd). Q.K as ggml_vec_dot_f16, softmax as soft_max_ext, P.V in tinyBLAS order."""
        T, hd, g = q.shape[1], self.head_dim, self.n_heads // self.n_kv
        if self.kv_f16:  # bitnet.cpp keeps K and V in an F16 cache and converts Q to F16 for the dot
            q, k, v = (t.half().float() for t in (q, k, v))
        if self.k_q8_0:
            k = q8_0_round_trip(k)
        if self.v_q8_0:
            v = q8_0_round_trip(v)
        q = q.reshape(self.n_kv, g, T, hd)
        scores = ggml_arith.dot_qk(q, k[:, None], exact_products=self.kv_f16)      # (H_kv, g, T, T)
        scale = np.float32(1.0) / np.sqrt(np.float32(hd))                         # 1.0f/sqrtf(hd) in float
        p = ggml_arith.softmax_causal(scores, scale)
        o = ggml_arith.lanes16_matmul(v.transpose(1, 2)[:, None], p)             # (H_kv, g, T, hd)
        return o.reshape(self.n_heads, T, hd).transpose(0, 1).reshape(T, self.n_heads * hd)

    @torch.no_grad()
    def logits(self, ids):
        ids = torch.tensor(ids, dtype=torch.long)
        if len(ids) == 0:
            raise ValueError("no tokens")
        if int(ids.min()) < 0 or int(ids.max()) >= self.vocab:
            raise ValueError("token id out of range [0, %d)" % self.vocab)
        T = len(ids)
        hd = self.head_dim
        cos, sin = self.rope.rows(T)
        rope = ggml_arith.rope_neox if self.neox else ggml_arith.rope_norm
        x = self.tok_embd.rows(ids)
        for L in self.layers:
            a = self.rmsnorm(x, L["attn_norm"])
            q = self.proj(a, L, "attn_q").view(T, self.n_heads, hd).transpose(0, 1)
            k = self.proj(a, L, "attn_k").view(T, self.n_kv, hd).transpose(0, 1)
            v = self.proj(a, L, "attn_v").view(T, self.n_kv, hd).transpose(0, 1)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            o = self.attention(q, k, v)
            if self.sub_norms:
                o = self.rmsnorm(o, L["attn_sub_norm"])
            x = x + self.proj(o, L, "attn_output")
            f = self.rmsnorm(x, L["ffn_norm"])
            gate = self.proj(f, L, "ffn_gate")
            if self.relu2:
                r = torch.relu(gate)
                h = r * r * self.proj(f, L, "ffn_up")                   # (r*r)*up, each rounded to float
            else:
                h = ggml_arith.silu(gate) * self.proj(f, L, "ffn_up")   # silu(g)*up, one float multiply
            if self.sub_norms:
                h = self.rmsnorm(h, L["ffn_sub_norm"])
            x = x + self.proj(h, L, "ffn_down")
        # head: float activations (not rounded); F16/BF16/F32 in tinyBLAS lane order, block types
        # through their quantized-activation dot kernels
        return self.head.matmul(self.rmsnorm(x, self.output_norm))

    def perplexity(self, ids, ctx, max_chunks=0, progress=None):
        """llama.cpp protocol; returns (ppl, mean nll, scored tokens, chunks)."""
        if ctx < 4:
            raise ValueError("context %d too small" % ctx)
        n_chunks = len(ids) // ctx
        if max_chunks:
            n_chunks = min(n_chunks, max_chunks)
        if n_chunks == 0:
            raise ValueError("text has %d tokens, fewer than one window of %d" % (len(ids), ctx))
        nll, count = 0.0, 0
        first = ctx // 2
        for c in range(n_chunks):
            window = list(ids[c * ctx:(c + 1) * ctx])
            if self.tokenizer is not None and self.tokenizer.bos_id is not None:
                window[0] = self.tokenizer.bos_id
            lg = self.logits(window).double()
            lp = torch.log_softmax(lg[first:ctx - 1], dim=-1)
            tgt = torch.tensor(window[first + 1:ctx])
            nll -= lp[torch.arange(len(tgt)), tgt].sum().item()
            count += len(tgt)
            if progress:
                progress(c + 1, n_chunks, math.exp(nll / count))
        return math.exp(nll / count), nll / count, count, n_chunks


def parse_tokens(s):
    try:
        return [int(t) for t in s.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise SystemExit("bitnet_ref: --tokens must be comma-separated integers")


def get_ids(model, args):
    if args.tokens is not None:
        return parse_tokens(args.tokens)
    if model.tokenizer is None:
        raise SystemExit("bitnet_ref: the model has no gpt2 tokenizer; use --tokens")
    return model.tokenizer.encode(args.prompt, parse_special=args.parse_special)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bitnet_ref.py", description="BitNet b1.58 / bitnet / llama reference implementation")
    for flag in ("--cache-type-k", "--cache-type-v"):
        ap.add_argument(flag, choices=("f16", "f32", "q8_0"), default="f16",
                        help="K / V cache type (q8_0 needs n_kv_heads * head_dim %% 32 == 0)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("logits", "tokenize", "generate"):
        p = sub.add_parser(name)
        p.add_argument("-m", "--model", required=True)
        grp = p.add_mutually_exclusive_group(required=True)
        grp.add_argument("--tokens")
        grp.add_argument("-p", "--prompt")
        p.add_argument("--parse-special", action="store_true", help="control tokens in the prompt text become ids")
        if name == "logits":
            p.add_argument("--out", help="write float32 LE logits, n_tokens x n_vocab")
            p.add_argument("--json", help="write ids and per-position top-5 as JSON")
        if name == "generate":
            p.add_argument("-n", type=int, default=32)
        p.add_argument("--kv-f32", action="store_true", help="keep Q, K, V in float32 (default: F16 like bitnet.cpp)")
    p = sub.add_parser("perplexity")
    p.add_argument("--kv-f32", action="store_true", help="keep Q, K, V in float32 (default: F16 like bitnet.cpp)")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-c", "--ctx", type=int, default=0, help="window size (default: the model's context_length)")
    p.add_argument("--chunks", type=int, default=0, help="at most this many windows (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(getattr(args, "threads", 2))
    try:
        kv_f32 = args.kv_f32 or (args.cache_type_k == "f32" and args.cache_type_v == "f32")
        model = RefModel(args.model, kv_f16=not kv_f32 and args.cache_type_k == args.cache_type_v == "f16",
                         k_q8_0=args.cache_type_k == "q8_0", v_q8_0=args.cache_type_v == "q8_0")
        if args.cmd == "perplexity":
            if model.tokenizer is None:
                raise SystemExit("bitnet_ref: the model has no gpt2 tokenizer")
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
            ids = model.tokenizer.encode(text, add_bos=True)
            ctx = args.ctx or model.ctx

            def prog(i, n, ppl):
                if not args.quiet:
                    print("[%d/%d] %.4f" % (i, n, ppl), file=sys.stderr, flush=True)
            ppl, mnll, cnt, nch = model.perplexity(ids, ctx, args.chunks, prog)
            print("tokens %d ctx %d chunks %d scored %d mean_nll %.6f perplexity %.4f"
                  % (len(ids), ctx, nch, cnt, mnll, ppl))
            return 0
        ids = get_ids(model, args)
        if args.cmd == "tokenize":
            print(",".join(str(i) for i in ids))
            return 0
        if args.cmd == "generate":
            out = list(ids)
            for _ in range(args.n):
                out.append(int(model.logits(out)[-1].argmax()))
            print(",".join(str(i) for i in out[len(ids):]))
            if model.tokenizer is not None:
                print(model.tokenizer.decode(out[len(ids):]))
            return 0
        lg = model.logits(ids)
        if args.out:
            lg.numpy().astype("<f4").tofile(args.out)
        if args.json:
            top = torch.topk(lg, min(5, lg.shape[1]), dim=-1)
            with open(args.json, "w") as f:
                json.dump({"tokens": ids, "n_vocab": lg.shape[1], "top5_ids": top.indices.tolist(),
                           "top5_logits": top.values.tolist()}, f)
        print("tokens %d vocab %d argmax_last %d" % (len(ids), lg.shape[1], int(lg[-1].argmax())))
        return 0
    except (gguf_reader.GGUFError, ValueError, OSError) as e:
        print("bitnet_ref: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
