"""Encode/decode throughput of the serde for a typical Action (events/s on one core).

Prints the serde's figures and, in the same run, fastavro's bare `schemaless_writer` /
`schemaless_reader` on the same records as a baseline (ratio = serde / baseline).
Usage: .venv/bin/python bench/serde.py [--n 50000] [--type action]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.samples import sample
from schemas.serde import Serde


def rate(fn: Callable[[Any], Any], items: list[Any], repeat: int = 3) -> float:
    """Best of `repeat` runs, in items per second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return len(items) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--type", default="action")
    args = ap.parse_args()
    rng = random.Random(1)
    records = [sample(args.type, rng) for _ in range(args.n)]
    serde = Serde()
    schema = serde.schema(args.type)
    encoded = [serde.encode(args.type, r) for r in records]
    size = sum(map(len, encoded)) / len(encoded)

    def bare_encode(r: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, schema.writer, r)
        return buf.getvalue()

    def bare_decode(b: bytes) -> Any:
        buf = io.BytesIO(b)
        buf.seek(10)
        return schemaless_reader(buf, schema.reader, None)

    enc = rate(lambda r: serde.encode(args.type, r), records)
    base_enc = rate(bare_encode, records)
    dec = rate(serde.decode, encoded)
    base_dec = rate(bare_decode, encoded)
    print(f"{args.type}: {args.n} records, {size:.0f} bytes each on the wire")
    print(f"encode  serde {enc:10,.0f}/s   fastavro bare {base_enc:10,.0f}/s   "
          f"ratio {enc / base_enc:.2f}")
    print(f"decode  serde {dec:10,.0f}/s   fastavro bare {base_dec:10,.0f}/s   "
          f"ratio {dec / base_dec:.2f}")


if __name__ == "__main__":
    main()
