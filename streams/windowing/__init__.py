"""Pure event-time logic: windows, watermarks, sketches, sessions, correlation, fleet merge.

No I/O here: the Faust glue (streams/aggregation.py) and the benchmark's raw consumer loop
drive the same classes.
"""

from streams.windowing.correlation import CORRELATOR, CorrelationOperator
from streams.windowing.operator import WindowOperator
from streams.windowing.pipeline import Event, Output, PartitionPipeline
from streams.windowing.sessions import SessionOperator
from streams.windowing.windows import WindowSpec, parse_specs, specs_from_settings


def build_pipeline(settings, *, correlation: bool = True,  # type: ignore[no-untyped-def]
                   windows: bool = True, sessions: bool = True) -> PartitionPipeline:
    """The pipeline of one partition as configured by `settings`, with the operators asked
    for (the worker enables those of its loaded modules; the benchmark all three)."""
    lateness_ms = round(settings.window_lateness_s * 1000)
    ops: list = []
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
    "CorrelationOperator",
    "Event",
    "Output",
    "PartitionPipeline",
    "SessionOperator",
    "WindowOperator",
    "WindowSpec",
    "build_pipeline",
    "parse_specs",
    "specs_from_settings",
]
