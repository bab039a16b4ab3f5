#!/usr/bin/env bash
# spec_bench.sh: speculative-decoding benchmark of `bitnet run` (not a test). Usage:
#   bench/spec_bench.sh [--model FILE] [--threads "1 2"] [--tokens 64] [--rounds 2]
# Without --model it writes (once) and uses the 2B-4T-shaped synthetic model, build/bench-2b4t.gguf.
# Per thread count and round, alternating: plain greedy decode, `--spec replay` of the plain run's
# own ids (full acceptance: the verification path at its best) and `--spec ngram`, on a prompt
# that repeats itself ("copy") and on one that does not ("free"); each output must equal the plain
# one (the script fails otherwise). Prints generation tokens/s, the ratio to plain decode of the
# same round and prompt, and the acceptance line.
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
copy="The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox"
free="Write a short report on the history of the printing press, its inventors and its effect on Europe."
echo "model $MODEL; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(nproc) cpus"
tps() { sed -n 's/^generation: .*(\([0-9.]*\) tokens\/s)$/\1/p' "$1"; }
for t in $threads; do
    for r in $(seq "$rounds"); do
        for kind in copy free; do
            prompt=${!kind}
            run() { "$BIN" run -m "$MODEL" -t "$t" -p "$prompt" -n "$tokens" --temp 0 --ignore-eos --no-echo --no-progress "$@"; }
            run --output-ids "$tmp/ids" > "$tmp/plain.out" 2> "$tmp/plain.err"
            modes="ngram"
            [[ $kind == copy ]] && modes="replay ngram"
            for mode in $modes; do
                if [[ $mode == replay ]]; then
                    run --spec replay --spec-replay "$tmp/ids" > "$tmp/$mode.out" 2> "$tmp/$mode.err"
                else
                    run --spec ngram > "$tmp/$mode.out" 2> "$tmp/$mode.err"
                fi
                cmp -s "$tmp/plain.out" "$tmp/$mode.out" || { echo "$mode changed the output" >&2; exit 1; }
                p=$(tps "$tmp/plain.err") s=$(tps "$tmp/$mode.err")
                printf '%d threads, round %d, %s prompt: plain %s t/s, %-6s %s t/s (%.2fx): %s\n' "$t" "$r" "$kind" "$p" \
                    "$mode" "$s" "$(awk -v a="$s" -v b="$p" 'BEGIN { print a / b }')" \
                    "$(grep -o 'speculation.*' "$tmp/$mode.err")"
            done
        done
    done
done
