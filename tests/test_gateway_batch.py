"""The gateway's request bodies (`clawstream.gateway.batch`), pure: zstd bodies are
decompressed into a buffer of the size the frame declares, and whatever does not fit it
(more frames, no declared size, a lie) is handled like before: whole, or 413 over the limit."""

from __future__ import annotations

import os

import cramjam
import pytest

from clawstream.gateway.batch import AVRO_BATCH, BatchError, decompress, frame, split


def zstd(data: bytes) -> bytes:
    return bytes(cramjam.zstd.compress(data, 1))


def streamed(data: bytes) -> bytes:
    """A frame without a declared content size (a streaming compressor's)."""
    c = cramjam.zstd.Compressor(1)
    c.compress(data)
    return bytes(c.finish())


@pytest.mark.parametrize("size", [0, 1, 255, 256, 300, 70_000, 200_000])
def test_one_frame_with_its_size_round_trips(size: int) -> None:
    data = os.urandom(size // 2) * 2
    assert decompress(zstd(data), "zstd", 1 << 20) == data


def test_several_frames_and_frames_without_a_size_decompress_whole() -> None:
    a, b = os.urandom(5000) * 3, os.urandom(7000)
    assert decompress(zstd(a) + zstd(b), "zstd", 1 << 20) == a + b
    assert streamed(a)[4] >> 6 == 0  # (no content size in its header)
    assert decompress(streamed(a), "zstd", 1 << 20) == a


def test_over_the_limit_is_413_however_it_is_framed() -> None:
    data = b"\0" * 100_000
    for body in (zstd(data), streamed(data), zstd(b"x" * 10) + zstd(data)):
        with pytest.raises(BatchError) as raised:
            decompress(body, "zstd", 50_000)
        assert raised.value.status == 413
    assert decompress(zstd(data), "zstd", 100_000) == data  # exactly the limit fits


def test_a_broken_frame_is_400() -> None:
    body = zstd(os.urandom(3000))[:-10]  # (a truncated frame)
    with pytest.raises(BatchError) as raised:
        decompress(body, "zstd", 1 << 20)
    assert raised.value.status == 400 and raised.value.reason == "bad-encoding"


def test_avro_items_are_their_bytes() -> None:
    values = [b"a", b"", os.urandom(300)]
    assert split(frame(values), AVRO_BATCH, 10) == values
    assert split(decompress(zstd(frame(values)), "zstd", 1 << 20), AVRO_BATCH, 10) == values
