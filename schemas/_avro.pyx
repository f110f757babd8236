# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Optional compiled Avro reader and writer for the contract (built at install when a C
compiler is there; `schemas.serde` and the SDK use fastavro and the generated Python encoders
otherwise, or when CLAWSTREAM_NO_ACCEL=1).

Why: every consumer decodes every event and the windows worker encodes an aggregate for
every few; fastavro's generic reader took 6-20 us an event (dispatch on the schema per
field), the generated Python encoder ~10 us an aggregate. `compile_reader(schema)` and
`compile_writer(schema)` turn a self-contained schema (named types inlined) into a tree of
`Node`s; `decode(plan, data, offset)` reads one record, `encode_body(plan, record)` writes one
(`producers._accel` writes whole SDK events with the same plans).

Contract: either exactly what fastavro gives (the same dict from `schemaless_reader`, with
the same types; the same bytes as `schemaless_writer`), or an exception, and the caller then
asks fastavro, which gives the record or bytes or names the problem. So this code is strict:
the reader raises on anything unusual (truncation, bytes after the record, a boolean byte
that is not 0/1, an int out of range, an over-long varint, a union branch out of range,
invalid UTF-8); the writer accepts only exact built-in types (str, int but not bool, float,
bool, bytes, dict, list).

Longer than the project's ~400 lines a module on purpose: the reader and the writer share the
`Node` plans and the buffer primitives (`_avro.pxd` exports them to `producers/_accel.pyx`),
and one extension module keeps those calls plain C calls; split, they would cross module
boundaries on the hot path.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import sys as _sys

from schemas.codegen import field_default


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
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


cdef object _NO_DEFAULT = object()


class Unsupported(Exception):
    """A schema shape this module does not handle (the caller keeps the Python path)."""


cdef class Node:
    """One step of a plan (its fields are declared in schemas/_avro.pxd)."""


_PRIMITIVES = {"null": K_NULL, "boolean": K_BOOL, "int": K_INT, "long": K_LONG,
               "float": K_FLOAT, "double": K_DOUBLE, "string": K_STRING, "bytes": K_BYTES}


cdef Node _compile(object schema, dict named, bint writer):
    cdef Node n = Node()
    if isinstance(schema, list):
        n.kind = K_UNION
        n.items = tuple([_compile(branch, named, writer) for branch in schema])
        kinds = [b if isinstance(b, str) else b.get("type") for b in schema]
        if len(schema) == 2 and "null" in kinds:  # the writer's shape: null or one type
            n.size = kinds.index("null")
            n.child = n.items[1 - n.size]
        elif writer:
            raise Unsupported(f"union {kinds}")
        return n
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        short = schema.rpartition(".")[2]  # (no negative indexing: wraparound is off)
        if short in named:  # a full name, defined with a namespace
            return named[short]
        schema = {"type": schema}
    if not writer and "logicalType" in schema:  # fastavro converts it: fastavro reads it
        raise Unsupported(f"logical type {schema['logicalType']!r}")
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return _compile(t, named, writer)
    if t in _PRIMITIVES:
        n.kind = _PRIMITIVES[t]
    elif t == "fixed":
        n.kind = K_FIXED
        n.size = schema["size"]
    elif t == "enum":
        n.kind = K_ENUM
        n.items = tuple([_sys.intern(s) for s in schema["symbols"]])
        n.symbols = {s: i for i, s in enumerate(n.items)}
    elif t == "array":
        n.kind = K_ARRAY
        n.child = _compile(schema["items"], named, writer)
    elif t == "map":
        n.kind = K_MAP
        n.child = _compile(schema["values"], named, writer)
    elif t in ("record", "error"):
        n.kind = K_RECORD
        if "name" in schema:  # a later reference by name (recursive types) reads the same
            named[schema["name"]] = n
        _fill_record(n, schema["fields"], named, writer)
    else:
        raise Unsupported(f"type {t!r}")
    if t in ("fixed", "enum") and "name" in schema:
        named[schema["name"]] = n
    return n


