"""A ClickHouse server's roles, users and quota (what `clawstream clickhouse-users` runs as
its admin in docker-compose): every statement is valid ClickHouse (parsed by the engine's own
parser: chdb has no access control to run them on), the writer may read and insert but not
drop, alter or truncate, the reader reads with readonly fixed and a quota, and no password
shows in an error or the log."""

from __future__ import annotations

import logging
import re
from typing import Any

import clickhouse_connect
import pytest
from click import ClickException
from pydantic import SecretStr

from consumers.clickhouse.server_users import access_statements, provision

WRITER, READER = SecretStr("w-secret-1"), SecretStr("r-secret-2")


def test_every_statement_is_valid_clickhouse() -> None:
    client = clickhouse_connect.get_client(dsn="chdb://memory")
    for stmt in access_statements("clawstream", WRITER, READER):
        client.query(f"EXPLAIN AST {stmt}")  # raises on a syntax error


def test_least_privilege_per_user() -> None:
    text = "\n".join(access_statements("clawstream", WRITER, READER))
    writer = re.search(r"GRANT (.*) ON clawstream\.\* TO clawstream_writer", text)
    assert writer and not re.search(r"DROP|ALTER|TRUNCATE|ALL", writer.group(1))
    assert "GRANT SELECT ON clawstream.* TO clawstream_reader" in text
    assert "SETTINGS readonly = 2 READONLY" in text  # fixed: a query cannot lift it
    assert re.search(r"CREATE QUOTA .* TO clawstream_reader", text)


class FailingClient:
    """A server that refuses one user's password statement, quoting it back."""

    def __init__(self, user: str) -> None:
        self.user = user

    def command(self, stmt: str) -> Any:
        if f"USER {self.user} IDENTIFIED" in stmt:
            raise RuntimeError(f"Code: 516. server refused: {stmt}")


@pytest.mark.parametrize("user", ["writer", "reader"])
def test_no_password_in_an_error_or_the_log(user: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ClickException) as err:
        provision(FailingClient(user), "clawstream", WRITER, READER)
    shown = err.value.format_message() + caplog.text
    for secret in (WRITER, READER):
        assert secret.get_secret_value() not in shown
    assert f"ALTER USER {user} IDENTIFIED WITH sha256_password" in shown
