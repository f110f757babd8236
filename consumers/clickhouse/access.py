"""Queries from anywhere: what CLIs, reports and tests call, wherever ClickHouse lives.

A server DSN: a client. Embedded chdb: this process's own engine if it owns the directory,
else the owner's endpoint (ClickHouse's HTTP interface: clickhouse-connect's `http://`
client, the same path as against a server, as this process's ClickHouse user), else the
directory opened for the query (nobody holds it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from clawstream.settings import Settings
from consumers.clickhouse.client import (
    ClickHouseUnavailable,
    QueryResult,
    chdb_path,
    connect,
    lock_holder,
    run_query,
)
from consumers.clickhouse.migrations import layout_of, migrate
from consumers.clickhouse.owner import find_owner, local_engine
from consumers.clickhouse.users import credential_for


def query(
    settings: Settings,
    sql: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    timeout: float = 120.0,
) -> QueryResult:
    """Run SQL against the configured ClickHouse wherever it lives.

    Server DSN: a client. Embedded: through this process's own engine if it owns it, else
    through the owner's loopback endpoint, else by opening the directory for this one query.
    """
    if not settings.is_embedded_clickhouse:
        client = connect(settings)
        try:
            return run_query(client, sql, parameters)
        finally:
            client.close()
    engine = local_engine(settings)
    if engine is not None:
        return engine.query(sql, parameters)
    deadline = time.monotonic() + 30.0
    path = chdb_path(settings.resolved_clickhouse_dsn)
    while True:
        state, url = find_owner(settings)
        if url is not None:
            client = endpoint_client(settings, url, timeout)
            try:
                return run_query(client, sql, parameters)
            finally:
                client.close()
        holder = lock_holder(path) if path is not None else None
        if state is None and holder is None:
            try:
                with local_client(settings) as client:
                    return run_query(client, sql, parameters)
            except ClickHouseUnavailable as exc:
                if "in use" not in str(exc):
                    raise
        if time.monotonic() > deadline:
            raise ClickHouseUnavailable(
                f"the embedded ClickHouse in {path} is held by another process "
                f"({holder or 'starting owner'}) that serves no query endpoint; wait for it "
                "to finish or stop it"
            )
        time.sleep(0.1)  # an owner is starting (its endpoint appears shortly) or a reader ends


def endpoint_client(settings: Settings, url: str, timeout: float = 120.0) -> Client:
    """clickhouse-connect's `http://` client of the chdb owner's endpoint at `url`, as this
    process's ClickHouse user (`users.credential_for`: reader unless set)."""
    user, password = credential_for(settings)
    where = urlsplit(url)
    try:
        return clickhouse_connect.get_client(
            host=where.hostname, port=where.port, username=user,
            password=password.get_secret_value() if password is not None else "",
            database=settings.clickhouse_database, compress=False,
            autogenerate_session_id=False, send_receive_timeout=int(timeout))
    except Exception as exc:
        if "401" in str(exc) or "AUTHENTICATION_FAILED" in str(exc):
            raise ClickHouseUnavailable(
                f"the embedded ClickHouse at {url} refused the credential of user {user!r}: "
                "set CLAWSTREAM_CLICKHOUSE_USER (reader, writer, admin) and "
                "CLAWSTREAM_CLICKHOUSE_PASSWORD, or run where the data folder's "
                "security/clickhouse.json is") from None
        raise ClickHouseUnavailable(f"the ClickHouse owner endpoint {url} failed: "
                                    f"{str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[Callable[..., QueryResult]]:
    """Like `query`, for many queries in a row (reports, canned-query tests): opens chdb at
    most once instead of once per query. Yields `run(sql, parameters=None)`."""
    client: Client | None = None
    if settings.is_embedded_clickhouse and local_engine(settings) is None:
        state, url = find_owner(settings)
        path = chdb_path(settings.resolved_clickhouse_dsn)
        if url is not None:  # one http client for the whole block
            client = endpoint_client(settings, url)
        elif state is None and path is not None and lock_holder(path) is None:
            try:
                client = connect(settings)
                migrate(client)
            except ClickHouseUnavailable as exc:
                if "in use" not in str(exc):
                    raise
    if client is None:
        yield lambda sql, parameters=None: query(settings, sql, parameters)
        return
    try:
        yield lambda sql, parameters=None: run_query(client, sql, parameters)
    finally:
        client.close()


@contextlib.contextmanager
def local_client(settings: Settings) -> Iterator[Client]:
    """Open the configured ClickHouse in this process, migrated, and close it afterwards."""
    client = connect(settings)
    try:
        migrate(client, layout=layout_of(settings))
        yield client
    finally:
        client.close()
