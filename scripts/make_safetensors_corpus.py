#!/usr/bin/python3
"""make_safetensors_corpus.py: writes the safetensors and Hugging Face config test data.

1. tests/data/safetensors-malformed/: small .safetensors files, each a valid file with one defect,
   covering every rule of the reader (src/convert/safetensors.c): truncation at the header
   length, in the header and in the data; header lengths past the end of the file and over the
   100 MB limit; JSON that is malformed, not an object, has invalid UTF-8 or NUL in a name;
   duplicate names and duplicate fields; entries that are not objects, miss or add fields;
   unknown and unsupported dtypes; shapes with negative, real or string entries, too many
   dimensions, element counts and byte sizes that overflow 64 bits; data_offsets of the wrong
   form, reversed, out of bounds, not matching shape x dtype, overlapping; empty and over-long
   names; a bad __metadata__. expected.txt maps each file to the status its open must return and
   a substring of the message (tests/test_safetensors.c checks both). The valid-*.safetensors
   files (status OK) are positive controls: they must open. The folder is also a seed corpus of
   the fuzz target fuzz_safetensors_header (scripts/fuzz.sh).
2. fuzz/corpus/safetensors_header/seed-*: valid files (several dtypes, metadata, padding, empty,
   scalar and zero-size tensors) and an index document.
3. fuzz/corpus/hf_config/seed-*: config.json of the three checkpoint families of
   spec/HF_CHECKPOINTS.md (2B-4T, Falcon3-1B-Instruct-1.58bit, 1bitLLM bitnet_b1_58-large),
   a Llama-3.1 style config with rope_scaling, tokenizer_config.json and generation_config.json.

Usage: /usr/bin/python3 scripts/make_safetensors_corpus.py [ROOT]   (standard library only)
"""
import json
import os
import struct
import sys

DTYPE_SIZE = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1,
              'U64': 8, 'U32': 4, 'U16': 2, 'U8': 1, 'BOOL': 1, 'F8_E4M3': 1, 'F8_E5M2': 1}


def st_file(header, data=b'', length=None):
    """A safetensors file: header is text (written as is) or a dict (json.dumps)."""
    if not isinstance(header, (bytes, str)):
        header = json.dumps(header, separators=(',', ':'))
    if isinstance(header, str):
        header = header.encode('utf-8')
    n = len(header) if length is None else length
    return struct.pack('<Q', n) + header + data


def pattern(n):
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def layout(tensors, metadata=None):
    """tensors: [(name, dtype, shape)] laid out one after another; returns (header dict, data)."""
    header = {}
    if metadata is not None:
        header['__metadata__'] = metadata
    at = 0
    for name, dtype, shape in tensors:
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [at, at + n]}
        at += n
    return header, pattern(at)


def one(dtype='F32', shape=(2, 2), offsets=None, name='w', extra=''):
    """Header text of one tensor entry, fields spelled out so they can be broken."""
    shape_text = shape if isinstance(shape, str) else json.dumps(list(shape))
    if offsets is None:
        n = DTYPE_SIZE.get(dtype, 1)
        for d in shape:
            n *= d
        offsets = '[0,%d]' % n
    dtype_text = dtype if dtype.startswith(('"', '[', '{')) or dtype[0].isdigit() else '"%s"' % dtype
    return '{"%s":{"dtype":%s,"shape":%s,"data_offsets":%s%s}}' % (name, dtype_text, shape_text, offsets, extra)


FORMAT, UNSUPPORTED, OK = 'FORMAT', 'UNSUPPORTED', 'OK'
cases = []


def case(name, data, status, expect):
    cases.append((name, data, status, expect))


# ---- valid controls ----
h, d = layout([('model.embed_tokens.weight', 'BF16', [4, 3]), ('model.norm.weight', 'F32', [3]),
               ('model.layers.0.mlp.down_proj.weight', 'U8', [2, 3]),
               ('model.layers.0.mlp.down_proj.weight_scale', 'BF16', [1])], {'format': 'pt'})
case('valid-bitnet-like.safetensors', st_file(h, d), OK, '')
case('valid-empty.safetensors', st_file('{}'), OK, '')
case('valid-padded.safetensors', st_file('\n ' + json.dumps(layout([('x', 'F16', [2])])[0]) + '        ',
                                         pattern(4)), OK, '')
case('valid-scalar-and-zero-size.safetensors',
     st_file('{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},'
             '"z":{"dtype":"I32","shape":[0,5],"data_offsets":[8,8]}}', pattern(8)), OK, '')

