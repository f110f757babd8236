"""The canned analytics: every SQL text of `clawstream query NAME` and the report, in one place.

Each SQL text is a constant that declares the same bound parameters ({since_ms:Int64},
{until_ms:Int64}, {agent:String}, {app:String}, {session:String}, {limit:UInt32}; '' means
"any"), so user input never becomes SQL text. Sections that aggregate have two forms:

- `sql` reads the per-minute rollups (infra/clickhouse/050_rollups.sql): fast at any scale,
  time filter rounded to whole minutes;
- `raw_sql` reads the raw tables with FINAL: exact to the millisecond, and the only form that
  can filter by agent (the rollups have no agent dimension), so an --agent filter picks it.

Raw tables are read with explicit FINAL (dedup by event_id), so the SQL is also right when run
outside `consumers.clickhouse.query` (which sets final=1 anyway).

Over 400 lines on purpose: it is a catalog of SQL constants with no logic, kept in one file so
the fragments every query shares stay in one place and a reviewer checks in one file that no
user input becomes SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.analytics.filters import Filters

# -- shared fragments (constants: composing them is not formatting user input) ---------------
SINCE = "fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')"
UNTIL = "fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')"
RAW_TIME = f"event_time >= {SINCE} AND event_time < {UNTIL}"
ROLLUP_TIME = f"minute >= toStartOfMinute({SINCE}) AND minute < {UNTIL}"
AGENT = "({agent:String} = '' OR agent_id = {agent:String})"
APP = "({app:String} = '' OR app = {app:String})"
FAILED = "status NOT IN ('success', 'skipped')"

#: every raw event (one row per event, not per detected element) with its type and app
RAW_EVENTS = """(
    SELECT 'frame' AS event_type, agent_id, app, event_time FROM frames FINAL
    UNION ALL SELECT 'detection', agent_id, app, event_time FROM detection_frames FINAL
    UNION ALL SELECT 'plan', agent_id, app, event_time FROM plans FINAL
    UNION ALL SELECT 'action', agent_id, app, event_time FROM actions FINAL
    UNION ALL SELECT 'outcome', agent_id, app, event_time FROM outcomes FINAL
    UNION ALL SELECT 'heartbeat', agent_id, '', event_time FROM heartbeats FINAL
    UNION ALL SELECT 'state_delta', agent_id, '', event_time FROM state_deltas FINAL
)"""


@dataclass(frozen=True)
class Section:
    """One result table of a canned query."""

    title: str
    sql: str
    columns: tuple[str, ...]
    raw_sql: str | None = None  # None: `sql` already reads raw tables

    def text(self, source: str = "auto", filters: Filters | None = None) -> str:
        """The SQL to run: 'rollup', 'raw', or 'auto' (raw only when an agent filter is set)."""
        if self.raw_sql is None or source == "rollup":
            return self.sql
        if source == "raw" or (filters is not None and filters.agent):
            return self.raw_sql
        return self.sql


@dataclass(frozen=True)
class Canned:
    name: str
    help: str
    sections: tuple[Section, ...]
    requires: tuple[str, ...] = ()  # filters that must be set (e.g. agent for a timeline)


# -- fleet overview ---------------------------------------------------------------------------
OVERVIEW_COLUMNS = ("agents", "events", "outcomes", "success_rate", "p50_ms", "p95_ms",
                    "first_seen", "last_seen")
OVERVIEW_ROLLUP = f"""
SELECT e.agents AS agents, e.events AS events, o.outcomes AS outcomes,
       round(o.successes / nullIf(o.outcomes, 0), 4) AS success_rate,
       round(o.q[1], 1) AS p50_ms, round(o.q[3], 1) AS p95_ms,
       e.first_seen AS first_seen, e.last_seen AS last_seen
