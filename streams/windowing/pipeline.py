"""The per-partition event-time pipeline (pure): one clock, several operators.

The event-time processor (`streams.event_time`) feeds it decoded events of one partition
and asks it to advance; it answers with typed outputs (`streams.windowing.outputs`: closed
windows, late events, lost outcomes, sessions, ...) and tells which of its state keys
changed, so the processor can persist exactly those to the changelog-backed table. The
benchmark's raw confluent-kafka loop drives the very same class.

Agents' clocks are not trusted. An event carries its arrival time (the broker's timestamp,
never later than the worker's clock) and moves the partition's clock by the earlier of its
event time and its arrival: an agent whose clock runs ahead cannot push the watermark past
what has really arrived, so it cannot make other agents' events late. An event further ahead
of its arrival than `max_skew_ms` is refused: it goes to the side output with reason
`clock_skew`, counts in no window (operators only count it as refused), and is skipped by
the clock. An event behind its arrival is fine (a spool replayed after an outage is exactly
that); if it is behind the watermark, it is late like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from schemas.headers import REASON_CLOCK_SKEW, LateInfo
from streams.windowing.clock import NEVER
from streams.windowing.outputs import LateEvent, LostOutcome, Output
from streams.windowing.watermark import PartitionClock

CLOCK_KEY = "clock"
#: Source name of events the pipeline makes itself (lost outcomes).
SYNTHETIC = "synthetic"


class Event:
    """One decoded event as the operators see it.

    A plain slotted class, not a dataclass: one is built per consumed event, and a frozen
    dataclass's __init__ costs several times more.
    """

    __slots__ = (
        "agent",
        "arrival",
        "attach_time",
        "event_time",
        "event_type",
        "headers",
        "key",
        "offset",
        "producer",
        "raw",
        "record",
        "source",
    )

    def __init__(self, event_type: str, record: dict[str, Any], source: str, offset: int,
                 raw: bytes = b"", key: bytes | None = None,
                 headers: tuple[tuple[str, str | bytes | None], ...] = (),
                 attach_time: int | None = None, arrival: int | None = None) -> None:
        self.event_type = event_type
        self.record = record
        self.source = source  # logical topic name
        self.offset = offset
        self.raw = raw
        self.key = key
        self.headers = headers
        #: For synthetic events: the time of the event they are about (a lost outcome's
        #: action), used by the session operator to place them.
        self.attach_time = attach_time
        #: When it reached Kafka (ms; the broker's clock, capped at the reader's): the bound
        #: on how far its event time may move the clock. None: trusted as it is.
        self.arrival = arrival
        env = record["envelope"]
        self.agent: str = env["agent_id"]
        self.event_time: int = env["event_time"]
        self.producer: str = env["producer"]["name"]

    def moved(self, source: str, offset: int) -> Event:
        """The same event at another position (a synthetic event given its place)."""
        return Event(self.event_type, self.record, source, offset, self.raw, self.key,
                     self.headers, self.attach_time, self.arrival)

    @property
    def envelope(self) -> dict[str, Any]:
        env: dict[str, Any] = self.record["envelope"]
        return env

    def __repr__(self) -> str:
        return (f"Event({self.event_type!r}, agent={self.agent!r}, t={self.event_time}, "
                f"{self.source}@{self.offset})")


class Operator(Protocol):
    """One kind of event-time result over a partition's events (windows, correlation,
    sessions), driven by the pipeline under the partition's watermark."""

    #: Prefix of its state keys in the partition's changelog.
    name: str

    def process(self, ev: Event, watermark: int) -> list[Output]:
        """Apply one event, read while the watermark was `watermark`."""
        ...

    def refuse(self, ev: Event, watermark: int) -> list[Output]:
        """An event refused for its clock (counted, never applied)."""
        ...

    def synthesize(self, next_watermark: int) -> list[Event]:
        """Events it makes itself that are due before the watermark moves to
        `next_watermark` (lost outcomes): the pipeline gives them to the other operators
        under the current watermark, then sends them."""
        ...

    def advance(self, watermark: int, now: int) -> list[Output]:
        """The watermark moved to `watermark` (`now`: the highest event time seen): close
        what it passed."""
        ...

    def take_dirty(self) -> dict[str, bytes | None]:
        """State changed since the last call: {key: bytes, or None when deleted}."""
        ...

    def load(self, key: str, data: bytes) -> None:
        """Restore one persisted key (the inverse of `take_dirty`)."""
        ...

    def on_restored(self, watermark: int) -> None:
        """Every key is loaded and the restored watermark is `watermark`."""
        ...


