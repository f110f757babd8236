"""Outages: an agent's events go to its disk spool while Kafka cannot take them, and are
replayed, in order, once it can.

- While *spooling* (`OutageSpool.active`), every new event is appended to the spool
  (`producers.spool`), so order is kept while the spool is not empty.
- Events librdkafka gives back (timed out, purged on close) are put *in front of* the spool,
  sorted by seq: they are older than anything spooled.
- Once the broker answers and librdkafka's own queue of direct events has drained, the
  transport thread replays the spool in batches, acknowledging (deleting) a batch only after
  every record in it was delivered, and switches back to direct sends when the spool is
  empty. Replays can duplicate (at-least-once); consumers dedupe by event_id.

What happens to a failed delivery (retried from here, or rejected) is `producers.sdk.failures`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from producers.sdk.accounting import DeliveryCounts
from producers.sdk.encoding import envelope_seq
from producers.sdk.transport import PERMANENT_ERRORS, Transport
from producers.spool import Spool

log = logging.getLogger("producers.sdk")

#: what is done with an event Kafka will never accept: (topic, error, value)
Reject = Callable[[str, KafkaError, bytes | None], None]


class ReplayBatch:
    """Delivery reports of one replayed batch; permanent rejections count as handled.

    With `producer` given (counting mode: only failures are reported, and the producer holds
    nothing but this batch while it is out), the batch is settled once the producer's queue
    is empty; otherwise once every event was reported."""

    __slots__ = ("error", "failed", "producer", "reject", "unreported")

    def __init__(self, n: int, reject: Reject, producer: Producer | None = None) -> None:
        self.reject = reject
        self.producer = producer
        self.unreported = n
        self.failed = 0
        self.error: KafkaError | None = None

    @property
    def pending(self) -> int:
        """Events of the batch not settled yet (counting mode: what the producer still holds,
        at least the unreported ones)."""
        if self.producer is not None:
            return len(self.producer)
        return self.unreported

    def settled(self) -> bool:
        """Every event of the batch is settled (nothing pending)."""
        return self.pending <= 0

    def report(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and err.code() in PERMANENT_ERRORS:
            self.reject(msg.topic(), err, msg.value())
        elif err is not None:
            self.failed += 1
            self.error = err
        self.unreported -= 1

    def not_produced(self) -> None:
        """An event produce() refused (it was rejected; nothing will report it)."""
        self.unreported -= 1


class OutageSpool:
    """One agent's spool, the events taken back from librdkafka, and their replay.

    `lock` is the client's: appending, taking back and acknowledging happen under it. Replay
    runs on the transport thread and asks `direct_in_flight()` (events librdkafka still holds
    go first) and `settle()` (the counts, before a batch changes what the queue holds)."""

    def __init__(self, agent_id: str, key: bytes, spool: Spool, lock: threading.RLock,
                 transport: Transport, counts: DeliveryCounts, *, reject: Reject,
                 direct_in_flight: Callable[[], int], settle: Callable[[], None]) -> None:
        self.agent_id = agent_id
        self.key = key
        self.spool = spool
        self._lock = lock
        self._transport = transport
        self._counts = counts
        self._reject = reject
        self._direct_in_flight = direct_in_flight
        self._settle = settle
        #: new events go to the spool (True while it holds anything)
        self.active = not spool.empty
        #: the replayed batch out in librdkafka (its reports go to it), or None
        self.batch: ReplayBatch | None = None
        self._front: list[tuple[str, bytes | None, bytes]] = []  # taken back, not spooled yet
        self._backoff_until = 0.0
        self._failures = 0
        if self.active:
            log.info("agent %s: %d spooled events from an earlier run will be replayed",
                     agent_id, spool.depth_messages)

    def enter(self, why: str) -> None:
        """Send new events to the spool from now on."""
        with self._lock:
            if not self.active:
                log.warning("agent %s: %s; spooling to %s", self.agent_id, why, self.spool.dir)
                self.active = True

    def append(self, topic: str, value: bytes) -> None:
        """Spool one new event (caller holds the lock). Raises SpoolFullError at the cap."""
        self.spool.append(topic, self.key, value)

    def take_back(self, topic: str, key: bytes | None, value: bytes, why: str) -> None:
        """An event librdkafka gave back (`why`): it goes in front of the spool, and new
        events to the spool (caller holds the lock)."""
        self._front.append((topic, key, value))
        self.enter(why)

    @property
    def taken_back(self) -> int:
        return len(self._front)

    def flush_front(self) -> None:
        """Write the events taken back in front of the spool, in seq order. Caller holds the
        lock and knows no direct event is in flight."""
        if self._front:
            records = sorted(self._front, key=lambda r: envelope_seq(r[2]))
            self._front = []
            n = self.spool.prepend(records)
            log.info("agent %s: %d undelivered events put back in front of the spool",
                     self.agent_id, n)

    # -- replay (transport thread) ------------------------------------------------------------
    def replay(self, budget_s: float = 0.5) -> None:
        if time.monotonic() < self._backoff_until:
            return
        deadline = time.monotonic() + budget_s
        transport = self._transport
        producer = transport.producer
        while time.monotonic() < deadline and transport.broker_up:
            if self.batch is not None:
                if self.batch.pending > 0:
                    return  # an abandoned batch is still resolving inside librdkafka
                self.batch = None
            with self._lock:
                if self._direct_in_flight() > 0:
                    return  # librdkafka still owns older events; they go first
                self._settle()  # exact now; the batch changes what len() counts
                self.flush_front()
                records = self.spool.read_batch(max_records=20_000, max_bytes=16 << 20)
                if records is None:
                    if self.active:
                        self.active = False
                        self._counts.publish_spool_depth(self.spool)
                        log.info("agent %s: spool drained, back to direct sends", self.agent_id)
                    return
            batch = ReplayBatch(len(records), self._reject, producer=(
                producer if transport.counts_deliveries else None))
            self.batch = batch
            for topic, key, value in records.records:
                while True:
                    try:
                        producer.produce(topic, value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                    except KafkaException as exc:  # e.g. the topic no longer exists
                        self._reject(topic, exc.args[0], value)
                        batch.not_produced()
                        break
            transport.poll_until(batch.settled, transport.message_timeout_s + 5)
            if batch.pending > 0 or batch.failed:
                self._failures += 1
                wait = min(10.0, 0.5 * 2**self._failures)
                self._backoff_until = time.monotonic() + wait
                log.warning("agent %s: replay of %d spooled events incomplete (%d failed: %s); "
                            "retrying in %.1fs", self.agent_id, len(records), batch.failed,
                            batch.error.str() if batch.error else "timeout", wait)
                if batch.pending <= 0:
                    self.batch = None
                return
            self.batch = None
            self._failures = 0
            replayed = self._counts.replayed
            for topic, _key, _value in records.records:  # counted before pending() drops
                replayed[topic] = replayed.get(topic, 0) + 1
            with self._lock:
                self.spool.ack(records)

    def sync(self) -> None:
        """fsync the spool if its policy is "interval" (once a second)."""
        if self.spool.fsync == "interval":
            try:
                self.spool.sync()
            except OSError:
                log.exception("spool fsync failed")

    def close(self) -> None:
        self.spool.close()