cdef _fill_record(Node n, list fields, dict named, bint writer):
    n.kind = K_RECORD
    # interned: a body's keys (string literals, interned) then match by pointer
    n.names = tuple([_sys.intern(f["name"]) for f in fields])
    n.items = tuple([_compile(f["type"], named, writer) for f in fields])
    n.defaults = tuple([field_default(f) if "default" in f else _NO_DEFAULT for f in fields])
    if len(set(n.names)) != len(n.names):
        raise Unsupported("duplicate field names")


def compile_reader(dict schema):
    """The plan that reads records of `schema` (self-contained, logical types stripped)."""
    return _compile(schema, {}, False)


def compile_writer(dict schema, int skip_fields=0):
    """The plan that writes records of `schema` (self-contained), without its first
    `skip_fields` fields (the SDK writes the envelope itself)."""
    cdef Node n = Node()
    _fill_record(n, schema["fields"][skip_fields:], {}, True)
    return n


# -- reading ----------------------------------------------------------------------------------
cdef struct Src:
    const unsigned char* p
    Py_ssize_t pos
    Py_ssize_t end


class Corrupt(ValueError):
    """The bytes do not read as this schema (fastavro then names the problem)."""


cdef int need(Src* s, Py_ssize_t n) except -1:
    if n < 0 or s.end - s.pos < n:
        raise Corrupt("truncated")
    return 0


cdef inline int64_t read_long(Src* s) except? -1:
    cdef uint64_t acc = 0
    cdef unsigned char b
    cdef int shift = 0
    while True:
        if s.pos >= s.end:
            raise Corrupt("truncated varint")
        b = s.p[s.pos]
        s.pos += 1
        acc |= <uint64_t>(b & 0x7F) << shift
        if not (b & 0x80):
            break
        shift += 7
        if shift > 63:
            raise Corrupt("varint too long")
    return <int64_t>(acc >> 1) ^ -<int64_t>(acc & 1)


cdef inline int64_t block_count(Src* s) except? -1:
    """Items in an array's or map's next block (0: no more), past the block's byte size."""
    cdef int64_t count = read_long(s)
    if count < 0:
        count = -count
        read_long(s)  # the block's size in bytes
    return count


cdef object read_value(Src* s, Node n):
    cdef int kind = n.kind
    cdef int64_t v, count, i
    cdef double d
    cdef float f
    cdef object out, key
    cdef Node child
    if kind == K_STRING:
        v = read_long(s)
        need(s, v)
        out = PyUnicode_DecodeUTF8(<const char*>s.p + s.pos, v, NULL)
        s.pos += v
        return out
    if kind == K_LONG:
        return read_long(s)
    if kind == K_UNION:
        v = read_long(s)
        if v < 0 or v >= PyTuple_GET_SIZE(n.items):
            raise Corrupt("union branch out of range")
        return read_value(s, <Node>PyTuple_GET_ITEM(n.items, v))
    if kind == K_RECORD:
        return read_record(s, n)
    if kind == K_INT:
        v = read_long(s)
        if not (-2147483648 <= v <= 2147483647):
            raise Corrupt("int out of range")
        return v
    if kind == K_NULL:
        return None
    if kind == K_DOUBLE:
        need(s, 8)
        memcpy(&d, s.p + s.pos, 8)  # little-endian hosts only (checked at import)
        s.pos += 8
        return d
    if kind == K_FLOAT:
        need(s, 4)
        memcpy(&f, s.p + s.pos, 4)
        s.pos += 4
        return <double>f
    if kind == K_BOOL:
        need(s, 1)
        v = s.p[s.pos]
        s.pos += 1
        if v == 1:
            return True
        if v == 0:
            return False
        raise Corrupt("boolean byte")
    if kind == K_ENUM:
        v = read_long(s)
        if v < 0 or v >= PyTuple_GET_SIZE(n.items):
            raise Corrupt("enum index out of range")
        return <object>PyTuple_GET_ITEM(n.items, v)
    if kind == K_ARRAY:
        out = []
        child = n.child
        count = block_count(s)
        while count:
            for i in range(count):
                PyList_Append(out, read_value(s, child))
            count = block_count(s)
        return out
    if kind == K_MAP:
        out = {}
        child = n.child
        count = block_count(s)
        while count:
            for i in range(count):
                v = read_long(s)
                need(s, v)
                key = PyUnicode_DecodeUTF8(<const char*>s.p + s.pos, v, NULL)
                s.pos += v
                PyDict_SetItem(out, key, read_value(s, child))
            count = block_count(s)
        return out
    if kind == K_BYTES:
        v = read_long(s)
        need(s, v)
        out = PyBytes_FromStringAndSize(<const char*>s.p + s.pos, v)
        s.pos += v
        return out
    if kind == K_FIXED:
        need(s, n.size)
        out = PyBytes_FromStringAndSize(<const char*>s.p + s.pos, n.size)
        s.pos += n.size
        return out
    raise Unsupported("unknown node")


