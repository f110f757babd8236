"""`clawstream sql` and `clawstream query NAME`: ClickHouse results as a table, JSON or CSV.

Both go through `consumers.clickhouse.query`, so they work against a ClickHouse server, against
the chdb directory owned by a running sink (through its endpoint), or open chdb themselves.
Canned queries live in `CANNED` (name -> SQL); more are added by the analytics work.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
import uuid
from decimal import Decimal
from typing import Any

import click

from clawstream.settings import get_settings

FORMATS = ("table", "json", "csv")

#: name -> (title, SQL); `summary` is what the demo prints.
CANNED: dict[str, list[tuple[str, str]]] = {
    "summary": [
        ("Events per type",
         "SELECT event_type, count() AS events, uniqExact(agent_id) AS agents "
         "FROM events GROUP BY event_type ORDER BY event_type"),
        ("Success rate per action kind",
         "SELECT action_kind, count() AS outcomes, countIf(status = 'success') AS successes, "
         "round(successes / outcomes, 4) AS success_rate "
         "FROM outcomes GROUP BY action_kind ORDER BY action_kind"),
        ("Outcome latency (ms)",
         "SELECT count() AS outcomes, round(quantile(0.5)(duration_ms), 1) AS p50_ms, "
         "round(quantile(0.95)(duration_ms), 1) AS p95_ms, "
         "round(quantile(0.99)(duration_ms), 1) AS p99_ms FROM outcomes"),
    ],
    # alerting engineer: incidents still open, then the latest lifecycle events
    "alerts": [
        ("Open incidents",
         "SELECT rule, severity, argMax(state, event_time) AS state, "
         "toString(any(labels)) AS labels, min(starts_at) AS since, "
         "argMax(value, event_time) AS value, incident_id "
         "FROM alerts GROUP BY rule, severity, fingerprint, incident_id "
         "HAVING state NOT IN ('resolved', 'inactive') ORDER BY since DESC LIMIT 100"),
        ("Latest alert events",
         "SELECT event_time, rule, state, severity, agent_id AS agent, "
         "labels['app'] AS app, round(value, 4) AS value, transition, incident_id "
         "FROM alerts ORDER BY event_time DESC LIMIT 50"),
    ],
    # CRDT engineer: latest merged state per agent (agent_id '*' is the fleet rollup first)
    "fleet-state": [
        ("Fleet state (merged CRDTs, latest version per agent)",
         "SELECT agent_id, version, actions_total, error_budget, status, current_task, "
         "length(replicas) AS replicas, "
         "arraySum(arrayMap(x -> length(x), mapValues(ui_memory))) AS ui_elements, "
         "length(mapKeys(ui_memory)) AS apps, toString(settings) AS settings, "
         "event_time AS updated "
         "FROM agent_state FINAL ORDER BY agent_id != '*', agent_id LIMIT 1000"),
    ],
}


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def render(result: Any, fmt: str = "table", title: str | None = None) -> None:
    """Print a `QueryResult` in the chosen format to stdout."""
    if fmt == "json":
        rows = [dict(zip(result.column_names, map(_cell, r), strict=False)) for r in result.rows]
        click.echo(json.dumps(rows if title is None else {"title": title, "rows": rows},
                              default=str))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.column_names)
        for r in result.rows:
            writer.writerow([_cell(v) for v in r])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in result.column_names:
        table.add_column(name)
    for r in result.rows:
        table.add_row(*("∅" if v is None else str(_cell(v)) for v in r))
    Console().print(table)
    if not result.rows:
        click.echo("(no rows)")


def _run(sql: str) -> Any:
    from consumers.clickhouse import ClickHouseUnavailable, QueryError, query

    try:
        return query(get_settings(), sql)
    except (QueryError, ClickHouseUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("sql")
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def sql(statement: str, fmt: str) -> None:
    """Run one SQL statement against the configured ClickHouse and print the result.

    Reads apply FINAL to every deduplicating table, so no event shows twice.
    """
    render(_run(statement), fmt)


@click.group("query", invoke_without_command=True)
@click.pass_context
def query(ctx: click.Context) -> None:
    """Canned analytics (run `clawstream query NAME`)."""
    if ctx.invoked_subcommand is None and isinstance(ctx.command, click.Group):
        click.echo("canned queries: " + ", ".join(sorted(ctx.command.commands)))


def _canned(name: str) -> click.Command:
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                  show_default=True)
    def cmd(fmt: str) -> None:
        for title, statement in CANNED[name]:
            render(_run(statement), fmt, title)

    cmd.__doc__ = f"{name}: " + "; ".join(t for t, _ in CANNED[name]) + "."
    return click.command(name)(cmd)


for _name in CANNED:
    query.add_command(_canned(_name))

# analytics engineer: overview, success-rate, slowest, failing-elements, timeline, episodes,
# episode, alert-history (filters --since/--agent/--app; SQL in consumers/analytics/queries.py)
from consumers.analytics.cli import register as _register_analytics  # noqa: E402

_register_analytics(query)
