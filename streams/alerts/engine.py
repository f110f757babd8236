"""The alert evaluation engine: decoded events in, Alert lifecycle events out. No I/O.

All evaluation state lives in one flat `MutableMapping[str, JSON value]` (a dict in tests, a
changelog-backed faust Table in the worker). Values are replaced, never mutated in place,
so every change reaches the changelog and a restarted worker continues where the last one
stopped instead of firing the same incident again. Event ids are uuid5 of fingerprint,
incident and state, so replaying the same input after a crash yields the same ids and
downstream dedups them.

The event clock that absence rules are checked against is a watermark over the input
partitions, because the engine sees them interleaved in arrival order: while the worker works
through a backlog, one partition's events can be minutes ahead of another's, and the highest
event time seen would make every agent of the slower partition look silent. A partition that
was still behind its high-water mark when its last input was read holds the clock at the
highest event time read from it; partitions that are caught up do not (an idle partition never
stalls the clock). With none behind, the clock is the highest event time seen.

Agents' clocks are not trusted: an input's time counts for no more than its arrival (the Kafka
timestamp), so one agent whose clock runs ahead can neither move the clock past what has
arrived (making every other agent look silent) nor look active in the future itself.

Keys: ``inc|<fp>`` incident, ``thr|<fp>``/``ano|<fp>`` window counters, ``stk|<fp>``
streaks, ``cb|<fp>`` circuit breakers, ``seen|<agent>`` last activity, ``clock`` the event
clock, ``off|<topic>|<partition>`` what was read from an input partition ([offset, highest
event time, behind]), ``idx|firing``/``idx|agents``/``idx|open``/``idx|sources``/
``idx|behind`` small indexes.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.alerts.rules import (
    FAILED_STATUSES,
    AbsenceRule,
    AnomalyRule,
    CircuitBreakerRule,
    RuleBook,
    RuleSet,
    StreakRule,
    ThresholdRule,
    compare,
)

ALERT_NS = uuid.UUID("6f1c1f0e-8f0b-5a8e-9a3c-5b3c9f1c2a11")
#: Event-clock advance between two sweeps of the absence rules.
SWEEP_EVERY_MS = 1000
#: Activity timestamps are persisted at this granularity (bounds changelog writes).
SEEN_GRANULARITY_MS = 250


@dataclass(frozen=True)
class AlertEvent:
    """One lifecycle transition; `to_record(envelope)` gives the Alert Avro record."""

    event_id: str
    fingerprint: str
    incident_id: str
    rule: str
    rule_kind: str
    state: str  # pending | firing | renotify | resolved | inactive | transition
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    starts_at: int
    ends_at: int | None
    event_time: int
    transition: str | None = None

    def to_record(self, envelope: dict[str, Any]) -> dict[str, Any]:
        return {
            "envelope": envelope,
            "fingerprint": self.fingerprint,
            "incident_id": self.incident_id,
            "rule": self.rule,
            "rule_kind": self.rule_kind,
            "state": self.state,
            "severity": self.severity,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": self.value,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "transition": self.transition,
        }


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """Stable id of (rule, label set)."""
    text = rule + "\x00" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def event_id(fp: str, incident_id: str, state: str, n: int = 0) -> str:
    return str(uuid.uuid5(ALERT_NS, f"{fp}|{incident_id}|{state}|{n}"))


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, labels: dict[str, str], value: float | None) -> str:
    shown = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    try:
        return template.format_map(_SafeDict(labels, value=shown))
    except (ValueError, IndexError):
        return template


def window_label(size_ms: int) -> str:
    if size_ms % 3_600_000 == 0:
        return f"{size_ms // 3_600_000}h"
    if size_ms % 60_000 == 0:
        return f"{size_ms // 60_000}m"
    if size_ms % 1000 == 0:
        return f"{size_ms // 1000}s"
    return f"{size_ms}ms"


def aggregate_metric(rec: dict[str, Any], metric: str) -> float | None:
    """A number read from a WindowAggregate record; None when the window has no data for it."""
    outcomes = rec.get("outcomes") or {}
    total = sum(outcomes.values())
    if metric == "outcomes_total":
        return float(total)
    if metric == "failure_rate":
        if total == 0:
            return None
        return sum(outcomes.get(s, 0) for s in FAILED_STATUSES) / total
    if metric == "success_rate":
        sr = rec.get("success_rate")
        if sr is None and total:
            sr = outcomes.get("success", 0) / total
        return sr
    if metric == "late_events":
        counts = rec.get("counts") or {}
        return float(rec.get("late_events", counts.get("late", 0)) or 0)
    if metric.startswith("counts."):
        return float((rec.get("counts") or {}).get(metric[7:], 0))
    if metric.startswith("outcomes."):
        return float(outcomes.get(metric[9:], 0))
    v = rec.get(metric)
    return None if v is None else float(v)


def at_most(rec: dict[str, Any], t: int) -> dict[str, Any]:
    """The record with its envelope's event time capped at t (itself when already)."""
    env = rec["envelope"]
    if env["event_time"] <= t:
        return rec
    return {**rec, "envelope": {**env, "event_time": t}}


