#!/usr/bin/python3
"""bpe_train.py - trains the byte-level BPE vocabulary of the shipped model.

Design: the training text is split with the LLaMA-3 pre-tokenizer pattern (the model's
`tokenizer.ggml.pre` = llama3), pre-tokens are counted, and merges are learned greedily on the
counted pre-tokens: the most frequent adjacent symbol pair is merged (ties: the pair whose merged
token text is lexicographically smallest, for determinism), with pair counts updated incrementally
for only the words that contain the merged pair. Vocabulary: 256 byte tokens (id = byte value,
in GPT-2 byte-to-unicode form), then one token per merge, then the control tokens
<|begin_of_text|>, <|end_of_text|>, <|eot_id|>.

Usage: /usr/bin/python3 training/bpe_train.py --text training/data/kjv-train.txt
         --vocab-size 4096 --out training/data/tokenizer.json
"""
import argparse
import collections
import heapq
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import tokenizer as reftok  # noqa: E402

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]


def train_bpe(text, vocab_size):
    n_merges = vocab_size - 256 - len(SPECIALS)
    pat = reftok.regex.compile(reftok.LLAMA3_PATTERN)
    counts = collections.Counter(m.group(0) for m in pat.finditer(text))
    words = []  # list of [symbols list, count]
    for w, c in counts.items():
        words.append([[reftok.BYTE_TO_UNI[b] for b in w.encode("utf-8")], c])
    pair_count = collections.defaultdict(int)
    pair_words = collections.defaultdict(set)
    for wi, (syms, c) in enumerate(words):
        for a, b in zip(syms, syms[1:]):
            pair_count[(a, b)] += c
            pair_words[(a, b)].add(wi)
    heap = [(-c, p[0] + p[1], p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        negc, _, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        a, b = pair
        merged = a + b
        merges.append(pair)
        changed = collections.defaultdict(int)
        for wi in list(pair_words[pair]):
            syms, c = words[wi]
            for x, y in zip(syms, syms[1:]):
                changed[(x, y)] -= c
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[wi][0] = out
            for x, y in zip(out, out[1:]):
                changed[(x, y)] += c
                pair_words[(x, y)].add(wi)
        for p, d in changed.items():
            if d == 0:
                continue
            pair_count[p] += d
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p[0] + p[1], p))
            else:
                pair_count.pop(p, None)
        pair_count.pop(pair, None)
        pair_words.pop(pair, None)
    tokens = [reftok.BYTE_TO_UNI[b] for b in range(256)]
    seen = set(tokens)
    for a, b in merges:
        if a + b in seen:
            raise SystemExit("bpe_train: duplicate token %r" % (a + b))
        seen.add(a + b)
        tokens.append(a + b)
    types = [reftok.TOKEN_TYPE_NORMAL] * len(tokens) + [reftok.TOKEN_TYPE_CONTROL] * len(SPECIALS)
    tokens += SPECIALS
    return {"tokens": tokens, "merges": ["%s %s" % m for m in merges], "token_types": types,
            "pre": "llama3", "bos": tokens.index("<|begin_of_text|>"),
            "eos": tokens.index("<|end_of_text|>"), "eot": tokens.index("<|eot_id|>")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    tok = train_bpe(text, args.vocab_size)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    print("bpe_train: %d tokens, %d merges -> %s" % (len(tok["tokens"]), len(tok["merges"]), args.out))


if __name__ == "__main__":
    main()
