"""The agent SDK: the one object an agent uses to emit every event type.

`AgentClient` fills the envelope (event_id, per-agent `seq` that survives restarts,
session/trace ids, parent_id, event_time), encodes Avro with compiled encoders (the optional
C accelerator `producers._accel` when it was built, else `schemas.codegen`'s) and produces
through an idempotent confluent-kafka producer (acks=all, lz4, batching), keyed by agent_id.

Outage handling (nothing is lost, per-agent order holds, seq has no gaps):

- *direct* mode: events go straight into librdkafka. Its queue survives short outages by
  itself (long ``message.timeout.ms``, idempotent retries keep order).
- When the broker is unreachable (``_ALL_BROKERS_DOWN``), the local queue stays full, or a
  delivery fails, the client switches to *spooling*: every new event is appended to the disk
  spool (`producers.spool`), so order is kept while the spool is non-empty.
- Events librdkafka gives back (timed out, purged on close) are put *in front of* the spool,
  sorted by seq: they are older than anything spooled.
- The transport thread probes the broker; once it answers and librdkafka's own queue of
  direct events has drained, it replays the spool in batches, acknowledging (deleting) a batch
  only after every record in it was delivered, and switches back to direct mode when the
  spool is empty. Replays can duplicate (at-least-once); consumers dedupe by event_id.

Delivery failures are never silent: per-type counters, the `on_delivery_error` hook, logs
and Prometheus metrics (``clawstream_sdk_*``).

Delivery tracking: a client with its own producer (the default) asks librdkafka to report
only failures (``delivery.report.only.error``) and counts the rest: whatever left the
producer's queue (``len(producer)``) without a failure report was acknowledged. That saves a
Python callback per event, which costs about as much CPU as the produce() call itself. A
producer shared by several clients (`Transport` passed in, e.g. the fleet) keeps one report
per event, because the queue length cannot say whose events are still in it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import mmap
import os
import struct
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import Counter, Gauge, Histogram

from clawstream import __version__
from clawstream.kafka.config import client_config
from clawstream.settings import Settings
from producers.blobstore import BlobStore, average_hash, encode_image, make_thumbnail
from producers.spool import Spool, SpoolFullError  # noqa: F401 (re-exported)
from schemas.codegen import avro_long, avro_string, compile_encoder, write_long
from schemas.registry import EventSchema
from schemas.serde import CONFLUENT_MAGIC, SOE_MAGIC, Serde

log = logging.getLogger(__name__)

#: The optional compiled encoder (producers/_accel.pyx, built at install when possible);
#: CLAWSTREAM_NO_ACCEL=1 forces the pure-Python encoders.
_accel: Any = None
if os.environ.get("CLAWSTREAM_NO_ACCEL", "") in ("", "0"):
    try:
        from producers import _accel
    except ImportError:
        _accel = None

# -- metrics ----------------------------------------------------------------------------------
EVENTS_PRODUCED = Counter(
    "clawstream_sdk_events_produced_total", "Events acknowledged by Kafka.", ["type"]
)
EVENTS_SPOOLED = Counter(
    "clawstream_sdk_events_spooled_total", "Events written to the disk spool.", ["type"]
)
EVENTS_REPLAYED = Counter(
    "clawstream_sdk_events_replayed_total", "Spooled events delivered on replay.", ["type"]
)
EVENTS_FAILED = Counter(
    "clawstream_sdk_events_failed_total",
    "Delivery failures, by type and fate (respooled or rejected).",
    ["type", "fate"],
)
SPOOL_DEPTH_BYTES = Gauge("clawstream_sdk_spool_depth_bytes", "Bytes waiting in spools.", ["agent"])
SPOOL_DEPTH_MESSAGES = Gauge(
    "clawstream_sdk_spool_depth_messages", "Events waiting in spools.", ["agent"]
)
DELIVERY_LATENCY = Histogram(
    "clawstream_sdk_delivery_latency_seconds",
    "produce() to broker acknowledgement (sampled 1 in 64).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

#: Errors that mean "this event will never be accepted": rejected, not respooled.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError._MSG_SIZE_TOO_LARGE if hasattr(KafkaError, "_MSG_SIZE_TOO_LARGE") else -999,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._INVALID_ARG,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    }
)

_time_ns = time.time_ns
_monotonic = time.monotonic
#: union branch "string" + the one-byte length of a short string, by length
_SHORT_STRING_IN_UNION = [bytes((2, n << 1)) for n in range(64)]
#: hex digit -> the RFC 4122 variant digit (10xx) keeping its two low bits random
_HEX_TO_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")


class RandomIds:
    """uuid4 strings made in batches from os.urandom, column by column with C-level slice
    operations: ~0.05 µs an id instead of ~1.5 µs for str(uuid.uuid4()). Thread-safe (one
    is shared by every AgentClient of a process); a forked child starts with a fresh batch."""

    BATCH = 4096

    def __init__(self) -> None:
        self.ids: list[str] = []  # ready ids; AgentClient.emit pops from it directly
        self.pop = self.ids.pop
        _ALL_RANDOM_IDS.add(self)

    def __call__(self) -> str:
        while True:
            try:
                return self.pop()
            except IndexError:
                self.refill()

    def refill(self) -> None:
        k = self.BATCH
        if _accel is not None:  # the same strings, written in C (~0.03 µs an id)
            self.ids.extend(_accel.uuid4_strings(os.urandom(16 * k)))
            return
        hexed = os.urandom(16 * k).hex().encode()  # 32 hex digits per id
        out = bytearray(37 * k)  # 36 characters and a newline per id
        src = 0
        for pos in range(36):
            if pos in (8, 13, 18, 23):
                out[pos::37] = b"-" * k
                continue
            if pos == 14:
                out[pos::37] = b"4" * k  # version 4
            elif pos == 19:
                out[pos::37] = hexed[src::32].translate(_HEX_TO_VARIANT)
            else:
                out[pos::37] = hexed[src::32]
            src += 1
        out[36::37] = b"\n" * k
        self.ids.extend(out[:-1].decode("ascii").split("\n"))


_ALL_RANDOM_IDS: weakref.WeakSet[RandomIds] = weakref.WeakSet()
# ids made before a fork must not be handed out twice (once in each process)
os.register_at_fork(after_in_child=lambda: [r.ids.clear() for r in list(_ALL_RANDOM_IDS)])
_SHARED_IDS = RandomIds()


@dataclass(frozen=True)
class DeliveryFailure:
    """What the `on_delivery_error` hook receives."""

    agent_id: str
    event_type: str
    topic: str
    error: KafkaError
    value: bytes | None
    respooled: bool  # True: kept and retried later; False: rejected for good


@dataclass
class _TypeInfo:
    event_type: str
    topic: str
    header: bytes
    encode_body: Callable[[dict[str, Any], bytearray], None]
    schema: EventSchema
    header_uuid: bytes = b""  # header + the length byte of a 36-character event_id
    emitted: int = 0  # events of this type taken by emit (sent or spooled)
    plan: Any = None  # the compiled accelerator's plan of the body, when it is there

    def __post_init__(self) -> None:
        self.header_uuid = self.header + b"\x48"


class SeqCounter:
    """The per-agent seq, in an mmap'ed 8-byte file: survives a kill -9 at no per-event cost."""

    _FMT = struct.Struct("<q")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size < 8:
            os.ftruncate(self._fd, 8)
        self._mm = mmap.mmap(self._fd, 8)
        self.value: int = self._FMT.unpack_from(self._mm, 0)[0]
        #: `view[0] = seq` stores it (the cheapest write Python has: one subscript store)
        self.view: Any = (memoryview(self._mm).cast("q") if sys.byteorder == "little"
                          else _PackedSlot(self._mm, self._FMT))

    def set(self, value: int) -> None:
        self.value = value
        self.view[0] = value

    def sync(self) -> None:
        self._mm.flush()

    def close(self) -> None:
        if not self._mm.closed:
            if isinstance(self.view, memoryview):
                self.view.release()
            self._mm.flush()
            self._mm.close()
            os.close(self._fd)


