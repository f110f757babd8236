"""A crash-safe, append-only disk spool of Kafka records (topic, key, value).

The SDK writes here while the broker cannot take events, and a replayer reads the records
back in the order they were written, deleting them only after Kafka acknowledged them.

Layout: ``<dir>/<segment id:020d>.seg`` files, each a sequence of records

    u32 payload length | u32 crc32(payload) | payload
    payload = u16 topic length | topic | i32 key length (-1 = null) | key | value

plus ``<dir>/cursor`` = "<segment id> <offset>": where the first unacknowledged record
starts. A record is written with one ``write()`` call; after a crash a torn tail record
(short, or failing its CRC) is detected on open, ignored and cut off. Segments are deleted
only when everything in them was acknowledged (``ack``). ``fsync`` policy: "always" (every
record), "interval" (at most every ``fsync_interval_s``, plus on roll and close) or "never".
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")
_TOPIC_LEN = struct.Struct("<H")
_KEY_LEN = struct.Struct("<i")
SEGMENT_SUFFIX = ".seg"
#: Ids start high so segments can be inserted before the head (``prepend``) many times.
FIRST_SEGMENT_ID = 10**12
MAX_RECORD = 256 * 1024 * 1024

Record = tuple[str, bytes | None, bytes]


class SpoolFullError(RuntimeError):
    """The spool reached its byte cap; the event was not accepted."""


@dataclass
class Batch:
    """Records read from the spool, not yet acknowledged."""

    records: list[Record]
    end: tuple[int, int]  # cursor just after the last record
    nbytes: int  # on-disk bytes of these records (headers included)
    segments_done: list[int] = field(default_factory=list)  # segments fully covered

    def __len__(self) -> int:
        return len(self.records)


def encode_record(topic: str, key: bytes | None, value: bytes) -> bytes:
    """The on-disk bytes of one record."""
    t = topic.encode()
    k = b"" if key is None else key
    payload = b"".join(
        (_TOPIC_LEN.pack(len(t)), t, _KEY_LEN.pack(-1 if key is None else len(k)), k, value)
    )
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> Record:
    (tlen,) = _TOPIC_LEN.unpack_from(payload, 0)
    pos = 2 + tlen
    topic = payload[2:pos].decode()
    (klen,) = _KEY_LEN.unpack_from(payload, pos)
    pos += 4
    key = None
    if klen >= 0:
        key = payload[pos : pos + klen]
        pos += klen
    return topic, key, payload[pos:]


def scan(data: bytes, start: int = 0) -> tuple[list[tuple[int, int]], int]:
    """(offset, length) of every whole valid record from `start`, and where validity ends."""
    spans = []
    pos = start
    n = len(data)
    while pos + _HEAD.size <= n:
        length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if length > MAX_RECORD or end > n:
            break
        if zlib.crc32(data[pos + _HEAD.size : end]) != crc:
            break
        spans.append((pos, end - pos))
        pos = end
    return spans, pos


class Spool:
    """One agent's spool directory. Thread-safe: one appender and one replayer at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: str = "interval",
        fsync_interval_s: float = 1.0,
    ) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync policy must be always|interval|never, not {fsync!r}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._lock = threading.Lock()
        self._fd: int | None = None  # tail segment, opened for append
        self._tail_id = FIRST_SEGMENT_ID
        self._tail_size = 0
        self._dirty = False
        self._last_sync = time.monotonic()
        self._sizes: dict[int, int] = {}  # segment id -> valid bytes
        self.depth_messages = 0
        self.depth_bytes = 0
        self.torn_bytes_dropped = 0
        self._open()

    # -- opening ------------------------------------------------------------------------------
    def _segment_path(self, seg_id: int) -> Path:
        return self.dir / f"{seg_id:020d}{SEGMENT_SUFFIX}"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seg, off = (self.dir / "cursor").read_text().split()
            return int(seg), int(off)
        except (FileNotFoundError, ValueError):
            return 0, 0

    def _write_cursor(self, cursor: tuple[int, int]) -> None:
        tmp = self.dir / "cursor.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{cursor[0]} {cursor[1]}")
            if self.fsync != "never":
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "cursor")
        self._cursor = cursor

    def _open(self) -> None:
        """Validate every segment, cut torn tails, drop fully acknowledged segments."""
        ids = sorted(
            int(p.name[: -len(SEGMENT_SUFFIX)])
            for p in self.dir.glob(f"*{SEGMENT_SUFFIX}")
            if p.name[: -len(SEGMENT_SUFFIX)].lstrip("-").isdigit()
        )
        cur_seg, cur_off = self._read_cursor()
        for seg_id in ids:
            path = self._segment_path(seg_id)
            if seg_id < cur_seg:
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            start = cur_off if seg_id == cur_seg else 0
            spans, valid_end = scan(data, start)
            if valid_end < len(data):
                dropped = len(data) - valid_end
                self.torn_bytes_dropped += dropped
                log.warning("spool %s: ignoring %d torn/corrupt bytes at the end of %s",
                            self.dir, dropped, path.name)
                with open(path, "r+b") as fh:
                    fh.truncate(valid_end)
            self._sizes[seg_id] = valid_end
            self.depth_messages += len(spans)
            self.depth_bytes += valid_end - start
        if self._sizes:
            first = min(self._sizes)
            if cur_seg != first:  # the cursor's segment was fully acknowledged and deleted
                cur_seg, cur_off = first, 0
            self._tail_id = max(self._sizes)
        else:
            self._tail_id = max(FIRST_SEGMENT_ID, cur_seg)
            cur_seg, cur_off = self._tail_id, 0
        self._cursor = (cur_seg, cur_off)
        self._open_tail()

    def _open_tail(self) -> None:
        path = self._segment_path(self._tail_id)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes.setdefault(self._tail_id, 0)
        self._tail_size = self._sizes[self._tail_id]

    # -- writing ------------------------------------------------------------------------------
    def append(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Append one record durably (per the fsync policy); raise SpoolFullError at the cap."""
        rec = encode_record(topic, key, value)
        with self._lock:
            if self.depth_bytes + len(rec) > self.max_bytes:
                raise SpoolFullError(
                    f"spool {self.dir} holds {self.depth_bytes} bytes; cap is {self.max_bytes}"
                )
            if self._tail_size >= self.segment_bytes:
                self._roll()
            self._write_all(rec)
            self._tail_size += len(rec)
            self._sizes[self._tail_id] = self._tail_size
            self.depth_messages += 1
            self.depth_bytes += len(rec)
            self._maybe_sync()

    def _write_all(self, rec: bytes) -> None:
        assert self._fd is not None, "spool is closed"
        written = os.write(self._fd, rec)
        if written != len(rec):  # disk full: cut the partial record off again
            os.ftruncate(self._fd, self._tail_size)
            raise OSError(f"spool {self.dir}: short write ({written} of {len(rec)} bytes)")
        self._dirty = True

    def _maybe_sync(self) -> None:
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= self.fsync_interval_s
        ):
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def sync(self) -> None:
        """fsync the tail now (the SDK calls this periodically under the interval policy)."""
        with self._lock:
            self._sync_locked()

    def _roll(self) -> None:
        self._sync_locked()
        if self._fd is not None:
            os.close(self._fd)
        self._tail_id += 1
        self._open_tail()
        self._sync_dir()

    def _sync_dir(self) -> None:
        if self.fsync == "never":
            return
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def prepend(self, records: Iterable[Record]) -> int:
        """Put records BEFORE everything spooled so far (events the producer gave back).

        Only valid while no batch is being replayed; they get a segment of their own whose id
        sorts before the current head, and the cursor moves to it.
        """
        data = b"".join(encode_record(t, k, v) for t, k, v in records)
        if not data:
            return 0
        n = len(scan(data)[0])
        with self._lock:
            seg_id = min([*self._sizes, self._cursor[0]]) - 1
            path = self._segment_path(seg_id)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self.fsync != "never":
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._sizes[seg_id] = len(data)
            # Older segments before the cursor position were acknowledged; keep cursor exact.
            head_seg, head_off = self._cursor
            if head_off and head_seg in self._sizes:
                self._drop_prefix(head_seg, head_off)
            self._write_cursor((seg_id, 0))
            self._sync_dir()
            self.depth_messages += n
            self.depth_bytes += len(data)
        return n

    def _drop_prefix(self, seg_id: int, offset: int) -> None:
        """Rewrite a partly acknowledged segment without its acknowledged prefix."""
        path = self._segment_path(seg_id)
        if seg_id == self._tail_id:
            # The tail stays open for appends; move its unacked rest into a fresh segment.
            rest = path.read_bytes()[offset : self._sizes[seg_id]]
            if self._fd is not None:
                os.close(self._fd)
            path.unlink(missing_ok=True)
            del self._sizes[seg_id]
            self._tail_id = seg_id + 1
            self._open_tail()
            if rest:
                self._write_all(rest)
                self._tail_size += len(rest)
                self._sizes[self._tail_id] = self._tail_size
            return
        rest = path.read_bytes()[offset : self._sizes[seg_id]]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(rest)
        os.replace(tmp, path)
        self._sizes[seg_id] = len(rest)

    # -- reading ------------------------------------------------------------------------------
    def read_batch(self, max_records: int = 5000, max_bytes: int = 8 << 20) -> Batch | None:
        """The oldest unacknowledged records (at least one if any), without consuming them."""
        with self._lock:
            seg_id, off = self._cursor
            records: list[Record] = []
            nbytes = 0
            done: list[int] = []
            for sid in sorted(s for s in self._sizes if s >= seg_id):
                start = off if sid == seg_id else 0
                size = self._sizes[sid]
                if start >= size:
                    if sid != self._tail_id:
                        done.append(sid)
                    continue
                with open(self._segment_path(sid), "rb") as fh:
                    fh.seek(start)
                    data = fh.read(size - start)
                pos = 0
                while pos < len(data) and len(records) < max_records:
                    length, crc = _HEAD.unpack_from(data, pos)
                    end = pos + _HEAD.size + length
                    if end > len(data) or (records and nbytes + end - pos > max_bytes):
                        break
                    payload = data[pos + _HEAD.size : end]
                    if zlib.crc32(payload) != crc:
                        raise OSError(f"spool {self.dir}: corrupt record in {sid} at {start + pos}")
                    records.append(_decode_payload(payload))
                    nbytes += end - pos
                    pos = end
                end_cursor = (sid, start + pos)
                if start + pos >= size and sid != self._tail_id:
                    done.append(sid)
                if start + pos < size or len(records) >= max_records or nbytes >= max_bytes:
                    return Batch(records, end_cursor, nbytes, done)
            if not records:
                return None
            return Batch(records, end_cursor, nbytes, done)

    def ack(self, batch: Batch) -> None:
        """Everything in `batch` reached Kafka: advance the cursor, delete finished segments."""
        with self._lock:
            for sid in batch.segments_done:
                self._sizes.pop(sid, None)
                self._segment_path(sid).unlink(missing_ok=True)
            self._write_cursor(batch.end)
            self.depth_messages -= len(batch.records)
            self.depth_bytes -= batch.nbytes
            if self.depth_messages == 0 and batch.end[0] == self._tail_id:
                # Empty again: start the tail afresh so the file does not grow forever.
                self._drop_prefix(self._tail_id, self._sizes.get(self._tail_id, 0))
                self._write_cursor((self._tail_id, 0))

    # -- state --------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return self.depth_messages == 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(f"*{SEGMENT_SUFFIX}"))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                self._sync_locked()
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
