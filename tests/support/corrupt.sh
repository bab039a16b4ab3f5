# tests/support/corrupt.sh: bn_corrupt_tensor, for the tests that show a check catches a broken
# model file (test_crossval.sh, test_crossval_reference.sh). Sourced after common.sh ($bin, $py,
# $tmp).
#
# bn_corrupt_tensor FILE OUT TENSOR MODE: copies FILE to OUT and changes TENSOR in place, found
# through `bitnet inspect --json` (its file offset, type and shape):
#   norm: element 7 of an F32 vector becomes 5.0 (from about 1);
#   row:  row 3 of an I2_S matrix is negated (2-bit codes 0 <-> 2; 1, zero, stays).
bn_corrupt_tensor() {
    cp "$1" "$2"
    "$bin" inspect "$1" --json > "$tmp/inspect.json"
    $py - "$2" "$3" "$4" "$tmp/inspect.json" <<'EOF'
import json, struct, sys
path, name, mode, report = sys.argv[1:5]
t = next(t for t in json.load(open(report))["tensors"] if t["name"] == name)
with open(path, "r+b") as f:
    if mode == "norm":
        assert t["type"] == "f32"
        f.seek(t["file_offset"] + 7 * 4)
        f.write(struct.pack("<f", 5.0))
    else:
        assert t["type"] == "i2_s"
        row_bytes = t["shape"][0] // 4  # 4 codes per byte; a row is whole 128-weight blocks
        f.seek(t["file_offset"] + 3 * row_bytes)
        row = bytearray(f.read(row_bytes))
        for i, b in enumerate(row):
            out = 0
            for shift in (0, 2, 4, 6):
                c = (b >> shift) & 3
                out |= (c ^ 2 if c in (0, 2) else c) << shift
            row[i] = out
        f.seek(t["file_offset"] + 3 * row_bytes)
        f.write(row)
EOF
}
