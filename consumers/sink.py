"""The ClickHouse sink: Kafka topics -> batches -> column-oriented inserts -> offset commit.

Guarantees, and how:
- At-least-once: offsets are committed (synchronously) only after every insert of the batch
  succeeded and every dead letter of the batch was acknowledged.
- Never twice in queries: raw tables are ReplacingMergeTree keyed by event_id and readers use
  FINAL (`consumers.clickhouse.query` sets final=1). On top of that, after a crash the sink
  does not even re-insert: each row stores its Kafka topic/partition/offset, and on partition
  assignment the sink seeks past the highest offset already in ClickHouse when that lies
  within one batch of the committed offset (i.e. the crash hit between insert and commit).
- Bad input never stops it: undecodable messages, records that cannot become rows, and
  events on the wrong topic go to the DLQ with the reason in headers.
- ClickHouse down: inserts are retried with exponential backoff (tenacity) until they work
  or the sink is asked to stop (then nothing is committed and the batch is redelivered).
- SIGTERM/SIGINT: finish the current batch, commit, leave the group.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from clawstream.kafka.config import client_config
from clawstream.kafka.deadletter import DeadLetterQueue, dead_letter_queue
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.avroblock import (
    OFFSET_SQL,
    PARTITION_SQL,
    BlockWriter,
    extended_schema,
    structure,
)
from consumers.tables import LATE_EVENTS, TABLES, RowError, TableSpec, late_row, primary_spec
from schemas.registry import contract
from schemas.serde import SOE_HEADER_LEN, SOE_MAGIC, DecodeError, Serde
from schemas.topics import DERIVED_TOPICS, EVENT_TOPICS, LATE, TOPICS

log = logging.getLogger(__name__)
COMPONENT = "sink"
#: how long `until_idle` keeps waiting for a first partition assignment
ASSIGNMENT_WAIT_S = 60.0
#: route type of claw.late.v1: original events of any type, landed in `late_events` with the
#: windows they missed (from the headers); always decoded in Python
LATE_ROUTE = "late"

# --- metrics (module level: one registry per process) -------------------------------------------
ROWS = Counter("clawstream_sink_rows_inserted_total", "Rows inserted into ClickHouse", ["table"])
MESSAGES = Counter("clawstream_sink_messages_total", "Messages consumed", ["topic"])
BATCHES = Counter("clawstream_sink_batches_total", "Batches inserted and committed")
BATCH_ROWS = Histogram("clawstream_sink_batch_rows", "Rows per committed batch",
                       buckets=(10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000))
INSERT_SECONDS = Histogram("clawstream_sink_insert_seconds", "Latency of one table insert",
                           ["table"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                               5, 10))
INSERT_ERRORS = Counter("clawstream_sink_insert_errors_total", "Failed insert attempts", ["table"])
DLQ_MESSAGES = Counter("clawstream_sink_dlq_messages_total", "Messages sent to the DLQ",
                       ["reason"])
LAG = Gauge("clawstream_sink_consumer_lag",
            "Messages not yet committed (in ClickHouse): partition end minus committed offset",
            ["topic", "partition"])
FETCH_LAG = Gauge("clawstream_sink_fetch_lag",
                  "Messages not yet handed to the sink: partition end minus position",
                  ["topic", "partition"])
LAST_COMMIT = Gauge("clawstream_sink_last_commit_timestamp_seconds", "Time of the last commit")


def default_topics() -> list[str]:
    """Logical topics the sink reads: every event topic, derived ones that have tables, and
    the late side output."""
    out = list(EVENT_TOPICS)
    for name in DERIVED_TOPICS:
        schema = TOPICS[name].schema
        if schema and contract().get(schema).event_type in TABLES:
            out.append(name)
    out.append(LATE)
    return out


def _event_type_of_topic(logical: str) -> str | None:
    schema = TOPICS[logical].schema if logical in TOPICS else None
    return contract().get(schema).event_type if schema else None


def _primary(route: _Route) -> TableSpec | None:
    """The table whose Kafka offsets tell where a topic's rows stand."""
    return LATE_EVENTS if route.event_type == LATE_ROUTE else primary_spec(route.event_type)


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


