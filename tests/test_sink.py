"""The ClickHouse sink against the real broker and a real chdb engine in a tmp folder."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import sink_helpers
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_read import read_messages
from ports import free_port
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.sink import Sink
from consumers.sink.writer import BatchWriter, SharedClient
from consumers.tables import TABLES
from schemas.headers import parse_headers
from schemas.registry import contract
from schemas.samples import sample
from schemas.serde import Serde
from schemas.topics import DLQ

PER_TYPE_SQL = "SELECT event_type, count() FROM events GROUP BY event_type"


def counts_per_type(settings: Settings) -> Counter[str]:
    return Counter({k: int(v) for k, v in ch.query(settings, PER_TYPE_SQL).rows})


def physical_duplicates(settings: Settings) -> dict[str, int]:
    """Rows stored more than once per event_id, ignoring FINAL (what merges would remove)."""
    out = {}
    with ch.local_client(settings) as client:
        for table in ("frames", "detection_frames", "plans", "actions", "outcomes",
                      "heartbeats", "state_deltas"):
            n, u = client.query(f"SELECT count(), uniqExact(event_id) FROM {table}",
                                settings={"final": 0}).result_rows[0]
            out[table] = int(n) - int(u)
    return out


# --- pure / local ---------------------------------------------------------------------------------


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Memory;
    /* block; comment */ SELECT "we;ird", `id;x` FROM a;
    SELECT 'it''s; fine', 'back\\'slash;';
    ;;
    """
    parts = ch.split_statements(sql)
    assert len(parts) == 3
    assert parts[0].startswith("CREATE TABLE a") and "'a;b'" in parts[0]
    assert '"we;ird"' in parts[1] and "`id;x`" in parts[1]
    assert parts[2] == "SELECT 'it''s; fine', 'back\\'slash;'"


@pytest.mark.parametrize("event_type", sorted(TABLES))
def test_row_functions_match_their_columns(event_type: str) -> None:
    rng = random.Random(3)
    serde = Serde()
    for _ in range(20):
        rec = serde.decode(serde.encode(event_type, sample(event_type, rng))).record
        for spec in TABLES[event_type]:
            made = spec.make(rec, "topic", 1, 2, "token:abc")
            rows = made if spec.multi else [made]
            for row in rows:
                assert len(row) == len(spec.columns), spec.table
                kafka = row[-4:] if spec.principal else row[-3:]
                assert kafka == (("topic", 1, 2, "token:abc") if spec.principal
                                 else ("topic", 1, 2))


def test_migrations_are_idempotent_and_queries_open_chdb_locally(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chdb_endpoint_port=0)
    client = ch.connect(settings)
    try:
        first = ch.migrate(client)
        second = ch.migrate(client)
        assert first == [m.version for m in ch.discover()]
        assert second == []
        # every statement again, as if the versions had not been recorded
        for mig in ch.discover():
            for stmt in mig.statements():
                client.command(stmt)
        versions = client.query("SELECT version FROM schema_migrations FINAL ORDER BY version")
        assert [r[0] for r in versions.result_rows] == first
        tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
        assert {"frames", "detections", "detection_frames", "plans", "actions", "outcomes",
                "heartbeats", "state_deltas", "events", "schema_migrations"} <= tables
    finally:
        client.close()
    # nobody holds the directory now: query() opens it itself, reader() once for many
    assert ch.query(settings, "SELECT count() FROM events").rows == [(0,)]
    with ch.reader(settings) as run:
        assert run("SELECT {n:UInt8} + 1 AS x", {"n": 1}) == ch.QueryResult(("x",), [(2,)],
                                                                            ("UInt16",))
        assert run("SELECT count() FROM actions").rows == [(0,)]
    with pytest.raises(ch.QueryError, match="UNKNOWN_TABLE"):
        ch.query(settings, "SELECT * FROM no_such_table")


