"""Unit tests of the pure alert engine: every rule kind and the incident lifecycle."""

from __future__ import annotations

import json

from alerts_helpers import aggregate, heartbeat, outcome

from streams.alerts import AlertEngine, parse_rules
from streams.alerts.rules import DEFAULT_RULES_FILE, load_rules_file

T0 = 1_700_000_000_000


def engine(yaml_text: str, store: dict | None = None) -> AlertEngine:
    return AlertEngine(parse_rules(yaml_text), store)


def states(events) -> list[str]:
    return [e.state for e in events]


THRESHOLD = """
rules:
  - name: HighFail
    kind: threshold
    metric: failure_rate
    op: ">"
    value: 0.5
    for: 2
    window: 10s
    min_outcomes: 4
    match: {app: "calc*"}
    repeat_interval: 60s
    annotations: {summary: "{agent} fails {value}"}
"""


def test_threshold_pending_firing_resolved_once() -> None:
    e = engine(THRESHOLD)
    ev1 = e.on_aggregate(aggregate(T0 + 10_000, success=1, failure=9))
    assert states(ev1) == ["pending"]
    ev2 = e.on_aggregate(aggregate(T0 + 20_000, success=1, failure=9))
    assert states(ev2) == ["firing"]
    fire = ev2[0]
    assert fire.labels["agent"] == "a1" and fire.labels["window"] == "10s"
    assert fire.labels["alertname"] == "HighFail"
    assert fire.annotations["summary"] == "a1 fails 0.9"
    assert fire.starts_at == T0 + 20_000
    # still breaching: no second firing
    assert e.on_aggregate(aggregate(T0 + 30_000, success=1, failure=9)) == []
    ev4 = e.on_aggregate(aggregate(T0 + 40_000, success=9, failure=1))
    assert states(ev4) == ["resolved"]
    assert ev4[0].incident_id == fire.incident_id and ev4[0].ends_at == T0 + 40_000
    assert e.firing() == []


def test_threshold_filters_window_size_scope_and_min_outcomes() -> None:
    e = engine(THRESHOLD)
    assert e.on_aggregate(aggregate(T0 + 10_000, failure=9, size_ms=60_000)) == []
    assert e.on_aggregate(aggregate(T0 + 10_000, failure=9, app="notepad")) == []
    assert e.on_aggregate(aggregate(T0 + 10_000, failure=3)) == []  # < min_outcomes
    assert e.store == {} or all(not k.startswith("inc|") for k in e.store)


def test_threshold_pending_that_clears_goes_inactive_and_replayed_window_ignored() -> None:
    e = engine(THRESHOLD)
    w = aggregate(T0 + 10_000, success=1, failure=9)
    assert states(e.on_aggregate(w)) == ["pending"]
    assert e.on_aggregate(w) == []  # the same window again (replay) is judged once
    assert states(e.on_aggregate(aggregate(T0 + 20_000, success=9, failure=1))) == ["inactive"]
    # the next breach is a new incident
    ev = e.on_aggregate(aggregate(T0 + 30_000, success=1, failure=9))
    assert states(ev) == ["pending"]


def test_label_sets_get_their_own_fingerprint() -> None:
    e = engine(THRESHOLD)
    for t in (10_000, 20_000):
        e.on_aggregate(aggregate(T0 + t, failure=9, agent="a1"))
        e.on_aggregate(aggregate(T0 + t, failure=9, agent="a2"))
    firing = e.firing()
    assert len(firing) == 2
    assert len({f["fingerprint"] for f in firing}) == 2


def test_renotify_after_interval_on_event_and_tick() -> None:
    e = engine(THRESHOLD)
    e.on_aggregate(aggregate(T0 + 10_000, failure=9))
    e.on_aggregate(aggregate(T0 + 20_000, failure=9))
    assert e.on_aggregate(aggregate(T0 + 70_000, failure=9)) == []  # 50 s < 60 s
    ev = e.on_aggregate(aggregate(T0 + 80_000, failure=9))
    assert states(ev) == ["renotify"]
    ev2 = e.tick(T0 + 140_000)
    assert states(ev2) == ["renotify"]
    assert ev[0].event_id != ev2[0].event_id
    assert e.tick(T0 + 150_000) == []


def test_event_ids_are_deterministic_on_replay() -> None:
    runs = []
    for _ in range(2):
        e = engine(THRESHOLD)
        evs = []
        for t in (10_000, 20_000, 30_000):
            evs += e.on_aggregate(aggregate(T0 + t, failure=9))
        evs += e.on_aggregate(aggregate(T0 + 40_000, success=9))
        runs.append([(x.state, x.event_id, x.incident_id) for x in evs])
    assert runs[0] == runs[1]
    assert len({eid for _, eid, _ in runs[0]}) == len(runs[0])


