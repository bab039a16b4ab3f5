#!/usr/bin/python3
"""make_gguf_corpus.py: writes tests/data/gguf-malformed/, the malformed-GGUF corpus.

Each case is a small valid file with one defect. Cases cover every rule the reader validates
(src/gguf/gguf_read.c) and the classes behind llama.cpp's GGUF advisories: huge counts, length
and count overflows, n_dims > 4, ne product overflow, unknown type ids, offsets past the end or
misaligned or wrapping into the header, overlaps, duplicates, bad UTF-8, bad alignment, deep
nesting and truncation at many cut points, and for ggml's block types (Q4_K, Q6_K, Q8_0, BF16 in a
llama-architecture file) data cut short, rows that are not whole blocks and sizes that overlap.
expected.txt maps each file to the substring its error message must contain
(tests/test_gguf_malformed.c checks it; byte offsets in the messages are computed here from the
same layout). valid-llama-kquants.bin is the intact llama file those cases break: the test opens
it as a positive control, and as the corpus of the fuzz target fuzz_gguf_open (scripts/fuzz.sh
takes this folder as seeds) it gives the fuzzer a well-formed file with every block type.
model/ holds whole small models that are valid GGUF but disagree with themselves (vocabulary
against embedding rows, block_count against the blocks present, a context_length over 2^20,
non-finite or all-zero norms, file strings with control bytes), with model/expected.txt: they must
open as GGUF and be refused as models (tests/test_gguf_malformed.c).

Usage: /usr/bin/python3 scripts/make_gguf_corpus.py [OUT_DIR]   (standard library only)
"""
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q8_0, T_Q4_K, T_Q6_K, T_BF16, T_I2_S = 0, 1, 8, 12, 14, 30, 36
MAX64 = (1 << 64) - 1


def u32(v):
    return struct.pack('<I', v & 0xFFFFFFFF)


def u64(v):
    return struct.pack('<Q', v & MAX64)


def gstr(b):
    return u64(len(b)) + b


class File:
    """A GGUF file assembled piece by piece; offsets of labelled pieces are remembered."""

    def __init__(self):
        self.buf = bytearray()
        self.at = {}

    def add(self, data, label=None):
        if label:
            self.at[label] = len(self.buf)
        self.buf += data
        return self

    def pad(self, alignment=32):
        self.buf += b'\0' * (-len(self.buf) % alignment)
        return len(self.buf)


def kv(key, vtype, payload):
    return gstr(key) + u32(vtype) + payload


def tinfo(name, ne, ttype, offset, n_dims=None):
    dims = len(ne) if n_dims is None else n_dims
    return gstr(name) + u32(dims) + b''.join(u64(x) for x in ne) + u32(ttype) + u64(offset)


BASE_KVS = [kv(b'general.architecture', STRING, gstr(b'test')),
            kv(b'general.name', STRING, gstr(b'corpus'))]
# tensor a: f32 [8] = 32 bytes at 0; tensor b: i2_s [128, 2] = 64 + 32 = 96 bytes at 32
BASE_TENSORS = [(b'a', [8], T_F32, 0), (b'b', [128, 2], T_I2_S, 32)]
BASE_DATA = 128


def build(kvs=None, tensors=None, data=BASE_DATA, version=3, magic=b'GGUF', n_kv=None,
          n_tensors=None, alignment=32):
    kvs = BASE_KVS if kvs is None else kvs
    tensors = BASE_TENSORS if tensors is None else tensors
    f = File()
    f.add(magic + u32(version))
    f.add(u64(len(tensors) if n_tensors is None else n_tensors), 'n_tensors')
    f.add(u64(len(kvs) if n_kv is None else n_kv), 'n_kv')
    for i, k in enumerate(kvs):
        f.add(k, 'kv%d' % i)
    for i, t in enumerate(tensors):
        f.add(t if isinstance(t, bytes) else tinfo(*t), 't%d' % i)
    f.add(b'', 'end_infos')
    f.at['data'] = f.pad(alignment)
    f.add(b'\0' * data)
    return f


cases = []  # (file name, bytes, expected substring)


def case(name, data, expect):
    cases.append((name, bytes(data), expect))


def tensor_field(f, index, name, field, n_dims=1):
    """Absolute offset of a field of tensor info `index` (name length len(name))."""
    base = f.at['t%d' % index]
    offsets = {'name': base, 'n_dims': base + 8 + len(name), 'ne0': base + 12 + len(name)}
    offsets['type'] = base + 12 + len(name) + 8 * n_dims
    offsets['offset'] = offsets['type'] + 4
    return offsets[field]


def tensor_prefix(f, index, name):
    return "tensor '%s' (tensor info at offset %d): " % (name, f.at['t%d' % index])


# ---- header ----
good = build()
case('bad-magic.gguf', b'GGUX' + good.buf[4:], 'magic at offset 0: bytes 47 47 55 58 are not "GGUF"')
case('magic-ggjt.gguf', b'tjgg' + good.buf[4:], 'magic at offset 0: bytes 74 6a 67 67 are not "GGUF"')
case('empty.gguf', b'', 'magic at offset 0: file truncated (needs 4 bytes, 0 left)')
case('version-1.gguf', build(version=1).buf, 'version at offset 4: unsupported GGUF version 1')
case('version-4.gguf', build(version=4).buf, 'version at offset 4: unsupported GGUF version 4')
case('version-big-endian.gguf', build(version=0x03000000).buf,
     'unsupported GGUF version 50331648 (a big-endian file)')
