#!/usr/bin/python3
"""compare_gguf.py - compares two GGUF files' tensors (name, type, shape and data bytes, in order) and
chosen metadata keys, for tests/test_convert.sh's round trip. Prints each difference; exit 0 when
there is none, 1 otherwise.

Usage: compare_gguf.py A.gguf B.gguf [--keys KEY,KEY,...] [--table-only]
  --table-only compares names, types and shapes but not the data.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "reference"))
import gguf_reader  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--keys", default="")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    a, b = gguf_reader.GGUFFile(args.a), gguf_reader.GGUFFile(args.b)
    diffs = []
    if a.tensor_order != b.tensor_order:
        diffs.append("tensor names or order differ: %d vs %d tensors" % (len(a.tensor_order), len(b.tensor_order)))
    for name in a.tensor_order:
        ta, tb = a.tensors[name], b.tensors.get(name)
        if tb is None:
            continue
        if (ta.type, ta.ne) != (tb.type, tb.ne):
            diffs.append("%s: type/shape %s %s vs %s %s" % (name, ta.type, ta.ne, tb.type, tb.ne))
        elif not args.table_only and a.raw(name) != b.raw(name):
            diffs.append("%s: data differs" % name)
    for key in filter(None, args.keys.split(",")):
        va, vb = a.kv.get(key), b.kv.get(key)
        if va != vb:
            show = lambda v: repr(v)[:80]
            diffs.append("key %s: %s vs %s" % (key, show(va), show(vb)))
    for d in diffs:
        print(d)
    print("%d tensors, %d keys compared: %s" % (len(a.tensor_order), len(list(filter(None, args.keys.split(",")))),
                                               "identical" if not diffs else "%d differences" % len(diffs)))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
