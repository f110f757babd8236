"""`clawstream up | down | status | topics`: the local broker (or a local cluster of them,
`--brokers 3`: `clawstream.broker_cluster`) and the topic table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from clawstream.settings import Settings, get_settings

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
@click.option("--brokers", type=click.IntRange(1, 9), default=None,
              help="Start a local cluster of this many KRaft nodes (combined broker and "
                   "controller roles; node i on port+2(i-1)), topics replicated min(3, N) "
                   "times. Default: the cluster started here before on this port, else 1.")
@click.option("--insecure", is_flag=True,
              help="Plaintext, no authentication, no ACLs: anyone who reaches the port reads "
                   "and writes everything. Only for whoever asks for it explicitly; the "
                   "default is SASL_SSL with the project's CA, one credential per role and "
                   "least-privilege ACLs.")
@_namespace_option
def up(no_topics: bool, timeout: float, brokers: int | None, insecure: bool,
       namespace: str | None) -> None:
    """Start the local Kafka broker (or reuse one that answers) and create the topics.

    Secured by default: the first start makes a CA and the broker's certificate, an admin
    (the super user) and, for the namespace, one credential per role (worker, sink, notifier,
    agent) with least-privilege ACLs, under <data_dir>/security (keys and passwords 0600).
    Processes on this machine find their role's credential there; another machine needs a
    client config file (`clawstream credentials add`)."""
    from clawstream.broker import BrokerError, broker_answers, ensure_broker, local_broker_for
    from clawstream.kafka.security import local_broker_secured

    settings = get_settings()
    ns = settings.topic_namespace if namespace is None else namespace
    if (brokers or 1) > 1 or (brokers is None and _cluster_of(settings)):
        try:
            _up_cluster(settings, brokers, timeout, not insecure, ns, no_topics)
        except BrokerError as exc:
            raise _fail(exc) from exc
        return
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
        admin = settings
        if broker is not None and broker.pid() is not None:  # ours: as its own admin
            broker.secure = local_broker_secured(settings)
            admin = broker.client_settings()
        mine = not insecure and broker is not None and broker.pid() is not None and broker.secure
        _roles_and_topics(admin, ns, mine, no_topics)
    except BrokerError as exc:
        raise _fail(exc) from exc


def _roles_and_topics(admin: Settings, ns: str, provision: bool, no_topics: bool) -> None:
    """The roles' credentials (on a secured broker of ours) and the topics, as admin."""
    from clawstream.admin import ensure_topics, replication_factor

    if provision:
        from clawstream.security.local import LocalSecurity
        from clawstream.security.provision import provision_roles

        made = provision_roles(admin.model_copy(update={"topic_namespace": ns}))
        if made:
            console.print(f"credentials made for: {', '.join(made)} "
                          f"(in {LocalSecurity.of(admin).store.dir})")
    if not no_topics:
        res = ensure_topics(admin, ns)
        console.print(
            f"topics: {len(res.created)} created, {len(res.existing)} already there"
            + (f" (namespace {ns!r})" if ns else "")
            + f", replication factor {replication_factor(admin)} for new ones"
        )


def _cluster_of(settings: Settings) -> Any:
    from clawstream.broker_cluster import local_cluster_for

    return local_cluster_for(settings)


def _up_cluster(settings: Settings, nodes: int | None, timeout: float, secure: bool, ns: str,
                no_topics: bool) -> None:
    """`up --brokers N`: start (or find running) the local cluster whose first node is at
    the settings' address, then credentials and topics as on one broker."""
    from clawstream.broker import BrokerError, _split_hostport, broker_answers
    from clawstream.broker_cluster import LocalCluster

    host, port = _split_hostport(settings.bootstrap_servers)
    if not _is_loopback(settings.bootstrap_servers):
        raise BrokerError(f"{host} is not a loopback address: clawstream starts local "
                          "clusters on 127.0.0.1 only")
    found = _cluster_of(settings)
    cluster = LocalCluster(settings, nodes or len(found.nodes), port, secure=secure)
    pids = cluster.pids()
    if all(pids):
        console.print(f"Kafka cluster already running at [bold]{cluster.bootstrap}[/] "
                      f"(pids {', '.join(map(str, pids))})")
    else:
        if not any(pids) and broker_answers(settings):
            raise BrokerError(f"a broker that is not this cluster answers at "
                              f"{settings.bootstrap_servers}: stop it first (clawstream down)")
        with console.status(f"starting a {len(cluster.nodes)}-node Kafka "
                            f"{settings.kafka_version} cluster at {cluster.bootstrap}"):
            cluster.start(timeout=max(timeout, 120.0))
        console.print(
            f"Kafka cluster of {len(cluster.nodes)} started at [bold]{cluster.bootstrap}[/] "
            f"(pids {', '.join(str(p) for p in cluster.pids())}, logs "
            f"{cluster.dir}/node-*/server.log)"
            + (", SASL_SSL with least-privilege ACLs" if secure else
               " [yellow]INSECURE: plaintext, no authentication[/]"))
        console.print(f"clients: CLAWSTREAM_BOOTSTRAP_SERVERS={cluster.bootstrap} "
                      "(any node's address works; all of them survive a node down)")
    _roles_and_topics(cluster.client_settings(), ns, cluster.secure, no_topics)


