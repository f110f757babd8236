"""The batch being built, and what one commit covers.

`Pending.add` takes one message: its offset (what to commit), then its rows (fast path: the
Avro body into the route's container; otherwise decoded into the tables' buffers; an
invalid message raises, after its offset was noted, so it is committed with its dead
letter). `Pending.cut` hands everything over as a `Batch` and starts the next one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message, TopicPartition

from consumers.sink.routing import Route, Routing, principal_of
from consumers.tables import TableSpec
from schemas.serde import SOE_HEADER_LEN, Serde


@dataclass
class Batch:
    """What one commit covers: fast-path containers, Python-built rows, offsets to commit."""

    fast: list[tuple[Route, bytes, int, list[Message]]]
    slow: list[tuple[TableSpec, list[Any]]]
    offsets: list[TopicPartition]
    counts: dict[str, int]
    #: per (topic, partition): the first and last offset taken (the inserts' dedup token)
    ranges: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)


@dataclass
class SinkStats:
    messages: int = 0
    rows: int = 0
    batches: int = 0
    dead_letters: int = 0
    skipped_on_resume: dict[str, int] = field(default_factory=dict)
    first_message_at: float | None = None  # time.monotonic() of the first message
    last_commit_at: float | None = None  # time.monotonic() of the last commit

    @property
    def busy_seconds(self) -> float:
        """From the first message to the last commit (what throughput is measured over)."""
        if self.first_message_at is None or self.last_commit_at is None:
            return 0.0
        return self.last_commit_at - self.first_message_at


class Pending:
    """Rows, containers and offsets taken since the last cut."""

    def __init__(self, routing: Routing, serde: Serde) -> None:
        self.routing = routing
        self.serde = serde
        self._routes = routing.routes
        self._buffers = routing.buffers
        #: last offset taken per (topic, partition), and the first
        self.offsets: dict[tuple[str, int], int] = {}
        self.first: dict[tuple[str, int], int] = {}
        #: messages taken per topic
        self.counts: dict[str, int] = {}
        self.rows = 0
        self.started = 0.0

    def __bool__(self) -> bool:
        return bool(self.offsets)

    def add(self, msg: Message) -> None:
        """Take one message (raises DecodeError or InvalidMessage for an unusable one)."""
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        self.offsets[(topic, partition)] = offset
        self.first.setdefault((topic, partition), offset)
        counts = self.counts
        counts[topic] = counts.get(topic, 0) + 1
        route = self._routes[topic]
        value = msg.value()
        if route.fast is not None and value is not None and value.startswith(route.fast_header):
            route.fast.add(partition, offset, memoryview(value)[SOE_HEADER_LEN:],
                           principal_of(msg))
            route.fast_msgs.append(msg)
            self.rows += 1
        else:
            self.rows += route.buffer(msg, self.serde, self._buffers)

    def cut(self) -> Batch:
        """Everything taken, as one batch; the next one starts empty."""
        fast = []
        for route in self.routing.routes.values():
            if route.fast is not None and route.fast.count:
                fast.append((route, route.fast.getvalue(), route.fast.count, route.fast_msgs))
                route.fast.clear()
                route.fast_msgs = []
        slow = []
        for spec in self.routing.insert_order:
            buf = self.routing.buffers[spec.table]
            if buf:
                slow.append((spec, buf[:]))
                buf.clear()
        batch = Batch(fast, slow,
                      [TopicPartition(t, p, o + 1) for (t, p), o in self.offsets.items()],
                      dict(self.counts),
                      {tp: (self.first[tp], last) for tp, last in self.offsets.items()})
        self.offsets.clear()
        self.first.clear()
        self.counts.clear()
        self.rows = 0
        self.started = time.monotonic()
        return batch