cdef dict read_record(Src* s, Node n):
    cdef dict out = {}
    cdef Py_ssize_t i, nf = PyTuple_GET_SIZE(n.names)
    for i in range(nf):
        PyDict_SetItem(out, <object>PyTuple_GET_ITEM(n.names, i),
                       read_value(s, <Node>PyTuple_GET_ITEM(n.items, i)))
    return out


cdef int open_record(Src* s, Node plan, bytes data, Py_ssize_t offset) except -1:
    """`s` over `data[offset:]`, which a record `plan` is to read."""
    if plan.kind != K_RECORD:
        raise Unsupported("a record plan is required")
    if offset < 0 or offset > PyBytes_GET_SIZE(data):
        raise Corrupt("offset out of range")
    s.p = <const unsigned char*>PyBytes_AS_STRING(data)
    s.pos = offset
    s.end = PyBytes_GET_SIZE(data)
    return 0


def decode(Node plan, bytes data, Py_ssize_t offset):
    """The record in `data[offset:]`, which must hold exactly one record of `plan`."""
    cdef Src s
    cdef dict record
    open_record(&s, plan, data, offset)
    record = read_record(&s, plan)
    if s.pos != s.end:
        raise Corrupt("bytes after the record")
    return record


# -- writing ----------------------------------------------------------------------------------
# output buffer ----------------------------------------------------------------------------
cdef int buf_grow(Buf* b, Py_ssize_t need) except -1:
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


cdef int buf_put(Buf* b, const char* src, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        buf_grow(b, n)
    memcpy(b.data + b.len, src, n)
    b.len += n
    return 0


cdef int buf_byte(Buf* b, unsigned char c) except -1:
    if b.len + 1 > b.cap:
        buf_grow(b, 1)
    b.data[b.len] = <char>c
    b.len += 1
    return 0


cdef int buf_long(Buf* b, int64_t v) except -1:
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


cdef int64_t as_long(object x) except? -1:
    cdef int overflow = 0
    cdef long long v
    if not PyLong_CheckExact(x):  # bool, float, numpy ints...: the Python path decides
        raise TypeError("int expected")
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        raise OverflowError("does not fit in an Avro long")
    return v


cdef int put_str(Buf* b, object s) except -1:
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
        put_value(b, <Node>PyTuple_GET_ITEM(n.items, i), value)
    if found != len(r):
        raise TypeError("unknown field")  # fastavro names it
    return 0


def encode_record(bytes header, Node plan, object record):
    """`header` followed by the bytes of `record` under `plan` (a writer plan)."""
    cdef Buf b
    buf_init(&b)
    try:
        buf_put(&b, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header))
        put_record(&b, plan, record)
        return PyBytes_FromStringAndSize(b.data, b.len)
    finally:
        buf_free(&b)


def encode_body(Node plan, object record):
    """Just the bytes of `record` under `plan`."""
    return encode_record(b"", plan, record)


