#!/usr/bin/python3
"""prep_data.py - extract the King James Bible text and split it into train / held-out files.

Source: Debian's `bible-kjv` package (the `bible` program of the Bible Retrieval System prints the
text of `bible-kjv-text`). The King James Version (1611) is in the public domain.

Design: the `bible` program prints chapters as "Book N" headings followed by verses " V text" that
are wrapped at ~80 columns. We rejoin the wrapped lines, drop the verse numbers and write each
chapter as its heading line, one verse per line and an empty line. Every 20th chapter (chapter
index 19, 39, ... counted over the whole Bible in canonical order) goes to the held-out file, the
rest to the training file, so both splits cover all books and styles.

Usage: /usr/bin/python3 training/prep_data.py [--out-dir training/data]
"""
import argparse
import os
import re
import subprocess
import sys

HELDOUT_EVERY = 20


def read_chapters():
    raw = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                         env=dict(os.environ, COLUMNS="80")).stdout.decode("ascii")
    chapters = []  # (heading, [verse text])
    heading, verses = None, []
    for line in raw.split("\n"):
        if not line.strip():
            continue
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            verses.append(m.group(2).strip())
        elif re.match(r"^(?:[1-3] )?[A-Z][A-Za-z ]* \d+$", line):
            # A heading such as "Genesis 1" or "1 Samuel 3" (the chapter and verse counts checked
            # in main() catch a wrapped verse line mistaken for a heading).
            if heading is not None:
                chapters.append((heading, verses))
            heading, verses = line.strip(), []
        else:
            if not verses:
                raise SystemExit("prep_data: continuation before first verse: %r" % line)
            verses[-1] += " " + line.strip()
    chapters.append((heading, verses))
    return chapters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    args = ap.parse_args()
    chapters = read_chapters()
    if len(chapters) != 1189:
        raise SystemExit("prep_data: expected 1189 chapters, got %d" % len(chapters))
    nverses = sum(len(v) for _, v in chapters)
    if nverses != 31102:
        raise SystemExit("prep_data: expected 31102 verses, got %d" % nverses)
    os.makedirs(args.out_dir, exist_ok=True)
    train, held = [], []
    for i, (h, vs) in enumerate(chapters):
        text = h + "\n" + "".join(v + "\n" for v in vs) + "\n"
        (held if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(text)
    for name, parts in (("kjv-train.txt", train), ("kjv-heldout.txt", held)):
        path = os.path.join(args.out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(parts))
        print("%s: %d chapters, %d bytes" % (path, len(parts), sum(len(p) for p in parts)))


if __name__ == "__main__":
    main()