@dataclass
class _Batch:
    """What one commit covers: fast-path containers, Python-built rows, offsets to commit."""

    fast: list[tuple[_Route, bytes, int, list[Any]]]
    slow: list[tuple[TableSpec, list[Any]]]
    offsets: list[TopicPartition]
    counts: dict[str, int]


class _Route:
    """Per physical topic: the expected event type, its tables' row buffers, and the fast
    path's container writer (None when the fast path does not apply)."""

    __slots__ = ("buffers", "event_type", "fast", "fast_header", "fast_msgs", "fast_sql",
                 "specs", "topic")

    def __init__(self, topic: str, event_type: str, specs: Sequence[TableSpec],
                 buffers: dict[str, list[Any]], fast: bool) -> None:
        self.topic = topic
        self.event_type = event_type
        self.specs = tuple((s, buffers[s.table]) for s in specs)
        self.fast: BlockWriter | None = None
        self.fast_header = b""
        self.fast_msgs: list[Any] = []
        self.fast_sql: list[tuple[TableSpec, str]] = []
        if fast and all(s.select is not None for s in specs):
            schema = contract().get(event_type)
            ext = extended_schema(schema.expanded)
            self.fast = BlockWriter(ext)
            self.fast_header = SOE_MAGIC + schema.fingerprint
            literal = "'" + topic.replace("\\", "\\\\").replace("'", "\\'") + "'"
            struct_sql = structure(ext)
            for spec in specs:
                assert spec.select is not None
                exprs = ", ".join(e.replace("{topic}", literal).replace("{offset}", OFFSET_SQL)
                                  .replace("{partition}", PARTITION_SQL) for e in spec.select)
                self.fast_sql.append((spec, (
                    f"INSERT INTO {spec.table} ({', '.join(spec.columns)}) SELECT {exprs} "
                    f"FROM file('{{path}}', 'Avro', '{struct_sql}') {spec.array_join}"
                ).strip()))