FROM
(
    SELECT uniqMerge(agents) AS agents, countMerge(events) AS events,
           min(minute) AS first_seen, max(minute) AS last_seen
    FROM events_1m WHERE {ROLLUP_TIME} AND {APP}
) AS e
CROSS JOIN
(
    SELECT countMerge(outcomes) AS outcomes, countMerge(successes) AS successes,
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q
    FROM outcomes_1m WHERE {ROLLUP_TIME} AND {APP}
) AS o
"""
OVERVIEW_RAW = f"""
SELECT e.agents AS agents, e.events AS events, o.outcomes AS outcomes,
       round(o.successes / nullIf(o.outcomes, 0), 4) AS success_rate,
       round(o.q[1], 1) AS p50_ms, round(o.q[3], 1) AS p95_ms,
       e.first_seen AS first_seen, e.last_seen AS last_seen
FROM
(
    SELECT uniq(agent_id) AS agents, count() AS events,
           min(event_time) AS first_seen, max(event_time) AS last_seen
    FROM {RAW_EVENTS} WHERE {RAW_TIME} AND {AGENT} AND {APP}
) AS e
CROSS JOIN
(
    SELECT count() AS outcomes, countIf(status = 'success') AS successes,
           quantiles(0.5, 0.9, 0.95, 0.99)(duration_ms) AS q
    FROM outcomes FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP}
) AS o
"""
EVENTS_PER_TYPE_COLUMNS = ("event_type", "events", "agents")
EVENTS_PER_TYPE_ROLLUP = f"""
SELECT event_type, countMerge(events) AS events, uniqMerge(agents) AS agents
FROM events_1m WHERE {ROLLUP_TIME} AND {APP}
GROUP BY event_type ORDER BY event_type
"""
EVENTS_PER_TYPE_RAW = f"""
SELECT event_type, count() AS events, uniq(agent_id) AS agents
FROM {RAW_EVENTS} WHERE {RAW_TIME} AND {AGENT} AND {APP}
GROUP BY event_type ORDER BY event_type
"""

# -- success rate by app and action kind --------------------------------------------------------
SUCCESS_COLUMNS = ("app", "action_kind", "outcomes", "successes", "failures", "success_rate",
                   "p50_ms", "p95_ms")
SUCCESS_ROLLUP = f"""
SELECT app, action_kind, countMerge(outcomes) AS outcomes, countMerge(successes) AS successes,
       countMerge(failures) AS failures, round(successes / nullIf(outcomes, 0), 4) AS success_rate,
       round(quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[1], 1) AS p50_ms,
       round(quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[3], 1) AS p95_ms
FROM outcomes_1m WHERE {ROLLUP_TIME} AND {APP}
GROUP BY app, action_kind ORDER BY success_rate ASC, outcomes DESC, app, action_kind
"""
SUCCESS_RAW = f"""
SELECT app, action_kind, count() AS outcomes, countIf(status = 'success') AS successes,
       countIf({FAILED}) AS failures, round(successes / nullIf(outcomes, 0), 4) AS success_rate,
       round(quantiles(0.5, 0.9, 0.95, 0.99)(duration_ms)[1], 1) AS p50_ms,
       round(quantiles(0.5, 0.9, 0.95, 0.99)(duration_ms)[3], 1) AS p95_ms
FROM outcomes FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP}
GROUP BY app, action_kind ORDER BY success_rate ASC, outcomes DESC, app, action_kind
"""

# -- slowest actions (p95) ----------------------------------------------------------------------
SLOWEST_COLUMNS = ("app", "action_kind", "outcomes", "mean_ms", "p50_ms", "p95_ms", "p99_ms",
                   "max_ms")
SLOWEST_ROLLUP = f"""
SELECT app, action_kind, outcomes, mean_ms, round(q[1], 1) AS p50_ms, round(q[3], 1) AS p95_ms,
       round(q[4], 1) AS p99_ms, max_ms
