"""`clawstream migrate`: apply the ClickHouse migrations, or print a rendering of them."""

from __future__ import annotations

import click

from clawstream.settings import get_settings


@click.command("migrate")
@click.option("--render", "rendering", type=click.Choice(["single", "cluster"]), default=None,
              help="Print the statements instead of running them: as one node runs them, or "
                   "as a cluster does (Replicated tables per shard, Distributed tables, ON "
                   "CLUSTER DDL).")
@click.option("--cluster", default=None,
              help="The cluster's name for --render cluster (default: "
                   "CLAWSTREAM_CLICKHOUSE_CLUSTER, else 'clawstream').")
def migrate(rendering: str | None, cluster: str | None) -> None:
    """Bring the configured ClickHouse's tables up to date (the sink also does it when it
    starts), rendered for a cluster when CLAWSTREAM_CLICKHOUSE_CLUSTER names one; or print
    a rendering with --render."""
    from consumers.clickhouse import local_client, render
    from consumers.clickhouse.cluster import ClusterLayout

    settings = get_settings()
    if rendering is None:
        with local_client(settings) as client:
            click.echo(f"migrations applied to {settings.clickhouse_database} "
                       f"({settings.clickhouse_cluster or 'one node'})")
            del client
        return
    layout = None if rendering == "single" else ClusterLayout(
        cluster=cluster or settings.clickhouse_cluster or "clawstream")
    for mig, statements in render(layout):
        click.echo(f"-- {mig.path.name if mig else 'schema_migrations (bookkeeping)'}")
        for statement in statements:
            click.echo(f"{statement};\n")
