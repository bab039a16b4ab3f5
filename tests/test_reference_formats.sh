#!/usr/bin/env bash
# test_reference_formats.sh: the PyTorch reference's own checks (tests/py/check_reference_formats.py):
# its block decoders against hand-packed blocks, its Q8_K / Q8_0 quantizers on hand cases, its dot
# emulations against a scalar transcription, and its llama / bitnet graphs against a float64
# forward pass. Skipped (77) without python3-torch.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_require_reference
$py "$src/tests/py/check_reference_formats.py" > "$BITNET_TEST_TMP/reference_formats.$$.log" 2>&1
status=$?
tail -3 "$BITNET_TEST_TMP/reference_formats.$$.log"
check "check_reference_formats.py passes" test $status -eq 0
rm -f "$BITNET_TEST_TMP/reference_formats.$$.log"
exit $fail
