"""The event-time processor's batch loop: decode, process, send, persist, then commit.

Per batch of the event topics (read by `clawstream.kafka.consumer.BatchConsumer`):
1. decode each event as its topic's type (`Serde.decode_as`; undecodable or of another type:
   a dead letter with the reason, `clawstream.kafka.deadletter`), feed the partition's
   pipeline, advance its watermark;
2. produce what closed (`streams.event_time.outputs`) and the partitions' reports to the
   fleet merge (`streams.event_time.fleet`) through one `ReliableProducer`, the outbox;
3. every `PERSIST_EVERY_S` (or `BATCH_MAX` events, or when input pauses): wait until Kafka
   has those outputs and dead letters, write the changed state (the clock record last) to
   the changelog (`streams.event_time.state`), wait for it, and only then commit the events'
   offsets (before partitions move to another worker, too).
A crash anywhere re-reads events from the committed offset: events the restored state already
holds are recognised by their offsets and skipped; a window emitted whose close was not yet
persisted is emitted again with the same deterministic event id. Its counts are the replay's:
the watermark moves once per batch and the replay's batches are not the live run's (a backlog
is read in bigger ones), so an event late the first time (sent to the late topic) may count in
the repeat.

With `CLAWSTREAM_PROCESSING_GUARANTEE=exactly_once` the outbox is a transactional producer
(`clawstream.kafka.transactions`, one transactional id per worker slot on its host, which a
worker restarted after a crash takes back): outputs, dead letters, fleet reports and state
records of step 3 and the input offsets are committed in one transaction instead of the
offsets being committed by the consumer, so a read_committed reader sees a window once or not
at all. A worker whose partitions were taken from it (frozen past the
session timeout) is fenced by its group generation: its transaction is aborted, and it drops
what it held (assignment lost) or stops (commit refused).

Between batches (every `IDLE_CHECK_S`), partitions that read nothing move on if they can: one
held by a backlog or an unreadable topic once that is over, and an idle one (no new event for
`IDLE_S`, every topic caught up and readable) to the lowest watermark of this worker's busy
partitions (event time, not the wall clock: a replay keeps its own pace).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from confluent_kafka import Message, TopicPartition
from prometheus_client import Counter, Gauge

from clawstream.kafka.consumer import BatchConsumer
from clawstream.kafka.deadletter import DeadLetterQueue, DlqLimit
from clawstream.kafka.producer import ReliableProducer
from clawstream.kafka.transactions import TransactionalProducer, instance_slot
from clawstream.runtime import exit_if_not_stopped
from clawstream.settings import Settings
from schemas.serde import DecodeError, Serde
from schemas.topics import DLQ, EVENT_TOPICS, TOPICS
from streams.app import input_group
from streams.dead_letters import carried_types
from streams.event_time.fleet import FleetMerge
from streams.event_time.outputs import OutputSender, Partials
from streams.event_time.state import PartitionStates
from streams.windowing import NEVER, Event, Output, PartitionPipeline, build_pipeline, has_backlog

log = logging.getLogger("clawstream.streams.windows")

COMPONENT = "streams-windows"
#: Persist state and ack at least every this many events / seconds (and when input pauses).
BATCH_MAX = 40_000
PERSIST_EVERY_S = 2.0
#: Events processed between two yields to the event loop.
YIELD_EVERY = 1_000
#: A caught-up, readable partition with no new event for this long is idle (its watermark
#: follows the busy partitions'), checked at most every IDLE_CHECK_S.
IDLE_S = 2.0
IDLE_CHECK_S = 0.5
#: After a processing failure the worker stops; if faust has not stopped it by then, it exits.
STOP_DEADLINE_S = 20.0
DEBUG_WM = bool(os.environ.get("CLAWSTREAM_DEBUG_WATERMARK"))

EVENTS = Counter("clawstream_worker_events_total", "Events processed by the windows.",
                 ["type"])
DLQ_OUT = Counter("clawstream_worker_dlq_total",
                  "Events sent to the DLQ (undecodable, or not of their topic's type).",
                  ["reason"])
GAPS = Counter("clawstream_worker_offset_gap_events_total",
               "Events skipped between the persisted state and the consumed position.")
REPLAYED = Counter("clawstream_worker_replayed_events_total",
                   "Events skipped because the restored state already held them.")
WATERMARK = Gauge("clawstream_worker_watermark_ms", "Event-time watermark per partition.",
                  ["partition"])


class EventTimeProcessor:
    """Windows, correlation and sessions over the event topics, on one faust app: its own
    consumer group for the input, faust's tables, agent and timer for state and fleet."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.serde = Serde.for_registry(settings.schema_registry_url)
        #: physical topic -> logical name, and the event types it carries
        self.physical = {settings.topic(t): t for t in EVENT_TOPICS}
        self.types = {settings.topic(t): carried_types(t) for t in EVENT_TOPICS}
        partitions = TOPICS[EVENT_TOPICS[0]].partitions
        self.source = BatchConsumer(settings, "worker", input_group(settings),
                                    list(self.physical))
        #: exactly-once: outputs, state and input offsets in one transaction per persist
        self.transactions = settings.processing_guarantee == "exactly_once"
        client_id = f"{settings.worker_app_id}-windows"
        self.outbox = (TransactionalProducer(settings, "worker", client_id,
                                             transactional_id(settings))
                       if self.transactions else ReliableProducer(settings, "worker", client_id))
        # the outbox carries the dead letters too: one flush before each commit covers them
        self.dlq = DeadLetterQueue(self.outbox, settings.topic(DLQ), COMPONENT,
                                   DlqLimit(settings.dlq_max_consecutive),
                                   on_sent=lambda reason: DLQ_OUT.labels(reason).inc())
        self.states = PartitionStates(app, settings, partitions, self.new_pipeline)
        self.pipelines = self.states.pipelines
        self.sender = OutputSender(app, settings, self.serde, self.outbox, partitions)
        self.fleet = FleetMerge(app, settings, self.outbox, self.sender, partitions)
        # per (topic, partition): the last offset processed, not yet persisted and committed
        self._positions: dict[tuple[str, int], int] = {}
        #: partitions read since assigned (where the consumer resumed is checked once)
        self._resumed: set[tuple[str, int]] = set()
        self._pending = 0  # events processed since the last persist
        self._pending_since = 0.0
        self._touched: set[int] = set()
        #: per partition: when its last event was read (monotonic); the idle check's input
        self._last_event: dict[int, float] = {}
        self._idle_checked = 0.0
        self._lock = asyncio.Lock()
        app.task(self._consume)
        app.on_before_shutdown.connect(self._stop_consuming)

    def new_pipeline(self) -> PartitionPipeline:
        """One partition's pipeline: correlation, windows and sessions."""
        return build_pipeline(self.settings)

    # -- input: the event topics in the processor's own consumer group ---------------------------
    async def _consume(self) -> None:
        try:
            await self.source.run(self._on_batch, self._on_revoke, self._on_lost)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("event-time processing failed; the worker stops (events since the "
                          "last persist are read again after a restart)")
            exit_if_not_stopped(STOP_DEADLINE_S)
            await self.app.crash(exc)
            raise

    async def _stop_consuming(self, app: Any = None, **kwargs: Any) -> None:
        await self.source.stop()

    async def _on_revoke(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Before partitions move: persist what is pending; the offsets to commit (none
        left for the consumer to commit when the transaction took them)."""
        async with self._lock:
            offsets = await self._commit(await self._persist_pending())
            self._drop({tp.partition for tp in partitions if tp.topic in self.physical})
            return offsets

    async def _on_lost(self, partitions: list[TopicPartition]) -> None:
        """Partitions already given to another worker: forget them, persist nothing. With
        transactions, the open one is aborted (it holds outputs of the lost partitions), so
        every partition's state is dropped: the next owner of each restores the committed one."""
        async with self._lock:
            lost = {tp.partition for tp in partitions if tp.topic in self.physical}
            if isinstance(self.outbox, TransactionalProducer):
                self.outbox.abort()
                lost |= set(self.pipelines) | {p for _t, p in self._positions}
            self._drop(lost)

    def _drop(self, partitions: set[int]) -> None:
        self.states.drop(partitions)
        for p in partitions:
            self._touched.discard(p)
            self._last_event.pop(p, None)
        for key in [k for k in self._positions if k[1] in partitions]:
            del self._positions[key]
        self._resumed = {k for k in self._resumed if k[1] not in partitions}

    # -- the main loop: batches of the event topics ---------------------------------------------
    async def _on_batch(self, messages: list[Message]) -> None:
        """Process one batch; persist and commit what is pending when it is due.

        Outputs are produced right away (their latency is the windows' latency); the state
        is written every `PERSIST_EVERY_S` or `BATCH_MAX` events, and on an empty batch (input
        paused), after the outputs are acknowledged; only then are the offsets committed, so
        a committed offset always has its state and outputs behind it. If processing raises,
        nothing of the batch is persisted or committed (the BatchConsumer stops calling back):
        it is read again after a restart, where the persisted state recognises by offset what
        it already applied.
        """
        async with self._lock:
            if messages:
                if not self._pending:
                    self._pending_since = time.monotonic()
                await self.states.ensure(partitions_of(messages))
                self._touched |= await self._handle_batch(messages)
                self._pending += len(messages)
            if self.source.in_doubt():
                return  # frozen past the session timeout: persist once the group says ours
            await self._advance_held(partitions_of(messages))
            self._keepalive()
            if (not messages or self._pending >= BATCH_MAX
                    or time.monotonic() - self._pending_since >= PERSIST_EVERY_S):
                self.source.commit(await self._commit(await self._persist_pending()))

    async def _handle_batch(self, batch: list[Message]) -> set[int]:
        outputs: list[tuple[int, Output]] = []
        touched: set[int] = set()
        types: dict[str, int] = {}
        positions = self._positions
        pipelines = self.pipelines
        decode_as = self.serde.decode_as
        now_ms = int(time.time() * 1000)
        for i, msg in enumerate(batch):
            if i and not i % YIELD_EVERY:
                await asyncio.sleep(0)  # a big batch must not starve faust's timers
            p, topic, offset = msg.partition(), msg.topic(), msg.offset()
            if p is None or topic is None or offset is None:  # (set on every consumed one)
                raise ValueError(f"not a consumed message: {topic}[{p}]@{offset}")
            logical = self.physical.get(topic, topic)
            pl = pipelines[p]
            touched.add(p)
            positions[(topic, p)] = offset
            if pl.clock.is_replay(logical, offset):
                REPLAYED.inc()
                continue
            self._check_gap(pl, logical, topic, p, offset)
            value = msg.value()
            try:
                decoded = decode_as(value, self.types[topic], topic)
            except DecodeError as exc:
                pl.clock.skip(logical, offset)
                self.dlq.send(msg, exc.reason, exc.detail)
                continue
            self.dlq.ok()
            et = decoded.schema.event_type
            ts_type, ts = msg.timestamp()
            found = msg.headers()  # a list of (name, value) when consumed (a dict: never)
            ev = Event(et, decoded.record, logical, offset, raw=value or b"", key=msg.key(),
                       headers=tuple(found) if isinstance(found, list) else (),
                       arrival=min(ts, now_ms) if ts_type else None)
            types[et] = types.get(et, 0) + 1
            outputs.extend((p, o) for o in pl.process(ev))
        for p in touched:
            pl = pipelines[p]
            lag = self._lagging(p, pl)
            before = pl.watermark
            outputs.extend((p, o) for o in pl.advance(lag))
            if DEBUG_WM:
                log.info("p%d wm %s -> %s lag=%s marks=%s", p, before, pl.watermark, lag,
                         {k: (m.max_time, m.offset) for k, m in pl.clock.sources.items()})
        for et, n in types.items():
            EVENTS.labels(et).inc(n)
        await self._send(outputs, touched)
        return touched

    def _check_gap(self, pl: PartitionPipeline, logical: str, topic: str, partition: int,
                   offset: int) -> None:
        """Log (and count) events that never reached the windows.

        Only where the consumer resumed (the first event applied since the partition was
        assigned): from there on it reads each partition in order, and an offset it steps over
        is a transaction marker or an aborted record, never an event (any producer of an event
        topic may be transactional). At the resume point the group's committed offset says
        whether it resumed past the persisted state: committed up to the state's next offset,
        what lies between is markers too. That cannot happen while state is persisted before
        acks and restored from the changelog's end; if it ever does, it is loud rather than
        silent.
        """
        key = (topic, partition)
        if self.transactions or key in self._resumed:  # offsets committed past markers
            return
        self._resumed.add(key)
        mark = pl.clock.sources.get(logical)
        if mark is None or offset <= mark.offset + 1:
            return
        committed = self.source.committed(topic, partition)
        if committed > mark.offset + 1:
            GAPS.inc(committed - mark.offset - 1)
            log.error("%s[%d]: offsets %d..%d were never applied (resumed past the state)",
                      topic, partition, mark.offset + 1, committed - 1)

    # -- held and idle partitions --------------------------------------------------------------
    def _lagging(self, partition: int, pl: PartitionPipeline) -> dict[str, bool]:
        """Per source topic: does it hold the partition's clock? It may hold events not
        applied yet: a backlog, or a partition we cannot read now (or whose high-water mark
        is not known yet)."""
        out = {}
        for physical, logical in self.physical.items():
            hw = self.source.high_watermark(physical, partition)
            mark = pl.clock.sources.get(logical)
            applied = mark.offset if mark is not None else -1
            # a trailing transaction marker (any producer may be transactional) is no backlog
            applied = max(applied, self.source.position(physical, partition) - 1)
            out[logical] = (hw is None or has_backlog(hw, applied)
                            or not self.source.readable(physical, partition))
        return out

    async def _advance_held(self, busy: set[int]) -> None:
        """Every `IDLE_CHECK_S`, move on what could not move when its events were read: a
        partition held by a backlog or by a topic it could not read yet has its watermark
        advanced once that is over, though no new event comes; and idle partitions (owned,
        no event for `IDLE_S`, every topic caught up and readable) go on to the lowest
        watermark of the busy ones (see the module doc)."""
        now = time.monotonic()
        for p in busy:
            self._last_event[p] = now
        if now - self._idle_checked < IDLE_CHECK_S:
            return
        self._idle_checked = now
        owned = sorted(self.source.owned_partitions())
        idle = {p for p in owned if now - self._last_event.setdefault(p, now) >= IDLE_S}
        frontier = min((self.pipelines[p].watermark for p in owned
                        if p not in idle and p in self.pipelines), default=NEVER)
        # every owned partition's state is loaded, so its reports say whether it holds data
        await self.states.ensure(set(owned))
        for p in owned:
            if p in busy:
                continue
            pl = self.pipelines[p]
            lag = self._lagging(p, pl)
            floor = frontier if p in idle and not any(lag.values()) else NEVER
            if pl.clock.candidate(lag, floor) <= pl.watermark:
                continue
            outputs = [(p, o) for o in pl.advance(lag, floor)]
            self._touched.add(p)
            await self._send(outputs, {p})

    # -- outputs, reports, persistence ----------------------------------------------------------
    async def _send(self, outputs: list[tuple[int, Output]], touched: set[int]) -> None:
        partials = await self.sender.send(outputs)
        now = time.monotonic()
        for p in touched:
            pl = self.pipelines[p]
            if pl.watermark > NEVER:
                WATERMARK.labels(str(p)).set(pl.watermark)
            if p in partials or self.fleet.due(p, now):
                self._report(p, pl, partials, now)
        self.outbox.poll()

    def _report(self, p: int, pl: PartitionPipeline, partials: Partials, now: float) -> None:
        """The partition's fleet report. It has no data only if it never applied an event
        and has nothing left to read (a backlog not read yet may hold some)."""
        empty = pl.clock.max_seen == NEVER and not any(self._lagging(p, pl).values())
        self.fleet.report(p, pl.watermark, partials.get(p, {}), not empty, now)

    def _keepalive(self) -> None:
        """Report owned partitions with nothing new at least every `REPORT_EVERY_S`, so the
        fleet merge can tell a partition whose owner is alive (its watermark holds, or it has
        no data) from one whose owner went away (held for, up to the failover time); a
        partition whose state is not loaded yet only says its owner is alive."""
        now = time.monotonic()
        for p in self.source.owned_partitions():
            if self.fleet.due(p, now):
                pl = self.pipelines.get(p)
                if pl is None:
                    self.fleet.keepalive(p, now)
                else:
                    self._report(p, pl, {}, now)

    async def _persist_pending(self) -> list[TopicPartition]:
        """Persist the state behind the processed events; the offsets now safe to commit."""
        if not self._positions and not self._touched:
            return []
        await self._persist(self._touched)
        offsets = [TopicPartition(topic, p, offset + 1)
                   for (topic, p), offset in self._positions.items()]
        self._positions, self._pending, self._touched = {}, 0, set()
        return offsets

    async def _commit(self, offsets: list[TopicPartition]) -> list[TopicPartition]:
        """With transactions: commit the open one with `offsets` (nothing is left for the
        consumer to commit); without: the offsets for the consumer to commit."""
        if not isinstance(self.outbox, TransactionalProducer):
            return offsets
        await self.outbox.commit_async(offsets, self.source.group_metadata())
        return []

    async def _persist(self, touched: set[int]) -> None:
        """Changed state to the table's changelog, the clock record of each partition last,
        after the outputs (and dead letters) it accounts for, and wait until Kafka has it (the
        caller acks the events only after that)."""
        await self.outbox.flush_async()  # outputs delivered before the state says "done"
        self.states.write(self.outbox, touched)
        await self.outbox.flush_async()


def transactional_id(settings: Settings) -> str:
    """One worker instance's transactional id: its host and its slot there (a worker restarted
    after a crash takes the slot back and fences its predecessor's open transaction at once;
    a frozen zombie is fenced by its group generation)."""
    slots = settings.data_dir / "faust" / settings.worker_app_id / "transactional-slots"
    return f"{settings.worker_app_id}-windows-{socket.gethostname()}-{instance_slot(slots)}"


def partitions_of(messages: list[Message]) -> set[int]:
    """The partitions a batch of consumed messages came from."""
    return {p for m in messages if (p := m.partition()) is not None}  # (set when consumed)
