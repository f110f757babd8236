"""The migrations' two renderings: one node (what runs today) and a cluster (Replicated tables
per shard, Distributed tables by agent, ON CLUSTER DDL). No ClickHouse server runs here, so the
cluster rendering is checked three ways: by what it says (these unit tests), by the real
engine's parser (chdb's `formatQuery`), and by running it on chdb as a one-shard cluster whose
Distributed tables reach the local engine (without Keeper: Replicated engines become their
plain form and ON CLUSTER goes), then writing and reading through it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from clawstream.cli import cli
from clawstream.settings import Settings
from consumers import clickhouse as ch
from consumers.clickhouse.cluster import ClusterLayout, columns_of
from consumers.sink.batches import Batch
from consumers.sink.writer import BatchWriter, SharedClient, dedup_token, insert_settings
from consumers.tables import TableSpec

LAYOUT = ClusterLayout(cluster="clawstream")
NAME = re.compile(r"^(?:CREATE (?:OR REPLACE )?(?:MATERIALIZED )?(?:TABLE|VIEW)|ALTER TABLE"
                  r"|INSERT INTO)(?: IF NOT EXISTS)? (\w+)", re.I)


def single() -> list[str]:
    return [s for _m, stmts in ch.render(None) for s in stmts]


def cluster() -> list[str]:
    return [s for _m, stmts in ch.render(LAYOUT) for s in stmts]


def creates(statements: list[str], kind: str = "TABLE") -> dict[str, str]:
    out = {}
    for s in statements:
        m = re.match(rf"^CREATE {kind} (?:IF NOT EXISTS )?(\w+)", s, re.I)
        if m:
            out[m.group(1)] = s
    return out


def test_single_node_rendering_is_the_files_unchanged() -> None:
    files = [ch.MIGRATIONS_TABLE_DDL] + [s for m in ch.discover() for s in m.statements()]
    assert single() == files
    assert [m for m, _s in ch.render(None)][1:] == ch.discover()


def test_every_table_has_a_replicated_local_table_and_a_distributed_peer() -> None:
    one, many = creates(single()), creates(cluster())
    for name, stmt in one.items():
        if name == "schema_migrations":
            assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/" in many[name]
            continue
        local, peer = many[f"{name}_local"], many[name]
        engine = re.search(r"ENGINE = (\w+)\(([^)]*)\)?", stmt) or re.search(
            r"ENGINE = (\w+)", stmt)
        assert engine is not None
        args = engine.group(2) if engine.lastindex == 2 else ""
        expected = (f"ENGINE = Replicated{engine.group(1)}('/clickhouse/tables/{{shard}}/"
                    f"{{database}}/{{table}}', '{{replica}}'" + (f", {args})" if args else ")"))
        assert expected in local, name
        assert columns_of(local) == columns_of(stmt), f"{name}: columns differ"
        key = "cityHash64(agent_id)" if re.search(r"^\s*agent_id ", columns_of(stmt), re.M) \
            else "rand()"
        assert peer == (f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER clawstream AS "
                        f"{name}_local ENGINE = Distributed('clawstream', currentDatabase(), "
                        f"'{name}_local', {key})")
    # the event tables all shard by agent, so an event's copies meet on one shard
    for name in ("frames", "actions", "outcomes", "window_aggregates", "alerts", "agent_state"):
        assert many[name].endswith("cityHash64(agent_id))")


def test_views_read_local_tables_with_a_distributed_peer() -> None:
    one, many = creates(single(), "VIEW"), creates(cluster(), "VIEW")
    tables = creates(cluster())
    for name in one:
        local = many[f"{name}_local"]
        assert name not in many  # the name readers use is the Distributed table
        assert f"Distributed('clawstream', currentDatabase(), '{name}_local')" in tables[name]
        for ref in re.findall(r"\b(?:FROM|JOIN) (\w+)", local):
            assert ref.endswith("_local"), f"{name} reads {ref}"


def test_materialized_views_write_the_local_target_from_the_local_source() -> None:
    mvs = creates(cluster(), "MATERIALIZED VIEW")
    assert len(mvs) == len(creates(single(), "MATERIALIZED VIEW")) > 0
    for name, stmt in mvs.items():
        target = re.search(r" TO (\w+) AS", stmt)
        assert target and target.group(1).endswith("_local"), name
        assert all(r.endswith("_local") for r in re.findall(r"\bFROM (\w+)", stmt)), name


def test_every_ddl_runs_on_cluster_and_every_alter_reaches_both_tables() -> None:
    statements = cluster()
    for s in statements:
        if not s.upper().startswith("INSERT"):
            assert NAME.match(s) and " ON CLUSTER clawstream " in s, s[:100]
    alters = [s for s in statements if s.startswith("ALTER")]
    assert len(alters) == 2 * len([s for s in single() if s.startswith("ALTER")])
    for local, peer in zip(alters[::2], alters[1::2], strict=True):
        assert local.replace("_local ", " ", 1) == peer


def test_every_cluster_statement_parses_on_the_real_engine(tmp_path: Path) -> None:
    client = ch.connect(Settings(data_dir=tmp_path, chdb_endpoint_port=0))
    try:
        for statement in cluster():
            formatted = client.query("SELECT formatQuery({q:String})",
                                     parameters={"q": statement}).result_rows[0][0]
            assert formatted, statement[:100]
            ast = client.query("EXPLAIN AST " + statement).result_rows
            assert ast, statement[:100]
    finally:
        client.close()


CHDB_CLUSTER_CONFIG = """<clickhouse><tcp_port>9000</tcp_port>
  <remote_servers><clawstream><shard><internal_replication>true</internal_replication>
    <replica><host>localhost</host><port>9000</port></replica></shard></clawstream>
  </remote_servers></clickhouse>"""

#: runs in a process of its own (chdb reads config.xml from the working directory)
CHDB_SCRIPT = r"""
import json, sys
from chdb import session
s = session.Session()
s.query("CREATE DATABASE IF NOT EXISTS cs")
s.query("USE cs")
for statement in json.load(sys.stdin):
    s.query(statement)
