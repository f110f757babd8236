"""The SDK's Kafka side: one confluent-kafka producer (or the ingest gateway's stand-in for
it, `producers.sdk.https`, when `ingest_url` says so: `make_transport`), shared by any number
of agents' clients, and the thread that serves its callbacks, probes the broker during
outages and asks the clients with spooled events to replay them.

The transport knows its clients only as `DeliveryListener`s: it routes each delivery report
to the client whose key (agent_id) the event carries, and tells every client when the broker
went away, when to replay, when to do its housekeeping and when the producer is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import Counter, Gauge

from clawstream.kafka.config import client_config
from producers.settings import SdkSettings

log = logging.getLogger("producers.sdk")

#: Errors that mean "this event will never be accepted": rejected, not respooled.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError._MSG_SIZE_TOO_LARGE if hasattr(KafkaError, "_MSG_SIZE_TOO_LARGE") else -999,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._INVALID_ARG,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    }
)


#: Errors that mean "Kafka refuses this agent's credential" (a wrong password, a revoked
#: credential, rights taken away): nothing is wrong with the events, so they are kept in the
#: spool and delivered once a valid credential is configured, never rejected.
CREDENTIAL_ERRORS = frozenset(
    {
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
#: While refused, how often the same credential is tried again (rights may come back); a
#: changed credential (the client config file or the settings) is tried within a second.
REFUSED_RETRY_S = 10.0

CREDENTIAL_REFUSED = Counter(
    "clawstream_sdk_credential_refusals_total",
    "Times Kafka refused the agent side's credential (events are spooled meanwhile).")
REFUSED_NOW = Gauge(
    "clawstream_sdk_credential_refused",
    "1 while Kafka refuses the credential and events wait in the spool.")


def producer_config(settings: SdkSettings, **overrides: Any) -> dict[str, Any]:
    """The SDK's producer: the runtime's idempotent acks=all producer (`clawstream.kafka`),
    batched for throughput, riding out broker restarts."""
    return client_config(settings, "agent", "producer", {
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        # Long enough to ride out a broker restart inside librdkafka; longer outages come
        # back as _MSG_TIMED_OUT and are respooled in front of the spool.
        "message.timeout.ms": 300_000,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "client.id": settings.producer_name,
        "log.connection.close": False,
        **overrides,
    })


def _credential_of(conf: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(conf.get(k) for k in ("security.protocol", "sasl.username", "sasl.password",
                                       "ssl.ca.pem"))


def make_transport(settings: SdkSettings, *, exclusive: bool = False,
                   **config_overrides: Any) -> Transport:
    """The transport the settings choose: Kafka at `bootstrap_servers`, or the HTTPS ingest
    gateway when `ingest_url` is an https:// URL (`producers.sdk.https`)."""
    if settings.ingest_url:
        from producers.sdk.https import HttpsTransport

        return HttpsTransport(settings, exclusive=exclusive, **config_overrides)
    return Transport(settings, exclusive=exclusive, **config_overrides)


class DeliveryListener(Protocol):
    """What a `Transport` tells each client it serves (`AgentClient` is one). All calls come
    from the transport thread, except `on_broker_down` (whichever thread polls the producer)
    and `on_transport_closed` (the thread closing the transport, once its thread stopped)."""

    #: the Kafka key of the client's events (its agent_id): reports are routed by it
    key: bytes
    agent_id: str

    @property
    def spooling(self) -> bool:
        """Events wait on disk: `replay` is called once the broker answers."""
        ...

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """One event's delivery report (counting mode: failures only)."""

    def on_broker_down(self, why: str) -> None:
        """No broker answers: send new events to the disk spool."""

    def on_poll(self) -> None:
        """After each poll of the producer (counting mode only)."""

    def on_housekeeping(self) -> None:
        """Once a second."""

    def replay(self, budget_s: float) -> None:
        """The broker answers: send spooled events, for about `budget_s` seconds."""

    def on_transport_closed(self) -> None:
        """The producer is closed; whatever it still held was handed back (`on_delivery`)."""

    def on_producer_replaced(self) -> None:
        """`Transport.producer` is a new Producer (a new credential): produce through it."""


