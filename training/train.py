#!/usr/bin/python3
"""train.py - trains the shipped BitNet b1.58 model on the KJV text, with checkpoint and resume.

Design: batches of random windows from the tokenised training text, each window laid out as the
perplexity protocol sees text: BOS, then ctx-1 text tokens (the model is trained on every
position). AdamW, linear warmup then cosine decay to 10% over --steps (the schedule is stored in
the checkpoint, so a resumed run continues the same schedule). The checkpoint
(training/checkpoints/ckpt.pt: weights, optimizer, step, RNG states, config, tokenizer path) is
written atomically every --ckpt-every steps and on SIGTERM/SIGINT; starting the script again with
the same --out-dir resumes from it. Threads default to 2 (the machine is shared).

Usage (the shipped model):
  nice -n 10 /usr/bin/python3 training/train.py --minutes 85 --steps 100000
then: /usr/bin/python3 training/export_gguf.py --ckpt training/checkpoints/ckpt.pt --out models/kjv-bitnet.gguf
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import model as M  # noqa: E402
import tokenizer as reftok  # noqa: E402


def load_tokenizer(path):
    with open(path, encoding="utf-8") as f:
        t = json.load(f)
    return t, reftok.Tokenizer(t["tokens"], t["merges"], t["token_types"], t["pre"], t["bos"], t["eos"])


def tokenize_file(tok, text_path, cache_path):
    if os.path.exists(cache_path) and os.path.getmtime(cache_path) >= os.path.getmtime(text_path):
        return np.load(cache_path)
    with open(text_path, encoding="utf-8") as f:
        ids = np.array(tok.encode(f.read(), add_bos=False), dtype=np.int32)
    np.save(cache_path, ids)
    return ids


def lr_at(step, peak, warmup, progress):
    """Linear warmup over `warmup` steps, then cosine decay to 10% of peak as progress goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, max(0.0, progress))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def batch(data, bos, B, T, gen):
    starts = torch.randint(0, len(data) - T, (B,), generator=gen).numpy()
    x = np.stack([data[s:s + T] for s in starts]).astype(np.int64)
    x[:, 0] = bos
    return torch.from_numpy(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(HERE, "data"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, "checkpoints"))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=640)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--ckpt-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--minutes", type=float, default=0,
                    help="training time budget: when > 0 the schedule runs on time (progress = training "
                         "seconds so far / budget, summed over resumed runs) and training stops when it is "
                         "spent or --steps is reached; when 0 the schedule runs on steps / --steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    tok_path = os.path.join(args.data_dir, "tokenizer.json")
    tjson, tok = load_tokenizer(tok_path)
    train = tokenize_file(tok, os.path.join(args.data_dir, "kjv-train.txt"), os.path.join(args.data_dir, "train-ids.npy"))
    held = tokenize_file(tok, os.path.join(args.data_dir, "kjv-heldout.txt"), os.path.join(args.data_dir, "heldout-ids.npy"))
    print("tokens: train %d, held-out %d" % (len(train), len(held)), flush=True)
    ckpt_path = os.path.join(args.out_dir, "ckpt.pt")
    gen = torch.Generator()
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        cfg = M.Config.from_dict(ck["config"])
        hp = ck["hparams"]
        torch.manual_seed(args.seed)
        model = M.BitNet(cfg)
        model.load_state_dict(ck["model"])
        step = ck["step"]
        gen.set_state(ck["gen_state"])
        print("resumed from %s at step %d" % (ckpt_path, step), flush=True)
    else:
        cfg = M.Config(vocab=len(tjson["tokens"]), dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                       n_kv_heads=args.kv_heads, ffn=args.ffn, ctx=args.ctx, rope_base=args.rope_base)
        hp = dict(steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup, wd=args.wd, seed=args.seed,
                  minutes=args.minutes)
        torch.manual_seed(args.seed)
        gen.manual_seed(args.seed)
        model = M.BitNet(cfg)
        step = 0
        ck = None
    trained_s = ck.get("trained_s", 0.0) if ck is not None else 0.0
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "token_embd" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "token_embd" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["wd"]}, {"params": other, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=(0.9, 0.95))
    if ck is not None:
        opt.load_state_dict(ck["opt"])
        if "torch_rng" in ck:
            torch.set_rng_state(ck["torch_rng"])
    print("config %s hparams %s params %d" % (cfg.to_dict(), hp, sum(p.numel() for p in model.parameters())), flush=True)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "config": cfg.to_dict(), "hparams": hp, "gen_state": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "tokenizer": tjson,
                    "trained_s": trained_s + (time.time() - t0)}, tmp)
        os.replace(tmp, ckpt_path)

    def evaluate(n=4):
        model.eval()
        eg = torch.Generator()
        eg.manual_seed(0)
        with torch.no_grad():
            x = batch(held, tjson["bos"], n, cfg.ctx + 1, eg)
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), x[:, 1:].reshape(-1))
        model.train()
        return loss.item()

    t0 = time.time()
    ema = None
    def progress():
        if hp["minutes"] > 0:
            return (trained_s + time.time() - t0) / (hp["minutes"] * 60)
        return step / hp["steps"]

    while step < hp["steps"] and progress() < 1.0 and not stop["flag"]:
        lr = lr_at(step, hp["lr"], hp["warmup"], progress())
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch(train, tjson["bos"], hp["batch"], cfg.ctx + 1, gen)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        el = trained_s + time.time() - t0
        if step % 5 == 0 or step == 1:
            print("step %d loss %.4f ema %.4f lr %.2e trained %.0fs" % (step, loss.item(), ema, lr, el), flush=True)
        if step % args.eval_every == 0:
            hl = evaluate()
            print("step %d held-out loss %.4f ppl %.1f" % (step, hl, math.exp(hl)), flush=True)
        if step % args.ckpt_every == 0:
            save()
    save()
    print("saved %s at step %d (trained %.0fs)%s" % (ckpt_path, step, trained_s + time.time() - t0,
          ", done" if step >= hp["steps"] or progress() >= 1.0 else ""), flush=True)


if __name__ == "__main__":
    main()