def test_state_survives_serialization_no_second_firing() -> None:
    store: dict = {}
    e = engine(THRESHOLD, store)
    e.on_aggregate(aggregate(T0 + 10_000, failure=9))
    assert states(e.on_aggregate(aggregate(T0 + 20_000, failure=9))) == ["firing"]
    restored = json.loads(json.dumps(store))  # what a changelog round trip does
    e2 = engine(THRESHOLD, restored)
    assert e2.on_aggregate(aggregate(T0 + 30_000, failure=9)) == []
    assert states(e2.on_aggregate(aggregate(T0 + 40_000, success=9))) == ["resolved"]


def test_silence_suppresses_then_notifies_when_lifted() -> None:
    text = THRESHOLD + f"""
silences:
  - matchers: ['agent="a1"', 'alertname=~"High.*"']
    ends_at: {T0 + 35_000}
"""
    e = engine(text)
    e.on_aggregate(aggregate(T0 + 10_000, failure=9))
    assert e.on_aggregate(aggregate(T0 + 20_000, failure=9)) == []  # silenced firing
    # another agent is not matched by the silence: its first window is just pending
    assert states(e.on_aggregate(aggregate(T0 + 20_000, failure=9, agent="a2"))) == ["pending"]
    assert len(e.firing()) == 1
    ev = e.on_aggregate(aggregate(T0 + 40_000, failure=9))  # silence over
    assert states(ev) == ["firing"]


def test_silenced_incident_that_resolves_sends_nothing() -> None:
    e = engine(THRESHOLD + "\nsilences:\n  - matchers: ['agent=\"a1\"']\n")
    for t in (10_000, 20_000):
        e.on_aggregate(aggregate(T0 + t, failure=9))
    assert e.on_aggregate(aggregate(T0 + 30_000, success=9)) == []
    assert e.firing() == []


def test_threshold_metrics_p95_lost_late_ocr() -> None:
    e = engine("""
rules:
  - {name: P95, kind: threshold, metric: latency_p95_ms, op: ">", value: 1000}
  - {name: Lost, kind: threshold, metric: lost_outcomes, op: ">", value: 0}
  - {name: Late, kind: threshold, metric: late_events, op: ">=", value: 5}
  - {name: Ocr, kind: threshold, metric: ocr_confidence_mean, op: "<", value: 0.5}
""")
    ev = e.on_aggregate(aggregate(T0, success=5, lost=1, p95=2500.0, ocr=0.2, late=7))
    assert sorted(x.rule for x in ev if x.state == "firing") == ["Late", "Lost", "Ocr", "P95"]
    ev = e.on_aggregate(aggregate(T0 + 10_000, success=5, p95=10.0, ocr=0.9))
    assert sorted(x.rule for x in ev if x.state == "resolved") == ["Late", "Lost", "Ocr", "P95"]


ABSENCE = """
rules:
  - {name: Silent, kind: absence, after: 10s, sources: [heartbeat, outcome]}
"""


def test_absence_fires_in_event_time_driven_by_other_agents() -> None:
    e = engine(ABSENCE)
    e.on_heartbeat(heartbeat(T0, "a1"), arrival_ms=T0)
    evs = []
    for i in range(1, 16):  # a2 keeps talking for 15 s, a1 says nothing
        evs += e.on_heartbeat(heartbeat(T0 + i * 1000, "a2"), arrival_ms=T0 + i * 1000)
    fired = [x for x in evs if x.state == "firing"]
    assert len(fired) == 1 and fired[0].labels["agent"] == "a1"
    assert fired[0].annotations["clock"] == "event"
    ev = e.on_outcome(outcome(T0 + 16_000, "success", agent="a1"), arrival_ms=T0 + 16_000)
    assert states(ev) == ["resolved"]


def test_absence_fires_on_wall_clock_tick_when_everybody_stops() -> None:
    e = engine(ABSENCE)
    e.on_heartbeat(heartbeat(T0, "a1"), arrival_ms=T0)
    assert e.tick(T0 + 5_000) == []
    ev = e.tick(T0 + 11_000)
    assert states(ev) == ["firing"] and ev[0].annotations["clock"] == "wall"
    assert e.tick(T0 + 12_000) == []  # one firing per incident
    assert states(e.on_heartbeat(heartbeat(T0 + 12_500, "a1"), T0 + 12_500)) == ["resolved"]


def replay_two_partitions(e, *, flag_backlog: bool) -> list:
    """Agents a (partition 0) and b (partition 1) each send a heartbeat every 5 s for 5 min;
    the worker reads the two backlogs in alternating chunks of 100 s (how a consumer fetches:
    arrival interleaving of a backlog, not silence)."""
    evs: list = []
    n, chunk = 60, 20
    for first in range(0, n, chunk):
        for p, agent in ((0, "a"), (1, "b")):
            for i in range(first, first + chunk):
                behind = flag_backlog and i < n - 1
                t = T0 + i * 5000  # appended when it was sent: arrival = event time
                evs += e.process("heartbeat", heartbeat(t, agent), t, ("hb", p, i),
                                 behind=behind)
    return evs


