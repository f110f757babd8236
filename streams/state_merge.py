"""CRDT state merging in the stream: StateDelta events -> merged, versioned AgentState.

Flow, in one faust app (`register(app, settings)`; `python -m streams.state_merge` runs it alone):

1. `state-merge` reads `claw.state-deltas.v1` (raw bytes, keyed by agent), decodes with
   schemas.serde and joins the delta into the agent's merged state (schemas.crdt). The table
   `state-merge-agents` (changelog-backed, co-partitioned with the delta topic) stores each
   agent's latest AgentState snapshot bytes, which carry the version and the full CRDT state,
   so a worker killed with -9 recovers everything from the changelog.
2. When a delta grows the state, the version goes up by one and the table is written. Merging
   is idempotent: redelivered or duplicated deltas change nothing and bump no version;
   replaying a partition from its last committed offset reproduces the same (version, state)
   pairs, so a version never names two states. Every 0.2 s a timer produces the latest
   snapshot of each agent that changed to `claw.agent-state.v1` (compacted, key agent_id): a
   burst of deltas yields one snapshot. After recovery every stored snapshot is produced
   again, so one lost in a crash is sent (same version, same bytes).
3. Each snapshot's summary goes to a one-partition internal topic; `state-rollup` keeps the
   latest summary per agent in the table `state-merge-rollup`, and a timer emits the fleet-wide
   AgentState (agent_id '*') when it changed.

Undecodable messages, other event types ("wrong-topic") and invalid CRDT payloads are dead
letters with the reason, acknowledged before the delta's offset can be committed (see
`streams.dead_letters`).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter, Gauge

from clawstream.kafka.deadletter import dead_letter_queue
from clawstream.settings import Settings
from schemas.crdt import CodecError, CRDTTypeMismatch
from schemas.crdt.snapshot import FLEET, StateMerger, rollup_record, summary
from schemas.serde import DecodeError, Serde
from schemas.topics import AGENT_STATE, STATE_DELTAS, TOPICS
from streams.dead_letters import carried_types, dead_letter

log = logging.getLogger("clawstream.state_merge")

if __name__ == "__main__":  # `python -m streams.state_merge`: run the importable module's main,
    import importlib  # so create_app's import of streams.state_merge defines the metrics once.
    import sys

    sys.exit(importlib.import_module("streams.state_merge").main())

COMPONENT = "state-merge"
ROLLUP_SECONDS = 0.5
SNAPSHOT_SECONDS = 0.2

DELTAS = Counter("clawstream_state_merge_deltas_total",
                 "StateDelta events processed, by result (merged, duplicate, dlq).", ["result"])
SNAPSHOTS = Counter("clawstream_state_merge_snapshots_total", "AgentState snapshots emitted.")
AGENTS = Gauge("clawstream_state_merge_agents", "Agents whose state this worker holds.")


def register(app: Any, settings: Settings) -> None:
    """Declare the state-merge topics, tables, agents and timer on a faust app."""
    import faust

    serde = Serde.for_registry(settings.schema_registry_url)
    delta_types = carried_types(STATE_DELTAS)
    dlq = dead_letter_queue(settings, "worker", COMPONENT,
                            on_sent=lambda reason: DELTAS.labels("dlq").inc())
    merger = StateMerger(serde)
    deltas = app.topic(settings.topic(STATE_DELTAS), key_serializer="raw",
                       value_serializer="raw")
    snapshots = app.topic(settings.topic(AGENT_STATE), key_serializer="raw",
                          value_serializer="raw")
    rollup_in = app.topic(f"{app.conf.id}-state-rollup", partitions=1, internal=True,
                          key_serializer="raw", value_serializer="json")
    table = app.Table(
        "state-merge-agents", partitions=TOPICS[STATE_DELTAS].partitions,
        key_type=bytes, value_type=bytes,  # faust picks the "raw" codec from these types
        help="Per agent: the latest AgentState snapshot (version + merged CRDT state).",
    )
    rollup = app.Table(
        "state-merge-rollup", partitions=1,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        help="Per agent: the summary the fleet rollup is computed from.",
    )
    pending: dict[str, bytes] = {}  # agent -> snapshot not yet produced (coalesced)
    flags = {"rollup_dirty": False}

    @table.on_recover
    async def recovered() -> None:
        """After a (re)start or rebalance: re-emit every stored snapshot (one lost in a crash
        is sent again; same version, same bytes, so duplicates are harmless)."""
        n = 0
        for key, snap in table.items():
            pending[key.decode()] = snap
            n += 1
        log.info("state-merge table recovered from its changelog: %d agents", n)
    rollup_seen: set[str] = set()

    async def dead(event: Any, reason: str, detail: str) -> None:
        log.warning("state delta to DLQ (%s): %s", reason, detail[:200])
        await dead_letter(dlq, event, reason, detail)

    @app.agent(deltas, name="state-merge")
    async def merge(stream: Any) -> None:
        async for event in stream.events():
            try:
                rec = serde.decode_as(event.value, delta_types, event.message.topic).record
                agent = rec["envelope"]["agent_id"]
                key = agent.encode()
                stored = table.get(key)
                current = merger.agents.get(agent)
                if stored is None:
                    merger.agents.pop(agent, None)
                elif current is None or current.snapshot is not stored:
                    merger.restore(stored)  # after recovery or a rebalance
                result = merger.merge(rec)
            except DecodeError as exc:
                await dead(event, exc.reason, exc.detail)
                continue
            except CRDTTypeMismatch as exc:
                await dead(event, "crdt-type-mismatch", str(exc))
                continue
            except CodecError as exc:
                await dead(event, "bad-crdt-payload", str(exc))
                continue
            dlq.ok()
            m = result.merged
            DELTAS.labels("merged" if result.changed else "duplicate").inc()
            if result.changed:
                table[key] = m.snapshot
                pending[agent] = m.snapshot

    @app.timer(SNAPSHOT_SECONDS, name="state-merge-snapshots")
    async def emit_snapshots() -> None:
        """Produce the latest snapshot of each agent changed since the last tick: a burst of
        deltas for one agent yields one snapshot, not one per delta. The table (written per
        delta) is the durable state; `recovered` covers a crash before this tick."""
        if not pending:
            return
        batch = dict(pending)
        pending.clear()
        for agent, snap in batch.items():
            await snapshots.send(key=agent.encode(), value=snap)
            SNAPSHOTS.inc()
            m = merger.agents.get(agent)
            if m is not None and m.snapshot is snap and m.record is not None:
                info = m.summary()
            else:  # restored after recovery, or moved on since: read what is being sent
                info = summary(serde.decode(snap).record)
            await rollup_in.send(key=FLEET.encode(), value={"a": agent, **info})
        AGENTS.set(len(merger.agents))

    @app.agent(rollup_in, name="state-rollup")
    async def roll(stream: Any) -> None:
        async for item in stream:
            agent = item.pop("a")
            cur = rollup.get(agent)
            if cur is None or item["v"] > cur["v"]:
                rollup[agent] = item
                flags["rollup_dirty"] = True
            elif agent not in rollup_seen:
                flags["rollup_dirty"] = True  # re-emit after a restart
            rollup_seen.add(agent)

    @app.timer(ROLLUP_SECONDS, name="state-rollup-emit")
    async def emit_rollup() -> None:
        if not flags["rollup_dirty"]:
            return
        flags["rollup_dirty"] = False
        summaries = {k: v for k, v in rollup.items() if k != FLEET}
        if not summaries:
            return
        await snapshots.send(key=FLEET.encode(),
                             value=serde.encode("agent_state", rollup_record(summaries)))
        SNAPSHOTS.inc()


def standalone_app(settings: Settings) -> Any:
    """A faust app running only the state merger (tests, bench, or a dedicated worker),
    configured as the full worker (`streams.app.create_app`)."""
    from streams.app import create_app

    return create_app(settings, modules=("streams.state_merge",))


def main() -> None:
    """`python -m streams.state_merge`: one state-merge-only worker with metrics."""
    import faust

    from clawstream.logs import setup_logging
    from clawstream.metrics import serve_metrics
    from clawstream.settings import get_settings

    settings = get_settings()
    setup_logging(settings.log_level)
    serve_metrics(settings.worker_metrics_port, settings.metrics_host)
    app = standalone_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower())
    worker.execute_from_commandline()
