"""Plain data shared by the perception stages (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Box = tuple[int, int, int, int]  # x, y, w, h in screen pixels

#: the Detection contract's ElementKind symbols (new kinds are appended there, never inserted)
ELEMENT_KINDS = ("button", "text_field", "checkbox", "text", "icon", "window", "other",
                 "radio", "combobox", "slider", "tab", "menu_item", "link")
INTERACTABLE = {"button", "text_field", "checkbox", "icon", "radio", "combobox", "slider",
                "tab", "menu_item", "link"}


@dataclass
class Word:
    text: str
    box: Box
    confidence: float  # 0..100 as tesseract reports it


@dataclass
class Element:
    element_id: str
    kind: str
    box: Box
    confidence: float
    interactable: bool
    text: str | None = None
    ocr_confidence: float | None = None
    words: list[Word] = field(default_factory=list)
    source: str = "opencv"
    #: set by redaction: the field holds a secret (password) or its text matched a pattern
    redacted: bool = False
    label: str | None = None  # the text labelling a field (left of it or above it)
    label_box: Box | None = None  # a checkbox's label line, found by detection

    def to_record(self) -> dict[str, Any]:
        """The UIElement record of the Detection schema."""
        x, y, w, h = self.box
        return {
            "element_id": self.element_id,
            "kind": self.kind,
            "bbox": {"x": int(x), "y": int(y), "w": int(w), "h": int(h)},
            "text": self.text,
            "confidence": float(self.confidence),
            "ocr_confidence": None if self.ocr_confidence is None else float(self.ocr_confidence),
            "source": self.source,
            "interactable": bool(self.interactable),
        }


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def contains(outer: Box, inner: Box, slack: int = 0) -> bool:
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return (ix >= ox - slack and iy >= oy - slack and ix + iw <= ox + ow + slack
            and iy + ih <= oy + oh + slack)


def intersects(a: Box, b: Box, pad: int = 0) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return (ax - pad < bx + bw and bx - pad < ax + aw and ay - pad < by + bh
            and by - pad < ay + ah)


def union_box(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def merge_boxes(boxes: list[Box], pad: int = 0) -> list[Box]:
    """Union boxes that overlap (or come within `pad` pixels) until none do."""
    out = list(boxes)
    changed = True
    while changed:
        changed = False
        merged: list[Box] = []
        for b in out:
            for i, m in enumerate(merged):
                if intersects(m, b, pad):
                    merged[i] = union_box(m, b)
                    changed = True
                    break
            else:
                merged.append(b)
        out = merged
    return out
