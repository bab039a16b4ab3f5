#!/usr/bin/env python3
"""serve_compare.py: greedy streaming completions from a running `bitnet serve`, for comparing two
servers (scripts/gpu-check.sh: --device cuda against the CPU). Usage:
    serve_compare.py LOG OUT.json [--clients 16] [--tokens 32]
LOG is the server's output (its listening line names the port); OUT.json receives the texts of
CLIENTS concurrent streaming requests (temperature 0, distinct prompts), in prompt order. Exit 1
when the server never became ready or a request failed."""
import argparse
import concurrent.futures
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))
from server_wait import wait_ready  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("out")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    a = ap.parse_args()
    port = wait_ready(a.log, tries=1200)
    if port is None:
        print("the server did not become ready", file=sys.stderr)
        return 1
    base = f"http://127.0.0.1:{port}"
    model = json.load(urllib.request.urlopen(base + "/v1/models", timeout=30))["data"][0]
    words = "in the beginning god created heaven and earth light darkness water land sea".split()

    def ask(i):
        prompt = " ".join(words[(i * 7 + k) % len(words)] for k in range(6 + i % 5))
        body = json.dumps({"model": model["id"], "prompt": prompt, "max_tokens": a.tokens,
                           "temperature": 0, "stream": True, "ignore_eos": True}).encode()
        req = urllib.request.Request(base + "/v1/completions", body, {"Content-Type": "application/json"})
        text = ""
        for line in urllib.request.urlopen(req, timeout=300):
            line = line.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                text += json.loads(line[6:])["choices"][0]["text"]
        return text

    with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
        texts = list(pool.map(ask, range(a.clients)))
    json.dump({"device": model.get("device"), "texts": texts}, open(a.out, "w"), indent=1)
    print(f"{a.clients} streams of {a.tokens} tokens from {base} (device {model.get('device')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