# ---- header length ----
case('empty.safetensors', b'', FORMAT, 'header length at offset 0: file truncated (needs 8 bytes, 0 in the file)')
case('truncated-in-length.safetensors', b'\x10\x00\x00\x00\x00', FORMAT,
     'header length at offset 0: file truncated (needs 8 bytes, 5 in the file)')
good_header, good_data = layout([('a', 'F32', [2, 2]), ('b', 'F32', [2, 2])])
good = st_file(good_header, good_data)
good_n = struct.unpack('<Q', good[:8])[0]
case('truncated-in-header.safetensors', good[:8 + good_n // 2], FORMAT,
     'header length %d exceeds the %d bytes after it (file truncated?)' % (good_n, good_n // 2))
case('truncated-in-data.safetensors', good[:-8], FORMAT,
     "tensor 'b': field 'data_offsets' [16, 32]: end is past the 24-byte data area (file truncated?)")
case('header-length-past-eof.safetensors', st_file('{}', length=1000), FORMAT,
     'header length 1000 exceeds the 2 bytes after it')
case('header-length-huge.safetensors', st_file('{}', length=1 << 63), FORMAT,
     'header length 9223372036854775808 exceeds the limit of 100000000 bytes')
case('header-length-max.safetensors', st_file('{}', length=(1 << 64) - 1), FORMAT,
     'header length 18446744073709551615 exceeds the limit of 100000000 bytes')
case('header-length-over-limit.safetensors', st_file('{}', length=100000001), FORMAT,
     'header length 100000001 exceeds the limit of 100000000 bytes')
case('header-length-zero.safetensors', st_file('', length=0), FORMAT,
     "header JSON: line 1 column 0 (byte 8): '[' or '{' expected near end of file")

# ---- JSON ----
case('json-array.safetensors', st_file('[{"dtype":"F32"}]'), FORMAT, 'header JSON is an array, not an object')
case('json-string.safetensors', st_file('"w"'), FORMAT, "header JSON: line 1 column 3 (byte 11): '[' or '{' expected")
case('json-syntax.safetensors', st_file('{"w":{"dtype":"F32",}}'), FORMAT, 'header JSON: line 1 column 21 (byte 29)')
case('json-trailing-garbage.safetensors', st_file('{} x'), FORMAT, 'end of file expected')
case('json-nul-padding.safetensors', st_file('{}\0\0\0\0\0\0'), FORMAT, 'header JSON: line 1 column')
case('json-invalid-utf8-name.safetensors', st_file(b'{"w\xff":1}'), FORMAT, 'unable to decode byte 0xff')
case('json-nul-in-name.safetensors', st_file('{"a\\u0000b":{}}'), FORMAT, 'NUL byte in object key not supported')
case('json-integer-too-big.safetensors', st_file(one(offsets='[0,18446744073709551616]')), FORMAT, 'too big integer')
case('duplicate-name.safetensors',
     st_file('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
             '"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b'ab'), FORMAT,
     'duplicate object key near \'"w"\'')
case('duplicate-field.safetensors', st_file(one(extra=',"dtype":"F16"'), pattern(16)), FORMAT,
     'duplicate object key near \'"dtype"\'')

# ---- names and entries ----
case('name-empty.safetensors', st_file(one(name=''), pattern(16)), FORMAT, "tensor '': empty name")
case('name-too-long.safetensors', st_file(one(name='n' * 600), pattern(16)), FORMAT,
     'name of 600 bytes exceeds the limit of 512')
case('name-control-bytes.safetensors', st_file(one(name='a\\u001b[2Jb', dtype='Q4'), pattern(16)), UNSUPPORTED,
     "tensor 'a\\x1b[2Jb': field 'dtype': unknown dtype 'Q4'")
case('entry-not-object.safetensors', st_file('{"w":[0,4]}'), FORMAT,
     "tensor 'w': entry has JSON type array, expected object")
case('missing-dtype.safetensors', st_file('{"w":{"shape":[1],"data_offsets":[0,4]}}', pattern(4)), FORMAT,
     "tensor 'w': field 'dtype' is missing")
case('missing-shape.safetensors', st_file('{"w":{"dtype":"F32","data_offsets":[0,4]}}', pattern(4)), FORMAT,
     "tensor 'w': field 'shape' is missing")
case('missing-data-offsets.safetensors', st_file('{"w":{"dtype":"F32","shape":[1]}}', pattern(4)), FORMAT,
     "tensor 'w': field 'data_offsets' is missing")
case('unknown-field.safetensors', st_file(one(extra=',"offsets":[0,16]'), pattern(16)), FORMAT,
     "tensor 'w': unknown field 'offsets' (expected dtype, shape, data_offsets)")

# ---- dtype ----
case('dtype-unknown.safetensors', st_file(one(dtype='F128'), pattern(16)), UNSUPPORTED,
     "tensor 'w': field 'dtype': unknown dtype 'F128'")
case('dtype-lower-case.safetensors', st_file(one(dtype='f32'), pattern(16)), UNSUPPORTED,
     "tensor 'w': field 'dtype': unknown dtype 'f32'")
case('dtype-f4.safetensors', st_file(one(dtype='F4', offsets='[0,2]'), pattern(2)), UNSUPPORTED,
     "tensor 'w': field 'dtype': dtype 'F4' is not supported")
case('dtype-c64.safetensors', st_file(one(dtype='C64', offsets='[0,32]'), pattern(32)), UNSUPPORTED,
     "tensor 'w': field 'dtype': dtype 'C64' is not supported")
case('dtype-not-string.safetensors', st_file(one(dtype='4'), pattern(16)), FORMAT,
     "tensor 'w': field 'dtype' has JSON type integer, expected string")

# ---- shape ----
case('shape-not-array.safetensors', st_file(one(shape='4', offsets='[0,16]'), pattern(16)), FORMAT,
     "tensor 'w': field 'shape' has JSON type integer, expected array")
case('shape-negative.safetensors', st_file(one(shape='[2,-3]', offsets='[0,24]'), pattern(24)), FORMAT,
     "tensor 'w': field 'shape': shape[1] = -3 is negative")
case('shape-real.safetensors', st_file(one(shape='[2.0,2]', offsets='[0,16]'), pattern(16)), FORMAT,
     "tensor 'w': field 'shape': shape[0] has JSON type real, expected a non-negative integer")
case('shape-string.safetensors', st_file(one(shape='[2,"2"]', offsets='[0,16]'), pattern(16)), FORMAT,
     "tensor 'w': field 'shape': shape[1] has JSON type string, expected a non-negative integer")
case('shape-too-many-dims.safetensors', st_file(one(shape=[1] * 9, offsets='[0,4]'), pattern(4)), UNSUPPORTED,
     "tensor 'w': field 'shape': 9 dimensions exceed the limit of 8")
case('shape-element-overflow.safetensors',
     st_file(one(dtype='U8', shape=[4294967296, 4294967296], offsets='[0,0]')), FORMAT,
     "tensor 'w': field 'shape': element count overflows at shape[1] (product exceeds 2^64-1)")
case('shape-element-overflow-3d.safetensors',
     st_file(one(dtype='U8', shape=[65536, 65536, 65536, 65536], offsets='[0,0]')), FORMAT,
     "tensor 'w': field 'shape': element count overflows at shape[3]")
case('shape-byte-overflow.safetensors', st_file(one(dtype='F32', shape=[1 << 62], offsets='[0,0]')), FORMAT,
     "tensor 'w': field 'shape': 4611686018427387904 elements of F32 (4 bytes each) overflow a 64-bit byte size")
case('shape-bytes-wrap-to-match.safetensors', st_file(one(dtype='F64', shape=[1 << 61, 1], offsets='[0,0]')), FORMAT,
     "tensor 'w': field 'shape': 2305843009213693952 elements of F64 (8 bytes each) overflow")

# ---- data_offsets ----
case('offsets-not-array.safetensors', st_file(one(offsets='16'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets' has JSON type integer, expected array")
case('offsets-three.safetensors', st_file(one(offsets='[0,16,16]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets' has 3 entries, expected 2 (begin, end)")
case('offsets-negative.safetensors', st_file(one(offsets='[-8,8]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets': begin = -8 is negative")
case('offsets-real.safetensors', st_file(one(offsets='[0,16.0]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets': end has JSON type real, expected a non-negative integer")
case('offsets-reversed.safetensors', st_file(one(offsets='[16,0]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets' [16, 0]: begin is past end")
case('offsets-size-mismatch.safetensors', st_file(one(offsets='[0,12]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets' [0, 12] hold 12 bytes, but shape [2, 2] of F32 needs 16")
case('offsets-size-mismatch-bf16.safetensors', st_file(one(dtype='BF16', shape=[3, 5], offsets='[0,16]'), pattern(30)),
     FORMAT, "tensor 'w': field 'data_offsets' [0, 16] hold 16 bytes, but shape [3, 5] of BF16 needs 30")
case('offsets-out-of-bounds.safetensors', st_file(one(), pattern(8)), FORMAT,
     "tensor 'w': field 'data_offsets' [0, 16]: end is past the 8-byte data area")
case('offsets-far-out-of-bounds.safetensors',
     st_file(one(dtype='U8', shape=[16], offsets='[9223372036854775791,9223372036854775807]'), pattern(16)), FORMAT,
     "tensor 'w': field 'data_offsets' [9223372036854775791, 9223372036854775807]: end is past the 16-byte data area")
case('overlap-partial.safetensors',
     st_file('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
             '"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}', pattern(24)), FORMAT,
     "tensor 'b': field 'data_offsets' [8, 24] overlaps tensor 'a' [0, 16]")
case('overlap-identical.safetensors',
     st_file('{"y":{"dtype":"I16","shape":[4],"data_offsets":[0,8]},'
             '"x":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}', pattern(8)), FORMAT,
     "tensor 'y': field 'data_offsets' [0, 8] overlaps tensor 'x' [0, 8]")
case('overlap-contained-out-of-order.safetensors',
     st_file('{"inner":{"dtype":"U8","shape":[2],"data_offsets":[20,22]},'
             '"first":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
             '"outer":{"dtype":"U8","shape":[28],"data_offsets":[4,32]}}', pattern(32)), FORMAT,
     "tensor 'inner': field 'data_offsets' [20, 22] overlaps tensor 'outer' [4, 32]")

# ---- __metadata__ ----
case('metadata-not-object.safetensors', st_file('{"__metadata__":"pt"}'), FORMAT,
     "field '__metadata__' has JSON type string, expected object")
case('metadata-value-not-string.safetensors', st_file('{"__metadata__":{"format":"pt","step":100}}'), FORMAT,
     "field '__metadata__': value of 'step' has JSON type integer, expected string")

# ---- fuzz seeds ----
ST_SEEDS = [
    ('seed-bitnet-like.safetensors', cases[0][1]),
    ('seed-all-dtypes.safetensors', st_file(*layout([('t.' + k.lower(), k, [2, 3]) for k in DTYPE_SIZE],
                                                     {'format': 'pt', 'total': '15'}))),
    ('seed-padded.safetensors', cases[2][1]),
    ('seed-scalar-and-zero-size.safetensors', cases[3][1]),
    ('seed-index.json', json.dumps({'metadata': {'total_size': 40}, 'weight_map': {
        'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
        'model.norm.weight': 'model-00002-of-00002.safetensors'}}, indent=2).encode()),
]

CONFIG_2B4T = {
    'architectures': ['BitNetForCausalLM'], 'auto_map': {
        'AutoConfig': 'configuration_bitnet.BitNetConfig', 'AutoModelForCausalLM': 'modeling_bitnet.BitNetForCausalLM'},
    'attention_bias': False, 'attention_dropout': 0.0, 'bos_token_id': 128000, 'eos_token_id': 128001,
    'hidden_act': 'relu2', 'hidden_size': 2560, 'initializer_range': 0.02, 'intermediate_size': 6912,
    'max_position_embeddings': 4096, 'model_type': 'bitnet', 'rms_norm_eps': 1e-05, 'num_attention_heads': 20,
    'num_hidden_layers': 30, 'num_key_value_heads': 5, 'rope_theta': 500000.0, 'tie_word_embeddings': True,
    'torch_dtype': 'bfloat16', 'use_cache': True, 'vocab_size': 128256,
    'quantization_config': {'linear_class': 'autobitlinear', 'quant_method': 'bitnet',
                            'quantization_mode': 'offline'}}
CONFIG_FALCON3 = {
    'architectures': ['LlamaForCausalLM'], 'attention_bias': False, 'attention_dropout': 0.0, 'eos_token_id': 11,
    'head_dim': 256, 'hidden_act': 'silu', 'hidden_size': 2048, 'initializer_range': 0.02,
    'intermediate_size': 8192, 'is_bitnet_config': True, 'max_position_embeddings': 8192, 'mlp_bias': False,
    'model_type': 'llama', 'num_attention_heads': 8, 'num_hidden_layers': 18, 'num_key_value_heads': 4,
    'pretraining_tp': 1, 'quantization_config': {'modules_to_not_convert': ['lm_head'], 'quant_method': 'bitnet'},
    'rms_norm_eps': 1e-06, 'rope_scaling': None, 'rope_theta': 1000042, 'tie_word_embeddings': False,
    'torch_dtype': 'bfloat16', 'use_cache': True, 'vocab_size': 131072}
CONFIG_1BITLLM = {
    'architectures': ['BitnetForCausalLM'], 'attention_bias': False, 'bos_token_id': 1, 'eos_token_id': 2,
    'hidden_act': 'silu', 'hidden_size': 1536, 'initializer_range': 0.02, 'input_bits': 8,
    'intermediate_size': 4096, 'max_position_embeddings': 2048, 'model_type': 'llama',
    'num_attention_heads': 16, 'num_hidden_layers': 24, 'num_key_value_heads': 16, 'pad_token_id': 32000,
    'pretraining_tp': 1, 'rms_norm_eps': 1e-05, 'rope_scaling': None, 'rope_theta': 10000.0,
    'tie_word_embeddings': True, 'torch_dtype': 'float16', 'use_cache': True, 'vocab_size': 32002,
    'weight_bits': 1}
CONFIG_LLAMA31 = dict(CONFIG_FALCON3, head_dim=128, num_attention_heads=16, num_key_value_heads=8,
                      eos_token_id=[128001, 128008, 128009], bos_token_id=128000, vocab_size=128256,
                      rope_theta=500000.0, quantization_config=None,
                      rope_scaling={'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                                    'original_max_position_embeddings': 8192, 'rope_type': 'llama3'})
TOKENIZER_CONFIG = {
    'add_bos_token': True, 'add_eos_token': False,
    'bos_token': {'__type': 'AddedToken', 'content': '<s>', 'lstrip': False, 'normalized': True,
                  'rstrip': False, 'single_word': False},
    'eos_token': '</s>', 'chat_template': "{% for message in messages %}{{ message['role'] | capitalize + ': ' + "
                                          "message['content'] | trim + '<|eot_id|>' }}{% endfor %}",
    'model_max_length': 4096}
CONFIG_SEEDS = [
    ('seed-config-2b4t.json', CONFIG_2B4T), ('seed-config-falcon3-1b.json', CONFIG_FALCON3),
    ('seed-config-1bitllm-large.json', CONFIG_1BITLLM), ('seed-config-llama31.json', CONFIG_LLAMA31),
    ('seed-tokenizer-config.json', TOKENIZER_CONFIG),
    ('seed-tokenizer-config-named.json', {'chat_template': [{'name': 'default', 'template': '{{ x }}'},
                                                            {'name': 'tool_use', 'template': '{{ y }}'}]}),
    ('seed-generation-config.json', {'bos_token_id': 128000, 'eos_token_id': [128001, 128009],
                                     'do_sample': True, 'temperature': 0.6}),
]


def write_folder(folder, files, clean):
    """Writes files into folder after removing the old files whose name matches clean."""
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        if clean(old):
            os.remove(os.path.join(folder, old))
    for name, data in files:
        with open(os.path.join(folder, name), 'wb') as fh:
            fh.write(data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    names = [c[0] for c in cases]
    assert len(names) == len(set(names)), 'duplicate case names'
    out = os.path.join(root, 'tests', 'data', 'safetensors-malformed')
    write_folder(out, [(name, data) for name, data, _, _ in cases], lambda f: f.endswith('.safetensors'))
    with open(os.path.join(out, 'expected.txt'), 'w') as manifest:
        manifest.write('# file<TAB>status<TAB>substring its error message must contain (after "FILE: ").\n'
                       '# Status OK: a valid control that must open. Generated by scripts/make_safetensors_corpus.py;\n'
                       '# do not edit by hand.\n')
        for name, _, status, expect in cases:
            assert '\t' not in expect and '\n' not in expect and (expect or status == OK), name
            manifest.write('%s\t%s\t%s\n' % (name, status, expect))
    seed = lambda f: f.startswith('seed-')  # regress-* inputs stay
    write_folder(os.path.join(root, 'fuzz', 'corpus', 'safetensors_header'), ST_SEEDS, seed)
    write_folder(os.path.join(root, 'fuzz', 'corpus', 'hf_config'),
                 [(n, json.dumps(c, indent=2).encode()) for n, c in CONFIG_SEEDS], seed)
    print('wrote %d safetensors cases to %s, %d + %d fuzz seeds' % (len(cases), out, len(ST_SEEDS), len(CONFIG_SEEDS)))


if __name__ == '__main__':
    main()
