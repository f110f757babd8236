"""UI element detection: classical proposals, classified by a small learned forest.

Why: hand-tuned rules (producers.perception.classical) plateaued well below the accuracy the
agent needs across toolkits, themes, fonts and scalings. Here every place a widget could be
(proposals: edge rings at two thresholds, their holes, flat colour regions, text lines, words
and the free cells around words, and the classical detector's own boxes) gets one feature row
(features.py), a random forest trained on the tuning screens of the corpus (corpus.train)
scores each row per kind, and the boxes are kept greedily by score. The classical detector
is one voter among the features, and its text lines carry the captions.

Then, as before: text lines that no element holds become `text` elements, and a check box or
radio indicator borrows the text line just right of it as its label.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from producers.perception.classical import DetectConfig, classical_pass
from producers.perception.features import features, text_height
from producers.perception.forest import MODEL, Forest
from producers.perception.proposals import Maps, make_maps, propose
from producers.perception.types import INTERACTABLE, Box, Element, contains, iou

__all__ = ["Candidates", "DetectConfig", "candidates", "detect_elements"]

INDICATORS = ("checkbox", "radio")


@lru_cache(maxsize=4)
def load_model(path: str = str(MODEL)) -> Forest:
    from pathlib import Path

    return Forest.load(Path(path))


class Candidates:
    """What the learned stage sees of one frame: proposals, their features, classical pass."""

    def __init__(self, boxes: list[Box], X: np.ndarray, classic: list[Element],
                 lines: list[Box], maps: Maps) -> None:
        self.boxes, self.X, self.classic, self.lines, self.maps = boxes, X, classic, lines, maps


def candidates(frame: np.ndarray, cfg: DetectConfig) -> Candidates:
    classic, gray, glyphs = classical_pass(frame, cfg)
    maps = make_maps(frame, gray, glyphs, cfg.edge_threshold)
    boxes, bits, lines = propose(maps, [e.box for e in classic if e.kind != "window"])
    X = features(maps, boxes, bits, lines, classic)
    return Candidates(boxes, X, classic, lines, maps)


def _inside_share(a: Box, b: Box) -> float:
    """The share of the smaller box that lies inside the other."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def _overlaps(a: Element, b: Element) -> bool:
    if a.kind in INDICATORS or b.kind in INDICATORS:
        small, big = (a, b) if a.box[2] * a.box[3] <= b.box[2] * b.box[3] else (b, a)
        if small.kind in INDICATORS and big.kind in INDICATORS:
            return iou(a.box, b.box) > 0.1 or contains(big.box, small.box, slack=1)
        return iou(a.box, b.box) >= 0.5
    if (a.kind == "text") != (b.kind == "text"):
        text, other = (a, b) if a.kind == "text" else (b, a)
        if contains(other.box, text.box, slack=2):
            return False  # a caption inside its widget (a tab's fills most of it)
    # a part of a widget taken for the same kind (a scale's trough inside the scale with
    # its value) is that widget again
    return iou(a.box, b.box) >= 0.5 or (a.kind == b.kind and _inside_share(a.box, b.box) >= 0.9)


def select(c: Candidates, proba: np.ndarray, model: Forest) -> list[Element]:
    """Greedy by score: a proposal's best kind, if it scores enough, unless it overlaps a
    better one."""
    kinds = model.classes
    best = proba.argmax(axis=1)
    score = proba[np.arange(len(best)), best]
    order = np.argsort(-score, kind="stable")
    kept: list[Element] = []
    rivals: list[list[Element]] = []
    for i in order:
        k = kinds[best[i]]
        if k == "none" or score[i] < model.min_score[best[i]]:
            continue
        e = Element("", k, c.boxes[i], float(score[i]), k in INTERACTABLE)
        hit = next((j for j, o in enumerate(kept) if _overlaps(e, o)), None)
        if hit is None:
            kept.append(e)
            rivals.append([e])
        elif kept[hit].kind == k:
            rivals[hit].append(e)
    # of near-equal scores, the widest box: a part of a widget (the blank of a field right
    # of its text, a button's fill inside its focus ring) looks much like the whole, and a
    # box holding the part is the whole unless it scores far lower
    out = []
    for e, group in zip(kept, rivals, strict=True):
        close = [r for r in group if (r.confidence >= 0.85 * e.confidence and (
            e.kind in INDICATORS or iou(r.box, e.box) >= 0.5))
            or (e.kind not in INDICATORS and r.confidence >= 0.7 * e.confidence
                and contains(r.box, e.box, slack=2))]
        out.append(max(close, key=lambda r: r.box[2] * r.box[3]))
    return out


