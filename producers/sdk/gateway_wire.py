"""The ingest gateway's wire protocol, client side: one batch as one request, and what its
answer means for the batch (`GatewayError.kind`: retry, split, reject, unauthorized,
unreachable). `producers.sdk.https` decides what to do about it.

Requests go over `GatewayConnection`, one kept-alive HTTPS connection of the standard
library's `http.client`: a request of 500 events cost 0.55 ms of CPU through httpx and
0.21 ms this way, on a client that shares its cores with the agent."""

from __future__ import annotations

import http.client
import json
import ssl
import struct
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import cramjam
from confluent_kafka import KafkaError

from producers.settings import SdkSettings

AVRO_BATCH = "application/vnd.clawstream.avro-batch"
_LEN = struct.Struct(">I").pack


class GatewayError(Exception):
    """A batch the gateway did not take, and what to do with it."""

    def __init__(self, kind: str, detail: str, wait: float = 0.0) -> None:
        super().__init__(detail)
        self.kind = kind  # retry | split | reject | unauthorized | unreachable
        self.detail = detail
        self.wait = wait


def ssl_context(settings: SdkSettings) -> ssl.SSLContext:
    """Trust the system's CAs, or only `ingest_ca_file` / `ingest_ca_pem` when set (a
    private CA: the client config file carries the project's)."""
    if settings.ingest_ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ingest_ca_file))
    if settings.ingest_ca_pem:
        return ssl.create_default_context(cadata=settings.ingest_ca_pem)
    return ssl.create_default_context()


class Answer:
    """A response, read whole."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


#: what a failed exchange raises (connection, TLS, timeout, a broken answer)
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class GatewayConnection:
    """One HTTPS connection to the gateway at `url`, kept alive and reopened when needed
    (one thread at a time)."""

    def __init__(self, url: str, context: ssl.SSLContext, headers: dict[str, str], *,
                 timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 443
        self.base = parts.path.rstrip("/")
        self.context = context
        self.headers = headers
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._conn: http.client.HTTPSConnection | None = None

    def _open(self, timeout: float) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=min(self.connect_timeout, timeout))
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> Answer:
        """The answer, or one of TRANSPORT_ERRORS."""
        timeout = self.timeout if timeout is None else timeout
        all_headers = {**self.headers, **headers} if headers else self.headers
        for reused in (self._conn is not None, False):
            conn = self._conn
            if conn is None:
                conn = self._conn = self._open(timeout)
            elif conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, self.base + path, body=body, headers=all_headers)
                r = conn.getresponse()
                data = r.read()
            except TimeoutError:
                self.close()
                raise
            except TRANSPORT_ERRORS:
                self.close()
                if reused:  # most likely closed by the server while idle: once on a new one
                    continue  # (a batch stored twice keeps its event ids: stored once)
                raise
            except BaseException:
                self.close()
                raise
            if r.will_close:
                self.close()
            return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def describe(exc: Exception, settings: SdkSettings) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        now = (f" (now {settings.ingest_ca_file})" if settings.ingest_ca_file else
               " (now the client config file's ingest_ca_pem)" if settings.ingest_ca_pem else "")
        return (f"TLS: the gateway's certificate is not trusted ({exc}); set "
                "CLAWSTREAM_INGEST_CA_FILE to the CA that signed it" + now)
    return text



def post_batch(conn: GatewayConnection, values: Sequence[bytes], compress: str,
               settings: SdkSettings) -> dict[int, tuple[int, str]]:
    """Send one batch to the gateway's /v1/events; the refused items by index (their Kafka
    error code and why), or GatewayError."""
    parts: list[bytes] = []
    add = parts.append
    for v in values:
        add(_LEN(len(v)))
        add(v)
    body = b"".join(parts)
    headers = {}
    if compress == "zstd":
        body = bytes(cramjam.zstd.compress(body, 1))
        headers["Content-Encoding"] = "zstd"
    try:
        r = conn.request("POST", "/v1/events", body, headers)
    except TRANSPORT_ERRORS as exc:
        raise GatewayError("unreachable", describe(exc, settings)) from None
    code = r.status_code
    if code == 200:
        return {}
    detail = _detail(r)
    if code == 207:
        refused = r.json().get("refused", [])
        return {int(x["index"]): (KafkaError.INVALID_RECORD if x.get("status") != 403
                                  else KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                  f"refused by the gateway: {x.get('reason')}: "
                                  f"{x.get('detail')}") for x in refused}
    if code == 429 or code >= 500:
        wait = _retry_after(r.headers.get("retry-after"))
        raise GatewayError("retry", f"gateway {code}: {detail}", wait)
    if code == 413:
        raise GatewayError("split", f"gateway 413: {detail}")
    if code == 401:
        raise GatewayError("unauthorized", f"gateway 401: the token was refused ({detail});"
                           " events stay in the spool until a valid token is configured")
    raise GatewayError("reject", f"gateway {code}: {detail}")


def _detail(r: Answer) -> str:
    try:
        doc = r.json()
        return f"{doc.get('error')}: {doc.get('detail')}"
    except ValueError:
        return r.text[:200]


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 1.0
