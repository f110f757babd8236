"""An agent's replicated state: a fixed-key product of named CRDTs (itself a CRDT: join is
per key). Both the replica side (producers/state.py) and the merger (streams/state_merge.py)
use it, so "merging everything in one process" and the streamed merge run the same code.

Known keys and their types (AgentState renders them); any other key is merged generically:

=============  ==========================  ================================================
key            CRDT                        meaning
=============  ==========================  ================================================
actions_total  gcounter                    actions the agent executed, all replicas
error_budget   pncounter                   errors spent (-) and refilled (+)
current_task   lww                         what the agent works on
status         lww                         idle / running / degraded ...
ui_memory      map<orset>                  per app: learned UI element labels (add-wins)
settings       map<mvreg>                  name -> value, last writer wins per name
=============  ==========================  ================================================
"""

from __future__ import annotations

from typing import Any

from schemas.crdt.causal import AWORSet, MVRegister, ORMap
from schemas.crdt.codec import CodecError, decode, decode_bundle, encode, fast_encode_bundle
from schemas.crdt.counters import GCounter, PNCounter
from schemas.crdt.lww import LWWRegister

UIMemory = ORMap.of(AWORSet)
SettingsMap = ORMap.of(MVRegister)

#: key -> factory of the bottom state
SCHEMA: dict[str, Any] = {
    "actions_total": GCounter,
    "error_budget": PNCounter,
    "current_task": LWWRegister,
    "status": LWWRegister,
    "ui_memory": UIMemory,
    "settings": SettingsMap,
}


class CRDTTypeMismatch(CodecError):
    """A delta whose type disagrees with the type already held under its key."""


class AgentCRDT:
    """Named CRDTs of one agent. `apply(crdt_type, key, payload)` merges a StateDelta."""

    __slots__ = ("_payloads", "entries")

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self.entries: dict[str, Any] = entries if entries is not None else {}
        # key -> (crdt_type, encoded payload) of entries unchanged since they were encoded
        self._payloads: dict[str, tuple[str, bytes]] = {}

    def get(self, key: str) -> Any:
        """The CRDT under `key`, created (bottom) for a known key if absent. The caller may
        mutate it, so its cached encoding is dropped."""
        self._payloads.pop(key, None)
        crdt = self.entries.get(key)
        if crdt is None:
            crdt = SCHEMA[key]()
            self.entries[key] = crdt
        return crdt

    def merge_crdt(self, key: str, other: Any) -> bool:
        """Join a CRDT (delta or full state) under `key`; True if the state changed."""
        mine = self.entries.get(key)
        if mine is None:
            expected = SCHEMA.get(key)
            if expected is not None and type(other) is not expected:
                raise CRDTTypeMismatch(f"{key} holds {expected.__name__}, got "
                                       f"{type(other).__name__}")
            if other.is_bottom():
                return False
            self.entries[key] = other.copy()
            return True
        if type(mine) is not type(other):
            raise CRDTTypeMismatch(f"{key} holds {type(mine).__name__}, got "
                                   f"{type(other).__name__}")
        if mine.merge(other):
            self._payloads.pop(key, None)
            return True
        return False

    def apply(self, crdt_type: str, key: str, payload: bytes) -> bool:
        """Decode and merge one StateDelta payload; CodecError if it is not valid."""
        return self.merge_crdt(key, decode(crdt_type, payload))

    def merge(self, other: AgentCRDT) -> bool:
        changed = False
        for k, v in other.entries.items():
            changed |= self.merge_crdt(k, v)
        return changed

    def join(self, other: AgentCRDT) -> AgentCRDT:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> AgentCRDT:
        return AgentCRDT({k: v.copy() for k, v in self.entries.items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentCRDT):
            return False
        a = {k: v for k, v in self.entries.items() if not v.is_bottom()}
        b = {k: v for k, v in other.entries.items() if not v.is_bottom()}
        return a == b

    # mutable: with __eq__ defined here, Python leaves __hash__ None (unhashable)

    def encode(self) -> bytes:
        """The StateBundle bytes; unchanged entries reuse their cached encoding."""
        cache = self._payloads
        for k, v in self.entries.items():
            if k not in cache and not v.is_bottom():
                cache[k] = (v.CRDT_TYPE, encode(v))
        return fast_encode_bundle(cache)

    @classmethod
    def decode(cls, data: bytes) -> AgentCRDT:
        return cls(decode_bundle(data)) if data else cls()

    def replicas(self) -> list[str]:
        """Every replica that contributed (counter entries, register writers, dots)."""
        seen: set[str] = set()
        for v in self.entries.values():
            if isinstance(v, GCounter):
                seen.update(v.counts)
            elif isinstance(v, PNCounter):
                seen.update(v.p.counts)
                seen.update(v.n.counts)
            elif isinstance(v, LWWRegister):
                if v.replica:
                    seen.add(v.replica)
            else:
                seen.update(v.ctx.vv)
                seen.update(r for r, _ in v.ctx.cloud)
        return sorted(seen)

    def view(self) -> dict[str, Any]:
        """The AgentState fields (besides envelope/version): plain values users read."""
        e = self.entries

        def val(key: str, default: Any) -> Any:
            crdt = e.get(key)
            return default if crdt is None else crdt.value

        ui = val("ui_memory", {})
        return {
            "replicas": self.replicas(),
            "actions_total": val("actions_total", 0),
            "error_budget": val("error_budget", 0),
            "current_task": val("current_task", None),
            "status": val("status", None),
            "ui_memory": {app: sorted(labels) for app, labels in ui.items()},
            "settings": {k: (v if v is not None else "") for k, v in val("settings", {}).items()},
        }
