"""Avro serde for the contract, in the two standard wire formats.

- Single-object encoding (Avro spec): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body,
  resolved against the local `.avsc` files. Written when no schema registry is configured.
- Confluent framing: ``00`` + 4-byte big-endian schema id + body, ids from a
  Confluent-compatible schema registry. Written when one is configured.

Readers accept both and raise `DecodeError` (with a reason fit for the DLQ) for anything else.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer

from schemas.registry import Contract, EventSchema, contract

SOE_MAGIC = b"\xc3\x01"
SOE_HEADER_LEN = 10
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LEN = 5


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


@dataclass(frozen=True)
class Decoded:
    schema: EventSchema
    record: dict[str, Any]
    wire_format: str  # "single-object" | "confluent"


class Serde:
    """Encodes and decodes contract events; one instance per process is enough."""

    def __init__(
        self, registry: SchemaIdResolver | None = None, contract_: Contract | None = None
    ) -> None:
        self.contract = contract_ or contract()
        self.registry = registry
        self._by_registry_id: dict[int, EventSchema] = {}

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, kind: str | EventSchema, record: dict[str, Any], topic: str = "") -> bytes:
        """Encode `record` as event `kind` (short name, full name or event type)."""
        schema = kind if isinstance(kind, EventSchema) else self.contract.get(kind)
        buf = io.BytesIO()
        if self.registry is None:
            buf.write(SOE_MAGIC)
            buf.write(schema.fingerprint)
        else:
            subject = f"{topic or schema.topic}-value"
            schema_id = self.registry.id_for(subject, schema)
            buf.write(struct.pack(">bI", CONFLUENT_MAGIC, schema_id))
        try:
            schemaless_writer(buf, schema.writer, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"{schema.name}: {exc}") from exc
        return buf.getvalue()

    # -- decoding -----------------------------------------------------------------------------
    def decode(self, data: bytes | None) -> Decoded:
        """Decode either wire format; raise DecodeError naming why not."""
        if not data:
            raise DecodeError("empty", "message has no value")
        if data[:2] == SOE_MAGIC:
            if len(data) < SOE_HEADER_LEN:
                raise DecodeError("truncated", f"single-object header needs 10 bytes, got {len(data)}")
            fp = data[2:SOE_HEADER_LEN]
            schema = self.contract.by_fingerprint.get(fp)
            if schema is None:
                raise DecodeError("unknown-fingerprint", f"no local schema has fingerprint {fp.hex()}")
            return Decoded(schema, self._read(schema, data, SOE_HEADER_LEN), "single-object")
        if data[0] == CONFLUENT_MAGIC and len(data) >= CONFLUENT_HEADER_LEN:
            (schema_id,) = struct.unpack(">I", data[1:CONFLUENT_HEADER_LEN])
            schema = self._schema_for_id(schema_id)
            return Decoded(schema, self._read(schema, data, CONFLUENT_HEADER_LEN), "confluent")
        raise DecodeError(
            "bad-magic",
            f"first bytes {data[:2].hex()} are neither Avro single-object (c301) "
            "nor Confluent framing (00 + schema id)",
        )

    def _read(self, schema: EventSchema, data: bytes, offset: int) -> dict[str, Any]:
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            record = schemaless_reader(buf, schema.reader, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise DecodeError("corrupt-body", f"{schema.name}: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(
                "trailing-bytes", f"{schema.name}: {len(data) - buf.tell()} bytes after the record"
            )
        return record  # type: ignore[return-value]

    def _schema_for_id(self, schema_id: int) -> EventSchema:
        cached = self._by_registry_id.get(schema_id)
        if cached is not None:
            return cached
        if self.registry is None:
            raise DecodeError(
                "no-registry", f"Confluent-framed message (schema id {schema_id}) but no "
                "schema registry is configured (CLAWSTREAM_SCHEMA_REGISTRY_URL)"
            )
        try:
            raw = self.registry.schema_for(schema_id)
        except Exception as exc:
            raise DecodeError("unknown-schema-id", f"registry has no schema {schema_id}: {exc}") from exc
        name = raw.get("name", "") if isinstance(raw, dict) else ""
        try:
            schema = self.contract.get(name)
        except KeyError as exc:
            raise DecodeError("unknown-schema-id", f"schema {schema_id} is {name!r}, not ours") from exc
        self._by_registry_id[schema_id] = schema
        return schema
