"""Alerting in the stream: the faust side of `streams.alerts` (which is pure).

Flow, all in one faust app:

1. `alerting-route` reads `claw.aggregates.v1`, `claw.outcomes.v1` and `claw.heartbeats.v1`
   (raw bytes), decodes each as its topic's type (undecodable or another type: a dead letter
   with the reason, acknowledged before the event is, see `streams.dead_letters`) and
   forwards a compact JSON input to the partitions of the internal alerting topic that
   evaluate a rule for it (`streams.alerts.routing`: by rule and label group, or by rule
   for the fleet-wide absence rules, which get every input), each copy with the names of
   its rules, its source partition and offset and whether that partition had more behind
   it (its backlog holds the engine's event clock back, see `streams.alerts.clock`).
2. A leader-only timer puts a wall-clock `tick` on every partition of that topic, so ticks
   are replayed in order with the data after a crash (same decisions, same event ids).
3. `alerting-evaluate` runs one `AlertEngine` per partition (`streams.alerting_shards`),
   its state in that partition's keys of the changelog-backed table `alerting-shard-state`,
   and produces Alert events to `claw.alerts.v1`, keyed by agent, with deterministic event
   ids (uuid5 of fingerprint + incident + state). The partitions, and so the rules, spread
   over the workers of the group; a group's incidents live in one partition, so two
   workers never evaluate the same one, and its state moves with it on a rebalance.

A Prometheus gauge `clawstream_alerts_firing{rule,severity}` counts the firing incidents of
this worker's partitions (each worker's share: `streams.alerting_shards`); the rules file
(settings.rules_file) is re-read when it changes, and a bad edit keeps the last good rules.
A copy for the fleet-wide rules only carries what they read (`routing.fleet_record`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from clawstream.kafka.deadletter import dead_letter_queue
from clawstream.settings import Settings
from schemas.envelope import new_envelope
from schemas.serde import DecodeError, Serde
from schemas.topics import AGGREGATES, ALERTS, HEARTBEATS, OUTCOMES
from streams.alerting_shards import ShardEngines
from streams.alerts import AlertEngine, AlertEvent, RuleBook
from streams.alerts.routing import Router, fleet_record
from streams.alerts.rules import DEFAULT_RULES_FILE, load_rules_file, merge_rulesets
from streams.dead_letters import carried_types, dead_letter
from streams.windowing.clock import has_backlog

log = logging.getLogger("clawstream.alerting")

if __name__ == "__main__":  # `python -m streams.alerting`: run the importable module's main,
    import importlib  # so create_app's import of streams.alerting defines the metrics once.
    import sys

    sys.exit(importlib.import_module("streams.alerting").main())

COMPONENT = "alerting"
INPUT_TOPICS = (AGGREGATES, OUTCOMES, HEARTBEATS)
TICK_SECONDS = 1.0
RELOAD_CHECK_SECONDS = 1.0

ALERTS_FIRING = Gauge(
    "clawstream_alerts_firing", "Incidents currently firing.", ["rule", "severity"]
)
ALERT_EVENTS = Counter(
    "clawstream_alerts_events_total", "Alert lifecycle events emitted.", ["rule", "state"]
)
ALERT_INPUTS = Counter(
    "clawstream_alerts_inputs_total", "Events evaluated by the alert rules.", ["type"]
)
ALERT_DLQ = Counter("clawstream_alerts_dlq_total", "Undecodable inputs sent to the DLQ.",
                    ["reason"])
RULES_RELOADS = Counter(
    "clawstream_alerts_rules_reloads_total", "Rules file reloads.", ["result"]
)
RULES_LOADED = Gauge("clawstream_alerts_rules_loaded", "Alert rules in force.")


class RulesWatcher:
    """Defaults + the user's file; re-read when the file changes, last good set kept."""

    def __init__(self, user_file: Path | None, defaults: Path = DEFAULT_RULES_FILE) -> None:
        self.user_file = Path(user_file) if user_file else None
        self.defaults = defaults
        self._mtime: float | None = None
        base = load_rules_file(defaults)
        self.book = RuleBook(base)
        if self.user_file is not None:
            self._mtime = self._stat()
            if not self.book.try_reload(self._load):
                log.error("alert rules NOT loaded, running the defaults only: %s",
                          self.book.last_error)
                RULES_RELOADS.labels("error").inc()
        RULES_LOADED.set(len(self.book.rules.enabled()))

    def _stat(self) -> float | None:
        try:
            return self.user_file.stat().st_mtime_ns if self.user_file else None
        except OSError:
            return None

    def _load(self) -> Any:
        assert self.user_file is not None
        return merge_rulesets([load_rules_file(self.defaults), load_rules_file(self.user_file)])

    def check(self) -> bool | None:
        """Reload if the file changed: True swapped, False rejected, None unchanged."""
        if self.user_file is None:
            return None
        mtime = self._stat()
        if mtime == self._mtime:
            return None
        self._mtime = mtime
        ok = self.book.try_reload(self._load)
        if ok:
            log.info("alert rules reloaded from %s: %d rules", self.user_file,
                     len(self.book.rules.rules))
            RULES_RELOADS.labels("ok").inc()
        else:
            log.error("alert rules file rejected, keeping the previous rules: %s",
                      self.book.last_error)
            RULES_RELOADS.labels("error").inc()
        RULES_LOADED.set(len(self.book.rules.enabled()))
        return ok


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded record made JSON-safe for the internal topic (bytes fields dropped)."""
    return {k: v for k, v in record.items() if not isinstance(v, bytes | bytearray)}


def alert_record(ev: AlertEvent, producer: str = "clawstream-alerting") -> dict[str, Any]:
    """The Alert Avro record of an engine event; the envelope's event_id is deterministic."""
    agent = ev.labels.get("agent") or "*"
    env = new_envelope(
        agent,
        ev.incident_id,
        ev.event_time,
        trace_id=ev.incident_id,
        event_time=ev.event_time,
        event_id=ev.event_id,
        producer=producer,
    )
    return ev.to_record(env)


