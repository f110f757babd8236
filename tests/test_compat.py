"""Schema evolution: every current schema reads the data of its previous versions, the
checker catches incompatible changes (and agrees with what a real Avro reader does), and old
records decode into today's shape with the defaults filled in."""

from __future__ import annotations

import copy
import io
import json
import random
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest
from click.testing import CliRunner
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import cli as schemas_cli
from schemas.compat import check_backward, is_backward_compatible
from schemas.registry import (
    EVENT_SCHEMAS,
    SCHEMA_DIR,
    _strip_timestamp_logical_types,
    build,
    contract,
    history_version,
    load_history,
    load_json,
    load_shared,
    make_contract,
)
from schemas.samples import sample
from schemas.serde import Serde

HISTORY = [h for hs in contract().history_by_name.values() for h in hs]


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def problems(reader: Any, writer: Any) -> list[str]:
    return [str(p) for p in check_backward(reader, writer)]


# -- the real contract -----------------------------------------------------------------------


def test_there_is_history_to_check() -> None:
    names = {h.name for h in HISTORY}
    assert {"Outcome", "Action"} <= names and len(HISTORY) >= 5


@pytest.mark.parametrize("h", HISTORY, ids=lambda h: f"{h.name}.v{h.version}")
def test_current_schema_is_backward_compatible_with_history(h: Any) -> None:
    assert problems(h.current.expanded, h.expanded) == []


@pytest.mark.parametrize("h", HISTORY, ids=lambda h: f"{h.name}.v{h.version}")
def test_history_file_is_a_genuine_older_version(h: Any) -> None:
    assert h.path.name == f"{h.name}.v{h.version}.avsc"
    assert h.expanded["name"] == h.current.full_name
    assert h.fingerprint != h.current.fingerprint
    # self-contained: parses on its own, no named type from elsewhere
    parse_schema(copy.deepcopy(h.expanded), named_schemas={})
    old_fields = {f["name"] for f in h.expanded["fields"]}
    assert old_fields <= {f["name"] for f in h.current.expanded["fields"]}, "fields were removed"


def test_outcome_and_action_v1_lack_what_was_added_since() -> None:
    c = contract()
    outcome_v1 = c.history_by_name["Outcome"][0].expanded
    assert {f["name"] for f in outcome_v1["fields"]}.isdisjoint({"error_kind", "verification"})
    action_v1 = c.history_by_name["Action"][0].expanded
    target = next(f for f in action_v1["fields"] if f["name"] == "target")["type"]
    assert "element_kind" not in {f["name"] for f in target["fields"]}


def _old_record(h: Any, seed: int) -> dict[str, Any]:
    """A record as a v<N> producer wrote it: today's sample cut down to the old fields."""
    writer = parse_schema(_strip_timestamp_logical_types(copy.deepcopy(h.expanded)))
    current = sample(h.current.event_type, random.Random(seed))
    buf = io.BytesIO()
    schemaless_writer(buf, h.current.reader, current)
    buf.seek(0)
    # resolution old<-new drops the new fields and maps new enum symbols to the old default
    return schemaless_reader(buf, h.current.reader, writer)  # type: ignore[return-value]


def assert_contains(new: Any, old: Any, path: str) -> None:
    """`new` holds everything `old` held (nested records may have gained fields)."""
    if isinstance(old, dict):
        for k, v in old.items():
            assert_contains(new[k], v, f"{path}.{k}")
    elif isinstance(old, list):
        assert len(new) == len(old), path
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            assert_contains(a, b, f"{path}[{i}]")
    elif isinstance(old, float):
        assert new == pytest.approx(old, rel=1e-6), path
    else:
        assert new == old, path


@pytest.mark.parametrize("h", HISTORY, ids=lambda h: f"{h.name}.v{h.version}")
def test_old_single_object_records_decode_with_current_schema(h: Any) -> None:
    serde = Serde()
    for seed in range(5):
        old = _old_record(h, seed)
        buf = io.BytesIO()
        buf.write(b"\xc3\x01" + h.fingerprint)
        schemaless_writer(buf, h.writer, old)
        decoded = serde.decode(buf.getvalue())
        assert decoded.schema is h.current
        assert decoded.wire_format == "single-object"
        new_fields = {f["name"]: f for f in h.current.expanded["fields"]}
        for name, value in decoded.record.items():
            if name in old:
                assert_contains(value, old[name], name)
            else:
                assert value == new_fields[name]["default"], name


def test_old_outcome_gets_defaults_for_error_kind_and_verification() -> None:
    h = contract().history_by_name["Outcome"][0]
    old = _old_record(h, 1)
    old["status"] = "failure"
    body = io.BytesIO()
    # an independent writer (the Apache avro package) writes the v1 body
    avro.io.DatumWriter(avro.schema.parse(json.dumps(_strip_timestamp_logical_types(
        h.expanded)))).write(old, avro.io.BinaryEncoder(body))
    got = Serde().decode(b"\xc3\x01" + h.fingerprint + body.getvalue()).record
    assert got["error_kind"] is None and got["verification"] is None
    assert got["status"] == "failure" and got["action_id"] == old["action_id"]


def test_old_action_gets_null_element_kind() -> None:
    h = contract().history_by_name["Action"][0]
    old = _old_record(h, 2)
    assert "element_kind" not in old["target"]
    buf = io.BytesIO(b"\xc3\x01" + h.fingerprint)
    buf.seek(10)
    schemaless_writer(buf, h.writer, old)
    got = Serde().decode(buf.getvalue()).record
    assert got["target"]["element_kind"] is None
    assert got["target"]["label"] == old["target"]["label"]