FROM
(
    SELECT app, action_kind, countMerge(outcomes) AS outcomes,
           round(sumMerge(duration_sum) / nullIf(outcomes, 0), 1) AS mean_ms,
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q,
           round(maxMerge(duration_max), 1) AS max_ms
    FROM outcomes_1m WHERE {ROLLUP_TIME} AND {APP}
    GROUP BY app, action_kind
)
ORDER BY p95_ms DESC, app, action_kind LIMIT {{limit:UInt32}}
"""
SLOWEST_RAW = f"""
SELECT app, action_kind, outcomes, mean_ms, round(q[1], 1) AS p50_ms, round(q[3], 1) AS p95_ms,
       round(q[4], 1) AS p99_ms, max_ms
FROM
(
    SELECT app, action_kind, count() AS outcomes, round(avg(duration_ms), 1) AS mean_ms,
           quantiles(0.5, 0.9, 0.95, 0.99)(duration_ms) AS q, round(max(duration_ms), 1) AS max_ms
    FROM outcomes FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP}
    GROUP BY app, action_kind
)
ORDER BY p95_ms DESC, app, action_kind LIMIT {{limit:UInt32}}
"""

# -- most failing UI elements (raw: needs the action's target joined to its outcome) -----------
FAILING_COLUMNS = ("app", "element", "element_kind", "attempts", "failures", "failure_rate",
                   "top_error")
FAILING_ELEMENTS = f"""
SELECT a.app AS app,
       ifNull(a.target_label, ifNull(a.target_element_id, '(no target)')) AS element,
       ifNull(a.target_element_kind, '') AS element_kind,
       count() AS attempts,
       countIf(f.action_id != '') AS failures,
       round(failures / attempts, 4) AS failure_rate,
       ifNull(topKIf(1)(f.error_kind, f.action_id != '')[1], '') AS top_error
FROM
(
    SELECT event_id, app, target_label, target_element_id, target_element_kind
    FROM actions FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP}
) AS a
LEFT JOIN
(
    SELECT action_id, ifNull(error_kind, status) AS error_kind
    FROM outcomes FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP} AND {FAILED}
) AS f ON f.action_id = toString(a.event_id)
GROUP BY app, element, element_kind
HAVING failures > 0
ORDER BY failures DESC, failure_rate DESC, app, element
LIMIT {{limit:UInt32}}
SETTINGS join_use_nulls = 0
"""

# -- one agent's timeline -----------------------------------------------------------------------
TIMELINE_COLUMNS = ("event_time", "event_type", "app", "session_id", "detail", "event_id")
_TIMELINE_FILTER = f"agent_id = {{agent:String}} AND {RAW_TIME}"
TIMELINE = f"""
SELECT event_time, event_type, app, session_id, detail, event_id
FROM
(
  SELECT * FROM
  (
    SELECT event_time, 'plan' AS event_type, app, session_id,
           concat('plan: ', goal, ' (', toString(step_count), ' steps)') AS detail,
           toString(event_id) AS event_id
    FROM plans FINAL WHERE {_TIMELINE_FILTER}
    UNION ALL
    SELECT event_time, 'action', app, session_id,
           concat(toString(kind), ' ', ifNull(target_label, ''),
                  if(target_x IS NULL, '', concat(' @', toString(target_x), ',',
                                                 toString(target_y)))),
           toString(event_id)
    FROM actions FINAL WHERE {_TIMELINE_FILTER}
    UNION ALL
    SELECT event_time, 'outcome', app, session_id,
           concat(toString(status), ' ', toString(action_kind), ' in ',
                  toString(round(duration_ms)), ' ms',
                  if(error IS NULL, '', concat(': ', ifNull(error_kind, ''), ' ', error))),
           toString(event_id)
    FROM outcomes FINAL WHERE {_TIMELINE_FILTER}
    UNION ALL
    SELECT event_time, 'frame', app, session_id,
           concat(toString(width), 'x', toString(height), ' changed ',
                  toString(round(change_ratio * 100, 1)), '%'),
           toString(event_id)
    FROM frames FINAL WHERE {_TIMELINE_FILTER}
    UNION ALL
    SELECT event_time, 'detection', app, session_id,
           concat(toString(elements), ' elements (', toString(interactable_elements),
                  ' interactable)'),
           toString(event_id)
    FROM detection_frames FINAL WHERE {_TIMELINE_FILTER}
    UNION ALL
    SELECT event_time, 'heartbeat', '', session_id,
           concat(toString(status), ', spool ', toString(spool_depth)),
           toString(event_id)
    FROM heartbeats FINAL WHERE {_TIMELINE_FILTER}
  )
  ORDER BY event_time DESC
  LIMIT {{limit:UInt32}}
)
WHERE {APP}
ORDER BY event_time ASC
"""

# -- episodes and one episode's steps -------------------------------------------------------------
EPISODES_COLUMNS = ("session_id", "agent_id", "app", "goal", "started", "ended", "duration_s",
                    "steps", "successes", "failures", "succeeded")
EPISODES = f"""
SELECT o.session_id AS session_id, o.agent AS agent_id, o.app_name AS app,
       ifNull(p.goal, '') AS goal, o.started AS started, o.ended AS ended,
       round(dateDiff('millisecond', o.started, o.ended) / 1000, 1) AS duration_s,
       o.steps AS steps, o.successes AS successes, o.failures AS failures,
       o.last_status = 'success' AS succeeded
