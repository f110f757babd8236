"""ClickHouse access for every component: connect, migrate, query.

- `client`: `connect(settings)` gives a clickhouse-connect client (chdb embedded or an http
  server) with the database created and selected; `run_query(client, sql)` runs one read.
- `migrations`: `migrate(client)` applies the versioned SQL files `infra/clickhouse/NNN_name.sql`
  in order and records them in `schema_migrations`; the same files run on chdb and on a server,
  rendered for a cluster (`cluster`: Replicated + Distributed tables, ON CLUSTER) when the
  settings name one.
- `access`: `query(settings, sql, parameters)` is what CLIs, reports and tests call, wherever
  ClickHouse lives; `reader(settings)` for many queries in a row.
- `owner`: chdb lets only one process open a data directory, so the long-running owner (the
  sink) claims it (a lock, and `<dir>-owner.json`) and serves it to other processes
  (`ChdbOwner`), a second sink included.
- `endpoint`: the owner's loopback endpoint, ClickHouse's HTTP interface served from the
  engine (clients use clickhouse-connect's `http://` client); `users`: who may use it, as what.

Read convention: raw tables are ReplacingMergeTree keyed by event_id, so a redelivered row may
exist physically until a merge. `query()` runs with the ClickHouse setting `final=1`, which
applies FINAL to every table that supports it: readers never see a row twice. Anyone querying
ClickHouse another way (Grafana, clickhouse-client) sets `final=1` or writes `FINAL`.
"""

from consumers.clickhouse.access import local_client, query, reader
from consumers.clickhouse.client import (
    READ_SETTINGS,
    ClickHouseUnavailable,
    QueryError,
    QueryResult,
    chdb_path,
    connect,
    lock_holder,
    run_query,
)
from consumers.clickhouse.migrations import (
    MIGRATIONS_DIR,
    MIGRATIONS_TABLE_DDL,
    Migration,
    applied_versions,
    discover,
    layout_of,
    migrate,
    render,
    split_statements,
)
from consumers.clickhouse.owner import (
    ChdbOwner,
    announce_owner,
    claimed_here,
    find_owner,
    local_engine,
    owner_file,
    owner_pid,
    withdraw_owner,
)

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATIONS_TABLE_DDL",
    "READ_SETTINGS",
    "ChdbOwner",
    "ClickHouseUnavailable",
    "Migration",
    "QueryError",
    "QueryResult",
    "announce_owner",
    "applied_versions",
    "chdb_path",
    "claimed_here",
    "connect",
    "discover",
    "find_owner",
    "layout_of",
    "local_client",
    "local_engine",
    "lock_holder",
    "migrate",
    "owner_file",
    "owner_pid",
    "query",
    "reader",
    "render",
    "run_query",
    "split_statements",
    "withdraw_owner",
]
