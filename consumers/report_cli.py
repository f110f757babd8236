"""`clawstream report`: write the self-contained HTML report (see consumers/report.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="HTML file to write.")
@click.option("--since", default="24h", show_default=True,
              help="Start: a duration back from now (30m, 1h, 7d), an ISO time, or 'all'.")
@click.option("--until", default=None, help="End (same forms as --since); default: now.")
@click.option("--app", default=None, help="Only this app.")
@click.option("--session", default=None,
              help="Episode to show (session id); default: a recent one with several steps.")
def report(out: Path, since: str, until: str | None, app: str | None,
           session: str | None) -> None:
    """Write an HTML report: throughput, success rate and latency over time, failures by app,
    alerts, and an episode viewer (frames, detection boxes, actions and outcomes).

    One file, no network needed to view it: charts are inline SVG, thumbnails inline images.
    """
    from clawstream.settings import get_settings
    from consumers.analytics.filters import Filters
    from consumers.clickhouse import ClickHouseUnavailable, QueryError
    from consumers.report import write_report

    try:
        filters = Filters.from_cli(since, until, None, app, session)
        data = write_report(get_settings(), filters, out)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except (QueryError, ClickHouseUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    steps = len(data.episode.steps) if data.episode else 0
    click.echo(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB): "
               f"{data.overview.get('events') or 0:,} events, episode with {steps} steps")
