#!/usr/bin/python3
"""oracle_full.py: bitnet.cpp's reference data at the full 2B-4T shape (spec section 8), kept as
compact digests in the repository and compared with what `bitnet eval` writes.

The full data (../shared/testdata/bitnetcpp-oracle-full: 16 x 128256 logits and every position-0
intermediate tensor of bitnet.cpp's graph) is 28 MB and may be absent from a clone; its digests
are not: tests/data/oracle-full/ holds the 16 token ids, the model's and tokenizer's sha256, a
sha256 and max |value| per logits row, and a sha256 and max |value| per position-0 intermediate
that the engine also produces (dumps.tsv, in the engine's evaluation order).

  oracle_full.py digest ORACLE_DIR OUT_DIR
      regenerates the digests from the full data (the engine's dump order comes from DUMP_ORDER
      below, the files from ORACLE_DIR/index.tsv)
  oracle_full.py check EXPECT_DIR --logits FILE [--dump-dir DIR] [--oracle ORACLE_DIR]
      compares: every logits row bit for bit, then every dumped intermediate in evaluation
      order; names the first op that differs (with the max |diff| when ORACLE_DIR is there).
      Exit 0 when all match, 1 otherwise, 2 on usage or missing files.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

N_LAYERS = 30
N_VOCAB = 128256


def dump_order():
    """(name, op) of every result the engine's observer reports, in its evaluation order."""
    order = [("inp_embd", "GET_ROWS")]
    for layer in range(N_LAYERS):
        for name, op in (("attn_norm", "MUL"), ("Qcur", "MUL_MAT"), ("Kcur", "MUL_MAT"), ("Vcur", "MUL_MAT"),
                         ("Qcur", "ROPE"), ("Kcur", "ROPE"), ("kqv_out", "CONT"), ("attn_sub_norm", "MUL"),
                         ("attn_o_out", "MUL_MAT"), ("ffn_inp", "ADD"), ("ffn_norm", "MUL"),
                         ("ffn_gate", "MUL_MAT"), ("ffn_up", "MUL_MAT"), ("ffn_out", "MUL"),
                         ("ffn_sub_norm", "MUL"), ("ffn_down", "MUL_MAT"), ("l_out", "ADD")):
            order.append(("%s-%d" % (name, layer), op))
    order += [("result_norm", "MUL"), ("result_output", "MUL_MAT")]
    return order


def digest(values):
    values = np.ascontiguousarray(values, dtype="<f4")
    return hashlib.sha256(values.tobytes()).hexdigest(), float(np.abs(values.astype(np.float64)).max())


def read_tsv(path):
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:]]


def oracle_files(oracle_dir):
    """(name, op) -> file of the oracle's position-0 dumps"""
    files = {}
    for row in read_tsv(os.path.join(oracle_dir, "index.tsv")):
        files[(row["name"], row["op"])] = os.path.join(oracle_dir, "t", row["file"])
    return files


def cmd_digest(args):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.oracle, "tokens.json")) as f:
        tokens = json.load(f)
    logits = np.fromfile(os.path.join(args.oracle, "logits.f32"), "<f4").reshape(len(tokens), N_VOCAB)
    with open(os.path.join(args.out, "logits.tsv"), "w") as f:
        f.write("position\tsha256\tmax_abs\n")
        for p in range(len(tokens)):
            sha, mx = digest(logits[p])
            f.write("%d\t%s\t%.9g\n" % (p, sha, mx))
    files = oracle_files(args.oracle)
    with open(os.path.join(args.out, "dumps.tsv"), "w") as f:
        f.write("seq\tname\top\twidth\tsha256\tmax_abs\n")
        for seq, key in enumerate(dump_order()):
            values = np.fromfile(files[key], "<f4")
            sha, mx = digest(values)
            f.write("%d\t%s\t%s\t%d\t%s\t%.9g\n" % (seq, key[0], key[1], values.size, sha, mx))
    print("wrote %s/logits.tsv (%d rows) and dumps.tsv (%d tensors)" % (args.out, len(tokens), len(dump_order())))
    return 0


def cmd_check(args):
    expect_logits = read_tsv(os.path.join(args.expect, "logits.tsv"))
    n = len(expect_logits)
    got = np.fromfile(args.logits, "<f4")
    if got.size != n * N_VOCAB:
        print("FAIL: %s holds %d floats, expected %d x %d" % (args.logits, got.size, n, N_VOCAB))
        return 1
    got = got.reshape(n, N_VOCAB)
    full = None
    if args.oracle and os.path.exists(os.path.join(args.oracle, "logits.f32")):
        full = np.fromfile(os.path.join(args.oracle, "logits.f32"), "<f4").reshape(n, N_VOCAB)
    bad = 0
    for p, row in enumerate(expect_logits):
        sha, mx = digest(got[p])
        if sha == row["sha256"]:
            continue
        bad += 1
        detail = ""
        if full is not None:
            detail = ", max |diff| %.3g" % np.abs(got[p].astype(np.float64) - full[p]).max()
        print("FAIL: logits position %d differ from bitnet.cpp's (max |value| %.6g, expected %s%s)"
              % (p, mx, row["max_abs"], detail))
    print("logits: %d of %d positions bit-identical to bitnet.cpp" % (n - bad, n))
    if not args.dump_dir:
        return 1 if bad else 0
    expect_dumps = read_tsv(os.path.join(args.expect, "dumps.tsv"))
    got_index = read_tsv(os.path.join(args.dump_dir, "index.tsv"))
    got_files = {(r["name"], r["op"]): os.path.join(args.dump_dir, r["file"]) for r in got_index}
    files = oracle_files(args.oracle) if args.oracle and os.path.exists(os.path.join(args.oracle, "index.tsv")) else {}
    first_bad = None
    dump_bad = 0
    for row in expect_dumps:
        key = (row["name"], row["op"])
        if key not in got_files:
            print("FAIL: the engine wrote no %s (%s)" % key)
            dump_bad += 1
            continue
        values = np.fromfile(got_files[key], "<f4")
        sha, mx = digest(values)
        if sha == row["sha256"]:
            continue
        dump_bad += 1
        if first_bad is None:
            first_bad = key
            detail = ""
            if key in files:
                ref = np.fromfile(files[key], "<f4")
                if ref.size == values.size:
                    detail = ", max |diff| %.3g" % np.abs(values.astype(np.float64) - ref).max()
            print("FAIL: first op that differs from bitnet.cpp at position 0: %s (%s), %d values, "
                  "max |value| %.6g, expected %s%s" % (key[0], key[1], values.size, mx, row["max_abs"], detail))
    print("position-0 intermediates: %d of %d bit-identical to bitnet.cpp%s"
          % (len(expect_dumps) - dump_bad, len(expect_dumps),
             "" if first_bad is None else " (first difference: %s %s)" % first_bad))
    return 1 if bad or dump_bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("digest")
    d.add_argument("oracle")
    d.add_argument("out")
    c = sub.add_parser("check")
    c.add_argument("expect")
    c.add_argument("--logits", required=True)
    c.add_argument("--dump-dir")
    c.add_argument("--oracle")
    args = ap.parse_args()
    try:
        return cmd_digest(args) if args.cmd == "digest" else cmd_check(args)
    except (OSError, KeyError, ValueError) as e:
        print("oracle_full.py: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
