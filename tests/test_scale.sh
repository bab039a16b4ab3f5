#!/usr/bin/env bash
# test_scale.sh (ctest label: heavy): scripts/scale-test.sh as a test: three replicas behind
# HAProxy (deploy/haproxy/haproxy.cfg) under 300 requests while one drains on SIGTERM and comes
# back and another is SIGKILLed; zero failures except streams running on the killed replica,
# every completed response equal to a lone server's; then the 1/2/3-replica throughput report.
# The report is kept as build/test-tmp/scale-report.txt.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
report=${BITNET_TEST_TMP:-/tmp}/scale-report.txt
mkdir -p "$(dirname "$report")"
SCALE_REPORT=$report timeout 900 "$src/scripts/scale-test.sh" "$bin"