class PartitionPipeline:
    """Everything event-time for one input partition."""

    def __init__(self, lateness_ms: int, operators: list[Operator], *,
                 max_skew_ms: int | None = None) -> None:
        self.clock = PartitionClock(lateness_ms)
        self.operators = {op.name: op for op in operators}
        #: how far an event's time may be ahead of its arrival (None: no limit)
        self.max_skew_ms = max_skew_ms
        self.refused = 0  # events refused for their clock since this pipeline was made

    @property
    def watermark(self) -> int:
        return self.clock.watermark

    def process(self, ev: Event) -> list[Output]:
        """Apply one event; replays of already-applied offsets are skipped entirely."""
        if self.clock.is_replay(ev.source, ev.offset):
            return []
        wm = self.clock.watermark
        t = ev.event_time
        arrival = ev.arrival
        if arrival is not None and t > arrival:
            if self.max_skew_ms is not None and t - arrival > self.max_skew_ms:
                return self._refuse(ev, wm)
            t = arrival  # ahead of its arrival: the clock moves only as far as that
        out: list[Output] = []
        for op in self.operators.values():
            out.extend(op.process(ev, wm))
        self.clock.observe(ev.source, ev.offset, t)
        return out

    def _refuse(self, ev: Event, wm: int) -> list[Output]:
        """The agent's clock is too far ahead: side output, counted, clock untouched."""
        self.clock.skip(ev.source, ev.offset)
        self.refused += 1
        info = LateInfo(REASON_CLOCK_SKEW, ev.event_type, ev.envelope["event_id"],
                        ev.event_time, wm, ev.source, arrival=ev.arrival)
        out: list[Output] = [LateEvent(ev.agent, ev, info.headers())]
        for op in self.operators.values():
            out.extend(op.refuse(ev, wm))
        return out

    def advance(self, lagging: Mapping[str, bool] | None = None,
                floor: int = NEVER) -> list[Output]:
        """Advance the watermark as far as the sources allow (at least to `floor`, the bound
        an idle partition's arrival time gives, see `PartitionClock`) and close what it
        passes.

        Synthetic events (lost outcomes) due before the new watermark are first counted
        under the old one, so they land in still-open windows and sessions.
        """
        nxt = self.clock.candidate(lagging, floor)
        if nxt <= self.clock.watermark:
            return []
        out: list[Output] = []
        wm = self.clock.watermark
        for op in self.operators.values():
            for made in op.synthesize(nxt):
                mark = self.clock.sources.get(SYNTHETIC)
                ev = made.moved(SYNTHETIC, (mark.offset if mark else -1) + 1)
                for other in self.operators.values():
                    if other is not op:
                        out.extend(other.process(ev, wm))
                self.clock.observe(SYNTHETIC, ev.offset, min(ev.event_time, self.clock.max_seen))
                out.append(LostOutcome(ev.agent, ev.record))
        self.clock.advance(lagging, floor)
        for op in self.operators.values():
            out.extend(op.advance(self.clock.watermark, self.clock.max_seen))
        return out

    def take_dirty(self) -> dict[str, bytes | None]:
        """Changed state as {"<operator>/<key>": bytes or None (deleted)}; clock last."""
        out: dict[str, bytes | None] = {}
        for name, op in self.operators.items():
            for k, v in op.take_dirty().items():
                out[f"{name}/{k}"] = v
        if self.clock.dirty:
            out[CLOCK_KEY] = self.clock.to_bytes()
            self.clock.dirty = False
        return out

    def restore(self, items: Iterable[tuple[str, bytes | None]]) -> int:
        """Restore persisted state (what take_dirty returned, latest value per key); the
        clock first, so operators learn the watermark the state was written under."""
        present = [(k, v) for k, v in items if v is not None]
        for k, v in present:
            if k == CLOCK_KEY:
                self.clock.load(v)
        for k, v in present:
            if k != CLOCK_KEY:
                self.load(k, v)
        for op in self.operators.values():
            op.on_restored(self.clock.watermark)
        return len(present)

    def load(self, key: str, data: bytes) -> None:
        """Restore one persisted key (the inverse of take_dirty); prefer `restore`."""
        if key == CLOCK_KEY:
            self.clock.load(data)
            return
        name, _, sub = key.partition("/")
        op = self.operators.get(name)
        if op is not None:
            op.load(sub, data)
