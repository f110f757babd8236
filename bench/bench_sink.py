"""Sink throughput: rows/s from Kafka into chdb, against a direct clickhouse-connect insert.

Pre-loads N events (the fleet's type mix, sample records) into a fresh topic namespace on the
running broker, times `consumers.sink.Sink` draining them into a fresh chdb directory (first
message to last commit), then times a direct column-oriented insert of exactly the same rows
(same batch size, same engine, another database) in the same process, and prints both and
their ratio. Targets: >= 100k rows/s and >= 0.7x the direct insert.

    .venv/bin/python bench/bench_sink.py --events 500000
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clawstream.admin import create_topics, delete_topics  # noqa: E402
from clawstream.kafka.config import client_config  # noqa: E402
from clawstream.settings import Settings  # noqa: E402
from consumers import clickhouse as ch  # noqa: E402
from consumers.sink import Sink  # noqa: E402
from consumers.tables import TABLES  # noqa: E402
from schemas.registry import contract  # noqa: E402
from schemas.samples import sample  # noqa: E402
from schemas.serde import Serde  # noqa: E402

RAW_TYPES = ("frame", "detection", "plan", "action", "outcome", "heartbeat", "state_delta")
WEIGHTS = (2, 2, 1, 4, 4, 1, 1)


def build_events(n: int, seed: int = 1) -> list[tuple[str, str, bytes]]:
    """n encoded events: 2,000 distinct sample bodies per type, each copy with its own
    event_id/seq/time (so every row is a distinct event)."""
    rng = random.Random(seed)
    serde = Serde()
    base = {et: [sample(et, rng) for _ in range(2000)] for et in RAW_TYPES}
    now = int(time.time() * 1000)
    types = rng.choices(RAW_TYPES, WEIGHTS, k=n)
    out = []
    for i, et in enumerate(types):
        rec = base[et][i % 2000]
        env = rec["envelope"]
        agent = f"agent-{i % 50:03d}"
        env["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        env["agent_id"] = agent
        env["seq"] = i
        env["event_time"] = now + i // 100
        out.append((et, agent, serde.encode(et, rec)))
    return out


def preload(settings: Settings, events: list[tuple[str, str, bytes]]) -> Counter[str]:
    p = Producer(client_config(settings, "tool", "producer", {"linger.ms": 50,
                  "batch.size": 1_000_000, "compression.type": "lz4",
                  "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 2_000_000}))
    topics = {et: settings.topic(contract().get(et).topic) for et in RAW_TYPES}
    sent: Counter[str] = Counter()
    for et, agent, value in events:
        while True:
            try:
                p.produce(topics[et], value=value, key=agent.encode())
                break
            except BufferError:
                p.poll(0.05)
        sent[et] += 1
    assert p.flush(120) == 0
    return sent


def direct_insert(settings: Settings, events: list[tuple[str, str, bytes]],
                  batch_rows: int) -> tuple[int, float]:
    """Insert the same rows straight into another database; time only the inserts."""
    serde = Serde()
    buffers: dict[str, list] = {}
    order = []
    for specs in TABLES.values():
        for spec in specs:
            order.append(spec)
    order.sort(key=lambda s: s.primary)
    batches: list[dict[str, list]] = []
    rows_in_batch = 0
    for offset, (et, _agent, value) in enumerate(events):
        rec = serde.decode(value).record
        for spec in TABLES[et]:
            made = spec.row(rec, "direct", 0, offset)
            buf = buffers.setdefault(spec.table, [])
            if spec.multi:
                buf.extend(made)
                rows_in_batch += len(made)
            else:
                buf.append(made)
                rows_in_batch += 1
        if rows_in_batch >= batch_rows:
            batches.append(buffers)
            buffers, rows_in_batch = {}, 0
    if buffers:
        batches.append(buffers)
    client = ch.connect(settings, database="bench_direct")
    try:
        ch.migrate(client)
        total, elapsed = 0, 0.0
        for b in batches:
            t0 = time.perf_counter()
            for spec in order:
                rows = b.get(spec.table)
                if rows:
                    client.insert(spec.table, list(zip(*rows, strict=True)),
                                  column_names=list(spec.columns), column_oriented=True)
                    total += len(rows)
            elapsed += time.perf_counter() - t0
        return total, elapsed
    finally:
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--batch-rows", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep topics and data")
    ap.add_argument("--no-fast-path", action="store_true",
                    help="decode in Python (fastavro) instead of letting ClickHouse read Avro")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ns = f"bench{uuid.uuid4().hex[:8]}."
    data = Path(tempfile.mkdtemp(prefix="clawstream-bench-sink-"))
    base = Settings()
    settings = base.model_copy(update={
        "topic_namespace": ns, "data_dir": data, "sink_group": f"sink-{ns}",
        "chdb_endpoint_port": 0, "clickhouse_dsn": None,
        **({"sink_batch_rows": args.batch_rows} if args.batch_rows else {}),
    })
    create_topics(settings.bootstrap_servers, namespace=ns)
    try:
        t0 = time.perf_counter()
        events = build_events(args.events)
        t1 = time.perf_counter()
        sent = preload(settings, events)
        t2 = time.perf_counter()
        print(f"prepared {len(events):,} events in {t1 - t0:.1f}s, produced in {t2 - t1:.1f}s "
              f"({dict(sent)})")

        stats = Sink(settings, serve_endpoint=False, serve_metrics_endpoint=False,
                     fast_path=not args.no_fast_path).run(until_idle=3)
        sink_rate = stats.rows / stats.busy_seconds
        mode = "python decode" if args.no_fast_path else "fast path"
        print(f"sink ({mode}): {stats.messages:,} messages -> {stats.rows:,} rows in "
              f"{stats.busy_seconds:.2f}s ({stats.batches} batches of <= "
              f"{settings.sink_batch_rows:,} rows): {sink_rate:,.0f} rows/s, "
              f"{stats.messages / stats.busy_seconds:,.0f} messages/s")
        assert stats.messages == len(events), (stats.messages, len(events))

        rows, secs = direct_insert(settings, events, settings.sink_batch_rows)
        direct_rate = rows / secs
        print(f"direct: {rows:,} rows inserted in {secs:.2f}s: {direct_rate:,.0f} rows/s")
        print(f"ratio sink/direct: {sink_rate / direct_rate:.2f}x  "
              f"(targets: >= 100,000 rows/s and >= 0.7x)")
    finally:
        if not args.keep:
            from schemas.topics import TOPICS

            try:
                delete_topics(settings.bootstrap_servers, [settings.topic(t) for t in TOPICS])
            except Exception as exc:  # cleanup only
                print(f"(could not delete bench topics: {exc})")
            shutil.rmtree(data, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
