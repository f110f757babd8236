"""Event type -> ClickHouse table(s): columns and a pure row function per table.

Pure (no I/O). `spec` says what a table spec is; `raw` holds the raw event types' tables,
`derived` those of the types the stream processors write. `TABLES` maps every event type to
its tables; the sink picks up every registered type's topic automatically.

Adding a derived type (aggregate, agent_state, alert, session): write its migration
`infra/clickhouse/NNN_<name>.sql` with the envelope columns (`ENVELOPE_DDL`), your typed
columns and `KAFKA_DDL`, write a row function in `derived.py` starting with
`envelope_values(record)` and ending with `(topic, partition, offset)`, and add its
`TableSpec` to `DERIVED_TABLES` there (or `register` it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consumers.tables.derived import (
    AGENT_STATE,
    ALERTS,
    DERIVED_TABLES,
    LATE_EVENTS,
    LATE_EVENTS_COLUMNS,
    SESSIONS,
    WINDOW_AGGREGATES,
    late_row,
)
from consumers.tables.raw import (
    ACTIONS,
    DETECTION_FRAMES,
    DETECTIONS,
    FRAMES,
    HEARTBEATS,
    OUTCOMES,
    PLANS,
    RAW_TABLES,
    STATE_DELTAS,
)
from consumers.tables.spec import (
    ENVELOPE_COLUMNS,
    ENVELOPE_DDL,
    KAFKA_COLUMNS,
    KAFKA_DDL,
    Record,
    Row,
    RowError,
    RowFunction,
    TableSpec,
    envelope_values,
    event_id_int,
)

#: event type -> its tables. Multi-row (secondary) tables come first: the sink inserts in
#: this order, so once a primary table holds a message, every table does.
TABLES: dict[str, tuple[TableSpec, ...]] = {**RAW_TABLES, **DERIVED_TABLES}


def register(*specs: TableSpec, event_type: str) -> None:
    """Add (or replace) the tables of an event type; primary specs go last."""
    TABLES[event_type] = tuple(sorted(specs, key=lambda s: s.primary))


def specs_for(event_type: str) -> tuple[TableSpec, ...]:
    return TABLES.get(event_type, ())


def all_specs() -> Iterable[TableSpec]:
    for specs in TABLES.values():
        yield from specs


def primary_spec(event_type: str) -> TableSpec | None:
    for spec in TABLES.get(event_type, ()):
        if spec.primary:
            return spec
    return None


def to_columns(rows: list[Row], width: int) -> list[tuple[Any, ...]]:
    """Transpose rows into columns for a column-oriented insert (zip runs in C)."""
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


__all__ = [
    "ACTIONS", "AGENT_STATE", "ALERTS", "DETECTIONS", "DETECTION_FRAMES", "ENVELOPE_COLUMNS",
    "ENVELOPE_DDL", "FRAMES", "HEARTBEATS", "KAFKA_COLUMNS", "KAFKA_DDL", "LATE_EVENTS",
    "LATE_EVENTS_COLUMNS", "OUTCOMES", "PLANS", "SESSIONS", "STATE_DELTAS", "TABLES",
    "WINDOW_AGGREGATES", "Record", "Row", "RowError", "RowFunction", "TableSpec",
    "all_specs", "envelope_values", "event_id_int", "late_row", "primary_spec", "register",
    "specs_for", "to_columns",
]
