"""tokenizer.py - byte-level BPE tokenizer of the reference implementation (GGUF `gpt2` model type).

Design: the vocabulary is the GGUF `tokenizer.ggml.*` metadata: token strings in GPT-2's
byte-to-unicode form, merges "a b" in rank order, token types (3 = control). Text is split into
pre-tokens with the pattern named by `tokenizer.ggml.pre` (LLaMA-3 pattern for llama3/llama-bpe/
llama-v3 and when absent, GPT-2 pattern for gpt2), using the `regex` module for \\p{L}/\\p{N}.
Each pre-token is mapped to bytes, then to byte symbols, then merged by lowest merge rank until no
merge applies. For the LLaMA-3 pattern a pre-token that is itself a vocabulary entry is emitted as
that one token without running merges (Hugging Face's ignore_merges), as the C engine does.
Control tokens written in the text are recognised only when parse_special is set.
This file shares no code with the C engine; it is the independent oracle's tokenizer.
"""
import regex

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

PRE_PATTERNS = {None: LLAMA3_PATTERN, "llama3": LLAMA3_PATTERN, "llama-bpe": LLAMA3_PATTERN,
                "llama-v3": LLAMA3_PATTERN, "gpt2": GPT2_PATTERN}

TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_CONTROL = 3


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table (byte value -> str)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_UNI = bytes_to_unicode()
UNI_TO_BYTE = {v: k for k, v in BYTE_TO_UNI.items()}


def token_text_to_bytes(s):
    return bytes(UNI_TO_BYTE[c] for c in s)


class Tokenizer:
    """tokens: list of str (byte-to-unicode form); merges: list of "a b"; token_types: list of int."""

    def __init__(self, tokens, merges, token_types=None, pre=None, bos_id=None, eos_id=None,
                 add_bos=True):
        if pre not in PRE_PATTERNS:
            raise ValueError("tokenizer: unsupported pre-tokenizer %r" % (pre,))
        self.tokens = list(tokens)
        self.token_types = list(token_types) if token_types is not None else [TOKEN_TYPE_NORMAL] * len(tokens)
        self.pre = pre
        self.pattern = regex.compile(PRE_PATTERNS[pre])
        self.ignore_merges = PRE_PATTERNS[pre] is LLAMA3_PATTERN
        self.bos_id, self.eos_id, self.add_bos = bos_id, eos_id, add_bos
        self.ids = {}
        for i, t in enumerate(self.tokens):
            self.ids.setdefault(t, i)
        self.ranks = {}
        for r, m in enumerate(merges):
            a, b = m.split(" ", 1)
            self.ranks.setdefault((a, b), r)
        self.specials = sorted(((t, i) for i, t in enumerate(self.tokens)
                                if self.token_types[i] == TOKEN_TYPE_CONTROL), key=lambda x: -len(x[0]))
        self.cache = {}

    def _bpe(self, piece):
        """piece: str in byte-to-unicode form -> list of token ids."""
        hit = self.cache.get(piece)
        if hit is not None:
            return hit
        if self.ignore_merges and piece in self.ids and self.token_types[self.ids[piece]] != TOKEN_TYPE_CONTROL:
            out = [self.ids[piece]]
        else:
            syms = list(piece)
            while len(syms) > 1:
                best, best_rank = -1, None
                for i in range(len(syms) - 1):
                    r = self.ranks.get((syms[i], syms[i + 1]))
                    if r is not None and (best_rank is None or r < best_rank):
                        best, best_rank = i, r
                if best < 0:
                    break
                syms[best:best + 2] = [syms[best] + syms[best + 1]]
            out = []
            for s in syms:
                if s not in self.ids:
                    raise ValueError("tokenizer: symbol %r not in vocabulary" % s)
                out.append(self.ids[s])
        if len(self.cache) < 200000:
            self.cache[piece] = out
        return out

    def encode_plain(self, text):
        out = []
        for m in self.pattern.finditer(text):
            piece = "".join(BYTE_TO_UNI[b] for b in m.group(0).encode("utf-8"))
            out.extend(self._bpe(piece))
        return out

    def encode(self, text, add_bos=None, parse_special=False):
        if add_bos is None:
            add_bos = self.add_bos
        out = [self.bos_id] if add_bos and self.bos_id is not None else []
        if not parse_special or not self.specials:
            return out + self.encode_plain(text)
        pos, start = 0, 0
        while pos < len(text):
            for s, i in self.specials:
                if text.startswith(s, pos):
                    out.extend(self.encode_plain(text[start:pos]))
                    out.append(i)
                    pos += len(s)
                    start = pos
                    break
            else:
                pos += 1
        out.extend(self.encode_plain(text[start:]))
        return out

    def decode(self, ids):
        b = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self.token_types[i] == TOKEN_TYPE_CONTROL:
                b += t.encode("utf-8")
            else:
                b += token_text_to_bytes(t)
        return b.decode("utf-8", errors="replace")
