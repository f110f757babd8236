"""Sending the pipeline's typed outputs to their topics, through the processor's producer.

One confluent-kafka producer (a `clawstream.kafka.ReliableProducer`, the processor's outbox)
carries every output: a faust send per message costs more than the windowing. Aggregates and
sessions are placed by their key (the agent, murmur2 like faust and the JVM clients); late
events, lost outcomes and plan progress go to the partition of the events they came from.
Fleet partials are not sent here: they ride with the partition's report to the fleet merge
(`streams.event_time.fleet`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, assert_never

from prometheus_client import Counter

from clawstream.kafka.producer import ReliableProducer
from clawstream.settings import Settings
from schemas.headers import LATE_REASON, REASON_CLOCK_SKEW
from schemas.serde import Serde
from schemas.topics import AGGREGATES, LATE, OUTCOMES, SESSIONS
from streams.windowing import (
    FleetPartial,
    LateEvent,
    LostOutcome,
    Output,
    PlanProgress,
    SessionClosed,
    WindowClosed,
)
from streams.windowing.state import WindowState

LATE_EVENTS = Counter("clawstream_worker_late_events_total",
                      "Events later than the watermark for at least one window.", ["type"])
CLOCK_SKEW_EVENTS = Counter(
    "clawstream_clock_skew_events_total",
    "Events refused because their agent's clock ran further ahead of their arrival than "
    "CLAWSTREAM_MAX_CLOCK_SKEW_S (side output, reason clock_skew).", ["agent"])
WINDOWS = Counter("clawstream_worker_windows_emitted_total", "Window aggregates emitted.",
                  ["scope"])
LOST = Counter("clawstream_worker_lost_outcomes_total", "Synthetic lost outcomes emitted.")
SESSIONS_OUT = Counter("clawstream_worker_sessions_emitted_total", "Sessions emitted.")

#: Fleet partials per input partition: {window key: this partition's share}.
Partials = dict[int, dict[str, WindowState]]


class OutputSender:
    """Produces outputs of the pipelines (and the fleet merge's windows) to their topics."""

    def __init__(self, app: Any, settings: Settings, serde: Serde, producer: ReliableProducer,
                 partitions: int) -> None:
        self.serde = serde
        self.producer = producer
        self.aggregates = settings.topic(AGGREGATES)
        self.late = settings.topic(LATE)
        self.outcomes = settings.topic(OUTCOMES)
        self.sessions = settings.topic(SESSIONS)
        self.plan_topic = app.topic(f"{app.conf.id}-plan-progress", partitions=partitions,
                                    internal=True, key_serializer="raw", value_serializer="raw")
        self._plan_topic_declared = False

    async def send(self, outputs: Iterable[tuple[int, Output]]) -> Partials:
        """Produce each (input partition, output); the fleet partials are returned instead."""
        partials: Partials = {}
        produce = self.producer.produce
        for p, o in outputs:
            match o:
                case WindowClosed():
                    WINDOWS.labels("agent").inc()
                    produce(self.aggregates, self.serde.encode("aggregate", o.value),
                            o.key.encode())
                case FleetPartial():
                    partials.setdefault(p, {})[o.key] = o.value
                case LateEvent():
                    self._late(p, o)
                case LostOutcome():
                    LOST.inc()
                    produce(self.outcomes, self.serde.encode("outcome", o.value), o.key.encode(),
                            partition=p)
                case SessionClosed():
                    SESSIONS_OUT.inc()
                    produce(self.sessions, self.serde.encode("session", o.value), o.key.encode())
                case PlanProgress():
                    await self._plan(p, o)
                case _:
                    assert_never(o)
        return partials

    def _late(self, p: int, o: LateEvent) -> None:
        ev = o.value
        if o.headers.get(LATE_REASON) == REASON_CLOCK_SKEW:
            CLOCK_SKEW_EVENTS.labels(ev.agent).inc()
        else:
            LATE_EVENTS.labels(ev.event_type).inc()
        headers = list(ev.headers) + [(k, v.encode()) for k, v in o.headers.items()]
        self.producer.produce(self.late, ev.raw, ev.key, partition=p, headers=headers)

    async def _plan(self, p: int, o: PlanProgress) -> None:
        if not self._plan_topic_declared:  # faust only declares topics agents read
            await self.plan_topic.maybe_declare()
            self._plan_topic_declared = True
        self.producer.produce(self.plan_topic.get_topic_name(), json.dumps(o.value).encode(),
                              o.key.encode(), partition=p)

    def fleet_window(self, record: dict[str, Any],
                     producer: ReliableProducer | None = None) -> None:
        """A fleet-wide window the fleet merge closed (through `producer`, else the outbox)."""
        WINDOWS.labels("fleet").inc()
        (producer or self.producer).produce(self.aggregates,
                                            self.serde.encode("aggregate", record), b"*")
