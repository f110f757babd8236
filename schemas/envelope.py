"""Building and reading the shared envelope.

The contract imports nothing of the project: the producer version written into envelopes is
the installed clawstream distribution's (package metadata), not `clawstream.__version__`.
"""

from __future__ import annotations

import time
import uuid
from importlib import metadata
from typing import Any


def _distribution_version() -> str:
    """The installed clawstream's version; "0+unknown" when run from a tree never installed."""
    try:
        return metadata.version("clawstream")
    except metadata.PackageNotFoundError:
        return "0+unknown"


#: What `envelope.producer.version` says by default: the version of this installation.
PRODUCER_VERSION = _distribution_version()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_envelope(
    agent_id: str,
    session_id: str,
    seq: int,
    *,
    trace_id: str | None = None,
    parent_id: str | None = None,
    event_time: int | None = None,
    event_id: str | None = None,
    producer: str = "clawstream-sdk",
    version: str = PRODUCER_VERSION,
) -> dict[str, Any]:
    """A fresh envelope; event_time is epoch milliseconds."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "agent_id": agent_id,
        "session_id": session_id,
        "trace_id": trace_id or session_id,
        "parent_id": parent_id,
        "event_time": now_ms() if event_time is None else event_time,
        "seq": seq,
        "producer": {"name": producer, "version": version},
    }
