#!/usr/bin/env bash
# test_inspect.sh: `bitnet inspect` from the outside: exit codes, the one-line error contract on
# every file of the malformed corpus (exit 1, never a signal, "bitnet inspect: FILE: ..."), the
# report on Microsoft's oracle file (24 tensors, 23 keys) and on the example file written by
# `bitnet gguf-example` (every metadata type, one tensor per format), and --json / --help.
set -u
BIN=${BITNET_BIN:?}
SRC=${BITNET_SOURCE_DIR:?}
TMP=${BITNET_TEST_TMP:-/tmp}/test_inspect.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then :; else echo "FAIL: $what"; fail=1; fi
}

# usage and help
"$BIN" inspect --help >"$TMP/help" 2>&1; check "--help exits 0" test $? -eq 0
check "--help describes --json" grep -q -- "--json" "$TMP/help"
"$BIN" inspect >/dev/null 2>&1; check "no FILE is a usage error (2)" test $? -eq 2
"$BIN" inspect --bogus x >/dev/null 2>&1; check "unknown option is a usage error (2)" test $? -eq 2

# the oracle file made by Microsoft's tools
ORACLE=$SRC/tests/data/oracle-a/model.gguf
"$BIN" inspect "$ORACLE" >"$TMP/oracle.txt" 2>"$TMP/oracle.err"
check "oracle: exit 0" test $? -eq 0
check "oracle: no stderr" test ! -s "$TMP/oracle.err"
check "oracle: 24 tensors" grep -qx "tensors: 24" "$TMP/oracle.txt"
check "oracle: 23 keys" grep -qx "metadata: 23 keys" "$TMP/oracle.txt"
check "oracle: version 3" grep -qx "gguf version: 3" "$TMP/oracle.txt"
check "oracle: data offset" grep -qx "data offset: 24064" "$TMP/oracle.txt"
check "oracle: attn_q row (i2_s, shape, 256*256/4+32 bytes, offset)" \
    grep -Eq '^  blk\.0\.attn_q\.weight +i2_s +\[256, 256\] +16416 +413696$' "$TMP/oracle.txt"
check "oracle: token_embd row" grep -Eq '^  token_embd\.weight +f16 +\[256, 759\] +388608 +24064$' "$TMP/oracle.txt"
check "oracle: long string array summarised" \
    grep -Eq '^  tokenizer\.ggml\.tokens: array\[string\] length 759 \["!", "\\"", "#", .*\.\.\. 751 more\]$' "$TMP/oracle.txt"
check "oracle: totals" grep -qx "totals: 24 tensors, 1770496 parameters, 795584 bytes of tensor data" "$TMP/oracle.txt"
check "oracle: i2_s totals" grep -Eq '^  i2_s +14 tensors +1572864 parameters +393664 bytes$' "$TMP/oracle.txt"
"$BIN" inspect "$ORACLE" --json >"$TMP/oracle.json"; check "oracle --json: exit 0" test $? -eq 0
check "oracle --json: tensor count" grep -q '"tensors": 24,' "$TMP/oracle.json"
check "oracle --json: i2_s bytes" grep -q '"bytes": 16416,' "$TMP/oracle.json"

# the example file: every metadata type and one tensor of each format
"$BIN" gguf-example "$TMP/example.gguf" >/dev/null; check "gguf-example: exit 0" test $? -eq 0
"$BIN" inspect "$TMP/example.gguf" >"$TMP/example.txt"; check "example: exit 0" test $? -eq 0
for t in uint8 int8 uint16 int16 uint32 int32 uint64 int64 float32 float64 bool string; do
    check "example: a $t value" grep -Eq ": $t " "$TMP/example.txt"
done
check "example: nested array" grep -q 'example.nested_array: array\[array\] length 2 \[array\[uint32\] length 3 \[1, 2, 3\], array\[uint32\] length 2 \[4, 5\]\]' "$TMP/example.txt"
check "example: string array" grep -q 'example.string_array: array\[string\] length 4 \["alpha", "beta", "γάμμα", ""\]' "$TMP/example.txt"
check "example: long array summarised" grep -q 'length 300 \[0, 1, 4, 9, 16, 25, 36, 49, ... 292 more\]' "$TMP/example.txt"
for row in 'f32 +\[8\] +32' 'f16 +\[16, 2\] +64' 'bf16 +\[16\] +32' 'q8_0 +\[32, 2\] +68' \
           'tq1_0 +\[256\] +54' 'tq2_0 +\[256\] +66' 'i2_s +\[128, 2\] +96'; do
    check "example: tensor row $row" grep -Eq "^  example\.[a-z0-9_]+ +$row +[0-9]+$" "$TMP/example.txt"
done

# every malformed file: exit 1, exactly one stderr line naming the file, nothing on stdout
count=0
while IFS=$'\t' read -r file expect; do
    case $file in '#'*|'') continue ;; esac
    count=$((count + 1))
    path=$SRC/tests/data/gguf-malformed/$file
    "$BIN" inspect "$path" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -ne 1 ]; then echo "FAIL: $file: exit $rc (want 1)"; fail=1; continue; fi
    if [ "$(wc -l <"$TMP/err")" -ne 1 ]; then echo "FAIL: $file: stderr is not one line"; fail=1; fi
    if [ -s "$TMP/out" ]; then echo "FAIL: $file: wrote to stdout"; fail=1; fi
    if ! grep -qF "bitnet inspect: $path: $expect" "$TMP/err" &&
       ! { grep -qF "bitnet inspect: $path: " "$TMP/err" && grep -qF "$expect" "$TMP/err"; }; then
        echo "FAIL: $file: got '$(cat "$TMP/err")', want '$expect'"; fail=1
    fi
done <"$SRC/tests/data/gguf-malformed/expected.txt"
check "corpus has at least 45 files (has $count)" test "$count" -ge 45

# unreadable inputs
"$BIN" inspect "$TMP/does-not-exist.gguf" 2>"$TMP/err"; check "missing file: exit 1" test $? -eq 1
check "missing file: names it" grep -q "bitnet inspect: $TMP/does-not-exist.gguf: cannot open" "$TMP/err"
"$BIN" inspect "$TMP" 2>"$TMP/err"; check "directory: exit 1" test $? -eq 1

if [ $fail -ne 0 ]; then echo "test_inspect: FAILED"; exit 1; fi
echo "test_inspect: ok ($count malformed files)"
