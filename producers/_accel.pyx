# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Optional compiled SDK hot path (built at install when a C compiler is there;
`producers.sdk.encoding` falls back to the generated Python encoders otherwise, or when
CLAWSTREAM_NO_ACCEL=1): `encode_event(...)` writes a whole event (header, envelope, body)
with a writer plan of `schemas._avro` (`compile_plan(expanded, skip_fields)`), `Emitter`
is `AgentClient.emit` in C, `DeliveryReports` its `on_delivery` for a delivered event (a
producer shared by several clients reports each one), `uuid4_strings` makes event ids.

Contract (same as schemas.codegen): either exactly fastavro's bytes, or an exception, and the
caller then takes the Python path (which writes the same bytes or names the problem). So this
code is strict: only exact built-in types (str, int but not bool, float, bool, bytes, dict,
list) are accepted; anything else raises.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport int64_t

import sys as _sys

from schemas._avro cimport (
    Buf,
    Node,
    as_long,
    buf_byte,
    buf_free,
    buf_init,
    buf_long,
    buf_put,
    put_record,
    put_str,
)

from schemas._avro import Unsupported, compile_writer, encode_body  # noqa: F401 (re-exported)


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)


def compile_plan(dict expanded, int skip_fields=0):
    """The writer plan of `expanded` without its first `skip_fields` fields."""
    return compile_writer(expanded, skip_fields)


def encode_event(bytes header, object event_id, bytes ast, object parent_id,
                 object event_time, object seq, bytes producer, Node plan, object body):
    """A whole event: header, envelope (event_id, `ast` = agent/session/trace strings already
    encoded, parent_id, event_time, seq, `producer` already encoded), then the body."""
    return _encode_event(header, event_id, ast, parent_id, as_long(event_time), as_long(seq),
                         producer, plan, body)


cdef bytes _encode_event(bytes header, object event_id, bytes ast, object parent_id,
                         int64_t event_time, int64_t seq, bytes producer, Node plan,
                         object body):
    """encode_event without a Python-level call (Emitter.emit's hot path)."""
    cdef Buf b
    buf_init(&b)
    try:
        buf_put(&b, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header))
        put_str(&b, event_id)
        buf_put(&b, PyBytes_AS_STRING(ast), PyBytes_GET_SIZE(ast))
        if parent_id is None:
            buf_byte(&b, 0)
        else:
            buf_byte(&b, 2)
            put_str(&b, parent_id)
        buf_long(&b, event_time)
        buf_long(&b, seq)
        buf_put(&b, PyBytes_AS_STRING(producer), PyBytes_GET_SIZE(producer))
        put_record(&b, plan, body)
        return PyBytes_FromStringAndSize(b.data, b.len)
    finally:
        buf_free(&b)


cdef const char* _HEX = b"0123456789abcdef"


def uuid4_strings(bytes random16):
    """One uuid4 string per 16 random bytes (version 4, variant 10xx: what
    str(uuid.UUID(bytes=b, version=4)) gives), written straight into new str objects:
    `producers.sdk.encoding.RandomIds` makes its batches with it."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(random16) // 16, i, j, pos
    cdef const unsigned char* src = <const unsigned char*>PyBytes_AS_STRING(random16)
    cdef unsigned char c
    cdef char* out
    cdef list ids = []
    for i in range(n):
        s = PyUnicode_New(36, 127)  # compact ASCII, filled before anyone else sees it
        out = <char*>PyUnicode_DATA(s)
        pos = 0
        for j in range(16):
            c = src[16 * i + j]
            if j == 6:
                c = (c & 0x0F) | 0x40  # version 4
            elif j == 8:
                c = (c & 0x3F) | 0x80  # RFC 4122 variant
            if j == 4 or j == 6 or j == 8 or j == 10:
                out[pos] = b"-"
                pos += 1
            out[pos] = _HEX[c >> 4]
            out[pos + 1] = _HEX[c & 15]
            pos += 2
        ids.append(s)
    return ids


if _sys.byteorder != "little":
    raise ImportError("producers._accel supports little-endian hosts only")


cdef extern from "time.h":
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_REALTIME
    int CLOCK_MONOTONIC


cdef inline long long now_ms():
    """time.time_ns() // 1_000_000 (the same clock)."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return (<long long>ts.tv_sec * 1000000000 + ts.tv_nsec) // 1000000


