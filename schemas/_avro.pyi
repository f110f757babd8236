"""Types of the optional compiled Avro reader and writer (schemas/_avro.pyx)."""

from typing import Any

class Unsupported(Exception):
    """A schema shape the compiled module does not handle (the caller keeps the Python path)."""

class Corrupt(ValueError):
    """The bytes do not read as this schema."""

class Node:
    """A compiled plan (opaque to Python)."""

def compile_reader(schema: dict[str, Any]) -> Node: ...
def compile_writer(schema: dict[str, Any], skip_fields: int = 0) -> Node: ...
def decode(plan: Node, data: bytes, offset: int) -> dict[str, Any]: ...
def encode_record(header: bytes, plan: Node, record: Any) -> bytes: ...
def encode_body(plan: Node, record: Any) -> bytes: ...
