"""`clawstream up | down | status | topics`: the local broker and the topic table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from clawstream.settings import get_settings

_Command = TypeVar("_Command", bound=Callable[..., Any])

console = Console(soft_wrap=True)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _namespace_option(f: _Command) -> _Command:
    return click.option(
        "--namespace", default=None,
        help="Topic name prefix (default: CLAWSTREAM_TOPIC_NAMESPACE).",
    )(f)


@click.command()
@click.option("--no-topics", is_flag=True, help="Only start the broker; don't create topics.")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for it.")
@click.option("--insecure", is_flag=True,
              help="Plaintext, no authentication, no ACLs: anyone who reaches the port reads "
                   "and writes everything. Only for whoever asks for it explicitly; the "
                   "default is SASL_SSL with the project's CA, one credential per role and "
                   "least-privilege ACLs.")
@_namespace_option
def up(no_topics: bool, timeout: float, insecure: bool, namespace: str | None) -> None:
    """Start the local Kafka broker (or reuse one that answers) and create the topics.

    Secured by default: the first start makes a CA and the broker's certificate, an admin
    (the super user) and, for the namespace, one credential per role (worker, sink, notifier,
    agent) with least-privilege ACLs, under <data_dir>/security (keys and passwords 0600).
    Processes on this machine find their role's credential there; another machine needs a
    client config file (`clawstream credentials add`)."""
    from clawstream.admin import ensure_topics
    from clawstream.broker import BrokerError, broker_answers, ensure_broker, local_broker_for
    from clawstream.kafka.security import local_broker_secured

    settings = get_settings()
    try:
        broker = local_broker_for(settings) if _is_loopback(settings.bootstrap_servers) else None
        if broker_answers(settings):
            bootstrap = settings.bootstrap_servers
            mine = broker is not None and broker.pid() is not None
            console.print(
                f"Kafka broker already answering at [bold]{bootstrap}[/]"
                + (f" (pid {broker.pid()}, log {broker.server_log})" if mine and broker else "")
            )
        else:
            # raises a clear error for remote addresses
            broker = local_broker_for(settings, secure=not insecure)
            with console.status(f"starting Kafka {settings.kafka_version} on {broker.bootstrap}"):
                bootstrap = ensure_broker(settings, timeout=timeout, secure=not insecure)
            console.print(
                f"Kafka broker started at [bold]{bootstrap}[/] "
                f"(pid {broker.pid()}, log {broker.server_log})"
                + (" [yellow]INSECURE: plaintext, no authentication[/]" if insecure else
                   ", SASL_SSL with least-privilege ACLs")
            )
        ns = settings.topic_namespace if namespace is None else namespace
        admin = settings
        if broker is not None and broker.pid() is not None:  # ours: as its own admin
            broker.secure = local_broker_secured(settings)
            admin = broker.client_settings()
        if not insecure and broker is not None and broker.pid() is not None and broker.secure:
            from clawstream.security.provision import provision_roles

            made = provision_roles(admin.model_copy(update={"topic_namespace": ns}))
            if made:
                console.print(f"credentials made for: {', '.join(made)} "
                              f"(in {broker.security.store.dir})")
        if not no_topics:
            res = ensure_topics(admin, ns)
            console.print(
                f"topics: {len(res.created)} created, {len(res.existing)} already there"
                + (f" (namespace {ns!r})" if ns else "")
            )
    except BrokerError as exc:
        raise _fail(exc) from exc


def _is_loopback(bootstrap: str) -> bool:
    from clawstream.broker import LOOPBACK, _split_hostport

    try:
        return _split_hostport(bootstrap)[0] in LOOPBACK
    except Exception:
        return False


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds before SIGKILL.")
def down(timeout: float) -> None:
    """Stop the local broker that `clawstream up` started (found through its pid file)."""
    from clawstream.broker import BrokerError, broker_answers, local_broker_for

    settings = get_settings()
    try:
        broker = local_broker_for(settings)
    except BrokerError:
        console.print(f"{settings.bootstrap_servers} is not a local broker; nothing to stop")
        return
    pid = broker.pid()
    if pid is None:
        msg = f"no broker started by clawstream is running on {broker.bootstrap}"
        if broker_answers(broker.bootstrap, timeout=2):
            msg += " (one answers there, but clawstream did not start it: left alone)"
        console.print(msg)
        return
    with console.status(f"stopping Kafka broker pid {pid}"):
        broker.stop(timeout=timeout)
    console.print(f"Kafka broker on {broker.bootstrap} (pid {pid}) stopped")


@click.command()
@_namespace_option
@click.option("--lag/--no-lag", default=True, show_default=True,
              help="Show consumer group lag for the namespace's topics.")
def status(namespace: str | None, lag: bool) -> None:
    """Is the broker answering, are the topics there, how far behind are the consumers."""
    from clawstream.admin import describe_topics
    from clawstream.broker import BrokerError, broker_answers, local_broker_for

    settings = get_settings()
    bootstrap = settings.bootstrap_servers
    ns = settings.topic_namespace if namespace is None else namespace
    if not broker_answers(bootstrap):
        console.print(f"[red]no Kafka broker answers at {bootstrap}[/] (start one: clawstream up)")
        raise SystemExit(1)
    owner = "not started by clawstream"
    try:
        broker = local_broker_for(settings)
        if broker.pid() is not None:
            owner = f"local, pid {broker.pid()}, log {broker.server_log}"
    except BrokerError:
        pass
    console.print(f"[green]Kafka broker answering at {bootstrap}[/] ({owner})")
    infos = describe_topics(bootstrap, ns)
    missing = [t.name for t in infos if not t.exists]
    console.print(
        f"topics: {len(infos) - len(missing)}/{len(infos)} present"
        + (f" (namespace {ns!r})" if ns else "")
        + (f"; missing: {', '.join(missing)} (run: clawstream topics)" if missing else "")
    )
    if lag:
        rows = consumer_lag(bootstrap, {t.name for t in infos if t.exists})
        if rows:
            table = Table(title="consumer group lag")
            for col in ("group", "topic", "committed", "end", "lag"):
                table.add_column(col, justify="right" if col in ("committed", "end", "lag")
                                 else "left")
            for g, t, committed, end in rows:
                table.add_row(g, t, str(committed), str(end), str(max(0, end - committed)))
            console.print(table)
        else:
            console.print("consumer groups: none with committed offsets on these topics")


def consumer_lag(
    bootstrap: str, topics: set[str], max_groups: int = 200, timeout: float = 10.0
) -> list[tuple[str, str, int, int]]:
    """(group, topic, committed, end) summed over partitions, for groups on `topics`."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    from clawstream.admin import admin_client

    admin = admin_client(bootstrap)
    groups = admin.list_consumer_groups(request_timeout=timeout).result(timeout)
    committed: dict[tuple[str, str, int], int] = {}
    for g in sorted(x.group_id for x in groups.valid)[:max_groups]:
        futs = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(g)], request_timeout=timeout
        )
        for fut in futs.values():
            try:
                res = fut.result(timeout)
            except Exception:
                continue
            for tp in res.topic_partitions or []:
                if tp.topic in topics and tp.offset >= 0:
                    committed[(g, tp.topic, tp.partition)] = tp.offset
    if not committed:
        return []
    tps = {TopicPartition(t, p) for (_, t, p) in committed}
    ends: dict[tuple[str, int], int] = {}
    end_futs = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps},
                                  request_timeout=timeout)
    for tp, fut in end_futs.items():
        try:
            ends[(tp.topic, tp.partition)] = fut.result(timeout).offset
        except Exception:
            continue
    summed: dict[tuple[str, str], list[int]] = {}
    for (g, t, p), off in committed.items():
        acc = summed.setdefault((g, t), [0, 0])
        acc[0] += off
        acc[1] += ends.get((t, p), off)
    return [(g, t, c, e) for (g, t), (c, e) in sorted(summed.items())]


