"""The alert engine's state: typed records over one flat mapping of JSON values (pure).

The mapping is a dict in tests and a changelog-backed faust table in the worker: every value
is plain JSON, and a record is read whole (`from_json`: a fresh copy, to change at will) and
written back whole (`to_json`); a stored value is never mutated in place (nor the lists and
dicts in it: a change builds new ones), so every change reaches the changelog and a
restarted worker goes on where the last one stopped. The JSON shapes are the ones the engine
always wrote, so state written by an older worker loads as it is.

Keys: ``inc|<fp>`` an incident, ``thr|<fp>``/``ano|<fp>`` a window rule's counters,
``stk|<fp>`` a streak (a bare count), ``cb|<fp>`` a circuit breaker, ``seen|<agent>`` an
agent's last activity per source, ``clock`` the event clock, ``off|<topic>|<partition>`` what
was read from an input partition, ``idx|firing``/``idx|agents``/``idx|open``/``idx|sources``/
``idx|behind`` small indexes (lists). Engines sharing one mapping (one per alert partition)
each see their own keys through `Prefixed` (``<partition>#<key>``).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar

#: The flat store: key -> JSON value.
Store = MutableMapping[str, Any]


class Record(Protocol):
    #: What its keys start with ("<prefix>|<ident>").
    PREFIX: ClassVar[str]

    @classmethod
    def from_json(cls, obj: Any) -> Self: ...

    def to_json(self) -> Any: ...


R = TypeVar("R", bound=Record)


@dataclass(slots=True)
class Incident:
    """One (rule, label set) that is pending or firing."""

    PREFIX: ClassVar[str] = "inc"
    incident_id: str
    rule: str
    kind: str
    severity: str
    labels: dict[str, str]
    status: str  # pending | firing
    active_at: int
    fired_at: int | None = None
    notified: bool = False
    pending_sent: bool = False
    last_notified: int | None = None
    renotified: int = 0
    value: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    #: breaker moves inside the incident (OPEN<->HALF_OPEN) so far
    transitions: int = 0

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(**obj)

    def to_json(self) -> dict[str, Any]:
        out = {
            "incident_id": self.incident_id, "rule": self.rule, "kind": self.kind,
            "severity": self.severity, "labels": self.labels, "status": self.status,
            "active_at": self.active_at, "fired_at": self.fired_at,
            "notified": self.notified, "pending_sent": self.pending_sent,
            "last_notified": self.last_notified, "renotified": self.renotified,
            "value": self.value, "annotations": self.annotations,
        }
        if self.transitions:
            out["transitions"] = self.transitions
        return out


@dataclass(slots=True)
class WindowRun:
    """A threshold rule over one scope: breaching windows in a row, up to the window `end`."""

    PREFIX: ClassVar[str] = "thr"
    n: int = 0
    end: int = -1

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(obj["n"], obj["end"])

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "end": self.end}


@dataclass(slots=True)
class Ewma:
    """An anomaly rule over one scope: the exponentially weighted mean and variance of the
    metric over `n` windows up to `end`, and anomalous windows in a row (`b`)."""

    PREFIX: ClassVar[str] = "ano"
    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    end: int = -1
    b: int = 0

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(obj["n"], obj["mean"], obj["var"], obj["end"], obj["b"])

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "var": self.var, "end": self.end, "b": self.b}


@dataclass(slots=True)
class Streak:
    """Failed outcomes in a row of one label set (stored as the bare count)."""

    PREFIX: ClassVar[str] = "stk"
    n: int

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(obj)

    def to_json(self) -> int:
        return self.n


@dataclass(slots=True)
class Breaker:
    """A circuit breaker: CLOSED (counting `calls`, 1 = failed), OPEN since `opened_at`
    (event time; `opened_wall` arrival time), or HALF_OPEN with `ho_ok` successes."""

    PREFIX: ClassVar[str] = "cb"
    rule: str
    state: str = "CLOSED"
    calls: list[int] = field(default_factory=list)
    consec: int = 0
    opened_at: int = 0
    opened_wall: int = 0
    ho_ok: int = 0

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(obj["rule"], obj["state"], obj["calls"], obj["consec"], obj["opened_at"],
                   obj["opened_wall"], obj["ho_ok"])

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "state": self.state, "calls": self.calls,
                "consec": self.consec, "opened_at": self.opened_at,
                "opened_wall": self.opened_wall, "ho_ok": self.ho_ok}


@dataclass(slots=True)
class Activity:
    """When an agent was last heard from, per source (heartbeat, outcome, aggregate): the
    (event time, arrival time) of its latest input."""

    PREFIX: ClassVar[str] = "seen"
    last: dict[str, Sequence[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(obj)

    def to_json(self) -> dict[str, Any]:
        return self.last


@dataclass(slots=True)
class ReadMark:
    """What was read from one input partition: the last offset, the highest event time
    (None: not known, state of an older worker), and whether it had more behind it."""

    PREFIX: ClassVar[str] = "off"
    offset: int
    high: int | None = None
    behind: bool = False

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        if isinstance(obj, int):  # (state written before the clock was kept per source)
            return cls(obj)
        return cls(obj[0], obj[1], bool(obj[2]))

    def to_json(self) -> list[Any]:
        return [self.offset, self.high, int(self.behind)]


@dataclass(slots=True)
class ClockMark:
    """The event clock (`ev`) and where the absence rules were last swept (`swept`)."""

    ev: int = 0
    swept: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"ev": self.ev, "swept": self.swept}


class AlertStore:
    """Typed access to the flat store: records by (type, ident), indexes, the clock."""

    CLOCK = "clock"

    def __init__(self, data: Store) -> None:
        self.data = data

    def get(self, kind: type[R], ident: str) -> R | None:
        raw = self.data.get(f"{kind.PREFIX}|{ident}")
        return None if raw is None else kind.from_json(raw)

    def put(self, ident: str, record: Record) -> None:
        self.data[f"{record.PREFIX}|{ident}"] = record.to_json()

    def delete(self, kind: type[Record], ident: str) -> None:
        self.data.pop(f"{kind.PREFIX}|{ident}", None)

    def has(self, kind: type[Record], ident: str) -> bool:
        return f"{kind.PREFIX}|{ident}" in self.data

    # -- the event clock ------------------------------------------------------------------------
    def clock(self) -> ClockMark:
        raw = self.data.get(self.CLOCK)
        return ClockMark() if raw is None else ClockMark(raw["ev"], raw.get("swept", 0))

    def put_clock(self, clock: ClockMark) -> None:
        self.data[self.CLOCK] = clock.to_json()

    # -- indexes: small lists of idents ---------------------------------------------------------
    def index(self, name: str) -> list[str]:
        found: list[str] = self.data.get(f"idx|{name}") or []
        return found

    def index_add(self, name: str, item: str) -> None:
        cur = self.index(name)
        if item not in cur:
            self.data[f"idx|{name}"] = [*cur, item]

    def index_remove(self, name: str, item: str) -> None:
        cur = self.index(name)
        if item in cur:
            self.data[f"idx|{name}"] = [x for x in cur if x != item]


class Prefixed(MutableMapping[str, Any]):
    """One engine's part of a mapping several engines share (one per alert partition, in
    one changelog-backed table): its keys are stored as ``<prefix>#<key>``."""

    def __init__(self, data: Store, prefix: str) -> None:
        self.base = data
        self.prefix = f"{prefix}#"

    def __getitem__(self, key: str) -> Any:
        return self.base[self.prefix + key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.base.get(self.prefix + key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.base[self.prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self.base[self.prefix + key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self.prefix + key) in self.base

    def __iter__(self) -> Iterator[str]:
        n = len(self.prefix)
        return (k[n:] for k in list(self.base) if k.startswith(self.prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)
