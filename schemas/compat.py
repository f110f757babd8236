"""BACKWARD compatibility of Avro schemas, by the specification's schema-resolution rules.

BACKWARD means: a consumer holding the NEW schema (the reader) can read data written with the
OLD schema (the writer). This module is pure: it takes schema JSON (dicts, lists, strings; named
types may be defined once and referred to by name later) and returns what would break, with the
field path where it breaks, so a CI check can print something a person can act on.

Rules implemented (Avro 1.11 spec, "Schema Resolution"):
- primitives match themselves; promotions int->long/float/double, long->float/double,
  float->double, string<->bytes;
- records, enums and fixed match by unqualified name, or by one of the reader's aliases;
- record fields match by name or by a reader field's aliases; writer-only fields are skipped;
  a reader-only field needs a default;
- an enum symbol the writer may send and the reader lacks needs the reader's enum default;
- fixed sizes must be equal; arrays and maps resolve their items/values;
- a writer union: every branch must resolve against the reader; a reader union: the writer's
  schema must resolve against one of its branches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
NAMED = frozenset({"record", "error", "enum", "fixed"})

#: writer type -> reader types that can read it (besides itself)
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True)
class Incompatibility:
    """One reason the reader cannot read the writer's data; `path` locates it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaError(ValueError):
    """The schema JSON itself is malformed (unknown named type, bad shape)."""