def _texts(c: Candidates, kept: list[Element]) -> list[Element]:
    """Text lines that no detected element holds or overlaps. All glyph lines count, also
    those inside a box the classical pass took for a container (a check button's highlight
    frame holds its label)."""
    holders = [e for e in kept if e.kind != "text"]
    taken = [e for e in kept if e.kind == "text"]
    out = []
    for box in c.lines:
        if any(contains(h.box, box, slack=2) or iou(h.box, box) >= 0.3 for h in holders):
            continue
        if any(iou(o.box, box) >= 0.3 for o in taken):
            continue
        out.append(Element("", "text", box, 0.6, False))
    return out


def label_box(cb: Box, edges: np.ndarray, stops: list[Box], th: float) -> Box | None:
    """The label right of an indicator, read off the edge map along the indicator's rows:
    ink from just right of the indicator up to a blank gap wider than 1.3 text heights `th`
    (words are closer), a frame's side (a column inked over the whole band), or the next
    element on the row; its height is the run of inked rows through the indicator's centre."""
    x, y, w, h = cb
    H, W = edges.shape
    x0 = x + w + 3  # past the indicator's ring (the detected box may be its inner square)
    limit = min(W, x0 + 40 * max(h, int(th)))
    for s in stops:
        if s[0] >= x0 - 2 and s[1] < y + h and s[1] + s[3] > y:
            limit = min(limit, s[0] - 3)
    if limit - x0 < 3:
        return None
    core = edges[y + 1:y + h - 1, x0:limit]
    reach = int(0.5 * max(h, th)) + 3  # a frame's side is taller than any glyph
    cy = y + h // 2
    y0, y1 = max(0, cy - reach), min(H, cy + reach)
    walls = np.flatnonzero(edges[y0:y1, x0:limit].sum(axis=0) >= 0.95 * (y1 - y0))
    end = int(walls[0]) if walls.size else limit - x0
    ink = np.flatnonzero(core[:, :end].any(axis=0))
    if ink.size == 0 or ink[0] > 1.5 * max(h, th) + 4:
        return None
    gaps = np.flatnonzero(np.diff(ink) > max(8, 1.3 * th))
    first, last = int(ink[0]), int(ink[gaps[0]]) if gaps.size else int(ink[-1])
    rows = np.asarray(edges[y0:y1, x0 + first:x0 + last + 1].any(axis=1), bool)
    mid = cy - y0
    top, bottom = mid, mid
    while top > 0 and rows[top - 1]:
        top -= 1
    while bottom < len(rows) - 1 and rows[bottom + 1]:
        bottom += 1
    return (x0 + first, y0 + top, last - first + 1, bottom - top + 1)


def _label(cb: Element, edges: np.ndarray, others: list[Element], th: float) -> None:
    stops = [o.box for o in others if o is not cb and o.kind != "text"]
    cb.label_box = label_box(cb.box, edges, stops, th)


def detect_elements(frame: np.ndarray, cfg: DetectConfig | None = None,
                    model: Forest | None = None) -> list[Element]:
    """UI elements of one frame (RGB or gray), boxes in frame coordinates."""
    cfg = cfg or DetectConfig()
    model = model or load_model()
    c = candidates(frame, cfg)
    kept = select(c, model.predict_proba(c.X), model)
    texts = [e for e in kept if e.kind == "text"] + _texts(c, kept)
    others = [e for e in kept if e.kind != "text"]
    th = text_height(c.lines)
    for cb in (e for e in others if e.kind in INDICATORS):
        _label(cb, c.maps.edges_hi, others, th)
    out = sorted(others + texts, key=lambda e: (e.box[1], e.box[0]))
    for i, e in enumerate(out):
        e.element_id = f"e{i}"
    return out
