"""Two alerting workers of one group share the alert rules (real broker, real faust
workers): each evaluates its own partitions (its metrics and its alerts show it), and across
a rebalance (a worker killed with -9, then one added) no incident fires twice."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest
from alerts_helpers import AlertWorker, heartbeat, outcome, produce, wait_for_alerts
from ports import free_ports

from clawstream.settings import Settings
from streams.alerts.routing import group_partition
from streams.app import DEFAULT_PARTITIONS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
rules:
  - {name: Streak, kind: streak, by: [agent], count: 3, match: {agent: "stk-*"}}
  - {name: Silent, kind: absence, after: 3s, sources: [heartbeat], match: {agent: "abs-*"}}
"""
N = DEFAULT_PARTITIONS


def streak_agents() -> list[str]:
    """Agents whose Streak groups cover every alert partition twice."""
    found: dict[int, list[str]] = defaultdict(list)
    i = 0
    while min((len(found[p]) for p in range(N)), default=0) < 2:
        agent = f"stk-{i}"
        p = group_partition("Streak", {"agent": agent}, N)
        if len(found[p]) < 2:
            found[p].append(agent)
        i += 1
    return sorted(a for agents in found.values() for a in agents)


def share(w: AlertWorker) -> set[int]:
    """The alert partitions a worker says (in its metrics) it evaluates."""
    return {int(dict(labels)["partition"]) for (name, labels), v in w.metrics().items()
            if name == "clawstream_alerts_partition_assigned" and v == 1}


def wait_shares(workers: list[AlertWorker], timeout: float = 120.0) -> list[set[int]]:
    """Until the running workers' shares are disjoint, none empty, and cover all."""
    deadline = time.monotonic() + timeout
    shares: list[set[int]] = []
    while time.monotonic() < deadline:
        shares = [share(w) for w in workers]
        if (all(shares) and sum(len(s) for s in shares) == N
                and set().union(*shares) == set(range(N))):
            return shares
        time.sleep(0.5)
    raise AssertionError(f"alert partitions never spread over the workers: {shares}")


def fired_agents(w: AlertWorker, rule: str) -> set[str]:
    """Agents whose `rule` incident this worker's current run fired (its log)."""
    return {line.split("'agent': '")[1].split("'")[0] for line in w.log().splitlines()
            if f"alert firing {rule} " in line and "'agent': '" in line}


def test_two_workers_share_the_rules_and_a_rebalance_fires_nothing_twice(
    cs_settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    ports = free_ports(2)
    a = AlertWorker(tmp_path, rules, "a", ports[0])
    b = AlertWorker(tmp_path, rules, "b", ports[1])
    agents = streak_agents()
    try:
        a.start()
        b.start()
        shares = wait_shares([a, b])
        assert not shares[0] & shares[1]

        t0 = int(time.time() * 1000)
        produce(cs_settings, [
            *[("outcome", outcome(t0 + i, "failure", agent=ag)) for ag in agents
              for i in range(3)],
            ("heartbeat", heartbeat(t0, "abs-1")),
            *[("heartbeat", heartbeat(t0 + i * 1000, "abs-2")) for i in range(1, 7)],
        ])
        wait_for_alerts(cs_settings, lambda al: all(
            has(al, "Streak", "firing", ag) for ag in agents) and has(
            al, "Silent", "firing", "abs-1"), timeout=90)
        # each worker fired the incidents of its own partitions, and only those
        by_a, by_b = fired_agents(a, "Streak"), fired_agents(b, "Streak")
        assert by_a and by_b and not by_a & by_b and by_a | by_b == set(agents)
        for w, mine in ((a, shares[0]), (b, shares[1])):
            fired = fired_agents(w, "Streak")
            assert {group_partition("Streak", {"agent": ag}, N) for ag in fired} <= mine
        inputs = [sum(v for (name, _), v in w.metrics().items()
                      if name == "clawstream_alerts_partition_inputs_total") for w in (a, b)]
        assert all(n > 0 for n in inputs), inputs

        # the streaks grow (the default FailureStreak fires at 5), and a worker is killed
        # while it evaluates them: a lost or doubled state would fire an incident again
        produce(cs_settings, [("outcome", outcome(t0 + 10 + i, "failure", agent=ag))
                              for ag in agents for i in range(3)])
        a.kill9()
        assert wait_shares([b]) == [set(range(N))]  # b took every partition over
        a.start()  # and a worker added: the partitions spread again
        wait_shares([a, b])
        produce(cs_settings, [
            *[("outcome", outcome(t0 + 100, "success", agent=ag)) for ag in agents],
            ("heartbeat", heartbeat(t0 + 8_000, "abs-1")),
        ])
        alerts = wait_for_alerts(cs_settings, lambda al: has(
            al, "Silent", "resolved", "abs-1") and all(
            has(al, r, "resolved", ag) for ag in agents for r in ("Streak", "FailureStreak")),
            timeout=120)
    finally:
        a.stop()
        b.stop()

    firing = [x for x in alerts if x["state"] == "firing"]
    # no incident fires twice: one firing event id per (fingerprint, incident) ...
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for x in firing:
        ids[(x["fingerprint"], x["incident_id"])].add(x["envelope"]["event_id"])
    assert all(len(v) == 1 for v in ids.values()), ids
    # ... and the streaks that kept growing across the rebalance stayed one incident each
    for ag, rule in [*((ag, r) for ag in agents for r in ("Streak", "FailureStreak")),
                     ("abs-1", "Silent")]:
        mine = [x for x in alerts if x["labels"].get("agent") == ag and x["rule"] == rule]
        fired = {x["incident_id"] for x in mine if x["state"] == "firing"}
        assert len(fired) == 1, mine
        assert {x["incident_id"] for x in mine if x["state"] == "resolved"} == fired, mine


def has(alerts: list[dict], rule: str, state: str, agent: str) -> bool:
    return any(x["rule"] == rule and x["state"] == state and x["labels"].get("agent") == agent
               for x in alerts)
