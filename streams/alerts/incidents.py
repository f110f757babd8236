"""The incident lifecycle every rule kind drives: pending -> firing -> resolved (pure).

An evaluator judges one (rule, label set) and calls `Incidents.observe` with whether it is
breaching and whether it is ready to fire; the incident goes pending (once announced when it
is not ready at once), fires, is notified once and then every repeat interval unless
silenced, and resolves (or goes inactive, if it never fired) when it no longer breaches.
Circuit breakers move inside one incident (`transition`). Event ids are uuid5 of
fingerprint, incident and state, so replaying the same input after a crash yields the same
ids and downstream dedups them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from typing import Any

from streams.alerts.rules import AnyRule, RuleBook
from streams.alerts.state import AlertStore, Incident

ALERT_NS = uuid.UUID("6f1c1f0e-8f0b-5a8e-9a3c-5b3c9f1c2a11")


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


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, labels: dict[str, str], value: float | None) -> str:
    shown = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    try:
        return template.format_map(_SafeDict(labels, value=shown))
    except (ValueError, IndexError):
        return template


def full_labels(rule: AnyRule, labels: dict[str, str]) -> dict[str, str]:
    """An incident's labels: the evaluator's, the rule's own, its name and severity."""
    return {**labels, **rule.labels, "alertname": rule.name, "severity": rule.severity}


#: Label sets whose fingerprints are remembered at most (then forgotten all at once).
FINGERPRINTS_KEPT = 100_000


