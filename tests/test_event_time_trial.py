"""Derived results stay true under real conditions (`clawstream.trial`): a real-time fleet
through the real worker and sink (subprocesses, real broker, chdb), then every closed window
recounted from the raw events in ClickHouse. One test per fault: none, an agent whose clock
runs an hour ahead, a heap of undecodable messages ahead of the fleet with kill -9 of the
worker and the sink during the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from clawstream.trial import TrialConfig, TrialResult, run_trial
from consumers.clickhouse import query
from schemas.topics import partition_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def settings(cs_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("SINK", "WORKER", "SDK"):  # several runs side by side: no fixed ports
        monkeypatch.setenv(f"CLAWSTREAM_{name}_METRICS_PORT", "0")
    return cs_settings


def trial(settings: Settings, tmp_path: Path, **kw: object) -> TrialResult:
    cfg = TrialConfig(**{"agents": 8, "duration_s": 35.0, "speedup": 2.0, "seed": 3,
                         "agent_prefix": "trial", **kw})  # type: ignore[arg-type]
    result = run_trial(settings, cfg, tmp_path / "logs")
    r = result.report
    detail = (r.windows_differing + r.windows_missing)[:5]
    assert r.ok, (r.summary(), detail, result.faults)
    return result


def test_a_real_time_fleet_has_no_late_event_and_every_window_is_exact(
        settings: Settings, tmp_path: Path) -> None:
    """Event time close to arrival, agents pausing between episodes (their partitions go
    quiet for seconds): nothing is late, per-agent and fleet-wide windows equal the recount."""
    r = trial(settings, tmp_path).report
    assert r.late_events == 0 and r.clock_skew_events == {}
    assert r.windows_checked >= 100 and r.fleet_windows_checked >= 2, r.summary()
    assert r.false_lost_outcomes == 0


def test_an_agent_an_hour_ahead_is_refused_alone_and_alerted(
        settings: Settings, tmp_path: Path) -> None:
    result = trial(settings, tmp_path, skew_s=3600.0)
    r, skewed = result.report, result.skewed_agent
    neighbours = query(settings, "SELECT DISTINCT agent_id FROM heartbeats WHERE "
                       "kafka_partition = {p:UInt16} AND agent_id != {a:String}",
                       {"p": partition_for(skewed, 6), "a": skewed}).rows
    assert neighbours, "the skewed agent shares its partition (and watermark) with others"
    assert r.late_events == 0, "the skewed clock made other agents' events late"
    assert set(r.clock_skew_events) == {skewed}
    sent = query(settings, "SELECT count() FROM events WHERE agent_id = {a:String}",
                 {"a": skewed}).rows[0][0]
    assert r.clock_skew_events[skewed] == sent > 0, "every event of the skewed agent refused"
    rows = query(settings, "SELECT rule, labels['agent'], state, incident_id FROM alerts").rows
    skew_incidents = {(agent, incident) for rule, agent, state, incident in rows
                      if rule == "AgentClockSkew" and state == "firing"}
    assert {agent for agent, _ in skew_incidents} == {skewed} and len(skew_incidents) == 1, rows
    assert not [row for row in rows if row[0] == "AgentSilent"], rows


def test_undecodable_input_and_kill9_of_worker_and_sink_shift_nothing(
        settings: Settings, tmp_path: Path) -> None:
    """5,000 undecodable messages wait on the outcomes topic ahead of the fleet (every reader
    dead-letters them with the reason); the worker and the sink are each killed with -9
    once while the fleet sends."""
    result = trial(settings, tmp_path, garbage=5000, kill_worker=1, kill_sink=1,
                   duration_s=45.0)
    r = result.report
    assert len(result.faults) == 4, result.faults
    assert r.late_events == 0 and r.false_lost_outcomes == 0 and r.lost_outcomes == 0
    assert result.dlq >= 5000


def test_partition_for_is_where_the_sdk_puts_an_agent(cs_settings: Settings) -> None:
    from confluent_kafka import Producer
    from kafka_read import read_messages

    p = Producer(client_config(cs_settings, "tool", "producer", {"partitioner": "murmur2_random"}))
    agents = [f"agent-{i:04d}" for i in range(40)] + ["a", "ab", "abc", "ümlaut-7"]
    for a in agents:
        p.produce(cs_settings.topic("claw.heartbeats.v1"), key=a.encode(), value=b"x")
    assert p.flush(30) == 0
    got = read_messages(cs_settings.bootstrap_servers, [cs_settings.topic("claw.heartbeats.v1")],
                        min_count=len(agents))
    assert {m.key().decode(): m.partition() for m in got} == {
        a: partition_for(a, 6) for a in agents}
