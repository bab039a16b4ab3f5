#!/usr/bin/env bash
# test_arm64.sh: the ARM64 port (ctest label: heavy): `make test-arm64` (scripts/test-arm64.sh)
# cross-builds build-arm64/ and runs the C tests, the every-path logit identity, the comparison
# with this x86 build's `bitnet eval` and the receipt checks under qemu-user. Skipped (77) when
# the cross compiler, qemu or the arm64 -dev packages are missing, or on a non-x86 host.
set -u
src=${BITNET_SOURCE_DIR:?BITNET_SOURCE_DIR not set}
bin=${BITNET_BIN:?BITNET_BIN not set}
if [ "$(uname -m)" != x86_64 ]; then
    echo "skip: the arm64 cross check runs on an x86-64 host"
    exit 77
fi
X86_BIN=$bin BUILD_ARM64=$src/build-arm64 JOBS=${JOBS:-2} bash "$src/scripts/test-arm64.sh"
