"""SDK unit tests (no broker needed): compiled encoders equal fastavro, envelope filling,
seq continuity across restarts, claim-check frames, the blob store.

With no broker answering, every event ends up in the agent's disk spool (directly, or given
back by librdkafka on close), which is exactly what lets these tests read back what the SDK
built.
"""

from __future__ import annotations

import io
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from ports import free_port

from producers.blobstore import BlobStore, parse_uri
from producers.sdk import AgentClient, RandomIds, envelope_seq
from producers.settings import SdkSettings
from producers.spool import Spool
from schemas.codegen import compile_encoder
from schemas.registry import EVENT_SCHEMAS, contract
from schemas.serde import EncodeError, Serde


def _random_value(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random datum for an expanded Avro schema (edge cases included)."""
    if isinstance(schema, list):
        if "null" in schema and rng.random() < 0.4:
            return None
        return _random_value(next(s for s in schema if s != "null"), rng, depth)
    t = schema if isinstance(schema, str) else schema["type"]
    if isinstance(t, (dict, list)):
        return _random_value(t, rng, depth)
    if t in ("int",):
        return rng.choice([0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31), rng.randrange(-9999, 9999)])
    if t == "long":
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 1_767_225_600_123, rng.randrange(10**6)])
    if t in ("float", "double"):
        return rng.choice([0.0, -1.5, 3.25, 1e10])
    if t == "boolean":
        return rng.random() < 0.5
    if t == "string":
        return rng.choice(["", "x", "ünïcødé ✓", "y" * 70, str(uuid.uuid4())])
    if t == "bytes":
        return rng.choice([b"", b"\x00\xff", bytes(200)])
    if t == "enum":
        return rng.choice(schema["symbols"])
    if t == "array":
        return [_random_value(schema["items"], rng, depth + 1) for _ in range(rng.randrange(4))]
    if t == "map":
        return {f"k{i}": _random_value(schema["values"], rng, depth + 1)
                for i in range(rng.randrange(70 if depth == 0 else 3))}
    if t == "record":
        return {f["name"]: _random_value(f["type"], rng, depth + 1) for f in schema["fields"]}
    raise AssertionError(t)


@pytest.mark.parametrize("name", EVENT_SCHEMAS)
def test_compiled_encoder_matches_fastavro_byte_for_byte(name: str) -> None:
    schema = contract().get(name)
    encode = compile_encoder(schema.expanded)
    serde = Serde()
    rng = random.Random(name)
    for _ in range(200):
        record = _random_value(schema.expanded, rng)
        out = bytearray()
        encode(record, out)
        assert bytes(out) == serde.encode(schema, record)[10:]


def test_compiled_encoder_fills_defaults_like_fastavro() -> None:
    schema = contract().get("action")
    record = {"envelope": {"event_id": "e", "agent_id": "a", "session_id": "s", "trace_id": "t",
                           "event_time": 1, "seq": 1,
                           "producer": {"name": "p", "version": "1"}},
              "kind": "click", "target": {}}
    out = bytearray()
    compile_encoder(schema.expanded)(record, out)
    assert bytes(out) == Serde().encode(schema, record)[10:]


def test_random_ids_are_uuid4() -> None:
    ids = RandomIds()
    seen = {ids() for _ in range(5000)}
    assert len(seen) == 5000
    for s in list(seen)[:200]:
        u = uuid.UUID(s)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == s


@pytest.fixture
def offline(tmp_path: Path) -> SdkSettings:
    """Agent-side settings pointing at a port where no broker listens."""
    return SdkSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_namespace="ns1.",
                    data_dir=tmp_path / "data")


def _spooled(settings: SdkSettings, agent: str) -> list[tuple[str, bytes | None, Any]]:
    serde = Serde()
    spool = Spool(Path(settings.data_dir) / "spool" / agent)
    out = []
    while (b := spool.read_batch()) is not None:
        out.extend((t, k, serde.decode(v)) for t, k, v in b.records)
        spool.ack(b)
    spool.close()
    return out


def _emit_one_of_each(client: AgentClient) -> dict[str, str]:
    ids = {}
    img = np.zeros((200, 320, 3), dtype=np.uint8)
    img[50:80, 40:200] = (200, 30, 30)
    ids["frame"] = client.frame(img, app="notepad", changed_regions=[(1, 2, 3, 4)])
    ids["detection"] = client.detection(ids["frame"], [
        {"kind": "button", "bbox": (40, 50, 160, 30), "text": "Save", "confidence": 0.9}],
        app="notepad")
    ids["plan"] = client.plan("save a file", ["click Save"], app="notepad")
    ids["action"] = client.action("click", app="notepad", plan_id=ids["plan"], step_index=0,
                                  target="Save", x=120, y=65)
    ids["outcome"] = client.outcome(ids["action"], "success", 42.0, app="notepad",
                                    action_kind="click")
    ids["heartbeat"] = client.heartbeat()
    ids["state_delta"] = client.state_delta("actions_total", "gcounter", b"\x01\x02")
    return ids


def test_envelope_is_filled_and_seq_is_gapless(offline: SdkSettings) -> None:
    with AgentClient(offline, "agent-7", session_id="sess-1") as client:
        ids = _emit_one_of_each(client)
        explicit = client.emit("heartbeat", {"status": "busy"}, event_time=1234,
                               trace_id="trace-9", parent_id=ids["outcome"])
        assert client.seq == 8
        client.close(timeout=0)
    records = _spooled(offline, "agent-7")
    assert len(records) == 8
    assert [r[2].record["envelope"]["seq"] for r in records] == list(range(1, 9))
    for topic, key, dec in records:
        env = dec.record["envelope"]
        assert key == b"agent-7"
        assert topic == "ns1." + dec.schema.topic
        assert env["agent_id"] == "agent-7" and env["session_id"] == "sess-1"
        assert env["producer"]["name"] == "clawstream-sdk"
        assert uuid.UUID(env["event_id"]).version == 4
    by_type = {dec.schema.event_type: dec.record for _, _, dec in records[:7]}
    assert {t: r["envelope"]["event_id"] for t, r in by_type.items()} == ids
    assert by_type["detection"]["envelope"]["parent_id"] == ids["frame"]
    assert by_type["action"]["envelope"]["parent_id"] == ids["plan"]
    assert by_type["outcome"]["envelope"]["parent_id"] == ids["action"]
    assert by_type["outcome"]["action_id"] == ids["action"]
    assert by_type["plan"]["envelope"]["trace_id"] == "sess-1"
    last = records[-1][2].record["envelope"]
    assert (last["event_id"], last["event_time"], last["trace_id"], last["parent_id"]) == (
        explicit, 1234, "trace-9", ids["outcome"])


def test_seq_continues_after_restart_and_old_spool_stays_in_front(offline: SdkSettings) -> None:
    with AgentClient(offline, "agent-r") as c1:
        for i in range(5):
            c1.heartbeat(uptime_s=float(i))
    with AgentClient(offline, "agent-r") as c2:
        assert c2.seq == 5
        assert c2.spooling  # the earlier run's events wait in the spool
        s2 = c2.new_session()
        for i in range(3):
            c2.heartbeat(uptime_s=10.0 + i)
    records = _spooled(offline, "agent-r")
    assert [r[2].record["envelope"]["seq"] for r in records] == list(range(1, 9))
    assert [r[2].record["envelope"]["session_id"] == s2 for r in records] == [False] * 5 + [
        True] * 3


def test_one_process_per_agent(offline: SdkSettings) -> None:
    with AgentClient(offline, "agent-x"), pytest.raises(RuntimeError, match="already"):
        AgentClient(offline, "agent-x")


def test_bad_body_raises_and_does_not_consume_seq(offline: SdkSettings) -> None:
    with AgentClient(offline, "agent-b") as client:
        client.heartbeat()
        with pytest.raises(EncodeError):
            client.emit("action", {"kind": "not-a-kind", "target": {}})
        with pytest.raises(KeyError):
            client.emit("no-such-type", {})
        client.heartbeat()
        assert client.seq == 2


def test_frame_claim_check(offline: SdkSettings) -> None:
    img = np.random.default_rng(1).integers(0, 255, (400, 640, 3), dtype=np.uint8)
    with AgentClient(offline, "agent-f") as client:
        client.frame(img, app="browser")
        client.frame(img, app="browser")  # same picture: stored once
    recs = [r[2].record for r in _spooled(offline, "agent-f")]
    assert len(recs) == 2
    frame = recs[0]
    store = BlobStore(Path(offline.data_dir) / "blobs")
    full = store.get(frame["image_uri"])  # verified against its sha256
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(full))), img)
    assert frame["image_sha256"] == parse_uri(frame["image_uri"])
    assert (frame["width"], frame["height"]) == (640, 400)
    thumb = Image.open(io.BytesIO(frame["thumbnail"]))
    assert thumb.format == "JPEG" and thumb.size == (160, 100)
    assert (frame["thumb_width"], frame["thumb_height"]) == (160, 100)
    assert len(frame["phash"]) == 16
    assert len(frame["thumbnail"]) < 20_000  # the full image never rides inline
    assert recs[1]["image_uri"] == frame["image_uri"]
    assert len([p for p in store.root.rglob("*") if p.is_file()]) == 1


def test_blobstore_dedup_atomic_and_verified(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    uri = store.put(b"hello")
    assert uri == store.put(b"hello")
    digest = parse_uri(uri)
    path = store.path_for(digest)
    assert path.parent.parent.name == digest[:2] and path.parent.name == digest[2:4]
    assert store.get(uri) == b"hello" and store.exists(uri)
    assert not list(path.parent.glob(".tmp-*"))  # no temp files left behind
    path.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(uri)
    with pytest.raises(ValueError):
        parse_uri("http://x")


def test_envelope_seq_reads_back_seq() -> None:
    serde = Serde()
    for parent in (None, "p" * 40):
        rec = {"envelope": {"event_id": str(uuid.uuid4()), "agent_id": "a", "session_id": "s",
                            "trace_id": "t", "parent_id": parent, "event_time": 1_700_000_000_000,
                            "seq": 987654, "producer": {"name": "n", "version": "v"}},
               "status": "ok"}
        assert envelope_seq(serde.encode("heartbeat", rec)) == 987654


def test_metrics_are_exported(offline: SdkSettings) -> None:
    from prometheus_client import REGISTRY

    def spooled() -> float:
        return REGISTRY.get_sample_value("clawstream_sdk_events_spooled_total",
                                         {"type": "outcome"}) or 0.0

    before = spooled()
    with AgentClient(offline, "agent-m") as client:
        client.on_broker_down("test")  # as the transport says when the broker is away
        for i in range(3):
            client.outcome(f"a{i}", "success", 1.0)
        client.export_metrics()
        assert spooled() - before == 3
        assert REGISTRY.get_sample_value("clawstream_sdk_spool_depth_messages",
                                         {"agent": "agent-m"}) == 3