class FiringGauge:
    """Keeps `clawstream_alerts_firing` equal to the engine's firing incidents."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def update(self, engines: list[AlertEngine]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for inc in (i for engine in engines for i in engine.firing()):
            k = (inc["rule"], inc["severity"])
            counts[k] = counts.get(k, 0) + 1
        for k in self._seen - set(counts):
            ALERTS_FIRING.labels(*k).set(0)
        for k, n in counts.items():
            ALERTS_FIRING.labels(*k).set(n)
        self._seen |= set(counts)


def read_behind(app: Any, msg: Any) -> bool:
    """Did the message's partition hold more messages when it was read? (Not known: no.)"""
    try:
        high = app.consumer.highwater(msg.tp)
    except AssertionError:  # (aiokafka: the partition was revoked meanwhile)
        return False
    return high is not None and has_backlog(high, msg.offset)


def register(app: Any, settings: Settings) -> None:
    """Declare the alerting topics, table, agents and timers on a faust app."""
    serde = Serde.for_registry(settings.schema_registry_url)
    watcher = RulesWatcher(settings.rules_file)
    types = {settings.topic(t): carried_types(t) for t in INPUT_TOPICS}
    dlq = dead_letter_queue(settings, "worker", COMPONENT,
                            on_sent=lambda reason: ALERT_DLQ.labels(reason).inc())
    source = app.topic(*types, key_serializer="raw", value_serializer="raw")
    partitions = int(app.conf.topic_partitions)
    inputs = app.topic(
        f"{app.conf.id}-alerting-shards", partitions=partitions, internal=True,
        key_serializer="raw", value_serializer="json",
    )
    alerts_topic = app.topic(settings.topic(ALERTS), key_serializer="raw",
                             value_serializer="raw")
    import faust

    state = app.Table(
        "alerting-shard-state", partitions=partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        help="Alert evaluation state per alert partition: incidents, counters, breakers, "
             "last activity.",
    )
    shards = ShardEngines(watcher.book, state, inputs.get_topic_name(), partitions)
    router = Router(partitions)
    gauge = FiringGauge()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        now = {tp.partition for tp in assigned if tp.topic == shards.topic}
        shards.revoked(shards.assigned - now, getattr(state, "data", None))
        shards.set_assigned(now)

    @app.agent(source, name="alerting-route")
    async def route(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                decoded = serde.decode_as(event.value, types[msg.topic], msg.topic)
            except DecodeError as exc:
                await dead_letter(dlq, event, exc.reason, exc.detail)
                continue
            dlq.ok()
            etype = decoded.schema.event_type
            record = compact(decoded.record)
            now = time.time()  # (the broker's timestamp, never later than our clock)
            arrival = int(min(msg.timestamp or now, now) * 1000)
            behind = int(read_behind(app, msg))
            rules = watcher.book.rules
            for partition, names in router.routes(etype, record, rules).items():
                await inputs.send(key=etype.encode(), partition=partition, value={
                    "t": etype, "a": arrival, "u": names,
                    "r": fleet_record(record) if router.fleet_only(names, rules) else record,
                    "s": [msg.topic, msg.partition, msg.offset], "b": behind,
                })

    @app.agent(inputs, name="alerting-evaluate")
    async def evaluate(stream: Any) -> None:
        async for event in stream.events():
            item = event.value
            partition = event.message.partition
            eng = shards.engine(partition)
            kind = item.get("t")
            if kind == "tick":
                events = eng.tick(int(item["w"]))
            else:
                ALERT_INPUTS.labels(kind).inc()
                shards.counted(partition)
                events = eng.process(kind, item["r"], item.get("a"), item.get("s"),
                                     behind=bool(item.get("b")), rules=item.get("u"))
            for ev in events:
                rec = alert_record(ev)
                await alerts_topic.send(
                    key=rec["envelope"]["agent_id"].encode(),
                    value=serde.encode("alert", rec),
                )
                ALERT_EVENTS.labels(ev.rule, ev.state).inc()
                log.info("alert %s %s %s labels=%s value=%s", ev.state, ev.rule,
                         ev.transition or "", ev.labels, ev.value)
            if events or kind == "tick":
                gauge.update(shards.all())

    @app.timer(TICK_SECONDS, on_leader=True, name="alerting-tick")
    async def tick() -> None:
        wall = int(time.time() * 1000)
        for partition in range(partitions):
            await inputs.send(key=b"tick", partition=partition, value={"t": "tick", "w": wall})

    @app.timer(RELOAD_CHECK_SECONDS, name="alerting-rules-reload")
    async def reload_rules() -> None:
        if watcher.check():
            shards.show()


def standalone_app(settings: Settings) -> Any:
    """A faust app running only the alerting module (tests, or a dedicated alert worker),
    configured as the full worker (`streams.app.create_app`)."""
    from streams.app import create_app

    return create_app(settings, modules=("streams.alerting",))


def main() -> None:
    """`python -m streams.alerting`: one alerting-only worker with metrics."""
    import faust

    from clawstream.metrics import serve_metrics
    from clawstream.settings import get_settings

    settings = get_settings()
    serve_metrics(settings.worker_metrics_port, settings.metrics_host)
    app = standalone_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower())
    worker.execute_from_commandline()