# -- normalisation ---------------------------------------------------------------------------


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Names:
    """Named types of one schema, by full name, so references resolve."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
            return
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if kind in NAMED:
            full = _fullname(schema["name"], schema.get("namespace", namespace))
            self.types.setdefault(full, schema)
            namespace = full.rsplit(".", 1)[0] if "." in full else None
            if kind in ("record", "error"):
                for f in schema.get("fields", []):
                    self._collect(f["type"], namespace)
        elif kind == "array":
            self._collect(schema["items"], namespace)
        elif kind == "map":
            self._collect(schema["values"], namespace)
        elif isinstance(kind, (dict, list)):
            self._collect(kind, namespace)

    def resolve(self, schema: Any, namespace: str | None) -> tuple[Any, str | None]:
        """Follow references and `{"type": <complex>}` wrappers; return (schema, namespace)."""
        for _ in range(64):
            if isinstance(schema, str):
                if schema in PRIMITIVES:
                    return schema, namespace
                for candidate in (_fullname(schema, namespace), schema):
                    if candidate in self.types:
                        found = self.types[candidate]
                        full = _fullname(found["name"], found.get("namespace", namespace))
                        return found, (full.rsplit(".", 1)[0] if "." in full else None)
                raise SchemaError(f"unknown named type {schema!r}")
            if isinstance(schema, dict):
                kind = schema.get("type")
                if isinstance(kind, (dict, list)) or (
                    isinstance(kind, str) and kind not in PRIMITIVES
                    and kind not in NAMED and kind not in ("array", "map")
                ):
                    schema = kind  # {"type": "SomeNamedType"} or {"type": {...}}
                    continue
                if kind in PRIMITIVES:
                    return kind, namespace  # logical types resolve as their base type
                if kind in NAMED:
                    full = _fullname(schema["name"], schema.get("namespace", namespace))
                    return schema, (full.rsplit(".", 1)[0] if "." in full else None)
                return schema, namespace
            if isinstance(schema, list):
                return schema, namespace
            raise SchemaError(f"not a schema: {schema!r}")
        raise SchemaError("reference chain too long")


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema["type"]
    return "record" if kind == "error" else kind


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema['name']}"
    if kind == "union":
        return "union"
    return kind


# -- the check -------------------------------------------------------------------------------


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.rnames = _Names(reader)
        self.wnames = _Names(writer)
        self.in_progress: set[tuple[int, int]] = set()

    def check(
        self, reader: Any, rns: str | None, writer: Any, wns: str | None, path: str
    ) -> Iterator[Incompatibility]:
        reader, rns = self.rnames.resolve(reader, rns)
        writer, wns = self.wnames.resolve(writer, wns)
        rkind, wkind = _kind(reader), _kind(writer)

        if wkind == "union":
            for branch in writer:
                bschema, _ = self.wnames.resolve(branch, wns)
                yield from self.check(reader, rns, branch, wns, f"{path}<{_describe(bschema)}>")
            return
        if rkind == "union":
            branch = self._union_branch(reader, rns, writer)
            if branch is not None:
                yield from self.check(branch, rns, writer, wns, path)
                return
            yield Incompatibility(
                path,
                f"writer's {_describe(writer)} matches no branch of the reader's union "
                f"[{', '.join(_describe(self.rnames.resolve(b, rns)[0]) for b in reader)}]",
            )
            return

        if wkind in PRIMITIVES:
            if rkind == wkind or rkind in PROMOTIONS.get(wkind, ()):
                return
            yield Incompatibility(path, f"type changed from {wkind} to {_describe(reader)}")
            return
        if rkind != wkind:
            yield Incompatibility(
                path, f"type changed from {_describe(writer)} to {_describe(reader)}"
            )
            return

        if wkind in ("record", "enum", "fixed"):
            names = {_short(reader["name"])} | {_short(a) for a in reader.get("aliases", [])}
            if _short(writer["name"]) not in names:
                yield Incompatibility(
                    path,
                    f"{wkind} name changed from {writer['name']} to {reader['name']} "
                    "(add the old name to the reader's aliases)",
                )
                return
        if wkind == "record":
            key = (id(reader), id(writer))
            if key in self.in_progress:  # recursive type already being compared
                return
            self.in_progress.add(key)
            try:
                yield from self._record(reader, rns, writer, wns, path)
            finally:
                self.in_progress.discard(key)
        elif wkind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                yield Incompatibility(
                    path,
                    f"enum {reader['name']} lacks symbol(s) {missing} the writer may send, "
                    "and has no default",
                )
        elif wkind == "fixed":
            if reader["size"] != writer["size"]:
                yield Incompatibility(
                    path, f"fixed size changed from {writer['size']} to {reader['size']}"
                )
        elif wkind == "array":
            yield from self.check(reader["items"], rns, writer["items"], wns, f"{path}[]")
        elif wkind == "map":
            yield from self.check(reader["values"], rns, writer["values"], wns, f"{path}{{}}")
        else:
            raise SchemaError(f"unsupported schema type {wkind!r} at {path}")

    def _union_branch(self, union: list, rns: str | None, writer: Any) -> Any | None:
        """The reader branch the spec picks for `writer`: same type first, then a promotion."""
        wkind = _kind(writer)
        resolved = [(b, self.rnames.resolve(b, rns)[0]) for b in union]
        for branch, schema in resolved:
            rkind = _kind(schema)
            if rkind != wkind:
                continue
            if rkind in ("record", "enum", "fixed"):
                names = {_short(schema["name"])} | {_short(a) for a in schema.get("aliases", [])}
                if _short(writer["name"]) not in names:
                    continue
            return branch
        for branch, schema in resolved:
            if _kind(schema) in PROMOTIONS.get(wkind, ()):
                return branch
        return None

    def _record(
        self, reader: dict, rns: str | None, writer: dict, wns: str | None, path: str
    ) -> Iterator[Incompatibility]:
        wfields = {f["name"]: f for f in writer.get("fields", [])}
        for rf in reader.get("fields", []):
            fpath = f"{path}.{rf['name']}" if path else rf["name"]
            wf = wfields.get(rf["name"])
            if wf is None:
                wf = next((wfields[a] for a in rf.get("aliases", []) if a in wfields), None)
            if wf is None:
                if "default" not in rf:
                    yield Incompatibility(
                        fpath, "field added without a default (old records do not have it)"
                    )
                continue
            yield from self.check(rf["type"], rns, wf["type"], wns, fpath)


def check_backward(reader: Any, writer: Any) -> list[Incompatibility]:
    """What stops `reader` (new schema) from reading data written with `writer` (old one).

    An empty list means BACKWARD compatible.
    """
    checker = _Checker(reader, writer)
    root, _ = checker.rnames.resolve(reader, None)
    top = root["name"] if isinstance(root, dict) and "name" in root else ""
    return list(checker.check(reader, None, writer, None, _short(top)))


def is_backward_compatible(reader: Any, writer: Any) -> bool:
    return not check_backward(reader, writer)
