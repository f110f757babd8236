"""A clickhouse-connect client for the configured ClickHouse, and one query run on it.

`connect(settings)` opens chdb embedded (a `chdb://` DSN: the engine in this process) or an
http server, with the database created and selected. chdb lets one process at a time open a
data directory: who holds it is read from the engine's own lock (`lock_holder`), so a second
opener gets a plain answer instead of chdb's 'Cannot lock file'.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from clawstream.settings import Settings

#: Settings every reader query runs with: FINAL on every ReplacingMergeTree (dedup by event_id).
READ_SETTINGS: dict[str, Any] = {"final": 1}


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse cannot be reached or opened; the message says why in plain words."""


class QueryError(RuntimeError):
    """A query failed inside ClickHouse (bad SQL, unknown table, ...)."""


@dataclass(frozen=True)
class QueryResult:
    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    column_types: tuple[str, ...] = field(default=())

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, r, strict=False)) for r in self.rows]


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a chdb:// DSN (None for in-memory or server DSNs)."""
    if not dsn.startswith("chdb:"):
        return None
    rest = dsn[len("chdb://"):].split("?", 1)[0]
    if rest in ("", "memory", ":memory:") or not rest.startswith("/"):
        return None
    return Path(rest).resolve()


def connect(settings: Settings, *, database: str | None = None, wait: float = 0.0) -> Client:
    """A client for the configured ClickHouse with the database created and selected.

    For chdb this opens (and so locks) the data directory. If another process holds it, wait
    up to `wait` seconds (CLI queries hold it for a moment), then raise `ClickHouseUnavailable`
    naming that process instead of chdb's raw lock error.
    """
    dsn = settings.resolved_clickhouse_dsn
    db = database or settings.clickhouse_database
    path = chdb_path(dsn)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            holder = lock_holder(path)
            if holder is None:
                try:
                    return _open(dsn, db, path)
                except ClickHouseUnavailable as exc:
                    if "in use" not in str(exc) or time.monotonic() > deadline:
                        raise
            elif time.monotonic() > deadline:
                raise ClickHouseUnavailable(
                    f"the embedded ClickHouse in {path} is in use by another process "
                    f"({holder}); stop it or query through it (a running sink serves "
                    "`clawstream sql`)"
                )
            time.sleep(0.1)
    auth: dict[str, Any] = {}
    if settings.clickhouse_user:
        auth["username"] = settings.clickhouse_user
    if settings.clickhouse_password is not None:
        auth["password"] = settings.clickhouse_password.get_secret_value()
    if settings.clickhouse_ca_location is not None:  # an https:// DSN: the server's CA
        auth["ca_cert"] = str(settings.clickhouse_ca_location)
    return _open(dsn, db, None, auth)


@contextlib.contextmanager
def _engine_stderr_filtered() -> Iterator[None]:
    """chdb's engine prints 'Cannot lock file ...' straight to fd 2 when it loses the race
    for the directory; hold fd 2 while it opens and drop exactly that noise."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            noise = tmp.read()
            if noise and b"Cannot lock file" not in noise:
                os.write(2, noise)


def _open(dsn: str, db: str, path: Path | None, auth: dict[str, Any] | None = None) -> Client:
    try:
        if path is None:
            boot = clickhouse_connect.get_client(dsn=dsn, **(auth or {}))
        else:
            with _engine_stderr_filtered():
                boot = clickhouse_connect.get_client(dsn=dsn)
        boot.command(f"CREATE DATABASE IF NOT EXISTS {_ident(db)}")
        if path is None:
            boot.database = db
            return boot
        client = clickhouse_connect.get_client(dsn=dsn, database=db)
        boot.close()
        return client
    except Exception as exc:
        if path is not None and ("lock" in str(exc).lower() or lock_holder(path) is not None):
            raise ClickHouseUnavailable(
                f"the embedded ClickHouse in {path} is in use by another process"
            ) from exc
        if isinstance(exc, ClickHouseUnavailable):
            raise
        raise ClickHouseUnavailable(f"cannot connect to ClickHouse at {dsn}: {exc}") from exc


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def lock_holder(path: Path) -> str | None:
    """Who holds chdb's lock on `path` (its status file), or None when it is free.

    ClickHouse flocks `<dir>/status` while an engine has the directory open; probing that
    lock ourselves avoids chdb's confusing 'Cannot lock file' error.
    """
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            try:
                first = status.read_text(errors="replace").splitlines()[0].strip()
            except (OSError, IndexError):
                first = ""
            if first == f"PID: {os.getpid()}":
                return None  # our own engine: more clients in this process are fine
            return first or "unknown pid"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


#: a query's parameters: by name ({name:Type} placeholders) or by position
Parameters = Mapping[str, Any] | Sequence[Any] | None


def run_query(client: Client, sql: str, parameters: Parameters = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
    """Run one query on a client with the read settings (FINAL everywhere)."""
    merged = {**READ_SETTINGS, **(settings or {})}
    try:
        res = client.query(sql, settings=merged, parameters=dict(parameters)
                           if isinstance(parameters, Mapping) else parameters)
    except Exception as exc:
        raise QueryError(_clean_error(str(exc))) from exc
    return QueryResult(
        tuple(res.column_names),
        [tuple(r) for r in res.result_rows],
        tuple(t.name for t in res.column_types),
    )


def _clean_error(message: str) -> str:
    idx = message.find("Code: ")
    msg = message[idx:] if idx >= 0 else message
    return msg.split("\n")[0].strip()
