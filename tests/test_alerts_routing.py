"""Unit tests of how the alert rules spread over partitions (streams.alerts.routing): which
partition an input goes to, the fan-out of one input to several rules, and that engines
per partition decide exactly what one engine over everything decides."""

from __future__ import annotations

from typing import Any

from alerts_helpers import aggregate, heartbeat, outcome

from streams.alerts import AlertEngine, parse_rules
from streams.alerts.routing import (
    Router,
    fleet_record,
    fleet_rule_partition,
    group_partition,
    owned_fleet_rules,
    routes,
    shard_of,
)
from streams.alerts.state import Prefixed

T0 = 1_700_000_000_000
N = 6
RULES = parse_rules("""
rules:
  - {name: HighFail, kind: threshold, metric: failure_rate, op: ">", value: 0.5, for: 2,
     window: 10s}
  - {name: Anom, kind: anomaly, metric: latency_p95_ms, z: 3, warmup: 3, window: 10s}
  - {name: Silent, kind: absence, after: 3s, sources: [heartbeat, outcome]}
  - {name: Streak, kind: streak, by: [agent], count: 3}
  - {name: CB, kind: circuit_breaker, by: [app, executor], consecutive_failures: 3,
     minimum_calls: 10, window_calls: 10, wait: 2s, half_open_successes: 1,
     match: {app: "cb*"}}
""")


def test_the_hash_is_stable_across_processes_and_versions() -> None:
    # sha1, not Python's per-process hash: a changed value would move every group's state
    # to another partition on an upgrade
    assert [shard_of(k, 6) for k in ("Silent", "AgentSilent", "a", "b", "c")] == [3, 3, 4, 1, 3]
    assert {shard_of(f"k{i}", N) for i in range(100)} == set(range(N))


def test_an_outcome_fans_out_to_each_rule_group_and_the_fleet_rule() -> None:
    rec = outcome(T0, "failure", agent="a1", app="cbapp", executor="x")
    got = routes("outcome", rec, RULES, N)
    want: dict[int, list[str]] = {}
    for name, p in (("Silent", fleet_rule_partition("Silent", N)),
                    ("Streak", group_partition("Streak", {"agent": "a1"}, N)),
                    ("CB", group_partition("CB", {"app": "cbapp", "executor": "x"}, N))):
        want.setdefault(p, []).append(name)
    assert {p: sorted(n) for p, n in got.items()} == {p: sorted(n) for p, n in want.items()}
    assert sorted(n for names in got.values() for n in names) == ["CB", "Silent", "Streak"]
    # a rule whose match skips the input is not routed: no CB outside cb* apps
    other = routes("outcome", outcome(T0, "failure", agent="a1", app="calc"), RULES, N)
    assert sorted(n for names in other.values() for n in names) == ["Silent", "Streak"]


def test_heartbeats_go_to_the_fleet_rules_only_and_nowhere_without_them() -> None:
    assert routes("heartbeat", heartbeat(T0, "a1"), RULES, N) == {
        fleet_rule_partition("Silent", N): ["Silent"]}
    no_absence = parse_rules("rules:\n - {name: Streak, kind: streak, count: 3}\n")
    assert routes("heartbeat", heartbeat(T0, "a1"), no_absence, N) == {}


def test_an_aggregate_goes_to_the_rules_that_select_its_window_and_scope() -> None:
    rec = aggregate(T0 + 10_000, agent="a1", size_ms=10_000, success=1, failure=3, p95=9.0)
    got = routes("aggregate", rec, RULES, N)
    labels = {"agent": "a1", "app": "calc", "action_kind": "click", "window": "10s"}
    assert group_partition("HighFail", labels, N) in got
    assert "HighFail" in got[group_partition("HighFail", labels, N)]
    assert "Anom" in got[group_partition("Anom", labels, N)]
    minute = aggregate(T0 + 60_000, agent="a1", size_ms=60_000, failure=3)
    assert routes("aggregate", minute, RULES, N) == {
        fleet_rule_partition("Silent", N): ["Silent"]}  # the clock still reads it


def test_one_group_always_lands_in_one_partition_and_groups_spread() -> None:
    parts = {a: {p for p, names in routes("outcome", outcome(T0 + i, "failure", agent=a),
                                              RULES, N).items() if "Streak" in names}
             for i, a in enumerate(f"agent-{k}" for k in range(24))}
    assert all(len(ps) == 1 for ps in parts.values())
    again = {p for p, names in routes("outcome", outcome(T0 + 99, "success", agent="agent-3"),
                                      RULES, N).items() if "Streak" in names}
    assert again == parts["agent-3"]
    assert len({p for ps in parts.values() for p in ps}) >= 4  # 24 groups over 6 partitions


def test_copies_for_the_fleet_rules_only_are_cut_down() -> None:
    router = Router(N)
    rec = outcome(T0, "failure", agent="a1")
    assert router.fleet_only(["Silent"], RULES) and not router.fleet_only(["Silent", "Streak"],
                                                                            RULES)
    assert fleet_record(rec) == {"envelope": {"agent_id": "a1", "event_time": T0}}
    agg = fleet_record(aggregate(T0, agent="a1"))
    assert agg["window_end"] == T0 and agg["scope_agent"] == "a1" and "outcomes" not in agg


