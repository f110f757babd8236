"""UI element detection with OpenCV: edges, contours, thresholds, morphology.

How it works, and why:
1. A morphological gradient (dilate - erode, 3x3) thresholded low turns every boundary on the
   screen into a thin ring: entries, buttons, check boxes and panels become closed rectangular
   rings, glyphs become small blobs. This works on any background colour (no global
   "background" assumption) and closes one-pixel gaps in 3D relief borders.
2. Outer contours of the connected components (RETR_CCOMP, parents only) whose polygon
   approximation is a rectangle filling >= 90% of its bounding box are *box candidates*.
3. Candidates are de-duplicated with IoU-based non-maximum suppression (relief borders give
   nested near-identical rectangles) and classified from their geometry and interior:
   - checkbox: a small square (8..24 px);
   - text_field: a wide box whose interior is mostly one flat colour *different* from the
     colour just outside it (an inset, usually white, well) -- or empty;
   - button: a box whose interior matches its surroundings or holds centred text;
   - window: a box covering a large share of the frame; icon: a small square with colour
     variance; anything else: other.
4. The remaining small blobs are glyphs; a horizontal closing joins them into words and lines,
   which become `text` elements unless they sit inside a box (then they are that box's text).
   A checkbox borrows the text line right next to it as its label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from producers.perception.change import to_gray
from producers.perception.types import INTERACTABLE, Box, Element, contains, iou, union_box


@dataclass
class DetectConfig:
    edge_threshold: int = 18
    min_box_w: int = 14
    min_box_h: int = 10
    rectangularity: float = 0.9
    nms_iou: float = 0.6
    text_join_px: int = 9  # horizontal gap joined into one text line
    max_text_h: int = 48
    window_share: float = 0.12  # box area / frame area above which it is a window


def _edge_map(gray: np.ndarray, cfg: DetectConfig) -> np.ndarray:
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    _, edges = cv2.threshold(grad, cfg.edge_threshold, 255, cv2.THRESH_BINARY)
    return edges


def _hole_share(contours: Sequence[np.ndarray], hierarchy: np.ndarray, i: int) -> float:
    """Area share of the outer box covered by the component's holes. All holes count: text
    touching a field's border splits its well into several (glyphs have only small ones)."""
    child = hierarchy[0][i][2]
    total = 0
    while child != -1:
        _, _, cw, ch = cv2.boundingRect(contours[child])
        total += cw * ch
        child = hierarchy[0][child][0]
    _, _, w, h = cv2.boundingRect(contours[i])
    return total / float(w * h)


def _is_rect(contour: np.ndarray, box: Box, cfg: DetectConfig, hole: float) -> bool:
    """A closed rectangular ring: rectangular outline and a large hole (glyphs have none)."""
    _, _, w, h = box
    if hole < (0.3 if max(w, h) <= 24 else 0.45):
        return False
    small = w < cfg.min_box_w or h < cfg.min_box_h
    if small and not (8 <= w <= 24 and 8 <= h <= 24):  # small squares may be check boxes
        return False
    area = cv2.contourArea(contour)
    if area < cfg.rectangularity * (w - 1) * (h - 1):
        return False
    approx = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True)
    return 4 <= len(approx) <= 6


def _is_round_indicator(contour: np.ndarray, box: Box, hole: float) -> bool:
    """A radio button's indicator: a small ring that is round or a diamond (its outline
    fills 45-88% of its square box; a check box's square fills all of it)."""
    _, _, w, h = box
    if not (8 <= w <= 26 and 8 <= h <= 26 and abs(w - h) <= 3) or hole < 0.1:
        return False
    fill = cv2.contourArea(contour) / float((w - 1) * (h - 1))
    if not 0.45 <= fill <= 0.88:
        return False
    # round and diamond indicators are mirror-symmetric; letters such as D or e are not
    mask = np.zeros((h, w), np.uint8)
    cv2.drawContours(mask, [contour], -1, 1, thickness=cv2.FILLED, offset=(-box[0], -box[1]))
    flipped = mask[:, ::-1]
    return (mask & flipped).sum() >= 0.85 * max(1, (mask | flipped).sum())