for sql in sys.argv[1:]:
    print(json.dumps(str(s.query(sql, "JSONCompact"))))
"""


def without_keeper(statement: str) -> str:
    """What a one-shard chdb without Keeper can run: no ON CLUSTER, plain MergeTrees."""
    statement = statement.replace(" ON CLUSTER clawstream", "")
    return re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?", r"ENGINE = \1(",
                  statement)


def test_cluster_rendering_runs_as_a_one_shard_cluster(tmp_path: Path) -> None:
    """Distributed tables over the local ones, views and rollups behind them: rows written
    through the Distributed tables are read back through them, deduplicated with FINAL."""
    (tmp_path / "config.xml").write_text(CHDB_CLUSTER_CONFIG)
    event = ("INSERT INTO outcomes (event_id, agent_id, session_id, trace_id, event_time, seq, "
             "producer, producer_version, action_id, app, action_kind, status, duration_ms, "
             "executor, kafka_topic, kafka_partition, kafka_offset) VALUES "
             "('00000000-0000-0000-0000-000000000001', 'a1', 's', 't', '2026-01-01 00:00:00', 1, "
             "'p', '1', "
             "'x', 'app', 'click', 'success', 12.5, 'e', 'claw.outcomes.v1', 0, {o})")
    statements = [without_keeper(s) for s in cluster()] + [
        event.format(o=1), event.format(o=2),  # the same event twice
    ]
    reads = ["SELECT count() FROM outcomes FINAL",
             "SELECT count() FROM outcomes_local",
             "SELECT countMerge(outcomes) FROM outcomes_1m",
             "SELECT event_type, count() FROM events GROUP BY event_type",
             "SELECT count() FROM plan_progress",
             "SELECT engine FROM system.tables WHERE database = 'cs' AND name = 'outcomes'"]
    done = subprocess.run([sys.executable, "-c", CHDB_SCRIPT, *reads], cwd=tmp_path,
                          input=json.dumps(statements), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(json.loads(line))["data"] for line in done.stdout.splitlines()]
    assert str(rows[0][0][0]) == "1"
    assert str(rows[1][0][0]) == "2"  # stored twice, shown once
    assert str(rows[2][0][0]) == "2"  # rollups count inserts (as on one node)
    assert [r[0] for r in rows[3]] == ["outcome"]
    assert str(rows[4][0][0]) == "0"
    assert rows[5] == [["Distributed"]]


def test_cli_prints_both_renderings() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["migrate", "--render", "cluster", "--cluster", "prod"])
    assert out.exit_code == 0, out.output
    assert "CREATE TABLE IF NOT EXISTS actions_local ON CLUSTER prod" in out.output
    assert "Distributed('prod', currentDatabase(), 'actions_local', cityHash64(agent_id))" \
        in out.output
    plain = runner.invoke(cli, ["migrate", "--render", "single"])
    assert plain.exit_code == 0 and "ON CLUSTER" not in plain.output
    assert "CREATE TABLE IF NOT EXISTS actions\n" in plain.output


# -- inserts into a replicated cluster carry a deduplication token ----------------------------
def test_dedup_token_is_topic_partition_and_offsets() -> None:
    batch = Batch([], [], [], {}, {("claw.actions.v1", 3): (10, 19), ("claw.plans.v1", 0): (5, 5)})
    token = dedup_token("actions", batch.ranges)
    assert token == "actions|claw.actions.v1:3:10-19;claw.plans.v1:0:5-5"
    assert insert_settings("actions", batch, True)["insert_deduplication_token"] == token
    assert insert_settings("actions", batch, False) == {}


def test_a_retried_insert_is_dropped_by_a_deduplicating_table(tmp_path: Path) -> None:
    """What a replicated table does with the token, shown on chdb's MergeTree with a
    deduplication window (a plain MergeTree, like the single-node tables, ignores it): the
    same batch twice is stored once, though `inserted_at` differs; another batch is not."""
    client = ch.connect(Settings(data_dir=tmp_path, chdb_endpoint_port=0))
    try:
        client.command("CREATE TABLE t (event_id String, kafka_offset UInt64, inserted_at "
                       "DateTime64(3) DEFAULT now64(3)) ENGINE = MergeTree ORDER BY event_id "
                       "SETTINGS non_replicated_deduplication_window = 100")
        client.command("CREATE TABLE plain (event_id String) ENGINE = MergeTree ORDER BY "
                       "event_id")
        spec = TableSpec("t", ("event_id", "kafka_offset"), lambda *a: ())  # type: ignore[arg-type]
        writer = BatchWriter(SharedClient(client), None, None, None, tmp_path,  # type: ignore[arg-type]
                             threading.Event(), deduplicate=True)
        first = Batch([], [], [], {}, {("topic", 0): (0, 1)})
        rows = [("e1", 0), ("e2", 1)]
        for _retry in range(2):
            writer.insert(spec, rows, insert_settings("t", first, True))
        assert client.command("SELECT count() FROM t") == 2
        writer.insert(spec, rows, insert_settings("t", Batch([], [], [], {}, {
            ("topic", 0): (2, 3)}), True))
        assert client.command("SELECT count() FROM t") == 4
        for _retry in range(2):  # accepted, and without a window simply ignored
            client.insert("plain", [["e1"]], column_names=["event_id"],
                          settings=insert_settings("plain", first, True))
        assert client.command("SELECT count() FROM plain") == 2
    finally:
        client.close()


@pytest.mark.parametrize("cluster_name, expected", [("", False), ("clawstream", True)])
def test_the_sink_deduplicates_only_into_a_cluster(cluster_name: str, expected: bool) -> None:
    settings = Settings(_env_file=None, clickhouse_cluster=cluster_name)
    assert (ch.layout_of(settings) is not None) is expected