if _sys.byteorder != "little":
    raise ImportError("schemas._avro supports little-endian hosts only")


# -- checking (the ingest gateway) ------------------------------------------------------------
cdef struct Walk:
    Py_ssize_t leaf      # values read so far (every value but records and unions)
    Py_ssize_t capture   # the leaf to keep (appended to the `kept` list)


cdef int skip_value(Src* s, Node n, Walk* w, list kept) except -1:
    """`read_value` without building the record: the same checks in the same order (so what
    passes here `decode` reads), one value kept (`w.capture`, e.g. the envelope's agent_id)."""
    cdef int kind = n.kind
    cdef int64_t v, count, i
    cdef Node child
    cdef Py_ssize_t nf
    if kind == K_RECORD:
        nf = PyTuple_GET_SIZE(n.names)
        for i in range(nf):
            skip_value(s, <Node>PyTuple_GET_ITEM(n.items, i), w, kept)
        return 0
    if kind == K_UNION:
        v = read_long(s)
        if v < 0 or v >= PyTuple_GET_SIZE(n.items):
            raise Corrupt("union branch out of range")
        return skip_value(s, <Node>PyTuple_GET_ITEM(n.items, v), w, kept)
    if w.leaf == w.capture:
        w.leaf += 1
        PyList_Append(kept, read_value(s, n))
        return 0
    w.leaf += 1
    if kind == K_STRING:
        v = read_long(s)
        need(s, v)
        PyUnicode_DecodeUTF8(<const char*>s.p + s.pos, v, NULL)  # (invalid UTF-8 raises)
        s.pos += v
    elif kind == K_LONG:
        read_long(s)
    elif kind == K_INT:
        v = read_long(s)
        if not (-2147483648 <= v <= 2147483647):
            raise Corrupt("int out of range")
    elif kind == K_NULL:
        pass
    elif kind == K_DOUBLE:
        need(s, 8)
        s.pos += 8
    elif kind == K_FLOAT:
        need(s, 4)
        s.pos += 4
    elif kind == K_BOOL:
        need(s, 1)
        v = s.p[s.pos]
        s.pos += 1
        if v != 0 and v != 1:
            raise Corrupt("boolean byte")
    elif kind == K_ENUM:
        v = read_long(s)
        if v < 0 or v >= PyTuple_GET_SIZE(n.items):
            raise Corrupt("enum index out of range")
    elif kind == K_ARRAY or kind == K_MAP:
        child = n.child
        count = block_count(s)
        while count:
            # stricter than decode: no block holds more items than bytes are left (an item
            # of a few-byte schema would otherwise make a loop of 2**62 rounds)
            if count > s.end - s.pos:
                raise Corrupt("block count beyond the data")
            for i in range(count):
                if kind == K_MAP:
                    v = read_long(s)
                    need(s, v)
                    PyUnicode_DecodeUTF8(<const char*>s.p + s.pos, v, NULL)
                    s.pos += v
                skip_value(s, child, w, kept)
            count = block_count(s)
    elif kind == K_BYTES:
        v = read_long(s)
        need(s, v)
        s.pos += v
    elif kind == K_FIXED:
        need(s, n.size)
        s.pos += n.size
    else:
        raise Unsupported("unknown node")
    return 0


def check(Node plan, bytes data, Py_ssize_t offset, Py_ssize_t capture):
    """Whether `data[offset:]` holds exactly one record of `plan` (else Corrupt), without
    building it: the value of its `capture`-th leaf (in the order of the bytes, records and
    unions not counted; the envelope's agent_id is leaf 1)."""
    cdef Src s
    cdef Walk w
    cdef list kept = []
    open_record(&s, plan, data, offset)
    w.leaf = 0
    w.capture = capture
    skip_value(&s, plan, &w, kept)
    if s.pos != s.end:
        raise Corrupt("bytes after the record")
    if PyList_GET_SIZE(kept) != 1:
        raise Corrupt("no such value")
    return <object>PyList_GET_ITEM(kept, 0)
