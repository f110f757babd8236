"""Encoding of an agent's events: the envelope written straight into Avro bytes, event ids,
and the per-agent seq that survives restarts (one process per agent: a lock file says so).

`EventEncoder` writes a whole event (header, envelope, body) with the optional C accelerator
(`producers._accel`, built at install when possible) or, without it or for a body it does not
take, with `schemas.codegen`'s generated encoders; fastavro (`Serde.encode`) has the last
word and names the problem of a body that does not fit. All three write the same bytes.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from schemas.codegen import avro_long, avro_string, compile_encoder, write_long
from schemas.envelope import PRODUCER_VERSION
from schemas.registry import EventSchema
from schemas.serde import CONFLUENT_MAGIC, SOE_MAGIC, Serde

#: The optional compiled encoder (producers/_accel.pyx, built at install when possible);
#: CLAWSTREAM_NO_ACCEL=1 forces the pure-Python encoders. Read when an encoder is created.
_accel: Any = None
if os.environ.get("CLAWSTREAM_NO_ACCEL", "") in ("", "0"):
    try:
        from producers import _accel
    except ImportError:
        _accel = None

#: union branch "string" + the one-byte length of a short string, by length
_SHORT_STRING_IN_UNION = [bytes((2, n << 1)) for n in range(64)]
#: hex digit -> the RFC 4122 variant digit (10xx) keeping its two low bits random
_HEX_TO_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")


def accelerator() -> Any:
    """The compiled accelerator module in force, or None (not built, or CLAWSTREAM_NO_ACCEL)."""
    return _accel


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


def _forget_ids_in_child() -> None:
    """Ids made before a fork must not be handed out twice (once in each process)."""
    for ids in list(_ALL_RANDOM_IDS):
        ids.ids.clear()


os.register_at_fork(after_in_child=_forget_ids_in_child)
#: the ids of every AgentClient of this process that was given no id factory
SHARED_IDS = RandomIds()


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


def lock_agent_dir(state_dir: Path, agent_id: str) -> int:
    """Take the agent's lock file (its seq and spool belong to one process): its descriptor,
    for `unlock_agent_dir`. RuntimeError when another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(
            f"agent {agent_id!r} is already running against {state_dir} (seq and spool "
            "belong to one process at a time)"
        ) from None
    return fd