def test_a_router_remembering_groups_routes_as_the_plain_function() -> None:
    router = Router(N)
    for _ in range(2):  # the second pass from what it remembers
        for kind, rec in inputs():
            if kind != "tick":
                assert router.routes(kind, rec, RULES) == routes(kind, rec, RULES, N)


def test_each_fleet_rule_is_owned_by_exactly_one_partition() -> None:
    owners = [p for p in range(N) if owned_fleet_rules(RULES, p, N)]
    assert owners == [fleet_rule_partition("Silent", N)]
    assert owned_fleet_rules(RULES, owners[0], N) == ["Silent"]


def inputs() -> list[tuple[str, Any]]:
    """A mixed run: streaks and breakers of several groups, window rules, silent agents,
    wall-clock ticks."""
    items: list[tuple[str, Any]] = []
    for k in range(8):
        agent = f"a{k}"
        items += [("heartbeat", heartbeat(T0 + k, agent))]
        items += [("outcome", outcome(T0 + 100 * k + i, "failure", agent=agent,
                                      app=f"cb{k % 3}", executor="x")) for i in range(4)]
        if k % 2:
            items += [("outcome", outcome(T0 + 100 * k + 50, "success", agent=agent,
                                          app=f"cb{k % 3}", executor="x"))]
        items += [("aggregate", aggregate(T0 + 10_000 * w, agent=agent, success=1, failure=5,
                                          p95=100.0 + (900 * (w == 5))))
                  for w in range(1, 7)]
    items += [("tick", T0 + 3_000)]
    items += [("heartbeat", heartbeat(T0 + 20_000 + k, f"a{k}")) for k in range(0, 8, 2)]
    items += [("tick", T0 + 40_000), ("tick", T0 + 100_000)]
    return items


def run_single(items: list[tuple[str, Any]]) -> list[Any]:
    e = AlertEngine(RULES)
    out: list[Any] = []
    for off, (kind, rec) in enumerate(items):
        if kind == "tick":
            out += e.tick(rec)
        else:
            out += e.process(kind, rec, None, ["src", 0, off])
    return out


def run_sharded(items: list[tuple[str, Any]], store: dict[str, Any]) -> dict[int, list[Any]]:
    engines = {p: AlertEngine(RULES, Prefixed(store, str(p)),
                              owns_fleet_rule=lambda name, p=p: fleet_rule_partition(
                                  name, N) == p) for p in range(N)}
    out: dict[int, list[Any]] = {p: [] for p in range(N)}
    router = Router(N)
    for off, (kind, rec) in enumerate(items):
        if kind == "tick":  # ticks reach every partition
            for p, e in engines.items():
                out[p] += e.tick(rec)
            continue
        for p, names in router.routes(kind, rec, RULES).items():
            # (what the worker sends: a copy for the fleet-wide rules only is cut down)
            copy = fleet_record(rec) if router.fleet_only(names, RULES) else rec
            out[p] += engines[p].process(kind, copy, None, ["src", 0, off], rules=names)
    return out


def test_engines_per_partition_decide_what_one_engine_decides() -> None:
    items = inputs()
    single = run_single(items)
    store: dict[str, Any] = {}
    sharded = run_sharded(items, store)
    merged = [ev for evs in sharded.values() for ev in evs]
    assert {r for r in (ev.rule for ev in single)} >= {"HighFail", "Anom", "Silent", "Streak",
                                                         "CB"}
    # the same alert events with the same deterministic ids, none twice
    assert sorted(ev.event_id for ev in merged) == sorted(ev.event_id for ev in single)
    assert len({ev.event_id for ev in merged}) == len(merged)
    # the work is spread: several partitions evaluate and fire
    assert sum(1 for evs in sharded.values() if evs) >= 3
    # every incident (fingerprint) lives in the state of exactly one partition
    where: dict[str, set[str]] = {}
    for key in store:
        part, _, rest = key.partition("#")
        if rest.startswith("inc|"):
            where.setdefault(rest[4:], set()).add(part)
    assert where and all(len(parts) == 1 for parts in where.values())


def test_a_partition_without_the_fleet_rule_keeps_no_activity_and_never_fires_it() -> None:
    owner = fleet_rule_partition("Silent", N)
    other = (owner + 1) % N
    e = AlertEngine(RULES, {}, owns_fleet_rule=lambda name: fleet_rule_partition(
        name, N) == other)
    e.process("outcome", outcome(T0, "failure", agent="quiet"), None, ["src", 0, 1],
              rules=["Streak"])
    assert not any(k.startswith("seen|") for k in e.store)
    assert [ev for ev in e.tick(T0 + 600_000) if ev.rule == "Silent"] == []


def test_prefixed_views_keep_the_partitions_apart() -> None:
    base: dict[str, Any] = {}
    a, b = Prefixed(base, "0"), Prefixed(base, "1")
    a["clock"] = {"ev": 1, "swept": 0}
    b["clock"] = {"ev": 2, "swept": 0}
    assert a["clock"]["ev"] == 1 and b.get("clock")["ev"] == 2 and "clock" in a
    del a["clock"]
    assert "clock" not in a and list(b) == ["clock"] and len(a) == 0
    assert base == {"1#clock": {"ev": 2, "swept": 0}}
