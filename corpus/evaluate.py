"""Score perception against corpus truth: per kind precision and recall, OCR word accuracy.

Matching (one-to-one, greedy by overlap):
- check boxes and radio buttons: a detection of the kind matches a true widget when the
  detected indicator lies inside the widget's true box and carries its label (the detected
  label's words cover the true label's words);
- every other kind: a detection of the kind whose box has IoU >= 0.5 with a true box.
OCR word accuracy: of the words of labels and captions (text, buttons, check boxes, radios,
tabs, menu items, links), the share found among the words read from the detected elements that
overlap the true box (and the labels attached to check boxes and radios).

Pure: the caller perceives; this module only compares lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from producers.perception.types import Box, Element, contains, iou

#: kinds the evaluation scores (contract kinds present in the corpus)
SCORED = ("button", "text_field", "checkbox", "radio", "combobox", "slider", "tab",
          "menu_item", "link", "text")
#: the kinds that must reach 0.9; the others 0.8
PRIMARY = ("button", "text_field", "checkbox", "radio")
CAPTIONED = ("text", "button", "checkbox", "radio", "tab", "menu_item", "link")
INDICATED = ("checkbox", "radio")


def words(text: str | None) -> list[str]:
    return re.findall(r"[a-z0-9]+", (text or "").lower())


def _box(t: dict[str, Any]) -> Box:
    return (int(t["x"]), int(t["y"]), int(t["w"]), int(t["h"]))


def _overlap(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / float(max(1, min(a[2] * a[3], b[2] * b[3])))


def _carries_label(e: Element, text: str) -> bool:
    want = words(text)
    got = set(words(e.label or e.text))
    return bool(want) and sum(w in got for w in want) >= max(1, round(0.75 * len(want)))


def score_pair(e: Element, t: dict[str, Any]) -> float:
    """How well detection `e` matches truth row `t` (0 = no match)."""
    if e.kind != t["kind"]:
        return 0.0
    tb = _box(t)
    if t["kind"] in INDICATED:
        inside = contains(tb, e.box, slack=2)
        return 1.0 + iou(e.box, tb) if inside and _carries_label(e, t["text"]) else 0.0
    v = iou(e.box, tb)
    return v if v >= 0.5 else 0.0


@dataclass
class Counts:
    found: int = 0  # detections of the kind
    found_ok: int = 0  # ... that match a truth
    truth: int = 0
    truth_ok: int = 0

    def add(self, o: Counts) -> None:
        self.found += o.found
        self.found_ok += o.found_ok
        self.truth += o.truth
        self.truth_ok += o.truth_ok

    @property
    def precision(self) -> float:
        return self.found_ok / self.found if self.found else (1.0 if not self.truth else 0.0)

    @property
    def recall(self) -> float:
        return self.truth_ok / self.truth if self.truth else 1.0


@dataclass
class ScreenScore:
    kinds: dict[str, Counts] = field(default_factory=dict)
    ocr_words: int = 0
    ocr_hits: int = 0
    misses: list[tuple[str, str, Box]] = field(default_factory=list)  # (kind, why, box)


def match(elements: list[Element], truth: list[dict[str, Any]], kind: str) -> Counts:
    """One-to-one matching of one kind; returns the counts."""
    dets = [e for e in elements if e.kind == kind]
    rows = [t for t in truth if t["kind"] == kind]
    pairs = sorted(((score_pair(e, t), i, j) for i, e in enumerate(dets)
                    for j, t in enumerate(rows)), reverse=True)
    used_d: set[int] = set()
    used_t: set[int] = set()
    for s, i, j in pairs:
        if s <= 0:
            break
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
    return Counts(len(dets), len(used_d), len(rows), len(used_t))


def ocr_accuracy(elements: list[Element], truth: list[dict[str, Any]]) -> tuple[int, int]:
    """(words of labels and captions, of those found in the overlapping detections)."""
    total = hits = 0
    for t in truth:
        if t["kind"] not in CAPTIONED or not t.get("text"):
            continue
        tb = _box(t)
        seen: set[str] = set()
        for e in elements:
            if e.kind == "window":
                continue
            if _overlap(e.box, tb) >= 0.5 or (e.label_box and _overlap(e.label_box, tb) >= 0.5):
                seen.update(words(e.text))
                seen.update(words(e.label))
        for w in words(t["text"]):
            total += 1
            hits += w in seen
    return total, hits


def score_screen(elements: list[Element], truth: list[dict[str, Any]]) -> ScreenScore:
    out = ScreenScore()
    for kind in SCORED:
        out.kinds[kind] = match(elements, truth, kind)
    out.ocr_words, out.ocr_hits = ocr_accuracy(elements, truth)
    return out


@dataclass
class Summary:
    screens: int = 0
    kinds: dict[str, Counts] = field(default_factory=dict)
    ocr_words: int = 0
    ocr_hits: int = 0

    def add(self, s: ScreenScore) -> None:
        self.screens += 1
        for k, c in s.kinds.items():
            self.kinds.setdefault(k, Counts()).add(c)
        self.ocr_words += s.ocr_words
        self.ocr_hits += s.ocr_hits

    @property
    def ocr(self) -> float:
        return self.ocr_hits / self.ocr_words if self.ocr_words else 1.0


def summarize(scores: Iterable[ScreenScore]) -> Summary:
    out = Summary()
    for s in scores:
        out.add(s)
    return out


def target(kind: str) -> float:
    return 0.9 if kind in PRIMARY else 0.8


def table(by_toolkit: dict[str, Summary]) -> str:
    """A markdown table: per kind, per toolkit and overall, precision / recall (n truth)."""
    names = [*by_toolkit, "all"]
    total = Summary()
    for s in by_toolkit.values():
        total.screens += s.screens
        for k, c in s.kinds.items():
            total.kinds.setdefault(k, Counts()).add(c)
        total.ocr_words += s.ocr_words
        total.ocr_hits += s.ocr_hits
    sums = [*by_toolkit.values(), total]
    lines = ["| kind | target | " + " | ".join(f"{n} P / R (n)" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for kind in SCORED:
        cells = []
        for s in sums:
            c = s.kinds.get(kind, Counts())
            cells.append(f"{c.precision:.2f} / {c.recall:.2f} ({c.truth})" if c.truth or c.found
                         else "-")
        tgt = "-" if kind == "text" else f">= {target(kind):.1f}"
        lines.append(f"| {kind} | {tgt} | " + " | ".join(cells) + " |")
    lines.append("| OCR words | >= 0.95 | " + " | ".join(
        f"{s.ocr:.3f} ({s.ocr_words})" for s in sums) + " |")
    lines.append("| screens | | " + " | ".join(str(s.screens) for s in sums) + " |")
    return "\n".join(lines)