def test_fast_path_rows_equal_python_rows(tmp_path: Path) -> None:
    """ClickHouse's own Avro decoding (fast path) stores exactly what the Python path does."""
    settings = Settings(data_dir=tmp_path / "data", chdb_endpoint_port=0, topic_namespace="x.")
    rng = random.Random(21)
    serde = Serde()
    sink = Sink(settings, serve_endpoint=False, serve_metrics_endpoint=False)
    client = ch.connect(settings, database="fast")
    slow = ch.connect(settings, database="slow")
    try:
        ch.migrate(client)
        ch.migrate(slow)
        writer = BatchWriter(SharedClient(client), sink.routing, serde, None,  # type: ignore[arg-type]
                             tmp_path / "tmp", threading.Event())
        for route in sink.routes.values():
            if route.fast is None:
                continue
            values = []
            for i in range(60):
                rec = sample(route.event_type, rng)
                if i % 3 == 0:  # nulls and empties where the schema allows
                    rec["envelope"]["parent_id"] = None
                values.append(serde.encode(route.event_type, rec))
            buffers: dict[str, list] = {}
            for offset, value in enumerate(values):
                principal = f"token:{offset % 2:016x}" if offset % 4 else ""  # some sent direct
                route.fast.add(4, offset, memoryview(value)[10:], principal.encode())
                rec = serde.decode(value).record
                for spec, _ in route.specs:
                    made = spec.make(rec, route.topic, 4, offset, principal)
                    buffers.setdefault(spec.table, []).extend(made if spec.multi else [made])
            data, n = route.fast.getvalue(), route.fast.count
            route.fast.clear()
            assert writer.insert_fast(route, data, n, [], {}) > 0
            for spec, _ in route.specs:
                slow.insert(spec.table, list(zip(*buffers[spec.table], strict=True)),
                            column_names=list(spec.columns), column_oriented=True)
                cols = ", ".join(spec.columns)
                order = "event_id" + (", element_index" if spec.multi else "")
                a = client.query(f"SELECT {cols} FROM fast.{spec.table} ORDER BY {order}")
                b = slow.query(f"SELECT {cols} FROM slow.{spec.table} ORDER BY {order}")
                assert len(a.result_rows) == len(buffers[spec.table])
                assert a.result_rows == b.result_rows, spec.table
    finally:
        client.close()
        slow.close()


# --- against the real broker ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_end_to_end_20_agents_x_1000_events_counts_exact(cs_settings: Settings) -> None:
    sent = sink_helpers.produce_fleet_or_samples(cs_settings, agents=20, per_agent=1000)
    assert sum(sent.values()) == 20_000
    stats = Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=5)
    assert stats.dead_letters == 0
    assert counts_per_type(cs_settings) == sent
    res = ch.query(cs_settings, "SELECT count(), uniqExact(event_id), uniqExact(agent_id) "
                                "FROM events")
    assert res.rows == [(20_000, 20_000, 20)]
    inserted = REGISTRY.get_sample_value("clawstream_sink_rows_inserted_total",
                                         {"table": "actions"})
    assert inserted is not None and inserted >= sent["action"]
    # one row per UI element, each tied to its detection event
    elements = ch.query(cs_settings, "SELECT sum(elements) FROM detection_frames").rows[0][0]
    assert ch.query(cs_settings, "SELECT count() FROM detections").rows == [(elements,)]


@pytest.mark.integration
def test_redelivery_never_shows_a_row_twice(cs_settings: Settings) -> None:
    """Both dedup layers: resume-from-ClickHouse offsets, and ReplacingMergeTree + FINAL."""
    sent = sink_helpers.produce(cs_settings, sink_helpers.encoded_events(4, 300, seed=11))
    Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=4)
    assert counts_per_type(cs_settings) == sent

    # a fresh group re-reads everything; the sink sees the offsets already in ClickHouse
    again = cs_settings.model_copy(update={"sink_group": cs_settings.sink_group + "-2"})
    stats = Sink(again, serve_metrics_endpoint=False).run(until_idle=4)
    assert stats.rows == 0 and sum(stats.skipped_on_resume.values()) == 1200
    assert physical_duplicates(cs_settings) == dict.fromkeys(physical_duplicates(cs_settings), 0)

    # without that check every event is stored twice, yet queries still count it once
    third = cs_settings.model_copy(update={"sink_group": cs_settings.sink_group + "-3"})
    stats = Sink(third, serve_metrics_endpoint=False, resume_from_clickhouse=False).run(
        until_idle=4)
    assert stats.messages == 1200
    assert sum(physical_duplicates(cs_settings).values()) > 0
    assert counts_per_type(cs_settings) == sent
    assert ch.query(cs_settings, "SELECT count() FROM actions").rows == [(sent["action"],)]


