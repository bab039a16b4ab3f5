#!/usr/bin/env bash
# chat_replay.sh: prompt-cache benchmark of `bitnet serve` (not a test). Usage:
#   bench/chat_replay.sh [--model FILE] [--turns 20] [--tokens 16] [--threads 2] [--ctx 4096] [--json OUT.json]
# Without --model it writes (once) and uses the 2B-4T-shaped synthetic model, build/bench-2b4t.gguf.
# Replays a multi-turn chat against a server without and with the prompt cache and reports the time
# to first token per turn (see bench/chat_replay.mjs).
set -euo pipefail
source "$(dirname "$0")/bench_model.sh"
BITNET_BIN="$BIN" MODEL="$MODEL" node "$ROOT/bench/chat_replay.mjs" "${ARGS[@]}"
