"""Avro serde for the contract, in the two standard wire formats.

- Single-object encoding (Avro spec): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body,
  resolved against the local `.avsc` files. Written when no schema registry is configured.
  Data written with a previous version of a schema (schemas/history/) still decodes: the old
  schema is the writer, the current one the reader, so records come out in today's shape.
- Confluent framing: ``00`` + 4-byte big-endian schema id + body, ids from a
  Confluent-compatible schema registry. Written when one is configured; on read the registry's
  schema for the id is the writer and the local current schema the reader.

Readers accept both and raise `DecodeError` (with a reason fit for the DLQ) for anything else.
Reasons: empty, truncated, bad-magic, unknown-fingerprint, no-registry, unknown-schema-id,
corrupt-body, trailing-bytes.
"""

from __future__ import annotations

import copy
import io
import os
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import fastavro
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from schemas.codegen import Encoder, Unsupported, compile_encoder
from schemas.registry import (
    Contract,
    EventSchema,
    _strip_timestamp_logical_types,
    contract,
    fingerprint_bytes,
)

SOE_MAGIC = b"\xc3\x01"
SOE_HEADER_LEN = 10
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LEN = 5
_CONFLUENT_HEADER = struct.Struct(">bI")
_MISSING: Any = object()

if TYPE_CHECKING:
    from schemas._avro import Node


class _CompiledAvro(Protocol):
    """What this module uses of `schemas._avro` (whose types are in schemas/_avro.pyi)."""

    @property
    def Unsupported(self) -> type[Exception]: ...  # (the module's exception class)
    def compile_reader(self, schema: dict[str, Any], /) -> Node: ...
    def compile_writer(self, schema: dict[str, Any], skip_fields: int = 0, /) -> Node: ...
    def decode(self, plan: Node, data: bytes, offset: int, /) -> dict[str, Any]: ...
    def check(self, plan: Node, data: bytes, offset: int, capture: int, /) -> Any: ...
    def encode_record(self, header: bytes, plan: Node, record: Any, /) -> bytes: ...


def _compiled_avro() -> _CompiledAvro | None:
    """The compiled module, or None: not built, or CLAWSTREAM_NO_ACCEL=1."""
    if os.environ.get("CLAWSTREAM_NO_ACCEL", "") not in ("", "0"):
        return None
    try:
        from schemas import _avro as compiled
    except ImportError:
        return None
    return compiled


#: The optional compiled reader and writer (schemas/_avro.pyx, built at install when
#: possible; the same records and bytes as fastavro, several times faster);
#: CLAWSTREAM_NO_ACCEL=1 keeps fastavro and the generated Python encoders.
_avro = _compiled_avro()


class DecodeError(ValueError):
    """Bytes that are not a clawstream event; `reason` is short and machine-friendly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A record that does not match its schema."""


class SchemaIdResolver(Protocol):
    """What the serde needs from a schema registry (see schemas.registry_client)."""

    def id_for(self, subject: str, schema: EventSchema) -> int: ...

    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


class Decoded(NamedTuple):
    """One decoded event (a named tuple: one is made per consumed event, and a frozen
    dataclass's __init__ cost a third of a compiled decode)."""

    schema: EventSchema
    record: dict[str, Any]
    wire_format: str  # "single-object" | "confluent"


@dataclass(frozen=True)
class _Writer:
    """How to read bytes written with some schema into the current one."""

    schema: EventSchema  # the current schema the record is resolved into
    writer: Any  # parsed writer schema (plain logical types)
    reader: Any | None  # parsed reader schema, None when writer == current


def _build_once(cache: dict[str, Any], schema: EventSchema,
                build: Callable[[dict[str, Any]], Any],
                unsupported: type[Exception], source: dict[str, Any]) -> Any:
    """`build(source)`, kept in `cache` under the schema's name; None (kept too) when the
    schema has a shape `build` does not handle, so the caller takes the next path."""
    try:
        built = build(source)
    except unsupported:
        built = None
    cache[schema.full_name] = built
    return built


def _agent_id_is_leaf_1(schema: EventSchema) -> bool:
    """Whether the body starts with the envelope, whose first two fields are event_id (one
    value) and agent_id (a string): then agent_id is the second value in the bytes."""
    fields = schema.expanded.get("fields") or []
    if not fields or fields[0].get("name") != "envelope":
        return False
    env = fields[0].get("type")
    if not isinstance(env, dict) or env.get("type") != "record":
        return False
    head = env.get("fields") or []
    if len(head) < 2 or [f.get("name") for f in head[:2]] != ["event_id", "agent_id"]:
        return False
    first, second = head[0].get("type"), head[1].get("type")
    first = first.get("type") if isinstance(first, dict) else first
    return first in ("string", "long", "int") and second == "string"


