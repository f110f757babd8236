"""The consumer loop: a consumer group read in batches, committing only what is durable.

The event-time processor reads the event topics with it (instead of faust's consumer: faust
fetches with aiokafka in a thread of its own, which parses every record in Python, holding the
GIL, then hands messages over one at a time through its stream machinery; profiled on the
windows worker, that took a fifth of the main thread's time and left the second core idle.
librdkafka fetches, decompresses and parses in its own C threads, and `consume()` hands a
whole batch over).

The usual semantics of a Kafka consumer that commits only what it has made durable:
- partitions are assigned by the range assignor by default, so partition p of every
  subscribed topic goes to the same member (topics co-partitioned by agent id stay together)
  and more members share the partitions;
- the owner gets every batch (`on_batch`, an empty list when input pauses, so it can flush),
  and calls `commit` with offsets whose state and outputs are durable;
- before partitions move to another worker, `on_revoke` makes durable what the owner holds
  and returns the offsets to commit, which are committed before the partitions go; after a
  lost assignment (session timeout) `on_lost` drops what the owner held, uncommitted;
- if the owner's batch handling raises, nothing more is made durable or committed: the
  consumer closes without calling back, and the events are read again after a restart;
- after a pause longer than the session timeout (the process was frozen, swapped out, or
  starved), the group may have given the partitions to another worker while the owner still
  holds them: nothing is handed over (so nothing is made durable by a zombie) until a
  synchronous commit of the offsets already committed proves the membership still valid, or
  the lost assignment has been called back. What was read meanwhile is read again.
Consumer calls run on one thread of their own, so the event loop never waits on the network
and calls never overlap (librdkafka runs rebalance callbacks inside `consume`).

Whether a partition can be read at all is known from librdkafka's statistics (every
`STATS_INTERVAL_MS`): its fetcher is active and its leader broker is up. A partition that
cannot be read (its leader away, its assignment being set up) must hold the event-time
clock like one with a backlog: what it holds back is simply not visible yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clawstream.kafka.config import SESSION_TIMEOUT_S, KafkaSettings, Role, client_config

log = logging.getLogger("clawstream.kafka.consumer")

Offsets = list[TopicPartition]
#: Messages per batch at most.
BATCH = 10_000
#: How long to wait for a first message before handing an empty batch over.
POLL_S = 0.5
#: How long a rebalance callback waits for the owner to make its state durable.
REVOKE_TIMEOUT_S = 120.0
#: librdkafka statistics (fetch state and leader per partition) this often.
STATS_INTERVAL_MS = 1000
#: Statistics older than this say nothing about a partition being readable now.
STATS_STALE_S = 3.0


class BatchConsumer:
    """A confluent-kafka consumer of `topics` in `group`, acting for `role`."""

    def __init__(self, settings: KafkaSettings, role: Role, group: str, topics: list[str], *,
                 assignment: str = "range") -> None:
        self.settings = settings
        self.role = role
        self.topics = topics
        self.group = group
        self.assignment = assignment
        self.consumer: Consumer | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{group}-read")
        self._stopping = False
        self._failed = False
        self._stopped: asyncio.Event | None = None
        #: latest offsets handed to `commit`, per (topic, partition)
        self._committed: dict[tuple[str, int], int] = {}
        #: partitions assigned to us, as the rebalance callbacks said
        self._owned: set[tuple[str, int]] = set()
        self._last_read = time.monotonic()
        self._verify = False  # a long pause: prove membership before handing anything over
        #: (topic, partition) readable as of the latest statistics, and when they came
        self._readable: set[tuple[str, int]] = set()
        self._stats_at = 0.0

    def _config(self) -> dict[str, Any]:
        return client_config(self.settings, self.role, "consumer", {
            "group.id": self.group,
            "client.id": self.group,
            "partition.assignment.strategy": self.assignment,
            "on_commit": _log_commit_errors,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
        })

    def _on_stats(self, data: str) -> None:
        """Note which partitions librdkafka is fetching from a broker that is up."""
        try:
            self._readable = readable_partitions(json.loads(data))
            self._stats_at = time.monotonic()
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable librdkafka statistics: %s", exc)

    def readable(self, topic: str, partition: int) -> bool:
        """Is the partition being fetched from a leader that is up (recent statistics)?"""
        return (time.monotonic() - self._stats_at < STATS_STALE_S
                and (topic, partition) in self._readable)

    async def run(self, on_batch: Callable[[list[Message]], Awaitable[None]],
                  on_revoke: Callable[[list[TopicPartition]], Awaitable[Offsets]],
                  on_lost: Callable[[list[TopicPartition]], Awaitable[None]]) -> None:
        """Consume until `stop`; the owner's callbacks run on the event loop."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._last_read = time.monotonic()
        consumer = self.consumer = Consumer(self._config())

        def revoked(c: Consumer, partitions: list[TopicPartition]) -> None:
            if self._failed:  # the owner's state is suspect: nothing is made durable
                return
            offsets = asyncio.run_coroutine_threadsafe(on_revoke(partitions), loop).result(
                REVOKE_TIMEOUT_S)
            if offsets:
                c.commit(offsets=offsets, asynchronous=False)
            self._forget(partitions)

        def lost(_c: Consumer, partitions: list[TopicPartition]) -> None:
            self._forget(partitions)
            if self._failed:
                return
            log.warning("assignment of %d partitions lost (the group moved them on "
                        "after a session timeout): what was held for them is dropped, "
                        "uncommitted", len(partitions))
            asyncio.run_coroutine_threadsafe(on_lost(partitions), loop).result(
                REVOKE_TIMEOUT_S)

        def assigned(_c: Consumer, partitions: list[TopicPartition]) -> None:
            self._owned |= {(tp.topic, tp.partition) for tp in partitions}
            log.info("assigned %d partitions", len(partitions))

        consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked, on_lost=lost)
        try:
            while not self._stopping:
                batch = await loop.run_in_executor(self._thread, self._read, consumer)
                if batch is not None:
                    await on_batch(batch)
        except BaseException:
            self._failed = True  # closing below must not call back into the owner
            raise
        finally:
            # close() leaves the group, revoking (so persisting and committing) first
            await loop.run_in_executor(self._thread, consumer.close)
            self.consumer = None
            self._stopped.set()

    async def stop(self, timeout: float = 60.0) -> None:
        """Stop consuming: what is held is made durable and committed on the way out."""
        self._stopping = True
        if self._stopped is not None:
            await asyncio.wait_for(self._stopped.wait(), timeout)

    def commit(self, offsets: Offsets) -> None:
        """Commit in the background: a lost commit only means events read again, which the
        restored state recognises by offset."""
        if self.consumer is not None and offsets:
            for tp in offsets:
                self._committed[(tp.topic, tp.partition)] = tp.offset
            self.consumer.commit(offsets=offsets, asynchronous=True)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
            self._owned.discard((tp.topic, tp.partition))

    def owned_partitions(self) -> set[int]:
        """Partition numbers assigned to us (of any of the co-partitioned topics)."""
        return {p for _t, p in self._owned}

    def in_doubt(self) -> bool:
        """May the partitions have moved on without us? True after no read for longer than
        the session timeout, until a read proves the membership: make nothing durable then."""
        return self._verify or time.monotonic() - self._last_read > SESSION_TIMEOUT_S

    def _read(self, consumer: Consumer) -> list[Message] | None:
        """The next batch of usable messages of partitions we own (consumer thread); None
        while membership is in doubt."""
        batch = _next_batch(consumer)
        paused = time.monotonic() - self._last_read
        if paused > SESSION_TIMEOUT_S:  # (a pause in the owner's handling or in this read)
            log.warning("no read of the topics for %.1f s (longer than the session "
                        "timeout): checking that the partitions are still ours", paused)
            self._verify = True
        out: list[Message] | None = None
        if self._verify and not self._still_member(consumer):
            _rewind(consumer, batch)
        else:
            self._verify = False
            # (messages fetched before a rebalance can still come out after its callback)
            out = [m for m in batch
                   if _usable(m) and (m.topic(), m.partition()) in self._owned]
        self._last_read = time.monotonic()
        return out

    def _still_member(self, consumer: Consumer) -> bool:
        """Does the group still count this consumer as the owner of its partitions? A
        commit carries the member id and generation, so the broker refuses it otherwise;
        committing the offsets already committed changes nothing."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._committed.items()]
        if not offsets and self._owned:  # none by us yet: what the group has
            try:
                offsets = [tp for tp in consumer.committed(
                    [TopicPartition(t, p) for t, p in self._owned], timeout=10)
                    if tp.offset >= 0]
            except KafkaException:
                return False
        if not offsets:
            return True  # nothing owned, or nothing ever committed: nothing to prove it with
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("partitions may have moved on (%s): nothing handed over until "
                        "the group answers", exc.args[0])
            return False
        log.info("partitions still ours after the pause")
        return True

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end offset as of the latest fetch (None before one came back)."""
        if self.consumer is None:
            return None
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                         cached=True)
        return high if high >= 0 else None


