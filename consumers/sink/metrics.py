"""The sink's Prometheus metrics (module level: one registry per process), and its lag as
librdkafka's statistics tell it."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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
ASSIGNED = Gauge("clawstream_sink_assigned_partitions",
                 "Partitions this sink holds in its consumer group (sinks of a group share them)")
ROLE = Gauge("clawstream_sink_role", "1 for this sink's role: server (inserts into a ClickHouse "
             "server), owner (the embedded engine in this process), guest (inserts through "
             "the embedded engine's owner)", ["role"])
LAST_COMMIT = Gauge("clawstream_sink_last_commit_timestamp_seconds", "Time of the last commit")


def record_lag(stats: dict[str, Any]) -> None:
    """Set the lag gauges from librdkafka's statistics (per topic and partition)."""
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
