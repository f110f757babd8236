"""What the event-time pipeline hands out (pure): one small type per kind of result.

Each output is what one Kafka message will carry: `key` is the message key (an agent id, or
a fleet window's key), `value` the payload, of the type the output says. The glue dispatches
on the type (`match`), never on a string; `kind` is each type's stable name, for metrics,
logs and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from streams.windowing.pipeline import Event
    from streams.windowing.state import WindowState


@dataclass(frozen=True, slots=True)
class WindowClosed:
    """A window of one scope closed: its WindowAggregate record, keyed by the scope's agent."""

    kind: ClassVar[str] = "aggregate"
    key: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FleetPartial:
    """This partition's share of a fleet-wide window, for the fleet merge (key: window key)."""

    kind: ClassVar[str] = "fleet_partial"
    key: str
    value: WindowState


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event for the side output (late for a window, or refused for its clock), as it was
    read; `headers` say why and which windows it missed (`schemas.headers.LateInfo`)."""

    kind: ClassVar[str] = "late"
    key: str
    value: Event
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LostOutcome:
    """The synthetic "lost" Outcome record of an action that got none in time."""

    kind: ClassVar[str] = "outcome"
    key: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """A session of one agent closed: its Session record."""

    kind: ClassVar[str] = "session"
    key: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlanProgress:
    """Steps done and failed of a plan that completed or went quiet (a JSON object)."""

    kind: ClassVar[str] = "plan"
    key: str
    value: dict[str, Any]


#: Every output of the pipeline.
Output = WindowClosed | FleetPartial | LateEvent | LostOutcome | SessionClosed | PlanProgress
