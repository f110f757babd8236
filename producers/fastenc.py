"""Compiled Avro binary encoders for the contract's records (the SDK's hot path).

fastavro's generic writer walks the schema dict for every record (~6-10 µs for an Action),
which alone would cap the SDK below 100k events/s. This module turns an *expanded* record
schema into straight-line Python (one function per record) that appends the Avro binary
encoding to a bytearray. The output is byte-for-byte what fastavro writes (tests compare
both over every event type); anything the compiled code cannot handle raises, and callers
fall back to `schemas.serde.Serde.encode`, which gives the proper `EncodeError`.

Pure logic, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Encoder = Callable[[dict[str, Any], bytearray], None]

_PACK_FLOAT = struct.Struct("<f").pack
_PACK_DOUBLE = struct.Struct("<d").pack


def write_long(out: bytearray, n: int) -> None:
    """Zig-zag varint, as Avro `int` and `long` are written."""
    n = (n << 1) ^ (n >> 63)
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


#: Encoded short strings (length prefix included), shared by every compiled encoder.
_STRING_CACHE: dict[str, bytes] = {}
_STRING_CACHE_MAX = 8192


def encode_string(s: str) -> bytes:
    """Avro string bytes of `s`, remembered when short. Non-strings raise (no .encode)."""
    b = s.encode()
    n = len(b)
    out = bytes((n << 1,)) + b if n < 64 else long_bytes(n) + b
    if n < 64:
        if len(_STRING_CACHE) >= _STRING_CACHE_MAX:
            _STRING_CACHE.clear()
        _STRING_CACHE[s] = out
    return out


def long_bytes(n: int) -> bytes:
    out = bytearray()
    write_long(out, n)
    return bytes(out)


def string_bytes(s: str) -> bytes:
    """A whole Avro string (length prefix + UTF-8), for constant parts computed once."""
    b = s.encode()
    return long_bytes(len(b)) + b


class UnsupportedSchema(Exception):
    """A schema shape this compiler does not handle; use fastavro for it."""


class _Gen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self._n = 0

    def var(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, value: Any) -> str:
        name = self.var("K")
        self.consts[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def length(self, expr: str, depth: int) -> None:
        """A non-negative length: one byte below 64, which is nearly always."""
        n = self.var("n")
        self.emit(depth, f"{n} = {expr}")
        self.emit(depth, f"if {n} < 64: o.append({n} << 1)")
        self.emit(depth, f"else: wl(o, {n})")

    # -- types --------------------------------------------------------------------------------
    def value(self, schema: Any, expr: str, depth: int) -> None:
        """Append code writing `expr` (a simple variable name) as `schema`."""
        if isinstance(schema, str):
            schema = {"type": schema}
        if isinstance(schema, list):
            return self.union(schema, expr, depth)
        t = schema["type"]
        if isinstance(t, (dict, list)):
            return self.value(t, expr, depth)
        if t == "null":
            self.emit(depth, f"if {expr} is not None: raise TypeError('null expected')")
        elif t == "boolean":
            self.emit(depth, f"o.append(1 if {expr} else 0)")
        elif t in ("int", "long"):
            self.emit(depth, f"if 0 <= {expr} < 64: o.append({expr} << 1)")
            self.emit(depth, f"else: wl(o, {expr})")
        elif t == "float":
            self.emit(depth, f"o += pf({expr})")
        elif t == "double":
            self.emit(depth, f"o += pd({expr})")
        elif t == "string":
            # most strings repeat (apps, kinds, labels): their encoding comes from a cache
            b = self.var("b")
            self.emit(depth, f"{b} = sc({expr})")
            self.emit(depth, f"if {b} is None: {b} = es({expr})")
            self.emit(depth, f"o += {b}")
        elif t == "bytes":
            self.length(f"len({expr})", depth)
            self.emit(depth, f"o += {expr}")
        elif t == "enum":
            table = {s: long_bytes(i) for i, s in enumerate(schema["symbols"])}
            self.emit(depth, f"o += {self.const(table)}[{expr}]")
        elif t == "array":
            item = self.var("i")
            self.emit(depth, f"if {expr}:")
            self.emit(depth + 1, f"wl(o, len({expr}))")
            self.emit(depth + 1, f"for {item} in {expr}:")
            self.value(schema["items"], item, depth + 2)
            self.emit(depth, "o.append(0)")
        elif t == "map":
            k, v = self.var("k"), self.var("v")
            self.emit(depth, f"if {expr}:")
            self.emit(depth + 1, f"wl(o, len({expr}))")
            self.emit(depth + 1, f"for {k}, {v} in {expr}.items():")
            kb = self.var("b")
            self.emit(depth + 2, f"{kb} = {k}.encode()")
            self.length(f"len({kb})", depth + 2)
            self.emit(depth + 2, f"o += {kb}")
            self.value(schema["values"], v, depth + 2)
            self.emit(depth, "o.append(0)")
        elif t == "fixed":
            self.emit(depth, f"if len({expr}) != {schema['size']}: raise ValueError('fixed size')")
            self.emit(depth, f"o += {expr}")
        elif t == "record":
            self.record_fields(schema["fields"], expr, depth)
        else:
            raise UnsupportedSchema(f"type {t!r}")

    def union(self, branches: list[Any], expr: str, depth: int) -> None:
        names = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) != 2 or "null" not in names:
            raise UnsupportedSchema(f"union {names}")
        null_idx = names.index("null")
        other = branches[1 - null_idx]
        self.emit(depth, f"if {expr} is None:")
        self.emit(depth + 1, f"o.append({2 * null_idx})")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"o.append({2 * (1 - null_idx)})")
        self.value(other, expr, depth + 1)

    def record_fields(self, fields: list[dict[str, Any]], expr: str, depth: int) -> None:
        for field in fields:
            v = self.var("f")
            name = field["name"]
            if "default" in field:
                default = _python_default(field["type"], field["default"])
                if default is None or isinstance(default, (bool, int, float, str)):
                    self.emit(depth, f"{v} = {expr}.get({name!r}, {default!r})")
                else:
                    self.emit(depth, f"{v} = {expr}.get({name!r}, {self.const(default)})")
            else:
                self.emit(depth, f"{v} = {expr}[{name!r}]")
            self.value(field["type"], v, depth)


def _python_default(schema: Any, default: Any) -> Any:
    """The Python value of a field's JSON default (bytes defaults are code-point strings)."""
    t = schema[0] if isinstance(schema, list) else schema
    t = t.get("type") if isinstance(t, dict) else t
    if t in ("bytes", "fixed") and isinstance(default, str):
        return default.encode("latin-1")
    return default


def compile_fields(fields: list[dict[str, Any]], name: str = "encode") -> Encoder:
    """An encoder writing `fields` of a record, in order, from a dict."""
    gen = _Gen()
    gen.record_fields(fields, "r", 1)
    src = f"def {name}(r, o):\n" + ("\n".join(gen.lines) or "    pass") + "\n"
    namespace: dict[str, Any] = {"wl": write_long, "pf": _PACK_FLOAT, "pd": _PACK_DOUBLE,
                                 "sc": _STRING_CACHE.get, "es": encode_string}
    namespace.update(gen.consts)
    exec(compile(src, f"<avro-encoder {name}>", "exec"), namespace)
    fn: Encoder = namespace[name]
    fn.__source__ = src  # type: ignore[attr-defined]
    return fn


def compile_record(expanded: dict[str, Any]) -> Encoder:
    """An encoder for a whole (expanded, self-contained) record schema."""
    return compile_fields(expanded["fields"], "encode_" + expanded["name"].rsplit(".", 1)[-1])
