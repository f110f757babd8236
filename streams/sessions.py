"""Gap-based session windows per agent on the event-time pipeline -> claw.sessions.v1.

See streams.windowing.sessions; the gap is settings.session_gap_s and sessions close on the
same per-partition watermark as the windows.
"""

from __future__ import annotations

from typing import Any

from clawstream.settings import Settings
from streams.aggregation import processor


def register(app: Any, settings: Settings) -> None:
    processor(app, settings).enabled.add("sessions")
