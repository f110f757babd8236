"""Who owns the embedded chdb directory, and how the others find it.

chdb lets one process at a time open a data directory, so the long-running owner (the sink)
claims it: it holds an exclusive flock on `<dir>-owner.lock` for as long as it runs (the
kernel drops it when the process dies, `kill -9` included, so a successor can claim at once
and two starting sinks never both believe they own it), and advertises itself in the owner
file `<dir>-owner.json` (its pid, then its endpoint's url once it serves). It serves the
engine to other local processes (`consumers.clickhouse.endpoint`): readers, and a second sink
that inserts through it. Readers look the owner up with `find_owner`; inside the owner
process, queries go straight to its engine (`local_engine`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from clawstream.procs import pid_alive
from clawstream.settings import Settings
from consumers.clickhouse import endpoint
from consumers.clickhouse.client import Parameters, QueryResult, chdb_path, run_query
from consumers.clickhouse.users import USER_SETTINGS, ensure_users, outside_the_database

log = logging.getLogger(__name__)

#: an INSERT whose rows come in the request's body
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(?P<table>[\w.`]+)\s*(?:\((?P<cols>[^)]*)\))?\s*"
                     r"FORMAT\s+(?P<fmt>\w+)\s*$", re.I | re.S)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.I)
#: what the writer's queries may be (the root of their EXPLAIN AST)
WRITER_QUERIES = frozenset({"SelectWithUnionQuery", "InsertQuery", "ShowTablesQuery",
                            "DescribeQuery", "ShowCreateTableQuery", "ExistsTableQuery"})
#: settings a request may not set for the reader or the writer
PROTECTED_SETTINGS = frozenset({"readonly", "allow_ddl"})


def _engine_error(exc: Exception) -> str:
    """The engine's own `Code: N. DB::Exception: …` text of a failure."""
    text = str(exc)
    at = text.find("Code: ")
    return text[at:].split("\n")[0].strip() if at >= 0 else f"Code: 1000. DB::Exception: {text}"


