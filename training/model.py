"""model.py - the BitNet b1.58 model used for training (PyTorch, fake-quantized with STE).

Design: exactly the architecture of spec section 4 (docs: /work/shared/spec/MODEL_FORMAT.md), so
that the exported GGUF computes the same function in any engine:
  - every projection is a BitLinear: weights are ternarised with the absmean scale
    (s = mean|W|, w = clamp(round(W/s), -1, 1) * s) and activations are quantised per token to
    int8 with the absmax scale (127 / max|x|, round half to even, clamp to [-128, 127]); both use the
    straight-through estimator (forward quantised, gradient of the identity);
  - pre-norms attn_norm / ffn_norm, sub-norms attn_sub_norm (before Wo) and ffn_sub_norm (before
    Wdown), RMSNorm with eps 1e-5;
  - NEOX RoPE (dimension i paired with i + head_dim/2), GQA, causal softmax attention;
  - FFN relu(Wgate f)^2 * (Wup f); tied embeddings (logits = token_embd . RMSNorm(x)).
Master weights stay float32; the exporter writes the quantised values (export_gguf.py).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, vocab=4096, dim=256, n_layers=6, n_heads=4, n_kv_heads=2, ffn=768, ctx=256,
                 rope_base=10000.0, eps=1e-5):
        self.vocab, self.dim, self.n_layers = vocab, dim, n_layers
        self.n_heads, self.n_kv_heads, self.ffn, self.ctx = n_heads, n_kv_heads, ffn, ctx
        self.rope_base, self.eps = rope_base, eps

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return dict(self.__dict__)

    @staticmethod
    def from_dict(d):
        return Config(**d)


class _ActQuant(torch.autograd.Function):
    """Per-token int8 absmax fake quantisation; backward is the identity (straight-through)."""

    @staticmethod
    def forward(ctx, x):
        s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
        return (x * s).round_().clamp_(-128, 127).div_(s)

    @staticmethod
    def backward(ctx, g):
        return g


class _WeightQuant(torch.autograd.Function):
    """Ternary absmean fake quantisation of a whole matrix; straight-through backward."""

    @staticmethod
    def forward(ctx, w):
        s = w.abs().mean().clamp(min=1e-5)
        return (w / s).round_().clamp_(-1, 1).mul_(s)

    @staticmethod
    def backward(ctx, g):
        return g


def act_quant(x):
    return _ActQuant.apply(x)


def weight_quant(w):
    return _WeightQuant.apply(w)


class BitLinear(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, bias=False)
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return F.linear(act_quant(x), weight_quant(self.weight))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n, device=None):
    hd = cfg.head_dim
    inv = cfg.rope_base ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x, cos, sin):
    # x: (B, H, T, hd); NEOX: pairs (i, i + hd/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg
        self.cfg = c
        kv = c.n_kv_heads * c.head_dim
        self.attn_norm = RMSNorm(c.dim, c.eps)
        self.attn_q = BitLinear(c.dim, c.dim)
        self.attn_k = BitLinear(c.dim, kv)
        self.attn_v = BitLinear(c.dim, kv)
        self.attn_sub_norm = RMSNorm(c.dim, c.eps)
        self.attn_output = BitLinear(c.dim, c.dim)
        self.ffn_norm = RMSNorm(c.dim, c.eps)
        self.ffn_gate = BitLinear(c.dim, c.ffn)
        self.ffn_up = BitLinear(c.dim, c.ffn)
        self.ffn_sub_norm = RMSNorm(c.ffn, c.eps)
        self.ffn_down = BitLinear(c.ffn, c.dim)

    def forward(self, x, cos, sin, mask):
        c = self.cfg
        B, T, _ = x.shape
        a = self.attn_norm(x)
        q = self.attn_q(a).view(B, T, c.n_heads, c.head_dim).transpose(1, 2)
        k = self.attn_k(a).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.attn_v(a).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        g = c.n_heads // c.n_kv_heads
        k = k.repeat_interleave(g, dim=1).contiguous()
        v = v.repeat_interleave(g, dim=1).contiguous()
        att = (q @ k.transpose(-1, -2)) / math.sqrt(c.head_dim) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, c.dim)
        x = x + self.attn_output(self.attn_sub_norm(o))
        f = self.ffn_norm(x)
        h = F.relu(self.ffn_gate(f)).pow(2) * self.ffn_up(f)
        return x + self.ffn_down(self.ffn_sub_norm(h))


class BitNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.token_embd = nn.Embedding(cfg.vocab, cfg.dim)
        nn.init.normal_(self.token_embd.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.output_norm = RMSNorm(cfg.dim, cfg.eps)

    def forward(self, idx):
        T = idx.shape[1]
        cos, sin = rope_tables(self.cfg, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.token_embd(idx)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.output_norm(x) @ self.token_embd.weight.t()
