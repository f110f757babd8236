"""The `clawstream` command line.

Subcommands live next to the code they drive and are imported only when invoked, so
`clawstream --help` stays fast and a missing optional piece (say, no X server) never breaks
unrelated commands.
"""

from __future__ import annotations

import importlib

import click

from clawstream import __version__

#: command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "up": "clawstream.broker_cli:up",
    "down": "clawstream.broker_cli:down",
    "status": "clawstream.broker_cli:status",
    "topics": "clawstream.broker_cli:topics",
    "registry": "clawstream.registry_cli:registry",
    "fleet": "producers.fleet_cli:fleet",
    "sink": "consumers.sink_cli:sink",
    "sql": "consumers.query_cli:sql",
    "query": "consumers.query_cli:query",
    "report": "consumers.report_cli:report",
    "verify": "consumers.verify_cli:verify",
    "migrate": "consumers.migrate_cli:migrate",
    "worker": "streams.worker_cli:worker",
    "notifier": "consumers.notifier_cli:notifier",
    "agent": "producers.agent.cli:agent",
    "demo": "clawstream.demo:demo",
    "settings": "clawstream.settings_cli:settings_cmd",
    "schemas": "schemas.cli:schemas",
    "pki": "clawstream.security_cli:pki",
    "credentials": "clawstream.security_cli:credentials",
    "clickhouse-users": "consumers.clickhouse.server_users:users_cmd",
    "gateway": "clawstream.gateway.server:gateway",
    "tokens": "clawstream.gateway.server:tokens",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return _unavailable(cmd_name, exc)
        return getattr(module, attr)


def _unavailable(name: str, exc: ImportError) -> click.Command:
    """A stand-in that explains why a command cannot load instead of breaking --help."""

    def fail() -> None:
        raise click.ClickException(f"'{name}' is unavailable here: {exc}")

    return click.Command(name, callback=fail, help=f"(unavailable: {exc})")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clawstream")
@click.option("--log-level", envvar="CLAWSTREAM_LOG_LEVEL", default="INFO", show_default=True,
              help="Logging level for this command.")
def cli(log_level: str) -> None:
    """clawstream: Avro events from GUI agents through Kafka, Faust and ClickHouse.

    \b
    Typical local run:
      clawstream up          start the local Kafka broker (fetched with Maven once)
      clawstream topics      create the topics
      clawstream sink        land every event in ClickHouse (chdb by default)
      clawstream fleet       simulate a fleet of agents
      clawstream sql "SELECT count() FROM events"

    Every setting is an environment variable prefixed CLAWSTREAM_ (see `clawstream settings`).
    """
    from clawstream.logs import setup_logging

    setup_logging(log_level)


def main() -> None:
    cli(prog_name="clawstream")


if __name__ == "__main__":
    main()
