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


class BatchError(ValueError):
    """A request body that is not a batch (`status` 400) or is too big (413)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Item:
    """One event of a batch: its Avro bytes, or a JSON record to encode (`event_type`)."""

    value: bytes
    event_type: str | None = None  # JSON items: the type named; Avro items: None
    record: dict[str, object] | None = None


def frame(values: Sequence[bytes]) -> bytes:
    """An avro-batch body of `values` (the SDK's side of the encoding)."""
    pack = _LEN.pack
    return b"".join(pack(len(v)) + v for v in values)


def decompress(body: bytes, encoding: str, limit: int) -> bytes | memoryview:
    """The body as sent, decoded from its `Content-Encoding`; 413 past `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    too_big = BatchError(413, "too-large", f"the decompressed body exceeds {limit} bytes")
    if encoding == "zstd":
        out = bytearray(limit + 1)  # (calloc'd: pages the frame never touches cost nothing)
        try:
            n = cramjam.zstd.decompress_into(body, out)
        except cramjam.DecompressionError as exc:
            if "whole buffer" in str(exc):
                raise too_big from None
            raise BatchError(400, "bad-encoding", f"zstd: {exc}") from None
        if n > limit:
            raise too_big
        return memoryview(out)[:n]
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


def split(body: bytes | memoryview, content_type: str, max_events: int) -> list[Item]:
    """The items of a batch; BatchError for a malformed one or one over `max_events`."""
    media = content_type.split(";", 1)[0].strip().lower()
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


def _split_avro(body: bytes | memoryview, max_events: int) -> list[Item]:
    view = memoryview(body)
    end = len(view)
    pos = 0
    items: list[Item] = []
    unpack = _LEN.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise BatchError(400, "malformed-batch",
                             f"{end - pos} stray bytes after event {len(items)}")
        (n,) = unpack(view, pos)
        pos += 4
        if pos + n > end:
            raise BatchError(400, "malformed-batch",
                             f"event {len(items)} announces {n} bytes, {end - pos} are left")
        if len(items) >= max_events:
            raise _too_many(max_events)
        items.append(Item(bytes(view[pos:pos + n])))
        pos += n
    return items


def _split_json(body: bytes | memoryview, max_events: int) -> list[Item]:
    try:
        doc = json.loads(bytes(body))
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
