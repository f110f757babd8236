"""ClickHouse access for every component: connect, migrate, query.

- `connect(settings)` gives a clickhouse-connect client (chdb embedded or an http server) with
  the database created and selected.
- `migrate(client)` applies the versioned SQL files `infra/clickhouse/NNN_name.sql` in order
  and records them in `schema_migrations`; the same files run on chdb and on a server.
- `query(settings, sql, parameters)` is what CLIs, reports and tests call. chdb lets only one
  process open a data directory, so the long-running owner (the sink) serves a small loopback
  HTTP endpoint (`ChdbOwner`) and writes its address to `<dir>-owner.json`; other processes send
  their SQL there, or open the directory themselves when nobody holds it.

Read convention: raw tables are ReplacingMergeTree keyed by event_id, so a redelivered row may
exist physically until a merge. `query()` runs with the ClickHouse setting `final=1`, which
applies FINAL to every table that supports it: readers never see a row twice. Anyone querying
ClickHouse another way (Grafana, clickhouse-client) sets `final=1` or writes `FINAL`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import errno
import fcntl
import ipaddress
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from clawstream.procs import pid_alive
from clawstream.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "infra" / "clickhouse"
#: Settings every reader query runs with: FINAL on every ReplacingMergeTree (dedup by event_id).
READ_SETTINGS: dict[str, Any] = {"final": 1}
_MIGRATION_RE = re.compile(r"^(\d{3,})_([A-Za-z0-9_\-]+)\.sql$")


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


# --- connecting ---------------------------------------------------------------------------------


def chdb_path(dsn: str) -> Path | None:
    """The data directory of a chdb:// DSN (None for in-memory or server DSNs)."""
    if not dsn.startswith("chdb:"):
        return None
    rest = dsn[len("chdb://"):].split("?", 1)[0]
    if rest in ("", "memory", ":memory:") or not rest.startswith("/"):
        return None
    return Path(rest).resolve()


def owner_file(settings: Settings) -> Path | None:
    """Where the chdb owner advertises its endpoint: `<dir>-owner.json` beside the chdb
    directory (`<data_dir>/<namespace>chdb-owner.json` by default)."""
    path = chdb_path(settings.resolved_clickhouse_dsn)
    return None if path is None else path.parent / f"{path.name}-owner.json"


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
            holder = _lock_holder(path)
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
    return _open(dsn, db, None)


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


def _open(dsn: str, db: str, path: Path | None) -> Client:
    try:
        if path is None:
            boot = clickhouse_connect.get_client(dsn=dsn)
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
        if path is not None and ("lock" in str(exc).lower() or _lock_holder(path) is not None):
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


def _lock_holder(path: Path) -> str | None:
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


# --- migrations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text())


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for p in sorted(directory.glob("*.sql")):
        m = _MIGRATION_RE.match(p.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise ValueError(
                f"two migrations with version {version}: {found[version].path.name}, {p.name}"
            )
        found[version] = Migration(version, m.group(2), p)
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on `;` outside strings, quoted identifiers and comments."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    has_code = False
    while i < n:
        c = sql[i]
        if c in ("'", '"', "`"):
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i:j + 1])
            has_code = True
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            buf.append(" ")
        elif c == ";":
            if has_code:
                out.append("".join(buf).strip())
            buf, has_code = [], False
            i += 1
        else:
            buf.append(c)
            if not c.isspace():
                has_code = True
            i += 1
    if has_code:
        out.append("".join(buf).strip())
    return out


MIGRATIONS_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version UInt32, name String, statements UInt32,"
    " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
    ") ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
)


def applied_versions(client: Client) -> set[int]:
    client.command(MIGRATIONS_TABLE_DDL)
    return {int(r[0]) for r in client.query("SELECT version FROM schema_migrations").result_rows}


