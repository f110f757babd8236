"""The SDK's connection to the ingest gateway (`producers.sdk.gateway_wire`): kept alive,
reopened when the server closed it while idle (the request is sent again on a new one, not
reported as an outage), and TLS that names why it failed."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from gateway_helpers import TlsFiles, make_tls

from producers.sdk.gateway_wire import TRANSPORT_ERRORS, GatewayConnection


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[int]] = []

    def setup(self) -> None:
        super().setup()
        Handler.connections.append(id(self.connection))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out = b'{"accepted": %d}' % len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        if self.path == "/v1/events?then-close":
            self.close_connection = True  # like an idle timeout: no Connection: close sent

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, TlsFiles]]:
    tls = make_tls(tmp_path)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.cert, tls.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    Handler.connections = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", tls
    httpd.shutdown()
    httpd.server_close()


def test_kept_alive_and_reopened_after_the_server_closed_it(
        server: tuple[str, TlsFiles]) -> None:
    url, tls = server
    conn = GatewayConnection(url, ssl.create_default_context(cafile=str(tls.ca)), {})
    assert conn.request("POST", "/v1/events", b"abc").json() == {"accepted": 3}
    assert conn.request("POST", "/v1/events", b"abcd").json() == {"accepted": 4}
    assert len(Handler.connections) == 1  # kept alive
    assert conn.request("POST", "/v1/events?then-close", b"ab").status_code == 200
    # the server closed it without saying so: the next request goes on a new connection
    assert conn.request("POST", "/v1/events", b"abcde").json() == {"accepted": 5}
    assert len(Handler.connections) == 2
    conn.close()


def test_an_untrusted_certificate_fails_with_the_reason(server: tuple[str, TlsFiles]) -> None:
    url, _tls = server
    conn = GatewayConnection(url, ssl.create_default_context(), {})
    with pytest.raises(TRANSPORT_ERRORS) as raised:
        conn.request("GET", "/readyz")
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