def test_absence_event_clock_is_held_by_a_partition_still_behind() -> None:
    fired = [x for x in replay_two_partitions(engine(ABSENCE), flag_backlog=True)
             if x.state == "firing"]
    assert fired == []
    # the same arrival order without knowing the backlog: b looks silent while a's chunks
    # run ahead (what a clock of the highest event time seen did)
    fired = [x for x in replay_two_partitions(engine(ABSENCE), flag_backlog=False)
             if x.state == "firing"]
    assert [x.labels["agent"] for x in fired] == ["b", "b"]


def test_absence_caught_up_partitions_never_stall_the_clock() -> None:
    e = engine(ABSENCE)
    e.process("heartbeat", heartbeat(T0, "quiet"), T0, ("hb", 1, 0))  # caught up, then idle
    evs = []
    for i in range(1, 16):
        evs += e.process("heartbeat", heartbeat(T0 + i * 1000, "busy"), T0 + i * 1000, ("hb", 0, i))
    fired = [x for x in evs if x.state == "firing"]
    assert [x.labels["agent"] for x in fired] == ["quiet"]
    assert fired[0].annotations["clock"] == "event"


def test_absence_clock_waits_for_the_slowest_backlog_then_catches_up() -> None:
    e = engine(ABSENCE)
    e.process("heartbeat", heartbeat(T0, "slow"), T0, ("hb", 1, 0), behind=True)
    evs = []
    for i in range(1, 31):  # partition 0 runs 30 s ahead while partition 1 is still behind
        evs += e.process("heartbeat", heartbeat(T0 + i * 1000, "fast"), T0 + i * 1000, ("hb", 0, i))
    assert [x for x in evs if x.state == "firing"] == []
    assert e.store["clock"]["ev"] == T0
    # partition 1's backlog shows slow went quiet after T0 + 2 s: it fires once caught up
    e.process("heartbeat", heartbeat(T0 + 2000, "slow"), T0 + 2000, ("hb", 1, 1), behind=True)
    evs = e.process("heartbeat", heartbeat(T0 + 29_000, "slow2"), T0 + 29_000, ("hb", 1, 2))
    assert [x.labels["agent"] for x in evs if x.state == "firing"] == ["slow"]


def test_offsets_stored_before_the_per_partition_clock_still_dedupe() -> None:
    e = engine(ABSENCE, store={"off|hb|0": 5})
    assert e.process("heartbeat", heartbeat(T0, "a"), T0, ("hb", 0, 5)) == []
    e.process("heartbeat", heartbeat(T0, "a"), T0, ("hb", 0, 6))
    assert e.store["off|hb|0"] == [6, T0, 0] and e.store["idx|sources"] == ["off|hb|0"]


STREAK = """
rules:
  - {name: Streak, kind: streak, by: [agent], count: 3}
  - {name: AppStreak, kind: streak, by: [app], count: 4}
"""


def test_streak_per_agent_and_per_app() -> None:
    e = engine(STREAK)
    evs = []
    evs += e.on_outcome(outcome(T0, "failure", agent="a1"))
    evs += e.on_outcome(outcome(T0 + 1, "timeout", agent="a1"))
    evs += e.on_outcome(outcome(T0 + 2, "skipped", agent="a1"))  # neutral
    assert evs == []
    ev = e.on_outcome(outcome(T0 + 3, "lost", agent="a1"))
    assert [(x.rule, x.state) for x in ev] == [("Streak", "firing")]
    assert ev[0].value == 3.0
    ev = e.on_outcome(outcome(T0 + 4, "failure", agent="a2"))  # app streak reaches 4
    assert [(x.rule, x.state) for x in ev] == [("AppStreak", "firing")]
    assert e.on_outcome(outcome(T0 + 5, "failure", agent="a1")) == []
    ev = e.on_outcome(outcome(T0 + 6, "success", agent="a1"))
    assert sorted((x.rule, x.state) for x in ev) == [
        ("AppStreak", "resolved"), ("Streak", "resolved")]


def test_streak_does_not_fire_twice_while_it_grows() -> None:
    e = engine(STREAK)
    evs = []
    for i in range(10):
        evs += e.on_outcome(outcome(T0 + i, "failure", agent="a1"))
    assert [x.state for x in evs if x.rule == "Streak"] == ["firing"]


BREAKER = """
rules:
  - name: CB
    kind: circuit_breaker
    by: [app, executor]
    failure_rate: 0.5
    minimum_calls: 6
    window_calls: 10
    consecutive_failures: 4
    wait: 5s
    half_open_successes: 2
"""


