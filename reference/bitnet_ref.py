#!/usr/bin/python3
"""bitnet_ref.py - PyTorch reference implementation of the BitNet b1.58 forward pass (spec section 4),
with the exact arithmetic of spec section 4.1 (bit-identical to bitnet.cpp's batch path).

Design: an independent oracle for the C engine's backends. It reads GGUF files with its own reader
(gguf_reader.py), builds the tokenizer from the file's metadata (tokenizer.py) and computes
full-sequence logits in float32:
  RMSNorm -> Q/K/V (W1.58 A8 linear) -> NEOX RoPE -> causal GQA attention -> attn_sub_norm -> Wo,
  RMSNorm -> relu(Wgate f)^2 * (Wup f) -> ffn_sub_norm -> Wdown; logits = token_embd . RMSNorm(x).
Random-weight models turn a 1-ulp difference into an int8 rounding flip, so every operation rounds
where bitnet.cpp's ggml rounds (spec 4.1; the float32 primitives are in ggml_arith.py):
- RMSNorm: float squares summed in order in double; mean = (float)(sum/n); scale = 1.0f/sqrtf(mean+eps);
  y = x*scale, then y*g, in float.
- W1.58 A8 linear: s_x = 127 / max(max|x|, 1e-5) (division in double, stored as float32),
  x_q = clamp(round_half_even(x * s_x), -128, 127), acc = exact integer sum of w * x_q,
  y = fl(fl(acc / s_x) * s_w).
- RoPE (NEOX pairs i, i + n_rot/2): theta_scale = powf(base, -2.0f/n_rot); theta = (float)pos,
  theta *= theta_scale per pair in float; glibc cosf/sinf; d0 = fmaf(x0, c, -(x1*s)),
  d1 = fmaf(x0, s, x1*c).
- Q, K and V rounded to F16 (bitnet.cpp's F16 KV cache; Q is converted for the F16 dot).
  Q.K = ggml_vec_dot_f16 (4 x 16 float lanes in steps of 64, reduced acc0+acc2, acc1+acc3, then
  the 16-lane halving tree; dims past a multiple of 64 added in double).
- softmax: w = (float)(score * (1.0f/sqrtf(head_dim))); e = ggml_v_expf(w - max) (polynomial exp);
  16-element chunk sums by the halving tree in float, added in double; p = e * (float)(1.0/sum).
- P.V and the tied F16 head (float activations): tinyBLAS order, 16 float lanes of fmaf over
  k = j, j+16, ..., then the halving tree.
- squared ReLU r*r, the elementwise product and the residual adds: single float operations.
Checked bit for bit against bitnet.cpp's logits on testdata/bitnetcpp-oracle-a (48 positions) and
bitnetcpp-oracle-full (2B-4T shape, 16 positions). --kv-f32 keeps Q, K and V in float32 with the
same lane orders (fmaf products in Q.K); bitnet.cpp has no such mode.
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
import gguf_reader  # noqa: E402
import tokenizer as tokmod  # noqa: E402

ARCHS = ("bitnet-b1.58", "bitnet-25")


class RefModel:
    def __init__(self, path, kv_f16=True):
        self.kv_f16 = kv_f16
        g = gguf_reader.GGUFFile(path)
        self.gguf = g
        arch = g.kv.get("general.architecture")
        if arch not in ARCHS:
            raise gguf_reader.GGUFError("%s: general.architecture %r is not bitnet-b1.58" % (path, arch))

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
        self.eps = float(key("attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(key("rope.freq_base", 10000.0))
        self.ctx = int(key("context_length"))
        self.head_dim = self.dim // self.n_heads
        self.rope_dims = int(key("rope.dimension_count", self.head_dim))
        if self.rope_dims != self.head_dim:
            raise gguf_reader.GGUFError("%s: rope.dimension_count %d != head_dim %d (partial RoPE not supported)"
                                        % (path, self.rope_dims, self.head_dim))
        if self.n_heads % self.n_kv:
            raise gguf_reader.GGUFError("%s: head_count %d not a multiple of head_count_kv %d"
                                        % (path, self.n_heads, self.n_kv))
        self.rope = ggml_arith.RopeTable(self.rope_dims, self.rope_base)
        self.embd = self._embedding(g)
        self.vocab = self.embd.shape[0]
        self.output_norm = torch.from_numpy(g.tensor("output_norm.weight")[0].copy())
        self.layers = []
        for i in range(self.n_layers):
            L = {}
            for n in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
                L[n] = torch.from_numpy(g.tensor("blk.%d.%s.weight" % (i, n))[0].copy())
            for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
                w, s = g.tensor("blk.%d.%s.weight" % (i, n))
                if s is None:  # float weights: use them as they are (not the official layout)
                    L[n] = (torch.from_numpy(w.astype(np.float64)), None)
                else:  # ternary: int8 keeps the 2B-4T shape at 2 GB (float64 would need 17 GB)
                    L[n] = (torch.from_numpy(w.astype(np.int8)), np.float32(s))
            self.layers.append(L)
        self.tokenizer = self._tokenizer()

    @staticmethod
    def _embedding(g):
        """token_embd as stored: an F16 table stays float16 (half the memory of float32; its values
        are what bitnet.cpp multiplies), any other type float32."""
        t = g.tensors.get("token_embd.weight")
        if t is not None and t.type == gguf_reader.T_F16:
            raw = np.frombuffer(g.raw(t.name), dtype="<f2").reshape(tuple(reversed(t.ne)))
            return torch.from_numpy(raw.astype(np.float16))
        return torch.from_numpy(g.tensor("token_embd.weight")[0].copy())

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

    def attention(self, q, k, v):
        """q (H, T, hd), k and v (H_kv, T, hd), rotated; causal GQA (query head h uses KV head h // g).
        Returns (T, dim). Q.K as ggml_vec_dot_f16, softmax as soft_max_ext, P.V in tinyBLAS order."""
        T, hd, g = q.shape[1], self.head_dim, self.n_heads // self.n_kv
        if self.kv_f16:  # bitnet.cpp keeps K and V in an F16 cache and converts Q to F16 for the dot
            q, k, v = (t.half().float() for t in (q, k, v))
        q = q.reshape(self.n_kv, g, T, hd)
        scores = ggml_arith.dot_qk(q, k[:, None], exact_products=self.kv_f16)      # (H_kv, g, T, T)
        scale = np.float32(1.0) / np.sqrt(np.float32(hd))                         # 1.0f/sqrtf(hd) in float
        p = ggml_arith.softmax_causal(scores, scale)
        o = ggml_arith.lanes16_matmul(v.transpose(1, 2)[:, None], p)             # (H_kv, g, T, hd)
        return o.reshape(self.n_heads, T, hd).transpose(0, 1).reshape(T, self.dim)

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
        x = self.embd[ids].float()
        for L in self.layers:
            a = self.rmsnorm(x, L["attn_norm"])
            q = self.bitlinear(a, L["attn_q"]).view(T, self.n_heads, hd).transpose(0, 1)
            k = self.bitlinear(a, L["attn_k"]).view(T, self.n_kv, hd).transpose(0, 1)
            v = self.bitlinear(a, L["attn_v"]).view(T, self.n_kv, hd).transpose(0, 1)
            q, k = ggml_arith.rope_neox(q, cos, sin), ggml_arith.rope_neox(k, cos, sin)
            o = self.attention(q, k, v)
            x = x + self.bitlinear(self.rmsnorm(o, L["attn_sub_norm"]), L["attn_output"])
            f = self.rmsnorm(x, L["ffn_norm"])
            r = torch.relu(self.bitlinear(f, L["ffn_gate"]))
            h = r * r * self.bitlinear(f, L["ffn_up"])                   # (r*r)*up, each rounded to float
            x = x + self.bitlinear(self.rmsnorm(h, L["ffn_sub_norm"]), L["ffn_down"])
        # tied F16 head: float activations (not rounded to F16), tinyBLAS lane order
        return ggml_arith.lanes16_matmul(self.embd, self.rmsnorm(x, self.output_norm))

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
    ap = argparse.ArgumentParser(prog="bitnet_ref.py", description="BitNet b1.58 reference implementation")
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
        model = RefModel(args.model, kv_f16=not args.kv_f32)
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