def _isolated(edges: np.ndarray, box: Box) -> bool:
    """Blank on both sides (a letter 'o' inside a word has neighbours within a few pixels;
    an indicator stands apart from what is left of it and from its label)."""
    x, y, w, h = box
    left = edges[y:y + h, max(0, x - 5):x]
    right = edges[y:y + h, x + w:x + w + 2]
    return not left.any() and not right.any()


def _extend_label(label: Element, texts: list[Element], boxes: list[Element]) -> list[Element]:
    """Grow a check box's label over the words that follow it on its row: wide fonts space
    words further apart than the fixed join of text lines. A gap wider than the text's own
    height, or any box in between, ends the label. Returns the texts without the merged."""
    merged = True
    while merged:
        merged = False
        x, y, w, h = label.box
        for t in texts:
            if t is label or abs((t.box[1] + t.box[3] / 2) - (y + h / 2)) > h / 2:
                continue
            gap = t.box[0] - (x + w)
            between = (x + w, y, max(0, gap), h)
            if 0 <= gap <= 0.8 * h and not any(iou(b.box, between) > 0 or
                                               contains(between, b.box) for b in boxes):
                label.box = union_box(label.box, t.box)
                texts = [o for o in texts if o is not t]
                merged = True
                break
    return texts


def _square_outline(contour: np.ndarray, w: int, h: int) -> bool:
    """Four straight sides filling the box: a check box's square, not a glyph like C or O."""
    if abs(w - h) > 2 or cv2.contourArea(contour) < 0.85 * (w - 1) * (h - 1):
        return False
    approx = cv2.approxPolyDP(contour, 0.08 * cv2.arcLength(contour, True), True)
    return len(approx) == 4


def _is_marked_square(contour: np.ndarray, box: Box) -> bool:
    """A check box whose mark touches its border (no hole left): a small, solid square."""
    _, _, w, h = box
    return 9 <= w <= 26 and 9 <= h <= 26 and _square_outline(contour, w, h)


def _at_left(frame: Box, ind: Box) -> bool:
    x, y, _w, h = frame
    return (contains(frame, ind) and ind[0] - x <= max(h, 3 * ind[2])
            and abs((ind[1] + ind[3] / 2) - (y + h / 2)) <= h / 4)