case('huge-n-tensors.gguf', build(n_tensors=MAX64).buf,
     'n_tensors at offset 8: 18446744073709551615 tensor infos cannot fit')
case('huge-n-kv.gguf', build(n_kv=1 << 63).buf,
     'n_kv at offset 16: 9223372036854775808 key-value pairs cannot fit')
f = build()
case('n-kv-exceeds-file.gguf', build(n_kv=100).buf,
     'n_kv at offset 16: 100 key-value pairs cannot fit in the %d bytes after the header'
     % (len(f.buf) - 24))
# 3 tensor infos fit in the bytes after the header but not in those after the metadata
f = build()
n_fake = (len(f.buf) - f.at['t0']) // 32 + 1
assert n_fake * 32 <= len(f.buf) - 24
f = build(n_tensors=n_fake)
case('n-tensors-exceeds-after-metadata.gguf', f.buf,
     'n_tensors at offset 8: %d tensor infos cannot fit in the %d bytes after the metadata (at offset %d'
     % (n_fake, len(f.buf) - f.at['t0'], f.at['t0']))

# ---- truncation at many cut points ----
f = build()
k1 = f.at['kv1']  # general.name: key length, key (12 bytes), type, string length, "corpus"
t1 = f.at['t1']
cuts = [
    ('trunc-in-magic.gguf', 2, 'magic at offset 0: file truncated (needs 4 bytes, 2 left)'),
    ('trunc-in-version.gguf', 6, 'version at offset 4: file truncated'),
    ('trunc-in-n-tensors.gguf', 12, 'n_tensors at offset 8: file truncated'),
    ('trunc-in-n-kv.gguf', 20, 'n_kv at offset 16: file truncated'),
    ('trunc-header-only.gguf', 24, 'n_tensors at offset 8: 2 tensor infos cannot fit in the 0 bytes'),
    ('trunc-in-key-length.gguf', k1 + 4, None),
    ('trunc-in-key.gguf', k1 + 10, None),
    ('trunc-in-value-type.gguf', k1 + 8 + 12 + 2, None),
    ('trunc-in-string-value.gguf', k1 + 8 + 12 + 4 + 8 + 3, None),
    ('trunc-in-tensor-info.gguf', t1 + 10, None),
    ('trunc-in-tensor-offset.gguf', len(f.buf) - BASE_DATA - (f.at['data'] - f.at['end_infos']) - 3, None),
    ('trunc-in-data.gguf', len(f.buf) - 1, None),
    ('trunc-at-data-start.gguf', f.at['data'],
     "tensor 'a' (tensor info at offset %d): data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)"
     % (f.at['t0'], tensor_field(f, 0, b'a', 'offset'), f.at['data'], f.at['data'] + 32, f.at['data'])),
]
for name, cut, expect in cuts:
    data = f.buf[:cut]
    left = len(data) - 24
    if expect is None:
        if cut < f.at['t0']:
            # the tensor count is checked against the size first: 2 infos need 64 bytes
            if left < 64:
                expect = 'n_tensors at offset 8: 2 tensor infos cannot fit in the %d bytes after the header' % left
            elif cut < k1 + 8:
                expect = "key 1 of 2: key at offset %d: file truncated" % k1
            elif cut < k1 + 8 + 12:
                expect = "key 1 of 2: key at offset %d: string length 12 exceeds the %d bytes left" % (k1, cut - k1 - 8)
            elif cut < k1 + 24:
                expect = "key 'general.name' (at offset %d): value type at offset %d: file truncated" % (k1, k1 + 20)
            else:
                expect = "key 'general.name' (at offset %d): string value at offset %d: string length 6 exceeds" % (k1, k1 + 24)
        elif cut < f.at['end_infos']:
            expect = None  # filled below per case
        else:
            expect = "tensor 'b' (tensor info at offset %d): data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)" % (
                t1, tensor_field(f, 1, b'b', 'offset', 2), f.at['data'] + 32, f.at['data'] + 128, cut)
    cases.append([name, bytes(data), expect])
# cuts inside the tensor infos: the count check first (2 infos = 64 bytes after the metadata)
for c in cases:
    if c[2] is None:
        cut = len(c[1])
        after_meta = cut - f.at['t0']
        if after_meta < 64:
            c[2] = 'n_tensors at offset 8: 2 tensor infos cannot fit in the %d bytes after the metadata' % after_meta
        else:
            c[2] = "%sdata offset at offset %d: file truncated" % (tensor_prefix(f, 1, 'b'), tensor_field(f, 1, b'b', 'offset', 2))

# truncation inside each metadata field of a file without tensors (so no count check fires first)
f = build(kvs=[kv(b'general.architecture', STRING, gstr(b'test')), kv(b'n', U32, u32(7)),
               kv(b'arr', ARRAY, u32(U32) + u64(4) + u32(1) * 4),
               kv(b'toks', ARRAY, u32(STRING) + u64(2) + gstr(b'ab') + gstr(b'cd'))], tensors=[], data=0)
