"""The disk spool: order, crash safety (torn tails), the cap, and delete-only-after-ack."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.spool import Spool, SpoolFullError, encode_record


def _fill(spool: Spool, n: int, start: int = 0, topic: str = "t") -> None:
    for i in range(start, start + n):
        spool.append(topic, b"agent-1", f"value-{i}".encode())


def _drain(spool: Spool, batch: int = 7) -> list[bytes]:
    out = []
    while (b := spool.read_batch(max_records=batch)) is not None:
        out.extend(v for _, _, v in b.records)
        spool.ack(b)
    return out


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    _fill(spool, 50)
    assert len(spool.segments()) > 3
    assert spool.depth_messages == 50
    assert _drain(spool) == [f"value-{i}".encode() for i in range(50)]
    assert spool.empty and spool.depth_bytes == 0
    assert spool.segments() == [p for p in spool.segments() if p.stat().st_size == 0]


def test_topic_key_and_null_key_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append("claw.actions.v1", b"a\x00b", b"\x00\xff")
    spool.append("claw.frames.v1", None, b"")
    batch = spool.read_batch()
    assert batch is not None
    assert batch.records == [("claw.actions.v1", b"a\x00b", b"\x00\xff"),
                             ("claw.frames.v1", None, b"")]


def test_read_without_ack_deletes_nothing_and_rereads(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=100)
    _fill(spool, 20)
    segments = spool.segments()
    first = spool.read_batch(max_records=5)
    assert first is not None and len(first) == 5
    # not acknowledged: the same records come again, nothing deleted
    again = spool.read_batch(max_records=5)
    assert again is not None and again.records == first.records
    assert spool.segments() == segments
    spool.ack(first)
    nxt = spool.read_batch(max_records=5)
    assert nxt is not None and nxt.records[0][2] == b"value-5"


def test_ack_deletes_only_finished_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=100)
    _fill(spool, 20)
    before = spool.segments()
    batch = spool.read_batch(max_records=3)  # inside the first segment
    assert batch is not None
    spool.ack(batch)
    assert spool.segments() == before  # first segment still has unacked records
    rest = spool.read_batch(max_records=1000)
    assert rest is not None
    spool.ack(rest)
    assert spool.empty


def test_unacked_records_survive_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=120)
    _fill(spool, 30)
    batch = spool.read_batch(max_records=10)
    assert batch is not None
    spool.ack(batch)
    spool.read_batch(max_records=10)  # read but never acknowledged (crash before ack)
    spool.close()
    reopened = Spool(tmp_path, segment_bytes=120)
    assert reopened.depth_messages == 20
    assert _drain(reopened) == [f"value-{i}".encode() for i in range(10, 30)]


@pytest.mark.parametrize("cut", [1, 4, 9, 15])
def test_torn_tail_record_is_ignored_and_cut(tmp_path: Path, cut: int) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 5)
    spool.close()
    seg = spool.segments()[-1]
    # a crash in the middle of writing a 6th record: only part of it reached the disk
    torn = encode_record("t", b"agent-1", b"value-5")[:cut]
    with open(seg, "ab") as fh:
        fh.write(torn)
    reopened = Spool(tmp_path)
    assert reopened.torn_bytes_dropped == len(torn)
    assert reopened.depth_messages == 5
    reopened.append("t", b"agent-1", b"value-after")  # appends land after the valid part
    assert _drain(reopened) == [*(f"value-{i}".encode() for i in range(5)), b"value-after"]


def test_corrupt_tail_record_fails_crc_and_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.close()
    seg = spool.segments()[-1]
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF  # flip bits inside the last record's value
    seg.write_bytes(bytes(data))
    reopened = Spool(tmp_path)
    assert _drain(reopened) == [b"value-0", b"value-1"]


def test_cap_refuses_new_records(tmp_path: Path) -> None:
    rec = len(encode_record("t", b"agent-1", b"value-0"))
    spool = Spool(tmp_path, max_bytes=rec * 3)
    _fill(spool, 3)
    with pytest.raises(SpoolFullError):
        spool.append("t", b"agent-1", b"value-3")
    assert spool.depth_messages == 3
    batch = spool.read_batch(max_records=1)
    assert batch is not None
    spool.ack(batch)  # acknowledged records free their room
    spool.append("t", b"agent-1", b"value-3")
    assert _drain(spool) == [b"value-1", b"value-2", b"value-3"]


def test_prepend_goes_before_everything_unacked(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=100)
    _fill(spool, 10, start=10)
    batch = spool.read_batch(max_records=2)
    assert batch is not None
    spool.ack(batch)  # value-10, value-11 delivered
    n = spool.prepend([("t", b"agent-1", f"value-{i}".encode()) for i in range(5)])
    assert n == 5 and spool.depth_messages == 13
    spool.append("t", b"agent-1", b"value-20")
    expected = [f"value-{i}".encode() for i in [*range(5), *range(12, 21)]]
    spool.close()
    reopened = Spool(tmp_path, segment_bytes=100)  # and it survives a reopen
    assert _drain(reopened) == expected


def test_fsync_policies(tmp_path: Path) -> None:
    for policy in ("always", "interval", "never"):
        spool = Spool(tmp_path / policy, fsync=policy)
        _fill(spool, 3)
        spool.sync()
        assert _drain(spool) == [b"value-0", b"value-1", b"value-2"]
    with pytest.raises(ValueError):
        Spool(tmp_path / "bad", fsync="sometimes")
