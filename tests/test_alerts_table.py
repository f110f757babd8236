"""The `alerts` ClickHouse table: migration, row function, dedup by event_id, canned query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clawstream.settings import Settings, get_settings
from schemas.serde import Serde
from streams.alerting import alert_record
from streams.alerts import AlertEngine, parse_rules

T0 = 1_700_000_000_000


def _alert_records() -> list[dict]:
    from alerts_helpers import outcome

    e = AlertEngine(parse_rules("rules:\n - {name: Streak, kind: streak, count: 2}\n"
                                " - {name: Other, kind: streak, by: [app], count: 9}\n"))
    evs = []
    for i in range(2):
        evs += e.on_outcome(outcome(T0 + i, "failure", agent="a1"))
    evs += e.on_outcome(outcome(T0 + 5, "success", agent="a1"))
    for i in range(2):
        evs += e.on_outcome(outcome(T0 + 10 + i, "failure", agent="a2"))
    serde = Serde()
    # through the wire format, as the sink sees them
    return [serde.decode(serde.encode("alert", alert_record(ev))).record for ev in evs]


def test_alerts_table_rows_dedup_and_canned_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consumers.clickhouse import connect, migrate, run_query
    from consumers.tables import primary_spec, to_columns

    monkeypatch.setenv("CLAWSTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLAWSTREAM_CHDB_ENDPOINT_PORT", "0")
    get_settings.cache_clear()
    settings: Settings = get_settings()
    spec = primary_spec("alert")
    assert spec is not None and spec.table == "alerts"
    records = _alert_records()
    assert [r["state"] for r in records] == ["firing", "resolved", "firing"]
    rows = [spec.row(r, "claw.alerts.v1", 0, i) for i, r in enumerate(records)]
    client = connect(settings)
    try:
        migrate(client)
        cols = to_columns(rows, len(spec.columns))
        client.insert(spec.table, cols, column_names=list(spec.columns), column_oriented=True)
        # a replay after a crash: same event ids, new offsets -> one row each under FINAL
        rows2 = [spec.row(r, "claw.alerts.v1", 0, 100 + i) for i, r in enumerate(records)]
        client.insert(spec.table, to_columns(rows2, len(spec.columns)),
                      column_names=list(spec.columns), column_oriented=True)
        res = run_query(client, "SELECT count() FROM alerts")
        assert res.rows[0][0] == 3
        res = run_query(client, "SELECT rule, state, labels['agent'], ends_at IS NULL "
                                "FROM alerts ORDER BY event_time")
        assert [tuple(r) for r in res.rows] == [
            ("Streak", "firing", "a1", True), ("Streak", "resolved", "a1", False),
            ("Streak", "firing", "a2", True)]
    finally:
        client.close()
    get_settings.cache_clear()

    from consumers.query_cli import query

    out = CliRunner().invoke(query, ["alerts", "--format", "json"])
    assert out.exit_code == 0, out.output
    blocks = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    open_incidents = blocks[0]["rows"]
    assert [(r["rule"], r["state"]) for r in open_incidents] == [("Streak", "firing")]
    assert "a2" in open_incidents[0]["labels"]
    assert len(blocks[1]["rows"]) == 3
    get_settings.cache_clear()