a1, a2, a3 = f.at['kv1'], f.at['kv2'], f.at['kv3']
for name, cut, expect in [
        ('trunc-kv-key-length.gguf', a3 + 3, 'key 3 of 4: key at offset %d: file truncated (needs 8 bytes, 3 left)' % a3),
        ('trunc-kv-key-bytes.gguf', a1 + 8, 'key 1 of 4: key at offset %d: string length 1 exceeds the 0 bytes left' % a1),
        ('trunc-kv-value-type.gguf', a1 + 11, "key 'n' (at offset %d): value type at offset %d: file truncated" % (a1, a1 + 9)),
        ('trunc-kv-uint32-value.gguf', a1 + 15, "key 'n' (at offset %d): uint32 at offset %d: file truncated (needs 4 bytes, 2 left)" % (a1, a1 + 13)),
        ('trunc-kv-array-type.gguf', a2 + 17, "key 'arr' (at offset %d): array element type at offset %d: file truncated" % (a2, a2 + 15)),
        ('trunc-kv-array-count.gguf', a2 + 22, "key 'arr' (at offset %d): array count at offset %d: file truncated" % (a2, a2 + 19)),
        ('trunc-kv-array-data.gguf', a2 + 33, "key 'arr' (at offset %d): array count at offset %d: 4 elements of uint32 cannot fit in the 6 bytes left" % (a2, a2 + 19)),
        ('trunc-kv-string-array-length.gguf', a3 + 44, "key 'toks' (at offset %d): element 1: string at offset %d: file truncated (needs 8 bytes, 6 left)" % (a3, a3 + 38)),
        ('trunc-kv-string-array-bytes.gguf', a3 + 47, "key 'toks' (at offset %d): element 1: string at offset %d: string length 2 exceeds the 1 bytes left" % (a3, a3 + 38)),
]:
    case(name, f.buf[:cut], expect)
# truncation inside the fields of a tensor info with a long name (past the count check)
f = build(tensors=[(b'blk.0.ffn_down.weight', [128, 2], T_I2_S, 0)])
t0 = f.at['t0']
tp = "tensor 'blk.0.ffn_down.weight' (tensor info at offset %d): " % t0
for name, cut, expect in [
        ('trunc-tensor-n-dims.gguf', t0 + 32, tp + 'n_dims at offset %d: file truncated (needs 4 bytes, 3 left)' % (t0 + 29)),
        ('trunc-tensor-ne.gguf', t0 + 44, tp + 'ne at offset %d: file truncated (needs 8 bytes, 3 left)' % (t0 + 41)),
        ('trunc-tensor-type.gguf', t0 + 51, tp + 'type at offset %d: file truncated (needs 4 bytes, 2 left)' % (t0 + 49)),
        ('trunc-tensor-data-offset.gguf', t0 + 58, tp + 'data offset at offset %d: file truncated (needs 8 bytes, 5 left)' % (t0 + 53)),
]:
    case(name, f.buf[:cut], expect)

# ---- metadata ----
def kv_case(name, bad_kv, expect_fn):
    f = build(kvs=BASE_KVS + [bad_kv])
    case(name, f.buf, expect_fn(f.at['kv2']))


def key_prefix(key, at):
    return "key '%s' (at offset %d): " % (key, at)


kv_case('key-length-overflow.gguf', u64(MAX64) + b'x' * 8,
        lambda a: 'key at offset %d: string length 18446744073709551615 exceeds' % a)
kv_case('string-value-length-overflow.gguf', kv(b's', STRING, u64(MAX64) + b'abc'),
        lambda a: key_prefix('s', a) + 'string value at offset %d: string length 18446744073709551615 exceeds' % (a + 13))
kv_case('string-value-length-past-end.gguf', kv(b's', STRING, u64(1 << 20) + b'abc'),
        lambda a: key_prefix('s', a) + 'string value at offset %d: string length 1048576 exceeds' % (a + 13))
kv_case('array-count-overflow.gguf', kv(b'arr', ARRAY, u32(U64) + u64((1 << 61) + 1) + u64(7)),
        lambda a: key_prefix('arr', a) + 'array count at offset %d: 2305843009213693953 elements of uint64 cannot fit' % (a + 8 + 3 + 4 + 4))
kv_case('string-array-count-overflow.gguf', kv(b'arr', ARRAY, u32(STRING) + u64(1 << 63) + gstr(b'x')),
        lambda a: key_prefix('arr', a) + 'array count at offset %d: 9223372036854775808 elements of string cannot fit' % (a + 8 + 3 + 4 + 4))
kv_case('nested-array-count-overflow.gguf', kv(b'arr', ARRAY, u32(ARRAY) + u64(1 << 62) + u32(U8) + u64(0)),
        lambda a: key_prefix('arr', a) + 'array count at offset %d: 4611686018427387904 elements of array cannot fit' % (a + 8 + 3 + 4 + 4))
kv_case('string-in-array-length-overflow.gguf',
        kv(b'tok', ARRAY, u32(STRING) + u64(3) + gstr(b'ok') + u64(MAX64 - 1) + gstr(b'z')),
        lambda a: key_prefix('tok', a) + 'element 1: string at offset %d: string length 18446744073709551614 exceeds' % (a + 8 + 3 + 4 + 12 + 10))