def unlock_agent_dir(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


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


@dataclass
class TypeInfo:
    """One event type as an agent writes it: its topic, wire header and body encoders."""

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


class EventEncoder:
    """Writes one agent's events. The agent, session and trace ids are encoded once per
    session (`session_ast`), the producer once per client; `encode` is the whole event.

    `types` maps every name an event type goes by to its `TypeInfo`, filled on first use by
    `type_info`, which tells `on_new_type` about a new type before any thread can use it."""

    def __init__(self, serde: Serde, agent_id: str, producer_name: str,
                 topic: Callable[[str], str], session_id: str, *,
                 on_new_type: Callable[[TypeInfo], None] = lambda info: None) -> None:
        self.serde = serde
        self.agent_id = agent_id
        self.producer_name = producer_name
        self.accel = _accel
        self._topic = topic
        self._on_new_type = on_new_type
        self._lock = threading.Lock()
        self.types: dict[str, TypeInfo] = {}
        self.infos: list[TypeInfo] = []
        self.producer_bytes = avro_string(producer_name) + avro_string(PRODUCER_VERSION)
        self._ast_cache: dict[tuple[str, str], bytes] = {}
        self._last_t = -1
        self._last_tb = b""
        self._seq_hi = -1  # varint bytes of seq's high part, reused while it does not change
        self._seq_hi_bytes = b""
        self.session_ast = b""  # agent_id, session_id, trace_id (= session_id) encoded
        self.session_id = session_id

    @property
    def session_id(self) -> str:
        return self._session_id

    @session_id.setter
    def session_id(self, value: str) -> None:
        self._session_id = value
        self.session_ast = self.ast_bytes(value, value)

    def type_info(self, event_type: str) -> TypeInfo:
        """The type's info, made on its first event (KeyError: not a contract type)."""
        schema = self.serde.contract.get(event_type)
        if schema.topic is None:
            raise ValueError(f"{event_type!r} has no topic")
        if schema.expanded["fields"][0]["name"] != "envelope":
            raise ValueError(f"{schema.name}: envelope must be the first field")
        topic = self._topic(schema.topic)
        if self.serde.registry is None:
            header = SOE_MAGIC + schema.fingerprint
        else:
            schema_id = self.serde.registry.id_for(f"{topic}-value", schema)
            header = struct.pack(">bI", CONFLUENT_MAGIC, schema_id)
        encode_body = compile_encoder(schema.expanded, skip_fields=1)
        with self._lock:  # two threads may meet here on a type's first event
            info = self.types.get(schema.event_type)
            if info is None:
                info = TypeInfo(schema.event_type, topic, header, encode_body, schema)
                if self.accel is not None:
                    try:
                        info.plan = self.accel.compile_plan(schema.expanded, 1)
                    except Exception:  # a shape it does not handle: the Python encoder
                        info.plan = None
                self._on_new_type(info)
                self.infos.append(info)
            for name in {event_type, schema.event_type, schema.name}:
                self.types[name] = info
        return info

    def emitted(self) -> dict[str, int]:
        """Events taken by emit (`TypeInfo.emitted`), by topic."""
        out: dict[str, int] = {}
        for info in list(self.infos):
            out[info.topic] = out.get(info.topic, 0) + info.emitted
        return out

    def ast_bytes(self, sid: str, tid: str) -> bytes:
        """agent_id, session_id and trace_id, encoded (cached)."""
        if len(self._ast_cache) > 256:
            self._ast_cache.clear()
        b = avro_string(self.agent_id) + avro_string(sid) + avro_string(tid)
        self._ast_cache[(sid, tid)] = b
        return b

    def encode(self, info: TypeInfo, body: dict[str, Any], eid: str, session_id: str | None,
               trace_id: str | None, parent_id: str | None, event_time: int,
               seq: int) -> bytes:
        """The whole event; the caller serializes calls (the client's lock). Raises
        EncodeError for a body that does not fit the schema."""
        plan = info.plan
        if plan is not None:  # the compiled encoder: whole event in one C call
            if session_id or trace_id:
                sid = session_id or self._session_id
                tid = trace_id or sid
                ast = self._ast_cache.get((sid, tid)) or self.ast_bytes(sid, tid)
            else:
                ast = self.session_ast
            try:
                return self.accel.encode_event(info.header, eid, ast, parent_id, event_time,
                                               seq, self.producer_bytes, plan, body)
            except Exception:  # anything unusual: the Python path below decides
                pass
        return self.encode_py(info, body, eid, session_id, trace_id, parent_id, event_time,
                              seq)

    def encode_py(self, info: TypeInfo, body: dict[str, Any], eid: str,
                  session_id: str | None, trace_id: str | None, parent_id: str | None,
                  event_time: int, seq: int) -> bytes:
        """The pure-Python encoder (no accelerator, or it refused the event)."""
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
            o += ast if ast is not None else self.ast_bytes(sid, tid)
        else:
            o += self.session_ast
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
        o += self.producer_bytes
        try:
            info.encode_body(body, o)
            value = bytes(o)
        except Exception:
            value = self._encode_slow(info, body, eid, session_id, trace_id, parent_id,
                                      event_time, seq)
        return value

    def _encode_slow(self, info: TypeInfo, body: dict[str, Any], eid: str,
                     session_id: str | None, trace_id: str | None, parent_id: str | None,
                     event_time: int, seq: int) -> bytes:
        """fastavro's encoder: gives the proper EncodeError for a body that does not fit."""
        sid = session_id or self._session_id
        tid = trace_id or sid
        record = dict(body)
        record["envelope"] = {
            "event_id": eid, "agent_id": self.agent_id, "session_id": sid, "trace_id": tid,
            "parent_id": parent_id, "event_time": event_time, "seq": seq,
            "producer": {"name": self.producer_name, "version": PRODUCER_VERSION},
        }
        return self.serde.encode(info.schema, record, topic=info.topic)
