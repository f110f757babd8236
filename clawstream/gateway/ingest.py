"""The gateway's Kafka side: check each item of a batch, write the accepted ones to their
topics and the refused ones to the DLQ, and tell the request when Kafka acknowledged all.

Accepted events keep their bytes and are keyed by agent_id, like the SDK writes them, with
the token's principal in a header; the producer is the runtime's idempotent acks=all one, so
a request is answered only once every accepted event (and every dead letter) is stored. An
item is refused when it cannot be decoded, is not an agent event, or carries an agent id its
token does not bind (403).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from clawstream.gateway.batch import Item
from clawstream.gateway.tokens import TokenRecord
from clawstream.kafka.deadletter import DeadLetterQueue
from clawstream.kafka.producer import ReliableProducer
from clawstream.settings import Settings
from schemas.headers import PRINCIPAL
from schemas.serde import DecodeError, EncodeError, Serde
from schemas.topics import DLQ, EVENT_TOPICS

log = logging.getLogger(__name__)

#: the largest message the gateway's producer takes (librdkafka's default, set explicitly):
#: a bigger item is refused alone (413 in the 207) instead of failing its whole request
MAX_MESSAGE_BYTES = 1_000_000
#: room for a dead letter's headers (reason, detail, source, principal) and the key
_DLQ_ROOM = 8192


@dataclass(frozen=True)
class Refusal:
    """One refused item: its index in the batch, an HTTP status and a reason code."""

    index: int
    status: int
    reason: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "status": self.status, "reason": self.reason,
                "detail": self.detail}


class Acks:
    """Delivery reports of one request's messages (called on the poll thread): how many are
    still to come, and the failures. The number is known before the first is produced, so a
    report is one decrement; the request is woken once, by the last."""

    __slots__ = ("_done", "_left", "_lock", "_loop", "failures")

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self._loop = loop
        self._lock = threading.Lock()  # (reports are also served where produce waits for room)
        self._left = expected
        self._done: asyncio.Future[None] = loop.create_future()
        self.failures: list[str] = []
        if expected == 0:
            self._done.set_result(None)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()}: {err.str()}")
        with self._lock:
            self._left -= 1
            left = self._left
        if left == 0:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """True when every message was reported within `timeout`."""
        if self._done.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class Checked:
    accepted: int = 0
    refusals: list[Refusal] = field(default_factory=list)


class Ingest:
    """One producer (events and dead letters), its poll thread, and whether Kafka answers."""

    def __init__(self, settings: Settings, serde: Serde | None = None) -> None:
        self.settings = settings
        self.serde = serde or Serde.for_registry(settings.schema_registry_url)
        self.timeout_s = settings.gateway_kafka_timeout_s
        self.producer = ReliableProducer(settings, "gateway", "clawstream-gateway", {
            # a request's messages are produced in one burst and it waits for their acks:
            # a short linger answers sooner (2 ms cost ~25% of the bench's throughput)
            "linger.ms": 0.5,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "message.timeout.ms": int(self.timeout_s * 1000),
            "error_cb": self._on_error,
        }, per_message_reports=True)
        self.dlq = DeadLetterQueue(self.producer, settings.topic(DLQ), "gateway")
        self.topics = {name: settings.topic(name) for name in EVENT_TOPICS}
        self.kafka_up = True
        self._stop = threading.Event()
        self._next_probe = 0.0
        self._thread = threading.Thread(target=self._run, name="gateway-kafka", daemon=True)
        self._thread.start()

    # -- Kafka's state ----------------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.kafka_up:
                log.warning("kafka unreachable (%s): refusing events (503)", err.str())
            self.kafka_up = False

    def probe(self, timeout: float = 1.0) -> bool:
        try:
            self.producer.producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def _run(self) -> None:
        producer = self.producer.producer
        while not self._stop.is_set():
            try:
                producer.poll(0.05)
                if not self.kafka_up and time.monotonic() >= self._next_probe:
                    self._next_probe = time.monotonic() + 1.0
                    if self.probe():
                        log.info("kafka answers again: accepting events")
                        self.kafka_up = True
            except Exception:  # the delivery thread must not die
                log.exception("gateway kafka thread")
                time.sleep(0.2)

    # -- one batch --------------------------------------------------------------------------
    def write(self, items: Sequence[bytes | Item], token: TokenRecord,
              loop: asyncio.AbstractEventLoop) -> tuple[Checked, Acks]:
        """Check every item; produce the accepted ones and dead-letter the others, every
        message reported to the returned `Acks`. Runs on the event loop: produce() only
        queues. Each item is checked by the contract's reader (`Serde.identify`: the compiled
        check, else a whole decode): what the gateway accepts, every reader can read."""
        out = Checked()
        principal = token.principal.encode()
        headers = [(PRINCIPAL, principal)]
        identify = self.serde.identify
        topics = self.topics
        allowed: dict[str, bool] = {}  # agent id -> bound to the token (a batch has few)
        accepted: list[tuple[str, bytes, bytes | None]] = []
        append = accepted.append
        refused: list[tuple[bytes, bytes | None, str]] = []  # (value, key, topic)
        for index, item in enumerate(items):
            try:
                if type(item) is bytes:
                    value = item
                else:
                    assert isinstance(item, Item)
                    value = self._encode_json(item)
                schema, agent_id = identify(value)
            except DecodeError as exc:
                self._refuse(out, refused, index, item, 400, f"undecodable-{exc.reason}",
                             exc.detail, "", None)
                continue
            except _Refused as exc:
                self._refuse(out, refused, index, item, 400, exc.reason, exc.detail, "", None)
                continue
            topic = topics.get(schema.topic or "")
            key = agent_id.encode()
            if topic is None:
                self._refuse(out, refused, index, item, 400, "not-an-agent-event",
                             f"{schema.name} events are not sent by agents",
                             schema.topic or "", key)
                continue
            ok = allowed.get(agent_id)
            if ok is None:
                ok = allowed[agent_id] = token.allows(agent_id)
            if not ok:
                self._refuse(out, refused, index, item, 403, "agent-mismatch",
                             f"agent_id {agent_id!r} is not bound to {token.principal} "
                             f"({token.binding})", topic, key)
                continue
            if len(value) > MAX_MESSAGE_BYTES - _DLQ_ROOM:
                self._refuse(out, refused, index, item, 413, "too-large",
                             f"{len(value)} bytes: an event is at most "
                             f"{MAX_MESSAGE_BYTES - _DLQ_ROOM} bytes", topic, key)
                continue
            append((topic, value, key))
        out.accepted = len(accepted)
        # a dead letter Kafka could not take either is not written: its sender has it back
        # with the reason (the 207), and the log says so
        letters = [(refusal, dead, dead_key, headed) for refusal, (dead, dead_key, headed)
                   in zip(out.refusals, refused, strict=True)
                   if len(dead) <= MAX_MESSAGE_BYTES - _DLQ_ROOM]
        if len(letters) < len(refused):
            log.warning("%d refused items from %s too large for the DLQ: only answered",
                        len(refused) - len(letters), token.principal)
        acks = Acks(loop, len(accepted) + len(letters))
        for refusal, dead, dead_key, headed in letters:
            self.dlq.reject(dead, dead_key, reason=refusal.reason, detail=refusal.detail,
                            topic=headed, extra_headers=headers, on_delivery=acks.report)
        self.producer.produce_many(accepted, headers=headers, on_delivery=acks.report)
        return out, acks

    def _encode_json(self, item: Item) -> bytes:
        try:
            schema = self.serde.schema(item.event_type or "")
        except KeyError:
            raise _Refused("unknown-type", f"no event type {item.event_type!r}") from None
        if item.record is None:
            raise _Refused("invalid-record", 'each event is {"type": ..., "record": {...}}')
        try:
            return self.serde.encode(schema, item.record)
        except (EncodeError, KeyError, TypeError, ValueError) as exc:
            raise _Refused("invalid-record", str(exc)[:500]) from None

    @staticmethod
    def _refuse(out: Checked, refused: list[tuple[bytes, bytes | None, str]], index: int,
                item: bytes | Item, status: int, reason: str, detail: str, topic: str,
                key: bytes | None) -> None:
        out.refusals.append(Refusal(index, status, reason, detail))
        refused.append((item.value if isinstance(item, Item) else item, key, topic))

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.producer.producer.flush(timeout)


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
