"""`clawstream verify`: recount every closed window from the raw events in ClickHouse."""

from __future__ import annotations

import json
import time

import click

from clawstream.settings import get_settings


@click.command("verify")
@click.option("--since", default="1h", show_default=True,
              help="Windows starting from: a duration back from now (30m, 1h), an ISO time "
                   "or epoch.")
@click.option("--until", default=None, help="Windows starting before (same forms); default now.")
@click.option("--agent-prefix", default=None,
              help="Check only these agents' windows (fleet-wide windows are recounted from "
                   "every agent's events).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--show", type=int, default=10, show_default=True,
              help="Windows that differ or are missing to print.")
def verify(since: str, until: str | None, agent_prefix: str | None, as_json: bool,
           show: int) -> None:
    """Are the stream worker's windows true? Recount each closed window (per agent and
    fleet-wide) from the raw events, leaving out what went to the late side output, and
    report windows that differ or are missing and lost outcomes whose action did get an
    outcome. Exits 1 when anything is wrong."""
    from consumers.analytics.accuracy import verify as run
    from consumers.analytics.filters import parse_time

    try:
        since_ms = parse_time(since)
        until_ms = parse_time(until, default_ms=int(time.time() * 1000))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    report = run(get_settings(), since_ms=since_ms, until_ms=until_ms, agent_prefix=agent_prefix)
    if as_json:
        click.echo(json.dumps(report.summary(), indent=1))
    else:
        for key, value in report.summary().items():
            click.echo(f"{key:<24} {value}")
    for line in (report.windows_differing + report.windows_missing)[:show]:
        click.echo(f"  {line}")
    if not report.ok:
        raise SystemExit(1)
