"""The one Faust application of clawstream's stream processors.

`create_app(settings)` builds the app (id `settings.worker_app_id`, raw bytes in and out:
every module decodes with schemas.serde itself) and lets each module in `APP_MODULES`
declare its topics, tables and agents through `register(app, settings)`. A failure of an
optional module (import or register) is logged and the others still run.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clawstream.kafka.config import FaustAuth, faust_config
from clawstream.settings import Settings

if TYPE_CHECKING:
    from streams.worker_app import WorkerApp

log = logging.getLogger("clawstream.streams")

#: Modules that declare agents on the app, in order: the event-time processor (windows,
#: correlation and sessions: one processor, since they share each partition's watermark),
#: the CRDT state merge, the alert rules.
APP_MODULES: tuple[str, ...] = (
    "streams.event_time",
    "streams.state_merge",
    "streams.alerting",
)
#: Modules whose failure must stop the worker; the others are optional add-ons.
CORE_MODULES = frozenset({"streams.event_time"})
#: Partitions of faust's own topics (tables' changelogs) unless a table says otherwise; the
#: event topics have this many, and a table must match the stream it is keyed by.
DEFAULT_PARTITIONS = 6


def input_group(settings: Settings) -> str:
    """The consumer group of the event-time processor (lag dashboards and tests read it)."""
    return f"{settings.worker_app_id}-windows"


def faust_credentials(auth: FaustAuth) -> Any:
    """faust's credentials object for the runtime's description of them."""
    import faust

    if auth.username is None:
        return faust.SSLCredentials(auth.ssl_context)
    return faust.SASLCredentials(username=auth.username,
                                 password=auth.password.get_secret_value(),
                                 ssl_context=auth.ssl_context, mechanism=auth.mechanism)


def create_app(settings: Settings, *, modules: tuple[str, ...] | None = None,
               **overrides: Any) -> WorkerApp:
    """Build the faust App and register the stream modules on it."""
    from streams.worker_app import WorkerApp

    conf: dict[str, Any] = {
        # broker, group liveness (the same as the event-time processor's own group) and acks
        **faust_config(settings, "worker"),
        "value_serializer": "raw",
        "key_serializer": "raw",
        "store": "memory://",
        "topic_partitions": DEFAULT_PARTITIONS,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        "autodiscover": False,
        "producer_linger": 0.005,
        "stream_buffer_maxsize": 16_384,
        "broker_commit_interval": 1.0,
        "table_standby_replicas": 0,
        # faust keeps per-app files (table offsets); under the data folder, not the cwd
        "datadir": str(settings.data_dir / "faust" / settings.worker_app_id),
    }
    conf.update(overrides)
    conf.setdefault("topic_replication_factor", 1)  # until the cluster says (WorkerApp.on_start)
    if isinstance(conf.get("broker_credentials"), FaustAuth):
        conf["broker_credentials"] = faust_credentials(conf["broker_credentials"])
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)
    app = WorkerApp(settings.worker_app_id, **conf)
    app.use(settings, replication_of_cluster="topic_replication_factor" not in overrides)
    loaded = []
    for name in modules if modules is not None else APP_MODULES:
        core = name in CORE_MODULES
        try:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if register is None:
                log.warning("stream module %s has no register(app, settings), skipped", name)
                continue
            register(app, settings)
        except Exception:
            if core:
                raise
            log.exception("stream module %s failed to load; the others run without it", name)
            continue
        loaded.append(name)
    app.clawstream_modules = tuple(loaded)
    return app


def declare_changelogs(app: Any, settings: Settings) -> list[str]:
    """Create the tables' changelog topics before the worker subscribes (idempotent).

    faust declares them itself at start, but its consumer may take its metadata snapshot
    before they exist; a table written then fails with PartitionsMismatch ("changelog has 0
    partitions") and its agent crashes. Created up front, they are always there.
    """
    from clawstream.admin import ensure_topics
    from schemas.topics import TopicSpec

    specs = [
        TopicSpec(table.changelog_topic.get_topic_name(), None,
                  partitions=table.partitions or app.conf.topic_partitions,
                  cleanup_policy="compact", role="side")
        for table in app.tables.values()
    ]
    return ensure_topics(settings, specs=specs).created
