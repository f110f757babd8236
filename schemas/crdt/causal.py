"""Causal delta CRDTs: dot stores joined under a shared causal context.

Follows Almeida, Shoker and Baquero, "Delta State Replicated Data Types" (JPDC 2018), §5-6.
A causal CRDT is a pair (store, context). The store holds the *live* dots; the context holds
every dot ever seen. Joining (s, c) with (s', c') keeps a dot if both stores hold it, or if one
holds it and the other's context has never seen it::

    (s ∩ s') ∪ (s \\ c') ∪ (s' \\ c)

so a dot the other side has seen *and dropped* is removed, and a dot it has never seen survives.
Three dot-store shapes compose everything here (a "kind" names the shape):

* ``"set"``: a set of dots (DotSet)
* ``"fun"``: a dict dot -> immutable value (DotFun)
* ``("map", inner)``: a dict key -> non-empty store of the inner kind (DotMap)

Types built on them: `AWORSet` (add-wins observed-remove set), `MVRegister` (multi-value register
read last-writer-wins), `CCounter` (causal counter, resettable) and `ORMap` whose values are any
of these, nested maps included. In an ORMap every embedded value shares the map's single causal
context (the paper's map embedding): a mutation of a value draws its dot from the map's
context, and removing a key is a delta whose context holds the dots the remover saw under it.

Add-wins semantics (AWORSet, and ORMap keys): ``remove(e)`` removes only the *observed* dots of
``e``. An ``add(e)`` concurrent with it (made on another replica before it saw the remove)
carries a fresh dot the remover never saw, so after merging, ``e`` is present: **add wins**.
An add that happened before the remove (the remover had seen its dot) is removed. The same
holds for ORMap keys: a concurrent update of a value under a key keeps the key alive with just
the concurrent update's contribution.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Self

from schemas.crdt.context import CausalContext, Dot

Kind = Any  # "set" | "fun" | ("map", Kind)


# --- dot stores ------------------------------------------------------------------------------
def empty_store(kind: Kind) -> Any:
    return set() if kind == "set" else {}


def store_dots(kind: Kind, store: Any) -> Iterator[Dot]:
    """Every dot held by a store, recursively."""
    if kind == "set" or kind == "fun":
        yield from store
    else:
        inner = kind[1]
        for sub in store.values():
            yield from store_dots(inner, sub)


def copy_store(kind: Kind, store: Any) -> Any:
    if kind == "set" or kind == "fun":
        return store.copy()  # DotFun values are immutable
    inner = kind[1]
    return {k: copy_store(inner, v) for k, v in store.items()}


def merge_store(kind: Kind, s1: Any, c1: CausalContext, s2: Any, c2: CausalContext) -> bool:
    """Join (s2, c2) into s1 in place, given s1's context c1 (not yet joined). True if changed.

    s2 is never mutated or aliased, so a delta can be merged into many states.
    """
    if kind == "set" or kind == "fun":
        drop = [d for d in s1 if d not in s2 and d in c2]
        for d in drop:
            if kind == "set":
                s1.discard(d)
            else:
                del s1[d]
        if kind == "set":
            add = [d for d in s2 if d not in s1 and d not in c1]
            s1.update(add)
        else:
            add = [d for d in s2 if d not in s1 and d not in c1]
            for d in add:
                s1[d] = s2[d]
        return bool(drop or add)
    inner = kind[1]
    changed = False
    for k, sub2 in s2.items():
        sub1 = s1.get(k)
        if sub1 is None:
            sub1 = empty_store(inner)
            if merge_store(inner, sub1, c1, sub2, c2):
                s1[k] = sub1
                changed = True
        else:
            changed |= merge_store(inner, sub1, c1, sub2, c2)
            if not sub1:
                del s1[k]
    if c2.vv or c2.cloud:
        empty = empty_store(inner)
        for k in [k for k in s1 if k not in s2]:
            sub1 = s1[k]
            if merge_store(inner, sub1, c1, empty, c2):
                changed = True
                if not sub1:
                    del s1[k]
    return changed


# --- base ------------------------------------------------------------------------------------
class Causal:
    """(store, context) with join, copy, equality; subclasses fix the store KIND."""

    KIND: ClassVar[Kind] = "set"
    CRDT_TYPE: ClassVar[str] = ""
    TYPE_NAME: ClassVar[str] = ""  # full name incl. value types, e.g. "map<orset>"
    __slots__ = ("ctx", "store")

    def __init__(self, store: Any = None, ctx: CausalContext | None = None) -> None:
        self.store = empty_store(self.KIND) if store is None else store
        self.ctx = CausalContext() if ctx is None else ctx

    def merge(self, other: Causal) -> bool:
        """Join `other` into self in place; True if self changed."""
        changed = merge_store(self.KIND, self.store, self.ctx, other.store, other.ctx)
        before = len(self.ctx)
        self.ctx.merge(other.ctx)
        return changed or len(self.ctx) != before

    def join(self, other: Causal) -> Self:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> Self:
        return type(self)(copy_store(self.KIND, self.store), self.ctx.copy())

    def is_bottom(self) -> bool:
        return not self.store and not self.ctx.vv and not self.ctx.cloud

    def dots(self) -> set[Dot]:
        return set(store_dots(self.KIND, self.store))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.store == other.store
            and self.ctx == other.ctx
        )

    # mutable: with __eq__ defined here, Python leaves __hash__ None (unhashable)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, ctx={self.ctx!r})"

    @property
    def value(self) -> Any:
        """What the CRDT reads as; each type says what that is."""
        raise NotImplementedError

    def _delta(self, store: Any, dots: Iterable[Dot]) -> Self:
        return type(self)(store, CausalContext.from_dots(dots))


# --- add-wins observed-remove set ----------------------------------------------------------
class AWORSet(Causal):
    """Add-wins observed-remove set of strings: DotMap[element, DotSet]."""

    KIND: ClassVar[Kind] = ("map", "set")
    CRDT_TYPE: ClassVar[str] = "orset"
    TYPE_NAME: ClassVar[str] = "orset"

    @property
    def value(self) -> frozenset[str]:
        return frozenset(self.store)

    def __contains__(self, element: str) -> bool:
        return element in self.store

    def add(self, replica: str, element: str) -> AWORSet:
        """Add `element` with a fresh dot; the delta also retires its older dots."""
        old = self.store.get(element, set())
        dot = self.ctx.next_dot(replica)
        self.store[element] = {dot}
        return self._delta({element: {dot}}, [*old, dot])

    def remove(self, element: str) -> AWORSet:
        """Remove the observed dots of `element` (a concurrent add survives: add wins)."""
        old = self.store.pop(element, set())
        return self._delta({}, old)

    def clear(self) -> AWORSet:
        dots = self.dots()
        self.store.clear()
        return self._delta({}, dots)


# --- multi-value register, read last-writer-wins ---------------------------------------------
class MVRegister(Causal):
    """DotFun[dot -> (ts_ms, value)]. Concurrent writes are all kept (`values`); `value` picks
    the largest (ts, replica, value) so every replica reads the same winner. A write overwrites
    every value its writer has observed. Embeddable in an ORMap (unlike the plain LWWRegister)."""

    KIND: ClassVar[Kind] = "fun"
    CRDT_TYPE: ClassVar[str] = "mvreg"
    TYPE_NAME: ClassVar[str] = "mvreg"

    @property
    def value(self) -> str | None:
        """The winner among concurrent values: largest (ts, replica, value)."""
        best: tuple[int, str, bool, str] | None = None
        winner = None
        for (r, _), (ts, v) in self.store.items():
            key = (ts, r, v is not None, v or "")
            if best is None or key > best:
                best, winner = key, v
        return winner

    @property
    def values(self) -> set[str | None]:
        return {v for _, v in self.store.values()}

    def set(self, replica: str, value: str | None, ts: int | None = None) -> MVRegister:
        old = list(self.store)
        stamp = time.time_ns() // 1_000_000 if ts is None else ts
        top = max((t for t, _ in self.store.values()), default=0)
        stamp = max(stamp, top + 1)
        dot = self.ctx.next_dot(replica)
        self.store.clear()
        self.store[dot] = (stamp, value)
        return self._delta({dot: (stamp, value)}, [*old, dot])

    def clear(self) -> MVRegister:
        old = list(self.store)
        self.store.clear()
        return self._delta({}, old)


# --- causal counter --------------------------------------------------------------------------
class CCounter(Causal):
    """Causal (resettable) counter: DotFun[dot -> partial sum]; each replica keeps one live dot
    holding its contribution. Embeddable in an ORMap, where removing the key resets it."""

    KIND: ClassVar[Kind] = "fun"
    CRDT_TYPE: ClassVar[str] = "ccounter"
    TYPE_NAME: ClassVar[str] = "ccounter"

    @property
    def value(self) -> int:
        return sum(self.store.values())

    def inc(self, replica: str, n: int = 1) -> CCounter:
        own = [d for d in self.store if d[0] == replica]
        base = sum(self.store.pop(d) for d in own)
        dot = self.ctx.next_dot(replica)
        self.store[dot] = base + n
        return self._delta({dot: base + n}, [*own, dot])

    def clear(self) -> CCounter:
        old = list(self.store)
        self.store.clear()
        return self._delta({}, old)


# --- observed-remove map of causal CRDTs -----------------------------------------------------
class ORMap(Causal):
    """DotMap[key -> value store], one shared causal context; use `ORMap.of(ValueType)`."""

    __slots__ = ()
    VALUE: ClassVar[type[Causal]] = AWORSet
    CRDT_TYPE: ClassVar[str] = "map"
    _cache: ClassVar[dict[str, type[ORMap]]] = {}

    @classmethod
    def of(cls, value_type: type[Causal]) -> type[ORMap]:
        """The map type whose values are `value_type` (itself possibly an ORMap type)."""
        name = f"map<{value_type.TYPE_NAME}>"
        found = ORMap._cache.get(name)
        if found is None:
            found = type(
                f"ORMap_{value_type.TYPE_NAME.replace('<', '_').replace('>', '')}",
                (ORMap,),
                {"VALUE": value_type, "KIND": ("map", value_type.KIND), "TYPE_NAME": name,
                 "__slots__": ()},
            )
            ORMap._cache[name] = found
        return found

    def get(self, key: str) -> Causal:
        """A read view of the value under `key` (bottom if absent). Do not mutate it."""
        return self.VALUE(self.store.get(key, empty_store(self.VALUE.KIND)), self.ctx)

    def __contains__(self, key: str) -> bool:
        return key in self.store

    def keys(self) -> list[str]:
        return sorted(self.store)

    @property
    def value(self) -> dict[str, Any]:
        return {k: self.VALUE(s, self.ctx).value for k, s in sorted(self.store.items())}

    def apply(self, key: str, mutate: Callable[[Any], Causal]) -> ORMap:
        """Run a delta mutator of the value under `key` (it draws dots from the shared
        context); returns the map delta carrying the value's delta under `key`."""
        sub = self.VALUE(self.store.get(key, empty_store(self.VALUE.KIND)), self.ctx)
        sub_delta = mutate(sub)
        if sub.store:
            self.store[key] = sub.store
        else:
            self.store.pop(key, None)
        return type(self)({key: sub_delta.store} if sub_delta.store else {}, sub_delta.ctx)

    def remove(self, key: str) -> ORMap:
        """Remove `key`'s observed contents (a concurrent update under it survives)."""
        old = self.store.pop(key, None)
        dots = list(store_dots(self.VALUE.KIND, old)) if old is not None else []
        return self._delta({}, dots)


CAUSAL_TYPES: dict[str, type[Causal]] = {
    t.TYPE_NAME: t for t in (AWORSet, MVRegister, CCounter)
}


def causal_type(type_name: str) -> type[Causal]:
    """Resolve "orset", "mvreg", "ccounter", "map<...>" (nested) to a class."""
    if type_name.startswith("map<") and type_name.endswith(">"):
        return ORMap.of(causal_type(type_name[4:-1]))
    try:
        return CAUSAL_TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown causal CRDT type {type_name!r}") from None
