"""`clawstream report`: one self-contained HTML file (no JavaScript, no CDN, charts as inline
SVG, frame thumbnails as data: URIs) with the fleet's throughput, success rate and latency over
time, failures by app, alerts, the worst actions and UI elements, and an episode viewer: each
step's frame with its detection boxes and the action drawn where it happened, with its outcome.

`gather(settings, filters)` runs the canned SQL of consumers.analytics.queries (rollups for the
fleet-wide parts, raw tables for the episode); `render(data)` is pure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawstream import __version__
from clawstream.settings import Settings
from consumers.analytics import queries as Q
from consumers.analytics import svg
from consumers.analytics.filters import Filters
from consumers.analytics.svg import esc


@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass
class Episode:
    session_id: str
    plan: dict[str, Any] | None
    steps: list[dict[str, Any]]  # each: action dict + "frame" dict + "boxes" list


@dataclass
class ReportData:
    generated_at: dt.datetime
    filters: Filters
    bucket_s: int
    overview: dict[str, Any]
    events_per_type: Table
    series: list[dict[str, Any]]
    failures_by_app: Table
    success: Table
    slowest: Table
    failing: Table
    alerts_per_state: Table
    alert_history: Table
    episodes: Table
    episode: Episode | None
    notes: list[str] = field(default_factory=list)


def _bucket_for(filters: Filters, first: dt.datetime | None, last: dt.datetime | None) -> int:
    """About 60 points over the data's time span, whole minutes (the rollup grain)."""
    if first is None or last is None:
        return 60
    span = max((last - first).total_seconds(), 60.0)
    return max(60, int(span / 60) // 60 * 60)


def _q(settings: Settings, sql: str, params: dict[str, Any]) -> Any:
    from consumers.clickhouse import query

    return query(settings, sql, params)


def _table(settings: Settings, title: str, sql: str, params: dict[str, Any]) -> Table:
    r = _q(settings, sql, params)
    return Table(title, r.column_names, r.rows)


def pick_episode(episodes: Table) -> str | None:
    """The most recent episode with several steps, preferring one with a failure (more to
    see); else the most recent one."""
    rows = [dict(zip(episodes.columns, r, strict=False)) for r in episodes.rows]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["steps"] >= 3 and r["failures"] > 0, min(r["steps"], 8)))
    return str(best["session_id"])


def gather_episode(settings: Settings, filters: Filters, session_id: str) -> Episode:
    params = {**filters.params(), "session": session_id}
    plan_r = _q(settings, Q.EPISODE_PLAN, params)
    plan = plan_r.dicts()[0] if plan_r.rows else None
    frames = _q(settings, Q.EPISODE_FRAMES, params).dicts()
    boxes: dict[str, list[tuple[int, int, int, int, str, bool]]] = {}
    for d in _q(settings, Q.EPISODE_DETECTIONS, params).dicts():
        label = d["text"] or d["element_kind"]
        boxes.setdefault(d["frame_id"], []).append(
            (d["x"], d["y"], d["w"], d["h"], str(label), bool(d["interactable"])))
    steps = []
    for a in _q(settings, Q.EPISODE_ACTIONS, params).dicts():
        # the frame the agent acted on: the latest frame at or before the action
        seen = [f for f in frames if f["event_time"] <= a["event_time"]]
        frame = seen[-1] if seen else (frames[0] if frames else None)
        steps.append({**a, "frame": frame,
                      "boxes": boxes.get(frame["frame_id"], []) if frame else []})
    return Episode(session_id, plan, steps)


