"""The consumer loop: a consumer group read in batches, committing only what is durable.

One loop for every reader of clawstream: the event-time processor (asyncio: `BatchConsumer`),
the sink and the alert notifier (synchronous: `GroupConsumer.run`). `GroupConsumer` is the
synchronous core both drive: the librdkafka consumer, its rebalance callbacks, batches,
commits and the proof of membership; `BatchConsumer` runs the same core on a thread of its own
and calls the owner back on the event loop.

librdkafka fetches, decompresses and parses in its own C threads, and `consume()` hands a
whole batch over (faust's consumer parses every record in Python, holding the GIL, then hands
messages over one at a time: profiled on the windows worker, that took a fifth of the main
thread's time).

(Why not sentry-arroyo: see `clawstream.kafka`.)

The usual semantics of a Kafka consumer that commits only what it has made durable:
- partitions are assigned by the range assignor by default, so partition p of every
  subscribed topic goes to the same member (topics co-partitioned by agent id stay together)
  and more members share the partitions;
- on assignment, `on_assign` may return the positions to start from (the sink seeks past
  what ClickHouse already holds);
- the owner gets every batch (`on_batch`, an empty list when input pauses, so it can flush),
  and calls `commit` with offsets whose state and outputs are durable;
- before partitions move to another worker, `on_revoke` makes durable what the owner holds
  and returns the offsets to commit, which are committed before the partitions go; after a
  lost assignment (session timeout) `on_lost` drops what the owner held, uncommitted;
- if the owner's batch handling raises, nothing more is made durable or committed: the
  consumer closes without calling back, and the events are read again after a restart;
- after a pause longer than the session timeout, nothing is handed over until the group
  confirms the membership (`clawstream.kafka.membership`); what was read meanwhile is read
  again.
Rebalance callbacks run inside `read` (librdkafka calls them from `poll`), on the thread
that reads.

Whether a partition can be read at all is known from librdkafka's statistics (every
`STATS_INTERVAL_MS`, `clawstream.kafka.readable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clawstream.kafka.config import KafkaSettings, Role, client_config
from clawstream.kafka.membership import Membership
from clawstream.kafka.readable import Readability

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

OnRevoke = Callable[[list[TopicPartition]], Offsets]
OnLost = Callable[[list[TopicPartition]], None]
#: the positions to start the assigned partitions from (None: the committed offsets)
OnAssign = Callable[[list[TopicPartition]], list[TopicPartition] | None]


class GroupConsumer:
    """A confluent-kafka consumer of `topics` in `group`, acting for `role`: the synchronous
    core of the loop. `overrides` tune this client (librdkafka names); `on_stats` also gets
    librdkafka's statistics (parsed)."""

    def __init__(self, settings: KafkaSettings, role: Role, group: str, topics: list[str], *,
                 assignment: str = "range", overrides: Mapping[str, Any] | None = None,
                 batch_max: int = BATCH, poll_s: float = POLL_S,
                 on_stats: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.role = role
        self.topics = topics
        self.group = group
        self.assignment = assignment
        self.overrides = dict(overrides or {})
        self.batch_max = batch_max
        self.poll_s = poll_s
        self.on_stats = on_stats
        self.consumer: Consumer | None = None
        self.stopping = False
        self._failed = False
        self.membership = Membership()
        self._readability = Readability()

    def _config(self) -> dict[str, Any]:
        return client_config(self.settings, self.role, "consumer", {
            "group.id": self.group,
            "client.id": self.group,
            "partition.assignment.strategy": self.assignment,
            "on_commit": _log_commit_errors,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            **self.overrides,
            "stats_cb": self._on_stats,
        })

    def _on_stats(self, data: str) -> None:
        """Note which partitions librdkafka is fetching from a broker that is up."""
        try:
            stats = json.loads(data)
            self._readability.update(stats)
            if self.on_stats is not None:
                self.on_stats(stats)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("unreadable librdkafka statistics: %s", exc)

    def readable(self, topic: str, partition: int) -> bool:
        """Is the partition being fetched from a leader that is up (recent statistics)?"""
        return self._readability.readable(topic, partition)

    # -- lifecycle ----------------------------------------------------------------------------
    def subscribe(self, on_revoke: OnRevoke, on_lost: OnLost,
                  on_assign: OnAssign | None = None) -> Consumer:
        """Create the consumer and join the group; the callbacks run inside `read`."""
        consumer = self.consumer = Consumer(self._config())

        def revoked(c: Consumer, partitions: list[TopicPartition]) -> None:
            if self._failed:  # the owner's state is suspect: nothing is made durable
                return
            self.membership.note_generation(c)  # (what committing them now needs)
            offsets = on_revoke(partitions)
            if offsets:
                c.commit(offsets=offsets, asynchronous=False)
            self.membership.forget(partitions)

        def lost(_c: Consumer, partitions: list[TopicPartition]) -> None:
            self.membership.forget(partitions)
            if self._failed:
                return
            log.warning("assignment of %d partitions lost (moved on after a session timeout):"
                        " what was held for them is dropped, uncommitted", len(partitions))
            on_lost(partitions)

        def assigned(c: Consumer, partitions: list[TopicPartition]) -> None:
            if on_assign is not None and partitions and not self._failed:
                positions = on_assign(partitions)
                if positions is not None:
                    c.assign(positions)
            self.membership.assigned(partitions, c)
            log.info("assigned %d partitions", len(partitions))

        consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked, on_lost=lost)
        self.membership.last_read = time.monotonic()
        return consumer

    def run(self, on_batch: Callable[[list[Message]], None], on_revoke: OnRevoke,
            on_lost: OnLost, on_assign: OnAssign | None = None) -> None:
        """Consume until `stop`, calling the owner back on this thread."""
        self.subscribe(on_revoke, on_lost, on_assign)
        self.drive(on_batch)

    def drive(self, on_batch: Callable[[list[Message]], None]) -> None:
        """The loop of a subscribed consumer: every batch to `on_batch` until `stop`, then
        leave the group."""
        try:
            while not self.stopping:
                batch = self.read()
                if batch is not None:
                    on_batch(batch)
        except BaseException:
            self.fail()
            raise
        finally:
            self.close()

    def stop(self) -> None:
        """Stop after the current batch: what is held is made durable and committed on the
        way out (safe from signal handlers and other threads)."""
        self.stopping = True

    def fail(self) -> None:
        """The owner's handling failed: closing must not call back into it."""
        self._failed = True

    def close(self) -> None:
        """Leave the group, revoking (so persisting and committing) first."""
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    # -- offsets ------------------------------------------------------------------------------
    def commit(self, offsets: Offsets) -> None:
        """Commit in the background: a lost commit only means events read again, which the
        owner recognises (restored state by offset, the sink's dedup)."""
        if self.consumer is not None and offsets:
            self.membership.note_committed(offsets)
            self.consumer.commit(offsets=offsets, asynchronous=True)

    def commit_now(self, offsets: Offsets) -> None:
        """Commit and wait for the broker's answer (KafkaException if it refuses)."""
        if self.consumer is not None and offsets:
            self.membership.note_committed(offsets)
            self.consumer.commit(offsets=offsets, asynchronous=False)

    # -- what is ours -------------------------------------------------------------------------
    @property
    def owned(self) -> frozenset[tuple[str, int]]:
        """(topic, partition) assigned to us."""
        return frozenset(self.membership.owned)

    def owned_partitions(self) -> set[int]:
        """Partition numbers assigned to us (of any of the co-partitioned topics)."""
        return {p for _t, p in self.membership.owned}

    def at_end(self) -> bool:
        """Has every owned partition been read to its end (needs `enable.partition.eof`)?"""
        owned = self.membership.owned
        return bool(owned) and self.membership.ended >= owned

    def in_doubt(self) -> bool:
        """May the partitions have moved on without us? Make nothing durable then."""
        return self.membership.in_doubt()

    def read(self) -> list[Message] | None:
        """The next batch of messages of partitions we own (up to `poll_s` for the first);
        None while membership is in doubt."""
        consumer = self.consumer
        assert consumer is not None, "subscribe first"
        batch = _next_batch(consumer, self.batch_max, self.poll_s)
        if not self.membership.confirmed_after_read(consumer):
            _rewind(consumer, batch)
            return None
        return self._usable(batch)

    def _usable(self, batch: list[Message]) -> list[Message]:
        """The messages of partitions we own (messages fetched before a rebalance can still
        come out after its callback); partition ends noted, errors logged (fatal: raised)."""
        owned, ended = self.membership.owned, self.membership.ended
        out = [m for m in batch if m.error() is None and (m.topic(), m.partition()) in owned]
        if len(out) < len(batch) or ended:  # (in order: an end, then a message, is no end)
            for m in batch:
                key = (m.topic() or "", m.partition() or 0)
                err = m.error()
                if err is None:
                    ended.discard(key)
                elif err.code() == KafkaError._PARTITION_EOF:
                    if key in owned:
                        ended.add(key)
                elif err.fatal():
                    raise KafkaException(err)
                else:
                    log.warning("consumer of %s: %s", self.group, err)
        return out

    def position(self, topic: str, partition: int) -> int:
        """The next offset to hand over (past transaction markers read; -1: not known)."""
        assert self.consumer is not None, "subscribe first"
        return max(self.consumer.position([TopicPartition(topic, partition)])[0].offset, -1)

    def committed(self, topic: str, partition: int) -> int:
        """The group's committed offset of a partition (-1: none)."""
        assert self.consumer is not None, "subscribe first"
        found = self.consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return max(found[0].offset, -1)

    def group_metadata(self) -> Any:
        """The member and generation a transaction commits offsets with (any thread)."""
        return self.membership.metadata

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end offset as of the latest fetch (None before one came back)."""
        if self.consumer is None:
            return None
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                         cached=True)
        return high if high >= 0 else None


class BatchConsumer:
    """The loop for an asyncio owner: the `GroupConsumer` core's calls run on one thread of
    their own, so the event loop never waits on the network and calls never overlap; the
    owner's callbacks run on the event loop."""

    def __init__(self, settings: KafkaSettings, role: Role, group: str, topics: list[str], *,
                 assignment: str = "range") -> None:
        self.core = GroupConsumer(settings, role, group, topics, assignment=assignment)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{group}-read")
        self._stopped: asyncio.Event | None = None

    @property
    def consumer(self) -> Consumer | None:
        return self.core.consumer

    def __getattr__(self, name: str) -> Any:
        """What else the core has (its settings, group, topics, configuration) reads through."""
        if name == "core":
            raise AttributeError(name)
        return getattr(self.core, name)

    async def run(self, on_batch: Callable[[list[Message]], Awaitable[None]],
                  on_revoke: Callable[[list[TopicPartition]], Coroutine[Any, Any, Offsets]],
                  on_lost: Callable[[list[TopicPartition]], Coroutine[Any, Any, None]]) -> None:
        """Consume until `stop`; the owner's callbacks run on the event loop."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        core = self.core

        def revoked(partitions: list[TopicPartition]) -> Offsets:
            return asyncio.run_coroutine_threadsafe(on_revoke(partitions), loop).result(
                REVOKE_TIMEOUT_S)

        def lost(partitions: list[TopicPartition]) -> None:
            asyncio.run_coroutine_threadsafe(on_lost(partitions), loop).result(
                REVOKE_TIMEOUT_S)

        core.subscribe(revoked, lost)
        try:
            while not core.stopping:
                batch = await loop.run_in_executor(self._thread, core.read)
                if batch is not None:
                    await on_batch(batch)
        except BaseException:
            core.fail()  # closing below must not call back into the owner
            raise
        finally:
            await loop.run_in_executor(self._thread, core.close)
            self._stopped.set()

    async def stop(self, timeout: float = 60.0) -> None:
        """Stop consuming: what is held is made durable and committed on the way out."""
        self.core.stop()
        if self._stopped is not None:
            await asyncio.wait_for(self._stopped.wait(), timeout)

    def commit(self, offsets: Offsets) -> None:
        self.core.commit(offsets)

    def owned_partitions(self) -> set[int]:
        return self.core.owned_partitions()

    def in_doubt(self) -> bool:
        return self.core.in_doubt()

    def readable(self, topic: str, partition: int) -> bool:
        return self.core.readable(topic, partition)

    def high_watermark(self, topic: str, partition: int) -> int | None:
        return self.core.high_watermark(topic, partition)


def next_offsets(messages: list[Message]) -> Offsets:
    """The offsets that commit `messages` (past the last one of each partition)."""
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic() or "", m.partition() or 0)] = m.offset() or 0
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def _next_batch(consumer: Consumer, batch_max: int, poll_s: float) -> list[Message]:
    """What is there, as soon as there is something (up to `poll_s` for the first message):
    `consume(n, timeout)` alone waits for n messages or the timeout, so at live rates every
    batch would wait the full timeout."""
    first = consumer.poll(poll_s)
    if first is None:
        return []
    return [first, *consumer.consume(batch_max - 1, 0)]


def _rewind(consumer: Consumer, batch: list[Message]) -> None:
    """Seek back to the first message of the batch per partition, so nothing read is
    skipped if the partitions stay (partitions already gone refuse the seek)."""
    first: dict[tuple[str, int], int] = {}
    for m in batch:
        if m.error() is None:
            first.setdefault((m.topic() or "", m.partition() or 0), m.offset() or 0)
    for (topic, partition), offset in first.items():
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, partition, offset))


def _log_commit_errors(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if err is not None:
        log.warning("committing offsets failed (read again after a restart): %s", err)