def migrate(client: Client, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now.

    Files are idempotent (`IF NOT EXISTS`), so a run interrupted half-way simply re-runs the
    file; the version is recorded only after all its statements succeeded.
    """
    done = applied_versions(client)
    applied: list[int] = []
    for mig in discover(directory):
        if mig.version in done:
            continue
        statements = mig.statements()
        for stmt in statements:
            try:
                client.command(stmt)
            except Exception as exc:
                raise RuntimeError(
                    f"migration {mig.path.name} failed on: {stmt[:200]}...: {exc}"
                ) from exc
        client.insert(
            "schema_migrations",
            [[mig.version], [mig.name], [len(statements)]],
            column_names=["version", "name", "statements"],
            column_oriented=True,
        )
        log.info("applied migration %s (%d statements)", mig.path.name, len(statements))
        applied.append(mig.version)
    return applied


# --- reading -------------------------------------------------------------------------------------


def run_query(client: Client, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
    """Run one query on a client with the read settings (FINAL everywhere)."""
    merged = {**READ_SETTINGS, **(settings or {})}
    try:
        res = client.query(sql, parameters=parameters, settings=merged)
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


# process-local owner state: set while this process owns the chdb directory
_owner_lock = threading.Lock()
_owner_client: Client | None = None


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
    if _owner_client is not None:
        with _owner_lock:
            return run_query(_owner_client, sql, parameters)
    deadline = time.monotonic() + 30.0
    path = chdb_path(settings.resolved_clickhouse_dsn)
    while True:
        state, endpoint = find_owner(settings)
        if endpoint is not None:
            return _remote_query(endpoint, sql, parameters, timeout)
        holder = _lock_holder(path) if path is not None else None
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


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[Callable[..., QueryResult]]:
    """Like `query`, for many queries in a row (reports, canned-query tests): opens chdb at
    most once instead of once per query. Yields `run(sql, parameters=None)`."""
    client: Client | None = None
    if settings.is_embedded_clickhouse and _owner_client is None:
        state, _url = find_owner(settings)
        path = chdb_path(settings.resolved_clickhouse_dsn)
        if state is None and path is not None and _lock_holder(path) is None:
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
        migrate(client)
        yield client
    finally:
        client.close()


def find_owner(settings: Settings) -> tuple[str | None, str | None]:
    """(state, url) of the chdb directory's owner: ("serving", url), ("starting", None) while
    a live owner opens the engine, (None, None) when there is none (or it died)."""
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
        return "starting", None
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2.0) as resp:
            if resp.status == 200 and json.loads(resp.read()).get("pid") == pid:
                return "serving", str(url)
    except (OSError, ValueError, urllib.error.URLError):
        return None, None
    return None, None


def announce_owner(settings: Settings, url: str | None) -> None:
    """Write the owner file: our pid, and our endpoint once it serves (None while starting)."""
    path = owner_file(settings)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url,
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


def _remote_query(url: str, sql: str, parameters: Any, timeout: float) -> QueryResult:
    body = json.dumps({"sql": sql, "parameters": parameters}, default=_json_default).encode()
    req = urllib.request.Request(
        f"{url}/query", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
        except ValueError:
            payload = {"error": f"HTTP {exc.code} from the ClickHouse owner endpoint"}
    except (OSError, urllib.error.URLError) as exc:
        raise ClickHouseUnavailable(f"the ClickHouse owner endpoint {url} failed: {exc}") from exc
    if "error" in payload:
        raise QueryError(payload["error"])
    types = tuple(payload.get("column_types", ()))
    decoders = [_decoder_for(t) for t in types]
    rows = [
        tuple(d(v) if d is not None and v is not None else v
              for d, v in zip(decoders, r, strict=False))
        for r in payload["rows"]
    ]
    return QueryResult(tuple(payload["column_names"]), rows, types)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal | ipaddress.IPv4Address
                  | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def _base_type(name: str) -> str:
    while True:
        m = re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", name)
        if not m:
            return name
        name = m.group(1)


def _decoder_for(type_name: str) -> Any:
    """Turn JSON-transported values back into what a local clickhouse-connect query returns."""
    base = _base_type(type_name)
    if base.startswith("DateTime"):
        return dt.datetime.fromisoformat
    if base == "Date" or base == "Date32":
        return dt.date.fromisoformat
    if base == "UUID":
        return uuid.UUID
    if base.startswith("Decimal"):
        return decimal.Decimal
    if base == "String":
        return lambda v: base64.b64decode(v["$b64"]) if isinstance(v, dict) else v
    return None


# --- the owner's endpoint ----------------------------------------------------------------------


def _serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A loopback server on `port`, or on a free port if `port` is taken.

    Readers find the endpoint through the owner file, never by the port, and a sink of
    another namespace on this machine may hold the configured one for its own chdb.
    """
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        if port == 0 or exc.errno != errno.EADDRINUSE:
            raise
        log.warning("chdb owner endpoint port %d is in use; serving on a free port", port)
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


class ChdbOwner:
    """Serves the owned chdb engine to other local processes over loopback HTTP.

    POST /query {"sql", "parameters"} -> {"column_names", "column_types", "rows"} or {"error"};
    GET /ping -> {"pid", "dsn"}. The address goes to `owner_file(settings)` with our pid.
    """

    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        global _owner_client
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("owner endpoint: " + fmt, *args)

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=_json_default).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200, {"pid": os.getpid(),
                                     "dsn": owner.settings.resolved_clickhouse_dsn})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/query":
                    self._send(404, {"error": "not found"})
                    return
                try:
                    req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    with _owner_lock:
                        res = run_query(owner.client, req["sql"], req.get("parameters"))
                except QueryError as exc:
                    self._send(400, {"error": str(exc)})
                    return
                except Exception as exc:
                    self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                    return
                self._send(200, {"column_names": res.column_names,
                                 "column_types": res.column_types, "rows": res.rows})

        self._server = _serve(self.settings.chdb_endpoint_port, Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="chdb-owner",
                                        daemon=True)
        self._thread.start()
        _owner_client = self.client
        announce_owner(self.settings, self.url)
        log.info("chdb owner endpoint on %s", self.url)
        return self.url

    def stop(self) -> None:
        global _owner_client
        _owner_client = None
        withdraw_owner(self.settings)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