class Incidents:
    """Incidents in the store, driven by the evaluators; events appended to `out` lists."""

    def __init__(self, state: AlertStore, book: RuleBook) -> None:
        self.state = state
        self.book = book
        self.evaluations = 0  # observations (rule evaluations) done
        #: (id of a rule in force, its label values) -> (fingerprint, full labels)
        self._fingerprints: dict[tuple[int, tuple[str, ...]], tuple[str, dict[str, str]]] = {}
        self._fingerprints_version = book.version

    def fingerprint(self, rule: AnyRule, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The fingerprint and full labels of (rule, labels), remembered: every input of a
        label set would otherwise hash the same labels again. (Labels of one rule always
        come in the same order; rules are told apart by identity within one rule book
        version, which is why a reload forgets them all.)"""
        if self._fingerprints_version != self.book.version or (
                len(self._fingerprints) >= FINGERPRINTS_KEPT):
            self._fingerprints = {}
            self._fingerprints_version = self.book.version
        key = (id(rule), tuple(labels.values()))
        found = self._fingerprints.get(key)
        if found is None:
            full = full_labels(rule, labels)
            found = self._fingerprints[key] = (fingerprint(rule.name, full), full)
        return found

    def rule(self, name: str) -> AnyRule | None:
        """The enabled rule of that name in force now (None after a reload removed it)."""
        for r in self.book.rules.rules:
            if r.name == name and r.enabled:
                found: AnyRule = r
                return found
        return None

    def event(self, fp: str, inc: Incident, state: str, now: int, *, n: int = 0,
              transition: str | None = None, ends_at: int | None = None,
              rule: AnyRule | None = None, kind: str | None = None) -> AlertEvent:
        """The event of a transition of `inc`; named, kind and severity as `rule` says when
        one is given (it may have been reloaded since the incident opened), else as the
        incident says (`kind` overrides the kind)."""
        return AlertEvent(
            event_id=event_id(fp, inc.incident_id, state, n),
            fingerprint=fp,
            incident_id=inc.incident_id,
            rule=inc.rule if rule is None else rule.name,
            rule_kind=kind or (inc.kind if rule is None else rule.kind),
            state=state,
            severity=inc.severity if rule is None else rule.severity,
            labels=dict(inc.labels),
            annotations=dict(inc.annotations),
            value=inc.value,
            starts_at=inc.fired_at or inc.active_at,
            ends_at=ends_at,
            event_time=now,
            transition=transition,
        )

    def observe(self, out: list[AlertEvent], rule: AnyRule, labels: dict[str, str],
                breaching: bool, now: int, value: float | None, fire_ready: bool,
                extra: dict[str, str] | None = None) -> None:
        """Drive one (rule, label set) through pending -> firing -> resolved."""
        self.evaluations += 1
        fp, full = self.fingerprint(rule, labels)
        inc = self.state.get(Incident, fp)
        if not breaching:
            if inc is not None:
                self.resolve(out, fp, inc, now, kind=rule.kind)
            return
        ann = {k: render(v, full, value) for k, v in rule.annotations.items()}
        if extra:
            ann.update(extra)
        if inc is None:
            inc = Incident(str(uuid.uuid5(ALERT_NS, f"{fp}|{now}")), rule.name, rule.kind,
                           rule.severity, full, "pending", now, value=value, annotations=ann)
            if not fire_ready:
                inc = replace(inc, pending_sent=True)
                out.append(self.event(fp, inc, "pending", now, rule=rule))
        else:
            inc = replace(inc, value=value, annotations=ann)
        if fire_ready and inc.status == "pending":
            inc = replace(inc, status="firing", fired_at=now)
            self.state.index_add("firing", fp)
        if inc.status == "firing":
            inc = self.notify_if_due(out, rule, fp, inc, now, store=False)
        self.state.put(fp, inc)

    def notify_if_due(self, out: list[AlertEvent], rule: AnyRule, fp: str, inc: Incident,
                      now: int, store: bool = True) -> Incident:
        """Send the first firing once, then a renotify every repeat interval; honour silences."""
        rules = self.book.rules
        new = inc
        if rules.silenced(inc.labels, now):
            pass
        elif not inc.notified:
            new = replace(inc, notified=True, last_notified=now)
            out.append(self.event(fp, new, "firing", now))
        elif inc.last_notified is None or now - inc.last_notified >= rules.repeat_ms(rule):
            new = replace(inc, last_notified=now, renotified=inc.renotified + 1)
            out.append(self.event(fp, new, "renotify", now, n=new.renotified))
        if store and new is not inc:
            self.state.put(fp, new)
        return new

    def resolve(self, out: list[AlertEvent], fp: str, inc: Incident, now: int, kind: str,
                note: str = "") -> None:
        """Close the incident: resolved if it was notified firing, inactive if its pending
        state was announced, silently otherwise."""
        if inc.status == "firing" and inc.notified:
            ev = self.event(fp, inc, "resolved", now, ends_at=now, kind=kind)
            if note:
                ev.annotations["resolved_because"] = note
            out.append(ev)
        elif inc.status == "pending" and inc.pending_sent:
            out.append(self.event(fp, inc, "inactive", now, ends_at=now, kind=kind))
        self.state.delete(Incident, fp)
        if inc.status == "firing":
            self.state.index_remove("firing", fp)

    def transition(self, out: list[AlertEvent], rule: AnyRule, fp: str, transition: str,
                   now: int, value: float | None) -> None:
        """A breaker move inside one incident (OPEN<->HALF_OPEN): its own event, no new
        firing."""
        inc = self.state.get(Incident, fp)
        if inc is None:
            return
        target = transition.split("->")[1]
        inc = replace(inc, transitions=inc.transitions + 1, value=value,
                      annotations={**inc.annotations, "breaker_state": target,
                                   "transition": transition})
        self.state.put(fp, inc)
        if inc.notified:
            out.append(self.event(fp, inc, "transition", now, n=inc.transitions,
                                  transition=transition, rule=rule))

    def firing(self) -> list[dict[str, Any]]:
        """Incidents currently firing (for the gauge and the CLI)."""
        result = []
        for fp in self.state.index("firing"):
            inc = self.state.get(Incident, fp)
            if inc is not None and inc.status == "firing":
                result.append({**inc.to_json(), "fingerprint": fp})
        return result
