"""Filters shared by canned queries and reports: parse `--since` and turn filters into the
query parameters every canned SQL text declares ({since_ms:Int64}, {agent:String} ...)."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
#: far enough in the future for "no upper bound" (year 2100)
NO_UNTIL_MS = 4_102_444_800_000


def parse_time(value: str | None, *, now_ms: int | None = None, default_ms: int = 0) -> int:
    """Epoch millis of `value`: a duration back from now ('90s', '30m', '1h', '7d'), an ISO
    time ('2026-01-01T10:00', with or without zone; no zone = UTC), epoch seconds/millis
    digits, or 'all' (the beginning of time). None or '' -> default_ms."""
    if value is None or not value.strip():
        return default_ms
    text = value.strip()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if text.lower() in ("all", "ever", "beginning"):
        return 0
    if text.lower() == "now":
        return now
    m = _DURATION.match(text)
    if m:
        return now - int(float(m.group(1)) * _UNIT_MS[m.group(2).lower()])
    if text.isdigit():
        n = int(text)
        return n if n > 10_000_000_000 else n * 1000
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {value!r}: use a duration like 30m, 1h, 7d, an ISO time "
            "like 2026-01-01T10:00:00Z, or 'all'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class Filters:
    """What a canned query is restricted to; '' means 'any'."""

    since_ms: int = 0
    until_ms: int = NO_UNTIL_MS
    agent: str = ""
    app: str = ""
    session: str = ""
    limit: int = 50

    @classmethod
    def from_cli(cls, since: str | None = "24h", until: str | None = None, agent: str | None = None,
                 app: str | None = None, session: str | None = None, limit: int = 50,
                 now_ms: int | None = None) -> Filters:
        return cls(
            since_ms=parse_time(since, now_ms=now_ms, default_ms=0),
            until_ms=parse_time(until, now_ms=now_ms, default_ms=NO_UNTIL_MS),
            agent=agent or "", app=app or "", session=session or "", limit=int(limit),
        )

    def params(self) -> dict[str, Any]:
        """The query parameters (server-side bound by ClickHouse, never spliced into SQL)."""
        return {"since_ms": int(self.since_ms), "until_ms": int(self.until_ms),
                "agent": self.agent, "app": self.app, "session": self.session,
                "limit": int(self.limit)}
