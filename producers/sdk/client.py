"""`AgentClient`: the one object an agent uses to emit every event type.

It fills the envelope (event_id, per-agent `seq` that survives restarts, session/trace ids,
parent_id, event_time), has the event encoded (`producers.sdk.encoding`) and hands it to its
`Transport`, keyed by agent_id: straight into librdkafka, or to the disk spool during an
outage (`producers.sdk.outage`). It is the transport's `DeliveryListener`: delivery reports
end up in its counts (`producers.sdk.accounting`), or, for a failure, with
`producers.sdk.failures` (retried from the spool, or rejected and kept).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from producers.blobstore import BlobStore
from producers.sdk import encoding
from producers.sdk.accounting import DELIVERY_LATENCY, DeliveryCounts
from producers.sdk.encoding import (
    SHARED_IDS,
    EventEncoder,
    SeqCounter,
    agent_dir_name,
    lock_agent_dir,
    unlock_agent_dir,
)
from producers.sdk.events import ClaimCheck, TypedEvents
from producers.sdk.failures import DeliveryFailure, DeliveryFailures
from producers.sdk.outage import OutageSpool
from producers.sdk.transport import Transport
from producers.settings import SdkSettings
from producers.spool import Spool
from schemas.serde import Serde

log = logging.getLogger("producers.sdk")

_time_ns = time.time_ns
_monotonic = time.monotonic


class AgentClient(TypedEvents):
    """Emits one agent's events. Thread-safe; one process per agent_id (a lock file says so).

    Delivery failures are never silent: per-type counts (`stats()`), the `on_delivery_error`
    hook, logs and Prometheus metrics."""

    def __init__(
        self,
        settings: SdkSettings,
        agent_id: str,
        *,
        session_id: str | None = None,
        replica_id: str | None = None,
        producer_name: str | None = None,
        transport: Transport | None = None,
        serde: Serde | None = None,
        id_factory: Callable[[], str] | None = None,
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
        spool_fsync: str = "interval",
        queue_full_block_s: float = 0.5,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.replica_id = replica_id
        self.producer_name = producer_name or settings.producer_name
        self.queue_full_block_s = queue_full_block_s
        self.serde = serde or Serde.for_registry(settings.schema_registry_url)
        #: the Kafka key of every event (DeliveryListener: reports are routed by it)
        self.key = agent_id.encode()
        self._new_id = id_factory or SHARED_IDS
        # emit calls _pop_id: the shared generator's list.pop (IndexError: refill), or the
        # factory itself
        self._pop_id = SHARED_IDS.pop if id_factory is None else id_factory
        self._lock = threading.RLock()
        self._closed = False  # no more events
        self._finalized = False  # files released
        self._started = time.monotonic()

        dir_name = agent_dir_name(agent_id, replica_id)
        data_dir = Path(settings.data_dir)
        state_dir = data_dir / "sdk" / "agents" / dir_name
        self._lock_fd = lock_agent_dir(state_dir, agent_id)
        self._seq = SeqCounter(state_dir / "seq")
        self._seqv = self._seq.value  # the emit path's copy; the mmap is written per event
        self._seq_view = self._seq.view
        self.blobs = BlobStore(data_dir / "blobs")
        self.claim_check = ClaimCheck(self.blobs)
        spool = Spool(data_dir / "spool" / dir_name, max_bytes=settings.spool_max_bytes,
                      fsync=spool_fsync)

        self._owns_transport = transport is None
        self.transport = transport or Transport(settings, exclusive=True,
                                                **(producer_config or {}))
        self.counts = DeliveryCounts(agent_id, counting=self.transport.counts_deliveries)
        self.encoder = EventEncoder(
            self.serde, agent_id, self.producer_name, settings.topic,
            session_id or str(uuid.uuid4()),
            on_new_type=lambda info: self.counts.track(info.topic, info.event_type))
        self._types = self.encoder.types
        self.failures = DeliveryFailures(
            agent_id, self.key, self.counts, self._lock,
            data_dir / "spool" / f"{dir_name}.rejected", on_delivery_error,
            respool=lambda *event_why: self.outage.take_back(*event_why))
        self.outage = OutageSpool(
            agent_id, self.key, spool, self._lock, self.transport, self.counts,
            reject=self.failures.reject, direct_in_flight=self._direct_in_flight,
            settle=self._settle_delivered)
        accel = encoding.accelerator()
        if accel is not None and type(self).on_delivery is AgentClient.on_delivery:
            # the compiled report of a delivered event (same steps, same state)
            self.on_delivery = accel.DeliveryReports(  # type: ignore[method-assign]
                self, AgentClient.on_delivery, DELIVERY_LATENCY.observe).report
        self.transport.register(self)
        self._produce = self.transport.producer.produce
        if accel is not None and type(self).emit is AgentClient.emit:
            # the compiled emit (same steps, same state); a subclass's own emit is kept
            self.emit = accel.Emitter(self, AgentClient.emit, KafkaException).emit  # type: ignore[method-assign]
        ref = weakref.ref(self)
        self._atexit = lambda: (c := ref()) is not None and c.close(timeout=5)
        atexit.register(self._atexit)  # a forgotten close() must not lose queued events

    # -- emitting -------------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        """The session_id (and default trace_id) of the events emitted from now on."""
        return self.encoder.session_id

    @session_id.setter
    def session_id(self, value: str) -> None:
        self.encoder.session_id = value

    def new_session(self, session_id: str | None = None) -> str:
        """Start a new episode: later events carry this session_id (and it as trace_id)."""
        self.session_id = session_id or str(uuid.uuid4())
        return self.session_id

    def emit(
        self,
        event_type: str,
        body: dict[str, Any],
        *,
        parent_id: str | None = None,
        event_time: int | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Emit one event; the envelope is filled here. Returns its event_id.

        Raises EncodeError for a body that does not fit the schema, SpoolFullError when the
        broker is away and the spool is at its cap (the event is not taken, seq unchanged).
        `producers/_accel.pyx` (`Emitter`) has the same steps in C for the usual call.
        """
        info = self._types.get(event_type)
        if info is None:
            info = self.encoder.type_info(event_type)
        if event_time is None:
            event_time = _time_ns() // 1_000_000
        lock = self._lock
        lock.acquire()  # (cheaper than `with`: no __exit__ call)
        try:
            if self._closed:
                raise RuntimeError("AgentClient is closed")
            if event_id:
                eid = event_id
            else:
                try:
                    eid = self._pop_id()
                except IndexError:
                    eid = self._new_id()
            seq = self._seqv + 1
            value = self.encoder.encode(info, body, eid, session_id, trace_id, parent_id,
                                        event_time, seq)
            if self.outage.active:
                self._send(info.topic, value)
            else:
                try:
                    self._produce(info.topic, value, self.key)
                    counts = self.counts
                    sent = counts.direct_sent = counts.direct_sent + 1
                    if not seq & 63:  # the latency metric's sample (counting mode)
                        counts.latency_probe = (_monotonic(), sent)
                except (BufferError, KafkaException):
                    self._send(info.topic, value)
            self._seqv = seq
            self._seq_view[0] = seq  # persisted (mmap) before returning
            info.emitted += 1
        finally:
            lock.release()
        return eid

    def _send(self, topic: str, value: bytes) -> None:
        """Direct to librdkafka, or to the spool while spooling (caller holds the lock)."""
        counts = self.counts
        if not self.outage.active:
            try:
                self.transport.producer.produce(topic, value, self.key)
                counts.direct_sent += 1
                return
            except BufferError:  # back-pressure, then the spool
                if self.transport.produce_when_room(topic, value, self.key,
                                                    self.queue_full_block_s):
                    counts.direct_sent += 1
                    return
                self.outage.enter("local producer queue full")
            except KafkaException as exc:
                self.failures.reject(topic, exc.args[0], value)
                counts.diverted[topic] += 1
                return
        self.outage.append(topic, value)  # may raise SpoolFullError
        counts.spooled[topic] += 1
        counts.diverted[topic] += 1

    # -- DeliveryListener: what the transport reports ----------------------------------------
    @property
    def spooling(self) -> bool:
        """New events go to the disk spool (the broker is away, or the spool not drained)."""
        return self.outage.active

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """A replayed event while a replay batch is out (no direct event is in flight then),
        a direct one otherwise."""
        batch = self.outage.batch
        if batch is not None:
            batch.report(err, msg)
            return
        counts = self.counts
        if err is None:  # (per-event mode only: counting mode reports failures only)
            counts.delivered[msg.topic()] += 1
            done = counts.direct_done = counts.direct_done + 1
            if not done & 63:  # latency sampled, 1 in 64 (Histogram.observe is not cheap)
                lat = msg.latency()
                if lat is not None:
                    DELIVERY_LATENCY.observe(lat)
            return
        self.failures.direct_failed(err, msg)
        if not counts.counting:  # (counting: len(producer) drops by itself)
            counts.direct_done += 1

    def on_broker_down(self, why: str) -> None:
        self.outage.enter(why)

    def on_poll(self) -> None:
        if self.outage.batch is None:
            self.counts.observe_latency(self.transport.producer)

    def on_housekeeping(self) -> None:
        """Once a second: fsync the spool, export metrics."""
        if not self._closed:
            self.outage.sync()
        self.export_metrics()

    def replay(self, budget_s: float = 0.5) -> None:
        self.outage.replay(budget_s)

    def on_transport_closed(self) -> None:
        self._finalize()

    def on_producer_replaced(self) -> None:
        self._produce = self.transport.producer.produce

    # -- state ----------------------------------------------------------------------------------
    def _direct_in_flight(self) -> int:
        """Events handed to librdkafka by emit and not settled yet (delivered or failed and
        taken back). Counting mode: what the producer holds, unless a replay batch is out
        (direct sends wait until it is settled); a lower bound never lets pending() say 0
        too early."""
        counts = self.counts
        if not counts.counting:
            return counts.direct_sent - counts.direct_done
        if self.outage.batch is not None or self._finalized:
            return 0
        return len(self.transport.producer)

    def _settle_delivered(self) -> None:
        """Counting mode: `delivered` from the queue length (`DeliveryCounts.settle`)."""
        if not self.counts.counting:
            return
        with self._lock:
            if self.outage.batch is not None or self._finalized:
                return  # (direct sends are settled before a replay starts and at close)
            self.counts.settle(self.emitted, len(self.transport.producer))

    def export_metrics(self) -> None:
        """Bring the Prometheus metrics up to date (done once a second anyway)."""
        self._settle_delivered()
        self.counts.export(self.outage.spool)

    @property
    def seq(self) -> int:
        """The seq of the last event emitted by this agent (across restarts)."""
        return self._seqv

    @property
    def emitted(self) -> dict[str, int]:
        """Events taken by emit, by topic."""
        return self.encoder.emitted()

    @property
    def spool(self) -> Spool:
        """The disk spool of events waiting for Kafka."""
        return self.outage.spool

    @property
    def rejected(self) -> Path:
        """Where events Kafka will never accept are kept."""
        return self.failures.rejected

    @property
    def on_delivery_error(self) -> Callable[[DeliveryFailure], None] | None:
        """Called with every delivery failure (transport thread)."""
        return self.failures.hook

    @on_delivery_error.setter
    def on_delivery_error(self, hook: Callable[[DeliveryFailure], None] | None) -> None:
        self.failures.hook = hook

    def liveness(self) -> tuple[float, int, int]:
        """(uptime in seconds, producer queue depth, spool depth): a heartbeat's defaults."""
        return (time.monotonic() - self._started, len(self.transport.producer),
                self.outage.spool.depth_messages)

    def pending(self) -> int:
        """Events emitted but not yet acknowledged by Kafka."""
        return (self._direct_in_flight() + self.outage.taken_back
                + self.outage.spool.depth_messages)

    def stats(self) -> dict[str, Any]:
        """Counts per event type, and what is still waiting."""
        self._settle_delivered()
        return {
            **self.counts.stats(self.emitted),
            "pending": self.pending(),
            "spool_messages": self.outage.spool.depth_messages,
            "spool_bytes": self.outage.spool.depth_bytes,
            "seq": self.seq,
            "credential_refused": self.transport.credential_refused,  # (spooling meanwhile)
        }

    # -- closing --------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0, *, stop_when_broker_down: bool = False) -> int:
        """Wait until everything emitted so far reached Kafka; return how many have not."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pending()
            if left <= 0 or time.monotonic() >= deadline:
                return max(left, 0)
            if stop_when_broker_down and not self.transport.broker_up:
                return left  # nothing to wait for: close() keeps them on disk
            time.sleep(0.005)

    def close(self, timeout: float = 30.0) -> int:
        """Flush, then release everything. Undelivered events stay in the spool (on disk) and
        are replayed by the next AgentClient of this agent. Returns that number."""
        if self._closed:
            return 0
        atexit.unregister(self._atexit)
        left = self.flush(timeout, stop_when_broker_down=True)
        if self._owns_transport:
            self.transport.unregister(self, finalize_later=True)
            self.transport.close(timeout=1.0)  # purges what is left and finalizes us
        elif self._direct_in_flight() > 0:
            # the shared producer still holds some of ours: finalize when it closes
            self.transport.unregister(self, finalize_later=True)
            self._closed = True
            return left
        else:
            self.transport.unregister(self)
            self._finalize()
        return left

    def _finalize(self) -> None:
        with self._lock:
            if self._finalized:
                return
            self.transport.forget(self)
            self._closed = True
            self.outage.flush_front()
            left = self.outage.spool.depth_messages
            self.export_metrics()
            self.outage.close()
            self._seq.close()
            unlock_agent_dir(self._lock_fd)
            self._finalized = True
        if left:
            log.warning("agent %s: %d events not delivered; kept in %s for the next run",
                        self.agent_id, left, self.outage.spool.dir)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