class _PackedSlot:
    """SeqCounter.view on big-endian machines (the file is little-endian everywhere)."""

    def __init__(self, mm: mmap.mmap, fmt: struct.Struct) -> None:
        self._mm, self._fmt = mm, fmt

    def __setitem__(self, index: int, value: int) -> None:
        self._fmt.pack_into(self._mm, 8 * index, value)


def _uvarint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (no zig-zag)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def agent_dir_name(agent_id: str, replica_id: str | None = None) -> str:
    """A file-system-safe directory name for an agent (and replica)."""
    name = agent_id if replica_id is None else f"{agent_id}@{replica_id}"
    safe = quote(name, safe="@-_.")
    return "_" + safe if safe.startswith(".") or not safe else safe


def envelope_seq(value: bytes) -> int:
    """Read `seq` back out of an encoded event (for ordering events returned by librdkafka)."""
    pos = 10 if value[:2] == SOE_MAGIC else 5
    buf = memoryview(value)

    def read_long() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    for _ in range(4):  # event_id, agent_id, session_id, trace_id
        n = read_long()  # (read before adding: read_long moves pos)
        pos += n
    if read_long() == 1:  # parent_id union branch "string"
        n = read_long()
        pos += n
    read_long()  # event_time
    return read_long()


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
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


class Transport:
    """One confluent-kafka Producer shared by AgentClients, and the thread that serves its
    callbacks, probes the broker during outages and replays spools.

    `exclusive=True` (what an AgentClient creating its own transport asks for): one client
    only, and delivery is counted instead of reported per event (see the module doc)."""

    def __init__(self, settings: Settings, *, exclusive: bool = False,
                 **config_overrides: Any) -> None:
        self.settings = settings
        conf = producer_config(settings, **config_overrides)
        conf["error_cb"] = self._on_error
        # One delivery callback for the whole producer, routed by key (= agent_id): a
        # per-message on_delivery costs ~2 µs per produce() in confluent-kafka.
        conf["on_delivery"] = self._on_delivery
        #: True: only failures are reported; successes are counted from len(producer)
        self.counts_deliveries = exclusive
        if exclusive:
            conf["delivery.report.only.error"] = True
        self.producer = Producer(conf)
        self.message_timeout_s = conf["message.timeout.ms"] / 1000
        self.broker_up = True
        self.clients: list[AgentClient] = []
        self._by_key: dict[bytes, AgentClient] = {}
        self._to_finalize: list[AgentClient] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_probe = 0.0
        self._thread = threading.Thread(target=self._run, name="clawstream-sdk", daemon=True)
        self._thread.start()

    # -- callbacks (transport thread) ---------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            if self.broker_up:
                log.warning("kafka unreachable (%s): spooling events to disk", err.str())
            self.broker_up = False
            for client in list(self.clients):
                client._enter_spooling("all brokers down")
        elif err.fatal():
            log.error("kafka producer fatal error: %s", err.str())
        else:
            log.debug("kafka producer error: %s", err.str())

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        # Per-event mode: called once per event while it holds the GIL the emitting threads
        # need, so the usual case (a direct event delivered) is handled inline, the rest by
        # AgentClient._dr. Counting mode: called for failures only.
        client = self._by_key.get(msg.key())
        if client is None:
            if err is not None:
                log.error("delivery of an event of a closed client failed: %s", err.str())
        elif err is None and client._replay_state is None:
            client.delivered[msg.topic()] += 1
            done = client._direct_done = client._direct_done + 1
            if not done & 63:  # latency sampled, 1 in 64 (Histogram.observe is not cheap)
                lat = msg.latency()
                if lat is not None:
                    DELIVERY_LATENCY.observe(lat)
        else:
            client._dr(err, msg)

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
                    for client in self.clients:
                        client._observe_latency_probe()
                now = time.monotonic()
                if now >= next_maint:
                    next_maint = now + 0.2
                    self._maintain(now)
                if now >= next_sync:
                    next_sync = now + 1.0
                    for client in list(self.clients):
                        client._housekeeping()
            except Exception:  # never let the delivery thread die
                log.exception("sdk transport thread error")
                time.sleep(0.5)

    def _maintain(self, now: float) -> None:
        spooling = [c for c in self.clients if c._spooling]
        if not spooling:
            return
        if not self.broker_up:
            if now < self._next_probe:
                return
            self._next_probe = now + 1.0
            if not self.probe():
                return
            log.info("kafka answers again: replaying spools")
            self.broker_up = True
        for client in spooling:
            client._replay(budget_s=0.5)

    def poll_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Serve callbacks until `done()` (transport thread only)."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._stop.is_set() or time.monotonic() >= deadline:
                return done()
            self.producer.poll(0.05)
        return True

    # -- membership -----------------------------------------------------------------------------
    def register(self, client: AgentClient) -> None:
        with self._lock:
            if client._key in self._by_key:
                raise RuntimeError(f"agent {client.agent_id!r} already has a client here")
            if self.counts_deliveries and (self.clients or self._to_finalize):
                raise RuntimeError("an exclusive Transport serves one AgentClient")
            self.clients = [*self.clients, client]
            self._by_key[client._key] = client
        if not self.broker_up:
            client._enter_spooling("kafka unreachable")

    def unregister(self, client: AgentClient, *, finalize_later: bool = False) -> None:
        with self._lock:
            self.clients = [c for c in self.clients if c is not client]
            if finalize_later:
                self._to_finalize.append(client)
            else:
                self._by_key.pop(client._key, None)

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
        for client in [*self.clients, *self._to_finalize]:
            client._finalize()
        self.clients = []
        self._to_finalize = []
        self._by_key = {}
        close = getattr(self.producer, "close", None)
        if close is not None:  # confluent-kafka >= 2.x: free librdkafka's threads now
            close()


