"""Schema migrations: the versioned SQL files `infra/clickhouse/NNN_name.sql`, in order.

`migrate(client)` applies the files not yet recorded in `schema_migrations`; the same files
run on chdb and on a server. A file holds several statements and ClickHouse takes one per
query: sqlparse splits them (on `;` outside strings, quoted identifiers and comments,
ClickHouse's backslash escapes included) and drops the comments.

The files are written for one node; `render(layout)` gives the statements as they run, on one
node (`layout` None: the files as they are) or on a cluster (`consumers.clickhouse.cluster`).
`migrate(client, layout=...)` runs that rendering.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import sqlparse
from clickhouse_connect.driver.client import Client

from clawstream.settings import PROJECT_ROOT, Settings
from consumers.clickhouse.cluster import ClusterLayout, ClusterRendering

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "infra" / "clickhouse"
_MIGRATION_RE = re.compile(r"^(\d{3,})_([A-Za-z0-9_\-]+)\.sql$")

MIGRATIONS_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version UInt32, name String, statements UInt32,"
    " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
    ") ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text())


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script, without comments and trailing `;`."""
    out = []
    for part in sqlparse.split(sql, strip_semicolon=True):
        statement = sqlparse.format(part, strip_comments=True).strip().rstrip(";").strip()
        if statement:
            out.append(statement)
    return out


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for p in sorted(directory.glob("*.sql")):
        m = _MIGRATION_RE.match(p.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise ValueError(
                f"two migrations with version {version}: {found[version].path.name}, {p.name}"
            )
        found[version] = Migration(version, m.group(2), p)
    return [found[v] for v in sorted(found)]


def layout_of(settings: Settings) -> ClusterLayout | None:
    """The cluster the settings name (`CLAWSTREAM_CLICKHOUSE_CLUSTER`), or None: one node."""
    return ClusterLayout(cluster=settings.clickhouse_cluster) if settings.clickhouse_cluster \
        else None


def render(layout: ClusterLayout | None = None, directory: Path = MIGRATIONS_DIR
           ) -> list[tuple[Migration | None, list[str]]]:
    """Every statement as it runs, per migration in order, the bookkeeping table first (its
    migration None): the files as they are for one node (`layout` None), or their cluster
    rendering."""
    found = discover(directory)
    per_file: list[tuple[Migration | None, list[str]]] = [(None, [MIGRATIONS_TABLE_DDL])]
    per_file += [(mig, mig.statements()) for mig in found]
    if layout is None:
        return per_file
    cluster = ClusterRendering((s for _m, stmts in per_file for s in stmts), layout)
    return [(mig, [out for s in stmts for out in cluster.render(s)]) for mig, stmts in per_file]


def applied_versions(client: Client, bookkeeping: list[str] | None = None) -> set[int]:
    for statement in bookkeeping or [MIGRATIONS_TABLE_DDL]:
        client.command(statement)
    return {int(r[0]) for r in client.query("SELECT version FROM schema_migrations").result_rows}


def migrate(client: Client, directory: Path = MIGRATIONS_DIR, *,
            layout: ClusterLayout | None = None) -> list[int]:
    """Apply the migrations not yet recorded (rendered for `layout`: None is one node);
    return the versions applied now.

    Files are idempotent (`IF NOT EXISTS`), so a run interrupted half-way simply re-runs the
    file; the version is recorded only after all its statements succeeded.
    """
    rendered = render(layout, directory)
    done = applied_versions(client, rendered[0][1])
    applied: list[int] = []
    for mig, statements in rendered[1:]:
        assert mig is not None
        if mig.version in done:
            continue
        for stmt in statements:
            try:
                client.command(stmt)
            except Exception as exc:
                raise RuntimeError(
                    f"migration {mig.path.name} failed on: {stmt[:200]}...: {exc}"
                ) from exc
        client.insert(
            "schema_migrations",
            [[mig.version], [mig.name], [len(mig.statements())]],
            column_names=["version", "name", "statements"],
            column_oriented=True,
        )
        log.info("applied migration %s (%d statements)", mig.path.name, len(statements))
        applied.append(mig.version)
    return applied
