"""Delivery accounting of the SDK: what became of each agent's events, per topic, and its
export as Prometheus metrics (``clawstream_sdk_*``).

Delivery tracking: a client with its own producer (the default) asks librdkafka to report
only failures (``delivery.report.only.error``) and counts the rest: whatever left the
producer's queue (``len(producer)``) without a failure report was acknowledged. That saves a
Python callback per event, which costs about as much CPU as the produce() call itself. A
producer shared by several clients (a `Transport` passed in, e.g. the fleet) keeps one report
per event, because the queue length cannot say whose events are still in it.
"""

from __future__ import annotations

import time
from collections.abc import Sized
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from producers.settings import SdkSettings
from producers.spool import Spool

EVENTS_PRODUCED = Counter(
    "clawstream_sdk_events_produced_total", "Events acknowledged by Kafka.", ["type"]
)
EVENTS_SPOOLED = Counter(
    "clawstream_sdk_events_spooled_total", "Events written to the disk spool.", ["type"]
)
EVENTS_REPLAYED = Counter(
    "clawstream_sdk_events_replayed_total", "Spooled events delivered on replay.", ["type"]
)
EVENTS_FAILED = Counter(
    "clawstream_sdk_events_failed_total",
    "Delivery failures, by type and fate (respooled or rejected).",
    ["type", "fate"],
)
SPOOL_DEPTH_BYTES = Gauge("clawstream_sdk_spool_depth_bytes", "Bytes waiting in spools.", ["agent"])
SPOOL_DEPTH_MESSAGES = Gauge(
    "clawstream_sdk_spool_depth_messages", "Events waiting in spools.", ["agent"]
)
DELIVERY_LATENCY = Histogram(
    "clawstream_sdk_delivery_latency_seconds",
    "produce() to broker acknowledgement (sampled 1 in 64).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_monotonic = time.monotonic


class DeliveryCounts:
    """One agent's counts, by topic. Each is written by one thread only: `spooled`,
    `diverted`, `direct_sent` and `latency_probe` by the emitting threads (under the client's
    lock), the others by the transport thread.

    - emitted (kept by the encoder's types) = sent directly + diverted
    - diverted: taken by emit but not handed to librdkafka (spooled, or rejected by produce())
    - direct_lost: handed to librdkafka and reported failed (respooled or rejected)
    - delivered: direct events acknowledged; replayed: spooled events acknowledged
    """

    def __init__(self, agent_id: str, *, counting: bool) -> None:
        self.agent_id = agent_id
        #: True: the producer reports failures only; deliveries are counted (see module doc)
        self.counting = counting
        self.spooled: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.replayed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.respooled: dict[str, int] = {}
        self.diverted: dict[str, int] = {}
        self.direct_lost: dict[str, int] = {}
        self.direct_sent = 0  # events handed to librdkafka by emit
        self.direct_done = 0  # ... and reported back (per-event mode only)
        #: (monotonic time, direct_sent) of a sampled send (counting mode's latency metric)
        self.latency_probe: tuple[float, int] | None = None
        self.topic_type: dict[str, str] = {}
        self._exported: dict[str, dict[str, int]] = {}

    def track(self, topic: str, event_type: str) -> None:
        """Start counting `topic` (the first event of a type)."""
        self.topic_type[topic] = event_type
        for d in (self.spooled, self.delivered, self.replayed, self.failed, self.respooled,
                  self.diverted, self.direct_lost):
            d.setdefault(topic, 0)

    def settle(self, emitted: dict[str, int], queued: int) -> None:
        """Counting mode: `delivered` per topic from what was sent directly minus the failures
        minus what the producer still holds (`queued`). Exact when the producer is empty; a
        lower bound in between (the queue length is not split by topic)."""
        for topic, taken in emitted.items():
            low = taken - self.diverted[topic] - self.direct_lost[topic] - queued
            if low > self.delivered[topic]:
                self.delivered[topic] = low

    def observe_latency(self, queue: Sized) -> None:
        """Counting mode: once everything sent up to the probed event left the producer's
        `queue`, record its produce-to-acknowledgement time."""
        probe = self.latency_probe
        if probe is None:
            return
        sent = self.direct_sent  # read before the queue: never too early
        if sent - len(queue) >= probe[1]:
            DELIVERY_LATENCY.observe(_monotonic() - probe[0])
            if self.latency_probe is probe:
                self.latency_probe = None

    def by_type(self, counts: dict[str, int]) -> dict[str, int]:
        return {self.topic_type.get(t, t): n for t, n in counts.items() if n}

    def stats(self, emitted: dict[str, int]) -> dict[str, Any]:
        """The counts by event type (the client's `stats()` adds what is waiting)."""
        return {
            "emitted": self.by_type(emitted),
            "delivered": self.by_type(self.delivered),
            "spooled": self.by_type(self.spooled),
            "replayed": self.by_type(self.replayed),
            "respooled": self.by_type(self.respooled),
            "failed": self.by_type(self.failed),
        }

    def publish_spool_depth(self, spool: Spool) -> None:
        SPOOL_DEPTH_BYTES.labels(self.agent_id).set(spool.depth_bytes)
        SPOOL_DEPTH_MESSAGES.labels(self.agent_id).set(spool.depth_messages)

    def export(self, spool: Spool) -> None:
        """Add what changed since the last export to the Prometheus metrics."""
        for name, counts, metric in (
            ("delivered", self.delivered, EVENTS_PRODUCED),
            ("spooled", self.spooled, EVENTS_SPOOLED),
            ("replayed", self.replayed, EVENTS_REPLAYED),
        ):
            last = self._exported.setdefault(name, {})
            for topic, n in list(counts.items()):
                if n != last.get(topic, 0):
                    metric.labels(self.topic_type.get(topic, topic)).inc(n - last.get(topic, 0))
                    last[topic] = n
        for name, counts, fate in (("failed", self.failed, "rejected"),
                                   ("respooled", self.respooled, "respooled")):
            last = self._exported.setdefault(name, {})
            for topic, n in list(counts.items()):
                if n != last.get(topic, 0):
                    EVENTS_FAILED.labels(self.topic_type.get(topic, topic), fate).inc(
                        n - last.get(topic, 0))
                    last[topic] = n
        self.publish_spool_depth(spool)


def serve_sdk_metrics(settings: SdkSettings) -> bool:
    """Expose this process's SDK metrics on `settings.sdk_metrics_port`."""
    from clawstream.metrics import serve_metrics

    return serve_metrics(settings.sdk_metrics_port, settings.metrics_host)