@pytest.mark.integration
def test_recreated_topic_is_not_mistaken_for_redelivery(cs_settings: Settings) -> None:
    """Offsets restart when a topic is deleted and created again; rows of its old incarnation
    in ClickHouse must not make a fresh sink skip the new messages."""
    from clawstream.admin import create_topics, delete_topics

    first = sink_helpers.produce(cs_settings, sink_helpers.encoded_events(2, 100, seed=21))
    Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=4)
    assert counts_per_type(cs_settings) == first

    names = [cs_settings.topic(contract().get(t).topic) for t in first]
    delete_topics(cs_settings.bootstrap_servers, names)
    for _ in range(60):  # deletion is asynchronous on the broker
        try:
            create_topics(cs_settings.bootstrap_servers, namespace=cs_settings.topic_namespace)
            break
        except Exception:
            time.sleep(0.5)
    second = sink_helpers.produce(cs_settings, sink_helpers.encoded_events(2, 100, seed=22))
    again = cs_settings.model_copy(update={"sink_group": cs_settings.sink_group + "-new"})
    stats = Sink(again, serve_metrics_endpoint=False).run(until_idle=4)
    assert sum(stats.skipped_on_resume.values()) == 0
    assert counts_per_type(cs_settings) == first + second


def _sink_process(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLAWSTREAM_SINK_BATCH_ROWS": "1500",
           "CLAWSTREAM_SINK_BATCH_SECONDS": "0.2", "CLAWSTREAM_SINK_METRICS_PORT": "0"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clawstream.cli", "sink", *args],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parent.parent,
        )


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_counts_exact(cs_settings: Settings, tmp_path: Path) -> None:
    events = sink_helpers.encoded_events(10, 1000, seed=5)
    sent = sink_helpers.produce(cs_settings, events)
    log = tmp_path / "sink.log"
    proc = _sink_process(cs_settings, log, "--until-idle", "30")
    try:
        # other processes query through the sink's endpoint while it owns chdb
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline:
            try:
                seen = ch.query(cs_settings, "SELECT count() FROM events").rows[0][0]
            except ch.ClickHouseUnavailable:
                seen = 0
            if seen > 0:
                break
            time.sleep(0.05)
        assert 0 < seen < 10_000, f"sink made no progress to interrupt ({seen}): {log.read_text()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the dead owner's endpoint file is stale; restart drains the rest
    proc = _sink_process(cs_settings, log, "--until-idle", "4")
    assert proc.wait(120) == 0, log.read_text()
    assert counts_per_type(cs_settings) == sent
    ids = ch.query(cs_settings, "SELECT count(), uniqExact(event_id) FROM events").rows[0]
    assert ids == (10_000, 10_000)
    assert set(physical_duplicates(cs_settings).values()) == {0}, log.read_text()
    assert "Cannot lock" not in log.read_text()


