"""Action ↔ outcome correlation on the event-time pipeline (see streams.windowing.correlation).

Shares the partition watermark of `streams.aggregation`: an action without an outcome when
the watermark passes action time + settings.outcome_timeout_s yields a synthetic "lost"
Outcome on claw.outcomes.v1 (producer "clawstream-correlator", ignored when read back).
Plan progress (steps done/failed per plan) goes to the internal topic
`<app id>-plan-progress` as JSON when a plan completes or goes quiet.
"""

from __future__ import annotations

from typing import Any

from clawstream.settings import Settings
from streams.aggregation import processor


def register(app: Any, settings: Settings) -> None:
    processor(app, settings).enabled.add("correlation")
