"""The ClickHouse sink: Kafka topics -> batches -> column-oriented inserts -> offset commit.

Guarantees, and how:
- At-least-once: offsets are committed (synchronously) only after every insert of the batch
  succeeded and every dead letter of the batch was acknowledged.
- Never twice in queries: raw tables are ReplacingMergeTree keyed by event_id and readers use
  FINAL (`consumers.clickhouse.query` sets final=1). On top of that, after a crash the sink
  does not even re-insert: it resumes from the offsets stored in ClickHouse
  (`consumers.sink.resume`, on partition assignment).
- Bad input never stops it: undecodable messages, records that cannot become rows, and
  events on the wrong topic go to the DLQ with the reason in headers.
- ClickHouse down: inserts are retried with exponential backoff until they work or the sink
  is asked to stop (then nothing is committed and the batch is redelivered).
- SIGTERM/SIGINT: finish the current batch, commit, leave the group.
- Several sinks share a group: into a server, each connects; into the embedded engine, the
  first owns it and the others insert through its endpoint, taking it over if it dies
  (`target`).

This module is the glue: the consumer loop is the runtime's (`clawstream.kafka.consumer`),
where messages go is `routing`, the batch being built `batches`, the inserts `writer`, which
ClickHouse they go to `target`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import KafkaException, Message, TopicPartition

from clawstream.kafka.consumer import GroupConsumer
from clawstream.kafka.deadletter import DeadLetterQueue, dead_letter_queue
from clawstream.settings import Settings
from consumers.sink import metrics
from consumers.sink.batches import Pending, SinkStats
from consumers.sink.resume import Resume
from consumers.sink.routing import Routing
from consumers.sink.target import Target
from consumers.sink.writer import BatchWriter, SharedClient
from schemas.serde import Serde

log = logging.getLogger(__name__)
COMPONENT = "sink"
#: how long `until_idle` keeps waiting for a first partition assignment
ASSIGNMENT_WAIT_S = 60.0
#: messages per read at most (a batch of rows spans several reads)
READ_MAX = 10_000
#: how long a read waits for a first message (the loop checks its batch's age this often)
READ_WAIT_S = 0.1


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
        self._topics = list(topics) if topics is not None else None
        self.routing = Routing(settings, self._topics, fast_path=fast_path)
        self.routes = self.routing.routes
        self.resume_from_clickhouse = resume_from_clickhouse
        self.serve_endpoint = serve_endpoint and settings.is_embedded_clickhouse
        self.serve_metrics_endpoint = serve_metrics_endpoint
        self.serde = Serde.for_registry(settings.schema_registry_url)
        self.stats = SinkStats()
        self.pending = Pending(self.routing, self.serde)
        self._stop = threading.Event()
        self._client = client
        self._owns_client = client is None
        self.target: Target | None = None
        self.client: SharedClient | None = None
        self._consumer_config = consumer_config or {}
        self.consumer: GroupConsumer | None = None
        self.dlq: DeadLetterQueue | None = None
        self.writer: BatchWriter | None = None
        self.resume: Resume | None = None
        self._until: tuple[bool, float | None, float | None] = (False, None, None)
        self._started = self._last_message = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect ClickHouse (migrate; with the embedded engine: own it and serve it, or
        insert through its owner: `target`), make the consumer."""
        self.target = Target(self.settings, serve_endpoint=self.serve_endpoint,
                             client=self._client)
        client = SharedClient(self.target.open(), self.target.recover)
        self.client = client
        if self.target.role == "guest":  # rows built here, sent in Native format
            self.routing = Routing(self.settings, self._topics, fast_path=False)
            self.routes = self.routing.routes
            self.pending = Pending(self.routing, self.serde)
        if self.serve_metrics_endpoint:
            from clawstream.metrics import serve_metrics

            serve_metrics(self.settings.sink_metrics_port, self.settings.metrics_host)
        self.dlq = dead_letter_queue(self.settings, "sink", COMPONENT, on_sent=self._dlq_sent)
        self.writer = BatchWriter(client, self.routing, self.serde, self.dlq,
                                  self.settings.data_dir / "sink-tmp", self._stop,
                                  deduplicate=bool(self.settings.clickhouse_cluster))
        self.resume = Resume(self.settings, client, self.routing, self.serde,
                             self.stats.skipped_on_resume)
        # (a killed sink's partitions move to its successor after the runtime's session timeout)
        self.consumer = GroupConsumer(
            self.settings, "sink", self.settings.sink_group, list(self.routes),
            overrides={
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.min.bytes": 1,
                "fetch.wait.max.ms": 100,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
                "statistics.interval.ms": 5000,
                "client.id": f"clawstream-sink-{self.settings.topic_namespace or 'default'}",
                **self._consumer_config,
            },
            batch_max=min(READ_MAX, self.settings.sink_batch_rows), poll_s=READ_WAIT_S,
            on_stats=metrics.record_lag)

    def close(self) -> None:
        """Release what `open` took (what `run` left pending is not committed)."""
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.writer is not None:
            self.writer.shutdown()
            self.writer = None
        if self.dlq is not None:
            self.dlq.close()
            self.dlq = None
        if self.client is not None:
            if self._owns_client:
                self.client.close()
            self.client = None
        if self.target is not None:
            self.target.close()
            self.target = None

    def stop(self) -> None:
        """Ask `run` to finish its batch and return (safe from signal handlers)."""
        self._stop.set()
        if self.consumer is not None:
            self.consumer.stop()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- the loop (the runtime's; these are its callbacks) --------------------------------------
    def run(self, *, once: bool = False, until_idle: float | None = None,
            max_seconds: float | None = None) -> SinkStats:
        """Consume until stopped; `once`: until every assigned partition is drained;
        `until_idle`: until no message came for that many seconds."""
        if self.consumer is None:
            self.open()
        assert self.consumer is not None
        self._until = (once, until_idle, max_seconds)
        self._started = self._last_message = time.monotonic()
        if self._stop.is_set():
            self.consumer.stop()
        try:
            self.consumer.run(self._on_batch, self._on_revoke, self._on_lost,
                              self._on_assign if self.resume_from_clickhouse else None)
        finally:
            self.close()
        return self.stats

    def _on_batch(self, msgs: list[Message]) -> None:
        assert self.consumer is not None and self.dlq is not None and self.writer is not None
        now = time.monotonic()
        pending = self.pending
        if msgs:
            if not pending and pending.rows == 0:
                pending.started = now
            self.dlq.each(msgs, pending.add)
            self.stats.messages += len(msgs)
            self._last_message = now
            if self.stats.first_message_at is None:
                self.stats.first_message_at = now
        if self.writer.done():
            self._drain()
        metrics.ASSIGNED.set(len(self.consumer.owned))
        if pending and (pending.rows >= self.settings.sink_batch_rows
                        or now - pending.started >= self.settings.sink_batch_seconds):
            self._submit()
        once, until_idle, max_seconds = self._until
        if not self.consumer.owned and now - self._started < ASSIGNMENT_WAIT_S:
            # not idle, waiting for the group: a killed predecessor keeps its partitions
            # until its session times out
            self._last_message = now
        if ((once and self.consumer.at_end() and not msgs)
                or (until_idle is not None and now - self._last_message >= until_idle)
                or (max_seconds is not None and now - self._started >= max_seconds)):
            self._flush()
            self.consumer.stop()

    def _on_assign(self, partitions: list[TopicPartition]) -> list[TopicPartition] | None:
        """Start past what ClickHouse already holds (never blocks the assignment)."""
        assert self.resume is not None and self.consumer is not None
        if self.consumer.consumer is None:
            return None
        try:
            return self.resume.positions(self.consumer.consumer, partitions)
        except Exception as exc:  # an optimisation: the committed offsets are always right
            log.warning("resume-from-ClickHouse check failed (%s); using committed offsets",
                        exc)
            return None

    def _on_revoke(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Before the partitions go: write and commit what is pending (committed here)."""
        if self.pending or (self.writer is not None and self.writer.busy):
            try:
                self._flush()
            except Exception as exc:
                log.error("flush on revoke failed: %s", exc)
        return []

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        """Nothing to do: what is pending for them is written (deduplicated if their new
        owner writes it too) and its commit refused."""

    def _dlq_sent(self, reason: str) -> None:
        metrics.DLQ_MESSAGES.labels(reason).inc()
        self.stats.dead_letters += 1

    # -- batch end: insert (on the writer thread), then commit (here) --------------------------
    def _flush(self) -> None:
        """Write everything pending and commit it before returning."""
        self._submit()
        self._drain()

    def _submit(self) -> None:
        """Hand the pending batch to the writer (after the previous one committed)."""
        if not self.pending:
            return
        assert self.writer is not None
        batch = self.pending.cut()
        self._drain()
        self.writer.submit(batch)

    def _drain(self) -> None:
        """Wait for the batch being written, then commit its offsets."""
        assert self.writer is not None and self.consumer is not None
        written = self.writer.collect()  # an insert that gave up raises: nothing committed
        if written is None:
            return
        batch, total = written
        try:
            self.consumer.commit_now(batch.offsets)
        except KafkaException as exc:
            # Rows are in; a lost commit only means redelivery, which the resume check and
            # ReplacingMergeTree absorb.
            log.warning("offset commit failed (%s); rows stay, redelivery is deduplicated", exc)
        else:
            metrics.LAST_COMMIT.set_to_current_time()
        self.stats.rows += total
        self.stats.batches += 1
        self.stats.last_commit_at = time.monotonic()
        metrics.BATCHES.inc()
        metrics.BATCH_ROWS.observe(total)
        for topic, n in batch.counts.items():
            metrics.MESSAGES.labels(topic).inc(n)
        log.debug("batch: %d rows from %d partitions committed", total, len(batch.offsets))


def run_sink(settings: Settings, **kwargs: Any) -> SinkStats:
    """Convenience for tests and the demo: build, run, close."""
    run_kwargs = {k: kwargs.pop(k) for k in ("once", "until_idle", "max_seconds") if k in kwargs}
    sink = Sink(settings, **kwargs)
    return sink.run(**run_kwargs)
