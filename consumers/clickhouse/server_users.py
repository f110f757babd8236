"""ClickHouse server access (docker-compose, a cluster): the roles and users the components
use, made by `clawstream clickhouse-users --from-env` as the server's admin, after it ran the
migrations (`compose`: the `clickhouse-access` service, before the sink starts).

- `writer` (role `clawstream_writer`): what the sink does: SELECT and INSERT on the database,
  and the `CREATE … IF NOT EXISTS` of its start (the database, `schema_migrations`; every
  migration is applied by then, so nothing else is created); no DROP, ALTER or TRUNCATE.
- `reader` (role `clawstream_reader`): SELECT on the database, `readonly = 2` fixed on the
  user (queries may set other settings, never lift it), a quota against runaway dashboards:
  the `clawstream sql/query/report` CLI and Grafana's datasource.
- `admin`: the server's own admin user (`CLICKHOUSE_USER` of the image): migrations, this.
Passwords come from the environment (the `.env` that `clawstream credentials compose-env`
writes); they are sent as the server's `sha256_password` and never logged.

The embedded engine (chdb) has no access control of its own: its users are those of the
loopback endpoint (`consumers.clickhouse.users`).
"""

from __future__ import annotations

import logging
import os
import re

import click
from pydantic import SecretStr

log = logging.getLogger(__name__)

#: the reader's quota: queries and execution time per minute (Grafana refreshes included)
READER_QUERIES_PER_MINUTE = 1200
READER_EXECUTION_SECONDS_PER_MINUTE = 300


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def _literal(secret: SecretStr) -> str:
    return "'" + secret.get_secret_value().replace("\\", "\\\\").replace("'", "\\'") + "'"


def access_statements(database: str, writer: SecretStr, reader: SecretStr) -> list[str]:
    """The statements that make (or bring up to date) the roles, users and quota."""
    db = _ident(database)
    return [
        "CREATE ROLE IF NOT EXISTS clawstream_writer",
        f"GRANT SELECT, INSERT, CREATE DATABASE, CREATE TABLE ON {db}.* TO clawstream_writer",
        "CREATE ROLE IF NOT EXISTS clawstream_reader",
        f"GRANT SELECT ON {db}.* TO clawstream_reader",
        "CREATE USER IF NOT EXISTS writer",
        f"ALTER USER writer IDENTIFIED WITH sha256_password BY {_literal(writer)}",
        "GRANT clawstream_writer TO writer",
        "ALTER USER writer DEFAULT ROLE clawstream_writer",
        "CREATE USER IF NOT EXISTS reader",
        f"ALTER USER reader IDENTIFIED WITH sha256_password BY {_literal(reader)}",
        "GRANT clawstream_reader TO reader",
        "ALTER USER reader DEFAULT ROLE clawstream_reader SETTINGS readonly = 2 READONLY",
        "CREATE QUOTA IF NOT EXISTS clawstream_reader_quota FOR INTERVAL 1 minute MAX "
        f"queries = {READER_QUERIES_PER_MINUTE}, "
        f"execution_time = {READER_EXECUTION_SECONDS_PER_MINUTE} TO clawstream_reader",
    ]


def provision(client: object, database: str, writer: SecretStr, reader: SecretStr) -> int:
    """Run the statements on `client` (the admin's); returns how many ran."""
    statements = access_statements(database, writer, reader)
    for stmt in statements:
        try:
            client.command(stmt)  # type: ignore[attr-defined]
        except Exception as exc:
            said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            for secret in (writer, reader):  # a server may quote the statement back
                for form in (_literal(secret), secret.get_secret_value()):
                    said = said.replace(form, "'**********'")
            shown = stmt.split(" BY ")[0]  # (never the password)
            raise click.ClickException(f"{shown}: {said}") from None
    log.info("ClickHouse roles and users writer, reader made on database %s", database)
    return len(statements)


@click.command("clickhouse-users")
@click.option("--from-env", "from_env", is_flag=True, required=True,
              help="Passwords from CLICKHOUSE_WRITER_PASSWORD and CLICKHOUSE_READER_PASSWORD.")
def users_cmd(from_env: bool) -> None:
    """As the ClickHouse server's admin (CLAWSTREAM_CLICKHOUSE_DSN, _PASSWORD): apply the
    migrations, then make the writer and reader users and their roles and quota."""
    from clawstream.settings import get_settings
    from consumers.clickhouse.client import connect
    from consumers.clickhouse.migrations import migrate

    settings = get_settings()
    if settings.is_embedded_clickhouse:
        raise click.ClickException("the embedded engine has no users of its own: its "
                                   "endpoint's users are made by the sink")
    passwords = {}
    for user in ("writer", "reader"):
        value = os.environ.get(f"CLICKHOUSE_{user.upper()}_PASSWORD")
        if not value:
            raise click.ClickException(f"CLICKHOUSE_{user.upper()}_PASSWORD is not set "
                                       "(clawstream credentials compose-env writes it)")
        passwords[user] = SecretStr(value)
    client = connect(settings)
    try:
        migrate(client)
        n = provision(client, settings.clickhouse_database, passwords["writer"],
                      passwords["reader"])
    finally:
        client.close()
    click.echo(f"ClickHouse: migrations applied; roles, users writer and reader, reader quota "
               f"({n} statements)")
