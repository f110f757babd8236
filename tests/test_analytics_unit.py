"""Fast tests of the analytics helpers: filters, canned SQL hygiene, the rollup migration on a
fresh chdb, Grafana macro expansion, SVG charts and the report's rendering."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from consumers.analytics import grafana as G
from consumers.analytics import queries as Q
from consumers.analytics import svg
from consumers.analytics.filters import NO_UNTIL_MS, Filters, parse_time

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PARAMS = {"since_ms", "until_ms", "agent", "app", "session", "limit", "bucket_s"}


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", NOW - 30 * 60_000), ("1h", NOW - 3_600_000), ("7d", NOW - 7 * 86_400_000),
    ("90s", NOW - 90_000), ("1.5h", NOW - 5_400_000), ("all", 0), ("now", NOW),
    ("2026-01-01T00:00:00Z", NOW), ("2026-01-01T01:00:00+01:00", NOW),
    ("2026-01-01T00:00", NOW), ("1767225600", NOW), ("1767225600000", NOW),
])
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW) == expected


def test_parse_time_rejects_garbage_clearly() -> None:
    with pytest.raises(ValueError, match="duration like 30m"):
        parse_time("yesterday-ish", now_ms=NOW)


def test_filters_params_and_defaults() -> None:
    f = Filters.from_cli("1h", None, "agent-1", None, None, 10, now_ms=NOW)
    assert f.params() == {"since_ms": NOW - 3_600_000, "until_ms": NO_UNTIL_MS,
                          "agent": "agent-1", "app": "", "session": "", "limit": 10}


def _all_sql() -> list[tuple[str, str]]:
    out = []
    for name, value in vars(Q).items():
        if name.isupper() and isinstance(value, str) and "SELECT" in value:
            out.append((name, value))
    return out


def test_canned_sql_only_binds_known_parameters() -> None:
    for name, sql in _all_sql():
        used = set(re.findall(r"\{(\w+):[A-Za-z0-9()]+\}", sql))
        assert used <= PARAMS, (name, used - PARAMS)
        assert "%s" not in sql and "%(" not in sql, name
        # raw tables are always read deduplicated
        for table in ("frames", "detection_frames", "detections", "plans", "actions",
                      "outcomes", "heartbeats", "state_deltas", "alerts"):
            for m in re.finditer(rf"\bFROM\s+{table}\b(?!_1m)(\s+\w+)?", sql):
                assert (m.group(1) or "").strip() == "FINAL", (name, m.group(0))


def test_agent_filter_picks_raw_sql_and_required_filters() -> None:
    sec = Q.CANNED["success-rate"].sections[0]
    assert sec.text("auto", Filters()) == Q.SUCCESS_ROLLUP
    assert sec.text("auto", Filters(agent="a")) == Q.SUCCESS_RAW
    assert sec.text("raw") == Q.SUCCESS_RAW and sec.text("rollup") == Q.SUCCESS_ROLLUP
    with pytest.raises(ValueError, match="--agent"):
        Q.plan("timeline", Filters())
    [(title, sql, params)] = Q.plan("timeline", Filters(agent="agent-'x"))
    assert title == "Agent timeline" and params["agent"] == "agent-'x"
    assert "agent-" not in sql  # user input travels as a parameter, never as SQL text


def test_rollup_migration_on_fresh_chdb_with_data(tmp_path) -> None:
    """050 applies on an engine that already has raw rows (backfill), is idempotent, and the
    views count new inserts."""
    import clickhouse_connect

    from consumers import clickhouse as ch

    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'db'}")
    try:
        client.command("CREATE DATABASE IF NOT EXISTS t")
        client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'db'}", database="t")
        migrations = [m for m in ch.discover() if m.version < 50]
        client.command(ch.MIGRATIONS_TABLE_DDL)
        for m in migrations:
            for stmt in m.statements():
                client.command(stmt)
        cols = ("event_id", "agent_id", "session_id", "trace_id", "event_time", "seq",
                "producer", "producer_version", "action_id", "app", "action_kind", "status",
                "duration_ms", "executor", "kafka_topic", "kafka_partition", "kafka_offset")

        def rows(start: int, n: int) -> list[list]:
            return [[f"00000000-0000-4000-8000-{i:012d}", "a1", "s", "t",
                     dt.datetime(2026, 1, 1, 0, i % 3, tzinfo=dt.UTC), i, "p", "1",
                     "x", "mail", "click", "success" if i % 4 else "failure", float(i), "e",
                     "tp", 0, i] for i in range(start, start + n)]

        client.insert("outcomes", rows(0, 40), column_names=list(cols))
        for stmt in next(m for m in ch.discover() if m.version == 50).statements():
            client.command(stmt)
        for stmt in next(m for m in ch.discover() if m.version == 50).statements():
            client.command(stmt)  # idempotent: no second backfill
        client.insert("outcomes", rows(40, 20), column_names=list(cols))
        got = client.query("SELECT countMerge(outcomes), countMerge(successes), "
                           "sumMerge(duration_sum) FROM outcomes_1m").result_rows[0]
        assert got == (60, 45, float(sum(range(60))))
        per_type = client.query("SELECT event_type, countMerge(events) FROM events_1m "
                                "GROUP BY event_type").result_rows
        assert per_type == [("outcome", 60)]
    finally:
        client.close()


# -- Grafana macros ------------------------------------------------------------------------------

def test_grafana_macro_expansion() -> None:
    sql = ("SELECT $__timeInterval(minute) AS t, $__interval_s AS s FROM x "
           "WHERE $__timeFilter(minute) AND a = '${agent}' AND b = $app AND "
           "c BETWEEN $__fromTime AND $__toTime AND $__timeFilter_ms(ts) AND "
           "d IN (${app:singlequote})")
    out = G.expand(sql, from_ms=1_000_500, to_ms=2_000_900, interval_s=30,
                   variables={"agent": "agent-1", "app": "mail"})
    assert "toStartOfInterval(toDateTime(minute), INTERVAL 30 second) AS t" in out
    assert "30 AS s" in out
    assert "minute >= toDateTime(1000) AND minute <= toDateTime(2000)" in out
    assert "a = 'agent-1' AND b = mail" in out
    assert "c BETWEEN toDateTime(1000) AND toDateTime(2000)" in out
    assert "ts >= fromUnixTimestamp64Milli(1000500) AND ts <= fromUnixTimestamp64Milli(2000900)" \
        in out
    assert "d IN ('mail')" in out
    with pytest.raises(ValueError, match=r"\$nope"):
        G.expand("SELECT $nope", from_ms=0, to_ms=1)


# -- SVG and report rendering ----------------------------------------------------------------------

def test_charts_are_well_formed_svg() -> None:
    xs = [dt.datetime(2026, 1, 1, 0, m, tzinfo=dt.UTC) for m in range(5)]
    charts = [
        svg.line_chart(xs, {"a": [1, 2, None, 4, 5], "b <x>": [0.5] * 5}, title="T & U"),
        svg.line_chart([], {}, title="empty"),
        svg.bar_chart(["mail", "web"], {"f": [3, 0], "t": [1, 2]}, title="bars"),
        svg.bar_chart(["r1"], {"firing": [2], "resolved": [1]}, title="stacked", stacked=True),
        svg.frame_view(width=1280, height=800, thumbnail_b64="AAAA", thumbnail_format="jpeg",
                       boxes=[(10, 20, 30, 40, "OK <b>", True)],
                       action={"kind": "click", "x": 100, "y": 200, "status": "failure",
                               "bbox_x": None, "bbox_y": None, "bbox_w": None, "bbox_h": None}),
    ]
    for c in charts:
        root = ET.fromstring(c)
        assert root.tag.endswith("svg")
    frame = ET.fromstring(charts[-1])
    ns = "{http://www.w3.org/2000/svg}"
    assert frame.find(f"{ns}image").get("href") == "data:image/jpeg;base64,AAAA"
    assert frame.find(f"{ns}rect[@class='det']").get("width") == "30"
    circle = frame.find(f"{ns}g/{ns}circle")
    assert (circle.get("cx"), circle.get("cy"), circle.get("fill")) == ("100", "200", "#e4572e")