def gather(settings: Settings, filters: Filters) -> ReportData:
    params = filters.params()
    ov = _q(settings, Q.OVERVIEW_ROLLUP, params)
    overview = ov.dicts()[0] if ov.rows else {}
    bucket = _bucket_for(filters, overview.get("first_seen"), overview.get("last_seen"))
    series = _q(settings, Q.SERIES_ROLLUP, {**params, "bucket_s": bucket}).dicts()
    episodes = _table(settings, "Recent episodes", Q.EPISODES, {**params, "limit": 20})
    session = filters.session or pick_episode(episodes)
    episode = gather_episode(settings, filters, session) if session else None
    return ReportData(
        generated_at=dt.datetime.now(dt.UTC),
        filters=filters,
        bucket_s=bucket,
        overview=overview,
        events_per_type=_table(settings, "Events per type", Q.EVENTS_PER_TYPE_ROLLUP, params),
        series=series,
        failures_by_app=_table(settings, "Failures by app", Q.FAILURES_BY_APP, params),
        success=_table(settings, "Success rate by app and action kind", Q.SUCCESS_ROLLUP,
                       params),
        slowest=_table(settings, "Slowest actions (p95)", Q.SLOWEST_ROLLUP,
                       {**params, "limit": 10}),
        failing=_table(settings, "Most failing UI elements", Q.FAILING_ELEMENTS,
                       {**params, "limit": 15}),
        alerts_per_state=_table(settings, "Alert events per rule and state",
                                Q.ALERTS_PER_STATE, params),
        alert_history=_table(settings, "Latest alert events", Q.ALERT_HISTORY,
                             {**params, "limit": 30}),
        episodes=episodes,
        episode=episode,
    )


