"""DDSketch (1% relative error) with a compact, dependency-free byte encoding.

The encoding carries the relative accuracy, the exact count/sum/min/max, the zero bucket and
the non-empty bins of both stores as (key delta, count) varints, so a sketch read back is
bin-for-bin the one written and two windows' sketches merge exactly (DDSketch is mergeable).
ddsketch's own protobuf form would need `protobuf` installed; this needs nothing.

Layout (little endian): b"DD" version(1; 2 = dense) accuracy(f64) count, sum, min, max (f64)
zero(f64) then for the positive and the negative store: n(varint) and n pairs of
zigzag-varint key delta and count (varint when integral, flagged per store, else f64);
the dense form stores offset(i64) n(u32) and n f64 bins instead.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from itertools import accumulate
from typing import Any

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
MAGIC = b"DD"
VERSION = 1
DENSE_VERSION = 2
_HEAD = struct.Struct("<dddddd")


_MAPPINGS: dict[float, LogarithmicMapping] = {}


def new_sketch(relative_accuracy: float = RELATIVE_ACCURACY) -> DDSketch:
    """An empty DDSketch sharing one (immutable) index mapping per accuracy: building the
    mapping was half the cost of a new sketch, and every window pane with outcomes needs one."""
    mapping = _MAPPINGS.get(relative_accuracy)
    if mapping is None:
        mapping = _MAPPINGS[relative_accuracy] = LogarithmicMapping(relative_accuracy)
    sketch = DDSketch.__new__(DDSketch)
    BaseDDSketch.__init__(sketch, mapping, DenseStore(), DenseStore(), 0.0)
    return sketch


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _zz(n: int) -> int:
    return (n << 1) ^ (n >> 63) if n >= 0 else ((-n) << 1) - 1


def _unzz(n: int) -> int:
    return (n >> 1) if not n & 1 else -((n + 1) >> 1)


def _encode_store(out: bytearray, store: Any) -> None:
    pairs = [(store.offset + i, c) for i, c in enumerate(store.bins) if c]
    _put_varint(out, len(pairs))
    if not pairs:
        return
    integral = all(float(c).is_integer() for _, c in pairs)
    out.append(1 if integral else 0)
    prev = 0
    for key, c in pairs:
        _put_varint(out, _zz(key - prev))
        prev = key
        if integral:
            _put_varint(out, int(c))
        else:
            out += struct.pack("<d", c)


def _decode_store(buf: bytes, pos: int, store: Any) -> int:
    n, pos = _get_varint(buf, pos)
    if not n:
        return pos
    integral = buf[pos] == 1
    pos += 1
    key = 0
    for _ in range(n):
        delta, pos = _get_varint(buf, pos)
        key += _unzz(delta)
        if integral:
            c, pos = _get_varint(buf, pos)
            count = float(c)
        else:
            (count,) = struct.unpack_from("<d", buf, pos)
            pos += 8
        store.add(key, count)
    return pos


def _encode_store_dense(out: bytearray, store: Any) -> None:
    bins = array("d", store.bins)  # one C-level copy (struct.pack(*bins) took an argument
    if sys.byteorder == "big":  # per bin); the format is little endian
        bins.byteswap()
    out += struct.pack("<qI", store.offset, len(bins))
    out += bins.tobytes()


def _decode_store_dense(buf: bytes, pos: int, store: Any) -> int:
    offset, n = struct.unpack_from("<qI", buf, pos)
    pos += 12
    for i, c in enumerate(struct.unpack_from(f"<{n}d", buf, pos)):
        if c:
            store.add(offset + i, c)
    end: int = pos + 8 * n
    return end


def encode_sketch(sketch: DDSketch, *, dense: bool = False) -> bytes:
    """Bytes of `sketch`; an empty sketch encodes to b"" (the schema default).

    `dense` writes the bins as a raw f64 array: larger, but several times cheaper to write,
    which is what the changelog (rewritten often) wants; the emitted aggregate is compact.
    """
    if sketch.count == 0:
        return b""
    out = bytearray(MAGIC)
    out.append(DENSE_VERSION if dense else VERSION)
    out += struct.pack("<d", sketch._relative_accuracy)
    out += _HEAD.pack(sketch._count, sketch._sum, sketch._min, sketch._max,
                      sketch._zero_count, 0.0)
    enc = _encode_store_dense if dense else _encode_store
    enc(out, sketch._store)
    enc(out, sketch._negative_store)
    return bytes(out)


def decode_sketch(data: bytes, relative_accuracy: float = RELATIVE_ACCURACY) -> DDSketch:
    """The sketch encoded by `encode_sketch`; b"" gives an empty one."""
    if not data:
        return new_sketch(relative_accuracy)
    if data[:2] != MAGIC or data[2] not in (VERSION, DENSE_VERSION):
        raise ValueError("not a clawstream DDSketch encoding")
    dec = _decode_store_dense if data[2] == DENSE_VERSION else _decode_store
    (accuracy,) = struct.unpack_from("<d", data, 3)
    count, total, lo, hi, zero, _ = _HEAD.unpack_from(data, 11)
    sketch = new_sketch(accuracy)
    pos = dec(data, 11 + _HEAD.size, sketch._store)
    dec(data, pos, sketch._negative_store)
    sketch._zero_count = zero
    sketch._count = count
    sketch._sum = total
    sketch._min = lo
    sketch._max = hi
    return sketch


def merge_encoded(a: bytes, b: bytes) -> bytes:
    """Merge two encoded sketches (what a reader of two windows does)."""
    if not a:
        return b
    if not b:
        return a
    left = decode_sketch(a)
    left.merge(decode_sketch(b))
    return encode_sketch(left)


def quantiles(sketch: DDSketch, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[float | None]:
    """Quantile values, None for an empty sketch; the same values as DDSketch's
    `get_quantile_value`, but one cumulative pass over the bins serves every quantile (the
    library walks the bins in Python once per quantile: most of a window's close)."""
    if sketch.count == 0:
        return [None for _ in qs]
    if sketch._negative_store.count:  # latencies are never negative: the library's way
        return [sketch.get_quantile_value(q) for q in qs]
    store = sketch._store
    zero = sketch._zero_count
    cumulative: list[float] | None = None
    out: list[float | None] = []
    for q in qs:
        rank = q * (sketch._count - 1)
        if rank < zero:
            out.append(0.0)
            continue
        if cumulative is None:
            cumulative = list(accumulate(store.bins))  # same order of additions as ddsketch
        i = bisect_right(cumulative, rank - zero)  # first bin whose running count > rank
        key = i + store.offset if i < len(cumulative) else store.max_key
        out.append(sketch._mapping.value(key))
    return out
