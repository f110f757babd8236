# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Optional compiled Avro decoder for the contract's current schemas (built at install when a
C compiler is there; `schemas.serde` reads with fastavro otherwise, or when
CLAWSTREAM_NO_ACCEL=1).

Why: every consumer decodes every event, and fastavro's generic reader took 6-20 us an event
(dispatch on the schema per field), the largest single cost of the windows worker.
`compile_reader(schema)` turns a self-contained schema (named types inlined, no logical
types left) into a tree of `Node`s; `decode(plan, data, offset)` reads one record.

Contract: either exactly the dict fastavro's `schemaless_reader` gives for the same bytes
(same types: bool, int, float, str, bytes, list, dict), or an exception, and the caller then
asks fastavro, which returns the record or names the problem. So this code is strict: it
raises on anything unusual (truncation, bytes after the record, a boolean byte that is not
0/1, an int out of range, an over-long varint, a union branch out of range, invalid UTF-8).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

import sys as _sys


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)


cdef enum Kind:
    K_NULL, K_BOOL, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_STRING, K_BYTES, K_FIXED,
    K_ENUM, K_ARRAY, K_MAP, K_RECORD, K_UNION


class Unsupported(Exception):
    """A schema shape this module does not read (the caller keeps fastavro for it)."""


cdef class Node:
    cdef int kind
    cdef Py_ssize_t size       # fixed: its size
    cdef tuple items           # enum: symbols; union: branch Nodes; record: field Nodes
    cdef tuple names           # record: field names (interned)
    cdef Node child            # array items, map values


_PRIMITIVES = {"null": K_NULL, "boolean": K_BOOL, "int": K_INT, "long": K_LONG,
               "float": K_FLOAT, "double": K_DOUBLE, "string": K_STRING, "bytes": K_BYTES}


cdef Node _compile(object schema, dict named):
    cdef Node n = Node()
    if isinstance(schema, list):
        n.kind = K_UNION
        n.items = tuple([_compile(branch, named) for branch in schema])
        return n
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        short = schema.rpartition(".")[2]  # (no negative indexing: wraparound is off)
        if short in named:  # a full name, defined with a namespace
            return named[short]
        schema = {"type": schema}
    if "logicalType" in schema:
        raise Unsupported(f"logical type {schema['logicalType']!r}")
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return _compile(t, named)
    if t in _PRIMITIVES:
        n.kind = _PRIMITIVES[t]
    elif t == "fixed":
        n.kind = K_FIXED
        n.size = schema["size"]
    elif t == "enum":
        n.kind = K_ENUM
        n.items = tuple([_sys.intern(s) for s in schema["symbols"]])
    elif t == "array":
        n.kind = K_ARRAY
        n.child = _compile(schema["items"], named)
    elif t == "map":
        n.kind = K_MAP
        n.child = _compile(schema["values"], named)
    elif t in ("record", "error"):
        n.kind = K_RECORD
        if "name" in schema:  # a later reference by name (recursive types) reads the same
            named[schema["name"]] = n
        n.names = tuple([_sys.intern(f["name"]) for f in schema["fields"]])
        n.items = tuple([_compile(f["type"], named) for f in schema["fields"]])
    else:
        raise Unsupported(f"type {t!r}")
    if t in ("fixed", "enum") and "name" in schema:
        named[schema["name"]] = n
    return n


def compile_reader(dict schema):
    """The plan that reads records of `schema` (self-contained JSON; see module doc)."""
    return _compile(schema, {})


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


def decode(Node plan, bytes data, Py_ssize_t offset):
    """The record in `data[offset:]`, which must hold exactly one record of `plan`."""
    cdef Src s
    cdef dict record
    if plan.kind != K_RECORD:
        raise Unsupported("a record plan is required")
    if offset < 0 or offset > PyBytes_GET_SIZE(data):
        raise Corrupt("offset out of range")
    s.p = <const unsigned char*>PyBytes_AS_STRING(data)
    s.pos = offset
    s.end = PyBytes_GET_SIZE(data)
    record = read_record(&s, plan)
    if s.pos != s.end:
        raise Corrupt("bytes after the record")
    return record


if _sys.byteorder != "little":
    raise ImportError("schemas._decode supports little-endian hosts only")
