"""Redaction before anything leaves the machine (pure image/text logic, no I/O).

What is redacted, and how it is found:
- **Password fields.** A text field is a password field when EITHER its label (the text element
  just left of it on the same row, or right above it) names a secret ("password", "passcode",
  "PIN", "secret", "token", "API key"), OR its content looks masked: the glyphs inside are
  >= 2 connected components of identical size on one baseline, roughly square (bullets or
  asterisks), which real text never is. The two signals cover each other: the label works for an
  empty or unlabelled-looking masked field, the glyph test for a field whose label OCR missed.
  The whole field is blurred and its text dropped.
- **Secret patterns in OCR text**: card numbers (13-19 digits, spaces/dashes allowed, Luhn
  valid), API tokens (`sk-...`, `sk_live_...`, `AKIA...`, `ghp_...`/`gho_...`, `xox?-...`,
  private-key headers) and, when enabled, e-mail addresses. Matches are replaced by
  `[REDACTED:<kind>]` in the text and the words carrying them are blurred.
- Blurring pixelates then Gaussian-blurs the box (plus a margin) so the glyphs are gone, not
  merely softened; the thumbnail and the stored full image are both made from the redacted
  frame.
- The agent's own text (typed values, plan steps) goes through `mask_text`; a value typed into a
  password field is replaced by bullets of the same length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import overload

import cv2
import numpy as np

from producers.perception.change import to_gray
from producers.perception.types import Box, Element

SECRET_LABEL = re.compile(r"pass(word|phrase|code)?|\bpin\b|secret|token|api[ _-]?key|cvv|cvc",
                          re.IGNORECASE)
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("api_token", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}")),
    ("api_token", re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}")),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
]
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
BULLET = "•"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_secrets(text: str, emails: bool = True) -> list[tuple[int, int, str]]:
    """(start, end, kind) spans of secrets in `text`, non-overlapping, in order."""
    spans: list[tuple[int, int, str]] = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            spans.append((m.start(), m.end(), "card"))
    for kind, pat in _PATTERNS:
        spans += [(m.start(), m.end(), kind) for m in pat.finditer(text)]
    if emails:
        spans += [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
    spans.sort()
    out: list[tuple[int, int, str]] = []
    for s in spans:
        if out and s[0] < out[-1][1]:
            continue
        out.append(s)
    return out


@overload
def mask_text(text: str, emails: bool = True) -> tuple[str, int]: ...
@overload
def mask_text(text: None, emails: bool = True) -> tuple[None, int]: ...
@overload
def mask_text(text: str | None, emails: bool = True) -> tuple[str | None, int]: ...
def mask_text(text: str | None, emails: bool = True) -> tuple[str | None, int]:
    """Text with every secret replaced by [REDACTED:<kind>], and how many were replaced."""
    if not text:
        return text, 0
    spans = find_secrets(text, emails)
    for start, end, kind in reversed(spans):
        text = f"{text[:start]}[REDACTED:{kind}]{text[end:]}"
    return text, len(spans)


def looks_masked(gray_crop: np.ndarray) -> bool:
    """True when the crop's glyphs are identical, square-ish blobs on one line (bullets)."""
    if gray_crop.size == 0 or min(gray_crop.shape) < 6:
        return False
    _, bw = cv2.threshold(gray_crop, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if float(bw.mean()) > 200:  # mostly dark: light-on-dark field, invert
        bw = 255 - bw
    _, _, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    tall = 0.9 * bw.shape[0]  # borders and the cursor are not glyphs
    blobs = [s for s in stats[1:] if s[4] >= 4 and s[3] <= 2.5 * s[2] and s[3] < tall]
    if len(blobs) < 2:
        return False
    ws = np.array([b[2] for b in blobs])
    hs = np.array([b[3] for b in blobs])
    areas = np.array([b[4] for b in blobs], dtype=float)
    cy = np.array([b[1] + b[3] / 2 for b in blobs])
    return bool(np.ptp(ws) <= 1 and np.ptp(hs) <= 1 and np.ptp(cy) <= 1.5
                and areas.std() <= 0.15 * areas.mean() and abs(ws.mean() - hs.mean()) <= 2)


def label_of(field_el: Element, elements: list[Element]) -> Element | None:
    """The text element labelling a field: nearest on its left on the same row, else above."""
    fx, fy, fw, fh = field_el.box
    fcy = fy + fh / 2
    best: tuple[float, Element] | None = None
    for t in elements:
        if t.kind != "text" or not t.text:
            continue
        tx, ty, tw, th = t.box
        if abs(ty + th / 2 - fcy) <= fh * 0.6 and tx + tw <= fx + 2 and fx - (tx + tw) <= 300:
            d = fx - (tx + tw)
        elif 0 <= fy - (ty + th) <= 30 and tx < fx + fw and tx + tw > fx - 10:
            d = 400 + fy - (ty + th)  # above: only when nothing sits on the left
        else:
            continue
        if best is None or d < best[0]:
            best = (d, t)
    return best[1] if best else None


@dataclass
class Redaction:
    image: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    password_fields: list[str] = field(default_factory=list)  # element ids
    text_matches: int = 0


def blur_boxes(image: np.ndarray, boxes: list[Box], margin: int = 3) -> np.ndarray:
    """A copy of `image` with each box pixelated and blurred beyond recognition."""
    out = image.copy()
    H, W = out.shape[:2]
    for x, y, w, h in boxes:
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(W, x + w + margin), min(H, y + h + margin)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = out[y0:y1, x0:x1]
        small = cv2.resize(roi, (max(1, (x1 - x0) // 16), 1), interpolation=cv2.INTER_AREA)
        roi = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(x1 - x0, y1 - y0) // 2) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (k, k), 0)
    return out


class Redactor:
    def __init__(self, emails: bool = True) -> None:
        self.emails = emails

    def apply(self, frame: np.ndarray, elements: list[Element]) -> Redaction:
        """Mask secrets in `elements` (in place) and return the blurred frame."""
        gray = to_gray(frame)
        boxes: list[Box] = []
        pw_ids: list[str] = []
        matches = 0
        for e in elements:
            if e.kind == "text_field":
                lab = label_of(e, elements)
                e.label = lab.text if lab else None
                x, y, w, h = e.box
                inner = gray[y + 3:y + h - 3, x + 3:x + w - 3]
                if (e.label and SECRET_LABEL.search(e.label)) or looks_masked(inner):
                    e.redacted = True
                    e.text, e.words, e.ocr_confidence = None, [], None
                    boxes.append(e.box)
                    pw_ids.append(e.element_id)
                    continue
            if not e.text:
                continue
            spans = find_secrets(e.text, self.emails)
            if not spans:
                continue
            matches += len(spans)
            e.redacted = True
            # words whose character range overlaps a secret span are blurred
            pos = 0
            for word in e.words:
                start, end = pos, pos + len(word.text)
                pos = end + 1
                if any(start < s_end and s_start < end for s_start, s_end, _ in spans):
                    boxes.append(word.box)
            if not e.words:
                boxes.append(e.box)
            e.text, _ = mask_text(e.text, self.emails)
            e.words = [w for w in e.words if not find_secrets(w.text, self.emails)]
        image = blur_boxes(frame, boxes) if boxes else frame
        return Redaction(image, boxes, pw_ids, matches)
