# bench_model.sh: sourced by the server benchmarks (load_server.sh, chat_replay.sh): sets ROOT, BIN,
# MODEL (--model FILE, else the 2B-4T-shaped synthetic model build/bench-2b4t.gguf, written once)
# and ARGS (the remaining arguments, for the benchmark's .mjs).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BITNET_BIN:-$ROOT/build/bin/bitnet}"
MODEL=""
ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
if [[ -z "$MODEL" ]]; then
    MODEL="$ROOT/build/bench-2b4t.gguf"
    [[ -f "$MODEL" ]] || "$BIN" synth "$MODEL" --preset 2b4t
fi