@pytest.mark.integration
def test_poison_messages_go_to_dlq_and_good_ones_land(cs_settings: Settings) -> None:
    serde = Serde()
    rng = random.Random(9)
    topic = cs_settings.topic(contract().get("action").topic)
    good_ids = []
    action = serde.encode("action", sample("action", rng))
    poison = {
        b"\x13\x37random bytes that are no avro": "bad-magic",
        b"\xc3\x01\x01\x02": "truncated",
        b"\xc3\x01" + b"\xee" * 8 + b"body": "unknown-fingerprint",
        action[:10] + b"\xff\xff\xff\xff\xff\xff": "corrupt-body",
        action[:-3]: "corrupt-body",
        serde.encode("heartbeat", sample("heartbeat", rng)): "wrong-topic",
    }
    bad_id = sample("action", rng)
    bad_id["envelope"]["event_id"] = "not-a-uuid"
    poison[serde.encode("action", bad_id)] = "invalid-record"
    p = Producer(client_config(cs_settings, "tool", "producer"))
    for value in poison:
        rec = sample("action", rng, agent_id="agent-p")
        good_ids.append(rec["envelope"]["event_id"])
        p.produce(topic, value=serde.encode("action", rec), key=b"agent-p")
        p.produce(topic, value=value, key=b"agent-p")
    p.produce(topic, value=None, key=b"agent-p")  # a tombstone-like empty message
    assert p.flush(30) == 0

    stats = Sink(cs_settings, serve_metrics_endpoint=False).run(until_idle=4)
    assert stats.dead_letters == len(poison) + 1

    got = ch.query(cs_settings, "SELECT toString(event_id) FROM actions").rows
    assert sorted(r[0] for r in got) == sorted(good_ids)

    dead = read_messages(cs_settings.bootstrap_servers, [cs_settings.topic(DLQ)],
                         min_count=len(poison) + 1, timeout=30)
    by_value = {m.value(): parse_headers(m.headers()) for m in dead}
    assert len(by_value) == len(poison) + 1
    for value, reason in poison.items():
        h = by_value[value]
        assert h["clawstream.error.reason"] == reason, h
        assert h["clawstream.source.topic"] == topic
        assert h["clawstream.failed.by"] == "sink"
        assert int(h["clawstream.source.offset"]) >= 0 and h["clawstream.error.detail"]
    assert by_value[None]["clawstream.error.reason"] == "empty"
    assert all(m.key() == b"agent-p" for m in dead)


TYPES_SQL = (
    "SELECT toDateTime64('2026-01-02 03:04:05.678', 3, 'UTC') AS t, toDate('2026-01-02') AS d, "
    "toUUID('0b7b5c1e-59b2-4d3c-9a59-3e6ea3c1d5b1') AS u, [1, 2] AS a, map('k', 'v') AS m, "
    "CAST(NULL AS Nullable(String)) AS n, 1.5 AS f, toUInt64(18446744073709551615) AS big, "
    "'naïve ✓' AS s"
)


@pytest.mark.integration
def test_sigterm_writes_the_pending_batch_commits_and_serves_metrics(
    cs_settings: Settings, tmp_path: Path
) -> None:
    sent = sink_helpers.produce(cs_settings, sink_helpers.encoded_events(4, 500, seed=3))
    port = free_port()
    log = tmp_path / "sink.log"
    env = {**os.environ, "CLAWSTREAM_SINK_BATCH_ROWS": "1000000",
           "CLAWSTREAM_SINK_BATCH_SECONDS": "600", "CLAWSTREAM_SINK_METRICS_PORT": str(port)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "clawstream.cli", "sink"], stdout=out,
                                stderr=subprocess.STDOUT, env=env,
                                cwd=Path(__file__).parent.parent)
    try:
        # the batch stays open (600 s); wait until librdkafka reports the partitions drained
        deadline = time.monotonic() + 60
        lags: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            except OSError:
                time.sleep(0.5)
                continue
            fams = {f.name: f for f in text_string_to_metric_families(text.decode())}
            lags = {f"{s.labels['topic']}[{s.labels['partition']}]": s.value
                    for s in fams["clawstream_sink_fetch_lag"].samples}
            if len(lags) >= 42 and not any(lags.values()):
                break
            time.sleep(0.5)
        assert len(lags) >= 42 and not any(lags.values()), lags
        # nothing committed yet: the group lag is everything that was sent
        uncommitted = sum(s.value for s in fams["clawstream_sink_consumer_lag"].samples)
        assert uncommitted == sum(sent.values())
        assert "clawstream_sink_insert_seconds" in fams and "clawstream_sink_batches" in fams
        assert ch.query(cs_settings, "SELECT count() FROM events").rows == [(0,)]
        through_owner = ch.query(cs_settings, TYPES_SQL)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert counts_per_type(cs_settings) == sent
    # the owner's endpoint returns what a local query returns, types included
    assert through_owner == ch.query(cs_settings, TYPES_SQL)
    c = Consumer(client_config(cs_settings, "tool", "consumer", {
                               "group.id": cs_settings.sink_group}))
    topic = cs_settings.topic(contract().get("action").topic)
    committed = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
    ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(6)]
    c.close()
    assert [max(tp.offset, 0) for tp in committed] == ends  # empty partitions: no commit
