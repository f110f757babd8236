"""The compatibility checker (schemas.compat) against crafted schema changes: it catches
the incompatible ones, accepts the compatible ones, and agrees with what a real Avro
reader (the Apache `avro` package) can read."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.compat import check_backward, is_backward_compatible
from schemas.registry import (
    contract,
)


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def problems(reader: Any, writer: Any) -> list[str]:
    return [str(p) for p in check_backward(reader, writer)]


# -- the checker against crafted changes -----------------------------------------------------

ENUM_V1 = {"type": "enum", "name": "Color", "symbols": ["red", "green", "blue"]}

INCOMPATIBLE = {
    "added field without default": (
        rec("R", fld("a", "int"), fld("b", "string")),
        rec("R", fld("a", "int")),
        "R.b: field added without a default",
    ),
    "removed enum symbol, no default": (
        rec("R", fld("c", {"type": "enum", "name": "Color", "symbols": ["red", "green"]})),
        rec("R", fld("c", ENUM_V1)),
        "R.c: enum Color lacks symbol(s) ['blue']",
    ),
    "string -> int": (
        rec("R", fld("a", "int")),
        rec("R", fld("a", "string")),
        "R.a: type changed from string to int",
    ),
    "long -> int (narrowing)": (
        rec("R", fld("a", "int")),
        rec("R", fld("a", "long")),
        "R.a: type changed from long to int",
    ),
    "double -> float": (
        rec("R", fld("a", "float")),
        rec("R", fld("a", "double")),
        "type changed from double to float",
    ),
    "nested record gains a required field": (
        rec("R", fld("t", rec("T", fld("x", "int"), fld("kind", "string")))),
        rec("R", fld("t", rec("T", fld("x", "int")))),
        "R.t.kind: field added without a default",
    ),
    "record renamed without alias": (
        rec("R", fld("t", rec("Target2", fld("x", "int")))),
        rec("R", fld("t", rec("Target", fld("x", "int")))),
        "R.t: record name changed from Target to Target2",
    ),
    "nullable -> required": (
        rec("R", fld("a", "string")),
        rec("R", fld("a", ["null", "string"], default=None)),
        "R.a<null>: type changed from null to string",
    ),
    "union loses a branch": (
        rec("R", fld("a", ["null", "string"], default=None)),
        rec("R", fld("a", ["null", "string", "int"], default=None)),
        "R.a<int>: writer's int matches no branch of the reader's union [null, string]",
    ),
    "array items change": (
        rec("R", fld("xs", {"type": "array", "items": "int"})),
        rec("R", fld("xs", {"type": "array", "items": "string"})),
        "R.xs[]: type changed from string to int",
    ),
    "map values change": (
        rec("R", fld("m", {"type": "map", "values": "boolean"})),
        rec("R", fld("m", {"type": "map", "values": "long"})),
        "R.m{}: type changed from long to boolean",
    ),
    "map -> array": (
        rec("R", fld("m", {"type": "array", "items": "long"})),
        rec("R", fld("m", {"type": "map", "values": "long"})),
        "R.m: type changed from map to array",
    ),
    "fixed size change": (
        rec("R", fld("h", {"type": "fixed", "name": "Hash", "size": 16})),
        rec("R", fld("h", {"type": "fixed", "name": "Hash", "size": 32})),
        "R.h: fixed size changed from 32 to 16",
    ),
    "enum in array loses symbol": (
        rec("R", fld("cs", {"type": "array", "items": {
            "type": "enum", "name": "Color", "symbols": ["red"]}})),
        rec("R", fld("cs", {"type": "array", "items": ENUM_V1})),
        "R.cs[]: enum Color lacks symbol(s) ['green', 'blue']",
    ),
}

COMPATIBLE = {
    "added field with default": (
        rec("R", fld("a", "int"), fld("b", ["null", "string"], default=None)),
        rec("R", fld("a", "int")),
    ),
    "removed field": (rec("R", fld("a", "int")), rec("R", fld("a", "int"), fld("b", "string"))),
    "int -> long": (rec("R", fld("a", "long")), rec("R", fld("a", "int"))),
    "int -> double": (rec("R", fld("a", "double")), rec("R", fld("a", "int"))),
    "long -> float": (rec("R", fld("a", "float")), rec("R", fld("a", "long"))),
    "float -> double": (rec("R", fld("a", "double")), rec("R", fld("a", "float"))),
    "string -> bytes": (rec("R", fld("a", "bytes")), rec("R", fld("a", "string"))),
    "bytes -> string": (rec("R", fld("a", "string")), rec("R", fld("a", "bytes"))),
    "required -> nullable": (
        rec("R", fld("a", ["null", "string"], default=None)),
        rec("R", fld("a", "string")),
    ),
    "int -> union with long (promotion into a branch)": (
        rec("R", fld("a", ["null", "long"], default=None)),
        rec("R", fld("a", "int")),
    ),
    "enum gains symbol": (
        rec("R", fld("c", {**ENUM_V1, "symbols": ["red", "green", "blue", "black"]})),
        rec("R", fld("c", ENUM_V1)),
    ),
    "enum loses symbol but has default": (
        rec("R", fld("c", {"type": "enum", "name": "Color", "symbols": ["red", "other"],
                           "default": "other"})),
        rec("R", fld("c", ENUM_V1)),
    ),
    "record renamed with alias": (
        rec("R", fld("t", rec("Target2", fld("x", "int"), aliases=["Target"]))),
        rec("R", fld("t", rec("Target", fld("x", "int")))),
    ),
    "field renamed with alias": (
        rec("R", fld("label", "string", aliases=["text"])),
        rec("R", fld("text", "string")),
    ),
    "named type referenced by name": (
        rec("R", fld("a", rec("P", fld("x", "long"))), fld("b", ["null", "t.P"], default=None)),
        rec("R", fld("a", rec("P", fld("x", "int"))), fld("b", ["null", "P"], default=None)),
    ),
    "logical type on the base type": (
        rec("R", fld("ts", {"type": "long", "logicalType": "timestamp-millis"})),
        rec("R", fld("ts", "long")),
    ),
    "recursive type": (
        rec("Node", fld("v", "long"), fld("next", ["null", "t.Node"], default=None)),
        rec("Node", fld("v", "int"), fld("next", ["null", "Node"], default=None)),
    ),
}


@pytest.mark.parametrize("case", sorted(INCOMPATIBLE))
def test_checker_catches_incompatible_change(case: str) -> None:
    reader, writer, expected = INCOMPATIBLE[case]
    found = problems(reader, writer)
    assert any(expected in p for p in found), found
    assert not is_backward_compatible(reader, writer)


@pytest.mark.parametrize("case", sorted(COMPATIBLE))
def test_checker_accepts_compatible_change(case: str) -> None:
    reader, writer = COMPATIBLE[case]
    assert problems(reader, writer) == []


#: a record the writer side of each crafted case can write, to confront the checker with
#: what a real Avro reader (fastavro's schema resolution) does with the bytes
WRITER_DATA = {
    "added field without default": {"a": 1},
    "removed enum symbol, no default": {"c": "blue"},
    "string -> int": {"a": "x"},
    "long -> int (narrowing)": {"a": 1},
    "double -> float": {"a": 1.5},
    "nested record gains a required field": {"t": {"x": 1}},
    "record renamed without alias": {"t": {"x": 1}},
    "nullable -> required": {"a": None},
    "union loses a branch": {"a": 3},
    "array items change": {"xs": ["a"]},
    "map values change": {"m": {"k": 1}},
    "map -> array": {"m": {"k": 1}},
    "fixed size change": {"h": b"\x00" * 32},
    "enum in array loses symbol": {"cs": ["blue"]},
    "added field with default": {"a": 1},
    "removed field": {"a": 1, "b": "x"},
    "int -> long": {"a": 1},
    "int -> double": {"a": 1},
    "long -> float": {"a": 1},
    "float -> double": {"a": 1.5},
    "string -> bytes": {"a": "x"},
    "bytes -> string": {"a": b"x"},
    "required -> nullable": {"a": "x"},
    "int -> union with long (promotion into a branch)": {"a": 7},
    "enum gains symbol": {"c": "blue"},
    "enum loses symbol but has default": {"c": "blue"},
    "record renamed with alias": {"t": {"x": 1}},
    "field renamed with alias": {"text": "hi"},
    "named type referenced by name": {"a": {"x": 1}, "b": {"x": 2}},
    "logical type on the base type": {"ts": 5},
    "recursive type": {"v": 1, "next": {"v": 2, "next": None}},
}


@pytest.mark.parametrize("case", sorted(WRITER_DATA))
def test_checker_agrees_with_a_real_avro_reader(case: str) -> None:
    if case in INCOMPATIBLE:
        reader, writer, _ = INCOMPATIBLE[case]
    else:
        reader, writer = COMPATIBLE[case]
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(copy.deepcopy(writer)), WRITER_DATA[case])
    buf.seek(0)
    try:
        schemaless_reader(buf, parse_schema(copy.deepcopy(writer)),
                          parse_schema(copy.deepcopy(reader)))
        readable = True
    except Exception:
        readable = False
    assert readable == is_backward_compatible(reader, writer)


def test_contract_change_that_drops_a_default_is_caught() -> None:
    """A realistic mistake: making Outcome.error_kind required."""
    current = copy.deepcopy(contract().get("Outcome").expanded)
    for f in current["fields"]:
        if f["name"] == "error_kind":
            f["type"], _ = "string", f.pop("default")
    old = contract().history_by_name["Outcome"][0].expanded
    found = problems(current, old)
    assert found == [
        "Outcome.error_kind: field added without a default (old records do not have it)"
    ]