cdef inline double monotonic():
    """time.monotonic() (the same clock on Linux)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + ts.tv_nsec * 1e-9


cdef class Emitter:
    """`AgentClient.emit` in C for the usual call (no event_id / session_id / trace_id
    override, a type with a plan): the same steps in the same order as the Python method,
    reading and writing the same attributes (the instance dicts of the client, its encoder,
    its outage spool and its counts), so everything else in the client sees the same state.
    Any other call goes to the Python method."""

    cdef object client
    cdef object encoder
    cdef dict d            # the client's __dict__: _closed, _seqv, _produce
    cdef dict ed           # the encoder's: session_ast
    cdef dict od           # the outage spool's: active
    cdef dict cd           # the counts': direct_sent, latency_probe
    cdef dict types
    cdef dict entries      # event_type -> (info, header, topic, plan)
    cdef object acquire, release
    cdef object py_emit    # AgentClient.emit (the Python method), unbound
    cdef object kafka_exc  # (BufferError, KafkaException)
    cdef object key, producer_bytes, seq_view, pop_id, new_id  # fixed for a client's life

    def __init__(self, client, py_emit, kafka_exception):
        self.client = client
        self.encoder = client.encoder
        self.d = client.__dict__
        self.ed = client.encoder.__dict__
        self.od = client.outage.__dict__
        self.cd = client.counts.__dict__
        self.types = client.encoder.types
        self.entries = {}
        self.acquire = client._lock.acquire
        self.release = client._lock.release
        self.py_emit = py_emit
        self.kafka_exc = (BufferError, kafka_exception)
        self.key = client.key
        self.producer_bytes = client.encoder.producer_bytes
        self.seq_view = client._seq_view
        self.pop_id = client._pop_id
        self.new_id = client._new_id

    def emit(self, event_type, body, *, parent_id=None, event_time=None, trace_id=None,
             session_id=None, event_id=None):
        cdef dict d = self.d
        cdef dict cd = self.cd
        cdef object info, eid, value, topic, sent
        cdef tuple entry
        cdef PyObject* e
        cdef long long seq
        cdef int64_t t = 0  # event_time in ms
        if trace_id or session_id or event_id:
            return self.py_emit(self.client, event_type, body, parent_id=parent_id,
                                event_time=event_time, trace_id=trace_id,
                                session_id=session_id, event_id=event_id)
        e = PyDict_GetItem(self.entries, event_type)
        if e == NULL:
            info = self.types.get(event_type)
            if info is None or info.plan is None:
                return self.py_emit(self.client, event_type, body, parent_id=parent_id,
                                    event_time=event_time)
            entry = (info, info.header, info.topic, info.plan)
            self.entries[event_type] = entry
        else:
            entry = <tuple>e
        info = entry[0]
        topic = entry[2]
        if event_time is None:
            t = now_ms()
        self.acquire()
        try:
            if d["_closed"]:
                raise RuntimeError("AgentClient is closed")
            try:
                eid = self.pop_id()
            except IndexError:
                eid = self.new_id()
            seq = <long long>d["_seqv"] + 1
            try:
                if event_time is not None:
                    t = as_long(event_time)
                value = _encode_event(<bytes>entry[1], eid, self.ed["session_ast"], parent_id,
                                      t, seq, self.producer_bytes, <Node>entry[3], body)
            except Exception:  # anything unusual: the Python path decides
                value = self.encoder.encode_py(info, body, eid, None, None, parent_id,
                                               t if event_time is None else event_time, seq)
            if self.od["active"]:
                self.client._send(topic, value)
            else:
                try:
                    d["_produce"](topic, value, self.key)
                    sent = cd["direct_sent"] + 1
                    cd["direct_sent"] = sent
                    if not seq & 63:  # the latency metric's sample (see AgentClient.emit)
                        cd["latency_probe"] = (monotonic(), sent)
                except self.kafka_exc:
                    self.client._send(topic, value)
            d["_seqv"] = seq
            self.seq_view[0] = seq  # persisted (mmap) before returning
            info.emitted += 1
        finally:
            self.release()
        return eid


cdef class DeliveryReports:
    """`AgentClient.on_delivery` in C for the usual report of a producer shared by several
    clients (one report per event): a direct event delivered while no replay batch is out.
    Any other report goes to the Python method. Reads and writes the same attributes as it
    (the instance dicts of the client's outage spool and counts)."""

    cdef object client
    cdef object py_report  # AgentClient.on_delivery (the Python method), unbound
    cdef object observe    # the latency histogram's observe
    cdef dict od           # the outage spool's __dict__: batch
    cdef dict cd           # the counts': direct_done
    cdef dict delivered    # the counts' delivered (one dict for the client's life)

    def __init__(self, client, py_report, observe):
        self.client = client
        self.py_report = py_report
        self.observe = observe
        self.od = client.outage.__dict__
        self.cd = client.counts.__dict__
        self.delivered = client.counts.delivered

    def report(self, err, msg):
        cdef object topic, lat
        cdef long long done
        if err is not None or self.od["batch"] is not None:
            return self.py_report(self.client, err, msg)
        topic = msg.topic()
        self.delivered[topic] = self.delivered[topic] + 1
        done = <long long>self.cd["direct_done"] + 1
        self.cd["direct_done"] = done
        if not done & 63:  # latency sampled, 1 in 64 (Histogram.observe is not cheap)
            lat = msg.latency()
            if lat is not None:
                self.observe(lat)
