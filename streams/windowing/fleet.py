"""Fleet-wide windows: merging per-partition partial windows (pure).

Each input partition closes its own fleet-scope ('*') windows on its own watermark and sends
the partial state here, together with its watermark. A fleet window closes when the fleet
watermark — the minimum over the partitions' watermarks (the held-back clock of
`streams.windowing.clock`) — reaches its end; it is then the merge of the partials received,
so every partition's share is in it. A quiet partition does not stall the fleet while others
are busy: its owner moves its watermark on with theirs once it is idle (see
`streams.event_time`), closing its own windows and sending their partials first; a
partition that never applied an event holds nothing and is not waited for. A partition whose
owner still says it is alive (keepalives, sent for owned partitions with
nothing new) but that does not move (it cannot be read, or has a backlog) holds the fleet, as
it holds its own windows. A partition that went silent with its owner (killed, frozen,
mid-failover) holds the fleet back for up to `failover_s`, so its events, read again by the
next owner, are not late for fleet windows closed without them. Partials that arrive for an
already closed fleet window are counted as late. Partials are stored per source partition,
so a partial re-sent after a crash replaces the earlier copy instead of being counted twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from streams.windowing.clock import NEVER, held_back
from streams.windowing.operator import parse_window_key
from streams.windowing.state import FLEET, WindowState, to_record

#: How long a partition whose owner went silent holds fleet windows back at most.
FAILOVER_S = 60.0


@dataclass
class PartitionReport:
    watermark: int
    alive_at: float  # wall clock (s) of its owner's last report of any kind (keepalives too)
    #: False once its owner said it never applied an event: nothing of it to wait for
    has_data: bool = True


def encode_report(partition: int, watermark: int, partials: dict[str, WindowState], *,
                  has_data: bool = True) -> bytes:
    """A partition's watermark and the fleet partials it closed; `has_data` False: it has
    never applied an event (so it holds no window's share)."""
    obj: dict[str, object] = {
        "p": partition,
        "wm": watermark,
        "partials": {k: base64.b64encode(v.to_bytes()).decode() for k, v in partials.items()},
    }
    if not has_data:
        obj["empty"] = 1
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_keepalive(partition: int) -> bytes:
    """The owner of `partition` is alive (its state is not loaded yet: nothing else known)."""
    return json.dumps({"p": partition, "alive": 1}, separators=(",", ":")).encode()


def decode_report(data: bytes) -> tuple[int, int | None, dict[str, bytes], bool]:
    """(partition, watermark, partials, has_data); watermark None for a keepalive."""
    obj = json.loads(data)
    if obj.get("alive"):
        return obj["p"], None, {}, True
    return (obj["p"], obj["wm"], {k: base64.b64decode(v) for k, v in obj["partials"].items()},
            not obj.get("empty"))


class FleetMerger:
    def __init__(self, *, started_at: float, partitions: int = 0,
                 producer: str = "clawstream-windows", failover_s: float = FAILOVER_S) -> None:
        """`partitions`: how many input partitions there are; one that has not reported yet
        holds the fleet like a silent owner (up to `failover_s` after `started_at`)."""
        self.failover_s = failover_s
        self.producer = producer
        self.partitions: dict[int, PartitionReport] = {
            p: PartitionReport(NEVER, started_at) for p in range(partitions)}
        self.partials: dict[str, dict[int, bytes]] = {}
        self.watermark = NEVER
        self.late_partials = 0
        self._dirty: set[str] = set()

    def report(self, partition: int, watermark: int | None, partials: dict[str, bytes],
               has_data: bool = True, *, now: float) -> None:
        """A partition's report; `watermark` None: a keepalive (owner alive, nothing new)."""
        rep = self.partitions.get(partition)
        if watermark is None:
            if rep is not None:
                rep.alive_at = now
            return
        if rep is None:
            rep = self.partitions[partition] = PartitionReport(watermark, now)
        rep.watermark = max(rep.watermark, watermark)
        rep.alive_at = now
        rep.has_data = has_data
        self._dirty.add(f"p|{partition}")
        for key, data in partials.items():
            spec, start, _ = parse_window_key(key)
            if start + spec.size_ms <= self.watermark:
                self.late_partials += 1
                continue
            self.partials.setdefault(key, {})[partition] = data
            self._dirty.add(f"w|{key}")

    def fleet_watermark(self, now: float) -> int:
        """The held-back clock over the partitions (`streams.windowing.clock`): one holds
        while its owner is alive and it has data (a silent owner: not for ever); when none
        holds, what they said last is all there is."""
        return max(self.watermark, held_back(
            (r.watermark, r.has_data and now - r.alive_at < self.failover_s)
            for r in self.partitions.values()))

    def advance(self, now: float) -> list[dict[str, Any]]:
        """Close fleet windows the fleet watermark has passed; WindowAggregate records."""
        wm = self.watermark = self.fleet_watermark(now)
        out = []
        for key in sorted(self.partials):
            spec, start, _ = parse_window_key(key)
            if start + spec.size_ms > wm:
                continue
            parts = self.partials.pop(key)
            self._dirty.add(f"w|{key}")
            merged = WindowState()
            for data in parts.values():
                merged.merge(WindowState.from_bytes(data))
            out.append(to_record(merged, size_ms=spec.size_ms, step_ms=spec.step_ms, start=start,
                                 scope=FLEET, watermark=wm, key=key, producer=self.producer))
        return out

    # -- state ----------------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for key in self._dirty:
            kind, _, ident = key.partition("|")
            if kind == "p":
                rep = self.partitions.get(int(ident))
                out[key] = json.dumps(rep.watermark).encode() if rep else None
            else:
                parts = self.partials.get(ident)
                out[key] = json.dumps(
                    {str(p): base64.b64encode(d).decode() for p, d in parts.items()}
                ).encode() if parts else None
        out["fleet_wm"] = json.dumps(self.watermark).encode()
        self._dirty.clear()
        return out

    def load(self, key: str, data: bytes, now: float) -> None:
        if key == "fleet_wm":
            self.watermark = max(self.watermark, json.loads(data))
            return
        kind, _, ident = key.partition("|")
        if kind == "p":
            self.partitions[int(ident)] = PartitionReport(json.loads(data), now)
        else:
            self.partials[ident] = {int(p): base64.b64decode(d)
                                    for p, d in json.loads(data).items()}
