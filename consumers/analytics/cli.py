"""The canned analytics as `clawstream query NAME` subcommands (added to the `query` group of
consumers/query_cli.py by `register`). SQL comes from `consumers.analytics.queries`; user
input only ever travels as bound parameters."""

from __future__ import annotations

import click

from consumers.analytics.filters import Filters
from consumers.analytics.queries import CANNED

FORMATS = ("table", "json", "csv")


def run_canned(settings, name: str, filters: Filters, source: str = "auto") -> list:
    """[(title, QueryResult)] of canned query `name` (used by the CLI, report and tests)."""
    from consumers.analytics.queries import plan
    from consumers.clickhouse import query

    return [(title, query(settings, sql, params)) for title, sql, params
            in plan(name, filters, source)]


def _command(name: str) -> click.Command:
    canned = CANNED[name]

    @click.option("--since", default="24h", show_default=True,
                  help="Start: a duration back from now (30m, 1h, 7d), an ISO time, or 'all'.")
    @click.option("--until", default=None, help="End (same forms as --since); default: now+.")
    @click.option("--agent", default=None, help="Only this agent (reads the raw tables).")
    @click.option("--app", default=None, help="Only this app.")
    @click.option("--session", default=None, help="Episode (session id) for `episode`.")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
    @click.option("--source", type=click.Choice(("auto", "rollup", "raw")), default="auto",
                  show_default=True,
                  help="auto: per-minute rollups unless --agent is given; raw: exact tables.")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                  show_default=True)
    def cmd(since: str, until: str | None, agent: str | None, app: str | None,
            session: str | None, limit: int, source: str, fmt: str) -> None:
        from clawstream.settings import get_settings
        from consumers.clickhouse import ClickHouseUnavailable, QueryError
        from consumers.query_cli import render

        try:
            filters = Filters.from_cli(since, until, agent, app, session, limit)
            results = run_canned(get_settings(), name, filters, source)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        except (QueryError, ClickHouseUnavailable) as exc:
            raise click.ClickException(str(exc)) from exc
        for title, result in results:
            render(result, fmt, title)

    cmd.__doc__ = canned.help
    return click.command(name)(cmd)


def register(group: click.Group) -> None:
    """Add every canned analytics query to `group` (names already taken are left alone)."""
    for name in CANNED:
        if name not in group.commands:
            group.add_command(_command(name))
