"""Delivery failures are never silent: each is counted (`stats()`, Prometheus), logged, given
to the `on_delivery_error` hook, and either retried (the event is taken back in front of the
spool) or, when Kafka will never accept it, kept on disk in the agent's rejected spool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from producers.sdk.accounting import DeliveryCounts
from producers.sdk.transport import PERMANENT_ERRORS
from producers.spool import Spool

log = logging.getLogger("producers.sdk")


@dataclass(frozen=True)
class DeliveryFailure:
    """What the `on_delivery_error` hook receives."""

    agent_id: str
    event_type: str
    topic: str
    error: KafkaError
    value: bytes | None
    respooled: bool  # True: kept and retried later; False: rejected for good


class DeliveryFailures:
    """One agent's failed deliveries. `respool(topic, key, value, why)` takes an event back
    for a later retry (called holding `lock`, the client's)."""

    def __init__(self, agent_id: str, key: bytes, counts: DeliveryCounts, lock: threading.RLock,
                 rejected: Path, hook: Callable[[DeliveryFailure], None] | None, *,
                 respool: Callable[[str, bytes | None, bytes, str], None]) -> None:
        self.agent_id = agent_id
        self.key = key
        #: where events Kafka will never accept are kept (a spool of their own)
        self.rejected = rejected
        self.hook = hook
        self._counts = counts
        self._lock = lock
        self._respool = respool

    def direct_failed(self, err: KafkaError, msg: Any) -> None:
        """librdkafka reports a direct event failed (transport thread): rejected for good,
        or taken back for a retry."""
        topic, value = msg.topic(), msg.value()
        counts = self._counts
        counts.latency_probe = None  # its "everything before it settled" may now be a failure
        if err.code() in PERMANENT_ERRORS:
            with self._lock:
                counts.direct_lost[topic] += 1
            self.reject(topic, err, value)
            return
        with self._lock:
            counts.direct_lost[topic] += 1
            self._respool(topic, msg.key(), value, f"delivery failed ({err.str()})")
            counts.respooled[topic] = counts.respooled.get(topic, 0) + 1
        self._notify(topic, err, value, respooled=True)

    def reject(self, topic: str, err: KafkaError, value: bytes | None) -> None:
        """A failure retrying cannot fix: counted, logged, hooked, and kept on disk."""
        failed = self._counts.failed
        failed[topic] = failed.get(topic, 0) + 1
        log.error("agent %s: %s event rejected by kafka: %s (kept in %s)", self.agent_id,
                  self._counts.topic_type.get(topic, topic), err.str(), self.rejected)
        if value is not None:
            try:
                with Spool(self.rejected, fsync="never") as dead:
                    dead.append(topic, self.key, value)
            except Exception:
                log.exception("could not keep the rejected event")
        self._notify(topic, err, value, respooled=False)

    def _notify(self, topic: str, err: KafkaError, value: bytes | None, *, respooled: bool) -> None:
        if self.hook is None:
            return
        failure = DeliveryFailure(self.agent_id, self._counts.topic_type.get(topic, topic),
                                  topic, err, value, respooled)
        try:
            self.hook(failure)
        except Exception:
            log.exception("on_delivery_error hook raised")
