"""Building and reading the shared envelope."""

from __future__ import annotations

import time
import uuid
from typing import Any

from clawstream import __version__


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
    version: str = __version__,
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