NEW_KINDS = ("radio", "combobox", "slider", "tab", "menu_item", "link")


def _kind_enum(schema: dict[str, Any]) -> dict[str, Any]:
    elements = next(f for f in schema["fields"] if f["name"] == "elements")["type"]["items"]
    return next(f for f in elements["fields"] if f["name"] == "kind")["type"]


def test_element_kinds_grew_backward_compatibly() -> None:
    """Detection v2 -> current added element kinds at the end of the enum: today's reader
    reads every v2 record (the checker says so, and a real reader does), and a v2 reader that
    meets a new kind reads the enum default 'other' instead of failing."""
    c = contract()
    h = next(h for h in c.history_by_name["Detection"] if h.version == 2)
    old_symbols = _kind_enum(h.expanded)["symbols"]
    now = _kind_enum(h.current.expanded)
    assert now["symbols"][: len(old_symbols)] == old_symbols  # old symbols keep their index
    assert set(NEW_KINDS) <= set(now["symbols"]) and not set(NEW_KINDS) & set(old_symbols)
    assert _kind_enum(h.expanded)["default"] == now["default"] == "other"
    assert problems(h.current.expanded, h.expanded) == []
    # the same change without the enum default would break old readers (FORWARD): the
    # checker sees it when asked the other way round
    no_default = copy.deepcopy(h.expanded)
    del _kind_enum(no_default)["default"]
    assert any("lacks symbol" in p for p in problems(no_default, h.current.expanded))

    record = sample("detection", random.Random(7))
    record["elements"] = [dict(record["elements"][0], kind=k) for k in (*NEW_KINDS, "button")]
    buf = io.BytesIO()
    schemaless_writer(buf, h.current.writer, record)
    buf.seek(0)
    old_view = schemaless_reader(buf, h.current.reader, h.writer)
    assert [e["kind"] for e in old_view["elements"]] == ["other"] * len(NEW_KINDS) + ["button"]
    got = Serde().decode(Serde().encode("detection", record)).record
    assert [e["kind"] for e in got["elements"]] == [*NEW_KINDS, "button"]


def test_current_data_still_has_current_fingerprint_not_historic() -> None:
    serde = Serde()
    data = serde.encode("outcome", sample("outcome", random.Random(3)))
    assert data[2:10] == contract().get("outcome").fingerprint


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


# -- the CLI and the history loader ----------------------------------------------------------


def test_cli_check_passes_on_the_contract() -> None:
    result = CliRunner().invoke(schemas_cli.schemas, ["check"])
    assert result.exit_code == 0, result.output
    assert "ok            Outcome v1 -> current" in result.output


def test_cli_check_fails_on_an_incompatible_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = load_shared()
    current = [build(load_json(SCHEMA_DIR / f"{n}.avsc"), shared) for n in EVENT_SCHEMAS]
    # an "old" Heartbeat whose status was an int: today's string reader cannot read it
    old = copy.deepcopy(contract().get("Heartbeat").expanded)
    for f in old["fields"]:
        if f["name"] == "status":
            f["type"], f["default"] = "int", 0
    (tmp_path / "Heartbeat.v1.avsc").write_text(json.dumps(old))
    bad = make_contract(current, load_history({s.name: s for s in current}, tmp_path))
    monkeypatch.setattr(schemas_cli, "contract", lambda: bad)
    result = CliRunner().invoke(schemas_cli.schemas, ["check"])
    assert result.exit_code == 1
    assert "INCOMPATIBLE  Heartbeat v1 -> current" in result.output
    assert "Heartbeat.status: type changed from int to string" in result.output


def test_cli_show_prints_expanded_schema_and_fingerprint() -> None:
    result = CliRunner().invoke(schemas_cli.schemas, ["show", "action"])
    assert result.exit_code == 0, result.output
    s = contract().get("action")
    assert s.fingerprint.hex() in result.output
    assert '"name": "clawstream.v1.Envelope"' in result.output  # named types inlined
    bad = CliRunner().invoke(schemas_cli.schemas, ["show", "Nope"])
    assert bad.exit_code != 0 and "unknown event schema" in bad.output


def test_history_file_names_are_validated(tmp_path: Path) -> None:
    assert history_version(Path("Outcome.v12.avsc")) == ("Outcome", 12)
    with pytest.raises(ValueError, match=r"<Name>\.v<N>\.avsc"):
        history_version(Path("Outcome.old.avsc"))
    (tmp_path / "Nope.v1.avsc").write_text(json.dumps(contract().get("Action").expanded))
    with pytest.raises(ValueError, match="no current schema"):
        load_history(dict(contract().by_name), tmp_path)


def test_cli_freeze_records_the_next_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schemas.registry as registry

    hist = tmp_path / "history"
    monkeypatch.setattr(registry, "HISTORY_DIR", hist)
    old = load_json(SCHEMA_DIR / "Plan.avsc")
    old["fields"] = [f for f in old["fields"] if f["name"] != "planner"]
    src = tmp_path / "Plan.old.avsc"
    src.write_text(json.dumps(old))
    result = CliRunner().invoke(schemas_cli.schemas, ["freeze", "Plan", "--from", str(src)])
    assert result.exit_code == 0, result.output
    written = hist / "Plan.v1.avsc"
    assert written.exists()
    shared = load_shared()
    current = [build(load_json(SCHEMA_DIR / f"{n}.avsc"), shared) for n in EVENT_SCHEMAS]
    (h,) = load_history({s.name: s for s in current}, hist)
    assert h.name == "Plan" and h.version == 1
    assert "planner" not in {f["name"] for f in h.expanded["fields"]}
    assert '"__' not in written.read_text()
    assert problems(h.current.expanded, h.expanded) == []