def readable_partitions(stats: dict[str, Any]) -> set[tuple[str, int]]:
    """(topic, partition) whose fetcher is active with a leader broker that is up, from
    librdkafka's statistics JSON."""
    up = {b["nodeid"] for b in stats.get("brokers", {}).values()
          if b.get("state") == "UP" and b.get("nodeid", -1) >= 0}
    out = set()
    for topic, t in stats.get("topics", {}).items():
        for pid, part in t.get("partitions", {}).items():
            p = int(pid)
            if p >= 0 and part.get("fetch_state") == "active" and part.get("leader") in up:
                out.add((topic, p))
    return out


def _next_batch(consumer: Consumer) -> list[Message]:
    """What is there, as soon as there is something (up to `POLL_S` for the first message):
    `consume(n, timeout)` alone waits for n messages or the timeout, so at live rates every
    batch would wait the full timeout."""
    first = consumer.poll(POLL_S)
    if first is None:
        return []
    return [first, *consumer.consume(BATCH - 1, 0)]


def _rewind(consumer: Consumer, batch: list[Message]) -> None:
    """Seek back to the first message of the batch per partition, so nothing read is
    skipped if the partitions stay (partitions already gone refuse the seek)."""
    first: dict[tuple[str, int], int] = {}
    for m in batch:
        if m.error() is None:
            first.setdefault((m.topic(), m.partition()), m.offset())
    for (topic, partition), offset in first.items():
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, partition, offset))


def _usable(m: Message) -> bool:
    err = m.error()
    if err is None:
        return True
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("event topic consumer: %s", err)
    return False


def _log_commit_errors(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if err is not None:
        log.warning("committing offsets failed (they are read again after a restart): %s",
                    err)
