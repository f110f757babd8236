"""Where each message goes: per physical topic its event type, tables and row buffers.

`Routing` maps the sink's topics to `Route`s; `Route.buffer` turns one message into the rows
of its tables (decoding in Python) or raises for a message that cannot become rows (the loop
dead-letters it). A route of a current single-object schema also has a fast path: its
messages' Avro bodies go to ClickHouse as one container (`consumers.avroblock`), with the
INSERT ... SELECT statements built here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from confluent_kafka import Message

from clawstream.kafka.deadletter import InvalidMessage
from clawstream.settings import Settings
from consumers.avroblock import (
    OFFSET_SQL,
    PARTITION_SQL,
    PRINCIPAL_SQL,
    BlockWriter,
    extended_schema,
    structure,
)
from consumers.tables import LATE_EVENTS, TABLES, RowError, TableSpec, late_row, primary_spec
from schemas.headers import PRINCIPAL
from schemas.registry import contract
from schemas.serde import SOE_MAGIC, Serde
from schemas.topics import DERIVED_TOPICS, EVENT_TOPICS, LATE, TOPICS

#: route type of claw.late.v1: original events of any type, landed in `late_events` with the
#: windows they missed (from the headers); always decoded in Python
LATE_ROUTE = "late"
#: what a row function raises for a record it cannot use
_ROW_ERRORS = (RowError, KeyError, TypeError, ValueError, AttributeError)


def default_topics() -> list[str]:
    """Logical topics the sink reads: every event topic, derived ones that have tables, and
    the late side output."""
    out = list(EVENT_TOPICS)
    for name in DERIVED_TOPICS:
        schema = TOPICS[name].schema
        if schema and contract().get(schema).event_type in TABLES:
            out.append(name)
    out.append(LATE)
    return out


def _event_type_of_topic(logical: str) -> str | None:
    schema = TOPICS[logical].schema if logical in TOPICS else None
    return contract().get(schema).event_type if schema else None


def principal_of(msg: Message) -> bytes | None:
    """The message's `clawstream.principal` header (who sent it through the gateway)."""
    headers = msg.headers()
    if not headers:
        return None
    for header in headers:
        if header[0] == PRINCIPAL:
            return cast(bytes | None, header[1])
    return None


class Route:
    """Per physical topic: the expected event type, its tables' row buffers, and the fast
    path's container writer (None when the fast path does not apply)."""

    __slots__ = ("buffers", "event_type", "fast", "fast_header", "fast_msgs", "fast_sql",
                 "specs", "topic")

    def __init__(self, topic: str, event_type: str, specs: Sequence[TableSpec],
                 buffers: dict[str, list[Any]], fast: bool) -> None:
        self.topic = topic
        self.event_type = event_type
        self.specs = tuple((s, buffers[s.table]) for s in specs)
        self.fast: BlockWriter | None = None
        self.fast_header = b""
        self.fast_msgs: list[Message] = []
        self.fast_sql: list[tuple[TableSpec, str]] = []
        if fast and all(s.select is not None for s in specs):
            schema = contract().get(event_type)
            ext = extended_schema(schema.expanded)
            self.fast = BlockWriter(ext)
            self.fast_header = SOE_MAGIC + schema.fingerprint
            literal = "'" + topic.replace("\\", "\\\\").replace("'", "\\'") + "'"
            struct_sql = structure(ext)
            for spec in specs:
                assert spec.select is not None
                exprs = ", ".join(e.replace("{topic}", literal).replace("{offset}", OFFSET_SQL)
                                  .replace("{partition}", PARTITION_SQL)
                                  .replace("{principal}", PRINCIPAL_SQL) for e in spec.select)
                self.fast_sql.append((spec, (
                    f"INSERT INTO {spec.table} ({', '.join(spec.columns)}) SELECT {exprs} "
                    f"FROM file('{{path}}', 'Avro', '{struct_sql}') {spec.array_join}"
                ).strip()))

    @property
    def primary(self) -> TableSpec | None:
        """The table holding one row per message (whose Kafka offsets tell where the topic's
        rows stand)."""
        return LATE_EVENTS if self.event_type == LATE_ROUTE else primary_spec(self.event_type)

    def buffer(self, msg: Message, serde: Serde, buffers: dict[str, list[Any]]) -> int:
        """Decode one message in Python and append its rows to `buffers` (by table); the
        number of rows. Raises DecodeError (undecodable, wrong type for the topic) or
        InvalidMessage (a record that cannot become rows)."""
        topic, partition, offset = self.topic, msg.partition() or 0, msg.offset() or 0
        late = self.event_type == LATE_ROUTE
        record = (serde.decode(msg.value()) if late
                  else serde.decode_as(msg.value(), (self.event_type,), topic))
        rec = record.record
        try:
            if late:
                headers = cast(list[tuple[str, bytes | None]] | None, msg.headers())
                built = [(LATE_EVENTS.table, late_row(rec, record.schema.event_type,
                                                      headers, topic, partition, offset),
                          False)]
            else:
                who = (principal_of(msg) or b"").decode("utf-8", "replace")
                built = [(spec.table, spec.make(rec, topic, partition, offset, who), spec.multi)
                         for spec, _buf in self.specs]
        except _ROW_ERRORS as exc:
            raise InvalidMessage("invalid-record", f"{type(exc).__name__}: {exc}") from exc
        rows = 0
        for table, made, multi in built:
            buf = buffers.setdefault(table, [])
            if multi:
                buf.extend(made)
                rows += len(made)
            else:
                buf.append(made)
                rows += 1
        return rows


class Routing:
    """The sink's routes by physical topic, every table's spec and row buffer, and the order
    of inserts: secondary (multi-row) tables first, so a primary row implies all rows are in."""

    def __init__(self, settings: Settings, topics: Iterable[str] | None = None, *,
                 fast_path: bool = True) -> None:
        self.routes: dict[str, Route] = {}
        self.buffers: dict[str, list[Any]] = {}
        self.specs: dict[str, TableSpec] = {}
        for name in list(topics) if topics else default_topics():
            specs: tuple[TableSpec, ...]
            if name == LATE:
                et, specs = LATE_ROUTE, (LATE_EVENTS,)
            else:
                found = _event_type_of_topic(name)
                if found is None or found not in TABLES:
                    raise ValueError(
                        f"topic {name!r} has no ClickHouse table (consumers/tables/)")
                et, specs = found, TABLES[found]
            for spec in specs:
                self.buffers.setdefault(spec.table, [])
                self.specs[spec.table] = spec
            self.routes[settings.topic(name)] = Route(
                settings.topic(name), et, specs, self.buffers,
                fast=fast_path and settings.is_embedded_clickhouse and et != LATE_ROUTE)
        self.insert_order = sorted(self.specs.values(), key=lambda s: s.primary)

    def primary_of(self, topic: str) -> TableSpec | None:
        """The table holding one row per message of `topic` (where its offsets are)."""
        route = self.routes.get(topic)
        return route.primary if route else None