def test_breaker_opens_on_failure_rate_half_opens_and_closes() -> None:
    e = engine(BREAKER)
    evs = []
    pattern = ["success", "failure", "success", "failure", "success", "failure"]
    for i, s in enumerate(pattern):
        evs += e.on_outcome(outcome(T0 + i * 100, s, agent=f"a{i % 3}"))
    assert [(x.state, x.transition) for x in evs] == [("firing", None)]
    assert evs[0].annotations["breaker_state"] == "OPEN"
    assert evs[0].labels["app"] == "calc" and evs[0].labels["executor"] == "pyautogui"
    # calls while OPEN are not counted
    assert e.on_outcome(outcome(T0 + 1000, "failure")) == []
    # after the wait the next call is a half-open trial
    ev = e.on_outcome(outcome(T0 + 6000, "success"))
    assert [(x.state, x.transition) for x in ev] == [("transition", "OPEN->HALF_OPEN")]
    ev = e.on_outcome(outcome(T0 + 6100, "success"))
    assert states(ev) == ["resolved"]
    assert e.store[next(k for k in e.store if k.startswith("cb|"))]["state"] == "CLOSED"


def test_breaker_consecutive_failures_and_half_open_failure_reopens() -> None:
    e = engine(BREAKER)
    evs = []
    for i in range(4):
        evs += e.on_outcome(outcome(T0 + i, "failure"))
    assert states(evs) == ["firing"]  # 4 in a row before minimum_calls
    ev = e.tick(T0 + 5_100)  # wall clock moves it to HALF_OPEN
    assert [x.transition for x in ev] == ["OPEN->HALF_OPEN"]
    ev = e.on_outcome(outcome(T0 + 5_200, "failure"))
    assert [x.transition for x in ev] == ["HALF_OPEN->OPEN"]
    assert len({x.event_id for x in evs + ev}) == 2
    assert len(e.firing()) == 1  # still the same incident


ANOMALY = """
rules:
  - name: Anom
    kind: anomaly
    metric: latency_p95_ms
    alpha: 0.2
    z: 3
    warmup: 5
    for: 1
"""


def test_anomaly_warmup_then_spike_fires_and_normal_resolves() -> None:
    e = engine(ANOMALY)
    evs = []
    for i, v in enumerate([100, 110, 95, 105, 100, 102, 98]):
        evs += e.on_aggregate(aggregate(T0 + i * 10_000, success=5, p95=float(v)))
    assert evs == []
    ev = e.on_aggregate(aggregate(T0 + 80_000, success=5, p95=1000.0))
    assert states(ev) == ["firing"] and float(ev[0].annotations["zscore"]) > 3
    ev = e.on_aggregate(aggregate(T0 + 90_000, success=5, p95=101.0))
    assert states(ev) == ["resolved"]


def test_anomaly_silent_during_warmup() -> None:
    e = engine(ANOMALY)
    evs = []
    for i, v in enumerate([100, 5000, 1, 9000]):
        evs += e.on_aggregate(aggregate(T0 + i * 10_000, success=5, p95=float(v)))
    assert evs == []


def test_default_rules_load_and_run() -> None:
    e = AlertEngine(load_rules_file(DEFAULT_RULES_FILE))
    evs = []
    for i in range(10):
        evs += e.on_outcome(outcome(T0 + i * 100, "failure"))
    rules = {x.rule for x in evs}
    assert {"FailureStreak", "ExecutorCircuitBreaker"} <= rules


def test_removed_rule_resolves_its_incidents_on_tick() -> None:
    e = engine(STREAK)
    for i in range(3):
        e.on_outcome(outcome(T0 + i, "failure"))
    assert len(e.firing()) == 1
    e.book.reload(parse_rules("rules: []"))
    ev = e.tick(T0 + 10)
    assert states(ev) == ["resolved"] and ev[0].annotations["resolved_because"] == "rule removed"


def test_redelivered_inputs_are_ignored_by_source_offset() -> None:
    e = engine(STREAK)
    src = "claw.outcomes.v1"
    evs = []
    failures = [outcome(T0 + i, "failure") for i in range(3)]
    for i, rec in enumerate(failures):
        evs += e.process("outcome", rec, None, (src, 2, 10 + i))
    assert states(evs) == ["firing"]
    assert states(e.process("outcome", outcome(T0 + 5, "success"), None, (src, 2, 13))) == [
        "resolved"]
    # a crash before the commit: the same three messages come again -> nothing happens
    for i, rec in enumerate(failures):
        assert e.process("outcome", rec, None, (src, 2, 10 + i)) == []
    # another partition is tracked on its own
    assert e.process("outcome", outcome(T0 + 6, "failure", agent="b"), None, (src, 3, 0)) == []
