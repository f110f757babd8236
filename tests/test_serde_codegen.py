"""The serde's generated encoders write exactly fastavro's bytes, and whatever they cannot
write goes to fastavro (same bytes, or fastavro's error)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import random
import uuid
from typing import Any

import pytest
from fastavro import schemaless_writer

from schemas.codegen import Unsupported, compile_encoder, write_long
from schemas.registry import contract
from schemas.samples import EVENT_TYPES, sample
from schemas.serde import EncodeError, Serde


def fastavro_body(event_type: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, contract().get(event_type).writer, record, strict_allow_default=True)
    return buf.getvalue()


def generated_body(event_type: str, record: dict[str, Any]) -> bytes:
    out = bytearray()
    compile_encoder(contract().get(event_type).expanded)(record, out)
    return bytes(out)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_generated_encoder_writes_fastavros_bytes(event_type: str) -> None:
    encode = compile_encoder(contract().get(event_type).expanded)
    rng = random.Random(42)
    for _ in range(300):
        record = sample(event_type, rng)
        out = bytearray()
        encode(record, out)
        assert bytes(out) == fastavro_body(event_type, record)


def test_edge_values_match_fastavro() -> None:
    rec = sample("heartbeat", random.Random(1))
    for seq in (0, 1, 63, 64, -1, -64, -65, 2**31, 2**63 - 1, -(2**63)):
        r = copy.deepcopy(rec)
        r["envelope"]["seq"] = seq
        assert generated_body("heartbeat", r) == fastavro_body("heartbeat", r), seq
    for qd in (0, 63, 64, 2**31 - 1, -(2**31)):
        r = {**rec, "queue_depth": qd}
        assert generated_body("heartbeat", r) == fastavro_body("heartbeat", r), qd
    for status in ("", "ok", "é" * 40, "x" * 63, "x" * 64, "🦀" * 100):
        r = {**rec, "status": status}
        assert generated_body("heartbeat", r) == fastavro_body("heartbeat", r), status
    act = sample("action", random.Random(2))
    for params in ({}, {"k": "v"}, {f"k{i}": "v" * i for i in range(80)}):
        r = {**act, "params": params}
        assert generated_body("action", r) == fastavro_body("action", r)
    frame = sample("frame", random.Random(3))
    for thumb in (b"", b"\x00", bytes(range(256)) * 40):
        r = {**frame, "thumbnail": thumb, "changed_regions": []}
        assert generated_body("frame", r) == fastavro_body("frame", r)


def test_defaults_are_written_for_missing_optional_fields() -> None:
    rec = sample("outcome", random.Random(4))
    partial = {k: v for k, v in rec.items() if k not in ("error", "executor", "app")}
    assert generated_body("outcome", partial) == fastavro_body("outcome", partial)


def test_write_long_rejects_out_of_range() -> None:
    with pytest.raises(OverflowError):
        write_long(bytearray(), 2**63)


def test_unsupported_unions_are_reported() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": ["null", "int", "string"]}]}
    with pytest.raises(Unsupported):
        compile_encoder(schema)


# -- through the serde: fallbacks keep fastavro's behaviour ----------------------------------


def test_datetime_and_uuid_objects_fall_back_to_fastavro_with_same_bytes() -> None:
    serde = Serde()
    rec = sample("alert", random.Random(5))
    as_objects = copy.deepcopy(rec)
    as_objects["envelope"]["event_id"] = uuid.UUID(rec["envelope"]["event_id"])
    as_objects["starts_at"] = dt.datetime.fromtimestamp(rec["starts_at"] / 1000, tz=dt.UTC)
    assert serde.encode("alert", as_objects) == serde.encode("alert", rec)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["target"].__setitem__("x", "12"),  # str for int
        lambda r: r["target"].__setitem__("typo", 1),  # unknown nested field
        lambda r: r.__setitem__("kind", "teleport"),  # not an enum symbol
        lambda r: r["envelope"].pop("agent_id"),  # required field missing
        lambda r: r.__setitem__("params", {"a": 1}),  # int in a string map
        lambda r: r.__setitem__("step_index", 2**40),  # beyond Avro int
    ],
    ids=["str-for-int", "unknown-nested-field", "bad-enum", "missing-required", "map-value",
         "int-range"],
)
def test_bad_records_still_raise_encode_error(mutate: Any) -> None:
    rec = sample("action", random.Random(6))
    mutate(rec)
    with pytest.raises(EncodeError, match="Action"):
        Serde().encode("action", rec)


def test_bool_for_int_behaves_like_fastavro() -> None:
    rec = sample("heartbeat", random.Random(7))
    rec["queue_depth"] = True
    try:
        expected: bytes | type[Exception] = fastavro_body("heartbeat", rec)
    except Exception as exc:  # whatever fastavro does, the serde does the same
        expected = type(exc)
    if isinstance(expected, bytes):
        assert Serde().encode("heartbeat", rec)[10:] == expected
    else:
        with pytest.raises(EncodeError):
            Serde().encode("heartbeat", rec)