FROM
(
    SELECT session_id, any(agent_id) AS agent, any(app) AS app_name,
           min(event_time) AS started, max(event_time) AS ended, count() AS steps,
           countIf(status = 'success') AS successes, countIf({FAILED}) AS failures,
           argMax(status, event_time) AS last_status
    FROM outcomes FINAL WHERE {RAW_TIME} AND {AGENT} AND {APP}
    GROUP BY session_id
    ORDER BY started DESC
    LIMIT {{limit:UInt32}}
) AS o
LEFT JOIN
(
    SELECT session_id, any(goal) AS goal FROM plans FINAL
    WHERE {RAW_TIME} AND {AGENT} AND {APP} GROUP BY session_id
) AS p ON p.session_id = o.session_id
ORDER BY started DESC
SETTINGS join_use_nulls = 1
"""

#: the episode asked for, else the latest one matching the filters
_EPISODE_ID = f"""if({{session:String}} != '', {{session:String}}, (
    SELECT argMax(session_id, event_time) FROM actions FINAL
    WHERE {RAW_TIME} AND {AGENT} AND {APP}))"""
EPISODE_PLAN_COLUMNS = ("session_id", "agent_id", "app", "goal", "planned_at", "steps_planned",
                        "plan_id")
EPISODE_PLAN = f"""
SELECT session_id, agent_id, app, goal, event_time AS planned_at, step_count AS steps_planned,
       toString(event_id) AS plan_id
FROM plans FINAL WHERE session_id = {_EPISODE_ID}
ORDER BY event_time
"""
EPISODE_STEPS_COLUMNS = ("step", "action_time", "kind", "target", "x", "y", "status",
                         "duration_ms", "error", "verified", "action_id")
EPISODE_STEPS = f"""
SELECT a.step_index AS step, a.event_time AS action_time, a.kind AS kind,
       ifNull(a.target_label, '') AS target, a.target_x AS x, a.target_y AS y,
       ifNull(o.status, 'pending') AS status, o.duration_ms AS duration_ms,
       o.error AS error, o.verification_passed AS verified, toString(a.event_id) AS action_id
FROM (SELECT * FROM actions FINAL WHERE session_id = {_EPISODE_ID}) AS a
LEFT JOIN
(
    SELECT action_id, toString(status) AS status, duration_ms, error, verification_passed
    FROM outcomes FINAL WHERE session_id = {_EPISODE_ID}
) AS o ON o.action_id = toString(a.event_id)
ORDER BY a.event_time, a.seq
SETTINGS join_use_nulls = 1
"""

# -- alert history -----------------------------------------------------------------------------
ALERT_HISTORY_COLUMNS = ("event_time", "rule", "state", "severity", "agent", "app", "value",
                         "incident_id")
ALERT_HISTORY = f"""
SELECT event_time, rule, toString(state) AS state, toString(severity) AS severity,
       agent_id AS agent, labels['app'] AS app, round(value, 4) AS value, incident_id
