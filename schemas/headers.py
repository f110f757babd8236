"""Kafka header names both sides share, with their encoding (pure; imports nothing).

Dead letters (`claw.dlq.v1`) carry the original bytes and key, plus headers naming why and
where the message failed: `clawstream.error.reason`, `clawstream.error.detail`,
`clawstream.source.topic`, `clawstream.source.partition`, `clawstream.source.offset`,
`clawstream.failed.by` (`dlq_headers`, `parse_headers`).

Events written by the HTTPS ingest gateway carry `clawstream.principal`: the id of the token
that sent them (never the token itself). The sink keeps it in the raw tables' `principal`
column (empty for events written straight to Kafka), the audit trail of who sent what; dead
letters of the gateway carry it too.

The side output `claw.late.v1` carries an event's original bytes; these headers say why it is
there. Two reasons:
- `late`: it arrived after the watermark had closed some of its windows (it still counts in
  the windows that were open); `windows` lists the ones it missed.
- `clock_skew`: its event time was further ahead of its arrival (the broker's timestamp) than
  the allowed clock skew, so the agent's clock is not trusted: it counts in no window, moves
  no watermark, and is counted per agent instead (`clock_skew_events` of its windows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LATE_REASON = "clawstream.late.reason"
LATE_WINDOWS = "clawstream.late.windows"
LATE_WATERMARK = "clawstream.late.watermark"
LATE_EVENT_TYPE = "clawstream.late.event_type"
LATE_EVENT_TIME = "clawstream.late.event_time"
LATE_EVENT_ID = "clawstream.late.event_id"
LATE_ARRIVAL = "clawstream.late.arrival"
SOURCE_TOPIC = "clawstream.source.topic"

REASON_LATE = "late"
REASON_CLOCK_SKEW = "clock_skew"

DLQ_REASON = "clawstream.error.reason"
DLQ_DETAIL = "clawstream.error.detail"
SOURCE_PARTITION = "clawstream.source.partition"
SOURCE_OFFSET = "clawstream.source.offset"
FAILED_BY = "clawstream.failed.by"
#: the gateway's token id that sent an event (see the module doc)
PRINCIPAL = "clawstream.principal"
#: a dead letter's detail is cut to this many characters
MAX_DETAIL = 2000


def dlq_headers(*, reason: str, detail: str, topic: str, partition: int, offset: int,
                failed_by: str) -> list[tuple[str, bytes]]:
    """The headers of one dead letter."""
    return [
        (DLQ_REASON, reason.encode()),
        (DLQ_DETAIL, detail[:MAX_DETAIL].encode("utf-8", "replace")),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (FAILED_BY, failed_by.encode()),
    ]


def parse_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as a str dict (dead letters, late events; readers, tests, a replayer)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (headers or [])}


@dataclass(frozen=True)
class LateInfo:
    """Why an event is on the side output, and where it came from."""

    reason: str
    event_type: str
    event_id: str
    event_time: int
    watermark: int
    source_topic: str
    #: (family label, start, end) of each window it missed (empty for clock_skew)
    windows: Sequence[tuple[str, int, int]] = field(default_factory=tuple)
    arrival: int | None = None  # the arrival time it was judged against (ms)

    def headers(self) -> dict[str, str]:
        out = {
            LATE_REASON: self.reason,
            LATE_WINDOWS: json.dumps([list(w) for w in self.windows], separators=(",", ":")),
            LATE_WATERMARK: str(self.watermark),
            LATE_EVENT_TYPE: self.event_type,
            LATE_EVENT_TIME: str(self.event_time),
            LATE_EVENT_ID: self.event_id,
            SOURCE_TOPIC: self.source_topic,
        }
        if self.arrival is not None:
            out[LATE_ARRIVAL] = str(self.arrival)
        return out


def parse_late_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as a str dict, with the reason defaulted for messages written before it
    existed (they were all late)."""
    h = parse_headers(headers)
    h.setdefault(LATE_REASON, REASON_LATE)
    return h


def late_windows(h: dict[str, str]) -> list[tuple[str, int, int]]:
    """The missed windows of parsed late headers."""
    return [(str(w[0]), int(w[1]), int(w[2])) for w in json.loads(h.get(LATE_WINDOWS) or "[]")]