kv_case('bad-value-type.gguf', kv(b'v', 13, u32(0)),
        lambda a: key_prefix('v', a) + 'value type at offset %d: 13 is not a GGUF value type' % (a + 9))
kv_case('bad-array-element-type.gguf', kv(b'v', ARRAY, u32(0xFFFFFFFF) + u64(0)),
        lambda a: key_prefix('v', a) + 'array element type at offset %d: 4294967295 is not a GGUF value type' % (a + 13))
kv_case('bool-value-2.gguf', kv(b'flag', BOOL, b'\x02'),
        lambda a: key_prefix('flag', a) + 'bool at offset %d: value 2 is not 0 or 1' % (a + 16))
kv_case('bool-array-value-255.gguf', kv(b'flags', ARRAY, u32(BOOL) + u64(3) + b'\x01\xff\x00'),
        lambda a: key_prefix('flags', a) + 'element 1: bool at offset %d: value 255 is not 0 or 1' % (a + 17 + 12 + 1))
kv_case('duplicate-key.gguf', kv(b'general.name', STRING, gstr(b'again')),
        lambda a: key_prefix('general.name', a) + 'duplicate key (first at offset %d)' % (a - (8 + 12 + 4 + 8 + 6)))
kv_case('invalid-utf8-key.gguf', kv(b'bad\xffkey', U8, b'\x01'),
        lambda a: 'key 2 of 3: key at offset %d: invalid UTF-8 at byte 3' % a)
kv_case('overlong-utf8-key.gguf', kv(b'a\xc0\xafb', U8, b'\x01'),
        lambda a: 'key at offset %d: invalid UTF-8 at byte 1' % a)
kv_case('surrogate-utf8-key.gguf', kv(b'k\xed\xa0\x80', U8, b'\x01'),
        lambda a: 'key at offset %d: invalid UTF-8 at byte 1' % a)
kv_case('truncated-utf8-key.gguf', kv(b'key\xe2\x82', U8, b'\x01'),
        lambda a: 'key at offset %d: invalid UTF-8 at byte 3' % a)
kv_case('empty-key.gguf', kv(b'', U8, b'\x01'), lambda a: 'key at offset %d: empty key' % a)
kv_case('nul-in-key.gguf', kv(b'gen\0eral', U8, b'\x01'), lambda a: 'key at offset %d: contains a NUL byte' % a)


def alignment_case(name, vtype, payload, expect):
    f = build(kvs=BASE_KVS + [kv(b'general.alignment', vtype, payload)])
    case(name, f.buf, key_prefix('general.alignment', f.at['kv2']) + expect)


alignment_case('alignment-zero.gguf', U32, u32(0), '0 is not a power of two')
alignment_case('alignment-three.gguf', U32, u32(3), '3 is not a power of two')
alignment_case('alignment-uint64.gguf', U64, u64(32), 'type uint64, expected uint32')
alignment_case('alignment-int32.gguf', I32, u32(32), 'type int32, expected uint32')
alignment_case('alignment-string.gguf', STRING, gstr(b'32'), 'type string, expected uint32')


def nested(depth):
    out = b''
    for d in range(depth):
        last = d + 1 == depth
        out += u32(U8 if last else ARRAY) + u64(0 if last else 1)
    return out


f = build(kvs=BASE_KVS + [kv(b'deep', ARRAY, nested(200))])
case('deep-nesting-200.gguf', f.buf,
     key_prefix('deep', f.at['kv2']) + 'array at offset %d: nesting deeper than 64 levels' % (f.at['kv2'] + 16 + 64 * 12))
f = build(kvs=BASE_KVS + [kv(b'deep', ARRAY, nested(65))])
case('deep-nesting-65.gguf', f.buf, 'nesting deeper than 64 levels')

# ---- tensor infos ----
def tensor_case(name, bad, expect_fn, tensors_before=None):
    before = BASE_TENSORS if tensors_before is None else tensors_before
    f = build(tensors=before + [bad], data=BASE_DATA + 64)
    case(name, f.buf, expect_fn(f, len(before)))


tensor_case('n-dims-5.gguf', (b'blk.0.attn_q.weight', [8, 1, 1, 1, 1], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'blk.0.attn_q.weight') + 'n_dims 5 at offset %d exceeds 4'
            % tensor_field(f, i, b'blk.0.attn_q.weight', 'n_dims'))
tensor_case('n-dims-huge.gguf', tinfo(b'c', [], T_F32, 128, n_dims=0xFFFFFFFF) + b'\0' * 64,
            lambda f, i: tensor_prefix(f, i, 'c') + 'n_dims 4294967295 at offset %d exceeds 4' % tensor_field(f, i, b'c', 'n_dims'))
