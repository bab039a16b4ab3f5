#!/usr/bin/env bash
# test_server_drain.sh: /live, /ready (--ready-queue-max), /metrics through promtool, the routing
# header, and the SIGTERM drain (refused connections, closed idle connections, cut requests that
# end visibly, exit 0), against real `bitnet serve` processes on a synthetic model big enough that
# a 2000-token generation outlasts a 0.5 s --shutdown-timeout (tests/py/server_drain.py).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
bn_require_python json
bn_make_tmp server_drain
bn_synth "$tmp/drain.gguf" --layers 8 --dim 1024 --ffn 2816 --heads 16
timeout 300 "$py" "$src/tests/py/server_drain.py" "$bin" "$tmp/drain.gguf" "$tmp"
