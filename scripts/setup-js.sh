#!/usr/bin/env bash
# setup-js.sh: installs the test-only JavaScript tools of tests/js (exact versions from
# package-lock.json) from the npm registry: the reference tokenizers, the OpenAI SDK, and the
# Kubernetes OpenAPI validators (kubernetes-models, yaml) for deploy/k8s. Needs node >= 18 and npm.
# Without this step the tests that use them (test_tokenizer_llama3, test_server_openai,
# test_deploy_files) are skipped.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
npm ci --no-audit --no-fund
