"""What `producers._accel` uses of the compiled Avro writer (see schemas/_avro.pyx)."""

from libc.stdint cimport int64_t
from libc.stdlib cimport free


cdef class Node:
    cdef int kind
    cdef Py_ssize_t size       # fixed: its size; a [null, T] union: the null branch's index
    cdef dict symbols          # enum: symbol -> index
    cdef tuple items           # enum: symbols; union: branch Nodes; record: field Nodes
    cdef tuple names           # record: field names (interned)
    cdef tuple defaults        # record: field defaults (_NO_DEFAULT when none)
    cdef Node child            # array items, map values, a [null, T] union's T


cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap
    char small[512]


cdef inline void buf_init(Buf* b) noexcept:
    b.data = b.small
    b.len = 0
    b.cap = 512


cdef inline void buf_free(Buf* b) noexcept:
    if b.data != b.small:
        free(b.data)


cdef int buf_put(Buf* b, const char* src, Py_ssize_t n) except -1
cdef int buf_byte(Buf* b, unsigned char c) except -1
cdef int buf_long(Buf* b, int64_t v) except -1
cdef int64_t as_long(object x) except? -1
cdef int put_str(Buf* b, object s) except -1
cdef int put_record(Buf* b, Node n, object r) except -1
