"""Loads the `.avsc` contract once and indexes it by name, event type and fingerprint.

Shared named types (Envelope, BBox) live in their own files and are referenced by name from
the event schemas, so the envelope is defined exactly once.
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from schemas.topics import EVENT_TYPE_BY_SCHEMA, TOPIC_BY_SCHEMA

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
HISTORY_DIR = Path(__file__).resolve().parent / "history"
NAMESPACE = "clawstream.v1"
#: Named types other schemas refer to, in dependency order.
SHARED_TYPES = ("Envelope", "BBox")
#: Every event record, by short name.
EVENT_SCHEMAS = (
    "ScreenFrame",
    "Detection",
    "Plan",
    "Action",
    "Outcome",
    "Heartbeat",
    "StateDelta",
    "WindowAggregate",
    "AgentState",
    "Alert",
    "Session",
)

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64-AVRO fingerprint of the Avro specification."""
    fp = _CRC64_EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def fingerprint_bytes(canonical_form: str) -> bytes:
    """The 8-byte little-endian fingerprint used by single-object encoding."""
    return struct.pack("<Q", crc64_avro(canonical_form.encode("utf-8")))


#: Logical types read as their plain Avro type: timestamps stay epoch-millis ints and UUIDs
#: stay strings, which is what every consumer (windows, sink, CRDTs) works with.
_PLAIN_LOGICAL_TYPES = ("timestamp-millis", "timestamp-micros", "uuid")


def _strip_timestamp_logical_types(schema: Any) -> Any:
    """A reader copy that keeps timestamps as epoch-millis ints and UUIDs as strings."""
    if isinstance(schema, dict):
        out = {k: _strip_timestamp_logical_types(v) for k, v in schema.items()}
        if out.get("logicalType") in _PLAIN_LOGICAL_TYPES:
            out.pop("logicalType")
        return out
    if isinstance(schema, list):
        return [_strip_timestamp_logical_types(s) for s in schema]
    return schema


@dataclass(frozen=True)
class EventSchema:
    """One event record of the contract, ready for fastavro."""

    name: str  # short name, e.g. "Action"
    full_name: str  # e.g. "clawstream.v1.Action"
    event_type: str  # e.g. "action"
    topic: str | None  # logical topic name (without namespace)
    expanded: dict[str, Any]  # self-contained schema JSON (named types inlined)
    writer: Any  # fastavro parsed schema used to write
    reader: Any  # fastavro parsed schema used to read (timestamps stay ints)
    canonical: str  # Avro parsing canonical form
    fingerprint: bytes  # CRC-64-AVRO, 8 bytes little-endian


