#!/usr/bin/env bash
# load_server.sh: load benchmark of `bitnet serve` (not a test). Usage:
#   bench/load_server.sh [--model FILE] [--levels 1,2,4,8,16] [--tokens 32] [--threads 2] [--json OUT.json]
#                        [--int8-lm-head]
# Without --model it writes (once) and uses the 2B-4T-shaped synthetic model, build/bench-2b4t.gguf.
# Reports aggregate generated tokens/s, TTFT and inter-token latency p50/p99 per concurrency level.
set -euo pipefail
source "$(dirname "$0")/bench_model.sh"
BITNET_BIN="$BIN" MODEL="$MODEL" node "$ROOT/bench/load_server.mjs" "${ARGS[@]}"
