"""Event-time windows on Faust: the glue between Kafka and the pure `streams.windowing` code.

The processor reads partition p of every event topic (they are co-partitioned by agent_id)
in a consumer group of its own (`clawstream.kafka.consumer`: librdkafka fetches in its own
threads and hands whole batches over; faust's consumer parsed every record in Python and
delivered them one by one) and runs one `PartitionPipeline` per partition: windows, action↔outcome
correlation and sessions share the partition's watermark. Its fleet-wide merge, tables and
timers are faust's, in the worker's faust app.

Why not faust's windowed tables: they close windows on the wall clock and drop late writes.
Here the open windows, pending actions, open sessions and the per-source watermark marks live
in one plain changelog-backed table (`event-time-state`, key "<partition>/<operator>/<key>").
The worker writes that changelog itself and, on assignment, reads it back to its end offset
(faust's in-memory recovery can leave out a partition's newest record).

Processing, per batch of the event topics:
1. decode (undecodable -> DLQ with the reason), feed the pipeline, advance the watermark;
2. produce what closed (aggregates, late events with their windows in headers, lost outcomes,
   sessions, plan progress, fleet partials) through one confluent-kafka producer (a
   `clawstream.kafka.ReliableProducer`;
   a faust send per message costs more than the windowing);
3. every `PERSIST_EVERY_S` (or `BATCH_MAX` events, or when input pauses): wait until Kafka
   has those outputs, write the changed state (panes touched since, the clock record last)
   to the changelog, wait for it, and only then commit the events' offsets (before
   partitions move to another worker, too).
A crash anywhere re-reads events from the committed offset: events the restored state already
holds are recognised by their offsets and skipped; a window emitted whose close was not yet
persisted is emitted again with the same deterministic event id (uuid5 of the window key) and
the same counts, which ClickHouse collapses (ReplacingMergeTree on the window key).

The watermark of a partition is the highest event time seen on it (each bounded by its
arrival: agents' clocks are not trusted, see `streams.windowing.pipeline`) minus the lateness,
held back by any source topic that still has a backlog or cannot be read now (leader away),
see `streams.windowing.watermark`, so a restart with a backlog, a heap of undecodable messages
or a broker failover does not turn one topic's events late because another was read first.
A partition with no new event for `IDLE_S` whose topics are all caught up and readable is
idle: its watermark moves on with the watermarks of this worker's busy partitions (the lowest
of them), so the windows of agents that paused or stopped close with everyone else's and
fleet-wide windows never wait for a quiet partition. It moves with the others' event time,
not the wall clock, so a replay of old events (a backfill, a worker catching up) keeps its own
pace; when every partition is quiet, nothing moves (the last windows wait for new events).

Fleet-wide ('*') windows: each partition closes its own partial fleet window on its own
watermark and sends it with its watermark to a single-partition internal topic; the
`event-time-fleet` agent merges partials per window and closes it when the minimum watermark
over the active partitions passes its end (see `streams.windowing.fleet`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from clawstream.kafka.config import client_config
from clawstream.kafka.producer import ReliableProducer
from clawstream.runtime import exit_if_not_stopped
from clawstream.settings import Settings
from schemas.headers import LATE_REASON, REASON_CLOCK_SKEW
from schemas.serde import DecodeError, Serde
from schemas.topics import (
    AGGREGATES,
    DLQ,
    EVENT_TOPICS,
    LATE,
    OUTCOMES,
    SESSIONS,
    TOPICS,
)
from streams.windowing import Event, Output, PartitionPipeline, build_pipeline
from streams.windowing.fleet import (
    FleetMerger,
    decode_report,
    encode_keepalive,
    encode_report,
)
from streams.windowing.watermark import NEVER

log = logging.getLogger("clawstream.streams.windows")

COMPONENT = "streams-windows"
STATE_TABLE = "event-time-state"
FLEET_TABLE = "event-time-fleet"
#: Persist state and ack at least every this many events / seconds (and when input pauses).
BATCH_MAX = 40_000
PERSIST_EVERY_S = 2.0
#: Events processed between two yields to the event loop.
YIELD_EVERY = 1_000
#: A partition reports its watermark to the fleet merge at least this often while busy.
REPORT_EVERY_S = 0.5
FLEET_TICK_S = 1.0
#: A caught-up, readable partition with no new event for this long is idle (its watermark
#: follows the busy partitions'), checked at most every IDLE_CHECK_S.
IDLE_S = 2.0
IDLE_CHECK_S = 0.5
#: After a processing failure the worker stops; if faust has not stopped it by then, it exits.
STOP_DEADLINE_S = 20.0
DEBUG_WM = bool(__import__("os").environ.get("CLAWSTREAM_DEBUG_WATERMARK"))

EVENTS = Counter("clawstream_worker_events_total", "Events processed by the windows.",
                 ["type"])
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
DLQ_OUT = Counter("clawstream_worker_dlq_total", "Undecodable events sent to the DLQ.",
                  ["reason"])
GAPS = Counter("clawstream_worker_offset_gap_events_total",
               "Events skipped between the persisted state and the consumed position.")
REPLAYED = Counter("clawstream_worker_replayed_events_total",
                   "Events skipped because the restored state already held them.")
WATERMARK = Gauge("clawstream_worker_watermark_ms", "Event-time watermark per partition.",
                  ["partition"])


class EventTimeProcessor:
    """The event-time processor: its input, pipelines, tables and topics on one faust app."""

    def __init__(self, app: Any, settings: Settings) -> None:
        import faust

        from clawstream.kafka.consumer import BatchConsumer
        from streams.app import input_group

        self.app = app
        self.settings = settings
        self.serde = Serde.for_registry(settings.schema_registry_url)
        self.enabled: set[str] = set()
        self.pipelines: dict[int, PartitionPipeline] = {}
        self.last_report: dict[int, float] = {}
        self.physical = {settings.topic(t): t for t in EVENT_TOPICS}
        partitions = self.partitions = TOPICS[EVENT_TOPICS[0]].partitions
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.source = BatchConsumer(settings, "worker", input_group(settings),
                                    list(self.physical))
        self.names = {name: settings.topic(name)
                      for name in (AGGREGATES, LATE, OUTCOMES, SESSIONS, DLQ)}
        self.outbox = ReliableProducer(settings, "worker", f"{settings.worker_app_id}-windows")
        self.fleet_topic = app.topic(f"{app.conf.id}-fleet-partials", partitions=1,
                                     internal=True, **raw)
        self.fleet_name = self.fleet_topic.get_topic_name()
        self.plan_topic = app.topic(f"{app.conf.id}-plan-progress", partitions=partitions,
                                    internal=True, **raw)
        self.table = app.Table(
            STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes,
            help="Open windows, pending actions, open sessions and watermarks per partition.",
            schema=faust.Schema(key_serializer="raw", value_serializer="raw"),
        )
        self.fleet_table = app.Table(
            FLEET_TABLE, partitions=1, key_type=bytes, value_type=bytes,
            help="Partial fleet-wide windows per source partition and their watermarks.",
            schema=faust.Schema(key_serializer="raw", value_serializer="raw"),
        )
        self.fleet: FleetMerger | None = None
        self._plan_topic_declared = False
        # per (topic, partition): the last offset processed, not yet persisted and committed
        self._positions: dict[tuple[str, int], int] = {}
        self._pending = 0  # events processed since the last persist
        self._pending_since = 0.0
        self._touched: set[int] = set()
        #: per partition: when its last event was read (monotonic); the idle check's input
        self._last_event: dict[int, float] = {}
        self._idle_checked = 0.0
        self._lock = asyncio.Lock()
        app.task(self._consume)
        app.on_before_shutdown.connect(self._stop_consuming)
        app.on_partitions_revoked.connect(self._fleet_moved)
        app.on_partitions_assigned.connect(self._fleet_moved)
        app.agent(self.fleet_topic, name="event-time-fleet")(self._run_fleet)
        app.timer(FLEET_TICK_S, on_leader=True, name="event-time-fleet-tick")(self._tick)

    # -- pipelines per partition ------------------------------------------------------------------
    def _new_pipeline(self) -> PartitionPipeline:
        return build_pipeline(self.settings, correlation="correlation" in self.enabled,
                              windows="windows" in self.enabled,
                              sessions="sessions" in self.enabled)

    async def ensure_pipelines(self, partitions: set[int]) -> None:
        """Build (and restore from the changelog) the pipelines of newly seen partitions.

        The changelog is read with a blocking client, so off the event loop: faust's
        heartbeats, timers and other agents keep running while a partition's state loads.
        """
        loop = asyncio.get_running_loop()
        for partition in partitions - self.pipelines.keys():
            state = await loop.run_in_executor(None, self._read_changelog, self.table, partition)
            pl = self.pipelines[partition] = self._new_pipeline()
            prefix = f"{partition}/".encode()
            restored = pl.restore((key[len(prefix):].decode(), value)
                                  for key, value in state.items() if key.startswith(prefix))
            if restored:
                log.info("partition %d: restored %d state keys, watermark %s", partition,
                         restored, pl.watermark)

    def _read_changelog(self, table: Any, partition: int) -> dict[bytes, bytes]:
        """The latest value per key of one changelog partition, read to its end offset.

        Read here rather than trusted to faust's in-memory recovery, whose end-offset
        arithmetic can leave out the newest record of a partition, which for us is the
        watermark/offset record the whole partition's state hangs on.
        """
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        topic = table.changelog_topic.get_topic_name()
        c = Consumer(client_config(self.settings, "worker", "consumer", {
            "group.id": f"{self.settings.worker_app_id}-restore",
            "enable.partition.eof": True}))
        state: dict[bytes, bytes] = {}
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high <= low:
                return state
            c.assign([TopicPartition(topic, partition, low)])
            done = False
            while not done:
                for m in c.consume(10_000, 1.0):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            done = True
                        continue
                    if m.value() is None:
                        state.pop(m.key(), None)
                    else:
                        state[m.key()] = m.value()
                    if m.offset() >= high - 1:
                        done = True
        finally:
            c.close()
        return state

    # -- input: the event topics in the processor's own consumer group (BatchConsumer) --------
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

    async def _on_revoke(self, partitions: list[Any]) -> list[Any]:
        """Before partitions move: persist what is pending; the offsets to commit."""
        async with self._lock:
            offsets = await self._persist_pending()
            self._drop({tp.partition for tp in partitions if tp.topic in self.physical})
            return offsets

    async def _on_lost(self, partitions: list[Any]) -> None:
        """Partitions already given to another worker: forget them, persist nothing."""
        async with self._lock:
            self._drop({tp.partition for tp in partitions if tp.topic in self.physical})

    def _drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.pipelines.pop(p, None)
            self._touched.discard(p)
            self._last_event.pop(p, None)
        for key in [k for k in self._positions if k[1] in partitions]:
            del self._positions[key]

    def _lagging(self, partition: int, pl: PartitionPipeline) -> dict[str, bool]:
        """Per source topic: may it hold events we have not applied? A backlog (high-water
        mark beyond what we applied), or a partition we cannot read now."""
        out = {}
        for physical, logical in self.physical.items():
            hw = self.source.high_watermark(physical, partition)
            mark = pl.clock.sources.get(logical)
            applied = mark.offset if mark is not None else -1
            out[logical] = (hw is None or hw > applied + 1
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
        await self.ensure_pipelines(set(owned))
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
            await self._send(outputs, [], {p})

    # -- the main loop: batches of the event topics ---------------------------------------------
    async def _on_batch(self, messages: list[Any]) -> None:
        """Process one batch; persist and commit what is pending when it is due.

        Outputs are produced right away (their latency is the windows' latency); the state
        is written every `PERSIST_EVERY_S` or `BATCH_MAX` events, and on an empty batch (input
        paused), after the outputs are acknowledged; only then are the offsets committed, so
        a committed offset always has its state and outputs behind it.
        """
        async with self._lock:
            if messages:
                if not self._pending:
                    self._pending_since = time.monotonic()
                try:
                    await self.ensure_pipelines({m.partition() for m in messages})
                    self._touched |= await self._handle_batch(messages)
                except BaseException:
                    # nothing of it is persisted or committed (the BatchConsumer stops calling
                    # back): read again after a restart, where the persisted state recognises
                    # what it already applied by offset
                    raise
                self._pending += len(messages)
            if self.source.in_doubt():
                return  # frozen past the session timeout: persist once the group says ours
            await self._advance_held({m.partition() for m in messages})
            self._keepalive()
            if (not messages or self._pending >= BATCH_MAX
                    or time.monotonic() - self._pending_since >= PERSIST_EVERY_S):
                self.source.commit(await self._persist_pending())

    async def _persist_pending(self) -> list[Any]:
        """Persist the state behind the processed events; the offsets now safe to commit."""
        from confluent_kafka import TopicPartition

        if not self._positions and not self._touched:
            return []
        await self._persist(self._touched)
        offsets = [TopicPartition(topic, p, offset + 1)
                   for (topic, p), offset in self._positions.items()]
        self._positions, self._pending, self._touched = {}, 0, set()
        return offsets

    async def _handle_batch(self, batch: list[Any]) -> set[int]:
        outputs: list[tuple[int, Output]] = []
        touched: set[int] = set()
        dead = []
        types: dict[str, int] = {}
        positions = self._positions
        now_ms = int(time.time() * 1000)
        for i, msg in enumerate(batch):
            if i and not i % YIELD_EVERY:
                await asyncio.sleep(0)  # a big batch must not starve faust's timers
            p = msg.partition()
            topic = msg.topic()
            offset = msg.offset()
            logical = self.physical.get(topic, topic)
            pl = self.pipelines[p]
            touched.add(p)
            positions[(topic, p)] = offset
            if pl.clock.is_replay(logical, offset):
                REPLAYED.inc()
                continue
            self._check_gap(pl, logical, topic, p, offset)
            value = msg.value()
            try:
                decoded = self.serde.decode(value)
            except DecodeError as exc:
                pl.clock.skip(logical, offset)
                dead.append((msg, exc.reason, exc.detail))
                continue
            et = decoded.schema.event_type
            ts_type, ts = msg.timestamp()
            ev = Event(et, decoded.record, logical, offset, raw=value, key=msg.key(),
                       headers=tuple(msg.headers() or ()),
                       arrival=min(ts, now_ms) if ts_type else None)
            types[et] = types.get(et, 0) + 1
            outputs.extend((p, o) for o in pl.process(ev))
        for p in touched:
            pl = self.pipelines[p]
            lag = self._lagging(p, pl)
            before = pl.watermark
            outputs.extend((p, o) for o in pl.advance(lag))
            if DEBUG_WM:
                log.info("p%d wm %s -> %s lag=%s marks=%s", p, before, pl.watermark, lag,
                         {k: (m.max_time, m.offset) for k, m in pl.clock.sources.items()})
        for et, n in types.items():
            EVENTS.labels(et).inc(n)
        await self._send(outputs, dead, touched)
        return touched

    def _check_gap(self, pl: PartitionPipeline, logical: str, topic: str, partition: int,
                   offset: int) -> None:
        """Log (and count) events that never reached the windows.

        Offsets on our topics are contiguous (idempotent, non-transactional producers), so a
        jump past what the state applied means the consumer resumed beyond the persisted
        state. That cannot happen while state is persisted before acks and restored from the
        changelog's end; if it ever does, it is loud rather than silent.
        """
        mark = pl.clock.sources.get(logical)
        if mark is not None and offset > mark.offset + 1:
            GAPS.inc(offset - mark.offset - 1)
            log.error("%s[%d]: offsets %d..%d were never applied (resumed past the state)",
                      topic, partition, mark.offset + 1, offset - 1)

    async def _send(self, outputs: list[tuple[int, Output]], dead: list[Any],
                    touched: set[int]) -> None:
        from schemas.headers import dlq_headers

        box = self.outbox
        partials: dict[int, dict[str, Any]] = {}
        for p, o in outputs:
            if o.kind == "fleet_partial":
                partials.setdefault(p, {})[o.key] = o.value
            else:
                await self._send_one(p, o)
        for msg, reason, detail in dead:
            DLQ_OUT.labels(reason).inc()
            box.produce(self.names[DLQ], msg.value(), msg.key(), headers=dlq_headers(
                reason=reason, detail=detail, topic=msg.topic(), partition=msg.partition(),
                offset=msg.offset(), failed_by=COMPONENT))
        now = time.monotonic()
        for p in touched:
            pl = self.pipelines[p]
            if pl.watermark > NEVER:
                WATERMARK.labels(str(p)).set(pl.watermark)
            if "windows" not in self.enabled:
                continue
            if p in partials or now - self.last_report.get(p, 0.0) >= REPORT_EVERY_S:
                self.last_report[p] = now
                box.produce(self.fleet_name, self._report(p, pl, partials.get(p, {})), b"fleet")
        box.poll()

    def _report(self, p: int, pl: PartitionPipeline, partials: dict[str, Any]) -> bytes:
        """The partition's fleet report. It has no data only if it never applied an event
        and has nothing left to read (a backlog not read yet may hold some)."""
        empty = pl.clock.max_seen == NEVER and not any(self._lagging(p, pl).values())
        return encode_report(p, pl.watermark, partials, has_data=not empty)

    def _keepalive(self) -> None:
        """Report owned partitions with nothing new at least every `REPORT_EVERY_S`, so the
        fleet merge can tell a partition whose owner is alive (its watermark holds, or it has
        no data) from one whose owner went away (held for, up to the failover time); a
        partition whose state is not loaded yet only says its owner is alive."""
        if "windows" not in self.enabled:
            return
        now = time.monotonic()
        for p in self.source.owned_partitions():
            if now - self.last_report.get(p, 0.0) >= REPORT_EVERY_S:
                self.last_report[p] = now
                pl = self.pipelines.get(p)
                self.outbox.produce(self.fleet_name, encode_keepalive(p) if pl is None
                                    else self._report(p, pl, {}), b"fleet")

    async def _send_one(self, p: int, o: Output) -> None:
        box = self.outbox
        if o.kind == "aggregate":
            WINDOWS.labels("agent").inc()
            box.produce(self.names[AGGREGATES], self.serde.encode("aggregate", o.value),
                        o.key.encode())
        elif o.kind == "late":
            ev: Event = o.value
            if o.headers.get(LATE_REASON) == REASON_CLOCK_SKEW:
                CLOCK_SKEW_EVENTS.labels(ev.agent).inc()
            else:
                LATE_EVENTS.labels(ev.event_type).inc()
            headers = list(ev.headers) + [(k, v.encode()) for k, v in o.headers.items()]
            box.produce(self.names[LATE], ev.raw, ev.key, partition=p, headers=headers)
        elif o.kind == "outcome":
            LOST.inc()
            box.produce(self.names[OUTCOMES], self.serde.encode("outcome", o.value),
                        o.key.encode(), partition=p)
        elif o.kind == "session":
            SESSIONS_OUT.inc()
            box.produce(self.names[SESSIONS], self.serde.encode("session", o.value),
                        o.key.encode())
        elif o.kind == "plan":
            if not self._plan_topic_declared:  # faust only declares topics agents read
                await self.plan_topic.maybe_declare()
                self._plan_topic_declared = True
            box.produce(self.plan_topic.get_topic_name(), json.dumps(o.value).encode(),
                        o.key.encode(), partition=p)
        else:
            raise ValueError(f"unknown output kind {o.kind}")

    async def _persist(self, touched: set[int]) -> None:
        """Changed state to the table's changelog, the clock record of each partition last,
        after the outputs it accounts for, and wait until Kafka has it (the caller acks the
        events only after that)."""
        box = self.outbox
        await box.flush_async()  # outputs delivered before the state says "done"
        topic = self.table.changelog_topic.get_topic_name()
        for p in touched:
            pl = self.pipelines.get(p)
            if pl is None:  # revoked meanwhile; its new owner restores from the changelog
                continue
            for key, value in pl.take_dirty().items():
                box.produce(topic, value, f"{p}/{key}".encode(), partition=p)
        await box.flush_async()

    # -- fleet-wide merge ----------------------------------------------------------------------
    def _merger(self) -> FleetMerger:
        if self.fleet is None:
            now = time.monotonic()
            self.fleet = FleetMerger(started_at=now, partitions=self.partitions)
            for key, value in self._read_changelog(self.fleet_table, 0).items():
                self.fleet.load(key.decode(), value, now)
        return self.fleet

    async def _fleet_moved(self, app: Any, partitions: Any = (), **kwargs: Any) -> None:
        """The fleet merge's input changed hands: what this worker holds in memory may be
        behind what another owner wrote meanwhile; it is read again from the changelog."""
        if any(tp.topic == self.fleet_name for tp in partitions):
            self.fleet = None

    async def _run_fleet(self, stream: Any) -> None:
        async for value in stream:
            merger = self._merger()
            now = time.monotonic()
            if value != b"tick":
                p, wm, partials, has_data = decode_report(value)
                merger.report(p, wm, partials, has_data, now=now)
            box = self.outbox
            for rec in merger.advance(now):
                WINDOWS.labels("fleet").inc()
                box.produce(self.names[AGGREGATES], self.serde.encode("aggregate", rec), b"*")
            await box.flush_async()
            changelog = self.fleet_table.changelog_topic.get_topic_name()
            for key, data in merger.take_dirty().items():
                box.produce(changelog, data, key.encode(), partition=0)
            await box.flush_async()  # before faust acks (and commits) the report

    async def _tick(self) -> None:
        await self.fleet_topic.send(key=b"fleet", value=b"tick")


def processor(app: Any, settings: Settings) -> EventTimeProcessor:
    """The app's event-time processor (declared on first use)."""
    proc = getattr(app, "clawstream_event_time", None)
    if proc is None:
        proc = app.clawstream_event_time = EventTimeProcessor(app, settings)
    return proc


def register(app: Any, settings: Settings) -> None:
    """Event-time tumbling/hopping windows -> claw.aggregates.v1, late -> claw.late.v1."""
    processor(app, settings).enabled.add("windows")
