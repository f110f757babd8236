# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Optional compiled encoder for the SDK's hot path (built at install when a C compiler is
there; `producers.sdk` falls back to the generated Python encoders otherwise, or when
CLAWSTREAM_NO_ACCEL=1).

`compile_plan(expanded, skip_fields)` turns an expanded Avro record schema into a tree of
`Node`s; `encode_event(...)` writes a whole event (header, envelope, body) from it.

Contract (same as schemas.codegen): either exactly fastavro's bytes, or an exception, and the
caller then takes the Python path (which writes the same bytes or names the problem). So this
code is strict: only exact built-in types (str, int but not bool, float, bool, bytes, dict,
list) are accepted; anything else raises.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import sys as _sys

from schemas.codegen import field_default


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    bint PyList_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    double PyFloat_AS_DOUBLE(object o)
    double PyLong_AsDouble(object o) except? -1.0

cdef extern from "float.h":
    double FLT_MAX

cdef enum Kind:
    K_NULL, K_BOOL, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_STRING, K_BYTES, K_FIXED,
    K_ENUM, K_ARRAY, K_MAP, K_RECORD, K_UNION


cdef class Node:
    cdef int kind
    cdef Py_ssize_t size       # fixed size; union: index of the null branch
    cdef object symbols        # enum: dict symbol -> index
    cdef Node child            # array items, map values, union's non-null branch
    cdef tuple names           # record field names
    cdef tuple fields          # record field Nodes
    cdef tuple defaults        # record field defaults (_NO_DEFAULT when none)


cdef object _NO_DEFAULT = object()


class Unsupported(Exception):
    """A schema shape this module does not handle (the caller keeps the Python encoder)."""


cdef Node _node(object schema):
    cdef Node n = Node()
    if isinstance(schema, list):
        kinds = [b if isinstance(b, str) else b.get("type") for b in schema]
        if len(schema) != 2 or "null" not in kinds:
            raise Unsupported(f"union {kinds}")
        n.kind = K_UNION
        n.size = kinds.index("null")
        n.child = _node(schema[1 - n.size])
        return n
    if isinstance(schema, str):
        schema = {"type": schema}
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return _node(t)
    simple = {"null": K_NULL, "boolean": K_BOOL, "int": K_INT, "long": K_LONG,
              "float": K_FLOAT, "double": K_DOUBLE, "string": K_STRING, "bytes": K_BYTES}
    if t in simple:
        n.kind = simple[t]
    elif t == "fixed":
        n.kind = K_FIXED
        n.size = schema["size"]
    elif t == "enum":
        n.kind = K_ENUM
        n.symbols = {_sys.intern(s): i for i, s in enumerate(schema["symbols"])}
    elif t == "array":
        n.kind = K_ARRAY
        n.child = _node(schema["items"])
    elif t == "map":
        n.kind = K_MAP
        n.child = _node(schema["values"])
    elif t in ("record", "error"):
        _fill_record(n, schema["fields"])
    else:
        raise Unsupported(f"type {t!r}")
    return n


cdef _fill_record(Node n, list fields):
    n.kind = K_RECORD
    # interned: a body's keys (string literals, interned) then match by pointer
    n.names = tuple(_sys.intern(f["name"]) for f in fields)
    n.fields = tuple(_node(f["type"]) for f in fields)
    n.defaults = tuple(field_default(f) if "default" in f else _NO_DEFAULT for f in fields)
    if len(set(n.names)) != len(n.names):
        raise Unsupported("duplicate field names")


def compile_plan(dict expanded, int skip_fields=0):
    """The plan of `expanded` without its first `skip_fields` fields (see module doc)."""
    cdef Node n = Node()
    _fill_record(n, expanded["fields"][skip_fields:])
    return n


# -- output buffer ----------------------------------------------------------------------------
cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap
    char small[512]


