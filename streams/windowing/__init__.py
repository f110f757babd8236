"""Pure event-time logic: windows, watermarks, sketches, sessions, correlation, fleet merge.

No I/O here: the Faust glue (streams/aggregation.py) and the benchmark's raw consumer loop
drive the same classes.
"""

from streams.windowing.correlation import CORRELATOR, CorrelationOperator
from streams.windowing.operator import WindowOperator
from streams.windowing.pipeline import Event, Output, PartitionPipeline
from streams.windowing.sessions import SessionOperator
from streams.windowing.windows import WindowSpec, parse_specs, specs_from_settings


def build_pipeline(settings) -> PartitionPipeline:  # type: ignore[no-untyped-def]
    """The pipeline of one partition as configured by `settings`."""
    lateness_ms = round(settings.window_lateness_s * 1000)
    return PartitionPipeline(
        lateness_ms,
        [
            CorrelationOperator(round(settings.outcome_timeout_s * 1000)),
            WindowOperator(specs_from_settings(settings), lateness_ms=lateness_ms),
            SessionOperator(round(settings.session_gap_s * 1000)),
        ],
    )


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
