"""Straight-line Avro binary encoders generated from the contract's schemas.

fastavro's writer interprets the schema for every record (about 12 µs for an Action here);
a function generated once per schema writes the same bytes several times faster, which is what
lets the SDK reach 100k events/s on one core. This is the one generator of the project: the
serde (`schemas.serde`) uses it as its fast path, the SDK (`producers.sdk`) for event bodies
(`skip_fields=1`: everything after the envelope, which the SDK writes itself).

The contract: for any record, a generated encoder either writes exactly the bytes fastavro
(`schemaless_writer(..., strict_allow_default=True)`) writes, or raises. Callers then hand the
record to fastavro, which writes it (same bytes) or raises the proper error. So the generated
code only needs to be exact on the common path and may raise on anything unusual:

- outside unions fastavro is lenient (True for an int is 1, an int for a double is fine) and
  the generated code is as lenient where the bytes agree, without per-value type checks;
- inside a union fastavro validates the value against the branch first (no bool for an int,
  int ranges, no unknown fields in nested records), so there every value is checked exactly;
- records with keys the schema does not know raise (fastavro names them in its error).

Strings that repeat (apps, kinds, labels) are encoded once and kept in a bounded cache; strings
of fields that hold ids, URIs or hashes are encoded inline (caching unique values is waste).

Supported: every primitive, records, enums, arrays, maps, fixed, and two-branch unions with
null (all the contract uses); anything else raises `Unsupported` at generation time and the
serde keeps fastavro for that schema. Pure, no I/O.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from typing import Any

Encoder = Callable[[dict[str, Any], bytearray], None]

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Unsupported(Exception):
    """A schema shape the generator does not handle."""


def write_long(out: bytearray, n: int) -> None:
    """Append an Avro int/long: zig-zag, then base-128 varint. Non-integers raise TypeError."""
    n = operator.index(n)  # ints (and bool, numpy ints) only: 5.0 raises, like the fast paths
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit in an Avro long")
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_int(out: bytearray, n: int) -> None:
    """Append an Avro int (32-bit range checked)."""
    n = operator.index(n)
    if not _INT_MIN <= n <= _INT_MAX:
        raise OverflowError(f"{n} does not fit in an Avro int")
    write_long(out, n)


def avro_long(n: int) -> bytes:
    """The Avro encoding of a long (for constant parts computed once)."""
    out = bytearray()
    write_long(out, n)
    return bytes(out)


def avro_string(s: str) -> bytes:
    """A whole Avro string: length prefix + UTF-8."""
    b = s.encode()
    return avro_long(len(b)) + b


#: Encoded short strings (length prefix included), shared by every generated encoder.
STRING_CACHE: dict[str, bytes] = {}
_STRING_CACHE_MAX = 8192
cached_string = STRING_CACHE.get


def cache_string(s: str) -> bytes:
    """Avro bytes of `s`, remembered when short. Non-strings raise (no .encode())."""
    b = s.encode()
    n = len(b)
    if n >= 64:
        return avro_long(n) + b
    out = bytes((n << 1,)) + b
    if len(STRING_CACHE) >= _STRING_CACHE_MAX:
        STRING_CACHE.clear()
    STRING_CACHE[s] = out
    return out


#: The two-byte Avro encodings of 64..8191 (index: the value; below 64 unused).
_TWO_BYTE_LONGS = [bytes((((n << 1) & 0x7F) | 0x80, n >> 6)) for n in range(8192)]


def _unique_valued(field_name: str) -> bool:
    """Fields whose strings rarely repeat: not worth a cache entry."""
    return field_name.endswith(("id", "uri", "sha256", "hash"))


class _Gen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "wl": write_long,
            "wi": write_int,
            "pf": struct.Struct("<f").pack,
            "pd": struct.Struct("<d").pack,
            "sc": cached_string,
            "cs": cache_string,
            "_int": int,
            "_float": float,
            "_str": str,
            "_bytes": (bytes, bytearray),
            "_dict": dict,
            "_list": list,
            "_type": type,
            "TE": TypeError,
            "K2B": _TWO_BYTE_LONGS,
        }
        self.n = 0

    def var(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value: Any) -> str:
        name = self.var("K")
        self.env[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def length(self, expr: str, depth: int) -> None:
        # lengths below 64 are one byte: (n << 1) without the varint loop
        n = self.var("n")
        self.emit(depth, f"{n} = len({expr})")
        self.emit(depth, f"if {n} < 64: o.append({n} << 1)")
        self.emit(depth, f"else: wl(o, {n})")

    def value(self, schema: Any, x: str, d: int, strict: bool, cache: bool = True) -> None:
        """Code writing variable `x` as `schema`; `strict` inside unions (see module doc)."""
        if isinstance(schema, list):
            self.union(schema, x, d, cache)
            return
        if isinstance(schema, str):
            schema = {"type": schema}
        t = schema["type"]
        if isinstance(t, (dict, list)):
            self.value(t, x, d, strict, cache)
            return
        if t == "null":
            self.emit(d, f"if {x} is not None: raise TE('null expected')")
        elif t == "boolean":
            self.emit(d, f"if {x} is True: o.append(1)")
            self.emit(d, f"elif {x} is False: o.append(0)")
            self.emit(d, "else: raise TE('boolean expected')")
        elif t in ("int", "long"):
            if strict:  # fastavro's union check: exact ints (no bool), in range
                self.emit(d, f"if _type({x}) is not _int: raise TE('int expected')")
            # (outside unions: True writes 1 like fastavro; floats fail at `<<`)
            self.emit(d, f"if 0 <= {x} < 64: o.append({x} << 1)")
            # two bytes up to 8191 (coordinates, sizes, durations), inline as well
            self.emit(d, f"elif 0 <= {x} < 8192: o += K2B[{x}]")
            self.emit(d, f"else: {'wi' if t == 'int' else 'wl'}(o, {x})")
        elif t in ("float", "double"):
            if strict:
                self.emit(d, f"if _type({x}) is not _float and _type({x}) is not _int:")
                self.emit(d + 1, "raise TE('number expected')")
            self.emit(d, f"o += {'pf' if t == 'float' else 'pd'}({x})")
        elif t == "string":
            b = self.var("b")
            if cache:
                self.emit(d, f"{b} = sc({x})")
                self.emit(d, f"if {b} is None: {b} = cs({x})")  # non-str: no .encode()
            else:
                self.emit(d, f"{b} = {x}.encode()")
                self.length(b, d)
            self.emit(d, f"o += {b}")
        elif t == "bytes":
            self.emit(d, f"if not isinstance({x}, _bytes): raise TE('bytes expected')")
            self.length(x, d)
            self.emit(d, f"o += {x}")
        elif t == "fixed":
            self.emit(d, f"if not isinstance({x}, _bytes) or len({x}) != {schema['size']}:")
            self.emit(d + 1, "raise TE('fixed size')")
            self.emit(d, f"o += {x}")
        elif t == "enum":
            table = {s: avro_long(i) for i, s in enumerate(schema["symbols"])}
            self.emit(d, f"o += {self.const(table)}[{x}]")  # KeyError for unknown symbols
        elif t == "array":
            item = self.var("i")
            self.emit(d, f"if _type({x}) is not _list: raise TE('list expected')")
            self.emit(d, f"if {x}:")
            self.emit(d + 1, f"wl(o, len({x}))")
            self.emit(d + 1, f"for {item} in {x}:")
            self.value(schema["items"], item, d + 2, strict)
            self.emit(d, "o.append(0)")
        elif t == "map":
            k, v, kb = self.var("k"), self.var("v"), self.var("b")
            self.emit(d, f"if _type({x}) is not _dict: raise TE('dict expected')")
            self.emit(d, f"if {x}:")
            self.emit(d + 1, f"wl(o, len({x}))")
            self.emit(d + 1, f"for {k}, {v} in {x}.items():")
            self.emit(d + 2, f"{kb} = sc({k})")
            self.emit(d + 2, f"if {kb} is None: {kb} = cs({k})")
            self.emit(d + 2, f"o += {kb}")
            self.value(schema["values"], v, d + 2, strict)
            self.emit(d, "o.append(0)")
        elif t in ("record", "error"):
            self.record(schema["fields"], x, d, strict)
        else:
            raise Unsupported(f"type {t!r}")

    def union(self, branches: list[Any], x: str, d: int, cache: bool) -> None:
        kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) != 2 or "null" not in kinds:
            raise Unsupported(f"union {kinds}")
        null_at = kinds.index("null")
        self.emit(d, f"if {x} is None: o.append({2 * null_at})")
        self.emit(d, "else:")
        self.emit(d + 1, f"o.append({2 * (1 - null_at)})")
        self.value(branches[1 - null_at], x, d + 1, True, cache)

    def record(self, fields: list[dict[str, Any]], x: str, d: int, strict: bool) -> None:
        # Every field is read first. A record holding exactly the schema's fields (the usual
        # case) is read by subscript: its size plus every subscript succeeding proves it has
        # no unknown key (a plain dict: a subclass's __missing__ could invent values).
        # Otherwise unknown keys raise (fastavro names them in its error) and missing fields
        # take their defaults. A non-mapping fails at [] / .get().
        if strict:  # fastavro's union check wants a dict
            self.emit(d, f"if _type({x}) is not _dict: raise TE('record expected')")
        vs = [self.var("f") for _ in fields]
        direct = [f"{v} = {x}[{f['name']!r}]" for v, f in zip(vs, fields, strict=True)]
        if not any("default" in f for f in fields):
            self.emit(d, f"if _type({x}) is not _dict or len({x}) != {len(fields)}:")
            self.emit(d + 1, "raise TE('unknown or missing field')")
            for line in direct:
                self.emit(d, line)  # KeyError when one is missing
        else:
            names = self.const(frozenset(f["name"] for f in fields))
            self.emit(d, f"if _type({x}) is _dict and len({x}) == {len(fields)}:")
            for line in direct:
                self.emit(d + 1, line)
            self.emit(d, "else:")
            self.emit(d + 1, f"if not {names}.issuperset({x}): raise TE('unknown field')")
            for v, f, line in zip(vs, fields, direct, strict=True):
                if "default" not in f:
                    self.emit(d + 1, line)  # KeyError when missing
                    continue
                default = field_default(f)
                if default is None or type(default) in (bool, int, str):
                    self.emit(d + 1, f"{v} = {x}.get({f['name']!r}, {default!r})")
                else:
                    self.emit(d + 1, f"{v} = {x}.get({f['name']!r}, {self.const(default)})")
        for v, f in zip(vs, fields, strict=True):
            self.value(f["type"], v, d, strict, cache=not _unique_valued(f["name"]))


def field_default(field: dict[str, Any]) -> Any:
    """The Python value of a field default (JSON defaults of bytes are code-point strings)."""
    schema, default = field["type"], field["default"]
    first = schema[0] if isinstance(schema, list) else schema
    kind = first.get("type") if isinstance(first, dict) else first
    if kind in ("bytes", "fixed") and isinstance(default, str):
        return default.encode("latin-1")
    return default


def compile_encoder(expanded: dict[str, Any], *, skip_fields: int = 0) -> Encoder:
    """`encode(record, out)` appending the Avro body of `record` to the bytearray `out`.

    `expanded` must be self-contained with every named type inlined where used (what
    `schemas.registry.expand` gives); a by-name reference raises `Unsupported`.
    `skip_fields=n` leaves out the first n fields (the caller writes them): the record
    passed in then holds only the remaining ones.
    """
    gen = _Gen()
    gen.record(expanded["fields"][skip_fields:], "r", 1, strict=False)
    name = "encode_" + expanded["name"].rsplit(".", 1)[-1]
    src = f"def {name}(r, o):\n" + "\n".join(gen.lines) + "\n"
    exec(compile(src, f"<avro encoder {expanded['name']}>", "exec"), gen.env)
    fn: Encoder = gen.env[name]
    fn.__doc__ = src
    return fn