cdef inline int buf_grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    cdef char* p
    while cap < b.len + need:
        cap *= 2
    if b.data == b.small:
        p = <char*>malloc(cap)
        if p == NULL:
            raise MemoryError()
        memcpy(p, b.data, b.len)
    else:
        p = <char*>realloc(b.data, cap)
        if p == NULL:
            raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef inline int buf_put(Buf* b, const char* src, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        buf_grow(b, n)
    memcpy(b.data + b.len, src, n)
    b.len += n
    return 0


cdef inline int buf_byte(Buf* b, unsigned char c) except -1:
    if b.len + 1 > b.cap:
        buf_grow(b, 1)
    b.data[b.len] = <char>c
    b.len += 1
    return 0


cdef inline int buf_long(Buf* b, int64_t v) except -1:
    cdef uint64_t n = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    if b.len + 10 > b.cap:
        buf_grow(b, 10)
    while n > 0x7F:
        b.data[b.len] = <char>((n & 0x7F) | 0x80)
        b.len += 1
        n >>= 7
    b.data[b.len] = <char>n
    b.len += 1
    return 0


cdef inline int64_t as_long(object x) except? -1:
    cdef int overflow = 0
    cdef long long v
    if not PyLong_CheckExact(x):  # bool, float, numpy ints...: the Python path decides
        raise TypeError("int expected")
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        raise OverflowError("does not fit in an Avro long")
    return v


cdef inline int put_str(Buf* b, object s) except -1:
    cdef Py_ssize_t n
    cdef const char* p
    if not PyUnicode_CheckExact(s):
        raise TypeError("str expected")
    p = PyUnicode_AsUTF8AndSize(s, &n)  # lone surrogates raise
    buf_long(b, n)
    buf_put(b, p, n)
    return 0


cdef int put_value(Buf* b, Node n, object x) except -1:
    cdef int64_t v
    cdef double d
    cdef float f
    cdef Py_ssize_t i, size, pos
    cdef PyObject* k
    cdef PyObject* val
    cdef object idx
    cdef int kind = n.kind
    if kind == K_STRING:
        put_str(b, x)
    elif kind == K_UNION:
        if x is None:
            buf_byte(b, <unsigned char>(2 * n.size))
        else:
            buf_byte(b, <unsigned char>(2 * (1 - n.size)))
            put_value(b, n.child, x)
    elif kind == K_LONG or kind == K_INT:
        v = as_long(x)
        if kind == K_INT and not (-2147483648 <= v <= 2147483647):
            raise OverflowError("does not fit in an Avro int")
        buf_long(b, v)
    elif kind == K_DOUBLE or kind == K_FLOAT:
        if PyFloat_CheckExact(x):
            d = PyFloat_AS_DOUBLE(x)
        elif PyLong_CheckExact(x):
            d = PyLong_AsDouble(x)  # OverflowError for huge ints
        else:
            raise TypeError("number expected")
        if kind == K_DOUBLE:
            buf_put(b, <char*>&d, 8)  # little-endian hosts only (checked at import)
        else:
            if d == d and (d > FLT_MAX or d < -FLT_MAX) and d - d == 0.0:
                raise OverflowError("float too large")  # struct.pack('<f') raises too
            f = <float>d
            buf_put(b, <char*>&f, 4)
    elif kind == K_RECORD:
        put_record(b, n, x)
    elif kind == K_ENUM:
        if not PyUnicode_CheckExact(x):
            raise TypeError("enum symbol expected")
        idx = n.symbols[x]  # KeyError for unknown symbols
        buf_long(b, <int64_t>idx)
    elif kind == K_BOOL:
        if x is True:
            buf_byte(b, 1)
        elif x is False:
            buf_byte(b, 0)
        else:
            raise TypeError("boolean expected")
    elif kind == K_MAP:
        if not PyDict_CheckExact(x):
            raise TypeError("dict expected")
        size = len(x)
        if size:
            buf_long(b, size)
            pos = 0
            while PyDict_Next(x, &pos, &k, &val):
                put_str(b, <object>k)
                put_value(b, n.child, <object>val)
            if len(x) != size:
                raise RuntimeError("dict changed size")
        buf_byte(b, 0)
    elif kind == K_ARRAY:
        if not PyList_CheckExact(x):
            raise TypeError("list expected")
        size = PyList_GET_SIZE(x)
        if size:
            buf_long(b, size)
            i = 0
            while i < PyList_GET_SIZE(x):
                put_value(b, n.child, <object>PyList_GET_ITEM(x, i))
                i += 1
            if PyList_GET_SIZE(x) != size:
                raise RuntimeError("list changed size")
        buf_byte(b, 0)
    elif kind == K_BYTES:
        if not PyBytes_CheckExact(x):
            raise TypeError("bytes expected")
        size = PyBytes_GET_SIZE(x)
        buf_long(b, size)
        buf_put(b, PyBytes_AS_STRING(x), size)
    elif kind == K_FIXED:
        if not PyBytes_CheckExact(x) or PyBytes_GET_SIZE(x) != n.size:
            raise TypeError("fixed size")
        buf_put(b, PyBytes_AS_STRING(x), n.size)
    elif kind == K_NULL:
        if x is not None:
            raise TypeError("null expected")
    else:
        raise TypeError("unknown node")
    return 0


cdef int put_record(Buf* b, Node n, object r) except -1:
    cdef Py_ssize_t i, found = 0, nf = len(n.names)
    cdef PyObject* v
    cdef object name, value
    if not PyDict_CheckExact(r):
        raise TypeError("dict expected")
    for i in range(nf):
        name = <object>PyTuple_GET_ITEM(n.names, i)
        v = PyDict_GetItem(r, name)
        if v == NULL:
            value = <object>PyTuple_GET_ITEM(n.defaults, i)
            if value is _NO_DEFAULT:
                raise KeyError(name)
        else:
            value = <object>v
            found += 1
        put_value(b, <Node>PyTuple_GET_ITEM(n.fields, i), value)
    if found != len(r):
        raise TypeError("unknown field")  # fastavro names it
    return 0


def encode_body(Node plan, object record):
    """Just the body (for tests): the bytes of `record` under `plan`."""
    cdef Buf b
    b.data = b.small
    b.len = 0
    b.cap = 512
    try:
        put_record(&b, plan, record)
        return PyBytes_FromStringAndSize(b.data, b.len)
    finally:
        if b.data != b.small:
            free(b.data)


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
    b.data = b.small
    b.len = 0
    b.cap = 512
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
        if b.data != b.small:
            free(b.data)


cdef const char* _HEX = b"0123456789abcdef"


def uuid4_strings(bytes random16):
    """One uuid4 string per 16 random bytes (version 4, variant 10xx: what
    str(uuid.UUID(bytes=b, version=4)) gives), written straight into new str objects:
    `producers.sdk.RandomIds` makes its batches with it."""
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
    reading and writing the client's own attributes (its instance dict), so everything else
    in the client sees the same state. Any other call goes to the Python method."""

    cdef object client
    cdef dict d            # the client's __dict__
    cdef dict types
    cdef dict entries      # event_type -> (info, header, topic, plan)
    cdef object acquire, release
    cdef object py_emit    # AgentClient.emit (the Python method), unbound
    cdef object kafka_exc  # (BufferError, KafkaException)
    cdef object key, producer_bytes, seq_view, pop_id, new_id  # fixed for a client's life

    def __init__(self, client, py_emit, kafka_exception):
        self.client = client
        self.d = client.__dict__
        self.types = client._types
        self.entries = {}
        self.acquire = client._lock.acquire
        self.release = client._lock.release
        self.py_emit = py_emit
        self.kafka_exc = (BufferError, kafka_exception)
        self.key = client._key
        self.producer_bytes = client._producer_bytes
        self.seq_view = client._seq_view
        self.pop_id = client._pop_id
        self.new_id = client._new_id

    def emit(self, event_type, body, *, parent_id=None, event_time=None, trace_id=None,
             session_id=None, event_id=None):
        cdef dict d = self.d
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
                value = _encode_event(<bytes>entry[1], eid, d["_session_ast"], parent_id, t,
                                      seq, self.producer_bytes, <Node>entry[3], body)
            except Exception:  # anything unusual: the Python path decides
                value = self.client._encode_py(info, body, eid, None, None, parent_id,
                                               t if event_time is None else event_time, seq)
            if d["_spooling"]:
                self.client._send(topic, value)
            else:
                try:
                    d["_produce"](topic, value, self.key)
                    sent = d["_direct_sent"] + 1
                    d["_direct_sent"] = sent
                    if not seq & 63:  # the latency metric's sample (see AgentClient.emit)
                        d["_latency_probe"] = (monotonic(), sent)
                except self.kafka_exc:
                    self.client._send(topic, value)
            d["_seqv"] = seq
            self.seq_view[0] = seq  # persisted (mmap) before returning
            info.emitted += 1
        finally:
            self.release()
        return eid
