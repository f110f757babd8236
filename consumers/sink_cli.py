"""`clawstream sink`: land every event topic in ClickHouse."""

from __future__ import annotations

import logging

import click

from clawstream.settings import get_settings

log = logging.getLogger(__name__)


@click.command("sink")
@click.option("--once", is_flag=True, help="Drain what is on the topics now, then exit.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Exit after this many seconds without a new message.")
@click.option("--topics", multiple=True, metavar="TOPIC[,TOPIC]",
              help="Logical topics to read (default: every event topic and derived topics "
                   "that have tables).")
@click.option("--no-endpoint", is_flag=True,
              help="Do not serve the chdb query endpoint for other commands.")
def sink(once: bool, until_idle: float | None, topics: tuple[str, ...], no_endpoint: bool) -> None:
    """Consume events, insert them into ClickHouse in batches, commit after the insert.

    Applies the migrations of infra/clickhouse/ first. With embedded ClickHouse (chdb) this
    process owns the data directory and serves `clawstream sql`/`query`/`report` while it runs;
    if another sink owns it, this one shares its consumer group and inserts through the
    owner's endpoint (and takes the directory over if the owner dies).
    Metrics on CLAWSTREAM_SINK_METRICS_PORT (/metrics; give a second sink a port of its own).
    """
    from consumers.clickhouse import ClickHouseUnavailable
    from consumers.sink import Sink

    settings = get_settings()
    names = [t.strip() for arg in topics for t in arg.split(",") if t.strip()]
    try:
        s = Sink(settings, topics=names or None, serve_endpoint=not no_endpoint)
        s.install_signal_handlers()
        s.open()
    except (ClickHouseUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    where = s.target.url if s.target is not None and s.target.url else \
        settings.resolved_clickhouse_dsn
    log.info("sink reading %d topics into %s (group %s)", len(s.routes), where,
             settings.sink_group)
    stats = s.run(once=once, until_idle=until_idle)
    click.echo(
        f"sink done: {stats.messages} messages, {stats.rows} rows in {stats.batches} batches, "
        f"{stats.dead_letters} dead letters"
        + (f", skipped on resume: {stats.skipped_on_resume}" if stats.skipped_on_resume else ""),
        err=True,
    )