class LocalEngine:
    """An engine this process owns: its client, one query at a time."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lock = threading.Lock()

    def query(self, sql: str, parameters: Parameters = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
        with self.lock:
            return run_query(self.client, sql, parameters, settings)


#: the chdb directories this process owns, and their engines (one process per directory)
_engines: dict[Path, LocalEngine] = {}


def local_engine(settings: Settings) -> LocalEngine | None:
    """The engine of the configured chdb directory if this process owns it."""
    path = chdb_path(settings.resolved_clickhouse_dsn)
    return None if path is None else _engines.get(path)


def owner_file(settings: Settings) -> Path | None:
    """Where the chdb owner advertises its endpoint: `<dir>-owner.json` beside the chdb
    directory (`<data_dir>/<namespace>chdb-owner.json` by default)."""
    path = chdb_path(settings.resolved_clickhouse_dsn)
    return None if path is None else path.parent / f"{path.name}-owner.json"


def owner_pid(settings: Settings) -> int | None:
    """The pid the owner file names (alive or not), None without one."""
    path = owner_file(settings)
    try:
        return int(json.loads(path.read_text())["pid"]) if path is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_owner(settings: Settings) -> tuple[str | None, str | None]:
    """(state, url) of the chdb directory's owner: ("serving", url), ("starting", None) while
    a live owner opens the engine, ("closed", None) for a live owner that serves no endpoint
    (`clawstream sink --no-endpoint`), (None, None) when there is none (or it died)."""
    path = owner_file(settings)
    if path is None or not path.exists():
        return None, None
    try:
        info = json.loads(path.read_text())
        pid, url = int(info["pid"]), info.get("url")
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    if pid == os.getpid() or not pid_alive(pid):
        return None, None
    if not url:
        return ("starting" if info.get("serves", True) else "closed"), None
    if endpoint.ping(str(url)) == pid:
        return "serving", str(url)
    return None, None


def announce_owner(settings: Settings, url: str | None, *, serves: bool = True) -> None:
    """Write the owner file: our pid, and our endpoint once it serves (None while starting;
    `serves` False: it never will)."""
    path = owner_file(settings)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url, "serves": serves,
                               "dsn": settings.resolved_clickhouse_dsn}))
    tmp.replace(path)


def withdraw_owner(settings: Settings) -> None:
    """Remove the owner file if it is ours."""
    path = owner_file(settings)
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


#: the chdb directories whose owner lock this process holds (path -> its file descriptor)
_claims: dict[Path, int] = {}


def claimed_here(settings: Settings) -> bool:
    """Does this process hold the owner lock of the configured chdb directory?"""
    path = chdb_path(settings.resolved_clickhouse_dsn)
    return path is not None and path in _claims


def _take_lock(path: Path) -> int | None:
    """The exclusive flock on `<dir>-owner.lock` (its descriptor), or None if held."""
    lock = path.parent / f"{path.name}-owner.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class ChdbOwner:
    """This process as the owner of the configured chdb directory: `claim` it before opening
    the engine (readers wait for us instead of racing us for the lock; another sink finds us
    and inserts through us), `serve` it to other processes once open, `release` it on the way
    out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._engine: LocalEngine | None = None
        #: one engine connection per endpoint user: a connection keeps the settings a query
        #: set (a reader's readonly sticks), so users never share one
        self._as_user: dict[str, LocalEngine] = {}
        self._users_lock = threading.Lock()
        self._endpoint: endpoint.Endpoint | None = None
        self._claimed: Path | None = None

    def claim(self, *, serves: bool = True) -> bool:
        """Take the owner lock and announce us; False when another process holds it (it is
        the owner: `find_owner` says where it serves). `serves` False: we never will."""
        path = chdb_path(self.settings.resolved_clickhouse_dsn)
        if path is not None:
            if path in _claims:
                return False
            fd = _take_lock(path)
            if fd is None:
                return False
            _claims[path] = fd
            self._claimed = path
        announce_owner(self.settings, None, serves=serves)
        return True

    def serve(self) -> str:
        """Serve the engine (a client of its own) on loopback, as ClickHouse's HTTP
        interface; readers in this process use it directly."""
        client = clickhouse_connect.get_client(dsn=self.settings.resolved_clickhouse_dsn,
                                               database=self.settings.clickhouse_database)
        engine = self._engine = LocalEngine(client)
        timezone = str(client.command("SELECT timezone()"))
        self._endpoint = endpoint.serve(self.settings.chdb_endpoint_port, self._http,
                                        timezone, ensure_users(self.settings.data_dir))
        self.url = self._endpoint.url
        path = chdb_path(self.settings.resolved_clickhouse_dsn)
        if path is not None:
            _engines[path] = engine
        announce_owner(self.settings, self.url)
        log.info("chdb owner endpoint on %s", self.url)
        return self.url

    def _engine_for(self, user: str) -> LocalEngine:
        """`user`'s own engine connection, its restrictions set on it once (a connection
        keeps its settings, and the reader's readonly cannot be lifted on it)."""
        with self._users_lock:
            engine = self._as_user.get(user)
            if engine is None:
                client = clickhouse_connect.get_client(
                    dsn=self.settings.resolved_clickhouse_dsn,
                    database=self.settings.clickhouse_database)
                for name, value in USER_SETTINGS.get(user, {"readonly": 2}).items():
                    client.command(f"SET {name} = {int(value)}")
                engine = self._as_user[user] = LocalEngine(client)
            return engine

    def _check(self, req: endpoint.Request) -> None:
        """The reader's and the writer's queries may not reach outside the database
        (`users.outside_the_database`, on the engine's own parse, by a connection of its
        own that runs only EXPLAIN AST); the writer's are reads and inserts."""
        if req.data and _INSERT.match(req.sql):
            return  # rows into a named table (the reader's connection refuses them itself)
        parser = self._engine_for("parser")
        try:
            with parser.lock:
                bare = _TRAILING_FORMAT.sub("", req.sql)  # (EXPLAIN's own output: TSVRaw)
                ast = str(parser.client.raw_query(f"EXPLAIN AST {bare}", fmt="TSVRaw",
                                                  parameters=req.parameters or None,
                                                  use_database=False), "utf-8", "replace")
        except Exception as exc:
            raise endpoint.QueryFailed(_engine_error(exc)) from None
        why = outside_the_database(req.sql, ast)
        if why is None and req.user == "writer" and ast.split(" ", 1)[0] not in WRITER_QUERIES:
            why = f"{ast.split(' ', 1)[0]}"
        if why is not None:
            raise endpoint.QueryFailed(
                f"Code: 497. DB::Exception: {why}: not allowed for the {req.user} user of the "
                "embedded ClickHouse (it may not reach outside the database; the writer "
                "reads and inserts). (ACCESS_DENIED)", 497)

    def _http(self, req: endpoint.Request) -> bytes:
        """One request of the HTTP interface, as its user, on its user's connection."""
        if req.user != "admin":
            self._check(req)
        engine = self._engine_for(req.user)
        settings: dict[str, Any] = {k: v for k, v in req.settings.items()
                                    if req.user == "admin" or k not in PROTECTED_SETTINGS}
        with engine.lock:
            client = engine.client
            database = client.database
            try:
                if req.database:
                    client.database = req.database
                insert = _INSERT.match(req.sql) if req.data else None
                if insert is not None:
                    cols = insert.group("cols")
                    client.raw_insert(insert.group("table").replace("`", ""),
                                      [c.strip(" `") for c in cols.split(",")] if cols else None,
                                      req.data, settings=settings, fmt=insert.group("fmt"))
                    return b""
                return bytes(client.raw_query(req.sql, parameters=req.parameters or None,
                                              settings=settings or None,
                                              fmt=req.default_format))
            except Exception as exc:
                raise endpoint.QueryFailed(_engine_error(exc)) from None
            finally:
                client.database = database

    def release(self) -> None:
        path = chdb_path(self.settings.resolved_clickhouse_dsn)
        if path is not None and self._engine is not None and _engines.get(path) is self._engine:
            del _engines[path]
        withdraw_owner(self.settings)
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        for engine in self._as_user.values():
            engine.client.close()
        self._as_user = {}
        if self._engine is not None:
            self._engine.client.close()
            self._engine = None
        if self._claimed is not None:  # last: the engine is closed before a successor opens
            fd = _claims.pop(self._claimed, None)
            if fd is not None:
                os.close(fd)
            self._claimed = None
