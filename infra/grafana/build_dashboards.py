"""Writes infra/grafana/dashboards/*.json with grafana-foundation-sdk, Grafana's typed builders.

Run from the repository root: `.venv/bin/python infra/grafana/build_dashboards.py` (the SDK is in
the `dev` extra that `make install` installs). One small function per dashboard; the module-level
helpers keep layout, datasource references and per-visualization options consistent.
The JSON files are what Grafana provisions (docker-compose mounts the folder) and what
tests/test_grafana_dashboards.py and tests/test_analytics_pipeline.py check: every ClickHouse
panel's SQL runs against a real pipeline run after macro expansion, every PromQL expression
passes promtool and names only metrics the processes export.

SQL rules: fleet-wide panels read the per-minute rollups (events_1m, outcomes_1m,
detections_1m); per-agent panels read raw tables with FINAL filtered by agent_id (the first
sorting-key column, so they read few granules). Grafana does not set final=1, so raw tables
always carry an explicit FINAL.

SDK notes:
- The SDK has no types for Grafana's ClickHouse datasource plugin, so `ClickHouseQuery` adds them
  the way the SDK documents for third-party plugins (python/docs/How-To/custom-query-type.md):
  the SDK's common query fields plus the plugin's editorType, format, queryType and rawSql.
- These are classic (v1) dashboards, what Grafana's file provisioning reads; the SDK's v1
  dashboard module raises a DeprecationWarning that points to its v2 resources on import.
- Panels are placed here (left to right, a new row when the next panel does not fit): the SDK's
  own placement only wraps after a row is full, so a full-width panel after a half row would
  overflow the 24-column grid.

Over 400 lines on purpose: it is the catalog of the dashboards, one short function per
dashboard over the shared layout helpers; a dashboard read alone makes sense only with them.
"""

from __future__ import annotations

import enum
import itertools
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import (
        barchart,
        dashboard,
        prometheus,
        stat,
        table,
        timeseries,
    )
    from grafana_foundation_sdk.builders import common as viz
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog import variants as cogvariants
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common, units
    from grafana_foundation_sdk.models import dashboard as model

OUT = Path(__file__).resolve().parent / "dashboards"
CH = common.DataSourceRef(type_val="grafana-clickhouse-datasource", uid="clickhouse")
PROM = common.DataSourceRef(type_val="prometheus", uid="prometheus")
APP_FILTER = "('${app}' = '__all' OR app = '${app}')"


class Format(enum.IntEnum):
    """The ClickHouse plugin's result formats (its `format` field)."""

    TIMESERIES = 0
    TABLE = 1


class ClickHouseQuery(common.DataQuery, cogvariants.Dataquery):
    """A SQL-editor target of grafana-clickhouse-datasource (v4)."""

    def __init__(self, raw_sql: str, fmt: Format) -> None:
        query_type = "timeseries" if fmt == Format.TIMESERIES else "table"
        super().__init__(ref_id="A", query_type=query_type, datasource=CH)
        self.editor_type = "sql"
        self.format = fmt
        self.raw_sql = raw_sql

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "editorType": self.editor_type, "format": int(self.format),
                "rawSql": self.raw_sql}


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, fmt: Format) -> None:
        self._internal = ClickHouseQuery(raw_sql, fmt)

    def build(self) -> ClickHouseQuery:
        return self._internal


def _legend() -> viz.VizLegendOptions:
    # the SDK's default hides the legend (showLegend false); Grafana's shows it
    return (viz.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True))


def _tooltip(mode: common.TooltipDisplayMode) -> viz.VizTooltipOptions:
    # the SDK's default sorts tooltip series ascending; Grafana's keeps their order
    return viz.VizTooltipOptions().mode(mode).sort(common.SortOrder.NONE)


def _stat() -> stat.Panel:
    return (stat.Panel()
            .reduce_options(viz.ReduceDataOptions().calcs(["lastNotNull"]).fields("")
                            .values(False))
            .color_mode(common.BigValueColorMode.VALUE)
            .graph_mode(common.BigValueGraphMode.NONE))


def _timeseries() -> timeseries.Panel:
    return (timeseries.Panel().legend(_legend())
            .tooltip(_tooltip(common.TooltipDisplayMode.MULTI)))