def _is_loopback(bootstrap: str) -> bool:
    from clawstream.broker import LOOPBACK, _split_hostport

    try:
        return _split_hostport(bootstrap)[0] in LOOPBACK
    except Exception:
        return False


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds before SIGKILL.")
def down(timeout: float) -> None:
    """Stop the local broker (or every node of the local cluster) that `clawstream up`
    started (found through their pid files)."""
    from clawstream.broker import BrokerError, broker_answers, local_broker_for

    settings = get_settings()
    cluster = _cluster_of(settings)
    if cluster is not None and cluster.is_running():
        with console.status(f"stopping the Kafka cluster at {cluster.bootstrap}"):
            stopped = cluster.stop(timeout=timeout)
        console.print(f"Kafka cluster at {cluster.bootstrap} stopped (nodes "
                      f"{', '.join(map(str, sorted(stopped)))})")
        return
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
    cluster = _cluster_of(settings)
    target: str | Settings = bootstrap
    if cluster is not None and cluster.is_running():
        _print_nodes(cluster)
        target = cluster.client_settings()  # all its nodes: any one may be down
    elif not broker_answers(bootstrap):
        console.print(f"[red]no Kafka broker answers at {bootstrap}[/] (start one: clawstream up)")
        raise SystemExit(1)
    else:
        owner = "not started by clawstream"
        try:
            broker = local_broker_for(settings)
            if broker.pid() is not None:
                owner = f"local, pid {broker.pid()}, log {broker.server_log}"
        except BrokerError:
            pass
        console.print(f"[green]Kafka broker answering at {bootstrap}[/] ({owner})")
    infos = describe_topics(target, ns)
    missing = [t.name for t in infos if not t.exists]
    console.print(
        f"topics: {len(infos) - len(missing)}/{len(infos)} present"
        + (f" (namespace {ns!r})" if ns else "")
        + (f"; missing: {', '.join(missing)} (run: clawstream topics)" if missing else "")
    )
    _print_replication(target, [t.name for t in infos if t.exists])
    if lag:
        rows = consumer_lag(target, {t.name for t in infos if t.exists})
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


def _print_nodes(cluster: Any) -> None:
    table = Table(title=f"Kafka cluster {cluster.bootstrap} ({cluster.dir})")
    for col in ("node", "address", "pid", "state"):
        table.add_column(col)
    for n in cluster.state():
        state = ("[green]up[/]" if n.answers else
                 "[yellow]running, not answering[/]" if n.pid else "[red]down[/]")
        table.add_row(str(n.node_id), n.address, str(n.pid or "-"), state)
    console.print(table)


def _print_replication(target: str | Settings, names: list[str]) -> None:
    """Per topic: replication factor, partition leaders per node, ISR sizes, and the
    under-replicated (ISR short of the replicas) and offline (no leader) partitions."""
    from clawstream.admin import partition_health

    health = partition_health(target, names)
    table = Table(title="replication")
    table.add_column("topic", no_wrap=True)
    for col in ("RF", "leaders node:count", "ISR", "under-replicated", "offline"):
        table.add_column(col)
    by_topic: dict[str, list[Any]] = {}
    for p in health:
        by_topic.setdefault(p.topic, []).append(p)
    for topic, parts in by_topic.items():
        leaders: dict[int, int] = {}
        for p in parts:
            leaders[p.leader] = leaders.get(p.leader, 0) + 1
        isr = sorted({len(p.isr) for p in parts})
        under = [str(p.partition) for p in parts if p.under_replicated]
        offline = [str(p.partition) for p in parts if p.leader < 0]
        table.add_row(topic, str(max(len(p.replicas) for p in parts)),
                      " ".join(f"{k}:{v}" for k, v in sorted(leaders.items()) if k >= 0),
                      "-".join(map(str, (isr[0], isr[-1]) if len(isr) > 1 else isr)),
                      f"[red]{', '.join(under)}[/]" if under else "0",
                      f"[red]{', '.join(offline)}[/]" if offline else "0")
    console.print(table)
    under_total = sum(p.under_replicated for p in health)
    console.print(f"under-replicated partitions: {under_total}, offline partitions: "
                  f"{sum(p.leader < 0 for p in health)}")


def consumer_lag(
    bootstrap: str | Settings, topics: set[str], max_groups: int = 200, timeout: float = 10.0
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
