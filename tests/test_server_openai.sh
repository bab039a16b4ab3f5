#!/usr/bin/env bash
# test_server_openai.sh: the official OpenAI Node SDK (tests/js/node_modules/openai, pinned in
# tests/js/package.json) works unchanged against `bitnet serve`: models.list, completions and
# chat (stream and not), a tool-call round trip, typed errors; and the Responses API
# (responses_sdk.mjs). Skipped (77) without node or the SDK (run `npm ci` in tests/js).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
[[ -d "$src/tests/js/node_modules/openai" ]] || { echo "tests/js/node_modules/openai missing (npm ci in tests/js): skipped"; exit 77; }
bn_make_tmp server_openai
bn_synth "$tmp/tiny.gguf"
BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" timeout 300 node "$src/tests/js/server/openai_sdk.mjs"
BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" timeout 300 node "$src/tests/js/server/responses_sdk.mjs"