class Transport:
    """One confluent-kafka Producer shared by AgentClients, and the thread that serves its
    callbacks, probes the broker during outages and replays spools.

    `exclusive=True` (what an AgentClient creating its own transport asks for): one client
    only, and delivery is counted instead of reported per event (`producers.sdk.accounting`)."""

    def __init__(self, settings: SdkSettings, *, exclusive: bool = False,
                 **config_overrides: Any) -> None:
        self.settings = settings
        self._overrides = config_overrides
        #: True: only failures are reported; successes are counted from len(producer)
        self.counts_deliveries = exclusive
        conf = self._config()
        self.producer = self._new_producer(conf)
        self._credential = _credential_of(conf)
        self.message_timeout_s = conf["message.timeout.ms"] / 1000
        self.broker_up = True
        #: why Kafka refuses our credential (events are spooled meanwhile), or None
        self.credential_refused: str | None = None
        self._refused_since = 0.0
        self._quiet_until = 0.0
        self._next_credential_check = 0.0
        self.listeners: list[DeliveryListener] = []
        self._by_key: dict[bytes, DeliveryListener] = {}
        #: key -> the listener's on_delivery, bound once (the per-event path)
        self._reports: dict[bytes, Callable[[KafkaError | None, Any], None]] = {}
        self._to_finalize: list[DeliveryListener] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_probe = 0.0
        self._thread = threading.Thread(target=self._run, name="clawstream-sdk", daemon=True)
        self._thread.start()

    def _config(self) -> dict[str, Any]:
        """The producer's configuration as the settings say now (the credential included:
        a client config file replaced on disk is read again)."""
        conf = producer_config(self.settings, **self._overrides)
        conf["error_cb"] = self._on_error
        # One delivery callback for the whole producer, routed by key (= agent_id): a
        # per-message on_delivery costs ~2 µs per produce() in confluent-kafka.
        conf["on_delivery"] = self._on_delivery
        if self.counts_deliveries:
            conf["delivery.report.only.error"] = True
        return conf

    # -- a refused credential --------------------------------------------------------------------
    def refuse(self, err: KafkaError) -> None:
        """Kafka refused our credential: say so once, clearly, count it, and spool."""
        if self.credential_refused is None:
            self.credential_refused = err.str()
            now = self._refused_since = time.monotonic()
            CREDENTIAL_REFUSED.inc()
            REFUSED_NOW.set(1)
            if now < self._quiet_until:  # (refused again after a retry: said not long ago)
                log.debug("kafka still refuses this agent's credential: %s", err.str())
            else:
                self._quiet_until = now + 60.0
                log.error(
                "kafka refuses this agent's credential (%s): events are kept in the disk "
                    "spool until a valid credential is configured (CLAWSTREAM_KAFKA_SASL_* or "
                    "the client config file CLAWSTREAM_KAFKA_CLIENT_CONFIG from `clawstream "
                    "credentials add agent NAME`); the SDK picks a new one up by itself",
                    err.str())
        self.broker_up = False
        for listener in list(self.listeners):
            listener.on_broker_down(f"credential refused ({err.str()})")

    def _credential_changed(self) -> bool:
        try:
            now = _credential_of(client_config(self.settings, "agent", "producer"))
        except Exception as exc:  # an unreadable file, half written: keep the current one
            log.debug("credential not readable yet: %s", exc)
            return False
        changed, self._credential = now != self._credential, now
        return changed

    def _retry_refused(self, now: float) -> bool:
        """While refused: a changed credential gets a new producer (connections made with the
        old one stay authenticated as its principal); the same one is tried again every
        `REFUSED_RETRY_S`. True: try the replay now."""
        if now < self._next_credential_check:
            return False
        self._next_credential_check = now + 1.0
        if self._credential_changed():
            log.info("a new kafka credential is configured: reconnecting with it")
            self._replace_producer()
        elif now - self._refused_since < REFUSED_RETRY_S:
            return False
        self._refused_since = now
        self.credential_refused = None
        REFUSED_NOW.set(0)
        return True

    def _replace_producer(self) -> None:
        """A new Producer (the settings' credential now); what the old one held is handed
        back through its delivery reports and respooled (the listeners spool meanwhile)."""
        old = self.producer
        old.purge(in_queue=True, in_flight=True)
        old.flush(5)
        self.producer = self._new_producer(self._config())
        for listener in [*self.listeners, *self._to_finalize]:
            listener.on_producer_replaced()
        close = getattr(old, "close", None)
        if close is not None:
            close()

    def _new_producer(self, conf: dict[str, Any]) -> Any:
        """The producer events go through (`producers.sdk.https.HttpsTransport`: the gateway)."""
        return Producer(conf)

    # -- callbacks (transport thread) ---------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        code = err.code()
        if code in CREDENTIAL_ERRORS:
            self.refuse(err)
        elif code == KafkaError._ALL_BROKERS_DOWN:
            if self.broker_up:
                log.warning("kafka unreachable (%s): spooling events to disk", err.str())
            self.broker_up = False
            for listener in list(self.listeners):
                listener.on_broker_down("all brokers down")
        elif err.fatal():
            log.error("kafka producer fatal error: %s", err.str())
        else:
            log.debug("kafka producer error: %s", err.str())

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and err.code() in CREDENTIAL_ERRORS:
            self.refuse(err)  # (first: the failed event is then taken back, not sent again)
        report = self._reports.get(msg.key())
        if report is not None:
            report(err, msg)
        elif err is not None:
            log.error("delivery of an event of a closed client failed: %s", err.str())

    def probe(self, timeout: float = 1.0) -> bool:
        """Does the broker answer a metadata request?"""
        try:
            self.producer.list_topics(timeout=timeout)
            return True
        except KafkaException:
            return False

    def _run(self) -> None:
        next_maint = next_sync = 0.0
        while not self._stop.is_set():
            try:
                self.producer.poll(0.05)
                if self.counts_deliveries:
                    for listener in self.listeners:
                        listener.on_poll()
                now = time.monotonic()
                if now >= next_maint:
                    next_maint = now + 0.2
                    self._maintain(now)
                if now >= next_sync:
                    next_sync = now + 1.0
                    for listener in list(self.listeners):
                        listener.on_housekeeping()
            except Exception:  # never let the delivery thread die
                log.exception("sdk transport thread error")
                time.sleep(0.5)

    def _maintain(self, now: float) -> None:
        spooling = [c for c in self.listeners if c.spooling]
        if not spooling:
            return
        if self.credential_refused is not None and not self._retry_refused(now):
            return
        if not self.broker_up:
            if now < self._next_probe:
                return
            self._next_probe = now + 1.0
            if not self.probe():
                return
            log.info("kafka answers again: replaying spools")
            self.broker_up = True
        for listener in spooling:
            listener.replay(0.5)

    def produce_when_room(self, topic: str, value: bytes, key: bytes, timeout: float) -> bool:
        """Back-pressure for a full local queue: produce as soon as librdkafka drained enough,
        within `timeout` seconds and while the broker is up. False: not produced."""
        deadline = time.monotonic() + timeout
        while self.broker_up and time.monotonic() < deadline:
            time.sleep(0.001)
            try:
                self.producer.produce(topic, value, key)
            except BufferError:
                continue
            return True
        return False

    def poll_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Serve callbacks until `done()` (transport thread only)."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._stop.is_set() or time.monotonic() >= deadline:
                return done()
            self.producer.poll(0.05)
        return True

    # -- membership -----------------------------------------------------------------------------
    def register(self, listener: DeliveryListener) -> None:
        with self._lock:
            if listener.key in self._by_key:
                raise RuntimeError(f"agent {listener.agent_id!r} already has a client here")
            if self.counts_deliveries and (self.listeners or self._to_finalize):
                raise RuntimeError("an exclusive Transport serves one AgentClient")
            self.listeners = [*self.listeners, listener]
            self._by_key[listener.key] = listener
            self._reports[listener.key] = listener.on_delivery
        if not self.broker_up:
            listener.on_broker_down("kafka unreachable")

    def unregister(self, listener: DeliveryListener, *, finalize_later: bool = False) -> None:
        """No more replays or housekeeping for `listener`. Its reports keep coming until
        `forget` when `finalize_later` (the producer still holds some of its events: it is
        told `on_transport_closed` when this transport closes)."""
        with self._lock:
            self.listeners = [c for c in self.listeners if c is not listener]
            if finalize_later:
                self._to_finalize.append(listener)
            else:
                self._forget(listener)

    def forget(self, listener: DeliveryListener) -> None:
        """No more delivery reports for `listener` (it is closed)."""
        with self._lock:
            self._forget(listener)

    def _forget(self, listener: DeliveryListener) -> None:
        if self._by_key.get(listener.key) is listener:
            del self._by_key[listener.key]
            self._reports.pop(listener.key, None)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; anything librdkafka still holds is purged and handed back to its
        client, which writes it to its spool (so it is replayed by the next run)."""
        if self._stop.is_set():
            return
        self._stop.set()  # from here on only this thread serves callbacks
        self._thread.join(timeout=max(timeout, 5) + self.message_timeout_s)
        if len(self.producer) and self.broker_up:
            self.producer.flush(max(timeout, 0))
        if len(self.producer):
            self.producer.purge(in_queue=True, in_flight=True)
        self.producer.flush(5)
        for listener in [*self.listeners, *self._to_finalize]:
            listener.on_transport_closed()
        self.listeners = []
        self._to_finalize = []
        self._by_key = {}
        self._reports = {}
        close = getattr(self.producer, "close", None)
        if close is not None:  # confluent-kafka >= 2.x: free librdkafka's threads now
            close()
