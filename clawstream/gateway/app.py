"""The gateway's HTTP API (Starlette): `POST /v1/events`, `/healthz`, `/readyz`, `/metrics`.

`POST /v1/events` with `Authorization: Bearer <token>` and a batch (`clawstream.gateway.batch`)
is answered only after Kafka acknowledged every accepted event and every dead letter:

- 200: every event accepted (and stored).
- 207: some refused; `refused` lists each one's index, status (400 undecodable or not an
  agent event, 403 agent id not bound to the token) and reason. The others are stored, the
  refused ones are in the DLQ with the reason.
- 400: the body is not a batch (`malformed-batch`, `empty-batch`, `bad-encoding`); nothing
  written.
- 401: no token, or not a live one (`WWW-Authenticate: Bearer`); nothing written.
- 413: body or decompressed body over the size limit, or too many events; nothing written.
- 415: another Content-Type or Content-Encoding; nothing written.
- 429 with `Retry-After`: over the token's rate, or the address failed authentication too
  often; nothing written.
- 503 with `Retry-After`: Kafka does not answer (nothing written), or did not acknowledge in
  time (part may be stored): retry the whole batch; events keep their ids and ClickHouse
  keeps one of each.

Tokens never reach a log: the access log names the principal (`token:<id>`) and the address.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from clawstream.gateway.batch import BatchError, decompress, split
from clawstream.gateway.ingest import Ingest
from clawstream.gateway.limits import AuthThrottle, RateLimiter, retry_after
from clawstream.gateway.tokens import TokenRecord, TokenRegistry
from clawstream.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("clawstream.gateway.access")

REQUESTS = Counter("clawstream_gateway_requests_total", "Requests to POST /v1/events by status",
                   ["code"])
REJECTED = Counter("clawstream_gateway_rejected_events_total",
                   "Events refused, by reason (whole batches count each event they hold, "
                   "when known)", ["reason"])
ACCEPTED = Counter("clawstream_gateway_events_total", "Events accepted and acknowledged by Kafka")
LATENCY = Histogram("clawstream_gateway_request_seconds", "POST /v1/events, received to answered",
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30))


@dataclass
class Gateway:
    """What the routes share: settings, the token registry, the Kafka side and the limits."""

    settings: Settings
    registry: TokenRegistry
    ingest: Ingest
    rates: RateLimiter
    throttle: AuthThrottle

    @classmethod
    def start(cls, settings: Settings) -> Gateway:
        registry = TokenRegistry(settings).start()
        ingest = Ingest(settings)
        return cls(settings, registry, ingest,
                   RateLimiter(settings.gateway_rate_events_per_s, settings.gateway_rate_burst),
                   AuthThrottle(settings.gateway_auth_max_failures,
                                settings.gateway_auth_window_s, settings.gateway_auth_block_s))

    def close(self) -> None:
        self.ingest.close()
        self.registry.close()

    @property
    def ready(self) -> bool:
        return self.registry.loaded and self.ingest.kafka_up


def _error(status: int, reason: str, detail: str, headers: dict[str, str] | None = None,
           events: int = 0) -> JSONResponse:
    if events:
        REJECTED.labels(reason).inc(events)
    return JSONResponse({"error": reason, "detail": detail}, status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BatchError(413, "too-large", f"the body exceeds {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BatchError(413, "too-large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: Request) -> SecretStr | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return SecretStr(token.strip())


async def post_events(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    started = time.monotonic()
    address = request.client.host if request.client else "-"
    principal = "-"
    events = refused = 0
    response: Response
    try:
        response, principal, events, refused = await _post_events(gw, request, address)
    except Exception:
        log.exception("POST /v1/events failed")
        response = _error(500, "internal-error", "the gateway failed; retry the batch")
    elapsed = time.monotonic() - started
    REQUESTS.labels(str(response.status_code)).inc()
    LATENCY.observe(elapsed)
    access_log.info("%s POST /v1/events %d events=%d refused=%d principal=%s %.1fms", address,
                    response.status_code, events, refused, principal, elapsed * 1000)
    return response


async def _post_events(gw: Gateway, request: Request,
                       address: str) -> tuple[Response, str, int, int]:
    settings = gw.settings
    blocked = gw.throttle.blocked_for(address)
    if blocked:
        return _error(429, "auth-throttled", "too many failed authentications from this "
                      "address", {"Retry-After": retry_after(blocked)}), "-", 0, 0
    if not gw.registry.loaded:
        return _error(503, "not-ready", "the token registry is still loading",
                      {"Retry-After": "1"}), "-", 0, 0
    token = _bearer(request)
    record: TokenRecord | None = None if token is None else gw.registry.authenticate(token)
    if record is None:
        gw.throttle.failed(address)
        why = "missing-token" if token is None else "invalid-token"
        return _error(401, why, "send Authorization: Bearer <token> with a live token "
                      "(`clawstream tokens create`)", {"WWW-Authenticate": "Bearer"}), "-", 0, 0
    gw.throttle.succeeded(address)
    principal = record.principal
    try:
        body = await _read_body(request, settings.gateway_max_body_bytes)
        data = decompress(body, request.headers.get("content-encoding", ""),
                          settings.gateway_max_body_bytes)
        items = split(data, request.headers.get("content-type", ""),
                      settings.gateway_max_events)
    except BatchError as exc:
        return _error(exc.status, exc.reason, exc.detail, events=1), principal, 0, 0
    n = len(items)
    wait = gw.rates.take(record.token_id, n)
    if wait:
        return _error(429, "rate-limited", f"over {settings.gateway_rate_events_per_s:g} "
                      "events/s for this token", {"Retry-After": retry_after(wait)},
                      events=n), principal, n, 0
    if not gw.ingest.kafka_up:
        return _error(503, "kafka-unavailable", "Kafka does not answer; nothing was written",
                      {"Retry-After": "2"}, events=n), principal, n, 0
    checked, acks = gw.ingest.write(items, record, asyncio.get_running_loop())
    if not await acks.wait(gw.ingest.timeout_s + 5) or acks.failures:
        detail = "; ".join(acks.failures[:3]) or "no acknowledgement in time"
        log.warning("batch from %s not acknowledged by Kafka: %s", principal, detail)
        return _error(503, "kafka-unavailable", f"not acknowledged by Kafka ({detail}): "
                      "retry the whole batch", {"Retry-After": "2"}, events=n), principal, n, 0
    ACCEPTED.inc(checked.accepted)
    for refusal in checked.refusals:
        REJECTED.labels(refusal.reason).inc()
    if not checked.refusals:
        return JSONResponse({"accepted": checked.accepted}), principal, n, 0
    return (JSONResponse({"accepted": checked.accepted,
                          "refused": [r.as_json() for r in checked.refusals]}, 207),
            principal, n, len(checked.refusals))


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    if gw.ready:
        return PlainTextResponse("ready")
    why = "token registry loading" if not gw.registry.loaded else "kafka unreachable"
    return PlainTextResponse(f"not ready: {why}", 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    """The ASGI app; it starts its `Gateway` (registry follower, producer) on startup unless
    one is given, and closes what it started on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = gateway or await asyncio.to_thread(Gateway.start, settings)
        app.state.gateway = gw
        # What exists now lives as long as the process: out of the collector's sight, a full
        # collection does not walk it (pauses that showed in the p99 of requests).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if gateway is None:
                await asyncio.to_thread(app.state.gateway.close)

    return Starlette(routes=[
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ], lifespan=lifespan)
