"""Alerting through the real broker and a real faust worker subprocess."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alerts_helpers import (
    AlertWorker,
    aggregate,
    heartbeat,
    outcome,
    produce,
    read_topic_records,
    wait_for_alerts,
)

from clawstream.kafka.config import client_config
from clawstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
rules:
  - {name: HighFail, kind: threshold, metric: failure_rate, op: ">", value: 0.5, for: 2,
     window: 10s, match: {agent: "thr-*"}}
  - {name: Anom, kind: anomaly, metric: latency_p95_ms, z: 3, warmup: 5, alpha: 0.2,
     match: {agent: "ano-*"}}
  - {name: Silent, kind: absence, after: 3s, sources: [heartbeat], match: {agent: "abs-*"}}
  - {name: Streak, kind: streak, by: [agent], count: 3, match: {agent: "stk-*"}}
  - {name: CB, kind: circuit_breaker, by: [app, executor], consecutive_failures: 3,
     minimum_calls: 10, window_calls: 10, wait: 2s, half_open_successes: 1,
     match: {app: "cbapp"}}
"""


@pytest.fixture
def worker(cs_settings: Settings, tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    w = AlertWorker(tmp_path, rules)
    yield w
    w.stop()


def has(alerts: list[dict], rule: str, state: str, agent: str | None = None) -> bool:
    return any(a["rule"] == rule and a["state"] == state
               and (agent is None or a["labels"].get("agent") == agent) for a in alerts)


def test_every_rule_kind_fires_and_resolves_and_bad_rules_keep_old(
    cs_settings: Settings, worker: AlertWorker
) -> None:
    worker.start()
    t0 = int(time.time() * 1000)
    breach = [
        ("aggregate", aggregate(t0 + 10_000, agent="thr-1", success=1, failure=9)),
        ("aggregate", aggregate(t0 + 20_000, agent="thr-1", success=1, failure=9)),
        *[("aggregate", aggregate(t0 + i * 10_000, agent="ano-1", success=5, p95=100.0 + i))
          for i in range(1, 8)],
        ("aggregate", aggregate(t0 + 80_000, agent="ano-1", success=5, p95=5000.0)),
        *[("outcome", outcome(t0 + i, "failure", agent="stk-1")) for i in range(3)],
        *[("outcome", outcome(t0 + i, "failure", agent="cb-1", app="cbapp")) for i in range(3)],
        ("heartbeat", heartbeat(t0, "abs-1")),
        *[("heartbeat", heartbeat(t0 + i * 1000, "abs-2")) for i in range(1, 7)],
    ]
    produce(cs_settings, breach)
    # a poison message on an input topic goes to the DLQ, the rest goes on
    from confluent_kafka import Producer

    p = Producer(client_config(cs_settings, "tool", "producer"))
    p.produce(cs_settings.topic("claw.outcomes.v1"), key=b"stk-1", value=b"not avro")
    p.flush(10)

    fired = wait_for_alerts(cs_settings, lambda a: all(
        has(a, r, "firing", ag) for r, ag in (("HighFail", "thr-1"), ("Anom", "ano-1"),
                                               ("Streak", "stk-1"), ("CB", None),
                                               ("Silent", "abs-1"))), timeout=90)
    assert has(fired, "HighFail", "pending", "thr-1")
    cb = next(a for a in fired if a["rule"] == "CB")
    assert cb["labels"]["app"] == "cbapp" and cb["labels"]["executor"] == "pyautogui"
    assert cb["transition"] is None and cb["annotations"]["breaker_state"] == "OPEN"

    recover = [
        ("aggregate", aggregate(t0 + 30_000, agent="thr-1", success=10)),
        ("aggregate", aggregate(t0 + 90_000, agent="ano-1", success=5, p95=101.0)),
        ("outcome", outcome(t0 + 10, "success", agent="stk-1")),
        ("outcome", outcome(t0 + 3_000, "success", agent="cb-1", app="cbapp")),
        ("heartbeat", heartbeat(t0 + 7_000, "abs-1")),
    ]
    produce(cs_settings, recover)
    alerts = wait_for_alerts(cs_settings, lambda a: all(
        has(a, r, "resolved", ag) for r, ag in (("HighFail", "thr-1"), ("Anom", "ano-1"),
                                                 ("Streak", "stk-1"), ("CB", None),
                                                 ("Silent", "abs-1"))), timeout=60)
    transitions = [a["transition"] for a in alerts if a["rule"] == "CB"]
    assert transitions == [None, "OPEN->HALF_OPEN", None]
    # one firing per incident, ids unique
    for rule in ("HighFail", "Anom", "Streak", "CB"):
        assert sum(1 for a in alerts if a["rule"] == rule and a["state"] == "firing") == 1
    ids = [a["envelope"]["event_id"] for a in alerts]
    assert len(ids) == len(set(ids))
    resolved = next(a for a in alerts if a["rule"] == "HighFail" and a["state"] == "resolved")
    assert resolved["ends_at"] == t0 + 30_000

    dlq = read_topic_records(cs_settings, "claw.dlq.v1", raw=True)
    from schemas.headers import parse_headers

    heads = [parse_headers(m.headers()) for m in dlq]
    assert any(h["clawstream.error.reason"] == "bad-magic"
               and h["clawstream.failed.by"] == "alerting" for h in heads)

    # a malformed edit of the rules file is rejected; the previous rules keep working
    time.sleep(1.1)  # distinct mtime
    worker.rules_file.write_text(RULES.replace("count: 3", "count: many"))
    text = worker.wait_log("alert rules file rejected")
    assert "rule 'Streak' field 'count'" in text
    produce(cs_settings, [("outcome", outcome(t0 + 20 + i, "failure", agent="stk-2"))
                          for i in range(3)])
    wait_for_alerts(cs_settings, lambda a: has(a, "Streak", "firing", "stk-2"), timeout=30)


def test_kill9_while_firing_gives_no_second_firing(
    cs_settings: Settings, worker: AlertWorker
) -> None:
    worker.start()
    t0 = int(time.time() * 1000)
    produce(cs_settings, [("outcome", outcome(t0 + i, "failure", agent="stk-9"))
                          for i in range(3)])
    wait_for_alerts(cs_settings, lambda a: has(a, "Streak", "firing", "stk-9"), timeout=90)
    time.sleep(3)  # offsets committed, changelog written
    worker.kill9()
    # the streak keeps growing while the worker is down: a lost state would fire again
    produce(cs_settings, [("outcome", outcome(t0 + 10 + i, "failure", agent="stk-9"))
                          for i in range(3)])
    worker.start()
    produce(cs_settings, [("outcome", outcome(t0 + 100, "success", agent="stk-9"))])
    alerts = wait_for_alerts(cs_settings, lambda a: has(a, "Streak", "resolved", "stk-9"),
                             timeout=120)
    firing = [a for a in alerts if a["rule"] == "Streak" and a["state"] == "firing"]
    assert len(firing) == 1, firing
    resolved = [a for a in alerts if a["rule"] == "Streak" and a["state"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["incident_id"] == firing[0]["incident_id"]


def test_a_fleet_backlog_does_not_make_agents_look_silent(
    cs_settings: Settings, worker: AlertWorker
) -> None:
    """Twenty agents' four minutes of work wait in the topics before the worker starts (what
    `clawstream demo` does). The worker reads the outcome and heartbeat partitions at their
    own paces, so some run minutes ahead of others; the default AgentSilent rule (60 s) may
    only fire for agents that really stopped a minute before the fleet did, and an incident
    that resolves during the replay was a false alarm."""
    from streams_helpers import committed_lag

    from producers.fleet import generate_fleet
    from producers.fleet_cli import build_config, run_fleet

    def config() -> object:
        return build_config(agents=20, events_per_agent=500, seed=7, start_time_ms=t0)

    t0 = int(time.time() * 1000) - 3_600_000
    result = run_fleet(config(), progress=False)
    assert result["delivered"] == result["sent"]
    last: dict[str, int] = {}
    for ev in generate_fleet(config()):
        if ev.event_type in ("outcome", "heartbeat"):
            last[ev.agent_id] = max(last.get(ev.agent_id, 0), ev.event_time)
    end = max(last.values())
    really_quiet = {a for a, t in last.items() if end - t > 60_000}

    worker.start()
    assert committed_lag(cs_settings, cs_settings.worker_app_id,
                         ["claw.outcomes.v1", "claw.heartbeats.v1"], timeout=120) == 0
    time.sleep(3)  # the evaluation of the last inputs
    alerts = [a for a in read_topic_records(cs_settings, "claw.alerts.v1")
              if isinstance(a, dict) and a["rule"] == "AgentSilent"
              and a["annotations"].get("clock") == "event"]
    states = [(a["labels"]["agent"], a["state"]) for a in alerts]
    assert [s for s in states if s[1] == "resolved"] == [], states
    assert {a for a, state in states if state == "firing"} <= really_quiet, states