def load_json(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a JSON object (an Avro named type)")
    return loaded


def expand(raw: dict[str, Any], shared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Inline named references to the shared types, giving a self-contained schema."""
    named: dict[str, Any] = {}
    for schema in shared.values():
        fastavro.parse_schema(schema, named_schemas=named)
    expanded = fastavro.parse_schema(copy.deepcopy(raw), named_schemas=named, expand=True)
    if not isinstance(expanded, dict):  # a record schema expands to a record schema
        raise ValueError(f"{raw.get('name')}: expanded to {type(expanded).__name__}, not a record")
    return expanded


def build(raw: dict[str, Any], shared: dict[str, dict[str, Any]]) -> EventSchema:
    """Make an EventSchema from a raw record schema and the shared named types."""
    expanded = expand(raw, shared)
    full_name = expanded["name"]
    writer = fastavro.parse_schema(copy.deepcopy(expanded))
    reader = fastavro.parse_schema(_strip_timestamp_logical_types(copy.deepcopy(expanded)))
    canonical = to_parsing_canonical_form(writer)
    return EventSchema(
        name=full_name.rsplit(".", 1)[-1],
        full_name=full_name,
        event_type=EVENT_TYPE_BY_SCHEMA[full_name],
        topic=TOPIC_BY_SCHEMA.get(full_name),
        expanded=expanded,
        writer=writer,
        reader=reader,
        canonical=canonical,
        fingerprint=fingerprint_bytes(canonical),
    )


@dataclass(frozen=True)
class HistoricSchema:
    """A previous version of an event schema (schemas/history/<Name>.v<N>.avsc).

    Data written with it still decodes: it is the writer schema, the current one the reader.
    """

    name: str  # short name of the event schema, e.g. "Outcome"
    version: int
    path: Path
    expanded: dict[str, Any]  # self-contained schema JSON as stored
    writer: Any  # fastavro parsed, timestamps/UUIDs plain, to read old bytes
    canonical: str
    fingerprint: bytes
    current: EventSchema  # what old records are resolved into


@dataclass(frozen=True)
class Contract:
    """All event schemas, indexed for the serde's lookups."""

    by_name: dict[str, EventSchema]
    by_event_type: dict[str, EventSchema]
    by_fingerprint: dict[bytes, EventSchema]
    #: previous versions by fingerprint (older single-object data) and by short name, oldest first
    history_by_fingerprint: dict[bytes, HistoricSchema] = field(default_factory=dict)
    history_by_name: dict[str, list[HistoricSchema]] = field(default_factory=dict)

    def get(self, key: str) -> EventSchema:
        """Look up by short name ("Action"), full name or event type ("action")."""
        found = (
            self.by_name.get(key)
            or self.by_event_type.get(key)
            or self.by_name.get(key.rsplit(".", 1)[-1])
        )
        if found is None:
            raise KeyError(f"unknown event schema {key!r}; known: {sorted(self.by_name)}")
        return found


def load_shared(schema_dir: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {name: load_json(schema_dir / f"{name}.avsc") for name in SHARED_TYPES}


def history_version(path: Path) -> tuple[str, int]:
    """("Outcome", 1) for history/Outcome.v1.avsc."""
    name, _, rest = path.name.partition(".v")
    version = rest.removesuffix(".avsc")
    if not name or not version.isdigit():
        raise ValueError(f"history file {path.name!r} is not named <Name>.v<N>.avsc")
    return name, int(version)


def load_history(
    current: dict[str, EventSchema], history_dir: Path = HISTORY_DIR
) -> list[HistoricSchema]:
    """Every previous version in `history_dir`, oldest first per schema."""
    out: list[HistoricSchema] = []
    found = history_dir.glob("*.v*.avsc") if history_dir.is_dir() else []
    paths = sorted(found, key=history_version)
    for path in paths:
        name, version = history_version(path)
        if name not in current:
            raise ValueError(f"{path.name}: no current schema named {name!r}")
        expanded = load_json(path)
        writer = fastavro.parse_schema(_strip_timestamp_logical_types(copy.deepcopy(expanded)))
        canonical = to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(expanded)))
        if expanded.get("name", "").rsplit(".", 1)[-1] != name:
            raise ValueError(f"{path.name}: record is named {expanded.get('name')!r}")
        out.append(
            HistoricSchema(
                name=name,
                version=version,
                path=path,
                expanded=expanded,
                writer=writer,
                canonical=canonical,
                fingerprint=fingerprint_bytes(canonical),
                current=current[name],
            )
        )
    return out


def make_contract(schemas: list[EventSchema], history: list[HistoricSchema]) -> Contract:
    by_fp = {s.fingerprint: s for s in schemas}
    hist_by_name: dict[str, list[HistoricSchema]] = {}
    for h in history:
        hist_by_name.setdefault(h.name, []).append(h)
    return Contract(
        by_name={s.name: s for s in schemas},
        by_event_type={s.event_type: s for s in schemas},
        by_fingerprint=by_fp,
        # a history file identical to the current schema adds nothing to decode
        history_by_fingerprint={h.fingerprint: h for h in history if h.fingerprint not in by_fp},
        history_by_name=hist_by_name,
    )


@lru_cache(maxsize=1)
def contract() -> Contract:
    """The current contract and its history, loaded once per process."""
    shared = load_shared()
    schemas = [build(load_json(SCHEMA_DIR / f"{n}.avsc"), shared) for n in EVENT_SCHEMAS]
    return make_contract(schemas, load_history({s.name: s for s in schemas}))
