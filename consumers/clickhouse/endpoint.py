"""The chdb owner's loopback endpoint: how other local processes query the engine it holds.

Its whole interface is `serve(port, run, dsn, users)` -> `Endpoint` (url, stop),
`remote_query(url, sql, parameters, timeout, auth)` and `ping(url)`; nothing else knows the
protocol. Every query needs a user's credential (`consumers.clickhouse.users`: basic auth or
`X-ClickHouse-User/Key`; none or a wrong one: 401) and runs with that user's settings
(the reader's `readonly=1`). The protocol is a stopgap to
be replaced by ClickHouse's own HTTP interface (then clients use clickhouse-connect's http
DSN and this module goes): POST /query {"sql", "parameters"} -> {"column_names",
"column_types", "rows"} or {"error"}; GET /ping -> {"pid", "dsn"}. Values that JSON does not
carry (dates, UUIDs, decimals, bytes) are encoded by `_json_default` and decoded back by
column type, so a remote query returns what a local one does.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import errno
import ipaddress
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import SecretStr

from consumers.clickhouse.client import ClickHouseUnavailable, QueryError, QueryResult
from consumers.clickhouse.users import authenticate

log = logging.getLogger(__name__)

#: runs one query for the endpoint as a user: (sql, parameters, user) -> result
RunQuery = Callable[[str, Any, str], QueryResult]


class Endpoint:
    """A served endpoint: its `url`, and `stop()`."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, name="chdb-owner",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(port: int, run: RunQuery, dsn: str, users: Mapping[str, SecretStr]) -> Endpoint:
    """Serve `run` on loopback `port` (or a free port if `port` is taken: readers find the
    endpoint through the owner file, never by the port, and a sink of another namespace on
    this machine may hold the configured one for its own chdb)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("owner endpoint: " + fmt, *args)

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, default=_json_default).encode()
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="clawstream ClickHouse"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(200, {"pid": os.getpid(), "dsn": dsn})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/query":
                self._send(404, {"error": "not found"})
                return
            user = authenticate(self.headers, users)
            if user is None:
                log.warning("owner endpoint: a query without a valid credential refused")
                self._send(401, {"error": "authentication required: a user and password of "
                                 "the embedded ClickHouse (reader, writer or admin)"})
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                res = run(req["sql"], req.get("parameters"), user)
            except QueryError as exc:
                self._send(400, {"error": str(exc)})
                return
            except Exception as exc:
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, {"column_names": res.column_names,
                             "column_types": res.column_types, "rows": res.rows})

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        if port == 0 or exc.errno != errno.EADDRINUSE:
            raise
        log.warning("chdb owner endpoint port %d is in use; serving on a free port", port)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return Endpoint(server)


def ping(url: str, timeout: float = 2.0) -> int | None:
    """The pid serving `url`, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as resp:
            if resp.status == 200:
                pid = json.loads(resp.read()).get("pid")
                return pid if isinstance(pid, int) else None
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return None


def remote_query(url: str, sql: str, parameters: Any, timeout: float,
                 auth: str | None = None) -> QueryResult:
    """Run `sql` through the endpoint at `url` with the `Authorization` header `auth`; raise
    QueryError as a local query would."""
    body = json.dumps({"sql": sql, "parameters": parameters}, default=_json_default).encode()
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    req = urllib.request.Request(f"{url}/query", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ClickHouseUnavailable(
                f"the ClickHouse owner endpoint {url} refused the credential: set "
                "CLAWSTREAM_CLICKHOUSE_USER (reader, writer, admin) and "
                "CLAWSTREAM_CLICKHOUSE_PASSWORD, or run on the machine whose data folder "
                "holds security/clickhouse.json") from None
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


def _decoder_for(type_name: str) -> Callable[[Any], Any] | None:
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
