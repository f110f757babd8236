"""The compiled decoder (schemas/_avro.pyx) reads exactly what fastavro reads, and whatever
it cannot read goes to fastavro (same record, or fastavro's error)."""

from __future__ import annotations

import io
import random
import re
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas.serde as serde_module
from schemas.registry import contract
from schemas.samples import EVENT_TYPES, sample
from schemas.serde import DecodeError, Serde

decoder = pytest.importorskip("schemas._avro")


def fastavro_record(event_type: str, body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), contract().get(event_type).reader, None)


def plan(event_type: str) -> Any:
    serde = Serde()
    s = contract().get(event_type)
    return serde._reader_plan(s)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)  # NaN reads as NaN


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_compiled_decoder_reads_what_fastavro_reads(event_type: str) -> None:
    p = plan(event_type)
    assert p is not None, "every current schema has a compiled reader"
    serde = Serde()
    rng = random.Random(f"decode-{event_type}")
    for _ in range(300):
        data = serde.encode(event_type, sample(event_type, rng))
        got = decoder.decode(p, data, 10)
        assert same(got, fastavro_record(event_type, data[10:]))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_damaged_bytes_decode_like_fastavro_or_raise(event_type: str) -> None:
    """Flipped, cut and appended bytes: the compiled reader gives fastavro's record or
    raises; the serde (which then asks fastavro) answers exactly like a fastavro-only one."""
    p = plan(event_type)
    serde = Serde()
    rng = random.Random(f"damage-{event_type}")
    for _ in range(400):
        data = bytearray(serde.encode(event_type, sample(event_type, rng)))
        what = rng.random()
        if what < 0.6:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(10, len(data))] = rng.randrange(256)
        elif what < 0.8:
            del data[rng.randrange(10, len(data)):]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        damaged = bytes(data)
        try:
            got = decoder.decode(p, damaged, 10)
        except Exception:
            got = None
        if got is not None:
            assert same(got, fastavro_record(event_type, damaged[10:]))
        assert _outcome(Serde(), damaged) == _fastavro_only_outcome(damaged)


def _outcome(serde: Serde, data: bytes) -> Any:
    try:
        return ("ok", serde.decode(data).record)
    except DecodeError as exc:  # fastavro's messages name its buffer object by address
        return ("error", exc.reason, re.sub(r"0x[0-9a-f]+", "0x?", exc.detail))


def _fastavro_only_outcome(data: bytes) -> Any:
    saved = serde_module._avro
    serde_module._avro = None
    try:
        return _outcome(Serde(), data)
    finally:
        serde_module._avro = saved


SCHEMA = {
    "type": "record", "name": "ns.T", "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "F2", "size": 2}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["a", "b"]}},
        {"name": "u", "type": ["null", "string", "long"]},
        {"name": "xs", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "F2"}},
        {"name": "sub", "type": {"type": "record", "name": "Sub", "fields": [
            {"name": "n", "type": "null"}]}},
        {"name": "again", "type": "ns.Sub"},
    ]}
RECORD = {"b": True, "i": -(2**31), "f": 1.5, "d": float("nan"), "raw": b"\x00\xff",
          "fx": b"ab", "e": "b", "u": 2**62, "xs": [1, -2, 3], "m": {"k": b"zz", "é": b"\x00\x01"},
          "sub": {"n": None}, "again": {"n": None}}


def _write(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(SCHEMA), record)
    return buf.getvalue()


def test_every_avro_type_reads_like_fastavro() -> None:
    p = decoder.compile_reader(SCHEMA)
    for u in (None, "text", 2**62, -1):
        data = _write({**RECORD, "u": u})
        expected = schemaless_reader(io.BytesIO(data), parse_schema(SCHEMA), None)
        assert same(decoder.decode(p, data, 0), expected)


def test_blocks_with_byte_sizes_read_like_fastavro() -> None:
    """Arrays and maps may come in blocks with a negative count and their size in bytes."""
    schema = {"type": "record", "name": "B", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "int"}},
        {"name": "m", "type": {"type": "map", "values": "int"}}]}
    # xs: block of -2 items (4 bytes) [1, 2], block of 1 item [3], end; m: {"a": 5}
    data = bytes([3, 8, 2, 4, 2, 6, 0, 2, 2, ord("a"), 10, 0])
    expected = schemaless_reader(io.BytesIO(data), parse_schema(schema), None)
    assert expected == {"xs": [1, 2, 3], "m": {"a": 5}}
    assert same(decoder.decode(decoder.compile_reader(schema), data, 0), expected)


