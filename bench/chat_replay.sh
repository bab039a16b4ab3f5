#!/usr/bin/env bash
# chat_replay.sh: prompt-cache benchmark of `bitnet serve` (not a test). Usage:
#   bench/chat_replay.sh [--model FILE] [--turns 20] [--tokens 16] [--threads 2] [--ctx 4096] [--json OUT.json]
# Without --model it writes (once) and uses the 2B-4T-shaped synthetic model, build/bench-2b4t.gguf.
# Replays a multi-turn chat against a server without and with the prompt cache and reports the time
# to first token per turn (see bench/chat_replay.mjs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
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
BITNET_BIN="$BIN" MODEL="$MODEL" node "$ROOT/bench/chat_replay.mjs" "${ARGS[@]}"
