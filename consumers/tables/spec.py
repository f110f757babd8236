"""What a ClickHouse table fed by one event type is: `TableSpec` (columns, a pure row
function, the fast path's SQL expressions), and the envelope and Kafka columns every table
starts and ends with.

Pure (no I/O). The sink calls `row(record, topic, partition, offset)` once per decoded message
and appends the result to a per-table list, then inserts column-oriented; row functions build
one flat tuple each (or a list of tuples for `multi` specs, e.g. one row per UI element), in
the order of `columns`. Timestamps stay epoch-millis ints (DateTime64(3) ticks) and event_id
is passed as its 128-bit int, which clickhouse-connect writes without parsing again.

"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

Record = dict[str, Any]
Row = tuple[Any, ...]
RowFunction = Callable[[Record, str, int, int], Any]

ENVELOPE_COLUMNS: tuple[str, ...] = (
    "event_id", "agent_id", "session_id", "trace_id", "parent_id", "event_time", "seq",
    "producer", "producer_version",
)
KAFKA_COLUMNS: tuple[str, ...] = ("kafka_topic", "kafka_partition", "kafka_offset")

#: DDL fragments for migrations of new tables (keep in step with the columns above).
ENVELOPE_DDL = """    event_id UUID,
    agent_id LowCardinality(String),
    session_id String,
    trace_id String,
    parent_id Nullable(String),
    event_time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    seq UInt64,
    producer LowCardinality(String),
    producer_version LowCardinality(String),"""
KAFKA_DDL = """    kafka_topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)"""


class RowError(ValueError):
    """A decoded record that cannot become a row (goes to the DLQ as invalid-record)."""


@dataclass(frozen=True)
class TableSpec:
    """One ClickHouse table fed by one event type.

    `primary` tables hold exactly one row per message; the sink reads their max Kafka offset
    per partition to resume after a crash. `multi` row functions return a list of rows.
    """

    table: str
    columns: tuple[str, ...]
    row: RowFunction
    multi: bool = False
    primary: bool = True
    #: optional fast path (consumers/avroblock.py): one SQL expression per column over the
    #: Avro record as ClickHouse reads it, `{topic}` standing for the topic literal
    select: tuple[str, ...] | None = None
    array_join: str = ""
    #: the last column is `principal` (who sent the event: `audited`), which the sink
    #: appends to each row from the message's header
    principal: bool = False

    def make(self, record: Record, topic: str, partition: int, offset: int,
             principal: str = "") -> Any:
        """The row (or rows, `multi`) of one message, in `columns` order: the row function's,
        and the principal for audited tables."""
        made = self.row(record, topic, partition, offset)
        if not self.principal:
            return made
        if self.multi:
            return [(*row, principal) for row in made]
        return (*made, principal)

    def __post_init__(self) -> None:
        if self.select is not None and len(self.select) != len(self.columns):
            raise ValueError(f"{self.table}: {len(self.select)} select expressions for "
                             f"{len(self.columns)} columns")


def event_id_int(event_id: str) -> int:
    """The UUID as a 128-bit int; rejects what ClickHouse's UUID column would reject."""
    if len(event_id) != 36:
        raise RowError(f"event_id {event_id[:60]!r} is not a UUID")
    try:
        return int(event_id.replace("-", ""), 16)
    except ValueError:
        raise RowError(f"event_id {event_id!r} is not a UUID") from None


def envelope_values(record: Record) -> Row:
    """The envelope columns of a record, in `ENVELOPE_COLUMNS` order."""
    e = record["envelope"]
    p = e["producer"]
    return (
        event_id_int(e["event_id"]), e["agent_id"], e["session_id"], e["trace_id"],
        e["parent_id"], e["event_time"], e["seq"], p["name"], p["version"],
    )


def columns_of(*typed: str) -> tuple[str, ...]:
    return ENVELOPE_COLUMNS + typed + KAFKA_COLUMNS


#: fast-path expressions for the envelope and Kafka columns (see `TableSpec.select`)
ENVELOPE_SELECT: tuple[str, ...] = (
    "toUUID(envelope.event_id)", "envelope.agent_id", "envelope.session_id",
    "envelope.trace_id", "envelope.parent_id",
    "fromUnixTimestamp64Milli(envelope.event_time, 'UTC')", "toUInt64(envelope.seq)",
    "envelope.producer.name", "envelope.producer.version",
)
KAFKA_SELECT: tuple[str, ...] = ("{topic}", "{partition}", "{offset}")


def select_of(*typed: str) -> tuple[str, ...]:
    return ENVELOPE_SELECT + typed + KAFKA_SELECT


#: the `principal` column (migration 060) and its fast-path expression
PRINCIPAL_COLUMN = "principal"
PRINCIPAL_SELECT = "{principal}"


def audited(spec: TableSpec) -> TableSpec:
    """`spec` with the `principal` column last (raw event tables: who sent each event)."""
    return replace(spec, columns=(*spec.columns, PRINCIPAL_COLUMN), principal=True,
                   select=None if spec.select is None else (*spec.select, PRINCIPAL_SELECT))


