"""The SDK against the real broker: every event type goes out and comes back decoded, keyed
by agent_id, with the envelope intact; rejected events are surfaced, not silent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka_read import end_offsets, read_decoded

from clawstream.settings import Settings
from producers.sdk import AgentClient, DeliveryFailure
from producers.spool import Spool
from schemas.topics import EVENT_TOPICS

pytestmark = pytest.mark.integration


def test_every_event_type_round_trips(cs_settings: Settings, kafka_bootstrap: str) -> None:
    img = np.full((300, 480, 3), 200, dtype=np.uint8)
    with AgentClient(cs_settings, "agent-int") as c:
        sess = c.session_id
        f = c.frame(img, app="notepad", change_ratio=0.25)
        d = c.detection(f, [{"kind": "button", "bbox": (1, 2, 30, 20), "text": "OK",
                             "confidence": 0.9, "ocr_confidence": 0.8, "source": "ocr"}])
        p = c.plan("press OK", [{"action_kind": "click", "description": "click OK",
                                 "target": "OK"}], app="notepad")
        a = c.action("click", app="notepad", plan_id=p, step_index=0, target="OK",
                     params={"button": "left"})
        o = c.outcome(a, "failure", 33.0, app="notepad", action_kind="click",
                      error="not found", error_kind="element_not_found",
                      verification={"method": "text_seen", "expected": "Saved",
                                    "observed": None, "passed": False})
        h = c.heartbeat(cpu_percent=12.5)
        s = c.state_delta("actions_total", "gcounter", b"\x01")
        assert c.flush(30) == 0
        stats = c.stats()
    assert stats["delivered"] == dict.fromkeys(
        ["frame", "detection", "plan", "action", "outcome", "heartbeat", "state_delta"], 1)
    topics = [cs_settings.topic(t) for t in EVENT_TOPICS]
    got = read_decoded(kafka_bootstrap, topics, min_count=7)
    assert len(got) == 7
    by_type: dict[str, dict[str, Any]] = {}
    for topic, key, dec in got:
        assert key == b"agent-int"
        assert topic == cs_settings.topic(dec.schema.topic)
        assert dec.wire_format == "single-object"
        by_type[dec.schema.event_type] = dec.record
    ids = {t: r["envelope"]["event_id"] for t, r in by_type.items()}
    assert ids == {"frame": f, "detection": d, "plan": p, "action": a, "outcome": o,
                   "heartbeat": h, "state_delta": s}
    assert sorted(r["envelope"]["seq"] for r in by_type.values()) == list(range(1, 8))
    assert {r["envelope"]["session_id"] for r in by_type.values()} == {sess}
    assert by_type["detection"]["envelope"]["parent_id"] == f
    assert by_type["outcome"]["envelope"]["parent_id"] == a
    assert by_type["outcome"]["verification"]["passed"] is False
    assert by_type["action"]["params"] == {"button": "left"}
    blob = Path(cs_settings.data_dir) / "blobs"
    uri = by_type["frame"]["image_uri"]
    assert uri.startswith("cas://sha256/") and any(blob.rglob(uri.rsplit("/", 1)[-1]))


def test_rejected_event_is_surfaced(cs_settings: Settings) -> None:
    failures: list[DeliveryFailure] = []
    with AgentClient(cs_settings, "agent-big", on_delivery_error=failures.append,
                     producer_config={"message.max.bytes": 4096}) as c:
        c.heartbeat()
        assert c.flush(30) == 0
        c.frame(thumbnail=bytes(20_000), width=10, height=10, phash="0")  # too large
        c.heartbeat()
        assert c.flush(30) == 0
        stats = c.stats()
    assert stats["failed"] == {"frame": 1}
    assert stats["delivered"] == {"heartbeat": 2}
    assert len(failures) == 1 and failures[0].event_type == "frame"
    assert not failures[0].respooled
    rejected = Spool(Path(cs_settings.data_dir) / "spool" / "agent-big.rejected")
    assert rejected.depth_messages == 1  # kept on disk, not silently dropped


def test_own_producer_counts_deliveries_instead_of_reporting_each(cs_settings: Settings) -> None:
    """A client with its own producer gets only failure reports from librdkafka; deliveries
    are counted from the producer's queue: exact once flushed, latency still sampled."""
    from prometheus_client import REGISTRY

    def latency_samples() -> float:
        return REGISTRY.get_sample_value("clawstream_sdk_delivery_latency_seconds_count") or 0.0

    before = latency_samples()
    n = 300
    with AgentClient(cs_settings, "agent-count") as c:
        assert c.transport.counts_deliveries
        with pytest.raises(RuntimeError, match="exclusive"):
            AgentClient(cs_settings, "agent-second", transport=c.transport)
        for i in range(n):
            a = c.action("click", plan_id="p", step_index=i % 5, target=f"b{i}")
            c.outcome(a, "success", 1.0)
        assert c.flush(30) == 0
        stats = c.stats()
        deadline = time.monotonic() + 5  # the transport thread observes the probe
        while latency_samples() == before and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stats["delivered"] == {"action": n, "outcome": n}
    assert stats["pending"] == 0 and stats["failed"] == {} and stats["spooled"] == {}
    assert latency_samples() > before


def test_many_events_arrive_in_order(cs_settings: Settings, kafka_bootstrap: str) -> None:
    n = 5000
    with AgentClient(cs_settings, "agent-many") as c:
        for i in range(n):
            c.action("click", plan_id="p", step_index=i % 5, target=f"b{i}")
        assert c.flush(60) == 0
    got = read_decoded(kafka_bootstrap, [cs_settings.topic("claw.actions.v1")], min_count=n)
    seqs = [dec.record["envelope"]["seq"] for _, _, dec in got]
    assert seqs == list(range(1, n + 1))  # one partition per agent: order kept


def test_fleet_cli_sends_exactly_what_it_generates(cs_settings: Settings,
                                                   kafka_bootstrap: str) -> None:
    from click.testing import CliRunner

    from producers.fleet import expected_counts
    from producers.fleet_cli import build_config, fleet

    start = 1_767_225_600_000
    res = CliRunner().invoke(fleet, ["--agents", "3", "--events-per-agent", "150", "--seed", "4",
                                     "--start-time", str(start), "--no-progress"])
    assert res.exit_code == 0, res.output
    expected = expected_counts(build_config(agents=3, events_per_agent=150, seed=4,
                                            start_time_ms=start))
    assert expected.get("state_delta", 0) > 0  # CRDT replicas on by default
    rows = [[t for t in line.split() if t not in "│┃"] for line in res.output.splitlines()]
    for event_type, n in expected.items():
        assert [event_type, str(n), str(n)] in [r[:3] for r in rows], res.output
    topics = [cs_settings.topic(t) for t in EVENT_TOPICS]
    got = read_decoded(kafka_bootstrap, topics, min_count=450)
    counts: dict[str, int] = {}
    for _, _, dec in got:
        counts[dec.schema.event_type] = counts.get(dec.schema.event_type, 0) + 1
    # on a mismatch, say whether the broker holds the events (a reader problem) or not
    assert counts == expected, (res.output, end_offsets(kafka_bootstrap, topics))
    per_agent: dict[str, list[int]] = {}
    for _, key, dec in got:
        per_agent.setdefault(key.decode(), []).append(dec.record["envelope"]["seq"])
    assert {a: sorted(s) for a, s in per_agent.items()} == {
        f"agent-{i:04d}": list(range(1, 151)) for i in range(3)}
    assert min(dec.record["envelope"]["event_time"] for _, _, dec in got) >= start