FROM alerts FINAL
WHERE {RAW_TIME} AND {AGENT} AND ({{app:String}} = '' OR labels['app'] = {{app:String}})
ORDER BY event_time DESC LIMIT {{limit:UInt32}}
"""
ALERTS_PER_STATE_COLUMNS = ("rule", "state", "events", "incidents", "last_at")
ALERTS_PER_STATE = f"""
SELECT rule, toString(state) AS state, count() AS events, uniqExact(incident_id) AS incidents,
       max(event_time) AS last_at
FROM alerts FINAL
WHERE {RAW_TIME} AND {AGENT} AND ({{app:String}} = '' OR labels['app'] = {{app:String}})
GROUP BY rule, state ORDER BY rule, state
"""

# -- time series for the report (bucketed per {bucket_s:UInt32}) --------------------------------
SERIES_COLUMNS = ("t", "events", "outcomes", "successes", "p50_ms", "p95_ms")
SERIES_ROLLUP = f"""
SELECT t, sum(ev) AS events, sum(oc) AS outcomes, sum(sc) AS successes,
       round(any(q1), 1) AS p50_ms, round(any(q3), 1) AS p95_ms
FROM
(
    SELECT toStartOfInterval(minute, toIntervalSecond({{bucket_s:UInt32}})) AS t,
           countMerge(events) AS ev, toUInt64(0) AS oc, toUInt64(0) AS sc,
           CAST(NULL, 'Nullable(Float64)') AS q1, CAST(NULL, 'Nullable(Float64)') AS q3
    FROM events_1m WHERE {ROLLUP_TIME} AND {APP} GROUP BY t
    UNION ALL
    SELECT toStartOfInterval(minute, toIntervalSecond({{bucket_s:UInt32}})) AS t, toUInt64(0),
           countMerge(outcomes), countMerge(successes),
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[1],
           quantilesMerge(0.5, 0.9, 0.95, 0.99)(duration_q)[3]
    FROM outcomes_1m WHERE {ROLLUP_TIME} AND {APP} GROUP BY t
)
GROUP BY t ORDER BY t
"""
FAILURES_BY_APP_COLUMNS = ("app", "outcomes", "failures", "timeouts", "failure_rate")
FAILURES_BY_APP = f"""
SELECT app, countMerge(outcomes) AS outcomes, countMerge(failures) AS failures,
       countMerge(timeouts) AS timeouts, round(failures / nullIf(outcomes, 0), 4) AS failure_rate
FROM outcomes_1m WHERE {ROLLUP_TIME} AND {APP}
GROUP BY app ORDER BY failures DESC, app
"""

# -- episode viewer (report): frames with thumbnails, their detections, the actions ----------
EPISODE_FRAMES_COLUMNS = ("frame_id", "event_time", "app", "width", "height",
                          "thumbnail_b64", "thumbnail_format", "thumb_width", "thumb_height",
                          "parent_id")
EPISODE_FRAMES = f"""
SELECT toString(event_id) AS frame_id, event_time, app, width, height,
       base64Encode(thumbnail) AS thumbnail_b64,
       thumbnail_format, thumb_width, thumb_height, parent_id
FROM frames FINAL WHERE session_id = {_EPISODE_ID}
ORDER BY event_time, seq
"""
EPISODE_DETECTIONS_COLUMNS = ("frame_id", "element_index", "element_kind", "x", "y", "w", "h",
                              "text", "confidence", "interactable")
EPISODE_DETECTIONS = f"""
SELECT frame_id, element_index, toString(element_kind) AS element_kind, x, y, w, h, text,
       confidence, interactable
