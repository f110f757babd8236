"""Schema evolution: every current schema reads the data of its previous versions, old
records decode into today's shape with the defaults filled in, and the `schemas` CLI checks
and freezes history (the checker against crafted changes: test_compat_checker.py)."""

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
from schemas.compat import check_backward
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