def _indicator_in(gray: np.ndarray, frame: Box, cfg: DetectConfig) -> Element | None:
    """An indicator at the left of a frame, found inside it (its ring may touch the frame's
    ring in the full-screen edge map)."""
    x, y, w, h = frame
    x0, y0 = x + 3, y + 3
    sub = gray[y0:y + h - 3, x0:x + w - 3]  # all of it: what follows decides isolation
    if sub.shape[0] < 8 or sub.shape[1] < 8:
        return None
    edges = _edge_map(sub, cfg)
    contours, hierarchy = cv2.findContours(edges, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    for i, c in enumerate(contours):
        if hierarchy[0][i][3] != -1:
            continue
        bx, by, bw, bh = cv2.boundingRect(c)
        box = (x0 + bx, y0 + by, bw, bh)
        if not (7 <= bw <= 26 and 7 <= bh <= 26 and abs(bw - bh) <= 3) or bx > h // 2:
            continue
        if not _at_left(frame, box) or not _isolated(edges, (bx, by, bw, bh)):
            continue
        shifted = c - np.array([bx, by]) + np.array([box[0], box[1]])
        if _is_round_indicator(shifted, box, _hole_share(contours, hierarchy, i)):
            return Element("", "radio", box, 0.7, True)
        if _square_outline(c, bw, bh):
            return Element("", "checkbox", box, 0.7, True)
    return None


def _drop_indicator_frames(gray: np.ndarray, edges: np.ndarray, boxes: list[Element],
                           cfg: DetectConfig) -> list[Element]:
    """A 'button' holding a check box or radio indicator at its left edge is the check
    button's highlight frame, not a button: drop it and keep the indicator. (A glyph with a
    hole, like the C of a caption, is no indicator: those touch their neighbours.)"""
    indicators = [b for b in boxes if b.kind in ("checkbox", "radio") and _isolated(edges, b.box)]
    keep = []
    for b in boxes:
        if b.kind == "button" and b.box[2] >= 2 * b.box[3]:
            if any(_at_left(b.box, i.box) for i in indicators):
                continue
            found = _indicator_in(gray, b.box, cfg)
            if found is not None:
                keep.append(found)
                continue
        keep.append(b)
    return keep


def nms(elements: list[Element], threshold: float) -> list[Element]:
    """Keep the most confident of boxes that overlap by IoU >= threshold (outer wins ties)."""
    order = sorted(elements, key=lambda e: (-e.confidence, -(e.box[2] * e.box[3])))
    kept: list[Element] = []
    for e in order:
        if all(iou(e.box, k.box) < threshold for k in kept):
            kept.append(e)
    return kept


def _ring_stats(gray: np.ndarray, box: Box) -> tuple[float, float, float, float]:
    """(interior flat share, interior mode, outside mode, interior edge density)."""
    x, y, w, h = box
    H, W = gray.shape
    inset = 3 if min(w, h) > 10 else 2
    inner = gray[y + inset:y + h - inset, x + inset:x + w - inset]
    if inner.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    hist = np.bincount(inner.ravel(), minlength=256)
    mode = int(hist.argmax())
    flat = float(hist[max(0, mode - 3):mode + 4].sum()) / inner.size
    ring = []
    if y - 2 >= 0:
        ring.append(gray[y - 2, x:x + w])
    if y + h + 1 < H:
        ring.append(gray[y + h + 1, x:x + w])
    if x - 2 >= 0:
        ring.append(gray[y:y + h, x - 2])
    if x + w + 1 < W:
        ring.append(gray[y:y + h, x + w + 1])
    outside = int(np.bincount(np.concatenate(ring)).argmax()) if ring else mode
    return flat, float(mode), float(outside), 1.0 - flat


def _relief(gray: np.ndarray, box: Box) -> float:
    """Top/left border brightness minus bottom/right: > 0 raised (button), < 0 sunken
    (entry). The box comes from a 3x3 gradient, so the drawn border sits one pixel inside."""
    x, y, w, h = box
    if w < 8 or h < 8:
        return 0.0
    g = gray.astype(np.float32)
    top = min(g[y + 1, x + 3:x + w - 3].mean(), g[y + 2, x + 3:x + w - 3].mean())
    left = min(g[y + 3:y + h - 3, x + 1].mean(), g[y + 3:y + h - 3, x + 2].mean())
    bottom = min(g[y + h - 2, x + 3:x + w - 3].mean(), g[y + h - 3, x + 3:x + w - 3].mean())
    right = min(g[y + 3:y + h - 3, x + w - 2].mean(), g[y + 3:y + h - 3, x + w - 3].mean())
    tl = max(g[y + 1, x + 3:x + w - 3].mean(), g[y + 3:y + h - 3, x + 1].mean())
    br = max(g[y + h - 2, x + 3:x + w - 3].mean(), g[y + 3:y + h - 3, x + w - 2].mean())
    # darkest lines decide a sunken well, brightest lines a raised bevel
    if (top + left) / 2 < (bottom + right) / 2 - 20:
        return -float((bottom + right) / 2 - (top + left) / 2)
    return float(tl - br) if tl - br > 20 else 0.0


def _text_layout(gray: np.ndarray, box: Box, mode: float) -> str:
    """'empty', 'centred' or 'left': where the ink inside a flat box sits. A button centres
    its caption; a field starts its text at the left edge or is empty (no bevel or well says
    which on a flat page)."""
    x, y, w, h = box
    inner = gray[y + 3:y + h - 3, x + 3:x + w - 3].astype(np.int16)
    if inner.size == 0:
        return "empty"
    cols = np.flatnonzero((np.abs(inner - int(mode)) > 60).sum(axis=0) >= 2)
    if cols.size == 0:
        return "empty"
    left, right = int(cols[0]), inner.shape[1] - 1 - int(cols[-1])
    return "centred" if abs(left - right) <= max(6, 0.12 * inner.shape[1]) else "left"


def _classify(gray: np.ndarray, rgb: np.ndarray | None, box: Box,
              frame_area: int, cfg: DetectConfig) -> tuple[str, float]:
    x, y, w, h = box
    aspect = w / max(h, 1)
    if 8 <= w <= 24 and 8 <= h <= 24 and abs(w - h) <= 3:
        return "checkbox", 0.8
    if w * h >= cfg.window_share * frame_area:
        return "window", 0.7
    flat, inner_mode, outside, _busy = _ring_stats(gray, box)
    contrast = abs(inner_mode - outside)
    relief = _relief(gray, box)
    if h <= 80 and aspect >= 1.0 and w <= 480 and relief > 0:
        return "button", 0.9  # a raised bevel
    if h <= 64 and aspect >= 2.5 and relief < 0:
        return "text_field", min(0.95, 0.6 + flat * 0.4)  # a sunken well, however full
    if h <= 64 and aspect >= 2.5 and flat >= 0.55 and contrast >= 12:
        return "text_field", 0.7
    if h <= 64 and aspect >= 2.5 and _text_layout(gray, box, inner_mode) != "centred":
        return "text_field", 0.65  # flat box, empty or text from the left: a field
    if h <= 80 and aspect >= 1.0 and w <= 480:
        return "button", 0.85 if contrast < 12 else 0.65
    if w <= 64 and h <= 64 and rgb is not None:
        crop = rgb[y:y + h, x:x + w].reshape(-1, 3)
        if float(crop.std(axis=0).mean()) > 30:
            return "icon", 0.5
    return "other", 0.4


def classical_elements(frame: np.ndarray, cfg: DetectConfig | None = None) -> list[Element]:
    """Candidate UI elements of one frame (RGB or gray), boxes in frame coordinates."""
    return classical_pass(frame, cfg)[0]


def classical_pass(frame: np.ndarray, cfg: DetectConfig | None = None) -> tuple[
        list[Element], np.ndarray, np.ndarray]:
    """(elements, gray frame, glyph mask): the glyph mask (small filled blobs that are no
    box) is what the learned stage builds its words and text lines from."""
    cfg = cfg or DetectConfig()
    gray = to_gray(frame)
    rgb = frame if frame.ndim == 3 else None
    H, W = gray.shape
    edges = _edge_map(gray, cfg)
    contours, hierarchy = cv2.findContours(edges, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[Element] = []
    glyph_mask = np.zeros_like(edges)
    if hierarchy is not None:
        for i, c in enumerate(contours):
            if hierarchy[0][i][3] != -1:
                continue  # a hole, not an outer boundary
            bx, by, bw, bh = cv2.boundingRect(c)
            box: Box = (bx, by, bw, bh)
            hole = _hole_share(contours, hierarchy, i)
            if _is_round_indicator(c, box, hole) and _isolated(edges, box):
                boxes.append(Element("", "radio", box, 0.75, True))
            elif _is_rect(c, box, cfg, hole):
                kind, conf = _classify(gray, rgb, box, H * W, cfg)
                boxes.append(Element("", kind, box, conf, kind in INTERACTABLE))
            elif _is_marked_square(c, box) and _isolated(edges, box):
                boxes.append(Element("", "checkbox", box, 0.7, True))  # a ticked box
            elif box[3] <= cfg.max_text_h and box[2] <= W // 2:
                cv2.drawContours(glyph_mask, [c], -1, 255, thickness=cv2.FILLED)
    boxes = nms(boxes, cfg.nms_iou)
    boxes = _drop_indicator_frames(gray, edges, boxes, cfg)
    # a glyph with a hole inside a button or field is not an element of its own
    holders = [b for b in boxes if b.kind in ("button", "text_field")]
    boxes = [b for b in boxes if b.kind in ("button", "text_field", "window")
             or not any(h is not b and contains(h.box, b.box) for h in holders)]
    # glyph blobs -> words/lines
    closed = cv2.morphologyEx(glyph_mask, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (cfg.text_join_px, 1)))
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    texts: list[Element] = []
    containers = [b for b in boxes if b.kind != "window"]
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < 5 or w < 3 or h > cfg.max_text_h or area < 12:
            continue
        tb = (int(x), int(y), int(w), int(h))
        if any(contains(b.box, tb, slack=1) for b in containers):
            continue
        texts.append(Element("", "text", tb, 0.6, False))
    for cb in (b for b in boxes if b.kind in ("checkbox", "radio")):
        for t in texts:
            same_row = abs((t.box[1] + t.box[3] / 2) - (cb.box[1] + cb.box[3] / 2)) <= cb.box[3]
            if same_row and 0 <= t.box[0] - (cb.box[0] + cb.box[2]) <= 16:
                texts = _extend_label(t, texts, boxes)
                cb.label_box = t.box
                break
    out = sorted(boxes + texts, key=lambda e: (e.box[1], e.box[0]))
    for i, e in enumerate(out):
        e.element_id = f"e{i}"
    return out, gray, glyph_mask
