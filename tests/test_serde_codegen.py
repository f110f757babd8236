"""The serde's generated encoders write exactly fastavro's bytes, and whatever they cannot
write goes to fastavro (same bytes, or fastavro's error)."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import io
import random
import uuid
from typing import Any

import numpy as np
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


# -- odd values: the generated code writes fastavro's bytes or raises, never anything else -----


class _StrSub(str):
    pass


_ODD_VALUES: list[Any] = [
    True, False, 0, 1, 63, 64, 8191, 8192, -1, -65, 2**31, -(2**31) - 1, 2**40, 2**63,
    5.0, 1.5, float("inf"), np.int64(7), np.float32(1.5), "", "x", "é" * 40, b"x",
    bytearray(b"y"), None, _StrSub("click"), [], ["a"], ("a",), {}, {"k": "v"}, {"k": 1},
    collections.defaultdict(str),
]


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a record (dict values and list items), nested ones included."""
    out = []
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else [])
    for key, v in items:
        out.append((*path, key))
        out.extend(_leaf_paths(v, (*path, key)))
    return out


def _put_odd_value(record: dict[str, Any], rng: random.Random) -> tuple[tuple[Any, ...], Any]:
    """Replace one random position of `record` with an odd value (and now and then add a key
    the schema does not have); returns where and what."""
    path = rng.choice(_leaf_paths(record))
    target = record
    for key in path[:-1]:
        target = target[key]
    odd = rng.choice(_ODD_VALUES)
    target[path[-1]] = copy.copy(odd)
    if rng.random() < 0.2 and isinstance(target, dict):  # an unknown key as well
        target["not_in_schema"] = 1
    return path, odd


def _fastavro_or_none(event_type: str, record: dict[str, Any]) -> bytes | None:
    try:
        return fastavro_body(event_type, record)
    except Exception:
        return None


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_odd_values_give_fastavros_bytes_or_raise(event_type: str) -> None:
    encode = compile_encoder(contract().get(event_type).expanded)
    rng = random.Random(f"odd-{event_type}")
    for _ in range(400):
        record = sample(event_type, rng)
        path, odd = _put_odd_value(record, rng)
        out = bytearray()
        try:
            encode(copy.deepcopy(record), out)
        except Exception:
            continue  # the serde hands it to fastavro
        assert bytes(out) == _fastavro_or_none(event_type, record), (path, odd)


def test_skip_fields_encodes_the_rest_of_the_record() -> None:
    """The SDK writes the envelope itself and the body with skip_fields=1."""
    for event_type in EVENT_TYPES:
        schema = contract().get(event_type)
        body_encoder = compile_encoder(schema.expanded, skip_fields=1)
        rng = random.Random(f"skip-{event_type}")
        for _ in range(50):
            record = sample(event_type, rng)
            full = fastavro_body(event_type, record)
            head = io.BytesIO()
            schemaless_writer(head, {"type": "record", "name": "Head", "fields": [
                {"name": "envelope", "type": schema.writer["fields"][0]["type"]}]},
                {"envelope": record["envelope"]})
            out = bytearray()
            body_encoder({k: v for k, v in record.items() if k != "envelope"}, out)
            assert head.getvalue() + bytes(out) == full
        with pytest.raises(TypeError):  # the envelope is not part of what it writes
            body_encoder(dict(sample(event_type, rng)), bytearray())


def test_dict_subclass_with_missing_keys_is_not_trusted() -> None:
    """A defaultdict must not invent a missing field's value (fastavro would not)."""
    rec = sample("action", random.Random(8))
    target = collections.defaultdict(lambda: "invented", rec["target"])
    del target["label"]
    target["typo"] = "x"  # same size as the schema's field list
    rec["target"] = target
    with pytest.raises(EncodeError):
        Serde().encode("action", rec)


# -- the optional compiled accelerator of the SDK (producers._accel) ------------------------
accel = pytest.importorskip("producers._accel", reason="compiled accelerator not built")


def accel_body(event_type: str, record: dict[str, Any]) -> bytes:
    return accel.encode_body(accel.compile_plan(contract().get(event_type).expanded), record)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_accel_writes_fastavros_bytes(event_type: str) -> None:
    plan = accel.compile_plan(contract().get(event_type).expanded)
    rng = random.Random(f"accel-{event_type}")
    for _ in range(300):
        record = sample(event_type, rng)
        assert accel.encode_body(plan, record) == fastavro_body(event_type, record)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_accel_odd_values_give_fastavros_bytes_or_raise(event_type: str) -> None:
    plan = accel.compile_plan(contract().get(event_type).expanded)
    rng = random.Random(f"accel-odd-{event_type}")
    for _ in range(400):
        record = sample(event_type, rng)
        path, _ = _put_odd_value(record, rng)
        try:
            out = accel.encode_body(plan, copy.deepcopy(record))
        except Exception:
            continue  # the SDK takes the Python path
        assert out == _fastavro_or_none(event_type, record), path


def test_accel_edge_values() -> None:
    rec = sample("outcome", random.Random(3))
    for v in (0.0, -0.0, 1e308, float("inf"), float("nan"), 2**53 + 1, -(2**63)):
        rec["duration_ms"] = v
        assert accel_body("outcome", rec) == fastavro_body("outcome", rec)
    rec = sample("action", random.Random(4))
    for v in (0, 63, 64, 8191, 8192, -1, -65, 2**31 - 1, -(2**31)):
        rec["target"]["x"] = v
        assert accel_body("action", rec) == fastavro_body("action", rec)
    for bad in (2**31, True, 1.0, "1"):
        rec["target"]["x"] = bad
        with pytest.raises((TypeError, OverflowError)):
            accel_body("action", rec)
    rec = sample("action", random.Random(5))
    rec["app"] = "caf\u00e9 \u2603 \U0001f600"
    assert accel_body("action", rec) == fastavro_body("action", rec)
    rec["app"] = "\ud800"  # lone surrogate: raises, like fastavro
    with pytest.raises(UnicodeError):
        accel_body("action", rec)


def test_accel_defaults_for_missing_fields() -> None:
    rec = sample("action", random.Random(6))
    rec["target"] = {"label": "OK", "x": 3}  # what AgentClient.action() builds
    del rec["params"], rec["executor"]
    assert accel_body("action", rec) == fastavro_body("action", rec)
    del rec["kind"]  # no default: raises
    with pytest.raises(KeyError):
        accel_body("action", rec)


def test_accel_skip_fields_with_envelope_written_by_encode_event() -> None:
    """encode_event (header + envelope + body) gives the serde's single-object bytes."""
    serde = Serde()
    for event_type in EVENT_TYPES:
        schema = contract().get(event_type)
        plan = accel.compile_plan(schema.expanded, 1)
        rng = random.Random(f"event-{event_type}")
        for _ in range(50):
            record = sample(event_type, rng)
            env = record["envelope"]
            ast = b"".join(_avro_str(env[k]) for k in ("agent_id", "session_id", "trace_id"))
            prod = _avro_str(env["producer"]["name"]) + _avro_str(env["producer"]["version"])
            value = accel.encode_event(
                serde.encode(schema, record)[:10], str(env["event_id"]), ast, env["parent_id"],
                env["event_time"], env["seq"], prod, plan,
                {k: v for k, v in record.items() if k != "envelope"})
            assert value == serde.encode(schema, record)


def _avro_str(s: str) -> bytes:
    out = bytearray()
    b = s.encode()
    write_long(out, len(b))
    return bytes(out) + b
