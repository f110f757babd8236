"""The worker-side helpers of streams.alerting that need no broker: rules watcher, gauge,
Alert records."""

from __future__ import annotations

import os
from pathlib import Path

from alerts_helpers import outcome
from prometheus_client import REGISTRY

from schemas.serde import Serde
from streams.alerting import FiringGauge, RulesWatcher, alert_record
from streams.alerts import AlertEngine

T0 = 1_700_000_000_000


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_rules_watcher_reloads_and_keeps_last_good(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n - {name: MyStreak, kind: streak, count: 2}\n")
    w = RulesWatcher(f)
    names = {r.name for r in w.book.rules.rules}
    assert "MyStreak" in names and "AgentSilent" in names  # user file merged on defaults
    assert w.check() is None  # unchanged
    f.write_text("rules:\n - {name: MyStreak, kind: streak, count: 0}\n")
    _bump_mtime(f)
    assert w.check() is False
    assert "rule 'MyStreak' field 'count'" in (w.book.last_error or "")
    assert next(r for r in w.book.rules.rules if r.name == "MyStreak").count == 2
    f.write_text("rules:\n - {name: MyStreak, kind: streak, count: 4}\n")
    _bump_mtime(f)
    assert w.check() is True
    assert next(r for r in w.book.rules.rules if r.name == "MyStreak").count == 4


def test_bad_user_file_at_start_runs_defaults(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("rules: [")
    w = RulesWatcher(f)
    assert w.book.last_error and "not valid YAML" in w.book.last_error
    assert {r.name for r in w.book.rules.rules} >= {"AgentSilent", "FailureStreak"}


def test_gauge_and_alert_records(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n - {name: GaugeStreak, kind: streak, count: 2, severity: page}\n")
    e = AlertEngine(RulesWatcher(f).book)
    g = FiringGauge()
    evs = []
    for i in range(2):
        evs += e.on_outcome(outcome(T0 + i, "failure", agent="g1"))
    g.update([e])
    value = REGISTRY.get_sample_value("clawstream_alerts_firing",
                                      {"rule": "GaugeStreak", "severity": "page"})
    assert value == 1.0
    evs += e.on_outcome(outcome(T0 + 5, "success", agent="g1"))
    g.update([e])
    assert REGISTRY.get_sample_value("clawstream_alerts_firing",
                                     {"rule": "GaugeStreak", "severity": "page"}) == 0.0
    serde = Serde()
    recs = [serde.decode(serde.encode("alert", alert_record(ev))).record for ev in evs
            if ev.rule == "GaugeStreak"]
    assert [r["state"] for r in recs] == ["firing", "resolved"]
    assert recs[0]["envelope"]["agent_id"] == "g1"
    assert recs[0]["envelope"]["event_id"] == evs[0].event_id
    assert recs[1]["ends_at"] == T0 + 5 and recs[0]["incident_id"] == recs[1]["incident_id"]
