"""Writing a batch into ClickHouse: inserts with retries, on a thread of their own.

One batch is written while the next is consumed and built: chdb releases the GIL, so
ClickHouse's work overlaps with Kafka fetching and row building. Inserts are retried with
exponential backoff (tenacity) while ClickHouse fails, until they work or the sink is asked
to stop (then the batch is not committed and comes again). A fast-path container that
ClickHouse rejects is redone message by message in Python, dead-lettering the bad ones.

Into a replicated cluster, every insert carries an `insert_deduplication_token` made of the
table and the batch's Kafka topic, partition and offset range (as ClickHouse's own Kafka
connector does): a retry of an insert that did arrive (its answer lost) is dropped by the
replicated table, although ClickHouse fills `inserted_at` anew and the block's hash differs;
the materialized views behind it deduplicate the same way. A non-replicated MergeTree ignores
the token unless it keeps a `non_replicated_deduplication_window`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from confluent_kafka import Message
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from clawstream.kafka.deadletter import DeadLetterQueue
from consumers.sink.batches import Batch
from consumers.sink.metrics import INSERT_ERRORS, INSERT_SECONDS, ROWS
from consumers.sink.routing import Route, Routing
from consumers.tables import TableSpec
from schemas.serde import Serde

log = logging.getLogger(__name__)
T = TypeVar("T")


class SharedClient:
    """The sink's ClickHouse client, one call at a time (the writer thread inserts while
    rebalance callbacks read the stored offsets). After a failed call, `recover` may give a
    client to replace it (a guest sink whose chdb owner moved or died: `target.Target`); the
    call is then tried once on it."""

    def __init__(self, client: Client,
                 recover: Callable[[Exception], Client | None] | None = None) -> None:
        self.client = client
        self.recover = recover
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Client], T]) -> T:
        with self._lock:
            try:
                return fn(self.client)
            except Exception as exc:
                fresh = self.recover(exc) if self.recover is not None else None
                if fresh is None:
                    raise
                old, self.client = self.client, fresh
                with contextlib.suppress(Exception):
                    old.close()
            return fn(self.client)

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def rows(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.call(lambda c: [tuple(r) for r in c.query(
            sql, parameters=parameters).result_rows])


def dedup_token(table: str, ranges: dict[tuple[str, int], tuple[int, int]]) -> str:
    """The deduplication token of one batch's insert into `table`: the same batch (topic,
    partition and offsets) always gives the same token."""
    parts = (f"{t}:{p}:{first}-{last}" for (t, p), (first, last) in sorted(ranges.items()))
    return f"{table}|{';'.join(parts)}"


def insert_settings(table: str, batch: Batch | None, deduplicate: bool) -> dict[str, Any]:
    """The ClickHouse settings of one insert of `batch` (a token when `deduplicate`)."""
    if not deduplicate or batch is None:
        return {}
    return {"insert_deduplicate": 1,
            "insert_deduplication_token": dedup_token(table, batch.ranges),
            "deduplicate_blocks_in_dependent_materialized_views": 1}


class BatchWriter:
    """Writes batches, one at a time, on its thread; `stopping` ends retries; `deduplicate`:
    inserts carry a deduplication token (the target is a replicated cluster)."""

    def __init__(self, client: SharedClient, routing: Routing, serde: Serde,
                 dlq: DeadLetterQueue, tmp_dir: Path, stopping: threading.Event, *,
                 deduplicate: bool = False) -> None:
        self.deduplicate = deduplicate
        self.client = client
        self.routing = routing
        self.serde = serde
        self.dlq = dlq
        self.tmp_dir = tmp_dir
        self.stopping = stopping
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")
        self._inflight: tuple[Batch, Future[int]] | None = None

    # -- the batch in flight --------------------------------------------------------------------
    def submit(self, batch: Batch) -> None:
        """Start writing `batch` (the previous one must have been collected)."""
        assert self._inflight is None, "collect the batch in flight first"
        self._inflight = (batch, self._thread.submit(self.write, batch))

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def done(self) -> bool:
        return self._inflight is not None and self._inflight[1].done()

    def collect(self) -> tuple[Batch, int] | None:
        """Wait for the batch in flight: it and its row count (raises if it was not
        written: then nothing may be committed)."""
        if self._inflight is None:
            return None
        batch, future = self._inflight
        self._inflight = None
        return batch, future.result()

    def shutdown(self) -> None:
        self._inflight = None
        self._thread.shutdown(wait=True)

    # -- writing (writer thread) ----------------------------------------------------------------
    def write(self, batch: Batch) -> int:
        """Every insert of a batch, then the DLQ acknowledgements; the rows inserted."""
        total = 0
        redo: dict[str, list[Any]] = {}
        for route, data, n, msgs in batch.fast:
            total += self.insert_fast(route, data, n, msgs, redo, batch)
        slow = dict(batch.slow)  # TableSpec -> rows
        for table, rows in redo.items():
            if rows:
                spec = self.routing.specs[table]
                slow[spec] = slow.get(spec, []) + rows
        for spec in self.routing.insert_order:  # secondary tables first
            table_rows = slow.get(spec)
            if table_rows:
                self.insert(spec, table_rows, insert_settings(spec.table, batch,
                                                              self.deduplicate))
                total += len(table_rows)
                ROWS.labels(spec.table).inc(len(table_rows))
        self.dlq.flush()
        return total

    def insert_fast(self, route: Route, data: bytes, n: int, msgs: list[Message],
                    redo: dict[str, list[Any]], batch: Batch | None = None) -> int:
        """Insert a topic's fast-path container; if ClickHouse rejects it, decode its messages
        in Python into `redo` (bad ones go to the DLQ)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self.tmp_dir / f"{os.getpid()}-{route.event_type}.avro"
        path.write_bytes(data)
        quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
        total = 0
        try:
            for spec, sql in route.fast_sql:
                t0 = time.perf_counter()

                def insert(c: Client, spec: TableSpec = spec, sql: str = sql) -> int:
                    c.command(sql.replace("{path}", quoted), settings=insert_settings(
                        spec.table, batch, self.deduplicate))
                    return n if not spec.multi else int(str(c.command(
                        f"SELECT count() FROM file('{quoted}', 'Avro') {spec.array_join}")))

                rows = self.client.call(insert)
                INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)
                ROWS.labels(spec.table).inc(rows)
                total += rows
        except Exception as exc:
            # in-process engine, local file: a failure means bad bytes in the batch (if not,
            # the careful path's own insert fails too, and retries with backoff)
            INSERT_ERRORS.labels(route.event_type).inc()
            log.warning("fast path rejected a %s batch (%s); redoing it record by record",
                        route.event_type, str(exc).split("\n")[0][:300])
            self.dlq.each(msgs, lambda m: route.buffer(m, self.serde, redo))
        finally:
            path.unlink(missing_ok=True)
        return total

    def insert(self, spec: TableSpec, rows: list[Any],
               settings: dict[str, Any] | None = None) -> None:
        """A column-oriented insert (with these ClickHouse settings), retried while ClickHouse
        fails: every retry carries the same settings, so the same token."""
        columns = list(zip(*rows, strict=True))

        def attempt() -> None:
            t0 = time.perf_counter()
            self.client.call(lambda c: c.insert(spec.table, columns,
                                                column_names=list(spec.columns),
                                                column_oriented=True, settings=settings))
            INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)

        self._retrying(spec.table, attempt)

    def _retrying(self, table: str, fn: Callable[[], None]) -> None:
        """Run `fn` with exponential backoff while ClickHouse fails; give up only when asked
        to stop (then nothing is committed and the batch comes again)."""

        def give_up(state: RetryCallState) -> bool:
            return self.stopping.is_set() and state.attempt_number >= 3

        def should_retry(exc: BaseException) -> bool:
            INSERT_ERRORS.labels(table).inc()
            return True

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("insert into %s failed (attempt %d), retrying: %s", table,
                        state.attempt_number, exc)

        Retrying(
            retry=retry_if_exception(should_retry),
            wait=wait_exponential(multiplier=0.2, max=15),
            stop=give_up,
            before_sleep=before_sleep,
            reraise=True,
        )(fn)