class Sink:
    """One sink consumer; `run()` until stopped, idle or caught up."""

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Iterable[str] | None = None,
        client: Client | None = None,
        resume_from_clickhouse: bool = True,
        serve_endpoint: bool = True,
        serve_metrics_endpoint: bool = True,
        consumer_config: dict[str, Any] | None = None,
        fast_path: bool = True,
    ) -> None:
        self.settings = settings
        logical = list(topics) if topics else default_topics()
        self.routes: dict[str, _Route] = {}
        self.buffers: dict[str, list[Any]] = {}
        self.specs: dict[str, TableSpec] = {}
        for name in logical:
            if name == LATE:
                et, specs = LATE_ROUTE, (LATE_EVENTS,)
            else:
                et = _event_type_of_topic(name)
                if et is None or et not in TABLES:
                    raise ValueError(
                        f"topic {name!r} has no ClickHouse table (consumers/tables.py)")
                specs = TABLES[et]
            for spec in specs:
                self.buffers.setdefault(spec.table, [])
                self.specs[spec.table] = spec
            self.routes[settings.topic(name)] = _Route(
                settings.topic(name), et, specs, self.buffers,
                fast=fast_path and settings.is_embedded_clickhouse and et != LATE_ROUTE)
        # secondary (multi-row) tables first, so a primary row implies all rows are in
        self.insert_order = sorted(self.specs.values(), key=lambda s: s.primary)
        self.resume_from_clickhouse = resume_from_clickhouse
        self.serve_endpoint = serve_endpoint
        self.serve_metrics_endpoint = serve_metrics_endpoint
        self.serde = Serde.for_registry(settings.schema_registry_url)
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._client = client
        self._owns_client = client is None
        self._owner: ch.ChdbOwner | None = None
        self._owner_client: Client | None = None
        self._offsets: dict[tuple[str, int], int] = {}
        self._inflight: tuple[_Batch, Future[int]] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")
        self._client_lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._batch_rows = 0
        self._batch_started = 0.0
        self._assigned: set[tuple[str, int]] = set()
        self._eof: set[tuple[str, int]] = set()
        self._consumer_config = consumer_config or {}
        self.consumer: Consumer | None = None
        self.dlq: DeadLetterQueue | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect ClickHouse (migrate), start the owner endpoint, subscribe."""
        claim = self.serve_endpoint and self.settings.is_embedded_clickhouse
        if claim:  # readers wait for our endpoint instead of racing us for the lock
            ch.announce_owner(self.settings, None)
        try:
            if self._client is None:
                self._client = ch.connect(self.settings, wait=60.0)
            ch.migrate(self._client)
        except Exception:
            if claim:
                ch.withdraw_owner(self.settings)
            raise
        if self.serve_endpoint and self.settings.is_embedded_clickhouse:
            import clickhouse_connect

            self._owner_client = clickhouse_connect.get_client(
                dsn=self.settings.resolved_clickhouse_dsn,
                database=self.settings.clickhouse_database,
            )
            self._owner = ch.ChdbOwner(self.settings, self._owner_client)
            self._owner.start()
        if self.serve_metrics_endpoint:
            from clawstream.metrics import serve_metrics

            serve_metrics(self.settings.sink_metrics_port, self.settings.metrics_host)
        self.dlq = dead_letter_queue(self.settings, "sink", COMPONENT, on_sent=self._dlq_sent)
        # (a killed sink's partitions move to its successor after the runtime's session timeout)
        self.consumer = Consumer(client_config(self.settings, "sink", "consumer", {
            "group.id": self.settings.sink_group,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 100,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
            "statistics.interval.ms": 5000,
            "stats_cb": self._on_stats,
            "client.id": f"clawstream-sink-{self.settings.topic_namespace or 'default'}",
            **self._consumer_config,
        }))
        self.consumer.subscribe(list(self.routes), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def close(self) -> None:
        """Flush what is pending, commit, leave the group, release ClickHouse."""
        try:
            if self.consumer is not None:
                self._flush()
        finally:
            self._inflight = None
            self._writer.shutdown(wait=True)
            if self.consumer is not None:
                self.consumer.close()
                self.consumer = None
            if self.dlq is not None:
                self.dlq.close()
            if self._owner is not None:
                self._owner.stop()
                self._owner = None
            if self._owner_client is not None:
                self._owner_client.close()
                self._owner_client = None
            if self._owns_client and self._client is not None:
                self._client.close()
                self._client = None

    def stop(self) -> None:
        """Ask `run` to finish its batch and return (safe from signal handlers)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- main loop -------------------------------------------------------------------------------
    def run(self, *, once: bool = False, until_idle: float | None = None,
            max_seconds: float | None = None) -> SinkStats:
        """Consume until stopped; `once`: until every assigned partition is drained;
        `until_idle`: until no message came for that many seconds."""
        if self.consumer is None:
            self.open()
        assert self.consumer is not None
        consumer = self.consumer
        batch_rows_max = self.settings.sink_batch_rows
        batch_seconds = self.settings.sink_batch_seconds
        started = last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                msgs = consumer.consume(num_messages=min(10_000, batch_rows_max), timeout=0.1)
                now = time.monotonic()
                if msgs:
                    if self._batch_rows == 0 and not self._offsets:
                        self._batch_started = now
                    if self._handle(msgs):
                        last_message = now
                        if self.stats.first_message_at is None:
                            self.stats.first_message_at = now
                if self._inflight is not None and self._inflight[1].done():
                    self._drain()
                if self._offsets and (self._batch_rows >= batch_rows_max
                                      or now - self._batch_started >= batch_seconds):
                    self._submit()
                if once and self._assigned and self._eof >= self._assigned and not msgs:
                    break
                if not self._assigned and now - started < ASSIGNMENT_WAIT_S:
                    # not idle, waiting for the group: a killed predecessor keeps its
                    # partitions until its session times out
                    last_message = now
                if until_idle is not None and now - last_message >= until_idle:
                    break
                if max_seconds is not None and now - started >= max_seconds:
                    break
            self._flush()
        finally:
            self.close()
        return self.stats

    def _handle(self, msgs: list[Any]) -> bool:
        """Decode and buffer one fetched list; True if any real message was in it."""
        routes = self.routes
        decode = self.serde.decode
        buffers = self.buffers
        offsets = self._offsets
        eof = self._eof
        counts = self._counts
        n_msgs = 0
        got = False
        rows = 0
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add((msg.topic(), msg.partition()))
                elif err.fatal():
                    raise KafkaException(err)
                else:
                    log.warning("consumer error: %s", err)
                continue
            got = True
            topic = msg.topic()
            partition = msg.partition()
            offset = msg.offset()
            offsets[(topic, partition)] = offset
            counts[topic] = counts.get(topic, 0) + 1
            n_msgs += 1
            if eof:
                eof.discard((topic, partition))
            route = routes[topic]
            value = msg.value()
            if route.fast is not None and value is not None \
                    and value.startswith(route.fast_header):
                route.fast.add(partition, offset, memoryview(value)[SOE_HEADER_LEN:])
                route.fast_msgs.append(msg)
                rows += 1
                continue
            rows += self._slow(msg, route, decode, buffers)
        self._batch_rows += rows
        self.stats.messages += n_msgs
        return got

    def _slow(self, msg: Any, route: _Route, decode: Any,
              buffers: dict[str, list[Any]]) -> int:
        """Decode one message in Python and buffer its rows (or dead-letter it)."""
        topic, partition, offset = route.topic, msg.partition(), msg.offset()
        try:
            record = decode(msg.value())
        except DecodeError as exc:
            self._dead(msg, exc.reason, exc.detail)
            return 0
        late = route.event_type == LATE_ROUTE
        if record.schema.event_type != route.event_type and not late:
            self._dead(msg, "wrong-topic", f"{record.schema.name} event on {topic}, which "
                       f"carries {route.event_type} events")
            return 0
        rec = record.record
        try:
            if late:
                built = [(LATE_EVENTS.table, late_row(rec, record.schema.event_type,
                                                      msg.headers(), topic, partition, offset),
                          False)]
            else:
                built = [(spec.table, spec.row(rec, topic, partition, offset), spec.multi)
                         for spec, _buf in route.specs]
        except (RowError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self._dead(msg, "invalid-record", f"{type(exc).__name__}: {exc}")
            return 0
        rows = 0
        for table, made, multi in built:
            buf = buffers.setdefault(table, [])
            if multi:
                buf.extend(made)
                rows += len(made)
            else:
                buf.append(made)
                rows += 1
        return rows

    def _dead(self, msg: Any, reason: str, detail: str) -> None:
        assert self.dlq is not None
        log.warning("DLQ %s[%s]@%s: %s: %s", msg.topic(), msg.partition(), msg.offset(),
                    reason, detail[:200])
        self.dlq.send(msg, reason, detail)

    def _dlq_sent(self, reason: str) -> None:
        DLQ_MESSAGES.labels(reason).inc()
        self.stats.dead_letters += 1

    # -- batch end: insert (on the writer thread), then commit (here) --------------------------
    def _flush(self) -> None:
        """Write everything pending and commit it before returning."""
        self._submit()
        self._drain()

    def _submit(self) -> None:
        """Hand the pending batch to the writer thread (after the previous one committed).

        One batch is written while the next is consumed and built: chdb releases the GIL, so
        ClickHouse's work overlaps with Kafka fetching and row building.
        """
        if not self._offsets:
            return
        batch = self._cut()
        self._drain()
        self._inflight = (batch, self._writer.submit(self._write, batch))

    def _cut(self) -> _Batch:
        fast = []
        for route in self.routes.values():
            if route.fast is not None and route.fast.count:
                fast.append((route, route.fast.getvalue(), route.fast.count, route.fast_msgs))
                route.fast.clear()
                route.fast_msgs = []
        slow = []
        for spec in self.insert_order:
            buf = self.buffers[spec.table]
            if buf:
                slow.append((spec, buf[:]))
                buf.clear()
        batch = _Batch(fast, slow,
                       [TopicPartition(t, p, o + 1) for (t, p), o in self._offsets.items()],
                       dict(self._counts))
        self._offsets.clear()
        self._counts.clear()
        self._batch_rows = 0
        self._batch_started = time.monotonic()
        return batch

    def _drain(self) -> None:
        """Wait for the batch being written, then commit its offsets."""
        if self._inflight is None:
            return
        batch, future = self._inflight
        self._inflight = None
        total = future.result()  # an insert that gave up raises here: nothing is committed
        assert self.consumer is not None
        try:
            self.consumer.commit(offsets=batch.offsets, asynchronous=False)
        except KafkaException as exc:
            # Rows are in; a lost commit only means redelivery, which the resume check and
            # ReplacingMergeTree absorb.
            log.warning("offset commit failed (%s); rows stay, redelivery is deduplicated", exc)
        else:
            LAST_COMMIT.set_to_current_time()
        self.stats.rows += total
        self.stats.batches += 1
        self.stats.last_commit_at = time.monotonic()
        BATCHES.inc()
        BATCH_ROWS.observe(total)
        for topic, n in batch.counts.items():
            MESSAGES.labels(topic).inc(n)
        log.debug("batch: %d rows from %d partitions committed", total, len(batch.offsets))

    def _write(self, batch: _Batch) -> int:
        """Writer thread: every insert of a batch, then the DLQ acknowledgements."""
        assert self.dlq is not None
        total = 0
        redo: dict[str, list[Any]] = {}
        for route, data, n, msgs in batch.fast:
            total += self._insert_fast(route, data, n, msgs, redo)
        slow = dict(batch.slow)  # TableSpec -> rows
        for table, rows in redo.items():
            if rows:
                spec = self.specs[table]
                slow[spec] = slow.get(spec, []) + rows
        for spec in self.insert_order:  # secondary tables first
            rows = slow.get(spec)
            if rows:
                self._insert(spec, rows)
                total += len(rows)
                ROWS.labels(spec.table).inc(len(rows))
        self.dlq.flush()
        return total

    def _insert_fast(self, route: _Route, data: bytes, n: int, msgs: list[Any],
                     redo: dict[str, list[Any]]) -> int:
        """Insert a topic's fast-path container; if ClickHouse rejects it, decode its messages
        in Python into `redo` (bad ones go to the DLQ)."""
        assert self._client is not None
        tmp_dir = self.settings.data_dir / "sink-tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        path = tmp_dir / f"{os.getpid()}-{route.event_type}.avro"
        path.write_bytes(data)
        quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
        total = 0
        try:
            for spec, sql in route.fast_sql:
                t0 = time.perf_counter()
                with self._client_lock:
                    self._client.command(sql.replace("{path}", quoted))
                    rows = n if not spec.multi else int(self._client.command(
                        f"SELECT count() FROM file('{quoted}', 'Avro') {spec.array_join}"))
                INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)
                ROWS.labels(spec.table).inc(rows)
                total += rows
        except Exception as exc:
            # in-process engine, local file: a failure means bad bytes in the batch (if not,
            # the careful path's own insert fails too, and retries with backoff)
            INSERT_ERRORS.labels(route.event_type).inc()
            log.warning("fast path rejected a %s batch (%s); redoing it record by record",
                        route.event_type, str(exc).split("\n")[0][:300])
            decode = self.serde.decode
            for msg in msgs:
                self._slow(msg, route, decode, redo)
        finally:
            path.unlink(missing_ok=True)
        return total

    def _retrying(self, table: str, fn: Any) -> Any:
        """Run `fn` with exponential backoff while ClickHouse fails; give up only when asked
        to stop (then nothing is committed and the batch comes again)."""

        def give_up(state: RetryCallState) -> bool:
            return self._stop.is_set() and state.attempt_number >= 3

        def should_retry(exc: BaseException) -> bool:
            INSERT_ERRORS.labels(table).inc()
            return True

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("insert into %s failed (attempt %d), retrying: %s", table,
                        state.attempt_number, exc)

        return Retrying(
            retry=retry_if_exception(should_retry),
            wait=wait_exponential(multiplier=0.2, max=15),
            stop=give_up,
            before_sleep=before_sleep,
            reraise=True,
        )(fn)

    def _insert(self, spec: TableSpec, rows: list[Any]) -> None:
        assert self._client is not None
        client = self._client
        columns = list(zip(*rows, strict=True))

        def attempt() -> None:
            t0 = time.perf_counter()
            with self._client_lock:
                client.insert(spec.table, columns, column_names=list(spec.columns),
                              column_oriented=True)
            INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)

        self._retrying(spec.table, attempt)

    # -- rebalance: resume where ClickHouse already is -------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.resume_from_clickhouse and partitions:
            try:
                partitions = self._resume_positions(consumer, partitions)
            except Exception as exc:  # never block assignment on this optimisation
                log.warning("resume-from-ClickHouse check failed (%s); using committed offsets",
                            exc)
        self._assigned.update((p.topic, p.partition) for p in partitions)
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._offsets or self._inflight is not None:
            try:
                self._flush()
            except Exception as exc:
                log.error("flush on revoke failed: %s", exc)
        for p in partitions:
            self._assigned.discard((p.topic, p.partition))
            self._eof.discard((p.topic, p.partition))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self._assigned.discard((p.topic, p.partition))

    def _resume_positions(self, consumer: Consumer,
                          partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Seek past offsets already inserted by a run that died before committing them."""
        stored = self.clickhouse_offsets({p.topic for p in partitions})
        if not stored:
            return partitions
        committed = consumer.committed(partitions, timeout=15)
        slack = max(self.settings.sink_batch_rows, 1)
        candidates: dict[tuple[str, int], tuple[int, int]] = {}  # -> (base, offset in CH)
        for tp in committed:
            in_ch = stored.get((tp.topic, tp.partition))
            if in_ch is None:
                continue
            base = tp.offset
            if base == OFFSET_INVALID or base < 0:
                base, _high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=10)
            if base <= in_ch + 1 <= base + slack:
                candidates[(tp.topic, tp.partition)] = (base, in_ch)
        confirmed = self._same_messages({k: v[1] for k, v in candidates.items()})
        out = []
        for tp in committed:
            pos = tp.offset
            key = (tp.topic, tp.partition)
            if key in confirmed:
                base, in_ch = candidates[key]
                skipped = in_ch + 1 - base
                if skipped:
                    log.info("resume %s[%d] at %d: %d messages already in ClickHouse",
                             tp.topic, tp.partition, in_ch + 1, skipped)
                    self.stats.skipped_on_resume[f"{tp.topic}[{tp.partition}]"] = skipped
                pos = in_ch + 1
            out.append(TopicPartition(tp.topic, tp.partition, pos))
        return out

    def _same_messages(self, offsets: dict[tuple[str, int], int],
                       timeout: float = 5.0) -> set[tuple[str, int]]:
        """The partitions whose Kafka message at the given offset is the one ClickHouse stored.

        Guards the resume skip against a topic that was deleted and created again: its offsets
        restart, and rows of the old incarnation must not make the sink skip new messages."""
        if not offsets:
            return set()
        assert self._client is not None
        stored: dict[tuple[str, int], str] = {}
        for (topic, partition), offset in offsets.items():
            spec = self._primary_of(topic)
            if spec is None:
                continue
            with self._client_lock:
                res = self._client.query(
                    f"SELECT toString(event_id) FROM {spec.table} WHERE kafka_topic = "
                    "{t:String} AND kafka_partition = {p:UInt16} AND kafka_offset = {o:UInt64} "
                    "LIMIT 1", parameters={"t": topic, "p": partition, "o": offset})
            if res.result_rows:
                stored[(topic, partition)] = str(res.result_rows[0][0])
        if not stored:
            return set()
        probe = Consumer(client_config(self.settings, "sink", "consumer", {
            "group.id": f"{self.settings.sink_group}-resume-probe",
            "auto.offset.reset": "error", "logger": log}))
        confirmed: set[tuple[str, int]] = set()
        try:
            probe.assign([TopicPartition(t, p, offsets[(t, p)]) for t, p in stored])
            pending = set(stored)
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                msg = probe.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.topic() is not None:  # e.g. offset out of range: a new topic
                        pending.discard((msg.topic(), msg.partition()))
                    continue
                key = (msg.topic(), msg.partition())
                if key not in pending or msg.offset() != offsets[key]:
                    continue
                pending.discard(key)
                probe.pause([TopicPartition(*key)])
                try:
                    event_id = self.serde.decode(msg.value()).record["envelope"]["event_id"]
                except DecodeError:
                    continue
                if str(event_id) == stored[key]:
                    confirmed.add(key)
        finally:
            probe.close()
        return confirmed

    def _primary_of(self, topic: str) -> TableSpec | None:
        """The table holding one row per message of `topic` (where its offsets are)."""
        route = self.routes.get(topic)
        return _primary(route) if route else None

    def clickhouse_offsets(self, topics: set[str]) -> dict[tuple[str, int], int]:
        """Highest Kafka offset per (topic, partition) present in the primary tables."""
        assert self._client is not None
        out: dict[tuple[str, int], int] = {}
        for topic in topics:
            spec = self._primary_of(topic)
            if spec is None:
                continue
            with self._client_lock:
                res = self._client.query(
                    f"SELECT kafka_partition, max(kafka_offset) FROM {spec.table} "
                    "WHERE kafka_topic = {t:String} GROUP BY kafka_partition",
                    parameters={"t": topic},
                )
            for partition, offset in res.result_rows:
                out[(topic, int(partition))] = int(offset)
        return out

    # -- lag from librdkafka statistics ----------------------------------------------------------
    def _on_stats(self, stats_json: str) -> None:
        try:
            stats = json.loads(stats_json)
            for tname, t in stats.get("topics", {}).items():
                for pid, p in t.get("partitions", {}).items():
                    if pid == "-1":
                        continue
                    hi = p.get("hi_offset", -1)
                    if hi is None or hi < 0:
                        continue
                    committed = p.get("committed_offset", -1)
                    base = committed if committed is not None and committed >= 0 \
                        else p.get("lo_offset", 0)
                    LAG.labels(tname, pid).set(max(hi - base, 0))
                    app = p.get("app_offset", -1)
                    pos = app if app is not None and app >= 0 else p.get("lo_offset", 0)
                    FETCH_LAG.labels(tname, pid).set(max(hi - pos, 0))
        except (ValueError, AttributeError) as exc:
            log.debug("bad stats: %s", exc)


def run_sink(settings: Settings, **kwargs: Any) -> SinkStats:
    """Convenience for tests and the demo: build, run, close."""
    run_kwargs = {k: kwargs.pop(k) for k in ("once", "until_idle", "max_seconds") if k in kwargs}
    sink = Sink(settings, **kwargs)
    return sink.run(**run_kwargs)