def _barchart() -> barchart.Panel:
    return (barchart.Panel().legend(_legend())
            .tooltip(_tooltip(common.TooltipDisplayMode.SINGLE)))


VIZ: dict[str, Callable[[], Any]] = {
    "stat": _stat, "timeseries": _timeseries, "table": table.Panel, "barchart": _barchart,
}


class Board:
    """An SDK dashboard builder with the settings every clawstream dashboard shares, panel ids
    and the flow layout."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.dashboard = (
            dashboard.Dashboard(title).uid(uid).description(description)
            .tags(["clawstream", *tags]).timezone("utc").editable().version(1).refresh("30s")
            .time("now-6h", "now").variables([]).annotations([]))
        self._ids = itertools.count(1)
        self._x = self._y = self._row_h = 0

    def _place(self, w: int, h: int) -> model.GridPos:
        if self._x + w > 24:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        pos = model.GridPos(h=h, w=w, x=self._x, y=self._y)
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def _panel(self, kind: str, title: str, targets: list[Any], ds: common.DataSourceRef,
               w: int, h: int, description: str, unit: str | None) -> None:
        panel = (VIZ[kind]().id(next(self._ids)).title(title).description(description)
                 .datasource(ds).grid_pos(self._place(w, h)).targets(targets))
        if unit:
            panel.unit(unit)
        self.dashboard.with_panel(panel)

    def sql(self, kind: str, title: str, sql: str, *, w: int = 12, h: int = 8,
            description: str = "", unit: str | None = None) -> None:
        fmt = Format.TIMESERIES if kind == "timeseries" else Format.TABLE
        self._panel(kind, title, [ClickHouseQueryBuilder(sql.strip(), fmt)], CH, w, h,
                    description, unit)

    def prom(self, kind: str, title: str, exprs: list[tuple[str, str]], *, w: int = 12,
             h: int = 8, description: str = "", unit: str | None = None) -> None:
        targets = [prometheus.Dataquery().ref_id(chr(ord("A") + i)).datasource(PROM)
                   .expr(expr).legend_format(legend).range()
                   for i, (expr, legend) in enumerate(exprs)]
        self._panel(kind, title, targets, PROM, w, h, description, unit)

    def variable(self, name: str, label: str, sql: str, *, include_all: bool) -> None:
        var = (dashboard.QueryVariable(name).label(label).datasource(CH)
               .query(sql.strip()).definition(sql.strip())
               .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
               .sort(model.VariableSort.ALPHABETICAL_ASC).multi(False).include_all(include_all))
        if include_all:
            var.all_value("__all").current(
                model.VariableOption(selected=True, text="All", value="$__all"))
        self.dashboard.with_variable(var)

    def json(self) -> dict[str, Any]:
        """The dashboard as Grafana's JSON model, serialized by the SDK's encoder."""
        data: dict[str, Any] = json.loads(JSONEncoder().encode(self.dashboard.build()))
        for panel in data["panels"]:
            # The bar chart schema requires xTickLabelMaxLength without a default, so the SDK
            # writes 0; Grafana cuts x labels longer than it (every label would read "..."),
            # while an absent value means no limit, as in dashboards saved from Grafana.
            if panel["type"] == "barchart" and panel["options"].get("xTickLabelMaxLength") == 0:
                del panel["options"]["xTickLabelMaxLength"]
        return data


APP_VARIABLE = "SELECT DISTINCT app FROM outcomes_1m WHERE $__timeFilter(minute) ORDER BY app"


def fleet_overview() -> Board:
    b = Board("clawstream-fleet", "clawstream / Fleet overview",
              "Agents, throughput, success rate and latency from the per-minute rollups.",
              ["fleet"])
    b.variable("app", "App", APP_VARIABLE, include_all=True)
    b.sql("stat", "Active agents", f"""
