"""The chdb owner's loopback endpoint: ClickHouse's own HTTP interface, served from the
embedded engine, so other local processes (`clawstream sql`, `query`, `report`) and Grafana's
ClickHouse datasource reach it with clickhouse-connect's `http://` client exactly as they
reach a ClickHouse server.

The subset served is what those clients use: `GET`/`POST /` with the query in the `query`
URL parameter or in the body (with `query` in the URL, a body is an INSERT's data), the
`database` and `default_format` parameters, query parameters as `param_<name>`, every other
URL parameter a ClickHouse setting; formats are the engine's own (`FORMAT Native`, JSON,
TabSeparated …, passed through); the `X-ClickHouse-Format`, `-Timezone`, `-Query-Id`,
`-Summary`, `-Server-Display-Name` response headers, and on errors the engine's
`Code: N. DB::Exception: …` text with `X-ClickHouse-Exception-Code`. `GET /ping` answers
`Ok.` (with the owner's pid in `X-ClawStream-Owner-Pid`: how readers check the owner file).

Every query needs a user's credential (`consumers.clickhouse.users`: basic auth,
`X-ClickHouse-User/Key` or `user`/`password` parameters; none or a wrong one: 401) and runs
as that user (`Serve.run`): the reader read-only, on a connection of its own. Not served:
sessions (`session_id` is accepted and ignored: every request stands alone), compression of
responses, progress headers, external data.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

from consumers.clickhouse.users import authenticate

log = logging.getLogger(__name__)

#: URL parameters of the HTTP interface that are no settings
_TRANSPORT = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "client_protocol_version", "enable_http_compression",
    "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "http_response_buffer_size", "role", "quota_key",
})
_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
#: an INSERT statement at the head of a body, up to its FORMAT name (then one blank: the rows)
_INSERT_HEAD = re.compile(rb"(\s*INSERT\s+INTO\s+[^\n]*?\bFORMAT\s+\w+)(?:\r?\n|[ \t])?",
                          re.I)


@dataclass
class Request:
    """One query as the HTTP interface received it."""

    user: str
    sql: str
    database: str | None = None
    default_format: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    data: bytes = b""  # an INSERT's rows, in the format its query names


class QueryFailed(Exception):
    """The engine refused or failed a query: `code` is ClickHouse's error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


#: runs one request as its user: its result, in the format the query asked for
Run = Callable[[Request], bytes]


class Endpoint:
    """A served endpoint: its `url`, and `stop()`."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, name="chdb-owner",
                                        daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _error_code(message: str) -> int:
    m = re.search(r"Code: (\d+)", message)
    return int(m.group(1)) if m else 1000


def serve(port: int, run: Run, timezone: str, users: Mapping[str, SecretStr]) -> Endpoint:
    """Serve `run` on loopback `port` (or a free port if `port` is taken: readers find the
    endpoint through the owner file, never by the port, and a sink of another namespace on
    this machine may hold the configured one for its own chdb)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("owner endpoint: " + fmt, *args)

        def _reply(self, code: int, body: bytes,
                   headers: Mapping[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _fail(self, code: int, message: str, ch_code: int) -> None:
            self._reply(code, (message.rstrip() + "\n").encode(), {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(ch_code),
                **({"WWW-Authenticate": 'Basic realm="clawstream ClickHouse"'}
                   if code == 401 else {})})

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # (trailers)
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # the chunk's CRLF
                body = b"".join(parts)
            else:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding in ("gzip", "deflate"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS if encoding == "gzip" else 0)
            elif encoding not in ("", "identity"):
                raise QueryFailed(f"Content-Encoding {encoding} is not served here", 1000)
            return body

        def _handle(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/ping":
                self._reply(200, b"Ok.\n", {"Content-Type": "text/plain",
                                             "X-ClawStream-Owner-Pid": str(os.getpid())})
                return
            if url.path not in ("", "/"):
                self._fail(404, f"Code: 1000. DB::Exception: no handler for {url.path}", 1000)
                return
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            try:
                body = self._body()
            except (QueryFailed, zlib.error) as exc:
                self._fail(400, f"Code: 1000. DB::Exception: {exc}", 1000)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "user" in params and "x-clickhouse-user" not in headers:
                headers["X-ClickHouse-User"] = params["user"]
                headers["X-ClickHouse-Key"] = params.get("password", "")
            user = authenticate(headers, users)
            if user is None:
                log.warning("owner endpoint: a query without a valid credential refused")
                self._fail(401, "Code: 516. DB::Exception: authentication required: a user "
                           "and password of the embedded ClickHouse (reader, writer or admin). "
                           "(AUTHENTICATION_FAILED)", 516)
                return
            sql = params.get("query")
            if sql is None:  # the query in the body; an INSERT's rows follow its FORMAT name
                insert = _INSERT_HEAD.match(body)
                if insert is not None:
                    sql, body = insert.group(1).decode("utf-8", "replace"), body[insert.end():]
                else:
                    sql, body = body.decode("utf-8", "replace"), b""
            req = Request(
                user, sql, params.get("database") or None, params.get("default_format"),
                {k[6:]: v for k, v in params.items() if k.startswith("param_")},
                {k: v for k, v in params.items()
                 if k not in _TRANSPORT and not k.startswith("param_")},
                body)
            query_id = params.get("query_id") or str(uuid.uuid4())
            try:
                result = run(req)
            except QueryFailed as exc:
                self._fail(500, str(exc), exc.code or _error_code(str(exc)))
                return
            except Exception as exc:
                self._fail(500, f"Code: 1000. DB::Exception: {type(exc).__name__}: {exc}",
                           1000)
                return
            m = _FORMAT.search(sql)
            fmt = m.group(1) if m else (req.default_format or "TabSeparated")
            self._reply(200, result, {
                "Content-Type": "text/plain; charset=UTF-8" if fmt.startswith(
                    ("TabSeparated", "CSV", "JSON", "Pretty", "Values")) else
                "application/octet-stream",
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": timezone,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": "clawstream-chdb",
                "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "read_bytes": "0",
                                                    "written_rows": "0",
                                                    "written_bytes": "0",
                                                    "total_rows_to_read": "0"})})

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
            pid = resp.headers.get("X-ClawStream-Owner-Pid")
            return int(pid) if resp.status == 200 and pid and pid.isdigit() else None
    except (OSError, ValueError, urllib.error.URLError):
        return None
