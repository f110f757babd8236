"""Events/s through one `clawstream gateway` process (HTTPS, batches of 500, acks=all) next to
the SDK writing straight to Kafka, in the same run; then request latency at a steady rate.

    scripts/with_broker.sh .venv/bin/python bench/bench_gateway.py [--events 200000]

1. direct: `AgentClient`s (one per agent, one shared producer) emit N Action/Outcome events
   to Kafka until every one is acknowledged.
2. gateway: the same clients with `CLAWSTREAM_INGEST_URL` set: the SDK's HTTPS transport
   batches 500 events a request (zstd) to one gateway process (its own process, TLS with a
   throw-away CA), which answers after Kafka acknowledged them.
3. latency: pre-encoded batches of 500 posted at a steady rate (default 20k events/s) over
   kept-alive connections; p50/p99 of request time (received by the client to answered).
Prints events/s of both and the ratio (targets: >= 100k/s and >= 0.3x; p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from gateway_helpers import GatewayProcess, make_tls  # noqa: E402
from ports import free_port  # noqa: E402

from clawstream.admin import create_topics, delete_namespace  # noqa: E402
from clawstream.gateway.batch import AVRO_BATCH, frame  # noqa: E402
from clawstream.gateway.tokens import create_token  # noqa: E402
from clawstream.settings import get_settings  # noqa: E402
from producers.sdk import AgentClient, make_transport  # noqa: E402
from producers.settings import SdkSettings  # noqa: E402
from schemas.samples import sample  # noqa: E402
from schemas.serde import Serde  # noqa: E402


def bodies(n: int) -> list[tuple[str, dict[str, object]]]:
    rng = random.Random(1)
    out = []
    for et in ("action", "outcome"):
        for _ in range(50):
            rec = sample(et, rng)
            out.append((et, {k: v for k, v in rec.items() if k != "envelope"}))
    return [out[i % len(out)] for i in range(n)]


def send(settings: SdkSettings, agents: int, events: list[tuple[str, dict[str, object]]],
         name: str) -> float:
    """Events/s from the first emit until every event is acknowledged."""
    transport = make_transport(settings)
    clients = [AgentClient(settings, f"{name}-{a}", transport=transport) for a in range(agents)]
    started = time.perf_counter()
    for i, (et, body) in enumerate(events):
        clients[i % agents].emit(et, body)
    left = sum(c.flush(300) for c in clients)
    took = time.perf_counter() - started
    for c in clients:
        c.close()
    transport.close()
    if left:
        raise SystemExit(f"{name}: {left} events not acknowledged")
    return len(events) / took


def steady(gw: GatewayProcess, token: str, rate: float, seconds: float,
           connections: int = 2) -> list[float]:
    """Request latencies (s) of batches of 500 posted at `rate` events/s."""
    serde = Serde()
    rng = random.Random(2)
    batches = []
    for b in range(20):
        batches.append(frame([serde.encode("action", sample("action", rng, agent_id=f"blat-{b}"))
                              for _ in range(500)]))
    per_conn = rate / 500 / connections  # requests/s per connection
    latencies: list[float] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        with httpx.Client(verify=gw.ssl_context(), headers={
                "Authorization": f"Bearer {token}", "Content-Type": AVRO_BATCH}) as client:
            client.get(f"{gw.url}/healthz")
            start = time.perf_counter() + k / (per_conn * connections)
            i = 0
            while True:
                due = start + i / per_conn
                if due - start > seconds:
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t0 = time.perf_counter()
                r = client.post(f"{gw.url}/v1/events", content=batches[i % len(batches)])
                took = time.perf_counter() - t0
                if r.status_code != 200:
                    raise SystemExit(f"latency run: {r.status_code} {r.text[:200]}")
                with lock:
                    latencies.append(took)
                i += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--rate", type=float, default=20_000, help="events/s of the latency run")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = ap.parse_args()

    base = get_settings()
    ns = f"bench{uuid.uuid4().hex[:6]}."
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    settings = base.model_copy(update={"topic_namespace": ns, "data_dir": tmp / "data"})
    create_topics(settings.bootstrap_servers, namespace=ns)
    env = {"CLAWSTREAM_TOPIC_NAMESPACE": ns, "CLAWSTREAM_GATEWAY_RATE_EVENTS_PER_S": "0",
           "CLAWSTREAM_DATA_DIR": str(tmp / "gateway")}
    tls = make_tls(tmp / "tls")
    gw = None
    try:
        token, _record = create_token(settings, agent_prefix="b")
        secret = token.get_secret_value()
        os.environ.pop("CLAWSTREAM_INGEST_URL", None)
        gw = GatewayProcess(tls, free_port(), tmp / "gateway.log", env).start()
        events = bodies(args.events)
        direct = SdkSettings(bootstrap_servers=settings.bootstrap_servers,
                             topic_namespace=ns, data_dir=tmp / "direct")
        via = SdkSettings(bootstrap_servers="127.0.0.1:1", topic_namespace=ns,
                          data_dir=tmp / "via", ingest_url=gw.url, ingest_token=secret,
                          ingest_ca_file=tls.ca, ingest_batch_events=500, ingest_connections=4)
        print(f"{args.events:,} Action/Outcome events, {args.agents} agents, one gateway "
              "process (TLS, batches of 500, zstd), broker at " + settings.bootstrap_servers)
        direct_rate = send(direct, args.agents, events, "bdirect")
        print(f"  SDK straight to Kafka:     {direct_rate:10,.0f} events/s")
        gw_rate = send(via, args.agents, events, "bgw")
        print(f"  SDK through the gateway:   {gw_rate:10,.0f} events/s "
              f"(target >= 100,000)")
        print(f"  ratio gateway / direct:    {gw_rate / direct_rate:10.2f}x (target >= 0.3x)")
        lat = sorted(steady(gw, secret, args.rate, args.seconds))
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(f"  steady {args.rate:,.0f} events/s for {args.seconds:.0f}s ({len(lat)} requests "
              "of 500), request latency:")
        print(f"    median:                  {p50:10.1f} ms")
        print(f"    99th percentile:         {p99:10.1f} ms (target <= 50 ms)")
        print(f"    slowest:                 {lat[-1] * 1000:10.1f} ms")
    finally:
        if gw is not None:
            gw.stop()
        try:
            delete_namespace(settings.bootstrap_servers, ns)
        except Exception as exc:
            print(f"could not delete {ns}: {exc}")


if __name__ == "__main__":
    main()
