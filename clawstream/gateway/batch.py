"""What `POST /v1/events` takes: a batch of events, in one of two encodings.

- `application/vnd.clawstream.avro-batch` (what the SDK sends): the events' own Kafka bytes,
  each prefixed by its length as a 4-byte big-endian unsigned int. The bytes are exactly what
  the SDK would produce to Kafka (Avro single-object encoding, or Confluent framing when a
  schema registry is configured), so the gateway forwards them unchanged.
- `application/json` (for simple clients): `{"events": [{"type": "action", "record": {...}},
  ...]}`, each record validated against the same Avro schema (`type` is the event type,
  `action`, `outcome`, ...; timestamps in epoch milliseconds) and encoded by the gateway.

Either may be compressed (`Content-Encoding: zstd` or `gzip`); decompression stops at the size
limit. A batch that cannot be split into items is malformed (400, nothing written); an item
that cannot be used is refused on its own (its index and reason in the 207). Pure.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cramjam

AVRO_BATCH = "application/vnd.clawstream.avro-batch"
JSON_BATCH = "application/json"
_LEN = struct.Struct(">I")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class BatchError(ValueError):
    """A request body that is not a batch (`status` 400) or is too big (413)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Item:
    """One event of a JSON batch: the type it names and its record (to validate and encode),
    and the item as sent (`value`, what a dead letter keeps). An Avro batch's items are their
    bytes as they are (one object fewer per event)."""

    value: bytes
    event_type: str
    record: dict[str, object] | None = None


def frame(values: Sequence[bytes]) -> bytes:
    """An avro-batch body of `values` (the SDK's side of the encoding)."""
    pack = _LEN.pack
    return b"".join(pack(len(v)) + v for v in values)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body as sent, decoded from its `Content-Encoding`; 413 past `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    too_big = BatchError(413, "too-large", f"the decompressed body exceeds {limit} bytes")
    if encoding == "zstd":
        return _unzstd(body, limit)
    if encoding in ("gzip", "deflate"):
        d = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
        try:
            data = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise BatchError(400, "bad-encoding", f"{encoding}: {exc}") from None
        if len(data) > limit or d.unconsumed_tail:
            raise too_big
        return data
    raise BatchError(415, "unsupported-encoding",
                     f"Content-Encoding {encoding!r}: use zstd, gzip or none")


def _zstd_content_size(body: bytes) -> int | None:
    """The decompressed size a zstd frame declares in its header (RFC 8878 3.1.1.1), or None
    when it does not declare one. Only a hint: zstd checks the frame against it."""
    if len(body) < 6 or body[:4] != _ZSTD_MAGIC:
        return None
    fhd = body[4]
    single_segment = fhd & 0x20
    fcs_flag = fhd >> 6
    size = (1, 2, 4, 8)[fcs_flag] if fcs_flag or single_segment else 0
    if not size:
        return None
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 3]
    if len(body) < pos + size:
        return None
    value = int.from_bytes(body[pos:pos + size], "little")
    return value + 256 if size == 2 else value


def _unzstd(body: bytes, limit: int) -> bytes:
    too_big = BatchError(413, "too-large", f"the decompressed body exceeds {limit} bytes")
    declared = _zstd_content_size(body)
    if declared is not None and declared > limit:
        raise too_big
    # A buffer the size the frame declares (what the SDK sends: one frame with its size);
    # one byte more tells a body with more in it (a second frame) from one that fits. Only
    # then, or without a declared size, a buffer of the limit: zero-filling 16 MiB for every
    # request cost more than everything else the gateway does with a batch.
    size = limit if declared is None else declared
    while True:
        out = bytearray(size + 1)
        try:
            n = cramjam.zstd.decompress_into(body, out)
        except cramjam.DecompressionError as exc:
            if "whole buffer" not in str(exc):
                raise BatchError(400, "bad-encoding", f"zstd: {exc}") from None
            n = size + 1
        if n <= size:
            return bytes(memoryview(out)[:n])  # (one copy: slicing bytes is cheaper after)
        if size >= limit:
            raise too_big
        size = limit


def split(body: bytes, content_type: str,
          max_events: int) -> list[bytes] | list[Item]:
    """The items of a batch (an Avro batch's: their bytes; a JSON batch's: `Item`s);
    BatchError for a malformed one or one over `max_events`."""
    media = content_type.split(";", 1)[0].strip().lower()
    items: list[bytes] | list[Item]
    if media == AVRO_BATCH:
        items = _split_avro(body, max_events)
    elif media in (JSON_BATCH, "text/json"):
        items = _split_json(body, max_events)
    else:
        raise BatchError(415, "unsupported-media-type",
                         f"Content-Type {content_type!r}: send {AVRO_BATCH} or {JSON_BATCH}")
    if not items:
        raise BatchError(400, "empty-batch", "the batch holds no events")
    return items


def _too_many(max_events: int) -> BatchError:
    return BatchError(413, "too-many-events", f"a batch holds at most {max_events} events")


def _split_avro(body: bytes, max_events: int) -> list[bytes]:
    end = len(body)
    pos = 0
    items: list[bytes] = []
    append = items.append
    unpack = _LEN.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise BatchError(400, "malformed-batch",
                             f"{end - pos} stray bytes after event {len(items)}")
        (n,) = unpack(body, pos)
        pos += 4
        if pos + n > end:
            raise BatchError(400, "malformed-batch",
                             f"event {len(items)} announces {n} bytes, {end - pos} are left")
        if len(items) >= max_events:
            raise _too_many(max_events)
        append(body[pos:pos + n])
        pos += n
    return items


def _split_json(body: bytes, max_events: int) -> list[Item]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(400, "malformed-batch", f"not JSON: {exc}") from None
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise BatchError(400, "malformed-batch",
                         'a JSON batch is {"events": [{"type": ..., "record": {...}}, ...]}')
    if len(events) > max_events:
        raise _too_many(max_events)
    items = []
    for event in events:
        ok = isinstance(event, dict)
        event_type = event.get("type") if ok else None
        record = event.get("record") if ok else None
        raw = json.dumps(event, separators=(",", ":")).encode()
        items.append(Item(raw, event_type if isinstance(event_type, str) else "",
                          record if isinstance(record, dict) else None))
    return items