# -- rendering (pure) ------------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b8c0d0}
main{padding:18px 28px;max-width:1240px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:14px 18px;
margin:0 0 18px}
h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:8px 0}
.kpis{display:flex;gap:12px;flex-wrap:wrap}
.kpi{background:#f0f3f8;border-radius:6px;padding:10px 14px;min-width:120px}
.kpi b{display:block;font-size:22px}.kpi span{color:#5b6475;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #eef0f4;border-radius:6px}
svg .ct{font-weight:600;font-size:13px;fill:#1d2330}svg .grid{stroke:#eceff3}
svg .yt{font-size:11px;fill:#5b6475;text-anchor:end}svg .xt{font-size:11px;fill:#5b6475;
text-anchor:middle}svg .lg,svg .bv{font-size:11px;fill:#1d2330}svg .yl{font-size:11px;
fill:#5b6475;text-anchor:middle}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:4px 0 8px}
th,td{border-bottom:1px solid #eceff3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.steps{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
.step{border:1px solid #e1e4ea;border-radius:8px;padding:10px}
.step h3{display:flex;justify-content:space-between}
.badge{border-radius:10px;padding:1px 9px;color:#fff;font-size:12px}
svg.frame{border:1px solid #ccd;border-radius:4px;display:block}
.muted{color:#5b6475}
"""


def _cell(v: Any) -> str:
    if v is None:
        return '<td class="muted">∅</td>'
    if isinstance(v, dt.datetime):
        return f"<td>{esc(v.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, int | float):
        text = f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"
        return f'<td class="num">{esc(text)}</td>'
    return f"<td>{esc(v)}</td>"


def html_table(t: Table, max_rows: int = 50) -> str:
    if not t.rows:
        return f'<h3>{esc(t.title)}</h3><p class="muted">no rows</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in t.rows[:max_rows])
    return f"<h3>{esc(t.title)}</h3><table><tr>{head}</tr>{body}</table>"


def _kpis(ov: dict[str, Any]) -> str:
    def k(label: str, value: Any, fmt: str = "{}") -> str:
        shown = "–" if value is None else fmt.format(value)
        return f'<div class="kpi"><b>{esc(shown)}</b><span>{esc(label)}</span></div>'

    return '<div class="kpis">' + "".join([
        k("agents", ov.get("agents")), k("events", ov.get("events"), "{:,}"),
        k("outcomes", ov.get("outcomes"), "{:,}"),
        k("success rate", ov.get("success_rate"), "{:.1%}"),
        k("p50 latency (ms)", ov.get("p50_ms"), "{:,.0f}"),
        k("p95 latency (ms)", ov.get("p95_ms"), "{:,.0f}"),
    ]) + "</div>"


def _charts(data: ReportData) -> str:
    s = data.series
    xs = [r["t"] for r in s]
    per_s = max(data.bucket_s, 1)
    throughput = svg.line_chart(xs, {"events/s": [r["events"] / per_s for r in s]},
                                title=f"Throughput (events/s, {data.bucket_s // 60} min buckets)",
                                area=True)
    success = svg.line_chart(
        xs, {"success rate": [r["successes"] / r["outcomes"] if r["outcomes"] else None
                              for r in s]},
        title="Success rate", y_max=1.0)
    latency = svg.line_chart(xs, {"p50 ms": [r["p50_ms"] for r in s],
                                  "p95 ms": [r["p95_ms"] for r in s]},
                             title="Outcome latency (ms)")
    fa = data.failures_by_app
    rows = [dict(zip(fa.columns, r, strict=False)) for r in fa.rows]
    failures = svg.bar_chart([r["app"] for r in rows],
                             {"failures": [r["failures"] for r in rows],
                              "timeouts": [r["timeouts"] for r in rows]},
                             title="Failures by app", colors=("#e4572e", "#f0a202"))
    return (f'<div class="charts" id="charts">{throughput}{success}{latency}{failures}</div>')


def _alerts(data: ReportData) -> str:
    t = data.alerts_per_state
    rows = [dict(zip(t.columns, r, strict=False)) for r in t.rows]
    if rows:
        rules = sorted({r["rule"] for r in rows})
        states = sorted({r["state"] for r in rows})
        series = {st: [sum(r["events"] for r in rows if r["rule"] == rule and r["state"] == st)
                       for rule in rules] for st in states}
        chart = svg.bar_chart(rules, series, title="Alert events by rule and state", width=760,
                              stacked=True)
    else:
        chart = '<p class="muted">No alerts in this period.</p>'
    return chart + html_table(data.alert_history, 30)


def _episode(ep: Episode | None) -> str:
    if ep is None:
        return '<p class="muted">No episode in this period.</p>'
    plan = ep.plan or {}
    head = (f"<p><b>{esc(plan.get('goal', '(no plan)'))}</b> — agent "
            f"{esc(plan.get('agent_id', '?'))}, app {esc(plan.get('app', '?'))}, "
            f"session <code>{esc(ep.session_id)}</code>, {len(ep.steps)} actions</p>")
    cards = []
    for i, st in enumerate(ep.steps, 1):
        frame = st["frame"]
        color = svg.STATUS_COLORS.get(str(st["status"]), "#333")
        if frame is not None:
            view = svg.frame_view(width=frame["width"], height=frame["height"],
                                  thumbnail_b64=frame["thumbnail_b64"],
                                  thumbnail_format=frame["thumbnail_format"],
                                  boxes=st["boxes"], action=st)
        else:
            view = '<p class="muted">no frame</p>'
        dur = st.get("duration_ms")
        detail = (f"{esc(st['kind'])} <b>{esc(st['target'])}</b>"
                  + (f" at ({st['x']}, {st['y']})" if st.get("x") is not None else "")
                  + (f" · {dur:,.0f} ms" if dur is not None else "")
                  + (f'<br><span class="muted">{esc(st["error"])}</span>'
                     if st.get("error") else ""))
        plan_step = "" if st.get("step") is None else f" (plan step {st['step']})"
        cards.append(
            f'<div class="step" data-step="{i}"><h3><span>Step {i}{plan_step}</span>'
            f'<span class="badge" style="background:{color}">{esc(st["status"])}</span></h3>'
            f"{view}<p>{detail}</p></div>")
    return head + '<div class="steps" id="episode">' + "".join(cards) + "</div>"


def render(data: ReportData) -> str:
    f = data.filters
    since = dt.datetime.fromtimestamp(f.since_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    scope = f"since {since}" + (f", app {f.app}" if f.app else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clawstream report</title><style>{CSS}</style></head>
<body>
<header><h1>clawstream fleet report</h1>
<p>{esc(scope)} · generated {esc(data.generated_at.strftime('%Y-%m-%d %H:%M:%S UTC'))} ·
clawstream {esc(__version__)}</p></header>
<main>
<section id="overview"><h2>Fleet overview</h2>{_kpis(data.overview)}
{html_table(data.events_per_type)}</section>
<section><h2>Over time</h2>{_charts(data)}</section>
<section id="alerts"><h2>Alerts</h2>{_alerts(data)}</section>
<section id="quality"><h2>Where actions fail</h2>{html_table(data.success, 40)}
{html_table(data.slowest)}{html_table(data.failing)}</section>
<section id="episode-viewer"><h2>Episode viewer</h2>{_episode(data.episode)}
{html_table(data.episodes, 20)}</section>
</main></body></html>
"""


def write_report(settings: Settings, filters: Filters, out: Path) -> ReportData:
    data = gather(settings, filters)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return data
