#!/usr/bin/env bash
# test_server_http.sh: end-to-end tests of `bitnet serve` over HTTP on 127.0.0.1 with a synthetic
# tiny model: every endpoint and error status, SSE event by event, greedy output equal to
# `bitnet run`, tools and constrained JSON, 16 concurrent streams equal to their sequential runs,
# disconnects freeing slots (via /metrics), 500 hostile requests, API keys, rate limits, the
# bounded queue, SIGTERM/SIGINT, and docs/openapi.yaml against the live routes
# (tests/js/server/server_http.mjs does the work; needs node).
set -euo pipefail
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
: "${BITNET_BIN:?}" "${BITNET_SOURCE_DIR:?}"
TMP="${BITNET_TEST_TMP:-/tmp}/server_http.$$"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
"$BITNET_BIN" synth "$TMP/tiny.gguf" --preset tiny >/dev/null
OPENAPI_JSON=""
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import yaml' 2>/dev/null; then
        "$py" -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
            "$BITNET_SOURCE_DIR/docs/openapi.yaml" "$TMP/openapi.json"
        OPENAPI_JSON="$TMP/openapi.json"
        break
    fi
done
if [[ -z "$OPENAPI_JSON" ]]; then
    echo "FAIL: no python3 yaml module (Debian: python3-yaml, installed by ./bitnet.sh): the OpenAPI route check cannot run"
    exit 1
fi
# the shipped model, when the repository has one, gets a short extra section
SHIPPED_MODEL=""
for f in "$BITNET_SOURCE_DIR"/models/*.gguf; do [[ -f "$f" ]] && { SHIPPED_MODEL="$f"; break; }; done
[[ -n "$SHIPPED_MODEL" ]] && echo "also testing the shipped model $SHIPPED_MODEL"
BITNET_BIN="$BITNET_BIN" MODEL="$TMP/tiny.gguf" TMP="$TMP" OPENAPI_JSON="$OPENAPI_JSON" SHIPPED_MODEL="$SHIPPED_MODEL" \
    timeout 600 node "$BITNET_SOURCE_DIR/tests/js/server/server_http.mjs"
