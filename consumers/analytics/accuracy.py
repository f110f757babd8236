"""Are the derived results true? Every closed window recounted from the raw events.

The stream worker counts each event in its event-time windows as it streams by; ClickHouse
holds every raw event exactly once. This module recounts every emitted window from those raw
events (independently of `streams.windowing`: plain window arithmetic over the rows) and
compares, so a user can check the worker's figures after a crash, a skewed agent or a storm
of bad input instead of trusting them:

- an event counts in every window of every family containing its event time, under its own
  scope (agent, app, action kind: the kind for actions and outcomes, '' otherwise) and
  fleet-wide ('*'); the families are those the aggregates carry;
- except the windows it was late for (`late_events.missed_windows`), and not at all when the
  worker refused it because its clock ran ahead of its arrival (`late_events.reason =
  'clock_skew'`);
- lost outcomes the correlator made are events like any other (the windows count them when
  they are made); one is *false* when the agent's own outcome of that action is stored too.

`recount(rows)` is the pure comparison; `verify(settings, ...)` reads the rows and runs it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CORRELATOR = "clawstream-correlator"
FLEET = ("*", "*", "*")
#: reason of a late_events row for an event refused for its clock, not late for a window
CLOCK_SKEW = "clock_skew"

#: (event type, table, app column, kind column) of every raw event table
RAW_TABLES: tuple[tuple[str, str, str, str], ...] = (
    ("frame", "frames", "app", "''"),
    ("detection", "detection_frames", "app", "''"),
    ("plan", "plans", "app", "''"),
    ("action", "actions", "app", "kind"),
    ("outcome", "outcomes", "app", "action_kind"),
    ("heartbeat", "heartbeats", "''", "''"),
    ("state_delta", "state_deltas", "''", "''"),
)


@dataclass(frozen=True)
class RawEvent:
    event_type: str
    agent: str
    app: str
    kind: str
    event_id: str
    event_time: int


@dataclass(frozen=True)
class EmittedWindow:
    size_ms: int
    step_ms: int
    start: int
    scope: tuple[str, str, str]
    counts: Mapping[str, int]
    watermark: int


@dataclass
class AccuracyReport:
    """What a recount found; `ok` when nothing differs, is missing or was wrongly lost."""

    events: int = 0
    late_events: int = 0
    clock_skew_events: dict[str, int] = field(default_factory=dict)  # per agent
    windows_checked: int = 0
    fleet_windows_checked: int = 0
    windows_differing: list[str] = field(default_factory=list)
    windows_missing: list[str] = field(default_factory=list)
    lost_outcomes: int = 0
    false_lost_outcomes: int = 0

    @property
    def ok(self) -> bool:
        return not (self.windows_differing or self.windows_missing or self.false_lost_outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "late_events": self.late_events,
            "clock_skew_events": sum(self.clock_skew_events.values()),
            "clock_skew_agents": sorted(self.clock_skew_events),
            "windows_checked": self.windows_checked,
            "fleet_windows_checked": self.fleet_windows_checked,
            "windows_differing": len(self.windows_differing),
            "windows_missing": len(self.windows_missing),
            "lost_outcomes": self.lost_outcomes,
            "false_lost_outcomes": self.false_lost_outcomes,
            "ok": self.ok,
        }


def window_starts(t: int, size: int, step: int) -> range:
    """Starts of the windows of one family (size, step) that contain time t."""
    first = (t - size) // step * step + step
    return range(first, t - t % step + 1, step)


def label(size: int, step: int) -> str:
    """The family label late_events uses (`t10000`, `h300000/60000`)."""
    return f"t{size}" if size == step else f"h{size}/{step}"


def recount(events: Iterable[RawEvent], emitted: Sequence[EmittedWindow],
            late: Mapping[str, tuple[str, frozenset[str]]], *, since_ms: int,
            agents: Iterable[str] | None = None) -> AccuracyReport:
    """Compare the emitted windows starting at or after `since_ms` with a recount.

    `late`: event id -> (reason, missed windows as "label|start"). `agents`: the agents whose
    per-agent windows are checked (None: all); fleet windows are recounted from every event.
    """
    report = AccuracyReport()
    families = sorted({(w.size_ms, w.step_ms) for w in emitted})
    wanted = None if agents is None else set(agents)
    expected: dict[tuple[int, int, int, tuple[str, str, str]], Counter[str]] = defaultdict(
        Counter)
    for ev in events:
        if wanted is None or ev.agent in wanted:
            report.events += 1
        reason, missed = late.get(ev.event_id, ("", frozenset()))
        if reason == CLOCK_SKEW:
            continue
        own = (ev.agent, ev.app, ev.kind)
        for size, step in families:
            lab = label(size, step)
            for start in window_starts(ev.event_time, size, step):
                if start < since_ms or f"{lab}|{start}" in missed:
                    continue
                expected[(size, step, start, FLEET)][ev.event_type] += 1
                if wanted is None or ev.agent in wanted:
                    expected[(size, step, start, own)][ev.event_type] += 1
    closed_until: dict[str, int] = {}
    seen = set()
    for w in emitted:
        if w.start < since_ms or (wanted is not None and w.scope != FLEET
                                  and w.scope[0] not in wanted):
            continue
        key = (w.size_ms, w.step_ms, w.start, w.scope)
        seen.add(key)
        who = w.scope[0]
        closed_until[who] = max(closed_until.get(who, 0), w.watermark)
        if w.scope == FLEET:
            report.fleet_windows_checked += 1
        else:
            report.windows_checked += 1
        want = expected.get(key, Counter())
        if Counter({k: v for k, v in w.counts.items() if v}) != want:
            report.windows_differing.append(
                f"{label(w.size_ms, w.step_ms)}|{w.start}|{'|'.join(w.scope)}: emitted "
                f"{dict(sorted(w.counts.items()))}, recount {dict(sorted(want.items()))}")
    for (size, step, start, scope), want in expected.items():
        done = closed_until.get(scope[0])
        if want and done is not None and start + size <= done \
                and (size, step, start, scope) not in seen:
            report.windows_missing.append(f"{label(size, step)}|{start}|{'|'.join(scope)}: "
                                          f"recount {dict(sorted(want.items()))}")
    return report


# -- reading the rows (ClickHouse) --------------------------------------------------------------
def _raw_sql() -> str:
    parts = [
        f"SELECT '{t}' AS event_type, agent_id, {app} AS app, {kind} AS kind, "
        f"toString(event_id) AS id, toUnixTimestamp64Milli(event_time) AS t "
        f"FROM {table} FINAL WHERE event_time >= fromUnixTimestamp64Milli({{lo:Int64}}) "
        f"AND event_time < fromUnixTimestamp64Milli({{hi:Int64}})"
        for t, table, app, kind in RAW_TABLES
    ]
    return " UNION ALL ".join(parts)


def verify(settings: Any, *, since_ms: int, until_ms: int,
           agent_prefix: str | None = None) -> AccuracyReport:
    """Recount the windows that start in [since_ms, until_ms) from ClickHouse's raw events.

    `agent_prefix`: check only these agents' windows (fleet windows are recounted from
    every agent, so another fleet writing into the same ClickHouse makes them differ)."""
    from consumers.clickhouse import query

    span = 3_600_000  # windows reach back this far at most (the longest family, generously)
    params = {"lo": since_ms - span, "hi": until_ms + span}
    events = [RawEvent(str(t), str(a), str(app), str(kind), str(i), int(ms))
              for t, a, app, kind, i, ms in query(settings, _raw_sql(), params).rows]
    late_rows = query(settings, "SELECT toString(event_id), reason, missed_windows "
                      "FROM late_events FINAL WHERE event_time >= "
                      "fromUnixTimestamp64Milli({lo:Int64})", params).rows
    late = {str(i): (str(r), frozenset(m)) for i, r, m in late_rows}
    win_rows = query(settings, "SELECT window_size_ms, window_step_ms, "
                     "toUnixTimestamp64Milli(window_start), scope_agent, scope_app, "
                     "scope_action_kind, counts, toUnixTimestamp64Milli(watermark) "
                     "FROM window_aggregates FINAL WHERE window_start >= "
                     "fromUnixTimestamp64Milli({lo:Int64}) AND window_start < "
                     "fromUnixTimestamp64Milli({hi:Int64})", params).rows
    emitted = [EmittedWindow(int(size), int(step), int(start), (str(a), str(app), str(k)),
                             {str(t): int(n) for t, n in dict(counts).items()}, int(wm))
               for size, step, start, a, app, k, counts, wm in win_rows
               if since_ms <= int(start) < until_ms]
    agents = None
    if agent_prefix is not None:
        agents = {e.agent for e in events if e.agent.startswith(agent_prefix)}
    report = recount(events, emitted, late, since_ms=since_ms, agents=agents)
    ours = {e.event_id for e in events if agents is None or e.agent in agents}
    report.late_events = sum(1 for i, (r, _m) in late.items() if r != CLOCK_SKEW and i in ours)
    skew = Counter(str(a) for a, in query(
        settings, "SELECT agent_id FROM late_events FINAL WHERE reason = {r:String} AND "
        "event_time >= fromUnixTimestamp64Milli({lo:Int64})", {**params, "r": CLOCK_SKEW}).rows)
    report.clock_skew_events = {a: n for a, n in skew.items()
                                if agents is None or a in agents}
    lost = query(settings, "SELECT countIf(producer = {c:String}), countIf(producer = "
                 "{c:String} AND action_id IN (SELECT action_id FROM outcomes FINAL WHERE "
                 "producer != {c:String})) FROM outcomes FINAL WHERE event_time >= "
                 "fromUnixTimestamp64Milli({lo:Int64}) AND event_time < "
                 "fromUnixTimestamp64Milli({hi:Int64}) AND startsWith(agent_id, {p:String})",
                 {**params, "c": CORRELATOR, "p": agent_prefix or ""}).rows[0]
    report.lost_outcomes, report.false_lost_outcomes = int(lost[0]), int(lost[1])
    return report
