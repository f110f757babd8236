"""The worker's faust App: faust's `App` with what clawstream keeps on it.

A module of its own so that importing `streams.app` (for `input_group`, say) does not load
faust; `streams.app.create_app` imports it when it builds the worker.

With exactly-once processing every faust agent reads committed data only: faust sets its
consumer's isolation level only together with its own transactions (for every agent), which
clawstream does not use; the event-time processor's transactions are its own
(`streams.event_time`). So the app's consumer is made read_committed here, and faust's table
recovery leaves alone the tables whose changelogs are written in transactions: the event-time
state and the fleet merge's (`OWNER_RESTORED`), which their owners read back themselves (to
the partition's end, stepping over markers) and never from faust's copy. Faust's recovery
would only wait on them: a changelog ending in a transaction marker looks unfinished to it
until its aborted-transaction check runs, and that runs only after two empty 5 s polls of
every changelog, which never come while other changelogs are being written (a worker taking
over sat there for minutes before it joined the input group). For any other changelog it is
told to step over markers as it does for its own transactions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.tables import manager as faust_tables
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka

from clawstream.kafka.config import guarantee
from clawstream.settings import Settings

log = logging.getLogger("clawstream.streams")


class ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # what aiokafka's fetcher reads at start
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ReadCommittedThread:
        return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


#: set (True) on a faust table whose changelog its owner writes, and reads back itself
OWNER_RESTORED = "clawstream_owner_restored"


class TransactionalView:
    """The app as faust's recovery sees it: in transactions (so it skips aborted records and
    markers up to a changelog's highwater); everything else is the app's."""

    in_transaction = True

    def __init__(self, app: Any) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class MarkerAwareRecovery(Recovery):
    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        self.app = TransactionalView(app)  # type: ignore[assignment]

    def add_active(self, table: Any, tp: Any) -> None:
        """Recover a changelog partition unless the table's owner restores it itself (its
        partitions then stay paused on faust's consumer, as every changelog outside recovery)."""
        if not getattr(table, OWNER_RESTORED, False):
            super().add_active(table, tp)

    def add_standby(self, table: Any, tp: Any) -> None:
        if not getattr(table, OWNER_RESTORED, False):
            super().add_standby(table, tp)


class WorkerApp(faust.App):
    """The stream worker's app: its settings, and the stream modules registered on it."""

    clawstream_settings: Settings
    clawstream_modules: tuple[str, ...] = ()

    def use(self, settings: Settings, *, replication_of_cluster: bool = False) -> None:
        """Keep the settings; exactly-once: faust's recovery steps over transaction markers
        (the one faust app of a worker process). With `replication_of_cluster`, faust's own
        topics get the cluster's replication factor, asked when the app starts."""
        self.clawstream_settings = settings
        self.clawstream_replication_of_cluster = replication_of_cluster
        if guarantee(settings) == "exactly_once":
            faust_tables.Recovery = MarkerAwareRecovery  # type: ignore[misc]

    async def on_start(self) -> None:
        """Before faust declares its topics (internal ones: plan progress, fleet partials,
        alerting input, the assignor's; the tables' changelogs): their replication factor is
        what `clawstream.admin.ensure_topics` gives the event topics there, min(3, brokers),
        with the cluster's min.insync.replicas (2 at 3)."""
        if self.clawstream_replication_of_cluster:
            loop = asyncio.get_running_loop()
            rf = await loop.run_in_executor(None, topic_replication, self.clawstream_settings)
            self.conf.topic_replication_factor = rf
        await super().on_start()

    def _new_transport(self) -> Any:
        transport = super()._new_transport()
        if guarantee(self.clawstream_settings) == "exactly_once":
            setattr(transport, "Consumer", ReadCommittedConsumer)  # noqa: B010 (this one)
        return transport


def topic_replication(settings: Settings) -> int:
    """The replication factor of topics on the cluster of `settings`: min(3, brokers); 1 when
    no broker answers now (logged)."""
    from clawstream.admin import replication_factor

    try:
        return replication_factor(settings, timeout=10.0)
    except Exception as exc:
        log.warning("no broker answered for the replication factor (%s): faust's own topics "
                    "get 1 replica", exc)
        return 1
