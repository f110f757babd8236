"""`clawstream demo` end to end (a short run): every stage shows something, derived events
are not counted as sent, and the recount finds nothing wrong. Real broker, real chdb."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clawstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def test_demo_shows_every_stage_and_a_clean_recount(cs_settings: Settings) -> None:
    env = {**os.environ, "CLAWSTREAM_SINK_METRICS_PORT": "0",
           "CLAWSTREAM_WORKER_METRICS_PORT": "0", "CLAWSTREAM_SDK_METRICS_PORT": "0",
           "COLUMNS": "200",
           "CLAWSTREAM_SESSION_GAP_S": "10"}  # (episodes close 10 s after, not 30)
    out = subprocess.run([sys.executable, "-m", "clawstream.cli", "demo", "--agents", "8",
                          "--duration", "25", "--linger", "20", "--speedup", "3",
                          "--seed", "5", "--timeout", "120"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "nothing yet" not in text, text[-3000:]
    for title in ("Closed event-time windows, fleet-wide", "Closed event-time windows per agent",
                  "Episodes", "Merged agent state", "Events refused for their agent's clock",
                  "Alerts raised"):
        assert title in text, f"stage {title!r} not shown:\n{text[-3000:]}"
    assert "AgentClockSkew" in text
    # what the agents sent equals what ClickHouse holds of theirs, type by type
    rows = re.findall(r"│ (\w+)\s+│\s+(\d+) │\s+(\d+) │", text)
    assert rows and all(sent == held for _t, sent, held in rows), rows
    m = re.search(r"recounted from the raw events: (\d+) per-agent and (\d+) fleet-wide windows,"
                  r" 0 differ,\s+0 missing; 0 late events", text)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, text[-2000:]
