"""Detection and OCR against Tk apps whose true widget geometry we know (real Xvfb,
real tesseract)."""

from __future__ import annotations

import re
import time

import pytest
from gui_helpers import precision_recall

from producers.perception.capture import ScreenCapture
from producers.perception.ocr import OcrConfig, TesseractOcr
from producers.perception.pipeline import Perception
from producers.perception.types import iou

pytestmark = [pytest.mark.gui]

APPS = [("panel_app", ()), ("form_app", ("--card", "4111 1111 1111 1111"))]


@pytest.mark.parametrize(("app", "args"), APPS)
def test_buttons_and_entries_match_ground_truth(tk_app, xvfb, app, args) -> None:
    a = tk_app(app, *args)
    state = a.state()
    obs = Perception(ScreenCapture(xvfb.display)).observe()
    assert obs is not None
    for kind in ("button", "text_field"):
        p, r = precision_recall(obs.elements, state, kind)
        assert p >= 0.9 and r >= 0.9, f"{app} {kind}: precision {p:.2f} recall {r:.2f}"


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


@pytest.mark.parametrize("backend", ["capi", "pytesseract"])
def test_ocr_reads_the_labels(tk_app, xvfb, backend) -> None:
    """Word accuracy over every label, button caption and heading of the panel app."""
    a = tk_app("panel_app")
    state = a.state()
    ocr = TesseractOcr(OcrConfig(backend=backend))
    assert ocr.backend == backend
    obs = Perception(ScreenCapture(xvfb.display), ocr=ocr).observe()
    assert obs is not None
    total = hit = 0
    misses = []
    for w in state["widgets"]:
        if not w["text"]:
            continue
        box = (w["x"], w["y"], w["w"], w["h"])
        best = max(obs.elements, key=lambda e: iou(e.box, box))
        got = _words(best.text or "")
        for word in _words(w["text"]):
            total += 1
            if word in got:
                hit += 1
            else:
                misses.append((word, best.text))
    assert total >= 20
    assert hit / total >= 0.95, f"word accuracy {hit}/{total}; misses {misses}"
    ok = [e for e in obs.elements if e.text]
    assert all(e.ocr_confidence and e.ocr_confidence > 50 for e in ok)
    assert all(e.words and all(iou(wd.box, wd.box) for wd in e.words) for e in ok)


def test_unchanged_screen_sends_nothing_and_typing_is_a_small_change(tk_app, xvfb) -> None:
    import pyautogui

    a = tk_app("form_app")
    name = next(w for w in a.state()["widgets"] if w["name"] == "name")
    pyautogui.moveTo(name["x"] + 20, name["y"] + name["h"] // 2)
    time.sleep(0.2)
    p = Perception(ScreenCapture(xvfb.display))
    assert p.observe() is not None
    assert p.observe() is None  # nothing changed: no frame
    pyautogui.click()
    pyautogui.write("Zed", interval=0.01)
    a.wait_for(lambda s: s["values"]["name"] == "Zed")
    obs = None
    for _ in range(20):
        obs = p.observe() or obs
        if obs and obs.sees_text("Zed"):
            break
    assert obs is not None and obs.change.ratio < 0.01
    field = (name["x"], name["y"], name["w"], name["h"])
    assert all(iou(r, field) > 0 for r in obs.change.regions), obs.change.regions
    typed = next(e for e in obs.elements if e.kind == "text_field" and iou(e.box, field) > 0.5)
    assert typed.text == "Zed" and typed.label == "Name"


def test_region_capture_reports_screen_coordinates(tk_app, xvfb) -> None:
    a = tk_app("form_app")
    state = a.state()
    region = (150, 90, 600, 340)  # the entries and buttons, not the labels on the left
    obs = Perception(ScreenCapture(xvfb.display, region=region)).observe()
    assert obs is not None and obs.size == (600, 340)
    for kind in ("button", "text_field"):
        p, r = precision_recall(obs.elements, state, kind)
        assert p >= 0.9 and r >= 0.9, (kind, p, r)
    assert obs.change.regions == [region]
    submit = obs.find("Submit Order", ("button",))
    truth = next(w for w in state["widgets"] if w["name"] == "submit")
    assert submit is not None
    assert iou(submit.box, (truth["x"], truth["y"], truth["w"], truth["h"])) > 0.8


def test_a_hovered_button_is_still_a_button(tk_app, xvfb) -> None:
    """Tk lightens a button under the pointer; its raised bevel still says 'button'."""
    import pyautogui

    a = tk_app("form_app")
    state = a.state()
    submit = next(w for w in state["widgets"] if w["name"] == "submit")
    pyautogui.moveTo(submit["x"] + 10, submit["y"] + 10)
    time.sleep(0.3)
    obs = Perception(ScreenCapture(xvfb.display)).observe()
    pyautogui.moveTo(900, 700)
    assert obs is not None
    for kind in ("button", "text_field"):
        p, r = precision_recall(obs.elements, state, kind)
        assert p >= 0.9 and r >= 0.9, (kind, p, r)
