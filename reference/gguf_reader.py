"""gguf_reader.py - a small GGUF (v2/v3) reader for the reference implementation.

Design: reads the whole file into memory, parses header, metadata (all GGUF value types) and
tensor infos, and returns tensors as numpy arrays on demand. Tensor types: F32 (0), F16 (1),
BF16 (30), I2_S (36, bitnet.cpp: blocks of 128 weights in 32 bytes, byte j holding weights j, 32+j,
64+j, 96+j in bits 7:6, 5:4, 3:2, 1:0; codes 0/1/2 = -1/0/+1; one float32 scale at byte ne/4;
ne/4 + 32 bytes in all), and ggml's block types Q8_0 (8), Q4_K (12), Q6_K (14), TQ1_0 (34) and
TQ2_0 (35), whose layouts and dequantizers live in ggml_quants.py (tensor() returns them
dequantized as ggml's dequantize_row_* does; raw() gives the bytes for the kernels). Written from
the format descriptions in the project's spec and ggml's public headers; shares no code with the
C engine.
"""
import struct

import numpy as np

import ggml_quants

GGUF_MAGIC = b"GGUF"
T_F32, T_F16, T_I2_S, T_BF16 = 0, 1, 36, 30
T_Q8_0, T_Q4_K, T_Q6_K, T_TQ1_0, T_TQ2_0 = (ggml_quants.T_Q8_0, ggml_quants.T_Q4_K, ggml_quants.T_Q6_K,
                                           ggml_quants.T_TQ1_0, ggml_quants.T_TQ2_0)
KNOWN_TYPES = (T_F32, T_F16, T_BF16, T_I2_S) + tuple(ggml_quants.BLOCK)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP_SCALAR = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
GGUF_STRING, GGUF_ARRAY = 8, 9


class GGUFError(Exception):
    pass


class Tensor:
    def __init__(self, name, ne, ttype, offset):
        self.name, self.ne, self.type, self.offset = name, ne, ttype, offset

    @property
    def n_elements(self):
        n = 1
        for d in self.ne:
            n *= d
        return n

    def nbytes(self):
        n = self.n_elements
        if self.type == T_F32:
            return 4 * n
        if self.type in (T_F16, T_BF16):
            return 2 * n
        if self.type == T_I2_S:
            if n % 128:
                raise GGUFError("tensor %s: I2_S element count %d not a multiple of 128" % (self.name, n))
            return n // 4 + 32
        if self.type in ggml_quants.BLOCK:
            be, bb = ggml_quants.BLOCK[self.type]
            if not self.ne or self.ne[0] % be:
                raise GGUFError("tensor %s: %s row length %s not a multiple of %d"
                                % (self.name, ggml_quants.TYPE_NAMES[self.type], self.ne[:1], be))
            return n // be * bb
        raise GGUFError("tensor %s: unsupported type %d" % (self.name, self.type))


class GGUFFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.path = path
        self.pos = 0
        if self._take(4) != GGUF_MAGIC:
            raise GGUFError("%s: not a GGUF file (bad magic)" % path)
        self.version = self._u32()
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d" % (path, self.version))
        n_tensors, n_kv = self._u64(), self._u64()
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            vt = self._u32()
            self.kv[key] = self._value(vt, key)
        self.tensors = {}
        self.tensor_order = []
        for _ in range(n_tensors):
            name = self._str()
            nd = self._u32()
            if nd > 4:
                raise GGUFError("tensor %s: %d dimensions" % (name, nd))
            ne = [self._u64() for _ in range(nd)]
            ttype, off = self._u32(), self._u64()
            self.tensors[name] = Tensor(name, ne, ttype, off)
            self.tensor_order.append(name)
        align = int(self.kv.get("general.alignment", 32))
        self.data_start = (self.pos + align - 1) // align * align
        for t in self.tensors.values():
            if t.type in KNOWN_TYPES:
                end = self.data_start + t.offset + t.nbytes()
                if end > len(self.buf):
                    raise GGUFError("tensor %s: data [%d, %d) beyond end of file (%d bytes)"
                                    % (t.name, self.data_start + t.offset, end, len(self.buf)))

    def _take(self, n):
        if self.pos + n > len(self.buf):
            raise GGUFError("%s: truncated at offset %d" % (self.path, self.pos))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _u32(self):
        return struct.unpack("<I", self._take(4))[0]

    def _u64(self):
        return struct.unpack("<Q", self._take(8))[0]

    def _str(self):
        n = self._u64()
        return self._take(n).decode("utf-8", errors="surrogateescape")

    def _value(self, vt, key):
        if vt in _SCALAR:
            fmt = _SCALAR[vt]
            return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]
        if vt == GGUF_STRING:
            return self._str()
        if vt == GGUF_ARRAY:
            et, n = self._u32(), self._u64()
            if et in _NP_SCALAR:
                size = np.dtype(_NP_SCALAR[et]).itemsize
                return np.frombuffer(self._take(size * n), dtype=_NP_SCALAR[et]).tolist()
            if et == GGUF_STRING:
                return [self._str() for _ in range(n)]
            raise GGUFError("key %s: unsupported array element type %d" % (key, et))
        raise GGUFError("key %s: unknown value type %d" % (key, vt))

    def raw(self, name):
        t = self.tensors[name]
        start = self.data_start + t.offset
        return self.buf[start:start + t.nbytes()]

    def tensor(self, name):
        """Returns (array, scale): float32 numpy array shaped (ne[-1], ..., ne[0]); for I2_S the
        array holds the ternary values {-1, 0, +1} and scale is the per-tensor float32 scale, else
        scale is None and the array holds the values (block types dequantized as ggml does)."""
        t = self.tensors.get(name)
        if t is None:
            raise GGUFError("%s: missing tensor %s" % (self.path, name))
        shape = tuple(reversed(t.ne))
        b = self.raw(name)
        if t.type == T_F32:
            return np.frombuffer(b, dtype="<f4").reshape(shape).astype(np.float32), None
        if t.type == T_F16:
            return np.frombuffer(b, dtype="<f2").reshape(shape).astype(np.float32), None
        if t.type == T_BF16:
            u = np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16
            return u.view(np.float32).reshape(shape), None
        if t.type == T_I2_S:
            return decode_i2s(b, t.n_elements).reshape(shape), float(np.frombuffer(b[t.n_elements // 4:][:4], "<f4")[0])
        if t.type in ggml_quants.BLOCK:
            rows = t.n_elements // t.ne[0]
            blk = ggml_quants.blocks(b, t.type, rows, t.ne[0])
            return ggml_quants.dequantize(blk, t.type).reshape(shape), None
        raise GGUFError("tensor %s: unsupported type %d" % (name, t.type))


def decode_i2s(b, n):
    """I2_S bytes -> float32 ternary values (n of them), row-major flattened order."""
    packed = np.frombuffer(b[:n // 4], dtype=np.uint8).reshape(-1, 32)  # (blocks, 32)
    codes = np.stack([(packed >> 6) & 3, (packed >> 4) & 3, (packed >> 2) & 3, packed & 3], axis=1)  # (blocks, 4, 32)
    if (codes == 3).any():
        raise GGUFError("I2_S: code 3 (unused) present")
    return (codes.reshape(-1).astype(np.float32) - 1.0)


def encode_i2s(values, scale):
    """Ternary values {-1,0,+1} (flattened row-major, length multiple of 128) + scale -> I2_S bytes."""
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    if v.size % 128:
        raise ValueError("I2_S: %d values is not a multiple of 128" % v.size)
    codes = (v + 1).astype(np.uint8).reshape(-1, 4, 32)
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    return packed.astype(np.uint8).tobytes() + struct.pack("<f", scale) + bytes(28)