SELECT uniqMerge(agents) AS agents FROM events_1m
WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4)
    b.sql("stat", "Events", f"""
SELECT countMerge(events) AS events FROM events_1m
WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4, unit=units.Short)
    b.sql("stat", "Success rate", f"""
SELECT countMerge(successes) / nullIf(countMerge(outcomes), 0) AS success_rate
FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4,
          unit=units.PercentUnit)
    b.sql("stat", "Outcome latency p95", f"""
SELECT quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[3] AS p95_ms
FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4, unit=units.Milliseconds)
    b.sql("timeseries", "Throughput by event type (events/s)", f"""
SELECT $__timeInterval(minute) AS time, event_type,
       countMerge(events) / greatest($__interval_s, 60) AS events_per_s
FROM events_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY time, event_type ORDER BY time""", w=12, h=8, unit=units.RequestsPerSecond)
    b.sql("timeseries", "Success rate by app", f"""
SELECT $__timeInterval(minute) AS time, app,
       countMerge(successes) / nullIf(countMerge(outcomes), 0) AS success_rate
FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY time, app ORDER BY time""", w=12, h=8, unit=units.PercentUnit)
    b.sql("timeseries", "Outcome latency (ms)", f"""
SELECT time, q[1] AS p50, q[3] AS p95, q[4] AS p99
FROM
(
    SELECT $__timeInterval(minute) AS time,
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q
    FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
    GROUP BY time
)
ORDER BY time""", w=12, h=8, unit=units.Milliseconds)
    b.sql("barchart", "Failures by app", f"""
SELECT app, countMerge(failures) AS failures, countMerge(timeouts) AS timeouts
FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY app ORDER BY failures DESC""", w=12, h=8)
    b.sql("table", "Success rate by app and action kind", f"""
SELECT app, action_kind, countMerge(outcomes) AS outcomes,
       countMerge(successes) / nullIf(outcomes, 0) AS success_rate,
       quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[3] AS p95_ms
FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY app, action_kind ORDER BY success_rate ASC, outcomes DESC""", w=12, h=10)
    b.sql("table", "Slowest actions (p95)", f"""
SELECT app, action_kind, outcomes, round(q[3], 1) AS p95_ms, round(q[4], 1) AS p99_ms, max_ms
FROM
(
    SELECT app, action_kind, countMerge(outcomes) AS outcomes,
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q,
           round(maxMerge(duration_max), 1) AS max_ms
    FROM outcomes_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
    GROUP BY app, action_kind
)
ORDER BY p95_ms DESC LIMIT 20""", w=12, h=10)
    return b


AGENT_FILTER = "agent_id = '${agent}'"


def agent_drilldown() -> Board:
    b = Board("clawstream-agent", "clawstream / Agent drill-down",
              "One agent ($agent): outcomes, latency, episodes, timeline, heartbeats, state. "
              "Raw tables with FINAL, filtered by agent_id (first sorting-key column).",
              ["agent"])
    b.variable("agent", "Agent", """
SELECT DISTINCT agent_id FROM heartbeats FINAL WHERE $__timeFilter(event_time)
ORDER BY agent_id""", include_all=False)
    b.sql("stat", "Outcomes", f"""
SELECT count() AS outcomes FROM outcomes FINAL
WHERE {AGENT_FILTER} AND $__timeFilter(event_time)""", w=6, h=4)
    b.sql("stat", "Success rate", f"""
SELECT countIf(status = 'success') / nullIf(count(), 0) AS success_rate FROM outcomes FINAL
WHERE {AGENT_FILTER} AND $__timeFilter(event_time)""", w=6, h=4, unit=units.PercentUnit)
    b.sql("stat", "Latency p95", f"""
SELECT quantile(0.95)(duration_ms) AS p95_ms FROM outcomes FINAL
WHERE {AGENT_FILTER} AND $__timeFilter(event_time)""", w=6, h=4, unit=units.Milliseconds)
    b.sql("stat", "Last heartbeat", f"""
SELECT max(event_time) AS last_heartbeat FROM heartbeats FINAL
WHERE {AGENT_FILTER} AND $__timeFilter(event_time)""", w=6, h=4, unit=units.DateTimeFromNow)
    b.sql("timeseries", "Outcomes by status", f"""
SELECT $__timeInterval(event_time) AS time, toString(status) AS status, count() AS outcomes
FROM outcomes FINAL WHERE {AGENT_FILTER} AND $__timeFilter(event_time)
GROUP BY time, status ORDER BY time""", w=12, h=8)
    b.sql("timeseries", "Latency by action kind (p95, ms)", f"""
SELECT $__timeInterval(event_time) AS time, toString(action_kind) AS action_kind,
       quantile(0.95)(duration_ms) AS p95_ms
FROM outcomes FINAL WHERE {AGENT_FILTER} AND $__timeFilter(event_time)
GROUP BY time, action_kind ORDER BY time""", w=12, h=8, unit=units.Milliseconds)
    b.sql("table", "Episodes", f"""
SELECT session_id, any(app) AS app, min(event_time) AS started, max(event_time) AS ended,
       count() AS steps, countIf(status = 'success') AS successes,
       argMax(toString(status), event_time) AS last_status
FROM outcomes FINAL WHERE {AGENT_FILTER} AND $__timeFilter(event_time)
GROUP BY session_id ORDER BY started DESC LIMIT 50""", w=12, h=9)
    b.sql("table", "Recent actions and outcomes", f"""
SELECT a.event_time AS time, a.app AS app, toString(a.kind) AS kind,
       ifNull(a.target_label, '') AS target, ifNull(o.status, 'pending') AS status,
       o.duration_ms AS duration_ms, o.error AS error
FROM (SELECT * FROM actions FINAL WHERE {AGENT_FILTER} AND $__timeFilter(event_time)) AS a
LEFT JOIN (SELECT action_id, toString(status) AS status, duration_ms, error FROM outcomes FINAL
           WHERE {AGENT_FILTER} AND $__timeFilter(event_time)) AS o
  ON o.action_id = toString(a.event_id)
ORDER BY time DESC LIMIT 100
SETTINGS join_use_nulls = 1""", w=12, h=9)
    b.sql("timeseries", "Heartbeats: CPU and spool depth", f"""
SELECT $__timeInterval(event_time) AS time, avg(cpu_percent) AS cpu_percent,
       max(spool_depth) AS spool_depth, max(queue_depth) AS queue_depth
FROM heartbeats FINAL WHERE {AGENT_FILTER} AND $__timeFilter(event_time)
GROUP BY time ORDER BY time""", w=12, h=8)
    b.sql("table", "Merged agent state (CRDT)", f"""
SELECT agent_id, version, actions_total, error_budget, current_task, status,
       length(replicas) AS replicas, event_time AS updated
FROM agent_state FINAL WHERE {AGENT_FILTER}""", w=12, h=8)
    return b


def perception() -> Board:
    b = Board("clawstream-perception", "clawstream / Perception quality",
              "What agents see: detected elements, detector and OCR confidence, frames.",
              ["perception"])
    b.variable("app", "App", APP_VARIABLE, include_all=True)
    b.sql("stat", "Elements detected", f"""
SELECT countMerge(elements) AS elements FROM detections_1m
WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4)
    b.sql("stat", "Mean detector confidence", f"""
SELECT avgMerge(confidence_avg) AS confidence FROM detections_1m
WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4, unit=units.PercentUnit)
    b.sql("stat", "Mean OCR confidence", f"""
SELECT avgMerge(ocr_confidence_avg) AS ocr_confidence FROM detections_1m
WHERE $__timeFilter(minute) AND {APP_FILTER}""", w=6, h=4, unit=units.PercentUnit)
    b.sql("stat", "Elements per frame", f"""
SELECT e.elements / nullIf(f.frames, 0) AS elements_per_frame
FROM (SELECT countMerge(elements) AS elements FROM detections_1m
      WHERE $__timeFilter(minute) AND {APP_FILTER}) AS e
CROSS JOIN (SELECT countMerge(events) AS frames FROM events_1m
            WHERE event_type = 'detection' AND $__timeFilter(minute) AND {APP_FILTER}) AS f""",
          w=6, h=4)
    b.sql("timeseries", "Elements detected by kind (per interval)", f"""
SELECT $__timeInterval(minute) AS time, element_kind, countMerge(elements) AS elements
FROM detections_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY time, element_kind ORDER BY time""", w=12, h=8)
    b.sql("timeseries", "Confidence over time", f"""
SELECT $__timeInterval(minute) AS time, avgMerge(confidence_avg) AS detector,
       avgMerge(ocr_confidence_avg) AS ocr,
       quantilesMerge(0.05, 0.5)(confidence_q)[1] AS detector_p5
FROM detections_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY time ORDER BY time""", w=12, h=8, unit=units.PercentUnit)
    b.sql("table", "By app and element kind", f"""
SELECT app, element_kind, countMerge(elements) AS elements,
       countMerge(interactable) / nullIf(elements, 0) AS interactable_share,
       countMerge(with_text) / nullIf(elements, 0) AS with_text_share,
       round(avgMerge(confidence_avg), 3) AS confidence,
       round(avgMerge(ocr_confidence_avg), 3) AS ocr_confidence
FROM detections_1m WHERE $__timeFilter(minute) AND {APP_FILTER}
GROUP BY app, element_kind ORDER BY app, elements DESC""", w=12, h=9)
    b.sql("timeseries", "Frames per interval by app", f"""
SELECT $__timeInterval(minute) AS time, app, countMerge(events) AS frames
FROM events_1m WHERE event_type = 'frame' AND $__timeFilter(minute) AND {APP_FILTER}
GROUP BY time, app ORDER BY time""", w=12, h=9)
    b.sql("timeseries", "Window aggregates: detections per frame, change ratio (fleet, 1m)", """
SELECT window_start AS time, avg(detections_per_frame) AS detections_per_frame,
       avg(frame_change_ratio_mean) AS frame_change_ratio, avg(ocr_confidence_mean) AS ocr
FROM window_aggregates FINAL
WHERE window_size_ms = 60000 AND window_step_ms = 60000 AND scope_agent = '*'
  AND $__timeFilter(window_start)
GROUP BY time ORDER BY time""", w=24, h=8,
          description="From the stream workers' closed 1-minute windows (claw.aggregates.v1).")
    return b


def alerts() -> Board:
    b = Board("clawstream-alerts", "clawstream / Alerts",
              "Alert lifecycle events from the stream (claw.alerts.v1) and the firing gauge.",
              ["alerts"])
    b.sql("stat", "Open incidents", """
SELECT count() AS open_incidents FROM
(
    SELECT incident_id, argMax(state, event_time) AS last_state FROM alerts FINAL
    WHERE $__timeFilter(event_time) GROUP BY incident_id
)
WHERE last_state NOT IN ('resolved', 'inactive')""", w=6, h=4)
    b.sql("stat", "Alert events", """
SELECT count() AS alert_events FROM alerts FINAL WHERE $__timeFilter(event_time)""", w=6, h=4)
    b.prom("timeseries", "Firing alerts (worker gauge)",
           [("sum by (rule, severity) (clawstream_alerts_firing)", "{{rule}} ({{severity}})")],
           w=12, h=4)
    b.prom("timeseries", "Alert partitions per worker (each worker's share of the rules)",
           [("sum by (instance) (clawstream_alerts_partitions_assigned)", "{{instance}}")],
           w=12, h=6)
    b.prom("timeseries", "Alert inputs per partition (1/s)",
           [("sum by (partition) (rate(clawstream_alerts_partition_inputs_total[1m]))",
             "partition {{partition}}")], w=12, h=6)
    b.sql("timeseries", "Alert events by state", """
SELECT $__timeInterval(event_time) AS time, toString(state) AS state, count() AS events
FROM alerts FINAL WHERE $__timeFilter(event_time)
GROUP BY time, state ORDER BY time""", w=12, h=8)
    b.sql("barchart", "Incidents by rule", """
SELECT rule, uniqExact(incident_id) AS incidents FROM alerts FINAL
WHERE $__timeFilter(event_time) GROUP BY rule ORDER BY incidents DESC""", w=12, h=8)
    b.sql("table", "Open incidents", """
SELECT rule, toString(severity) AS severity, argMax(toString(state), event_time) AS state,
       min(starts_at) AS since, argMax(value, event_time) AS value,
       toString(any(labels)) AS labels, incident_id
FROM alerts FINAL WHERE $__timeFilter(event_time)
GROUP BY rule, severity, incident_id
HAVING state NOT IN ('resolved', 'inactive') ORDER BY since DESC LIMIT 100""", w=24, h=8)
    b.sql("table", "Alert history", """
SELECT event_time, rule, toString(state) AS state, toString(severity) AS severity,
       agent_id AS agent, labels['app'] AS app, round(value, 4) AS value, incident_id
FROM alerts FINAL WHERE $__timeFilter(event_time)
ORDER BY event_time DESC LIMIT 200""", w=24, h=10)
    return b


def pipeline_health() -> Board:
    b = Board("clawstream-pipeline", "clawstream / Pipeline health",
              "Throughput, consumer lag, insert latency, spool depth and dead letters from the "
              "processes' /metrics (Prometheus), plus what actually landed in ClickHouse.",
              ["pipeline"])
    b.prom("stat", "Processes up", [("sum(up{job=~\"clawstream-.*\"})", "up")], w=6, h=4)
    b.prom("stat", "Sink lag (messages)", [("sum(clawstream_sink_consumer_lag)", "lag")],
           w=6, h=4)
    b.prom("stat", "Spool depth (events)", [("sum(clawstream_sdk_spool_depth_messages)",
                                              "spooled")], w=6, h=4)
    b.prom("stat", "Seconds since last sink commit",
           [("time() - max(clawstream_sink_last_commit_timestamp_seconds)", "age")], w=6, h=4,
           unit=units.Seconds)
    b.prom("timeseries", "Throughput (events/s)", [
        ("sum(rate(clawstream_sdk_events_produced_total[5m]))", "produced (SDK)"),
        ("sum(rate(clawstream_sink_messages_total[5m]))", "consumed (sink)"),
        ("sum(rate(clawstream_worker_events_total[5m]))", "processed (worker)"),
    ], w=12, h=8, unit=units.RequestsPerSecond)
    b.prom("timeseries", "Sink consumer lag by topic", [
        ("sum by (topic) (clawstream_sink_consumer_lag)", "{{topic}}")], w=12, h=8)
    b.prom("timeseries", "Insert latency (s)", [
        ("histogram_quantile(0.5, sum by (le) (rate(clawstream_sink_insert_seconds_bucket[5m])))",
         "p50"),
        ("histogram_quantile(0.95, sum by (le) (rate(clawstream_sink_insert_seconds_bucket[5m])))",
         "p95"),
        ("histogram_quantile(0.99, sum by (le) (rate(clawstream_sink_insert_seconds_bucket[5m])))",
         "p99"),
    ], w=12, h=8, unit=units.Seconds)
    b.prom("timeseries", "Rows inserted by table (rows/s)", [
        ("sum by (table) (rate(clawstream_sink_rows_inserted_total[5m]))", "{{table}}")],
        w=12, h=8)
    b.prom("timeseries", "Dead letters (msg/s)", [
        ("sum by (reason) (rate(clawstream_sink_dlq_messages_total[5m]))", "sink {{reason}}"),
        ("sum by (reason) (rate(clawstream_worker_dlq_total[5m]))", "worker {{reason}}"),
        ("sum by (reason) (rate(clawstream_notifier_dlq_total[5m]))", "notifier {{reason}}"),
    ], w=12, h=8)
    b.prom("timeseries", "Errors (per s)", [
        ("sum by (table) (rate(clawstream_sink_insert_errors_total[5m]))", "insert {{table}}"),
        ("sum by (type, fate) (rate(clawstream_sdk_events_failed_total[5m]))",
         "sdk {{type}} {{fate}}"),
        ("sum(rate(clawstream_notifier_retries_total[5m]))", "notifier retries"),
    ], w=12, h=8)
    b.prom("timeseries", "SDK spool depth", [
        ("sum(clawstream_sdk_spool_depth_messages)", "events"),
        ("sum(clawstream_sdk_spool_depth_bytes)", "bytes")], w=12, h=8)
    b.prom("timeseries", "Worker: late events, windows, watermark delay", [
        ("sum(rate(clawstream_worker_late_events_total[5m]))", "late events/s"),
        ("sum(rate(clawstream_worker_windows_emitted_total[5m]))", "windows/s"),
        ("time() - max(clawstream_worker_watermark_ms) / 1000", "watermark delay (s)"),
    ], w=12, h=8)
    b.prom("timeseries", "SDK delivery latency p95 (s)", [
        ("histogram_quantile(0.95, sum by (le) "
         "(rate(clawstream_sdk_delivery_latency_seconds_bucket[5m])))", "p95")],
        w=12, h=8, unit=units.Seconds)
    b.sql("timeseries", "Landed in ClickHouse (events per interval)", """
SELECT $__timeInterval(minute) AS time, event_type, countMerge(events) AS events
FROM events_1m WHERE $__timeFilter(minute)
GROUP BY time, event_type ORDER BY time""", w=24, h=8)
    return b


BOARDS = {
    "fleet-overview": fleet_overview,
    "agent-drilldown": agent_drilldown,
    "perception-quality": perception,
    "alerts": alerts,
    "pipeline-health": pipeline_health,
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in BOARDS.items():
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(build().json(), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