@pytest.mark.parametrize(("name", "data"), [
    ("boolean byte 2", bytes([2])),
    ("truncated", b""),
])
def test_odd_booleans_and_truncation_raise(name: str, data: bytes) -> None:
    p = decoder.compile_reader({"type": "record", "name": "R",
                                "fields": [{"name": "b", "type": "boolean"}]})
    with pytest.raises(ValueError):
        decoder.decode(p, data, 0)


def test_out_of_range_values_raise() -> None:
    r = {"type": "record", "name": "R", "fields": [
        {"name": "i", "type": "int"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["a"]}},
        {"name": "u", "type": ["null", "int"]}]}
    p = decoder.compile_reader(r)
    assert decoder.decode(p, bytes([2, 0, 0]), 0) == {"i": 1, "e": "a", "u": None}
    for bad in (b"\xff\xff\xff\xff\x7f\x00\x00",  # int beyond 32 bits
                bytes([2, 2, 0]),  # enum index 1 of 1 symbol
                bytes([2, 0, 4]),  # union branch 2 of 2
                b"\xff" * 11 + b"\x00\x00\x00",  # varint longer than 10 bytes
                bytes([2, 0, 0, 0])):  # a byte after the record
        with pytest.raises(ValueError):
            decoder.decode(p, bad, 0)


def test_invalid_utf8_raises() -> None:
    p = decoder.compile_reader({"type": "record", "name": "R",
                                "fields": [{"name": "s", "type": "string"}]})
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(p, bytes([4, 0xC3, 0x28]), 0)


def test_logical_types_are_left_to_fastavro() -> None:
    with pytest.raises(decoder.Unsupported):
        decoder.compile_reader({"type": "record", "name": "R", "fields": [
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})


def test_the_serde_reads_and_writes_through_the_compiled_plans() -> None:
    serde = Serde()
    rng = random.Random(5)
    for et in EVENT_TYPES:
        record = sample(et, rng)
        data = serde.encode(et, record)
        assert data[10:] == _fastavro_body(et, record)
        serde.decode(data)
    names = [contract().get(et).full_name for et in EVENT_TYPES]
    assert all(serde._plans[n] is not None for n in names)
    assert all(serde._writers[n] is not None for n in names)


def _fastavro_body(event_type: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, contract().get(event_type).writer, record, strict_allow_default=True)
    return buf.getvalue()


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_identify_accepts_exactly_what_decode_reads(event_type: str) -> None:
    """The ingest gateway's check (`Serde.identify`: the compiled check without building the
    record) passes what `decode` reads, with the same schema and agent_id, and raises
    DecodeError for the rest: every truncation, a byte after the record, random byte flips."""
    serde = Serde()
    rng = random.Random(f"identify-{event_type}")
    for _ in range(20):
        data = serde.encode(event_type, sample(event_type, rng))
        damaged = [data[:i] for i in range(len(data))] + [data + b"\0"]
        for _ in range(100):
            b = bytearray(data)
            b[rng.randrange(10, len(b))] = rng.randrange(256)
            damaged.append(bytes(b))
        for d in [data, *damaged]:
            try:
                decoded = serde.decode(d)
            except DecodeError as exc:
                with pytest.raises(DecodeError) as raised:
                    serde.identify(d)
                assert raised.value.reason == exc.reason
                continue
            schema, agent_id = serde.identify(d)
            assert schema is decoded.schema
            assert agent_id == decoded.record["envelope"]["agent_id"]


def test_identify_uses_the_compiled_check() -> None:
    serde = Serde()
    data = serde.encode("action", sample("action", random.Random(3), agent_id="a-1"))
    assert decoder.check(plan("action"), data, 10, 1) == "a-1"
    schema, agent_id = serde.identify(data)
    assert agent_id == "a-1" and serde._agent_leaf[schema.full_name]
