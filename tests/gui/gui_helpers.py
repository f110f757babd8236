"""Helpers for the GUI tests: ground-truth scoring and reading back what reached Kafka."""

from __future__ import annotations

from typing import Any

from kafka_read import read_messages

from clawstream.settings import Settings
from producers.perception.types import Element, iou
from schemas.registry import contract
from schemas.serde import Serde

RAW_TYPES = ("frame", "detection", "plan", "action", "outcome")


def gt_boxes(state: dict, kind: str) -> list[tuple[int, int, int, int]]:
    return [(w["x"], w["y"], w["w"], w["h"]) for w in state["widgets"] if w["kind"] == kind]


def precision_recall(elements: list[Element], state: dict, kind: str) -> tuple[float, float]:
    truth = gt_boxes(state, kind)
    found = [e.box for e in elements if e.kind == kind]
    tp_found = sum(1 for b in found if any(iou(b, t) >= 0.5 for t in truth))
    tp_truth = sum(1 for t in truth if any(iou(b, t) >= 0.5 for b in found))
    precision = tp_found / len(found) if found else 0.0
    recall = tp_truth / len(truth) if truth else 1.0
    return precision, recall


def consume_all(settings: Settings, types: tuple[str, ...] = RAW_TYPES,
                idle_s: float = 3.0, timeout_s: float = 30.0) -> list[tuple[str, dict[str, Any]]]:
    """Every event on the namespace's topics of `types`, decoded (type, record)."""
    c = contract()
    topics = {settings.topic(c.get(t).topic): t for t in types}
    serde = Serde()
    return [(topics[m.topic()], serde.decode(m.value()).record)
            for m in read_messages(settings.bootstrap_servers, topics, idle=idle_s,
                                   timeout=timeout_s)]


def strings_of(value: Any) -> list[str]:
    """Every string (and bytes decoded leniently) inside a decoded record."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_of(v)] + list(map(str, value))
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_of(v)]
    return [str(value)]
