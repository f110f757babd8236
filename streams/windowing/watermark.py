"""Per-partition event-time watermark over several source topics (pure).

A worker reads partition p of every event topic (they are co-partitioned by agent_id). The
watermark of partition p is the highest event time seen minus the allowed lateness, except
that a source topic still catching up (its consumed offset below its high-water mark) holds
the watermark at its own progress: otherwise, after a restart, a fast topic read ahead of a
slow one would make the slow one's backlog late. Sources that are caught up never hold it
back, so an idle topic does not stall the partition. That is the held-back event clock of
`streams.windowing.clock`, minus the lateness. (The event times it takes are already bounded
by their arrival: see `streams.windowing.pipeline`.)

A partition with nothing new for a while (idle) would keep its last windows open until its
agents speak again; the caller may then give a `floor` (arrival time, i.e. the broker's clock
now, minus the lateness: whatever arrives from now on arrives later than that) that the
watermark may move up to although no event says so. The caller gives it only while every
source of the partition is caught up and readable, so nothing already in Kafka is overtaken.

The watermark is monotonic; a window whose end is <= the watermark is closed for good.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from streams.windowing.clock import NEVER, held_back

__all__ = ["NEVER", "PartitionClock", "SourceMark"]


@dataclass
class SourceMark:
    """What has been applied from one source topic of the partition."""

    max_time: int = NEVER
    offset: int = -1


class PartitionClock:
    """The watermark of one partition over its source topics, and what was applied from each
    (by offset: a replay after a crash is recognised)."""

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.sources: dict[str, SourceMark] = {}
        self.watermark: int = NEVER
        self.max_seen: int = NEVER
        self.dirty = False

    def is_replay(self, source: str, offset: int) -> bool:
        """True for an event at or below the highest offset already applied from `source`."""
        mark = self.sources.get(source)
        return mark is not None and offset <= mark.offset

    def skip(self, source: str, offset: int) -> None:
        """Note an offset that carried no usable event (it went to the DLQ)."""
        mark = self.sources.get(source)
        if mark is None:
            mark = self.sources[source] = SourceMark()
        if offset > mark.offset:
            mark.offset = offset
            self.dirty = True

    def observe(self, source: str, offset: int, event_time: int) -> None:
        mark = self.sources.get(source)
        if mark is None:
            mark = self.sources[source] = SourceMark()
        if offset > mark.offset:
            mark.offset = offset
        if event_time > mark.max_time:
            mark.max_time = event_time
        if event_time > self.max_seen:
            self.max_seen = event_time
        self.dirty = True

    def candidate(self, lagging: Mapping[str, bool] | None = None, floor: int = NEVER) -> int:
        """The watermark the sources allow now (before monotonic clamping); at least `floor`
        (an idle partition's arrival-time bound, see the module doc)."""
        return max(self._from_sources(lagging), floor)

    def _from_sources(self, lagging: Mapping[str, bool] | None) -> int:
        """The held-back clock over the sources (`max_seen` is the highest of them all; a
        lagging source not read yet holds at NEVER), minus the lateness."""
        if self.max_seen == NEVER:
            return NEVER
        marks = [(self.max_seen, False)]
        for source, is_lagging in (lagging or {}).items():
            if is_lagging:
                mark = self.sources.get(source)
                marks.append((NEVER if mark is None else mark.max_time, True))
        clock = held_back(marks)
        return NEVER if clock == NEVER else clock - self.lateness_ms

    def advance(self, lagging: Mapping[str, bool] | None = None, floor: int = NEVER) -> bool:
        """Move the watermark forward if the sources allow; True when it moved."""
        cand = self.candidate(lagging, floor)
        if cand > self.watermark:
            self.watermark = cand
            self.dirty = True
            return True
        return False

    # -- byte form ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The clock record of the partition's state (JSON)."""
        return json.dumps(
            {"wm": self.watermark, "max": self.max_seen,
             "src": {k: [m.max_time, m.offset] for k, m in self.sources.items()}},
            separators=(",", ":"),
        ).encode()

    def load(self, data: bytes) -> None:
        """Merge a persisted clock record in (everything in it only moves forward)."""
        obj = json.loads(data)
        self.watermark = max(self.watermark, obj["wm"])
        self.max_seen = max(self.max_seen, obj["max"])
        for k, (t, off) in obj["src"].items():
            mark = self.sources.setdefault(k, SourceMark())
            mark.max_time = max(mark.max_time, t)
            mark.offset = max(mark.offset, off)
