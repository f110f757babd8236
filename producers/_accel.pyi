"""Types of the optional compiled SDK hot path (producers/_accel.pyx)."""

from collections.abc import Callable
from typing import Any

from schemas._avro import Node, Unsupported, compile_writer, encode_body

__all__ = ["DeliveryReports", "Emitter", "Node", "Unsupported", "compile_plan", "compile_writer",
           "encode_body", "encode_event", "uuid4_strings"]

def compile_plan(expanded: dict[str, Any], skip_fields: int = 0) -> Node: ...
def encode_event(header: bytes, event_id: str, ast: bytes, parent_id: str | None,
                 event_time: int, seq: int, producer: bytes, plan: Node,
                 body: dict[str, Any]) -> bytes: ...
def uuid4_strings(random16: bytes) -> list[str]: ...

class Emitter:
    """`AgentClient.emit` in C for the usual call; any other call goes to `py_emit`."""

    def __init__(self, client: Any, py_emit: Callable[..., str],
                 kafka_exception: type[Exception]) -> None: ...
    def emit(self, event_type: str, body: dict[str, Any], *, parent_id: str | None = None,
             event_time: int | None = None, trace_id: str | None = None,
             session_id: str | None = None, event_id: str | None = None) -> str: ...

class DeliveryReports:
    """`AgentClient.on_delivery` in C for the usual report of a delivered event."""

    def __init__(self, client: Any, py_report: Callable[[Any, Any, Any], None],
                 observe: Callable[[float], None]) -> None: ...
    def report(self, err: Any, msg: Any) -> None: ...