class Serde:
    """Encodes and decodes contract events; one instance per process is enough (thread-safe)."""

    def __init__(
        self, registry: SchemaIdResolver | None = None, contract_: Contract | None = None
    ) -> None:
        self.contract = contract_ or contract()
        self.registry = registry
        self._by_registry_id: dict[int, _Writer] = {}
        self._ids: dict[tuple[str, str], bytes] = {}  # (subject, schema name) -> header
        self._lock = threading.Lock()
        # generated encoders (schemas.codegen), same bytes as fastavro; built on first use
        self._fast: dict[str, Encoder | None] = {}
        # compiled readers and writers (schemas._avro) of current schemas; built on first use
        self._plans: dict[str, Any] = {}
        # schema name -> its envelope's agent_id is leaf 1 of the body (`identify`)
        self._agent_leaf: dict[str, bool] = {}
        self._writers: dict[str, Any] = {}
        # every key contract().get() accepts, resolved once: encode() is on the hot path
        self._kinds: dict[str, EventSchema] = {}
        for s in self.contract.by_name.values():
            for key in (s.name, s.full_name, s.event_type):
                self._kinds[key] = s
        self._by_fingerprint: dict[bytes, _Writer] = {
            fp: _Writer(h.current, h.writer, h.current.reader)
            for fp, h in self.contract.history_by_fingerprint.items()
        }
        for fp, s in self.contract.by_fingerprint.items():
            self._by_fingerprint[fp] = _Writer(s, s.reader, None)

    @classmethod
    def for_registry(cls, url: str | None) -> Serde:
        """Confluent framing through the schema registry at `url`; single-object encoding when
        there is none (None or empty), as with `schema_registry_url` unset."""
        if not url:
            return cls()
        from schemas.registry_client import RegistryClient

        return cls(registry=RegistryClient(url))

    @property
    def wire_format(self) -> str:
        return "single-object" if self.registry is None else "confluent"

    # -- encoding -----------------------------------------------------------------------------
    def schema(self, kind: str | EventSchema) -> EventSchema:
        if isinstance(kind, EventSchema):
            return kind
        found = self._kinds.get(kind)
        return found if found is not None else self.contract.get(kind)

    def header(self, schema: EventSchema, topic: str = "") -> bytes:
        """The wire-format prefix for `schema` (registers it on first use with a registry)."""
        if self.registry is None:
            return SOE_MAGIC + schema.fingerprint
        subject = f"{topic or schema.topic}-value"
        key = (subject, schema.full_name)
        header = self._ids.get(key)
        if header is None:
            schema_id = self.registry.id_for(subject, schema)
            header = _CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id)
            self._ids[key] = header
        return header

    def encode(self, kind: str | EventSchema, record: dict[str, Any], topic: str = "") -> bytes:
        """Encode `record` as event `kind` (short name, full name or event type).

        `topic` (the physical topic) names the registry subject `<topic>-value`; it is unused
        in single-object encoding.
        """
        if isinstance(kind, EventSchema):
            schema = kind
        else:
            known = self._kinds.get(kind)
            schema = known if known is not None else self.contract.get(kind)  # a clear KeyError
        header = self.header(schema, topic)
        if _avro is not None:
            plan = self._writers.get(schema.full_name, _MISSING)
            if plan is _MISSING:
                plan = _build_once(self._writers, schema, _avro.compile_writer,
                                   _avro.Unsupported, schema.expanded)
            if plan is not None:
                try:
                    out: bytes = _avro.encode_record(header, plan, record)
                    return out
                except Exception:  # the generated encoder or fastavro below writes it,
                    pass  # or names the problem
        fast = self._fast.get(schema.full_name, _MISSING)
        if fast is _MISSING:
            fast = _build_once(self._fast, schema, compile_encoder, Unsupported,
                               schema.expanded)
        if fast is not None:
            buf = bytearray(header)
            try:
                fast(record, buf)
                return bytes(buf)
            except Exception:  # fastavro below writes it, or names the problem
                pass
        out_io = io.BytesIO()
        out_io.write(header)
        try:
            schemaless_writer(out_io, schema.writer, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{schema.name}: {type(exc).__name__}: {exc}") from exc
        return out_io.getvalue()

    # -- decoding -----------------------------------------------------------------------------
    def decode_as(self, data: bytes | None, event_types: Collection[str],
                  where: str) -> Decoded:
        """Decode a message read from `where` (a topic), which carries only `event_types`;
        DecodeError "wrong-topic" for an event of another type (the one check every reader
        makes before using a record)."""
        decoded = self.decode(data)
        if decoded.schema.event_type not in event_types:
            raise DecodeError("wrong-topic", f"{decoded.schema.name} event on {where}, which "
                              f"carries {', '.join(sorted(event_types))} events")
        return decoded

    def decode(self, data: bytes | None) -> Decoded:
        """Decode either wire format; raise DecodeError naming why not."""
        if not data:
            raise DecodeError("empty", "message has no value")
        if data[:2] == SOE_MAGIC:
            if len(data) < SOE_HEADER_LEN:
                raise DecodeError(
                    "truncated", f"single-object header needs 10 bytes, got {len(data)}"
                )
            fp = bytes(data[2:SOE_HEADER_LEN])
            w = self._by_fingerprint.get(fp)
            if w is None:
                raise DecodeError(
                    "unknown-fingerprint",
                    f"no current or historic schema has fingerprint {fp.hex()} "
                    f"(known: {len(self._by_fingerprint)})",
                )
            return Decoded(w.schema, self._read(w, data, SOE_HEADER_LEN), "single-object")
        if data[0] == CONFLUENT_MAGIC:
            if len(data) < CONFLUENT_HEADER_LEN:
                raise DecodeError(
                    "truncated", f"Confluent header needs 5 bytes, got {len(data)}"
                )
            (schema_id,) = struct.unpack_from(">I", data, 1)
            w = self._writer_for_id(schema_id)
            return Decoded(w.schema, self._read(w, data, CONFLUENT_HEADER_LEN), "confluent")
        raise DecodeError(
            "bad-magic",
            f"first bytes {bytes(data[:2]).hex()} are neither Avro single-object (c301) "
            "nor Confluent framing (00 + schema id)",
        )

    def identify(self, data: bytes) -> tuple[EventSchema, str]:
        """The schema of an event and its envelope's agent_id, when `decode` would read it
        (DecodeError as `decode` otherwise): what the ingest gateway needs of each item. The
        compiled module checks the bytes without building the record; anything it does not
        pass (or cannot check: Confluent framing, a historic writer) is decoded whole."""
        if _avro is not None and data[:2] == SOE_MAGIC and len(data) >= SOE_HEADER_LEN:
            w = self._by_fingerprint.get(data[2:SOE_HEADER_LEN])
            if w is not None and w.reader is None:
                schema = w.schema
                plan = self._plans.get(schema.full_name, _MISSING)
                if plan is _MISSING:
                    plan = self._reader_plan(schema)
                leaf = self._agent_leaf.get(schema.full_name)
                if leaf is None:
                    leaf = self._agent_leaf[schema.full_name] = _agent_id_is_leaf_1(schema)
                if plan is not None and leaf:
                    try:
                        agent_id: str = _avro.check(plan, data, SOE_HEADER_LEN, 1)
                        return schema, agent_id
                    except Exception:  # decode below reads it, or names the problem
                        pass
        decoded = self.decode(data)
        return decoded.schema, decoded.record["envelope"]["agent_id"]

    def _read(self, w: _Writer, data: bytes, offset: int) -> dict[str, Any]:
        if w.reader is None and _avro is not None:  # no schema resolution to do
            plan = self._plans.get(w.schema.full_name, _MISSING)
            if plan is _MISSING:
                plan = self._reader_plan(w.schema)
            if plan is not None:
                try:
                    record: dict[str, Any] = _avro.decode(plan, data, offset)
                    return record
                except Exception:  # fastavro below reads it, or names the problem
                    pass
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            decoded = schemaless_reader(buf, w.writer, w.reader)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise DecodeError(
                "corrupt-body", f"{w.schema.name}: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(data):
            raise DecodeError(
                "trailing-bytes",
                f"{w.schema.name}: {len(data) - buf.tell()} bytes after the record",
            )
        if not isinstance(decoded, dict):
            raise DecodeError("corrupt-body", f"{w.schema.name}: decoded to {type(decoded)}")
        return decoded

    def _reader_plan(self, schema: EventSchema) -> Any:
        """The compiled reader of a current schema (built on first use, None if unsupported
        or the compiled module is not there)."""
        if _avro is None:
            return None
        return _build_once(self._plans, schema, _avro.compile_reader, _avro.Unsupported,
                           _strip_timestamp_logical_types(schema.expanded))

    def _writer_for_id(self, schema_id: int) -> _Writer:
        cached = self._by_registry_id.get(schema_id)
        if cached is not None:
            return cached
        if self.registry is None:
            raise DecodeError(
                "no-registry",
                f"Confluent-framed message (schema id {schema_id}) but no schema registry is "
                "configured (CLAWSTREAM_SCHEMA_REGISTRY_URL)",
            )
        try:
            raw = self.registry.schema_for(schema_id)
        except Exception as exc:
            raise DecodeError(
                "unknown-schema-id", f"registry has no schema {schema_id}: {exc}"
            ) from exc
        name = raw.get("name", "") if isinstance(raw, dict) else ""
        if isinstance(raw, dict) and raw.get("namespace") and "." not in name:
            name = f"{raw['namespace']}.{name}"
        try:
            current = self.contract.get(name)
        except KeyError as exc:
            raise DecodeError(
                "unknown-schema-id", f"schema {schema_id} is {name!r}, not a clawstream event"
            ) from exc
        if current.full_name != name and current.name != name:
            raise DecodeError("unknown-schema-id", f"schema {schema_id} is {name!r}")
        try:
            writer = fastavro.parse_schema(_strip_timestamp_logical_types(copy.deepcopy(raw)))
            canonical = to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(raw)))
        except Exception as exc:
            raise DecodeError(
                "unknown-schema-id", f"schema {schema_id} does not parse: {exc}"
            ) from exc
        if fingerprint_bytes(canonical) == current.fingerprint:
            w = _Writer(current, current.reader, None)  # same schema: no resolution needed
        else:
            w = _Writer(current, writer, current.reader)
        with self._lock:
            self._by_registry_id[schema_id] = w
        return w
