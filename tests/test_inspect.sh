#!/usr/bin/env bash
# test_inspect.sh: `bitnet inspect` from the outside: exit codes, the one-line error contract on
# every file of the malformed corpus (exit 1, never a signal, "bitnet inspect: FILE: ..."), the
# report on Microsoft's oracle file (24 tensors, 23 keys) and on the example file written by
# `bitnet gguf-example` (every metadata type, one tensor per format), and --json / --help.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp test_inspect

# usage and help
"$bin" inspect --help >"$tmp/help" 2>&1; check "--help exits 0" test $? -eq 0
check "--help describes --json" grep -q -- "--json" "$tmp/help"
BITNET_MODEL="$src/tests/data/oracle-a/model.gguf" "$bin" inspect > "$tmp/default.txt" 2>&1
check "no FILE: the BITNET_MODEL file" grep -qx "tensors: 24" "$tmp/default.txt"
"$bin" inspect a b >/dev/null 2>&1; check "two FILEs are a usage error (2)" test $? -eq 2
"$bin" inspect --bogus x >/dev/null 2>&1; check "unknown option is a usage error (2)" test $? -eq 2

# the oracle file made by Microsoft's tools
ORACLE=$src/tests/data/oracle-a/model.gguf
"$bin" inspect "$ORACLE" >"$tmp/oracle.txt" 2>"$tmp/oracle.err"
check "oracle: exit 0" test $? -eq 0
check "oracle: no stderr" test ! -s "$tmp/oracle.err"
check "oracle: 24 tensors" grep -qx "tensors: 24" "$tmp/oracle.txt"
check "oracle: 23 keys" grep -qx "metadata: 23 keys" "$tmp/oracle.txt"
check "oracle: version 3" grep -qx "gguf version: 3" "$tmp/oracle.txt"
check "oracle: data offset" grep -qx "data offset: 24064" "$tmp/oracle.txt"
check "oracle: attn_q row (i2_s, shape, 256*256/4+32 bytes, offset)" \
    grep -Eq '^  blk\.0\.attn_q\.weight +i2_s +\[256, 256\] +16416 +413696$' "$tmp/oracle.txt"
check "oracle: token_embd row" grep -Eq '^  token_embd\.weight +f16 +\[256, 759\] +388608 +24064$' "$tmp/oracle.txt"
check "oracle: long string array summarised" \
    grep -Eq '^  tokenizer\.ggml\.tokens: array\[string\] length 759 \["!", "\\"", "#", .*\.\.\. 751 more\]$' "$tmp/oracle.txt"
check "oracle: totals" grep -qx "totals: 24 tensors, 1770496 parameters, 795584 bytes of tensor data" "$tmp/oracle.txt"
check "oracle: i2_s totals" grep -Eq '^  i2_s +14 tensors +1572864 parameters +393664 bytes$' "$tmp/oracle.txt"
"$bin" inspect "$ORACLE" --json >"$tmp/oracle.json"; check "oracle --json: exit 0" test $? -eq 0
check "oracle --json: tensor count" grep -q '"tensors": 24,' "$tmp/oracle.json"
check "oracle --json: i2_s bytes" grep -q '"bytes": 16416,' "$tmp/oracle.json"

# the example file: every metadata type and one tensor of each format
"$bin" gguf-example "$tmp/example.gguf" >/dev/null; check "gguf-example: exit 0" test $? -eq 0
"$bin" inspect "$tmp/example.gguf" >"$tmp/example.txt"; check "example: exit 0" test $? -eq 0
for t in uint8 int8 uint16 int16 uint32 int32 uint64 int64 float32 float64 bool string; do
    check "example: a $t value" grep -Eq ": $t " "$tmp/example.txt"
done
check "example: nested array" grep -q 'example.nested_array: array\[array\] length 2 \[array\[uint32\] length 3 \[1, 2, 3\], array\[uint32\] length 2 \[4, 5\]\]' "$tmp/example.txt"
check "example: string array" grep -q 'example.string_array: array\[string\] length 4 \["alpha", "beta", "γάμμα", ""\]' "$tmp/example.txt"
check "example: long array summarised" grep -q 'length 300 \[0, 1, 4, 9, 16, 25, 36, 49, ... 292 more\]' "$tmp/example.txt"
for row in 'f32 +\[8\] +32' 'f16 +\[16, 2\] +64' 'bf16 +\[16\] +32' 'q8_0 +\[32, 2\] +68' \
           'tq1_0 +\[256\] +54' 'tq2_0 +\[256\] +66' 'i2_s +\[128, 2\] +96'; do
    check "example: tensor row $row" grep -Eq "^  example\.[a-z0-9_]+ +$row +[0-9]+$" "$tmp/example.txt"
done

# every malformed file: exit 1, exactly one stderr line naming the file, nothing on stdout
count=0
while IFS=$'\t' read -r file expect; do
    case $file in '#'*|'') continue ;; esac
    count=$((count + 1))
    path=$src/tests/data/gguf-malformed/$file
    "$bin" inspect "$path" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 1 ]; then echo "FAIL: $file: exit $rc (want 1)"; fail=1; continue; fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ]; then echo "FAIL: $file: stderr is not one line"; fail=1; fi
    if [ -s "$tmp/out" ]; then echo "FAIL: $file: wrote to stdout"; fail=1; fi
    if ! grep -qF "bitnet inspect: $path: $expect" "$tmp/err" &&
       ! { grep -qF "bitnet inspect: $path: " "$tmp/err" && grep -qF "$expect" "$tmp/err"; }; then
        echo "FAIL: $file: got '$(cat "$tmp/err")', want '$expect'"; fail=1
    fi
done <"$src/tests/data/gguf-malformed/expected.txt"
check "corpus has at least 45 files (has $count)" test "$count" -ge 45

# unreadable inputs
"$bin" inspect "$tmp/does-not-exist.gguf" 2>"$tmp/err"; check "missing file: exit 1" test $? -eq 1
check "missing file: names it" grep -q "bitnet inspect: $tmp/does-not-exist.gguf: cannot open" "$tmp/err"
"$bin" inspect "$tmp" 2>"$tmp/err"; check "directory: exit 1" test $? -eq 1

if [ $fail -ne 0 ]; then echo "test_inspect: FAILED"; exit 1; fi
echo "test_inspect: ok ($count malformed files)"
