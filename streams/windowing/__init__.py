"""Pure event-time logic: windows, watermarks, sketches, sessions, correlation, fleet merge.

No I/O here: the event-time processor (`streams.event_time`) and the benchmark's raw
consumer loop drive the same classes. `build_pipeline` makes the pipeline of one partition.
"""

from typing import Protocol

from streams.windowing.clock import NEVER, has_backlog, held_back
from streams.windowing.correlation import CORRELATOR, CorrelationOperator
from streams.windowing.operator import WindowOperator
from streams.windowing.outputs import (
    FleetPartial,
    LateEvent,
    LostOutcome,
    Output,
    PlanProgress,
    SessionClosed,
    WindowClosed,
)
from streams.windowing.pipeline import Event, Operator, PartitionPipeline
from streams.windowing.sessions import SessionOperator
from streams.windowing.windows import WindowSettings, WindowSpec, parse_specs, specs_from_settings


class PipelineSettings(WindowSettings, Protocol):
    """The settings a partition's pipeline is built from (`clawstream.settings.Settings`)."""

    window_lateness_s: float
    outcome_timeout_s: float
    session_gap_s: float
    max_clock_skew_s: float


def build_pipeline(settings: PipelineSettings, *, correlation: bool = True,
                   windows: bool = True, sessions: bool = True) -> PartitionPipeline:
    """The pipeline of one partition as configured by `settings`, with the operators asked
    for (the worker and the benchmark run all three)."""
    lateness_ms = round(settings.window_lateness_s * 1000)
    ops: list[Operator] = []
    if correlation:
        ops.append(CorrelationOperator(round(settings.outcome_timeout_s * 1000)))
    if windows:
        ops.append(WindowOperator(specs_from_settings(settings), lateness_ms=lateness_ms))
    if sessions:
        ops.append(SessionOperator(round(settings.session_gap_s * 1000)))
    return PartitionPipeline(lateness_ms, ops,
                             max_skew_ms=round(settings.max_clock_skew_s * 1000))


__all__ = [
    "CORRELATOR",
    "NEVER",
    "CorrelationOperator",
    "Event",
    "FleetPartial",
    "LateEvent",
    "LostOutcome",
    "Operator",
    "Output",
    "PartitionPipeline",
    "PipelineSettings",
    "PlanProgress",
    "SessionClosed",
    "SessionOperator",
    "WindowClosed",
    "WindowOperator",
    "WindowSpec",
    "build_pipeline",
    "has_backlog",
    "held_back",
    "parse_specs",
    "specs_from_settings",
]