class _ReplayState:
    """Delivery reports of one replayed batch; permanent rejections count as handled.

    With `producer` given (counting mode: only failures are reported, and the producer holds
    nothing but this batch while it is out), the batch is settled once the producer's queue
    is empty; otherwise once every event was reported."""

    __slots__ = ("client", "error", "failed", "producer", "unreported")

    def __init__(self, client: AgentClient, n: int, producer: Producer | None = None) -> None:
        self.client = client
        self.producer = producer
        self.unreported = n
        self.failed = 0
        self.error: KafkaError | None = None

    @property
    def pending(self) -> int:
        """Events of the batch not settled yet (counting mode: what the producer still holds,
        at least the unreported ones)."""
        if self.producer is not None:
            return len(self.producer)
        return self.unreported

    def dr(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and err.code() in PERMANENT_ERRORS:
            self.client._reject(msg.topic(), err, msg.value())
        elif err is not None:
            self.failed += 1
            self.error = err
        self.unreported -= 1

    def not_produced(self) -> None:
        """An event produce() refused (it was rejected; nothing will report it)."""
        self.unreported -= 1


class AgentClient:
    """Emits one agent's events. Thread-safe; one process per agent_id (a lock file says so)."""

    def __init__(
        self,
        settings: Settings,
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
        self.on_delivery_error = on_delivery_error
        self.queue_full_block_s = queue_full_block_s
        self.serde = serde or _default_serde(settings)
        self._new_id = id_factory or _SHARED_IDS
        # emit calls _pop_id: the shared generator's list.pop (IndexError: refill), or the
        # factory itself
        self._pop_id = _SHARED_IDS.pop if id_factory is None else id_factory
        self._key = agent_id.encode()
        self._lock = threading.RLock()
        self._closed = False
        self._started = time.monotonic()

        dir_name = agent_dir_name(agent_id, replica_id)
        state_dir = Path(settings.data_dir) / "sdk" / "agents" / dir_name
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError(
                f"agent {agent_id!r} is already running against {state_dir} (seq and spool "
                "belong to one process at a time)"
            ) from None
        self._seq = SeqCounter(state_dir / "seq")
        self._seqv = self._seq.value  # the emit path's copy; the mmap is written per event
        self._seq_view = self._seq.view
        self._seq_hi = -1  # varint bytes of seq's high part, reused while it does not change
        self._seq_hi_bytes = b""
        self.spool = Spool(
            Path(settings.data_dir) / "spool" / dir_name,
            max_bytes=settings.spool_max_bytes,
            fsync=spool_fsync,
        )
        self.rejected = Path(settings.data_dir) / "spool" / f"{dir_name}.rejected"
        self.blobs = BlobStore(Path(settings.data_dir) / "blobs")
        self._thumbs: dict[str, tuple[bytes, int, int, str, int, int]] = {}

        self._types: dict[str, _TypeInfo] = {}
        self._infos: list[_TypeInfo] = []
        self._topic_type: dict[str, str] = {}
        self._producer_bytes = avro_string(self.producer_name) + avro_string(__version__)
        self._ast_cache: dict[tuple[str, str], bytes] = {}
        self._last_t = -1
        self._last_tb = b""
        self._session_ast = b""  # agent_id, session_id, trace_id (= session_id) encoded
        self.session_id = session_id or str(uuid.uuid4())

        # counters: each dict has a single writer thread (emit path vs transport thread)
        self.spooled: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.replayed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.respooled: dict[str, int] = {}
        self._exported: dict[str, dict[str, int]] = {}
        self._direct_sent = 0  # events handed to librdkafka by emit
        self._direct_done = 0  # ... and reported back (per-event mode only)
        self._diverted: dict[str, int] = {}  # taken by emit, not handed to librdkafka
        self._direct_lost: dict[str, int] = {}  # handed to librdkafka, reported failed
        #: (monotonic time, _direct_sent) of a sampled send (counting mode's latency metric)
        self._latency_probe: tuple[float, int] | None = None
        self._pending_front: list[tuple[str, bytes | None, bytes]] = []
        self._replay_backoff_until = 0.0
        self._replay_state: _ReplayState | None = None
        self._replay_failures = 0
        self._spooling = not self.spool.empty
        if self._spooling:
            log.info("agent %s: %d spooled events from an earlier run will be replayed",
                     agent_id, self.spool.depth_messages)

        self._owns_transport = transport is None
        self.transport = transport or Transport(settings, exclusive=True,
                                                **(producer_config or {}))
        self.transport.register(self)
        self._produce = self.transport.producer.produce
        if _accel is not None and type(self).emit is AgentClient.emit:
            # the compiled emit (same steps, same state); a subclass's own emit is kept
            self.emit = _accel.Emitter(self, AgentClient.emit, KafkaException).emit  # type: ignore[method-assign]
        ref = weakref.ref(self)
        self._atexit = lambda: (c := ref()) is not None and c.close(timeout=5)
        atexit.register(self._atexit)  # a forgotten close() must not lose queued events

    # -- envelope and encoding ----------------------------------------------------------------
    def _type_info(self, event_type: str) -> _TypeInfo:
        schema = self.serde.contract.get(event_type)
        if schema.topic is None:
            raise ValueError(f"{event_type!r} has no topic")
        if schema.expanded["fields"][0]["name"] != "envelope":
            raise ValueError(f"{schema.name}: envelope must be the first field")
        topic = self.settings.topic(schema.topic)
        if self.serde.registry is None:
            header = SOE_MAGIC + schema.fingerprint
        else:
            schema_id = self.serde.registry.id_for(f"{topic}-value", schema)
            header = struct.pack(">bI", CONFLUENT_MAGIC, schema_id)
        encode_body = compile_encoder(schema.expanded, skip_fields=1)
        with self._lock:  # two threads may meet here on a type's first event
            info = self._types.get(schema.event_type)
            if info is None:
                info = _TypeInfo(schema.event_type, topic, header, encode_body, schema)
                if _accel is not None:
                    try:
                        info.plan = _accel.compile_plan(schema.expanded, 1)
                    except Exception:  # a shape it does not handle: the Python encoder
                        info.plan = None
                self._infos.append(info)
            for name in {event_type, schema.event_type, schema.name}:
                self._types[name] = info
            self._topic_type[topic] = schema.event_type
            for d in (self.spooled, self.delivered, self.replayed, self.failed, self.respooled,
                      self._diverted, self._direct_lost):
                d.setdefault(topic, 0)
        return info

    @property
    def session_id(self) -> str:
        """The session_id (and default trace_id) of the events emitted from now on."""
        return self._session_id

    @session_id.setter
    def session_id(self, value: str) -> None:
        self._session_id = value
        self._session_ast = self._ast_bytes(value, value)

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
        """
        # The hot path: the envelope is written here straight into the Avro bytes (no dict),
        # the body by the generated encoder of schemas.codegen; anything unusual goes to
        # _encode_slow (fastavro), which writes the same bytes or raises EncodeError.
        info = self._types.get(event_type)
        if info is None:
            info = self._type_info(event_type)
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
            value = None
            plan = info.plan
            if plan is not None:  # the compiled encoder: whole event in one C call
                if session_id or trace_id:
                    sid = session_id or self._session_id
                    tid = trace_id or sid
                    ast = self._ast_cache.get((sid, tid)) or self._ast_bytes(sid, tid)
                else:
                    ast = self._session_ast
                try:
                    value = _accel.encode_event(info.header, eid, ast, parent_id, event_time,
                                                seq, self._producer_bytes, plan, body)
                except Exception:  # anything unusual: the Python path below decides
                    value = None
            if value is None:
                value = self._encode_py(info, body, eid, session_id, trace_id, parent_id,
                                        event_time, seq)
            if self._spooling:
                self._send(info.topic, value)
            else:
                try:
                    self._produce(info.topic, value, self._key)
                    self._direct_sent += 1
                    if not seq & 63:
                        self._latency_probe = (_monotonic(), self._direct_sent)
                except (BufferError, KafkaException):
                    self._send(info.topic, value)
            self._seqv = seq
            self._seq_view[0] = seq  # persisted (mmap) before returning
            info.emitted += 1
        finally:
            lock.release()
        return eid

    def _encode_py(self, info: _TypeInfo, body: dict[str, Any], eid: str,
                   session_id: str | None, trace_id: str | None, parent_id: str | None,
                   event_time: int, seq: int) -> bytes:
        """The pure-Python encoder (no accelerator, or it refused the event); caller holds
        the lock."""
        eb = eid.encode()
        if len(eb) == 36:
            o = bytearray(info.header_uuid)
        else:
            o = bytearray(info.header)
            write_long(o, len(eb))
        o += eb
        if session_id or trace_id:
            sid = session_id or self._session_id
            tid = trace_id or sid
            ast = self._ast_cache.get((sid, tid))
            o += ast if ast is not None else self._ast_bytes(sid, tid)
        else:
            o += self._session_ast
        if parent_id is None:
            o.append(0)
        else:
            pb = parent_id.encode()
            if len(pb) < 64:
                o += _SHORT_STRING_IN_UNION[len(pb)]
            else:
                o.append(2)
                write_long(o, len(pb))
            o += pb
        if event_time != self._last_t:
            self._last_tb = avro_long(event_time)
            self._last_t = event_time
        o += self._last_tb
        n = seq << 1  # zig-zag of a positive long; varint inline (hot path)
        if n < 128:
            o.append(n)
        else:
            o.append((n & 0x7F) | 0x80)
            if n >> 7 != self._seq_hi:
                self._seq_hi = n >> 7
                self._seq_hi_bytes = _uvarint(n >> 7)
            o += self._seq_hi_bytes
        o += self._producer_bytes
        try:
            info.encode_body(body, o)
            value = bytes(o)
        except Exception:
            value = self._encode_slow(info, body, eid, session_id, trace_id, parent_id,
                                      event_time, seq)
        return value

    def _ast_bytes(self, sid: str, tid: str) -> bytes:
        if len(self._ast_cache) > 256:
            self._ast_cache.clear()
        b = avro_string(self.agent_id) + avro_string(sid) + avro_string(tid)
        self._ast_cache[(sid, tid)] = b
        return b

    def _encode_slow(self, info: _TypeInfo, body: dict[str, Any], eid: str,
                     session_id: str | None, trace_id: str | None, parent_id: str | None,
                     event_time: int, seq: int) -> bytes:
        """fastavro's encoder: gives the proper EncodeError for a body that does not fit."""
        sid = session_id or self._session_id
        tid = trace_id or sid
        record = dict(body)
        record["envelope"] = {
            "event_id": eid, "agent_id": self.agent_id, "session_id": sid, "trace_id": tid,
            "parent_id": parent_id, "event_time": event_time, "seq": seq,
            "producer": {"name": self.producer_name, "version": __version__},
        }
        return self.serde.encode(info.schema, record, topic=info.topic)

    # -- sending ------------------------------------------------------------------------------
    def _send(self, topic: str, value: bytes) -> None:
        """Direct to librdkafka, or to the spool while spooling (caller holds the lock)."""
        if not self._spooling:
            producer = self.transport.producer
            try:
                producer.produce(topic, value, self._key)
                self._direct_sent += 1
                return
            except BufferError:
                if self._wait_for_room(topic, value):
                    return
                self._enter_spooling("local producer queue full")
            except KafkaException as exc:
                self._reject(topic, exc.args[0], value)
                self._diverted[topic] += 1
                return
        self.spool.append(topic, self._key, value)  # may raise SpoolFullError
        self.spooled[topic] += 1
        self._diverted[topic] += 1

    def _wait_for_room(self, topic: str, value: bytes) -> bool:
        """Back-pressure: give librdkafka a moment to drain before falling back to the spool."""
        deadline = time.monotonic() + self.queue_full_block_s
        while self.transport.broker_up and time.monotonic() < deadline:
            time.sleep(0.001)
            try:
                self.transport.producer.produce(topic, value, self._key)
            except BufferError:
                continue
            self._direct_sent += 1
            return True
        return False

    def _enter_spooling(self, why: str) -> None:
        with self._lock:
            if not self._spooling:
                log.warning("agent %s: %s; spooling to %s", self.agent_id, why, self.spool.dir)
                self._spooling = True

    def _dr(self, err: KafkaError | None, msg: Any) -> None:
        """Delivery report (transport thread): a replayed event while a replay batch is out
        (no direct event is in flight then), a direct one otherwise."""
        state = self._replay_state
        if state is not None:
            state.dr(err, msg)
            return
        if err is None:
            topic = msg.topic()
            self.delivered[topic] += 1
            if not self._direct_done & 63:
                lat = msg.latency()
                if lat is not None:
                    DELIVERY_LATENCY.observe(lat)
        else:
            self._direct_failed(err, msg)
        if not self.transport.counts_deliveries:  # (counting: len(producer) drops by itself)
            self._direct_done += 1

    def _direct_failed(self, err: KafkaError, msg: Any) -> None:
        topic, value = msg.topic(), msg.value()
        self._latency_probe = None  # its "everything before it settled" may now be a failure
        if err.code() in PERMANENT_ERRORS:
            with self._lock:
                self._direct_lost[topic] += 1
            self._reject(topic, err, value)
            return
        with self._lock:
            self._direct_lost[topic] += 1
            self._pending_front.append((topic, msg.key(), value))
            self.respooled[topic] = self.respooled.get(topic, 0) + 1
            if not self._spooling:
                log.warning("agent %s: delivery failed (%s); spooling to %s",
                            self.agent_id, err.str(), self.spool.dir)
                self._spooling = True
        self._notify(topic, err, value, respooled=True)

    def _reject(self, topic: str, err: KafkaError, value: bytes | None) -> None:
        """A failure retrying cannot fix: counted, logged, hooked, and kept on disk."""
        self.failed[topic] = self.failed.get(topic, 0) + 1
        log.error("agent %s: %s event rejected by kafka: %s (kept in %s)",
                  self.agent_id, self._topic_type.get(topic, topic), err.str(), self.rejected)
        if value is not None:
            try:
                with Spool(self.rejected, fsync="never") as dead:
                    dead.append(topic, self._key, value)
            except Exception:
                log.exception("could not keep the rejected event")
        self._notify(topic, err, value, respooled=False)

    def _notify(self, topic: str, err: KafkaError, value: bytes | None, *, respooled: bool) -> None:
        if self.on_delivery_error is None:
            return
        failure = DeliveryFailure(self.agent_id, self._topic_type.get(topic, topic), topic,
                                  err, value, respooled)
        try:
            self.on_delivery_error(failure)
        except Exception:
            log.exception("on_delivery_error hook raised")

    # -- replay (transport thread) ------------------------------------------------------------
    def _flush_pending_front(self) -> None:
        """Caller holds the lock and knows no direct event is in flight."""
        if self._pending_front:
            records = sorted(self._pending_front, key=lambda r: envelope_seq(r[2]))
            self._pending_front = []
            n = self.spool.prepend(records)
            log.info("agent %s: %d undelivered events put back in front of the spool",
                     self.agent_id, n)

    def _replay(self, budget_s: float = 0.5) -> None:
        if time.monotonic() < self._replay_backoff_until:
            return
        deadline = time.monotonic() + budget_s
        producer = self.transport.producer
        while time.monotonic() < deadline and self.transport.broker_up:
            if self._replay_state is not None:
                if self._replay_state.pending > 0:
                    return  # an abandoned batch is still resolving inside librdkafka
                self._replay_state = None
            with self._lock:
                if self._direct_in_flight() > 0:
                    return  # librdkafka still owns older events; they go first
                self._settle_delivered()  # exact now; the batch changes what len() counts
                self._flush_pending_front()
                batch = self.spool.read_batch(max_records=20_000, max_bytes=16 << 20)
                if batch is None:
                    if self._spooling:
                        self._spooling = False
                        self._publish_spool_depth()
                        log.info("agent %s: spool drained, back to direct sends", self.agent_id)
                    return
            state = _ReplayState(self, len(batch), producer=(
                producer if self.transport.counts_deliveries else None))
            self._replay_state = state
            for topic, key, value in batch.records:
                while True:
                    try:
                        producer.produce(topic, value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                    except KafkaException as exc:  # e.g. the topic no longer exists
                        self._reject(topic, exc.args[0], value)
                        state.not_produced()
                        break
            self.transport.poll_until(lambda s=state: s.pending <= 0,
                                      self.transport.message_timeout_s + 5)
            if state.pending > 0 or state.failed:
                self._replay_failures += 1
                wait = min(10.0, 0.5 * 2**self._replay_failures)
                self._replay_backoff_until = time.monotonic() + wait
                log.warning("agent %s: replay of %d spooled events incomplete (%d failed: %s); "
                            "retrying in %.1fs", self.agent_id, len(batch), state.failed,
                            state.error.str() if state.error else "timeout", wait)
                if state.pending <= 0:
                    self._replay_state = None
                return
            self._replay_state = None
            self._replay_failures = 0
            for topic, _key, _value in batch.records:  # counted before pending() drops
                self.replayed[topic] = self.replayed.get(topic, 0) + 1
            with self._lock:
                self.spool.ack(batch)

    # -- housekeeping -------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        """Once a second on the transport thread: fsync the spool, export metrics."""
        if self.spool.fsync == "interval" and not self._closed:
            try:
                self.spool.sync()
            except OSError:
                log.exception("spool fsync failed")
        self._export_metrics()

    def _direct_in_flight(self) -> int:
        """Events handed to librdkafka by emit and not settled yet (delivered or failed and
        taken back). Counting mode: what the producer holds, unless a replay batch is out
        (direct sends wait until it is settled); a lower bound never lets pending() say 0
        too early."""
        if not self.transport.counts_deliveries:
            return self._direct_sent - self._direct_done
        if self._replay_state is not None or self._lock_fd < 0:  # (< 0: finalized)
            return 0
        return len(self.transport.producer)

    def _settle_delivered(self) -> None:
        """Counting mode: update `delivered` per type from what was sent directly minus the
        failures minus what the producer still holds. Exact when the producer is empty; a
        lower bound in between (the queue length is not split by type)."""
        if not self.transport.counts_deliveries:
            return
        with self._lock:
            if self._replay_state is not None or self._lock_fd < 0:
                return  # (direct sends are settled before a replay starts and at close)
            queued = len(self.transport.producer)
            for topic, taken in self.emitted.items():
                low = taken - self._diverted[topic] - self._direct_lost[topic] - queued
                if low > self.delivered[topic]:
                    self.delivered[topic] = low

    def _observe_latency_probe(self) -> None:
        """Counting mode (transport thread): once everything sent up to the probed event left
        the producer, record its produce-to-acknowledgement time."""
        probe = self._latency_probe
        if probe is None or self._replay_state is not None:
            return
        sent = self._direct_sent  # read before the queue: never too early
        if sent - len(self.transport.producer) >= probe[1]:
            DELIVERY_LATENCY.observe(_monotonic() - probe[0])
            if self._latency_probe is probe:
                self._latency_probe = None

    def _publish_spool_depth(self) -> None:
        SPOOL_DEPTH_BYTES.labels(self.agent_id).set(self.spool.depth_bytes)
        SPOOL_DEPTH_MESSAGES.labels(self.agent_id).set(self.spool.depth_messages)

    def _export_metrics(self) -> None:
        self._settle_delivered()
        for name, counts, metric in (
            ("delivered", self.delivered, EVENTS_PRODUCED),
            ("spooled", self.spooled, EVENTS_SPOOLED),
            ("replayed", self.replayed, EVENTS_REPLAYED),
        ):
            last = self._exported.setdefault(name, {})
            for topic, n in list(counts.items()):
                if n != last.get(topic, 0):
                    metric.labels(self._topic_type.get(topic, topic)).inc(n - last.get(topic, 0))
                    last[topic] = n
        for name, counts, fate in (("failed", self.failed, "rejected"),
                                   ("respooled", self.respooled, "respooled")):
            last = self._exported.setdefault(name, {})
            for topic, n in list(counts.items()):
                if n != last.get(topic, 0):
                    EVENTS_FAILED.labels(self._topic_type.get(topic, topic), fate).inc(
                        n - last.get(topic, 0))
                    last[topic] = n
        self._publish_spool_depth()

    # -- state --------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The seq of the last event emitted by this agent (across restarts)."""
        return self._seqv

    @property
    def emitted(self) -> dict[str, int]:
        """Events taken by emit, by topic."""
        out: dict[str, int] = {}
        for info in list(self._infos):
            out[info.topic] = out.get(info.topic, 0) + info.emitted
        return out

    @property
    def spooling(self) -> bool:
        return self._spooling

    def pending(self) -> int:
        """Events emitted but not yet acknowledged by Kafka."""
        return self._direct_in_flight() + len(self._pending_front) + self.spool.depth_messages

    def stats(self) -> dict[str, Any]:
        """Counts per event type, and what is still waiting."""

        def by_type(d: dict[str, int]) -> dict[str, int]:
            return {self._topic_type.get(t, t): n for t, n in d.items() if n}

        self._settle_delivered()
        return {
            "emitted": by_type(self.emitted),
            "delivered": by_type(self.delivered),
            "spooled": by_type(self.spooled),
            "replayed": by_type(self.replayed),
            "respooled": by_type(self.respooled),
            "failed": by_type(self.failed),
            "pending": self.pending(),
            "spool_messages": self.spool.depth_messages,
            "spool_bytes": self.spool.depth_bytes,
            "seq": self.seq,
        }

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
            self.transport.close(timeout=1.0)  # purges what is left and calls _finalize
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
            if self._lock_fd < 0:
                return
            self.transport._by_key.pop(self._key, None)
            self._closed = True
            self._flush_pending_front()
            left = self.spool.depth_messages
            self._export_metrics()
            self.spool.close()
            self._seq.close()
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1
        if left:
            log.warning("agent %s: %d events not delivered; kept in %s for the next run",
                        self.agent_id, left, self.spool.dir)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- typed helpers --------------------------------------------------------------------------
    def frame(
        self,
        image: Any = None,
        *,
        app: str = "",
        width: int | None = None,
        height: int | None = None,
        phash: str | None = None,
        change_ratio: float = 1.0,
        changed_regions: Sequence[Any] = (),
        thumbnail: bytes | None = None,
        thumb_size: tuple[int, int] | None = None,
        image_uri: str | None = None,
        redactions: int = 0,
        **envelope: Any,
    ) -> str:
        """A screen frame, claim-check style: `image` (bytes, PIL or numpy) goes to the blob
        store, a small JPEG thumbnail rides inline, the event carries the cas:// URI."""
        sha = None
        if image is not None:
            data = encode_image(image)
            import hashlib

            sha = hashlib.sha256(data).hexdigest()
            cached = self._thumbs.get(sha)
            if cached is None:
                uri = self.blobs.put(data, sha)
                tb, tw, th = make_thumbnail(data)
                from producers.blobstore import to_pil

                w, h = to_pil(data).size
                cached = (tb, tw, th, average_hash(data), w, h)
                if len(self._thumbs) > 512:
                    self._thumbs.clear()
                self._thumbs[sha] = cached
            else:
                uri = self.blobs.put(data, sha)
            tb, tw, th, ph, w, h = cached
            thumbnail = thumbnail if thumbnail is not None else tb
            thumb_size = thumb_size or (tw, th)
            phash = phash or ph
            width, height = width or w, height or h
            image_uri = image_uri or uri
        body = {
            "app": app,
            "width": int(width or 0),
            "height": int(height or 0),
            "phash": phash or "",
            "change_ratio": float(change_ratio),
            "changed_regions": [_bbox(b) for b in changed_regions],
            "thumbnail": thumbnail or b"",
            "thumbnail_format": "jpeg",
            "thumb_width": thumb_size[0] if thumb_size else 0,
            "thumb_height": thumb_size[1] if thumb_size else 0,
            "image_uri": image_uri,
            "image_sha256": sha or (image_uri.rsplit("/", 1)[-1] if image_uri else None),
            "redactions": redactions,
        }
        return self.emit("frame", body, **envelope)

    def detection(
        self,
        frame_id: str,
        elements: Iterable[dict[str, Any]],
        *,
        app: str = "",
        duration_ms: float = 0.0,
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """The UI elements found on frame `frame_id` (its event_id is the parent)."""
        els = []
        for i, e in enumerate(elements):
            el = dict(e)
            el.setdefault("element_id", f"e{i}")
            el["bbox"] = _bbox(el.get("bbox", (0, 0, 0, 0)))
            el.setdefault("kind", "other")
            el.setdefault("confidence", 1.0)
            el.setdefault("source", "opencv")
            el.setdefault("interactable", el["kind"] in ("button", "text_field", "checkbox"))
            els.append(el)
        body = {"app": app, "frame_id": frame_id, "elements": els, "duration_ms": duration_ms}
        return self.emit("detection", body, parent_id=parent_id or frame_id, **envelope)

    def plan(
        self,
        goal: str,
        steps: Iterable[dict[str, Any] | str],
        *,
        app: str = "",
        planner: str = "rules",
        **envelope: Any,
    ) -> str:
        """What the planner intends; actions point back at the returned id."""
        out = []
        for i, s in enumerate(steps):
            step = {"description": s, "action_kind": "other"} if isinstance(s, str) else dict(s)
            step.setdefault("index", i)
            step.setdefault("description", step.get("action_kind", ""))
            step.setdefault("action_kind", "other")
            out.append(step)
        return self.emit("plan", {"app": app, "goal": goal, "planner": planner, "steps": out},
                         **envelope)

    def action(
        self,
        kind: str,
        *,
        app: str = "",
        plan_id: str | None = None,
        step_index: int | None = None,
        target: dict[str, Any] | str | None = None,
        x: int | None = None,
        y: int | None = None,
        params: dict[str, str] | None = None,
        executor: str = "pyautogui",
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """One executor step (parent: the plan)."""
        if isinstance(target, str) or target is None:
            tgt: dict[str, Any] = {"label": target}
        else:
            tgt = dict(target)
            if "bbox" in tgt and tgt["bbox"] is not None:
                tgt["bbox"] = _bbox(tgt["bbox"])
        if x is not None:
            tgt["x"] = x
        if y is not None:
            tgt["y"] = y
        body = {"app": app, "plan_id": plan_id, "step_index": step_index, "kind": kind,
                "target": tgt, "params": {k: str(v) for k, v in (params or {}).items()},
                "executor": executor}
        return self.emit("action", body, parent_id=parent_id or plan_id, **envelope)

    def outcome(
        self,
        action_id: str,
        status: str,
        duration_ms: float,
        *,
        app: str = "",
        action_kind: str = "other",
        error: str | None = None,
        error_kind: str | None = None,
        verification: dict[str, Any] | None = None,
        executor: str = "pyautogui",
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """What happened after action `action_id` (its event_id is the parent)."""
        body = {"action_id": action_id, "app": app, "action_kind": action_kind,
                "status": status, "duration_ms": float(duration_ms), "error": error,
                "error_kind": error_kind, "verification": verification, "executor": executor}
        return self.emit("outcome", body, parent_id=parent_id or action_id, **envelope)

    def heartbeat(
        self,
        status: str = "ok",
        *,
        uptime_s: float | None = None,
        cpu_percent: float | None = None,
        rss_bytes: int | None = None,
        queue_depth: int | None = None,
        spool_depth: int | None = None,
        **envelope: Any,
    ) -> str:
        """Liveness; queue and spool depth default to this client's own."""
        body = {
            "status": status,
            "uptime_s": time.monotonic() - self._started if uptime_s is None else uptime_s,
            "cpu_percent": cpu_percent,
            "rss_bytes": rss_bytes,
            "queue_depth": len(self.transport.producer) if queue_depth is None else queue_depth,
            "spool_depth": self.spool.depth_messages if spool_depth is None else spool_depth,
        }
        return self.emit("heartbeat", body, **envelope)

    def state_delta(
        self,
        key: str,
        crdt_type: str,
        payload: bytes,
        *,
        full_state: bool = False,
        replica_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """A CRDT delta (payload in the CRDT's own encoding) from this replica."""
        body = {"replica_id": replica_id or self.replica_id or self.agent_id,
                "crdt_type": crdt_type, "key": key, "payload": payload,
                "full_state": full_state}
        return self.emit("state_delta", body, **envelope)


def _bbox(b: Any) -> dict[str, int]:
    """A BBox record from a dict or an (x, y, w, h) tuple."""
    if isinstance(b, dict):
        return {"x": int(b["x"]), "y": int(b["y"]), "w": int(b["w"]), "h": int(b["h"])}
    x, y, w, h = b
    return {"x": int(x), "y": int(y), "w": int(w), "h": int(h)}


def _default_serde(settings: Settings) -> Serde:
    """Confluent framing when a schema registry is configured, single-object otherwise."""
    return Serde.from_settings(settings)


def serve_sdk_metrics(settings: Settings) -> bool:
    """Expose this process's SDK metrics on settings.sdk_metrics_port."""
    from clawstream.metrics import serve_metrics

    return serve_metrics(settings.sdk_metrics_port, settings.metrics_host)
