"""The SDK's HTTPS side: the same client, spool and guarantees, through the ingest gateway.

`HttpsTransport` is a `Transport` whose producer is `HttpProducer`: the part of
confluent-kafka's Producer the SDK uses (produce, poll, flush, purge, len, list_topics),
sending batches to `POST <ingest_url>/v1/events` instead of librdkafka sending them to
brokers. So `AgentClient`, its outage spool and its replay work unchanged: events the gateway
cannot take now come back as failed deliveries and are spooled in front, in seq order; when
the gateway answers again (`/readyz`), the spool is replayed.

Per lane (`ingest_connections` lanes, an agent always in the same one, so its events keep
their order) one thread batches by size and time (`ingest_batch_events`, `ingest_linger_ms`),
compresses (zstd), and sends one request at a time over a kept-alive HTTPS connection:

- 200: delivered.
- 207: delivered, but the refused items, which are rejected (kept in the agent's `.rejected`
  file, never retried).
- 413: split in halves and sent again; a single event too large is rejected.
- 429: sent again after `Retry-After`.
- 5xx, or no answer: sent again with backoff (0.1 s doubling to 5 s) until
  `message.timeout.ms`, then handed back (spooled, replayed in order).
- 401: handed back (spooled: nothing is dropped for a revoked token), logged as an error.
- other 4xx: rejected, with the gateway's reason.

Only the agent side: it speaks the wire format (`producers.sdk.gateway_wire`: length-prefixed
Avro) and nothing of the server's code.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from producers.sdk.gateway_wire import (
    AVRO_BATCH,
    TRANSPORT_ERRORS,
    GatewayConnection,
    GatewayError,
    describe,
    post_batch,
    ssl_context,
)
from producers.sdk.transport import Transport
from producers.settings import SdkSettings

log = logging.getLogger("producers.sdk")

#: an entry of a lane's queue: (topic, key, value, produced at monotonic)
Entry = tuple[str, bytes | None, bytes, float]
Report = Callable[[KafkaError | None, Any], None]


class HttpMessage:
    """What a delivery report carries (the subset of confluent_kafka.Message the SDK reads)."""

    __slots__ = ("_entry", "_err", "_latency")

    def __init__(self, entry: Entry, err: KafkaError | None, done_at: float) -> None:
        self._entry = entry
        self._err = err
        self._latency = done_at - entry[3]

    def topic(self) -> str:
        return self._entry[0]

    def key(self) -> bytes | None:
        return self._entry[1]

    def value(self) -> bytes:
        return self._entry[2]

    def error(self) -> KafkaError | None:
        return self._err

    def latency(self) -> float:
        return self._latency

    def partition(self) -> int:
        return -1

    def offset(self) -> int:
        return -1

    def headers(self) -> None:
        return None


class _Lane:
    """One ordered stream of batches over one connection."""

    def __init__(self, owner: HttpProducer, index: int) -> None:
        self.owner = owner
        self.queue: deque[Entry] = deque()
        self.inflight: list[Entry] = []
        self.generation = 0  # bumped by purge: reports of an older batch are dropped
        self.cond = threading.Condition(owner.lock)
        self.client = owner.new_client()
        self.thread = threading.Thread(target=self.run, name=f"clawstream-https-{index}",
                                       daemon=True)
        self.thread.start()

    def run(self) -> None:
        owner = self.owner
        while True:
            with self.cond:
                while not owner.closed and not self._ready():
                    self.cond.wait(self._wait_s())
                if owner.closed and not self.queue:
                    return
                if owner.closed:
                    return
                n = min(len(self.queue), owner.batch_events)
                batch = [self.queue.popleft() for _ in range(n)]
                self.inflight = batch
                generation = self.generation
            self.send(batch, generation)

    def _ready(self) -> bool:
        q = self.queue
        if not q:
            return False
        return (len(q) >= self.owner.batch_events or self.owner.flushing
                or time.monotonic() - q[0][3] >= self.owner.linger_s)

    def _wait_s(self) -> float | None:
        if not self.queue:
            return None
        return max(0.0005, self.owner.linger_s - (time.monotonic() - self.queue[0][3]))

    def send(self, batch: list[Entry], generation: int) -> None:
        """Deliver `batch` (splitting it when the gateway says it is too large), or hand its
        events back as failures."""
        owner = self.owner
        pending = [batch]
        backoff = 0.1
        while pending:
            part = pending[0]
            if owner.closed or generation != self.generation:
                return
            try:
                refused = owner.post(self.client, part)
            except GatewayError as exc:
                if exc.kind == "split" and len(part) > 1:
                    half = len(part) // 2
                    pending[0:1] = [part[:half], part[half:]]
                    continue
                if exc.kind in ("reject", "split"):
                    code = (KafkaError.MSG_SIZE_TOO_LARGE if exc.kind == "split"
                            else KafkaError.INVALID_MSG)
                    self.done(part, generation, {i: (code, exc.detail) for i in range(len(part))})
                    pending.pop(0)
                    continue
                if exc.kind == "unauthorized":
                    owner.note_error(exc.detail, unreachable=True)
                    self.fail_all(pending, generation, KafkaError._AUTHENTICATION, exc.detail)
                    return
                owner.note_error(exc.detail, unreachable=exc.kind == "unreachable")
                oldest = min(e[3] for e in part)
                wait = exc.wait or backoff * (0.5 + random.random())
                backoff = exc.wait or min(backoff * 2, 5.0)
                if time.monotonic() + wait - oldest > owner.message_timeout_s:
                    self.fail_all(pending, generation, KafkaError._MSG_TIMED_OUT,
                                  f"not delivered in {owner.message_timeout_s:.0f}s: "
                                  f"{exc.detail}")
                    return
                with self.cond:  # (a purge or close wakes it)
                    self.cond.wait(wait)
                continue
            owner.note_ok()
            backoff = 0.1
            self.done(part, generation, refused)
            pending.pop(0)

    def fail_all(self, parts: list[list[Entry]], generation: int, code: int,
                 detail: str) -> None:
        for part in parts:
            self.done(part, generation, {i: (code, detail) for i in range(len(part))})

    def done(self, part: list[Entry], generation: int,
             errors: dict[int, tuple[int, str]]) -> None:
        owner = self.owner
        now = time.monotonic()
        with self.cond:
            if generation != self.generation:
                return  # purged: its events were handed back already
            reports = owner.reports
            for i, entry in enumerate(part):
                err = errors.get(i)
                if err is not None:
                    reports.append(HttpMessage(entry, KafkaError(err[0], err[1]), now))
                elif not owner.only_errors:
                    reports.append(HttpMessage(entry, None, now))
            ids = {id(e) for e in part}
            self.inflight = [e for e in self.inflight if id(e) not in ids]
            owner.unsettled -= len(part)
            owner.settled.notify_all()


class HttpProducer:
    """confluent-kafka's Producer as the SDK uses it, over the ingest gateway."""

    def __init__(self, settings: SdkSettings, conf: dict[str, Any]) -> None:
        if not settings.ingest_url.startswith("https://"):
            raise ValueError(f"the ingest gateway is reached over HTTPS only, not "
                             f"{settings.ingest_url!r}")
        if settings.ingest_token is None:
            raise ValueError("an https ingest URL needs a token: set CLAWSTREAM_INGEST_TOKEN "
                             "(`clawstream tokens create` prints one)")
        self.settings = settings
        self.url = settings.ingest_url.rstrip("/")
        self._auth = f"Bearer {settings.ingest_token.get_secret_value()}"
        self.on_delivery: Report | None = conf.get("on_delivery")
        self.error_cb: Callable[[KafkaError], None] | None = conf.get("error_cb")
        self.only_errors = bool(conf.get("delivery.report.only.error", False))
        self.message_timeout_s = conf.get("message.timeout.ms", 300_000) / 1000
        self.max_queued = int(conf.get("queue.buffering.max.messages", 100_000))
        self.batch_events = settings.ingest_batch_events
        self.linger_s = settings.ingest_linger_ms / 1000
        self.compress = settings.ingest_compression
        self._ssl = ssl_context(settings)
        self.lock = threading.Lock()
        self.settled = threading.Condition(self.lock)
        self.reports: deque[HttpMessage] = deque()
        self.unsettled = 0  # produced, not reported yet
        self.closed = False
        self.flushing = False
        self.unreachable = False
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self.lanes = [_Lane(self, i) for i in range(max(1, settings.ingest_connections))]

    def new_client(self) -> GatewayConnection:
        return GatewayConnection(self.url, self._ssl, {
            "Authorization": self._auth, "Content-Type": AVRO_BATCH,
            "User-Agent": "clawstream-sdk"})

    # -- the Producer API ---------------------------------------------------------------------
    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        lanes = self.lanes
        lane = lanes[hash(key) % len(lanes)] if len(lanes) > 1 else lanes[0]
        with self.lock:  # (the lanes' conditions' lock: a Condition's `with` is Python code)
            if self.closed:
                raise KafkaException(KafkaError(KafkaError._DESTROY, "producer closed"))
            if self.unsettled >= self.max_queued:
                raise BufferError("local queue full")
            queue = lane.queue
            queue.append((topic, key, value, time.monotonic()))
            self.unsettled += 1
            if len(queue) >= self.batch_events or len(queue) == 1:
                lane.cond.notify()

    def __len__(self) -> int:
        return self.unsettled

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (on the caller's thread, as librdkafka does)."""
        reports = self.reports
        if not reports and timeout > 0:
            with self.lock:
                if not reports:
                    self.settled.wait(timeout)
        n = 0
        callback = self.on_delivery
        while reports:
            msg = reports.popleft()
            n += 1
            if callback is not None:
                callback(msg.error(), msg)
        return n

    def flush(self, timeout: float = -1) -> int:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with self.lock:
            self.flushing = True
            for lane in self.lanes:
                lane.cond.notify_all()
        try:
            while True:
                self.poll(0)
                if self.unsettled == 0 and not self.reports:
                    return 0
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self.unsettled
                self.poll(min(0.05, left) if left is not None else 0.05)
        finally:
            self.flushing = False

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        """Hand back what waits (and what is on the wire) as failed: the client spools it.
        A batch on the wire may still have been stored: the replay repeats it, and the
        event ids make ClickHouse keep one of each."""
        now = time.monotonic()
        with self.lock:
            for lane in self.lanes:
                entries: list[tuple[Entry, int]] = []
                if in_flight and lane.inflight:
                    entries += [(e, KafkaError._PURGE_INFLIGHT) for e in lane.inflight]
                    lane.inflight = []
                    lane.generation += 1
                if in_queue:
                    entries += [(e, KafkaError._PURGE_QUEUE) for e in lane.queue]
                    lane.queue.clear()
                for entry, code in entries:
                    self.reports.append(HttpMessage(entry, KafkaError(code, "purged"), now))
                self.unsettled -= len(entries)
                lane.cond.notify_all()

    def list_topics(self, topic: str | None = None, timeout: float = 1.0) -> None:
        """The broker probe of the transport: does the gateway answer and is it ready? (On
        a connection of its own: the lanes' are theirs.)"""
        probe = self.new_client()
        try:
            r = probe.request("GET", "/readyz", timeout=timeout)
        except TRANSPORT_ERRORS as exc:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT,
                                            describe(exc, self.settings))) from None
        finally:
            probe.close()
        if r.status_code != 200:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT,
                                            f"gateway not ready: {r.status_code}"))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for lane in self.lanes:
                lane.cond.notify_all()
        for lane in self.lanes:
            lane.thread.join(timeout=35)
            lane.client.close()

    def post(self, conn: GatewayConnection, part: list[Entry]) -> dict[int, tuple[int, str]]:
        return post_batch(conn, [e[2] for e in part], self.compress, self.settings)

    def note_error(self, detail: str, *, unreachable: bool) -> None:
        self.last_error = detail
        if detail != self._logged_error:
            self._logged_error = detail
            (log.error if "TLS" in detail or "401" in detail else log.warning)(
                "ingest gateway %s: %s", self.url, detail)
        if unreachable and not self.unreachable:
            self.unreachable = True
            if self.error_cb is not None:
                self.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN, detail))

    def note_ok(self) -> None:
        if self.unreachable or self._logged_error:
            log.info("ingest gateway %s accepts events again", self.url)
        self.unreachable = False
        self._logged_error = None


class HttpsTransport(Transport):
    """A `Transport` over the ingest gateway (`ingest_url` = https://...)."""

    def _new_producer(self, conf: dict[str, Any]) -> Any:
        return HttpProducer(self.settings, conf)
