#!/usr/bin/env bash
# test_server_schema.sh: structured output through `bitnet serve`: JSON Schemas using every
# supported keyword (anyOf, oneOf, $ref/$defs, enum, const, pattern, format, min/maxLength,
# min/maxItems, prefixItems, numeric bounds, additionalProperties, nullable, allOf) sampled at
# temperature 1 on random weights and checked by an independent JSON Schema validator (Ajv, draft
# 2020-12, with formats); forced tool calls; refused keywords; GBNF `grammar`, `guided_regex`,
# `guided_choice`; and the token budget on the shipped model (a forced tool call whose shortest
# form is longer than max_tokens in bytes but not in tokens closes validly).
# tests/js/server/schema_sampled.mjs does the work; needs node and tests/js/node_modules.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
[[ -d "$src/tests/js/node_modules/ajv" ]] || { echo "tests/js/node_modules/ajv missing (npm ci in tests/js): skipped"; exit 77; }
bn_make_tmp server_schema
bn_synth "$tmp/tiny.gguf"
SHIPPED_MODEL=""
for f in "$src"/models/*.gguf; do [[ -f "$f" ]] && { SHIPPED_MODEL="$f"; break; }; done
BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" SHIPPED_MODEL="$SHIPPED_MODEL" timeout 900 \
    node "$src/tests/js/server/schema_sampled.mjs"
