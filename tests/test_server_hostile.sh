#!/usr/bin/env bash
# test_server_hostile.sh: `bitnet serve` against hostile clients (slow-connection floods, request
# smuggling, DNS rebinding / CSRF, odd URLs and methods, key guessing, shutdown cuts, a model file
# truncated while serving) and its hardening options (CORS, IPv6, TLS with curl, trusted proxies,
# JSON request logs); tests/js/server/server_hostile.mjs does the work; needs node, curl, openssl.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
for tool in node curl openssl; do
    command -v "$tool" >/dev/null || { echo "$tool not found: skipped"; exit 77; }
done
bn_make_tmp server_hostile
bn_synth "$tmp/tiny.gguf"
BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" TMP="$tmp" timeout 600 node "$src/tests/js/server/server_hostile.mjs"