def outcome_labels(rec: dict[str, Any]) -> dict[str, str]:
    status = rec.get("status")
    return {
        "agent": rec["envelope"]["agent_id"],
        "app": rec.get("app") or "",
        "action_kind": str(rec.get("action_kind") or "other"),
        "executor": rec.get("executor") or "",
        "_status": str(status),
    }


@dataclass
class _Out:
    events: list[AlertEvent] = field(default_factory=list)


class AlertEngine:
    """Evaluates every rule kind over decoded events; state in a flat mapping."""

    def __init__(
        self, rules: RuleSet | RuleBook, store: MutableMapping[str, Any] | None = None
    ) -> None:
        self.book = rules if isinstance(rules, RuleBook) else RuleBook(rules)
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.evaluations = 0  # rule evaluations done (for the benchmark)
        self._kinds: dict[str, list[Any]] = {}
        self._kinds_version = -1

    @property
    def rules(self) -> RuleSet:
        return self.book.rules

    def _enabled(self, kind: str) -> list[Any]:
        """Enabled rules of a kind, recomputed only when the rule book was reloaded."""
        if self._kinds_version != self.book.version:
            self._kinds = {k: self.book.rules.enabled(k) for k in
                           ("threshold", "anomaly", "absence", "streak", "circuit_breaker")}
            self._kinds_version = self.book.version
        return self._kinds[kind]

    # -- entry points ---------------------------------------------------------------------
    def process(
        self,
        event_type: str,
        rec: dict[str, Any],
        arrival_ms: int | None = None,
        source: tuple[str, int, int] | list[Any] | None = None,
        behind: bool = False,
    ) -> list[AlertEvent]:
        """Evaluate one input. `source` = (topic, partition, offset) of the Kafka message:
        an input at or below the last offset seen for its partition is a redelivery (the
        worker crashed before committing) and is ignored, so streaks and breakers never
        count a message twice. `behind`: the partition had more messages after this one when
        it was read (its backlog holds the event clock back, see the module doc).
        `arrival_ms`: when it reached Kafka; an event time ahead of it is taken as that."""
        if arrival_ms is not None and event_type != "aggregate":
            rec = at_most(rec, arrival_ms)
        clock = None
        if source is not None:
            key = f"off|{source[0]}|{source[1]}"
            last = self.store.get(key)
            if isinstance(last, int):  # (state written before the clock was kept per source)
                last = [last, None, 0]
            if last is not None and source[2] <= last[0]:
                return []
            t = rec["window_end"] if event_type == "aggregate" else rec["envelope"]["event_time"]
            if arrival_ms is not None:
                t = min(t, arrival_ms)
            clock = self._source_clock(key, last, t, int(behind), source[2])
        if event_type == "aggregate":
            return self.on_aggregate(rec, arrival_ms, clock)
        if event_type == "outcome":
            return self.on_outcome(rec, arrival_ms, clock)
        if event_type == "heartbeat":
            return self.on_heartbeat(rec, arrival_ms, clock)
        return []

    def _source_clock(self, key: str, last: list[Any] | None, t: int, behind: int,
                      offset: int) -> int:
        """Record what was read from source `key` and return the event clock the input
        partitions allow now: the lowest highest-event-time of the partitions still behind,
        else the highest of all (see the module doc). O(1) while none is behind."""
        high = t if last is None or last[1] is None else max(last[1], t)
        self.store[key] = [offset, high, behind]
        if last is None or last[1] is None:
            self._index_add("idx|sources", key)
        ev = (self.store.get("clock") or {"ev": 0})["ev"]
        was_behind = bool(last[2]) if last is not None else False
        if behind != was_behind:
            (self._index_add if behind else self._index_remove)("idx|behind", key)
        elif not behind:  # a caught-up partition moves the clock only when none is behind
            return ev if self.store.get("idx|behind") else max(ev, high)
        marks = [self.store.get(k) for k in self.store.get("idx|behind") or []]
        if marks:
            return min(m[1] for m in marks if m is not None)
        marks = [self.store.get(k) for k in self.store.get("idx|sources") or []]
        return max([m[1] for m in marks if isinstance(m, list) and m[1] is not None] or [ev])

    # `clock` (in the three below): the event clock after this input, from `process`; None
    # means the input's own event time (inputs from one ordered source, e.g. in tests).
    def on_heartbeat(self, rec: dict[str, Any], arrival_ms: int | None = None,
                     clock: int | None = None) -> list[AlertEvent]:
        out = _Out()
        env = rec["envelope"]
        self._activity(out, "heartbeat", env["agent_id"], env["event_time"], arrival_ms, clock)
        return out.events

    def on_outcome(self, rec: dict[str, Any], arrival_ms: int | None = None,
                   clock: int | None = None) -> list[AlertEvent]:
        out = _Out()
        env = rec["envelope"]
        now = env["event_time"]
        labels = outcome_labels(rec)
        for rule in self._enabled("streak"):
            self._streak(out, rule, labels, now)
        for rule in self._enabled("circuit_breaker"):
            self._breaker(out, rule, labels, now, arrival_ms)
        self._activity(out, "outcome", env["agent_id"], now, arrival_ms, clock)
        return out.events

    def on_aggregate(self, rec: dict[str, Any], arrival_ms: int | None = None,
                     clock: int | None = None) -> list[AlertEvent]:
        out = _Out()
        scope = {
            "agent": rec.get("scope_agent", "*"),
            "app": rec.get("scope_app", "*"),
            "action_kind": rec.get("scope_action_kind", "*"),
        }
        for rule in self._enabled("threshold"):
            self._threshold(out, rule, rec, scope)
        for rule in self._enabled("anomaly"):
            self._anomaly(out, rule, rec, scope)
        if scope["agent"] != "*":
            self._activity(out, "aggregate", scope["agent"], rec["window_end"], arrival_ms,
                           clock)
        else:
            self._advance_clock(out, rec["window_end"] if clock is None else clock)
        return out.events

    def tick(self, wall_ms: int) -> list[AlertEvent]:
        """Wall-clock evaluation: absence when nothing arrives, breaker half-open, renotify."""
        out = _Out()
        agents = self.store.get("idx|agents") or []
        for rule in self._enabled("absence"):
            for agent in agents:
                self._absence_check(out, rule, agent, wall_ms, wall=True)
        for fp in list(self.store.get("idx|open") or []):
            cb = self.store.get(f"cb|{fp}")
            rule = self._rule(cb["rule"]) if cb else None
            if cb is None or rule is None:
                self._index_remove("idx|open", fp)
                continue
            if cb["state"] == "OPEN" and wall_ms - cb["opened_wall"] >= rule.wait:
                self._half_open(out, rule, fp, cb, cb["opened_at"] + rule.wait)
        for fp in list(self.store.get("idx|firing") or []):
            inc = self.store.get(f"inc|{fp}")
            if inc is None:
                self._index_remove("idx|firing", fp)
                continue
            rule = self._rule(inc["rule"])
            if rule is None:  # rule removed by a reload: close its incidents
                self._resolve(out, fp, inc, wall_ms, kind=inc["kind"], note="rule removed")
                continue
            self._notify_if_due(out, rule, fp, inc, wall_ms)
        return out.events

    # -- incident lifecycle ---------------------------------------------------------------
    def _rule(self, name: str) -> Any:
        for r in self.rules.rules:
            if r.name == name and r.enabled:
                return r
        return None

    def full_labels(self, rule: Any, labels: dict[str, str]) -> dict[str, str]:
        return {**labels, **rule.labels, "alertname": rule.name, "severity": rule.severity}

    def _event(
        self,
        rule_name: str,
        kind: str,
        severity: str,
        fp: str,
        inc: dict[str, Any],
        state: str,
        now: int,
        n: int = 0,
        transition: str | None = None,
        ends_at: int | None = None,
    ) -> AlertEvent:
        return AlertEvent(
            event_id=event_id(fp, inc["incident_id"], state, n),
            fingerprint=fp,
            incident_id=inc["incident_id"],
            rule=rule_name,
            rule_kind=kind,
            state=state,
            severity=severity,
            labels=dict(inc["labels"]),
            annotations=dict(inc.get("annotations") or {}),
            value=inc.get("value"),
            starts_at=inc.get("fired_at") or inc["active_at"],
            ends_at=ends_at,
            event_time=now,
            transition=transition,
        )

    def _observe(
        self,
        out: _Out,
        rule: Any,
        labels: dict[str, str],
        breaching: bool,
        now: int,
        value: float | None,
        fire_ready: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Drive one (rule, label set) through pending -> firing -> resolved."""
        self.evaluations += 1
        full = self.full_labels(rule, labels)
        fp = fingerprint(rule.name, full)
        key = f"inc|{fp}"
        inc = self.store.get(key)
        if not breaching:
            if inc is not None:
                self._resolve(out, fp, inc, now, kind=rule.kind)
            return
        ann = {k: render(v, full, value) for k, v in rule.annotations.items()}
        if extra:
            ann.update(extra)
        if inc is None:
            inc = {
                "incident_id": str(uuid.uuid5(ALERT_NS, f"{fp}|{now}")),
                "rule": rule.name,
                "kind": rule.kind,
                "severity": rule.severity,
                "labels": full,
                "status": "pending",
                "active_at": now,
                "fired_at": None,
                "notified": False,
                "pending_sent": False,
                "last_notified": None,
                "renotified": 0,
                "value": value,
                "annotations": ann,
            }
            if not fire_ready:
                inc["pending_sent"] = True
                out.events.append(self._event(rule.name, rule.kind, rule.severity, fp, inc,
                                              "pending", now))
        else:
            inc = {**inc, "value": value, "annotations": ann}
        if fire_ready and inc["status"] == "pending":
            inc["status"] = "firing"
            inc["fired_at"] = now
            self._index_add("idx|firing", fp)
        if inc["status"] == "firing":
            inc = self._notify_if_due(out, rule, fp, inc, now, store=False)
        self.store[key] = inc

    def _notify_if_due(
        self, out: _Out, rule: Any, fp: str, inc: dict[str, Any], now: int, store: bool = True
    ) -> dict[str, Any]:
        """Send the first firing once, then a renotify every repeat interval; honour silences."""
        silenced = self.rules.silenced(inc["labels"], now)
        new = inc
        if silenced:
            pass
        elif not inc["notified"]:
            new = {**inc, "notified": True, "last_notified": now}
            out.events.append(self._event(rule.name, inc["kind"], inc["severity"], fp, new,
                                          "firing", now))
        elif now - inc["last_notified"] >= self.rules.repeat_ms(rule):
            n = inc["renotified"] + 1
            new = {**inc, "last_notified": now, "renotified": n}
            out.events.append(self._event(rule.name, inc["kind"], inc["severity"], fp, new,
                                          "renotify", now, n=n))
        if store and new is not inc:
            self.store[f"inc|{fp}"] = new
        return new

    def _resolve(
        self, out: _Out, fp: str, inc: dict[str, Any], now: int, kind: str, note: str = ""
    ) -> None:
        if inc["status"] == "firing" and inc["notified"]:
            ev = self._event(inc["rule"], kind, inc["severity"], fp, inc, "resolved", now,
                             ends_at=now)
            if note:
                ev.annotations["resolved_because"] = note
            out.events.append(ev)
        elif inc["status"] == "pending" and inc["pending_sent"]:
            out.events.append(self._event(inc["rule"], kind, inc["severity"], fp, inc,
                                          "inactive", now, ends_at=now))
        del self.store[f"inc|{fp}"]
        if inc["status"] == "firing":
            self._index_remove("idx|firing", fp)

    def _index_add(self, key: str, item: str) -> None:
        cur = self.store.get(key) or []
        if item not in cur:
            self.store[key] = [*cur, item]

    def _index_remove(self, key: str, item: str) -> None:
        cur = self.store.get(key) or []
        if item in cur:
            self.store[key] = [x for x in cur if x != item]

    # -- threshold and anomaly over windows -----------------------------------------------
    def _window_selected(self, rule: Any, rec: dict[str, Any], scope: dict[str, str]) -> bool:
        if rule.window_kind and rec.get("window_kind") != rule.window_kind:
            return False
        if rule.window_ms is not None and rec.get("window_size_ms") != rule.window_ms:
            return False
        if not rule.match.matches(scope):
            return False
        if rule.min_outcomes:
            return sum((rec.get("outcomes") or {}).values()) >= rule.min_outcomes
        return True

    def _window_labels(self, rec: dict[str, Any], scope: dict[str, str]) -> dict[str, str]:
        return {**scope, "window": window_label(int(rec.get("window_size_ms", 0)))}

    def _new_window(
        self, rule: Any, rec: dict[str, Any], scope: dict[str, str], kind: str,
        initial: dict[str, Any],
    ) -> tuple[float, dict[str, str], str, dict[str, Any], int] | None:
        """What a window rule needs of an aggregate: (value, labels, state key, state, window
        end), or None when the rule does not apply or the window was judged before (a
        replay or an out-of-order window is judged once)."""
        if not self._window_selected(rule, rec, scope):
            return None
        x = aggregate_metric(rec, rule.metric)
        if x is None:
            return None
        labels = self._window_labels(rec, scope)
        skey = f"{kind}|{fingerprint(rule.name, self.full_labels(rule, labels))}"
        st = self.store.get(skey) or initial
        end = int(rec["window_end"])
        if end <= st["end"]:
            return None
        return x, labels, skey, st, end

    def _threshold(
        self, out: _Out, rule: ThresholdRule, rec: dict[str, Any], scope: dict[str, str]
    ) -> None:
        seen = self._new_window(rule, rec, scope, "thr", {"n": 0, "end": -1})
        if seen is None:
            return
        x, labels, skey, st, end = seen
        breaching = compare(rule.op, x, rule.value)
        n = st["n"] + 1 if breaching else 0
        self.store[skey] = {"n": n, "end": end}
        self._observe(out, rule, labels, breaching, end, x, n >= rule.for_,
                      {"windows_breaching": str(n), "threshold": f"{rule.op} {rule.value:g}"})

    def _anomaly(
        self, out: _Out, rule: AnomalyRule, rec: dict[str, Any], scope: dict[str, str]
    ) -> None:
        seen = self._new_window(rule, rec, scope, "ano",
                                {"n": 0, "mean": 0.0, "var": 0.0, "end": -1, "b": 0})
        if seen is None:
            return
        x, labels, skey, st, end = seen
        z = 0.0
        if st["n"] >= rule.warmup:
            std = max(math.sqrt(st["var"]), rule.min_std)
            z = (x - st["mean"]) / std
        anomalous = st["n"] >= rule.warmup and (
            (rule.direction in ("up", "both") and z >= rule.z)
            or (rule.direction in ("down", "both") and z <= -rule.z)
        )
        if st["n"] == 0:
            mean, var = x, 0.0
        else:
            diff = x - st["mean"]
            incr = rule.alpha * diff
            mean = st["mean"] + incr
            var = (1 - rule.alpha) * (st["var"] + diff * incr)
        b = st["b"] + 1 if anomalous else 0
        self.store[skey] = {"n": st["n"] + 1, "mean": mean, "var": var, "end": end, "b": b}
        if st["n"] < rule.warmup:
            return
        self._observe(out, rule, labels, anomalous, end, x, b >= rule.for_,
                      {"zscore": f"{z:.2f}", "ewma_mean": f"{st['mean']:.4g}"})

    # -- streaks and circuit breakers over outcomes ---------------------------------------
    def _streak(self, out: _Out, rule: StreakRule, olabels: dict[str, str], now: int) -> None:
        if not rule.match.matches(olabels):
            return
        status = olabels["_status"]
        failed = status in rule.statuses
        if not failed and status != "success":
            return  # skipped and the like neither extend nor break a streak
        labels = {k: olabels[k] for k in rule.by}
        fp = fingerprint(rule.name, self.full_labels(rule, labels))
        skey = f"stk|{fp}"
        n = self.store.get(skey) or 0
        if failed:
            n += 1
            self.store[skey] = n
            if n >= rule.count:
                self._observe(out, rule, labels, True, now, float(n), True,
                              {"consecutive_failures": str(n)})
            else:
                self.evaluations += 1
        else:
            if n:
                del self.store[skey]
            if n >= rule.count or f"inc|{fp}" in self.store:
                self._observe(out, rule, labels, False, now, 0.0, False)
            else:
                self.evaluations += 1

    def _breaker(
        self,
        out: _Out,
        rule: CircuitBreakerRule,
        olabels: dict[str, str],
        now: int,
        arrival_ms: int | None,
    ) -> None:
        if not rule.match.matches(olabels):
            return
        status = olabels["_status"]
        failed = status in rule.statuses
        if not failed and status != "success":
            return
        self.evaluations += 1
        labels = {k: olabels[k] for k in rule.by}
        full = self.full_labels(rule, labels)
        fp = fingerprint(rule.name, full)
        key = f"cb|{fp}"
        cb = self.store.get(key) or {
            "rule": rule.name, "state": "CLOSED", "calls": [], "consec": 0,
            "opened_at": 0, "opened_wall": 0, "ho_ok": 0,
        }
        wall = arrival_ms if arrival_ms is not None else now
        if cb["state"] == "OPEN":
            if now - cb["opened_at"] < rule.wait:
                return  # calls while OPEN would have been rejected: not counted
            cb = self._half_open(out, rule, fp, cb, now)
        if cb["state"] == "HALF_OPEN":
            if failed:
                cb = {**cb, "state": "OPEN", "opened_at": now, "opened_wall": wall, "ho_ok": 0}
                self._transition(out, rule, fp, "HALF_OPEN->OPEN", now, 1.0)
                self._index_add("idx|open", fp)
            elif cb["ho_ok"] + 1 >= rule.half_open_successes:
                cb = {**cb, "state": "CLOSED", "calls": [], "consec": 0, "ho_ok": 0}
                self._observe(out, rule, labels, False, now, 0.0, False)
            else:
                cb = {**cb, "ho_ok": cb["ho_ok"] + 1}
            self.store[key] = cb
            return
        calls = [*cb["calls"], 1 if failed else 0][-rule.window_calls:]
        consec = cb["consec"] + 1 if failed else 0
        rate = sum(calls) / len(calls)
        opens = consec >= rule.consecutive_failures or (
            len(calls) >= rule.minimum_calls and rate >= rule.failure_rate
        )
        if opens:
            cb = {**cb, "state": "OPEN", "calls": calls, "consec": consec, "opened_at": now,
                  "opened_wall": wall, "ho_ok": 0}
            self.store[key] = cb
            self._index_add("idx|open", fp)
            self._observe(out, rule, labels, True, now, rate, True, {
                "breaker_state": "OPEN", "transition": "CLOSED->OPEN",
                "failure_rate": f"{rate:.3f}", "consecutive_failures": str(consec),
                "calls": str(len(calls)),
            })
        else:
            self.store[key] = {**cb, "calls": calls, "consec": consec}

    def _half_open(
        self, out: _Out, rule: CircuitBreakerRule, fp: str, cb: dict[str, Any], now: int
    ) -> dict[str, Any]:
        cb = {**cb, "state": "HALF_OPEN", "ho_ok": 0}
        self.store[f"cb|{fp}"] = cb
        self._index_remove("idx|open", fp)
        self._transition(out, rule, fp, "OPEN->HALF_OPEN", now, None)
        return cb

    def _transition(
        self, out: _Out, rule: Any, fp: str, transition: str, now: int, value: float | None
    ) -> None:
        """A breaker move inside one incident (OPEN<->HALF_OPEN): its own event, no new firing."""
        inc = self.store.get(f"inc|{fp}")
        if inc is None:
            return
        n = int(inc.get("transitions", 0)) + 1
        target = transition.split("->")[1]
        inc = {**inc, "transitions": n, "value": value,
               "annotations": {**inc["annotations"], "breaker_state": target,
                               "transition": transition}}
        self.store[f"inc|{fp}"] = inc
        if inc["notified"]:
            out.events.append(self._event(rule.name, rule.kind, rule.severity, fp, inc,
                                          "transition", now, n=n, transition=transition))

    # -- absence ----------------------------------------------------------------------------
    def _advance_clock(self, out: _Out, event_time: int) -> None:
        clock = self.store.get("clock") or {"ev": 0, "swept": 0}
        if event_time <= clock["ev"]:
            return
        if event_time - clock["swept"] >= SWEEP_EVERY_MS:
            self.store["clock"] = {"ev": event_time, "swept": event_time}
            agents = self.store.get("idx|agents") or []
            for rule in self._enabled("absence"):
                for agent in agents:
                    self._absence_check(out, rule, agent, event_time, wall=False)
        elif event_time - clock["ev"] >= SEEN_GRANULARITY_MS // 10:
            self.store["clock"] = {**clock, "ev": event_time}

    def _activity(
        self, out: _Out, source: str, agent: str, event_time: int, arrival_ms: int | None,
        clock: int | None = None,
    ) -> None:
        wall = arrival_ms if arrival_ms is not None else event_time
        key = f"seen|{agent}"
        seen = self.store.get(key)
        if seen is None:
            self._index_add("idx|agents", agent)
            seen = {}
        ev0, wall0 = seen.get(source, (-1, -1))
        if event_time - ev0 >= SEEN_GRANULARITY_MS or wall - wall0 >= SEEN_GRANULARITY_MS:
            self.store[key] = {**seen, source: (max(ev0, event_time), max(wall0, wall))}
        for rule in self._enabled("absence"):
            if source in rule.sources and rule.match.matches({"agent": agent}):
                labels = {"agent": agent}
                fp = fingerprint(rule.name, self.full_labels(rule, labels))
                if f"inc|{fp}" in self.store:  # the agent is back: resolve
                    self._observe(out, rule, labels, False, event_time, 0.0, False)
        self._advance_clock(out, event_time if clock is None else clock)

    def _absence_check(
        self, out: _Out, rule: AbsenceRule, agent: str, now: int, wall: bool
    ) -> None:
        """Fire only; an absence resolves when the agent is heard from again."""
        if not rule.match.matches({"agent": agent}):
            return
        self.evaluations += 1
        seen = self.store.get(f"seen|{agent}") or {}
        marks = [tuple(seen[s]) for s in rule.sources if s in seen]
        if not marks:
            return
        if wall:
            if not rule.wall_clock:
                return
            last = max(m[1] for m in marks)
        else:
            last = max(m[0] for m in marks)
        silent = now - last
        if silent > rule.after:
            self._observe(out, rule, {"agent": agent}, True, now, silent / 1000.0, True,
                          {"silent_for_s": f"{silent / 1000.0:.1f}",
                           "clock": "wall" if wall else "event"})

    # -- views ----------------------------------------------------------------------------
    def firing(self) -> list[dict[str, Any]]:
        """Incidents currently firing (for the gauge and the CLI)."""
        result = []
        for fp in self.store.get("idx|firing") or []:
            inc = self.store.get(f"inc|{fp}")
            if inc is not None and inc["status"] == "firing":
                result.append({**inc, "fingerprint": fp})
        return result
