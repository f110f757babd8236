"""The optional compiled accelerator (producers/_accel.pyx) changes nothing: its event ids,
its `emit` and its delivery reports give what the Python code gives; CLAWSTREAM_NO_ACCEL=1
turns it off. No broker needed."""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ports import free_port

from producers.sdk import AgentClient, ReplayBatch, Transport
from producers.settings import SdkSettings
from schemas.serde import EncodeError, Serde


@pytest.fixture
def offline(tmp_path: Path) -> SdkSettings:
    """Agent-side settings pointing at a port where no broker listens."""
    return SdkSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_namespace="ns1.",
                       data_dir=tmp_path / "data")


def test_compiled_uuid4_strings_match_the_uuid_module() -> None:
    accel = pytest.importorskip("producers._accel")
    raw = os.urandom(16 * 300) + bytes(16) + b"\xff" * 16  # all-zero and all-one bits too
    expected = [str(uuid.UUID(bytes=raw[i:i + 16], version=4)) for i in range(0, len(raw), 16)]
    assert accel.uuid4_strings(raw) == expected


class _Report:
    """A delivery report as confluent-kafka hands one to the transport."""

    def __init__(self, key: bytes, topic: str, value: bytes) -> None:
        self._key, self._topic, self._value = key, topic, value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def latency(self) -> float:
        return 0.002


def test_compiled_delivery_report_counts_like_the_python_one(
    offline: SdkSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared producer reports every event; the accelerator's report of a delivered event
    (producers._accel.DeliveryReports) keeps the same counts as AgentClient.on_delivery, and
    hands everything else to it."""
    from confluent_kafka import KafkaError

    from producers.sdk import encoding
    from schemas.samples import sample

    # (set, so the test also runs under CLAWSTREAM_NO_ACCEL=1)
    monkeypatch.setattr(encoding, "_accel", pytest.importorskip(
        "producers._accel", reason="compiled accelerator not built"))

    transport = Transport(offline)  # shared: one report per event
    fast = AgentClient(offline, "agent-fast", transport=transport)
    slow = AgentClient(offline, "agent-slow", transport=transport)
    try:
        assert "on_delivery" in vars(fast)  # the compiled report is installed
        topic = offline.topic("claw.heartbeats.v1")
        value = Serde().encode("heartbeat", sample("heartbeat", random.Random(1)))
        for client in (fast, slow):
            client.counts.track(topic, "heartbeat")
        timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)

        def report(err: KafkaError | None) -> None:
            fast.on_delivery(err, _Report(fast.key, topic, value))
            AgentClient.on_delivery(slow, err, _Report(slow.key, topic, value))

        for _ in range(130):
            report(None)
        report(timed_out)  # taken back, in front of the spool
        for client in (fast, slow):  # a replay batch is out: its reports go to it
            client.outage.batch = ReplayBatch(2, reject=lambda *_: None)
        report(None)
        report(timed_out)
        for client in (fast, slow):
            assert client.outage.batch.unreported == 0
            assert client.outage.batch.failed == 1
            client.outage.batch = None
        for name in ("delivered", "respooled", "direct_lost", "direct_done"):
            assert getattr(fast.counts, name) == getattr(slow.counts, name), name
        assert fast.counts.delivered == {topic: 130}
        assert fast.counts.respooled == {topic: 1}
        assert fast.outage.taken_back == 1 and fast.spooling
        for client in (fast, slow):
            client.counts.direct_sent = client.counts.direct_done  # nothing left in flight
    finally:
        fast.close(timeout=0)
        slow.close(timeout=0)
        transport.close(timeout=0)


def _captured_emits(settings: SdkSettings, use_accel: bool, monkeypatch: pytest.MonkeyPatch,
                    events: list[tuple[str, dict[str, Any], str | None, int]]) -> list[bytes]:
    """The bytes AgentClient.emit hands to Kafka (or the spool) for `events`."""
    import itertools

    from producers.sdk import encoding

    # (set either way, so the test also runs under CLAWSTREAM_NO_ACCEL=1)
    monkeypatch.setattr(encoding, "_accel", pytest.importorskip("producers._accel") if use_accel
                        else None)
    ids = (str(uuid.UUID(int=i, version=4)) for i in itertools.count(1))
    out: list[bytes] = []
    client = AgentClient(settings, "agent-acc", session_id="s-1", id_factory=lambda: next(ids))
    try:
        client._produce = lambda topic, value, key: out.append(value)  # type: ignore[method-assign]
        client._send = lambda topic, value: out.append(value)  # type: ignore[method-assign]
        assert ("emit" in vars(client)) is use_accel  # the compiled emit is installed
        for event_type, body, parent, t in events:
            client.emit(event_type, body, parent_id=parent, event_time=t)
        client.emit("heartbeat", {"status": "ok"}, trace_id="t-2", session_id="s-2",
                    event_time=5)
        with pytest.raises(EncodeError):
            client.emit("heartbeat", {"status": 1}, event_time=5)
        assert client.seq == len(events) + 1
    finally:
        monkeypatch.undo()
        client.counts.direct_done = client.counts.direct_sent  # nothing was really sent
        client.close(timeout=0)
    return out


def test_compiled_emit_writes_the_pure_python_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The optional accelerator (producers._accel) changes nothing on the wire: random
    bodies of every event type, defaults left out, odd values that take the Python path."""
    pytest.importorskip("producers._accel", reason="compiled accelerator not built")
    from schemas.samples import EVENT_TYPES, sample

    rng = random.Random(11)
    events: list[tuple[str, dict[str, Any], str | None, int]] = []
    for i in range(400):
        event_type = EVENT_TYPES[i % len(EVENT_TYPES)]
        body = {k: v for k, v in sample(event_type, rng).items() if k != "envelope"}
        if i % 7 == 0 and event_type == "action":
            body["target"] = {"label": "OK", "x": 3}  # defaults filled in
        if i % 11 == 0 and event_type == "outcome":
            body["duration_ms"] = 12  # an int for a double: fastavro's bytes either way
        if i % 13 == 0 and event_type == "action":
            body["step_index"] = np.int64(3)  # not a plain int: the Python path takes it
        parent = None if i % 3 else str(uuid.UUID(int=i, version=4))
        events.append((event_type, body, parent, 1_700_000_000_000 + i))
    settings = [SdkSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_namespace="a.",
                         data_dir=tmp_path / name) for name in ("accel", "python")]
    fast = _captured_emits(settings[0], True, monkeypatch, events)
    slow = _captured_emits(settings[1], False, monkeypatch, events)
    assert len(fast) == len(events) + 1
    assert fast == slow
    serde = Serde()
    assert serde.decode(fast[-1]).record["envelope"]["trace_id"] == "t-2"


def test_no_accel_env_var_forces_the_python_encoders(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import producers.sdk as s; print(s.accelerator() is None)"
    for env, expected in (({"CLAWSTREAM_NO_ACCEL": "1"}, "True"), ({}, None)):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**__import__("os").environ, **env}, check=True)
        if expected is not None:
            assert res.stdout.strip() == expected
