"""A Confluent-compatible schema registry behind the serde's `SchemaIdResolver` protocol.

Uses confluent-kafka's own `SchemaRegistryClient` (REST, auth, retries), so the ids and the
`00 + id` framing the serde writes are the ones confluent-kafka's `AvroSerializer` /
`AvroDeserializer` and every other Confluent-framing client agree on. Ids and schemas are
cached here as well: the serde asks once per (subject, schema) and once per id.

I/O module: every method may talk HTTP to the registry on a cache miss.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas.registry import EventSchema


def _plain(schema: Any) -> Any:
    """Schema JSON without fastavro's bookkeeping keys (``__fastavro_parsed`` and friends)."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_plain(s) for s in schema]
    return schema


class RegistryClient:
    """Registers the contract's schemas under `<topic>-value` subjects and looks ids up."""

    def __init__(
        self, url: str, *, client: SchemaRegistryClient | None = None, **conf: Any
    ) -> None:
        self.url = url
        self.client = client or SchemaRegistryClient({"url": url, **conf})
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def schema_str(schema: EventSchema) -> str:
        """The self-contained schema text that is registered (named types inlined)."""
        return json.dumps(_plain(schema.expanded), separators=(",", ":"))

    def id_for(self, subject: str, schema: EventSchema) -> int:
        """The registry id of `schema` under `subject`, registering it if needed."""
        key = (subject, schema.canonical)
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(key)
            if found is None:
                found = self.client.register_schema(
                    subject, Schema(self.schema_str(schema), "AVRO")
                )
                self._ids[key] = found
        return found

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        """The writer schema registered under `schema_id`, as JSON."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        registered = self.client.get_schema(schema_id)
        if (registered.schema_type or "AVRO") != "AVRO":
            raise ValueError(f"schema {schema_id} is {registered.schema_type}, not AVRO")
        if registered.references:
            raise ValueError(f"schema {schema_id} uses references; clawstream registers none")
        if registered.schema_str is None:
            raise ValueError(f"schema {schema_id} came back without its text")
        parsed = json.loads(registered.schema_str)
        if not isinstance(parsed, dict):
            raise ValueError(f"schema {schema_id} is not an Avro record: {parsed!r:.80}")
        with self._lock:
            self._schemas[schema_id] = parsed
        return parsed
