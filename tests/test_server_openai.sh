#!/usr/bin/env bash
# test_server_openai.sh: the official OpenAI Node SDK (tests/js/node_modules/openai, pinned in
# tests/js/package.json) works unchanged against `bitnet serve`: models.list, completions and
# chat (stream and not), a tool-call round trip, typed errors. Skipped (77) without node or the SDK
# (run `npm ci` in tests/js).
set -euo pipefail
: "${BITNET_BIN:?}" "${BITNET_SOURCE_DIR:?}"
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
[[ -d "$BITNET_SOURCE_DIR/tests/js/node_modules/openai" ]] || { echo "tests/js/node_modules/openai missing (npm ci in tests/js): skipped"; exit 77; }
TMP="${BITNET_TEST_TMP:-/tmp}/server_openai.$$"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
"$BITNET_BIN" synth "$TMP/tiny.gguf" --preset tiny >/dev/null
BITNET_BIN="$BITNET_BIN" MODEL="$TMP/tiny.gguf" timeout 300 node "$BITNET_SOURCE_DIR/tests/js/server/openai_sdk.mjs"