FROM detections FINAL WHERE session_id = {_EPISODE_ID}
ORDER BY frame_id, element_index
"""
#: each action with the frame it acted on (the latest frame before it in the episode)
EPISODE_ACTIONS_COLUMNS = ("action_id", "event_time", "step", "kind", "target", "x", "y",
                           "bbox_x", "bbox_y", "bbox_w", "bbox_h", "status", "duration_ms",
                           "error")
EPISODE_ACTIONS = f"""
SELECT toString(a.event_id) AS action_id, a.event_time AS event_time, a.step_index AS step,
       toString(a.kind) AS kind, ifNull(a.target_label, '') AS target, a.target_x AS x,
       a.target_y AS y, a.target_bbox_x AS bbox_x, a.target_bbox_y AS bbox_y,
       a.target_bbox_w AS bbox_w, a.target_bbox_h AS bbox_h,
       ifNull(o.status, 'pending') AS status, o.duration_ms AS duration_ms, o.error AS error
FROM (SELECT * FROM actions FINAL WHERE session_id = {_EPISODE_ID}) AS a
LEFT JOIN
(
    SELECT action_id, toString(status) AS status, duration_ms, error
    FROM outcomes FINAL WHERE session_id = {_EPISODE_ID}
) AS o ON o.action_id = toString(a.event_id)
ORDER BY a.event_time, a.seq
SETTINGS join_use_nulls = 1
"""

# -- the registry of `clawstream query NAME` -------------------------------------------------------
CANNED: dict[str, Canned] = {c.name: c for c in (
    Canned("overview", "Fleet overview: agents, events, success rate, latency; events per type.",
           (Section("Fleet overview", OVERVIEW_ROLLUP, OVERVIEW_COLUMNS, OVERVIEW_RAW),
            Section("Events per type", EVENTS_PER_TYPE_ROLLUP, EVENTS_PER_TYPE_COLUMNS,
                    EVENTS_PER_TYPE_RAW))),
    Canned("success-rate", "Success rate and latency by app and action kind (worst first).",
           (Section("Success rate by app and action kind", SUCCESS_ROLLUP, SUCCESS_COLUMNS,
                    SUCCESS_RAW),)),
    Canned("slowest", "Slowest actions: outcome latency p95 by app and action kind.",
           (Section("Slowest actions (p95)", SLOWEST_ROLLUP, SLOWEST_COLUMNS, SLOWEST_RAW),)),
    Canned("failing-elements", "UI elements whose actions fail most (target label and kind).",
           (Section("Most failing UI elements", FAILING_ELEMENTS, FAILING_COLUMNS),)),
    Canned("timeline", "One agent's recent events in time order (needs --agent).",
           (Section("Agent timeline", TIMELINE, TIMELINE_COLUMNS),), requires=("agent",)),
    Canned("episodes", "Recent episodes (sessions): steps, successes, failures, duration.",
           (Section("Episodes", EPISODES, EPISODES_COLUMNS),)),
    Canned("episode", "One episode's plan and steps (--session, else the latest one).",
           (Section("Episode plan", EPISODE_PLAN, EPISODE_PLAN_COLUMNS),
            Section("Episode steps", EPISODE_STEPS, EPISODE_STEPS_COLUMNS))),
    Canned("alert-history", "Alert lifecycle events and counts per rule and state.",
           (Section("Alert events per rule and state", ALERTS_PER_STATE,
                    ALERTS_PER_STATE_COLUMNS),
            Section("Alert history", ALERT_HISTORY, ALERT_HISTORY_COLUMNS))),
)}


def plan(name: str, filters: Filters, source: str = "auto") -> list[tuple[str, str, dict]]:
    """(title, SQL, parameters) for each section of canned query `name`."""
    canned = CANNED[name]
    missing = [r for r in canned.requires if not getattr(filters, r)]
    if missing:
        raise ValueError(f"query {name!r} needs --{' --'.join(missing)}")
    params = filters.params()
    return [(s.title, s.text(source, filters), params) for s in canned.sections]