@click.command()
@_namespace_option
def topics(namespace: str | None) -> None:
    """Create the topics of the table (idempotent) and show them as the broker has them."""
    from clawstream.admin import describe_topics, ensure_topics
    from clawstream.broker import broker_answers
    from schemas.topics import TOPICS

    settings = get_settings()
    bootstrap = settings.bootstrap_servers
    ns = settings.topic_namespace if namespace is None else namespace
    if not broker_answers(bootstrap):
        raise click.ClickException(
            f"no Kafka broker answers at {bootstrap} (start one: clawstream up)"
        )
    res = ensure_topics(bootstrap, ns)
    created = set(res.created)
    table = Table(title=f"topics on {bootstrap}" + (f" (namespace {ns!r})" if ns else ""))
    table.add_column("topic", no_wrap=True)
    table.add_column("partitions", justify="right")
    for col in ("retention", "cleanup", "role", "state"):
        table.add_column(col)
    for info in describe_topics(bootstrap, ns):
        spec = TOPICS[info.name[len(ns):]]
        retention = "-" if info.cleanup_policy == "compact" else _fmt_ms(info.retention_ms)
        table.add_row(
            info.name, str(info.partitions), retention, info.cleanup_policy or "-", spec.role,
            "[green]created[/]" if info.name in created else "exists",
        )
    console.print(table)
    console.print(f"{len(res.created)} created, {len(res.existing)} already there")
