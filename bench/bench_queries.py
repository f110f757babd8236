"""Canned-query latency over ~10 million events: raw tables (FINAL) vs per-minute rollups.

Generates event rows straight into a fresh chdb with INSERT ... SELECT FROM numbers(), shaped
like the fleet's (1,000 agents over 24 hours, 5 apps, 8 action kinds, episodes of ~8 steps,
actions linked to outcomes by action_id, 3 detections per frame, heartbeats, plans), in
chunks so memory stays flat. The migrations' materialized views fill the rollups during the
inserts, exactly as with the sink. Then every canned query runs through the same code path as
`clawstream query` (consumers.clickhouse.run_query, final=1), in its rollup and raw forms.

    .venv/bin/python bench/bench_queries.py [--events 10000000] [--runs 3] [--dir PATH]

Prints a table: median / min latency per query and form, and the raw/rollup ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import clickhouse_connect

from consumers import clickhouse as ch
from consumers.analytics import queries as Q
from consumers.analytics.filters import Filters

#: share of the events per raw table (detections add 3 element rows per detection event)
MIX = {"actions": 0.28, "outcomes": 0.28, "frames": 0.16, "detection_frames": 0.16,
       "plans": 0.04, "heartbeats": 0.04, "state_deltas": 0.04}
CHUNK = 1_000_000
SPAN_MS = 24 * 3_600_000

ENV = """'{ns}' AS kafka_topic, toUInt16(n % 12) AS kafka_partition, n AS kafka_offset,
    {sess} AS episode, concat('agent-', leftPad(toString(episode % 1000), 4, '0')) AS agent_id,
    concat('s-', toString(episode)) AS session_id, session_id AS trace_id,
    fromUnixTimestamp64Milli(toInt64({t0} + intDiv(n * {span}, {total})), 'UTC') AS event_time,
    n AS seq, 'bench' AS producer, '0' AS producer_version,
    arrayElement(['notepad', 'browser', 'mail', 'sheets', 'terminal'],
                 1 + episode % 5) AS app"""
AID = "toUUID(concat('00000000-0000-4000-8000-', leftPad(lower(hex(n)), 12, '0')))"
KIND = ("arrayElement(['click', 'double_click', 'type', 'hotkey', 'scroll', 'drag', 'wait', "
        "'move'], 1 + n % 8)")

INSERTS = {
    "actions": f"""INSERT INTO actions (event_id, agent_id, session_id, trace_id, parent_id,
        event_time, seq, producer, producer_version, app, plan_id, step_index, kind,
        target_label, target_element_id, target_element_kind, target_x, target_y, params,
        executor, kafka_topic, kafka_partition, kafka_offset)
    SELECT {AID} AS event_id, agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, app, session_id, toInt32(n % 8), {KIND},
        concat('Button ', toString(n % 40)), concat('el-', toString(n % 9)), 'button',
        toInt32(n % 1280), toInt32(n % 800), map('k', 'v'), 'synthetic', kafka_topic,
        kafka_partition, kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
    "outcomes": f"""INSERT INTO outcomes (event_id, agent_id, session_id, trace_id, parent_id,
        event_time, seq, producer, producer_version, action_id, app, action_kind, status,
        duration_ms, error, error_kind, executor, kafka_topic, kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n) AS event_id, agent_id, session_id, trace_id, NULL,
        event_time + INTERVAL 300 MILLISECOND, seq, producer, producer_version,
        toString({AID}), app, {KIND},
        multiIf(h < 85, 'success', h < 95, 'failure', h < 99, 'timeout', 'lost') AS status,
        round(exp(4 + (cityHash64(n, 1) % 1000) / 1000 * 3.5), 3),
        if(status = 'success', NULL, 'boom'),
        if(status = 'success', NULL, arrayElement(['element_not_found', 'wrong_window',
           'verification_failed'], 1 + n % 3)),
        'synthetic', kafka_topic, kafka_partition, kafka_offset
    FROM (SELECT number AS n, cityHash64(number) % 100 AS h, {ENV}
          FROM numbers({{start}}, {{count}}))""",
    "frames": f"""INSERT INTO frames (event_id, agent_id, session_id, trace_id, parent_id,
        event_time, seq, producer, producer_version, app, width, height, phash, change_ratio,
        changed_regions, thumbnail, thumbnail_format, thumb_width, thumb_height, redactions,
        kafka_topic, kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, app, 1280, 800, hex(cityHash64(n)), (n % 100) / 100,
        [(10, 10, 100, 40)], '', 'jpeg', 160, 100, 0, kafka_topic, kafka_partition,
        kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
    "detection_frames": f"""INSERT INTO detection_frames (event_id, agent_id, session_id,
        trace_id, parent_id, event_time, seq, producer, producer_version, app, frame_id,
        elements, interactable_elements, duration_ms, kafka_topic, kafka_partition,
        kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, app, toString(generateUUIDv4(n + 1)), 3, 2, 110.0, kafka_topic,
        kafka_partition, kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
    "detections": f"""INSERT INTO detections (event_id, agent_id, session_id, trace_id,
        parent_id, event_time, seq, producer, producer_version, app, frame_id, element_index,
        element_id, element_kind, x, y, w, h, text, confidence, ocr_confidence, source,
        interactable, kafka_topic, kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, app, toString(generateUUIDv4(n + 1)), toUInt16(i),
        concat('el-', toString(i)), arrayElement(['button', 'text_field', 'text'], 1 + i),
        toInt32(n % 1200), toInt32(n % 760), 80, 24, 'OK', 0.7 + (n % 30) / 100,
        0.6 + (n % 39) / 100, 'synthetic', i < 2, kafka_topic, kafka_partition, kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))
    ARRAY JOIN [0, 1, 2] AS i""",
    "plans": f"""INSERT INTO plans (event_id, agent_id, session_id, trace_id, parent_id,
        event_time, seq, producer, producer_version, app, goal, planner, step_count,
        step_index, step_description, step_action_kind, step_target, kafka_topic,
        kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, app, 'do the task', 'rules', 8, range(8), arrayMap(x -> 'step', range(8)),
        arrayMap(x -> 'click', range(8)), arrayMap(x -> CAST(NULL, 'Nullable(String)'), range(8)),
        kafka_topic, kafka_partition, kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
    "heartbeats": f"""INSERT INTO heartbeats (event_id, agent_id, session_id, trace_id,
        parent_id, event_time, seq, producer, producer_version, status, uptime_s, cpu_percent,
        rss_bytes, queue_depth, spool_depth, kafka_topic, kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, 'ok', n / 10, 12.5, 100000000, 0, 0, kafka_topic, kafka_partition,
        kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
    "state_deltas": f"""INSERT INTO state_deltas (event_id, agent_id, session_id, trace_id,
        parent_id, event_time, seq, producer, producer_version, replica_id, crdt_type, key,
        payload, full_state, kafka_topic, kafka_partition, kafka_offset)
    SELECT generateUUIDv4(n), agent_id, session_id, trace_id, NULL, event_time, seq, producer,
        producer_version, 'r1', 'gcounter', 'actions_total', 'x', false, kafka_topic,
        kafka_partition, kafka_offset
    FROM (SELECT number AS n, {ENV} FROM numbers({{start}}, {{count}}))""",
}


def generate(client: object, total: int, t0: int) -> dict[str, float]:
    """Insert `total` events across the raw tables; returns seconds per table."""
    seconds: dict[str, float] = {}
    for table, share in MIX.items():
        n = int(total * share)
        started = time.perf_counter()
        targets = [table] + (["detections"] if table == "detection_frames" else [])
        for target in targets:
            for start in range(0, n, CHUNK):
                # episodes of 8 steps; plan n is the plan of episode n
                sess = "n" if table == "plans" else "intDiv(n, 8)"
                sql = INSERTS[target].format(ns=f"bench.{table}", t0=t0, span=SPAN_MS,
                                             total=n, start=start, count=min(CHUNK, n - start),
                                             sess=sess)
                client.command(sql, settings={"max_memory_usage": 4_000_000_000})
        seconds[table] = time.perf_counter() - started
        print(f"  {table:17s} {n:>10,} events in {seconds[table]:6.1f}s", flush=True)
    return seconds


def timed(client: object, sql: str, params: dict, runs: int) -> tuple[float, float, int]:
    times, rows = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        res = ch.run_query(client, sql, params)
        times.append(time.perf_counter() - t)
        rows = len(res.rows)
    return statistics.median(times), min(times), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="chdb folder (default: a tmp dir)")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-queries-"))
    client = clickhouse_connect.get_client(dsn=f"chdb://{work.resolve()}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client.close()
    client = clickhouse_connect.get_client(dsn=f"chdb://{work.resolve()}", database="bench")
    try:
        ch.migrate(client)
        now = int(time.time() * 1000)
        t0 = now - SPAN_MS
        print(f"generating {args.events:,} events into {work} ...", flush=True)
        started = time.perf_counter()
        generate(client, args.events, t0)
        gen_s = time.perf_counter() - started
        counts = dict(client.query(
            "SELECT 'outcomes', count() FROM outcomes UNION ALL "
            "SELECT 'outcomes_1m rows', count() FROM outcomes_1m UNION ALL "
            "SELECT 'events_1m rows', count() FROM events_1m UNION ALL "
            "SELECT 'detections', count() FROM detections").result_rows)
        print(f"generated in {gen_s:.1f}s ({args.events / gen_s:,.0f} events/s incl. views); "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        client.command("OPTIMIZE TABLE outcomes_1m FINAL")
        client.command("OPTIMIZE TABLE events_1m FINAL")
        client.command("OPTIMIZE TABLE detections_1m FINAL")

        filters = Filters(since_ms=t0, until_ms=now + 60_000, agent="", limit=50)
        agent_filters = Filters(since_ms=t0, until_ms=now + 60_000, agent="agent-0042", limit=200)
        latest = client.query("SELECT argMax(session_id, event_time) FROM actions").result_rows
        ep_filters = Filters(since_ms=t0, until_ms=now + 60_000, session=latest[0][0])
        cases = []
        for name, canned in Q.CANNED.items():
            f = {"timeline": agent_filters, "episode": ep_filters}.get(name, filters)
            for section in canned.sections:
                cases.append((f"{name}: {section.title}", section, f))
        series = Q.Section("report series", Q.SERIES_ROLLUP, Q.SERIES_COLUMNS)
        cases.append(("report: time series", series, filters))

        print(f"\nquery latency, median of {args.runs} runs, {args.events:,} events, "
              "24 h range, final=1")
        header = f"{'query':58s} {'rollup s':>10s} {'raw s':>10s} {'raw/rollup':>10s} {'rows':>6s}"
        print(header)
        print("-" * len(header))
        for label, section, f in cases:
            params = {**f.params(), "bucket_s": 900}
            if section.raw_sql is not None:
                r_med, _r_min, rows = timed(client, section.sql, params, args.runs)
                w_med, _w_min, _ = timed(client, section.raw_sql, params, args.runs)
                print(f"{label[:58]:58s} {r_med:10.3f} {w_med:10.3f} {w_med / r_med:9.1f}x "
                      f"{rows:6d}", flush=True)
            else:
                w_med, _w_min, rows = timed(client, section.sql, params, args.runs)
                form = "rollup" if "_1m" in section.sql else "raw"
                cols = (f"{w_med:10.3f} {'':>10s}" if form == "rollup"
                        else f"{'':>10s} {w_med:10.3f}")
                print(f"{label[:58]:58s} {cols} {'':>10s} {rows:6d}", flush=True)
    finally:
        client.close()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
