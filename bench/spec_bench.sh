#!/usr/bin/env bash
# spec_bench.sh: speculative-decoding benchmark of `bitnet run` (not a test). Usage:
#   bench/spec_bench.sh [--model FILE] [--threads "1 2"] [--tokens 64] [--rounds 2]
# Without --model it writes (once) and uses the 2B-4T-shaped synthetic model, build/bench-2b4t.gguf.
# Per thread count and round, alternating: plain greedy decode, `--spec replay` of the plain run's
# own ids (full acceptance: the verification path at its best) and `--spec ngram` on a prompt
# that repeats itself; each output must equal the plain one (the script fails otherwise). Prints
# generation tokens/s, the ratio to plain decode of the same round, and the acceptance line.
set -euo pipefail
source "$(dirname "$0")/bench_model.sh"
threads="1 2" tokens=64 rounds=2
set -- "${ARGS[@]+"${ARGS[@]}"}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --tokens) tokens="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "spec_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox"
echo "model $MODEL; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(nproc) cpus"
tps() { sed -n 's/^generation: .*(\([0-9.]*\) tokens\/s)$/\1/p' "$1"; }
for t in $threads; do
    for r in $(seq "$rounds"); do
        run() { "$BIN" run -m "$MODEL" -t "$t" -p "$prompt" -n "$tokens" --temp 0 --ignore-eos --no-echo --no-progress "$@"; }
        run --output-ids "$tmp/ids" > "$tmp/plain.out" 2> "$tmp/plain.err"
        run --spec replay --spec-replay "$tmp/ids" > "$tmp/replay.out" 2> "$tmp/replay.err"
        run --spec ngram > "$tmp/ngram.out" 2> "$tmp/ngram.err"
        cmp -s "$tmp/plain.out" "$tmp/replay.out" || { echo "replay changed the output" >&2; exit 1; }
        cmp -s "$tmp/plain.out" "$tmp/ngram.out" || { echo "ngram changed the output" >&2; exit 1; }
        p=$(tps "$tmp/plain.err")
        for mode in replay ngram; do
            s=$(tps "$tmp/$mode.err")
            printf '%d threads, round %d: plain %s t/s, %-6s %s t/s (%.2fx): %s\n' "$t" "$r" "$p" "$mode" "$s" \
                "$(awk -v a="$s" -v b="$p" 'BEGIN { print a / b }')" "$(grep -o 'speculation.*' "$tmp/$mode.err")"
        done
    done
done
