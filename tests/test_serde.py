"""The serde: both wire formats round-trip every event type, an independent Avro
implementation (the Apache `avro` package) agrees on the bytes, and malformed input is
rejected with a clear reason."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import random
import struct
import uuid
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.registry import _strip_timestamp_logical_types, contract, crc64_avro
from schemas.samples import EVENT_TYPES, envelope, sample, samples
from schemas.serde import DecodeError, EncodeError, Serde

SEEDS = (1, 2, 3)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def same(a: Any, b: Any, path: str = "") -> None:
    """Deep equality, with Avro `float` (32-bit) values compared at float precision."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), path
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: {a} != {b}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def plain(value: Any) -> Any:
    """What the avro package returns, in clawstream's conventions (epoch ms, str UUIDs)."""
    if isinstance(value, dt.datetime):
        return (value - _EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def avro_schema(expanded: dict[str, Any], *, logical: bool = True) -> avro.schema.Schema:
    doc = expanded if logical else _strip_timestamp_logical_types(expanded)
    return avro.schema.parse(json.dumps(doc))


def avro_read(expanded: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Decode a bare Avro body with the Apache implementation; every byte must be used."""
    buf = io.BytesIO(body)
    record = avro.io.DatumReader(avro_schema(expanded)).read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(body), "the avro package left bytes unread"
    return plain(record)


def avro_write(expanded: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schema = avro_schema(expanded, logical=False)  # same bytes; takes ints and str as given
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


@pytest.fixture(scope="module")
def serde() -> Serde:
    return Serde()


# -- fingerprints ----------------------------------------------------------------------------

#: Canonical forms and CRC-64-AVRO fingerprints published with the Avro specification's test
#: data (share/test/data/schema-tests.txt), as signed 64-bit integers.
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
    ("[]", -1241056759729112623),
    ('["int"]', -5232228896498058493),
    ('["int","boolean"]', 5392556393470105090),
    ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
]


@pytest.mark.parametrize(("canonical", "expected"), SPEC_VECTORS)
def test_crc64_avro_matches_the_specification_vectors(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical.encode()) == expected & 0xFFFFFFFFFFFFFFFF


def test_int_fingerprint_bytes_on_the_wire_are_little_endian() -> None:
    assert struct.pack("<Q", crc64_avro(b'"int"')).hex() == "8f5c393f1ad57572"
    # the Apache implementation agrees where its canonical form is the spec's
    assert avro.schema.parse('"int"').fingerprint() == bytes.fromhex("8f5c393f1ad57572")


def test_record_canonical_form_matches_spec_vector() -> None:
    schema = {"type": "record", "name": "foo", "namespace": "x.y", "doc": "d", "fields": []}
    canonical = to_parsing_canonical_form(parse_schema(schema))
    assert canonical == '{"name":"x.y.foo","type":"record","fields":[]}'
    assert crc64_avro(canonical.encode()) == 5916914534497305771


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_header_is_magic_plus_fingerprint_of_canonical_form(
    serde: Serde, event_type: str
) -> None:
    schema = contract().get(event_type)
    assert '"doc"' not in schema.canonical and '"default"' not in schema.canonical
    data = serde.encode(event_type, sample(event_type, random.Random(0)))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == struct.pack("<Q", crc64_avro(schema.canonical.encode()))


def test_fingerprints_are_distinct_across_current_and_historic_schemas() -> None:
    c = contract()
    fps = [s.fingerprint for s in c.by_name.values()]
    fps += [h.fingerprint for hs in c.history_by_name.values() for h in hs]
    assert len(fps) == len(set(fps))


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_single_object_round_trip_of_every_event_type(serde: Serde, event_type: str) -> None:
    for seed in SEEDS:
        record = sample(event_type, random.Random(seed))
        decoded = serde.decode(serde.encode(event_type, record))
        assert decoded.wire_format == "single-object"
        assert decoded.schema.event_type == event_type
        same(decoded.record, record)
        # timestamps stay epoch-millis ints, UUIDs stay strings
        assert isinstance(decoded.record["envelope"]["event_time"], int)
        assert isinstance(decoded.record["envelope"]["event_id"], str)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_independent_reader_decodes_every_event_type(serde: Serde, event_type: str) -> None:
    schema = contract().get(event_type)
    for seed in SEEDS:
        record = sample(event_type, random.Random(seed))
        data = serde.encode(event_type, record)
        same(avro_read(schema.expanded, data[10:]), record)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_bytes_identical_to_independent_writer(serde: Serde, event_type: str) -> None:
    schema = contract().get(event_type)
    for seed in SEEDS:
        record = sample(event_type, random.Random(seed))
        body = avro_write(schema.expanded, record)
        ours = serde.encode(event_type, record)
        assert ours[10:] == body
        same(serde.decode(b"\xc3\x01" + schema.fingerprint + body).record, record)


def test_encode_accepts_every_name_form(serde: Serde) -> None:
    record = sample("action", random.Random(4))
    forms = ("action", "Action", "clawstream.v1.Action", contract().get("action"))
    assert len({serde.encode(k, record) for k in forms}) == 1
    with pytest.raises(KeyError, match="unknown event schema"):
        serde.encode("nope", record)


def test_encode_rejects_records_that_do_not_match(serde: Serde) -> None:
    record = sample("outcome", random.Random(5))
    with pytest.raises(EncodeError, match="Outcome"):
        serde.encode("outcome", {**record, "duration_ms": "slow"})
    with pytest.raises(EncodeError, match="Outcome"):
        serde.encode("outcome", {**record, "status": "exploded"})
    with pytest.raises(EncodeError, match="Outcome"):
        serde.encode("outcome", {k: v for k, v in record.items() if k != "action_id"})
    with pytest.raises(EncodeError, match="Outcome"):
        serde.encode("outcome", {**record, "not_a_field": 1})
    # optional fields may be left out: their defaults are written
    partial = {k: v for k, v in record.items() if k not in ("error_kind", "verification")}
    got = serde.decode(serde.encode("outcome", partial)).record
    assert got["error_kind"] is None and got["verification"] is None


# -- malformed input -------------------------------------------------------------------------


def _good(serde: Serde) -> bytes:
    return serde.encode("action", sample("action", random.Random(6)))


def _cases(serde: Serde) -> list[tuple[str, bytes | None, str]]:
    good = _good(serde)
    return [
        ("none", None, "empty"),
        ("empty", b"", "empty"),
        ("bad magic (json)", b'{"kind": "click"}', "bad-magic"),
        ("bad magic (c3 02)", b"\xc3\x02" + good[2:], "bad-magic"),
        ("truncated single-object header", good[:7], "truncated"),
        ("truncated confluent header", b"\x00\x00\x01", "truncated"),
        ("unknown fingerprint", b"\xc3\x01" + b"\x01" * 8 + good[10:], "unknown-fingerprint"),
        ("body cut short", good[:-5], "corrupt-body"),
        ("header only", good[:10], "corrupt-body"),
        ("body garbage", good[:10] + b"\xff" * 40, "corrupt-body"),
        ("trailing bytes", good + b"\x00\x01", "trailing-bytes"),
        ("confluent framing, no registry", b"\x00\x00\x00\x00\x07" + good[10:], "no-registry"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_malformed_bytes_give_a_clear_decode_error(serde: Serde, case: int) -> None:
    name, data, reason = _cases(serde)[case]
    with pytest.raises(DecodeError) as info:
        serde.decode(data)
    assert info.value.reason == reason, name
    assert info.value.detail and len(info.value.detail) > 10, name
    assert str(info.value).startswith(f"{reason}: ")


def test_corrupt_body_names_the_schema(serde: Serde) -> None:
    with pytest.raises(DecodeError, match="Action") as info:
        serde.decode(_good(serde)[:-5])
    assert info.value.reason == "corrupt-body"


def test_every_truncation_of_a_message_is_rejected_never_misread(serde: Serde) -> None:
    good = _good(serde)
    for n in range(len(good)):
        with pytest.raises(DecodeError):
            serde.decode(good[:n])


def test_decode_accepts_memoryview_and_bytearray(serde: Serde) -> None:
    good = _good(serde)
    expected = serde.decode(good).record
    assert serde.decode(bytearray(good)).record == expected
    assert serde.decode(memoryview(good)).record == expected


# -- samples ---------------------------------------------------------------------------------


def test_samples_are_deterministic_given_an_rng() -> None:
    for t in EVENT_TYPES:
        assert sample(t, random.Random(9)) == sample(t, random.Random(9))
    assert sample("action")["envelope"]["event_id"] != sample("action")["envelope"]["event_id"]


def test_sample_envelope_overrides_apply_and_typos_fail() -> None:
    rec = sample("outcome", random.Random(1), agent_id="agent-7", seq=3, parent_id="a-1")
    assert rec["envelope"]["agent_id"] == "agent-7" and rec["envelope"]["seq"] == 3
    assert rec["action_id"] == "a-1"
    with pytest.raises(TypeError, match="agentid"):
        sample("outcome", random.Random(1), agentid="x")
    seqs = [r["envelope"]["seq"] for r in samples("heartbeat", 4, random.Random(1), seq=10)]
    assert seqs == [10, 11, 12, 13]
    assert set(envelope(random.Random(1))) == set(contract().get("action").expanded["fields"][0]
                                                 ["type"]["fields"][i]["name"] for i in range(8))


def test_samples_cover_the_optional_branches() -> None:
    """Across a few hundred samples every nullable union takes both branches somewhere."""
    rng = random.Random(11)
    outcomes = [sample("outcome", rng) for _ in range(300)]
    assert {o["status"] for o in outcomes} >= {"success", "failure", "timeout"}
    assert any(o["verification"] is None for o in outcomes)
    assert any(o["verification"] is not None for o in outcomes)
    actions = [sample("action", rng) for _ in range(300)]
    assert any(a["target"]["bbox"] is None for a in actions)
    assert any(a["target"]["element_kind"] is not None for a in actions)


# -- the registry and the Confluent framing ------------------------------------------------------


def test_for_registry_picks_the_wire_format() -> None:
    assert Serde.for_registry(None).wire_format == "single-object"
    assert Serde.for_registry("").wire_format == "single-object"
    s = Serde.for_registry("http://127.0.0.1:8081")
    assert s.wire_format == "confluent"
    # Single-object data still decodes when a registry is configured (readers accept both).
    rec = sample("plan", random.Random(3))
    same(s.decode(Serde().encode("plan", rec)).record, rec)


@pytest.fixture(scope="module")
def confluent_serde(registry_url: str) -> Serde:
    from schemas.registry_client import RegistryClient

    return Serde(registry=RegistryClient(registry_url))


@pytest.mark.integration
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_confluent_round_trip_of_every_event_type(
    confluent_serde: Serde, event_type: str
) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.{contract().get(event_type).topic}"
    record = sample(event_type, random.Random(1))
    data = confluent_serde.encode(event_type, record, topic=topic)
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert confluent_serde.registry.id_for(f"{topic}-value", contract().get(event_type)) == (
        schema_id
    )
    decoded = Serde(registry=confluent_serde.registry).decode(data)
    assert decoded.wire_format == "confluent"
    same(decoded.record, record)
    same(avro_read(contract().get(event_type).expanded, data[5:]), record)


@pytest.mark.integration
def test_confluent_kafka_serializers_agree_with_us(confluent_serde: Serde) -> None:
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from schemas.registry_client import RegistryClient

    client = confluent_serde.registry.client  # type: ignore[union-attr]
    schema = contract().get("outcome")
    topic = f"t{uuid.uuid4().hex[:8]}.claw.outcomes.v1"
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = sample("outcome", random.Random(2))
    theirs = AvroSerializer(client, RegistryClient.schema_str(schema))(record, ctx)
    same(confluent_serde.decode(theirs).record, record)
    ours = confluent_serde.encode("outcome", record, topic=topic)
    assert ours == theirs
    same(plain(AvroDeserializer(client)(ours, ctx)), record)


@pytest.mark.integration
def test_confluent_old_writer_schema_resolves_into_current(confluent_serde: Serde) -> None:
    """A record written under an older registered version reads in today's shape."""
    from confluent_kafka.schema_registry import Schema
    from fastavro import schemaless_writer

    h = contract().history_by_name["Outcome"][0]
    client = confluent_serde.registry.client  # type: ignore[union-attr]
    subject = f"t{uuid.uuid4().hex[:8]}.claw.outcomes.v1-value"
    old_id = client.register_schema(subject, Schema(json.dumps(h.expanded), "AVRO"))
    old = {k: v for k, v in sample("outcome", random.Random(8)).items()
           if k not in ("error_kind", "verification")}
    old["status"] = "success"
    buf = io.BytesIO(struct.pack(">bI", 0, old_id))
    buf.seek(5)
    schemaless_writer(buf, h.writer, old)
    got = Serde(registry=confluent_serde.registry).decode(buf.getvalue())
    assert got.schema.name == "Outcome" and got.wire_format == "confluent"
    assert got.record["error_kind"] is None and got.record["verification"] is None
    assert got.record["action_id"] == old["action_id"]
