"""What security costs: SDK and sink throughput over SASL_SSL (SCRAM-SHA-512, TLS, ACLs)
next to plaintext, in the same run, on two private brokers started side by side from the
same jars and settings (one as `clawstream up` starts it, one as `clawstream up --insecure`).
Rounds alternate between the two so that the machine's other load falls on both alike, after
a warm-up round of each that is not counted. Target: secured >= 0.8x plaintext.

    .venv/bin/python bench/bench_security.py [--events 200000] [--sink-events 200000] [--rounds 2]

The SDK figure counts until every event is acknowledged (an agent credential: the ACLs are
checked); the sink figure is the sink draining pre-loaded events into a fresh chdb (its own
credential), first message to last commit, as bench_sink.py measures it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sdk import bodies, run_sdk  # noqa: E402
from bench_sink import build_events, preload  # noqa: E402

from clawstream.admin import create_topics  # noqa: E402
from clawstream.broker import LocalBroker  # noqa: E402
from clawstream.security.local import LocalSecurity  # noqa: E402
from clawstream.security.provision import add_credential  # noqa: E402
from clawstream.settings import Settings  # noqa: E402
from consumers.sink import Sink  # noqa: E402
from producers.settings import SdkSettings  # noqa: E402

MODES = ("plaintext", "sasl_ssl")


def free_port_pair() -> int:
    import socket

    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def environment(base: Settings, broker: LocalBroker, role: str, data: Path,
                **update: Any) -> Settings:
    """Settings of one client of `broker` acting for `role` with its own credential."""
    admin = broker.client_settings()
    ns = f"bench{uuid.uuid4().hex[:6]}."
    create_topics(admin, namespace=ns)
    cred: dict[str, Any] = {"kafka_security_protocol": "PLAINTEXT", "kafka_client_config": None}
    if broker.secure:
        name = f"bench-{role}-{uuid.uuid4().hex[:6]}"
        add_credential(admin.model_copy(update={"topic_namespace": ns,
                                                "sink_group": f"{ns}sink"}),
                       role, name)
        cred = {"kafka_security_protocol": None,
                "kafka_client_config": LocalSecurity.of(base).store.path(name)}
    return base.model_copy(update={"bootstrap_servers": broker.bootstrap, "topic_namespace": ns,
                                   "sink_group": f"{ns}sink", "data_dir": data,
                                   "chdb_endpoint_port": 0, "clickhouse_dsn": None,
                                   "kafka_sasl_username": None, **cred, **update})


def sdk_round(base: Settings, broker: LocalBroker, events: list, tmp: Path) -> float:
    s = environment(base, broker, "agent", tmp / f"sdk-{uuid.uuid4().hex[:6]}")
    agent = SdkSettings(**{k: getattr(s, k) for k in SdkSettings.model_fields})
    dt, _cpu, stats = run_sdk(agent, events, f"bench-{uuid.uuid4().hex[:6]}")
    assert sum(stats["delivered"].values()) == len(events), stats
    return len(events) / dt


def sink_round(base: Settings, broker: LocalBroker, events: list, tmp: Path) -> float:
    loader = environment(base, broker, "sink", tmp / f"sink-{uuid.uuid4().hex[:6]}")
    admin = broker.client_settings().model_copy(update={"topic_namespace":
                                                        loader.topic_namespace})
    preload(admin, events)
    stats = Sink(loader, serve_endpoint=False, serve_metrics_endpoint=False).run(until_idle=3)
    assert stats.messages == len(events), (stats.messages, len(events))
    return stats.rows / stats.busy_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--sink-events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="clawstream-bench-sec-"))
    base = Settings().model_copy(update={"data_dir": tmp})
    brokers: dict[str, LocalBroker] = {}
    try:
        for mode in MODES:
            port = free_port_pair()
            brokers[mode] = LocalBroker(base, port=port, controller_port=port + 1,
                                        secure=mode == "sasl_ssl")
            brokers[mode].start(timeout=120)
        print(f"brokers: plaintext {brokers['plaintext'].bootstrap}, "
              f"SASL_SSL/SCRAM-SHA-512 {brokers['sasl_ssl'].bootstrap}")
        sdk_events = bodies(args.events)
        sink_events = build_events(args.sink_events)
        for mode in MODES:  # warm-up, not counted: connections, JIT of the brokers, caches
            sdk_round(base, brokers[mode], sdk_events[: len(sdk_events) // 4], tmp)
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                sdk = sdk_round(base, brokers[mode], sdk_events, tmp)
                sink = sink_round(base, brokers[mode], sink_events, tmp)
                rates.setdefault(("sdk", mode), []).append(sdk)
                rates.setdefault(("sink", mode), []).append(sink)
                print(f"round {r + 1} {mode:>9}: sdk {sdk:>9,.0f} events/s   "
                      f"sink {sink:>9,.0f} rows/s", flush=True)
        print()
        for what, unit in (("sdk", "events/s"), ("sink", "rows/s")):
            plains, secures = rates[(what, "plaintext")], rates[(what, "sasl_ssl")]
            plain, secure = statistics.median(plains), statistics.median(secures)
            # a round runs both back to back: its own ratio is the least disturbed by drift
            paired = [s / p for s, p in zip(secures, plains, strict=True)]
            print(f"{what:>4}: plaintext {plain:>9,.0f} {unit}, SASL_SSL {secure:>9,.0f} "
                  f"{unit} (medians of {args.rounds}) -> ratio {secure / plain:.2f}x; "
                  f"per round {', '.join(f'{r:.2f}' for r in paired)} (median "
                  f"{statistics.median(paired):.2f}x; target >= 0.8x)")
    finally:
        for b in brokers.values():
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
