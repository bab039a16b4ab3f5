#!/usr/bin/env bash
# test_server_http.sh: end-to-end tests of `bitnet serve` over HTTP on 127.0.0.1 with a synthetic
# tiny model: every endpoint and error status, SSE event by event, greedy output equal to
# `bitnet run`, tools and constrained JSON, 16 concurrent streams equal to their sequential runs,
# disconnects freeing slots (via /metrics), 500 hostile requests, API keys, rate limits, the
# bounded queue, SIGTERM/SIGINT, and docs/openapi.yaml against the live routes
# (tests/js/server/server_http.mjs does the work; needs node).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
bn_make_tmp server_http
bn_synth "$tmp/tiny.gguf"
OPENAPI_JSON=""
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import yaml' 2>/dev/null; then
        "$py" -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
            "$src/docs/openapi.yaml" "$tmp/openapi.json"
        OPENAPI_JSON="$tmp/openapi.json"
        break
    fi
done
if [[ -z "$OPENAPI_JSON" ]]; then
    echo "FAIL: no python3 yaml module (Debian: python3-yaml, installed by ./bitnet.sh): the OpenAPI route check cannot run"
    exit 1
fi
# the shipped model, when the repository has one, gets a short extra section
SHIPPED_MODEL=""
for f in "$src"/models/*.gguf; do [[ -f "$f" ]] && { SHIPPED_MODEL="$f"; break; }; done
[[ -n "$SHIPPED_MODEL" ]] && echo "also testing the shipped model $SHIPPED_MODEL"
BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" TMP="$tmp" OPENAPI_JSON="$OPENAPI_JSON" SHIPPED_MODEL="$SHIPPED_MODEL" \
    timeout 600 node "$src/tests/js/server/server_http.mjs"
