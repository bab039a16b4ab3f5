#!/usr/bin/python3
"""bitnet_ref.py - PyTorch reference implementation of the BitNet b1.58 forward pass (spec section 4).

Design: an independent oracle for the C engine's backends. It reads GGUF files with its own reader
(gguf_reader.py), builds the tokenizer from the file's metadata (tokenizer.py) and computes
full-sequence logits in float32 following spec section 4 literally:
  RMSNorm -> Q/K/V (W1.58 A8 linear) -> NEOX RoPE -> causal GQA attention -> attn_sub_norm -> Wo,
  RMSNorm -> relu(Wgate f)^2 * (Wup f) -> ffn_sub_norm -> Wdown; logits = token_embd . RMSNorm(x).
K and V are rounded to float16 after RoPE, as bitnet.cpp's default F16 KV cache does (measured on
tests/data/oracle-a: with F16 K/V position 0 matches bitnet.cpp within 6e-7, with float32 K/V a
near-tie int8 rounding moves it by 0.025); --kv-f32 turns this off.
W1.58 A8 linear: s_x = 127 / max(max|x|, 1e-5) (division in double, stored as float32),
x_q = clamp(round_half_even(x * s_x), -128, 127), acc = integer sum of w * x_q (exact in float32
and float64 for these sizes: we use float64), y = acc / s_x * s_w.
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
        self.embd = torch.from_numpy(g.tensor("token_embd.weight")[0].copy())
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
                else:
                    L[n] = (torch.from_numpy(w.astype(np.float64)), np.float32(s))
            self.layers.append(L)
        self.tokenizer = self._tokenizer()

    def _tokenizer(self):
        kv = self.gguf.kv
        if kv.get("tokenizer.ggml.model") != "gpt2" or "tokenizer.ggml.tokens" not in kv:
            return None
        return tokmod.Tokenizer(kv["tokenizer.ggml.tokens"], kv.get("tokenizer.ggml.merges", []),
                                kv.get("tokenizer.ggml.token_type"), kv.get("tokenizer.ggml.pre"),
                                kv.get("tokenizer.ggml.bos_token_id"), kv.get("tokenizer.ggml.eos_token_id"),
                                bool(kv.get("tokenizer.ggml.add_bos_token", True)))

    # --- building blocks (float32 unless said otherwise) ---
    def rmsnorm(self, x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + np.float32(self.eps)) * g

    @staticmethod
    def bitlinear(x, wq):
        """x: (T, n_in) float32; wq: (ternary float64 (n_out, n_in), scale float32 or None)."""
        w, s_w = wq
        if s_w is None:
            return (x.double() @ w.t()).float()
        amax = x.abs().amax(dim=-1, keepdim=True).double()
        s_x = (127.0 / torch.clamp(amax, min=1e-5)).float()          # division in double, stored as float
        xq = torch.clamp(torch.round(x * s_x), -128, 127)             # float product, half-to-even
        acc = (xq.double() @ w.t()).float()                            # exact integer sums
        return acc / s_x * torch.tensor(s_w, dtype=torch.float32)

    def rope(self, x, pos):
        # x: (H, T, hd) ; NEOX: pair (i, i + hd/2), theta_i = pos * base^(-2i/hd)
        hd = self.head_dim
        inv = self.rope_base ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        ang = pos[:, None].double() * inv[None, :]
        cos, sin = ang.cos().float(), ang.sin().float()
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    @torch.no_grad()
    def logits(self, ids):
        ids = torch.tensor(ids, dtype=torch.long)
        if len(ids) == 0:
            raise ValueError("no tokens")
        if int(ids.min()) < 0 or int(ids.max()) >= self.vocab:
            raise ValueError("token id out of range [0, %d)" % self.vocab)
        T = len(ids)
        pos = torch.arange(T)
        x = self.embd[ids].clone()
        hd, g = self.head_dim, self.n_heads // self.n_kv
        mask = torch.full((T, T), float("-inf")).triu(1)
        for L in self.layers:
            a = self.rmsnorm(x, L["attn_norm"])
            q = self.bitlinear(a, L["attn_q"]).view(T, self.n_heads, hd).transpose(0, 1)
            k = self.bitlinear(a, L["attn_k"]).view(T, self.n_kv, hd).transpose(0, 1)
            v = self.bitlinear(a, L["attn_v"]).view(T, self.n_kv, hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if self.kv_f16:  # bitnet.cpp / llama.cpp keep K and V in an F16 cache
                k, v = k.half().float(), v.half().float()
            k = k.repeat_interleave(g, dim=0)  # query head h uses KV head h // g
            v = v.repeat_interleave(g, dim=0)
            att = (q @ k.transpose(1, 2)) * np.float32(1.0 / math.sqrt(hd)) + mask
            o = (torch.softmax(att, dim=-1) @ v).transpose(0, 1).reshape(T, self.dim)
            x = x + self.bitlinear(self.rmsnorm(o, L["attn_sub_norm"]), L["attn_output"])
            f = self.rmsnorm(x, L["ffn_norm"])
            h = torch.relu(self.bitlinear(f, L["ffn_gate"])) ** 2 * self.bitlinear(f, L["ffn_up"])
            x = x + self.bitlinear(self.rmsnorm(h, L["ffn_sub_norm"]), L["ffn_down"])
        return self.rmsnorm(x, self.output_norm) @ self.embd.t()

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
        p.add_argument("--kv-f32", action="store_true", help="keep K/V in float32 (default: F16 like bitnet.cpp)")
    p = sub.add_parser("perplexity")
    p.add_argument("--kv-f32", action="store_true", help="keep K/V in float32 (default: F16 like bitnet.cpp)")
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
