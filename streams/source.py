"""The event-time processor's input: the event topics, read by a consumer group of its own.

Why not faust's consumer: faust fetches with aiokafka in a thread of its own, which parses
every record in Python (holding the GIL), then hands messages over one at a time through its
stream machinery. Profiled on the windows worker, that took a fifth of the main thread's time
and left the second core idle. librdkafka fetches, decompresses and parses in its own C
threads, and `consume()` hands a whole batch over.

The usual semantics of a Kafka consumer that commits only what it has made durable:
- the group is `<worker app id>-windows`; partitions are assigned by the range assignor, so
  partition p of every event topic goes to the same worker (the topics are co-partitioned by
  agent id) and more workers share the partitions;
- the owner gets every batch (`on_batch`, an empty list when input pauses, so it can flush),
  and calls `commit` with offsets whose state and outputs are durable;
- before partitions move to another worker, `on_revoke` makes durable what the owner holds
  and returns the offsets to commit, which are committed before the partitions go; after a
  lost assignment (session timeout) `on_lost` drops what the owner held, uncommitted;
- if the owner's batch handling raises, nothing more is made durable or committed: the
  consumer closes without calling back, and the events are read again after a restart.
Consumer calls run on one thread of their own, so the event loop never waits on the network
and calls never overlap (librdkafka runs rebalance callbacks inside `consume`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from clawstream.settings import Settings
from streams.app import HEARTBEAT_INTERVAL_S, SESSION_TIMEOUT_S

log = logging.getLogger("clawstream.streams.source")

Offsets = list[TopicPartition]
#: Messages per batch at most.
BATCH = 10_000
#: How long to wait for a first message before handing an empty batch over.
POLL_S = 0.5
#: How long a rebalance callback waits for the owner to make its state durable.
REVOKE_TIMEOUT_S = 120.0


def input_group(settings: Settings) -> str:
    """The consumer group of the event-time processor (lag dashboards and tests read it)."""
    return f"{settings.worker_app_id}-windows"


class EventSource:
    """A confluent-kafka consumer of `topics` in the event-time processor's group."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.group = input_group(settings)
        self.consumer: Consumer | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-source")
        self._stopping = False
        self._failed = False
        self._stopped: asyncio.Event | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "group.id": self.group,
            "client.id": self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # partition p of every topic to the same member: the topics are co-partitioned
            "partition.assignment.strategy": "range",
            "session.timeout.ms": round(SESSION_TIMEOUT_S * 1000),
            "heartbeat.interval.ms": round(HEARTBEAT_INTERVAL_S * 1000),
            "on_commit": _log_commit_errors,
        }

    async def run(self, on_batch: Callable[[list[Message]], Awaitable[None]],
                  on_revoke: Callable[[list[TopicPartition]], Awaitable[Offsets]],
                  on_lost: Callable[[list[TopicPartition]], Awaitable[None]]) -> None:
        """Consume until `stop`; the owner's callbacks run on the event loop."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        consumer = self.consumer = Consumer(self._config())

        def revoked(c: Consumer, partitions: list[TopicPartition]) -> None:
            if self._failed:  # the owner's state is suspect: nothing is made durable
                return
            offsets = asyncio.run_coroutine_threadsafe(on_revoke(partitions), loop).result(
                REVOKE_TIMEOUT_S)
            if offsets:
                c.commit(offsets=offsets, asynchronous=False)

        def lost(_c: Consumer, partitions: list[TopicPartition]) -> None:
            if self._failed:
                return
            asyncio.run_coroutine_threadsafe(on_lost(partitions), loop).result(
                REVOKE_TIMEOUT_S)

        def assigned(_c: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("assigned %d event partitions", len(partitions))

        consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked, on_lost=lost)
        try:
            while not self._stopping:
                batch = await loop.run_in_executor(self._thread, _next_batch, consumer)
                await on_batch([m for m in batch if _usable(m)])
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
            self.consumer.commit(offsets=offsets, asynchronous=True)

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end offset as of the latest fetch (None before one came back)."""
        if self.consumer is None:
            return None
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                         cached=True)
        return high if high >= 0 else None


def _next_batch(consumer: Consumer) -> list[Message]:
    """What is there, as soon as there is something (up to `POLL_S` for the first message):
    `consume(n, timeout)` alone waits for n messages or the timeout, so at live rates every
    batch would wait the full timeout."""
    first = consumer.poll(POLL_S)
    if first is None:
        return []
    return [first, *consumer.consume(BATCH - 1, 0)]


def _usable(m: Message) -> bool:
    err = m.error()
    if err is None:
        return True
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("event topic consumer: %s", err)
    return False


def _log_commit_errors(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if err is not None:
        log.warning("committing event offsets failed (they are read again after a restart, "
                    "and skipped as already applied): %s", err)