tensor_case('n-dims-zero.gguf', (b'c', [], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'n_dims 0 at offset %d is 0' % tensor_field(f, i, b'c', 'n_dims'))
tensor_case('ne-zero.gguf', (b'c', [8, 0], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'ne[1] at offset %d: 0 is not positive' % (tensor_field(f, i, b'c', 'ne0') + 8))
tensor_case('ne-product-overflow.gguf', (b'c', [1 << 32, 1 << 32], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'ne[1] at offset %d: element count overflows' % (tensor_field(f, i, b'c', 'ne0') + 8))
tensor_case('ne-product-overflow-4d.gguf', (b'c', [1 << 16, 1 << 16, 1 << 16, 1 << 16], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'ne[3] at offset %d: element count overflows' % (tensor_field(f, i, b'c', 'ne0') + 24))
tensor_case('ne-negative.gguf', (b'c', [MAX64], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'ne[0] at offset %d: 18446744073709551615 is too large' % tensor_field(f, i, b'c', 'ne0'))
tensor_case('tensor-size-overflow.gguf', (b'c', [1 << 62], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: size of 4611686018427387904 elements of f32 overflows'
            % tensor_field(f, i, b'c', 'type'))
tensor_case('type-out-of-range.gguf', (b'c', [8], 0xFFFFFFFF, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: unknown tensor type id 4294967295' % tensor_field(f, i, b'c', 'type'))
tensor_case('type-q5k-unsupported.gguf', (b'c', [256], 13, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: unknown tensor type id 13' % tensor_field(f, i, b'c', 'type'))
tensor_case('type-i8s-unsupported.gguf', (b'c', [8], 37, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: unknown tensor type id 37' % tensor_field(f, i, b'c', 'type'))
tensor_case('i2s-row-not-multiple.gguf', (b'c', [100, 2], T_I2_S, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: row length 100 is not a multiple of 128 required by type i2_s'
            % tensor_field(f, i, b'c', 'type', 2))
tensor_case('q8-row-not-multiple.gguf', (b'c', [40], T_Q8_0, 128),
            lambda f, i: tensor_prefix(f, i, 'c') + 'type at offset %d: row length 40 is not a multiple of 32 required by type q8_0'
            % tensor_field(f, i, b'c', 'type'))
tensor_case('tensor-name-length-overflow.gguf', u64(MAX64) + b'\0' * 40,
            lambda f, i: 'tensor 2 (tensor info at offset %d): name at offset %d: string length 18446744073709551615 exceeds'
            % (f.at['t2'], f.at['t2']))
tensor_case('invalid-utf8-tensor-name.gguf', (b'w\x80', [8], T_F32, 128),
            lambda f, i: 'tensor 2 (tensor info at offset %d): name at offset %d: invalid UTF-8 at byte 1' % (f.at['t2'], f.at['t2']))
tensor_case('empty-tensor-name.gguf', (b'', [8], T_F32, 128),
            lambda f, i: 'tensor 2 (tensor info at offset %d): name at offset %d: empty name' % (f.at['t2'], f.at['t2']))
tensor_case('duplicate-tensor-name.gguf', (b'a', [8], T_F32, 128),
            lambda f, i: tensor_prefix(f, i, 'a') + 'duplicate name (first at tensor info offset %d)' % f.at['t0'])

# ---- data offsets ----
def offset_case(name, offset, expect_fn, alignment_kv=None):
    kvs = BASE_KVS + ([alignment_kv] if alignment_kv else [])
    f = build(kvs=kvs, tensors=BASE_TENSORS[:1] + [(b'b', [128, 2], T_I2_S, offset)],
              alignment=64 if alignment_kv else 32)
    case(name, f.buf, tensor_prefix(f, 1, 'b') + expect_fn(f))


offset_case('offset-past-end.gguf', 1 << 40,
            lambda f: 'data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)' % (
                tensor_field(f, 1, b'b', 'offset', 2), f.at['data'] + (1 << 40), f.at['data'] + (1 << 40) + 96, len(f.buf)))
offset_case('offset-straddles-end.gguf', 64,
            lambda f: 'data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)' % (
                tensor_field(f, 1, b'b', 'offset', 2), f.at['data'] + 64, f.at['data'] + 160, len(f.buf)))
offset_case('offset-max.gguf', MAX64 - 31,
            lambda f: 'data offset at offset %d: %d wraps around to file offset %d, inside the header' % (
                tensor_field(f, 1, b'b', 'offset', 2), MAX64 - 31, (f.at['data'] + MAX64 - 31) & MAX64))
offset_case('misaligned-offset.gguf', 33,
            lambda f: 'data offset at offset %d: 33 is not a multiple of the alignment 32' % tensor_field(f, 1, b'b', 'offset', 2))
offset_case('misaligned-offset-alignment-64.gguf', 32,
            lambda f: 'data offset at offset %d: 32 is not a multiple of the alignment 64' % tensor_field(f, 1, b'b', 'offset', 2),
            alignment_kv=kv(b'general.alignment', U32, u32(64)))
# an offset that wraps past 2^64 lands inside the header: "tensor overlapping the header"
f0 = build()
wrap = (1 << 64) - f0.at['data'] + 32
offset_case('tensor-overlaps-header.gguf', wrap,
            lambda f: 'data offset at offset %d: %d wraps around to file offset 32, inside the header' % (
                tensor_field(f, 1, b'b', 'offset', 2), wrap))
offset_case('overlapping-tensors.gguf', 0,
            lambda f: "data [%d, %d) overlaps tensor 'a' data [%d, %d)" % (
                f.at['data'], f.at['data'] + 96, f.at['data'], f.at['data'] + 32))
f = build(tensors=[(b'a', [16], T_F32, 0), (b'b', [128, 2], T_I2_S, 32)])
case('overlapping-partial.gguf', f.buf,
     tensor_prefix(f, 1, 'b') + "data [%d, %d) overlaps tensor 'a' data [%d, %d)" % (
         f.at['data'] + 32, f.at['data'] + 128, f.at['data'], f.at['data'] + 64))
f = build(tensors=[(b'a', [8], T_F32, 96), (b'b', [128, 2], T_I2_S, 0), (b'c', [8], T_F32, 64)], data=160)
case('overlapping-out-of-order.gguf', f.buf,
     tensor_prefix(f, 2, 'c') + "data [%d, %d) overlaps tensor 'b' data [%d, %d)" % (
         f.at['data'] + 64, f.at['data'] + 96, f.at['data'], f.at['data'] + 96))


# ---- ggml block types and a llama-architecture file (what `bitnet synth` writes for Falcon3 /
# Llama3 shapes): Q6_K, Q4_K, Q8_0, BF16 and F32 tensors. The intact file is
# valid-llama-kquants.bin (a fuzzing seed and the test's positive control); every case below
# breaks it or one tensor in one way.
LLAMA_KVS = [kv(b'general.architecture', STRING, gstr(b'llama')),
             kv(b'general.name', STRING, gstr(b'corpus-llama')),
             kv(b'llama.embedding_length', U32, u32(256)),
             kv(b'llama.block_count', U32, u32(1)),
             kv(b'llama.feed_forward_length', U32, u32(512)),
             kv(b'llama.attention.head_count', U32, u32(2)),
             kv(b'llama.attention.head_count_kv', U32, u32(1)),
             kv(b'llama.rope.dimension_count', U32, u32(128)),
             kv(b'llama.attention.layer_norm_rms_epsilon', F32, struct.pack('<f', 1e-6))]
# (name, ne, type, bytes): Q6_K 210 and Q4_K 144 bytes per 256, Q8_0 34 per 32, BF16 2 per value
LLAMA_TENSORS = [(b'token_embd.weight', [256, 4], T_Q6_K, 4 * 210),
                 (b'output.weight', [256, 4], T_Q4_K, 4 * 144),
                 (b'blk.0.attn_q.weight', [256, 2], T_Q8_0, 2 * 8 * 34),
                 (b'blk.0.attn_norm.weight', [256], T_BF16, 512),
                 (b'output_norm.weight', [256], T_F32, 1024)]


def llama_layout(tensors):
    """Tensor infos with offsets packed in order at 32-byte alignment, and the data size."""
    infos, at = [], 0
    for name, ne, ttype, size in tensors:
        infos.append((name, ne, ttype, at))
        at += size + (-size % 32)
    return infos, at


LLAMA_INFOS, LLAMA_DATA = llama_layout(LLAMA_TENSORS)
VALID_SEEDS = [('valid-llama-kquants.bin', bytes(build(kvs=LLAMA_KVS, tensors=LLAMA_INFOS, data=LLAMA_DATA).buf))]

# Truncated inside each block-typed tensor's data: the tensor must be named, with its exact extent.
f = build(kvs=LLAMA_KVS, tensors=LLAMA_INFOS, data=LLAMA_DATA)
for i, (name, ne, ttype, size) in enumerate(LLAMA_TENSORS[:4]):
    start = f.at['data'] + LLAMA_INFOS[i][3]
    cut = start + size - 1
    label = {T_Q6_K: 'q6k', T_Q4_K: 'q4k', T_Q8_0: 'q8', T_BF16: 'bf16'}[ttype]
    case('trunc-%s-data.gguf' % label, f.buf[:cut],
         tensor_prefix(f, i, name.decode()) + 'data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)'
         % (tensor_field(f, i, name, 'offset', len(ne)), start, start + size, cut))

# Row lengths that are not whole 256-value blocks.
for label, ttype, type_name in [('q4k', T_Q4_K, 'q4_K'), ('q6k', T_Q6_K, 'q6_K')]:
    for row in (384, 128):
        infos = LLAMA_INFOS[:1] + [(b'output.weight', [row, 4], ttype, LLAMA_INFOS[1][3])] + LLAMA_INFOS[2:]
        f = build(kvs=LLAMA_KVS, tensors=infos, data=LLAMA_DATA)
        case('%s-row-%d.gguf' % (label, row), f.buf,
             tensor_prefix(f, 1, 'output.weight') + 'type at offset %d: row length %d is not a multiple of 256 required by type %s'
             % (tensor_field(f, 1, b'output.weight', 'type', 2), row, type_name))

# A next tensor placed as if Q6_K took 256 bytes per block less than it does: 192 < 210.
infos = [(b'token_embd.weight', [256], T_Q6_K, 0), (b'output_norm.weight', [8], T_F32, 192)]
f = build(kvs=LLAMA_KVS, tensors=infos, data=256)
case('q6k-overlap.gguf', f.buf,
     tensor_prefix(f, 1, 'output_norm.weight') + "data [%d, %d) overlaps tensor 'token_embd.weight' data [%d, %d)"
     % (f.at['data'] + 192, f.at['data'] + 224, f.at['data'], f.at['data'] + 210))
# The file ends 1 byte before the end of the last Q4_K block.
infos = [(b'output.weight', [256, 3], T_Q4_K, 0)]
f = build(kvs=LLAMA_KVS, tensors=infos, data=3 * 144 - 1)
case('trunc-q4k-last-block.gguf', f.buf,
     tensor_prefix(f, 0, 'output.weight') + 'data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)'
     % (tensor_field(f, 0, b'output.weight', 'offset', 2), f.at['data'], f.at['data'] + 432, f.at['data'] + 431))
# A Q6_K tensor of 2^50 rows: its size (2^50 * 210 bytes) must be computed without overflow and
# found to extend past the end.
infos = [(b'token_embd.weight', [256, 1 << 50], T_Q6_K, 0)]
f = build(kvs=LLAMA_KVS, tensors=infos, data=256)
case('q6k-huge-tensor.gguf', f.buf,
     tensor_prefix(f, 0, 'token_embd.weight') + 'data offset at offset %d: data [%d, %d) extends past the end of the file (%d bytes)'
     % (tensor_field(f, 0, b'token_embd.weight', 'offset', 2), f.at['data'], f.at['data'] + (210 << 50), len(f.buf)))


# ---- model files that are valid GGUF but disagree with themselves (src/model/loader.c, config.c,
# model.c): written to model/ with their own model/expected.txt; tests/test_gguf_malformed.c opens
# each as GGUF (it must open) and loads it as a model (it must be refused with the text, which
# names both values that disagree). The intact file, valid-model.gguf, must load; context-huge.gguf
# must load when the caller asks for a context of at most 2^20 tokens.
# The model: one llama block (or bitnet-b1.58, for the sub-norms), width 128, two heads of 64, FFN
# 128, I2_S projections (all codes 0, scale 1), F32 norms of ones, an F16 embedding of 8 rows.
T_F16_ONE = 0x3C00


def f32s(values):
    return b''.join(struct.pack('<f', v) for v in values)


def f16s(values):
    return b''.join(struct.pack('<H', v) for v in values)


I2S_128 = b'\0' * (128 * 128 // 4) + struct.pack('<f', 1.0) + b'\0' * 28


def model_tensors(arch, n_blocks, norms=None):
    """(name, ne, type, data) of a whole model; norms maps a norm's name to (type, data)."""
    norms = norms or {}
    ones = (T_F32, f32s([1.0] * 128))

    def norm(name):
        ttype, data = norms.get(name, ones)
        return (name, [128], ttype, data)

    out = [(b'token_embd.weight', [128, 8], T_F16, f16s([0x2000 + i for i in range(128 * 8)])),
           norm(b'output_norm.weight')]
    for b in range(n_blocks):
        p = b'blk.%d.' % b
        out += [norm(p + b'attn_norm.weight'), norm(p + b'ffn_norm.weight')]
        if arch == b'bitnet-b1.58':
            out += [norm(p + b'attn_sub_norm.weight'), norm(p + b'ffn_sub_norm.weight')]
        for proj in (b'attn_q', b'attn_k', b'attn_v', b'attn_output', b'ffn_gate', b'ffn_up', b'ffn_down'):
            out.append((p + proj + b'.weight', [128, 128], T_I2_S, I2S_128))
    return out


def model_kvs(arch, block_count, n_tokens=8, context=256, arch_value=None):
    a = arch + b'.'
    tokens = b''.join(gstr(b'tok%d' % i) for i in range(n_tokens))
    return [kv(b'general.architecture', STRING, gstr(arch_value or arch)),
            kv(b'general.name', STRING, gstr(b'corpus-model')),
            kv(a + b'context_length', U32, u32(context)),
            kv(a + b'embedding_length', U32, u32(128)),
            kv(a + b'block_count', U32, u32(block_count)),
            kv(a + b'feed_forward_length', U32, u32(128)),
            kv(a + b'attention.head_count', U32, u32(2)),
            kv(a + b'attention.head_count_kv', U32, u32(2)),
            kv(a + b'rope.dimension_count', U32, u32(64)),
            kv(a + b'attention.layer_norm_rms_epsilon', F32, struct.pack('<f', 1e-5)),
            kv(b'tokenizer.ggml.model', STRING, gstr(b'gpt2')),
            kv(b'tokenizer.ggml.tokens', ARRAY, u32(STRING) + u64(n_tokens) + tokens)]


def model_file(kvs, tensors):
    infos, blobs, at = [], [], 0
    for name, ne, ttype, data in tensors:
        infos.append((name, ne, ttype, at))
        blobs.append(data + b'\0' * (-len(data) % 32))
        at += len(blobs[-1])
    f = build(kvs=kvs, tensors=infos, data=0)
    f.add(b''.join(blobs))
    return bytes(f.buf)


LLAMA, B158 = b'llama', b'bitnet-b1.58'
model_cases = []  # (file name, bytes, expected substring)
MODEL_VALID = ('valid-model.gguf', model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 1)))
model_cases += [
    ('vocab-more-tokens.gguf', model_file(model_kvs(LLAMA, 1, n_tokens=9), model_tensors(LLAMA, 1)),
     'tokenizer.ggml.tokens has 9 tokens but token_embd.weight has 8 rows'),
    ('vocab-fewer-tokens.gguf', model_file(model_kvs(LLAMA, 1, n_tokens=7), model_tensors(LLAMA, 1)),
     'tokenizer.ggml.tokens has 7 tokens but token_embd.weight has 8 rows'),
    ('block-count-excess.gguf', model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 2)),
     "metadata llama.block_count is 1 but the file has tensors of at least 2 blocks ('blk.1.attn_norm.weight' is in block 1)"),
    ('block-count-missing.gguf', model_file(model_kvs(LLAMA, 2), model_tensors(LLAMA, 1)),
     'metadata llama.block_count is 2 but block 1 has no tensors (the file has tensors of 1 of the 2 blocks)'),
    # a tensor name with control bytes, far past the count: quoted (escaped) in the message
    ('block-count-escaped-name.gguf',
     model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 1) + [(b'blk.7.x\x1b[2J\x07', [8], T_F32, f32s([0.0] * 8))]),
     "metadata llama.block_count is 1 but the file has tensors of at least 8 blocks ('blk.7.x\\x1b[2J\\x07' is in block 7)"),
    ('context-huge.gguf', model_file(model_kvs(LLAMA, 1, context=1 << 24), model_tensors(LLAMA, 1)),
     'metadata llama.context_length 16777216 is over the limit of 1048576 tokens (2^20); pass -c N'),
    ('attn-norm-nan.gguf',
     model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 1, {b'blk.0.attn_norm.weight': (
         T_F32, f32s([1.0] * 5 + [float('nan')] + [1.0] * 122))})),
     'blk.0.attn_norm.weight: value 5 is nan (a norm weight must be finite)'),
    ('ffn-norm-inf-f16.gguf',
     model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 1, {b'blk.0.ffn_norm.weight': (
         T_F16, f16s([T_F16_ONE] * 3 + [0x7C00] + [T_F16_ONE] * 124))})),
     'blk.0.ffn_norm.weight: value 3 is inf (a norm weight must be finite)'),
    ('output-norm-zero.gguf',
     model_file(model_kvs(LLAMA, 1), model_tensors(LLAMA, 1, {b'output_norm.weight': (T_F32, f32s([0.0] * 128))})),
     'output_norm.weight: all 128 values are zero'),
    ('attn-sub-norm-neg-inf.gguf',
     model_file(model_kvs(B158, 1), model_tensors(B158, 1, {b'blk.0.attn_sub_norm.weight': (
         T_F32, f32s([1.0] * 127 + [float('-inf')]))})),
     'blk.0.attn_sub_norm.weight: value 127 is -inf (a norm weight must be finite)'),
    ('ffn-sub-norm-zero-f16.gguf',
     model_file(model_kvs(B158, 1), model_tensors(B158, 1, {b'blk.0.ffn_sub_norm.weight': (T_F16, f16s([0] * 128))})),
     'blk.0.ffn_sub_norm.weight: all 128 values are zero'),
    # an architecture string with an escape sequence and a newline: quoted in the message
    ('arch-escaped.gguf', model_file(model_kvs(LLAMA, 1, arch_value=b'evil\x1b[2J\nx'), model_tensors(LLAMA, 1)),
     "general.architecture 'evil\\x1b[2J\\nx' is not a BitNet b1.58 model"),
]


def write_manifest(path, entries, note):
    with open(path, 'w') as manifest:
        manifest.write(note)
        for name, data, expect in entries:
            assert expect and '\t' not in expect and '\n' not in expect, name
            with open(os.path.join(os.path.dirname(path), name), 'wb') as fh:
                fh.write(data)
            manifest.write('%s\t%s\n' % (name, expect))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'data', 'gguf-malformed')
    model_out = os.path.join(out, 'model')
    os.makedirs(model_out, exist_ok=True)
    names = [c[0] for c in cases]
    assert len(names) == len(set(names)), 'duplicate case names'
    model_names = [c[0] for c in model_cases] + [MODEL_VALID[0]]
    assert len(model_names) == len(set(model_names)), 'duplicate model case names'
    for folder in (out, model_out):
        for old in os.listdir(folder):
            if old.endswith('.gguf') or old.endswith('.bin'):
                os.remove(os.path.join(folder, old))
    for name, data in VALID_SEEDS:
        with open(os.path.join(out, name), 'wb') as fh:
            fh.write(data)
    write_manifest(os.path.join(out, 'expected.txt'), cases,
                   '# file<TAB>substring its error message must contain (after "FILE: ").\n'
                   '# Generated by scripts/make_gguf_corpus.py; do not edit by hand.\n')
    with open(os.path.join(model_out, MODEL_VALID[0]), 'wb') as fh:
        fh.write(MODEL_VALID[1])
    write_manifest(os.path.join(model_out, 'expected.txt'), model_cases,
                   '# file<TAB>substring the error of loading it as a model must contain (after "FILE: ").\n'
                   '# Each file opens as GGUF. Generated by scripts/make_gguf_corpus.py; do not edit by hand.\n')
    print('wrote %d malformed GGUF files and %d valid seeds to %s, %d inconsistent models and %s to %s'
          % (len(cases), len(VALID_SEEDS), out, len(model_cases), MODEL_VALID[0], model_out))


if __name__ == '__main__':
    main()
