"""Perception logic on synthetic images: fast, no X server, no tesseract."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from producers.agent.task import TaskError, load_task, parse_sentence
from producers.execution.executor import RateLimiter
from producers.perception.change import ChangeDetector, dhash, hamming, phash
from producers.perception.detect import detect_elements
from producers.perception.redact import (
    blur_boxes,
    find_secrets,
    looks_masked,
    luhn_ok,
    mask_text,
)
from producers.perception.types import merge_boxes


def screen() -> np.ndarray:
    img = np.full((400, 640, 3), 217, np.uint8)
    # an entry: dark top/left border, white well
    cv2.rectangle(img, (100, 50), (400, 76), (153, 153, 153), 1)
    cv2.rectangle(img, (101, 51), (399, 75), (255, 255, 255), -1)
    # a raised button with a label
    cv2.rectangle(img, (100, 120), (230, 152), (130, 130, 130), 1)
    cv2.line(img, (100, 120), (230, 120), (255, 255, 255), 1)
    cv2.line(img, (100, 120), (100, 152), (255, 255, 255), 1)
    cv2.putText(img, "Submit", (125, 143), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    # a check box
    cv2.rectangle(img, (100, 200), (112, 212), (130, 130, 130), 1)
    cv2.rectangle(img, (101, 201), (111, 211), (255, 255, 255), -1)
    cv2.putText(img, "plain text here", (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    return img


def test_unchanged_frame_is_cheap_and_reports_nothing() -> None:
    img = screen()
    det = ChangeDetector()
    first = det.check(img)
    assert first.changed and first.first and first.regions == [(0, 0, 640, 400)]
    t0 = time.perf_counter()
    again = det.check(img.copy())
    assert time.perf_counter() - t0 < 0.5  # sanity only; the bench measures the real figure
    assert not again.changed and again.regions == []


def test_changed_regions_are_found_and_merged() -> None:
    img = screen()
    det = ChangeDetector()
    det.check(img)
    nxt = img.copy()
    cv2.putText(nxt, "Al", (110, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    nxt[350:360, 500:520] = 0
    ch = det.check(nxt)
    assert ch.changed and len(ch.regions) == 2
    (x0, y0, w0, h0), (x1, y1, _w1, _h1) = ch.regions
    assert 100 <= x0 <= 112 and 50 <= y0 <= 60 and w0 < 60 and h0 < 30
    assert 490 <= x1 <= 500 and 340 <= y1 <= 350
    # a change below the threshold is noise: not a frame
    faint = nxt.copy()
    faint[10, 10] = faint[10, 10] + 3
    assert not det.check(faint).changed


def test_hashes_are_stable_and_sensitive() -> None:
    img = screen()
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert dhash(g) == dhash(g.copy()) and len(dhash(g)) == 16
    other = np.fliplr(g).copy()
    assert hamming(phash(g), phash(other)) > 4
    assert merge_boxes([(0, 0, 10, 10), (12, 0, 5, 5), (100, 100, 3, 3)], pad=3) == [
        (0, 0, 17, 10), (100, 100, 3, 3)]


def test_detection_on_a_synthetic_screen() -> None:
    els = detect_elements(screen())
    kinds = {e.kind: e.box for e in els if e.kind != "text"}
    assert kinds["text_field"] == pytest.approx((99, 49, 303, 29), abs=2)
    assert kinds["button"] == pytest.approx((99, 119, 133, 35), abs=2)
    assert kinds["checkbox"] == pytest.approx((99, 199, 15, 15), abs=2)
    texts = [e for e in els if e.kind == "text"]
    assert len(texts) == 1 and texts[0].box[1] < 300 < texts[0].box[1] + texts[0].box[3]
    assert all(e.interactable == (e.kind != "text") for e in els)


def test_secret_patterns() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    masked, n = mask_text("card 4111 1111 1111 1111, not 1234 5678 9012 3456")
    assert n == 1 and masked == "card [REDACTED:card], not 1234 5678 9012 3456"
    for token in ("sk-proj-abcdefghijklmnopqrstu", "AKIAIOSFODNN7EXAMPLE",
                  "ghp_" + "a1B2" * 9, "xoxb-1234567890-abcdef"):
        assert mask_text(f"key={token} end")[0] == f"key=[REDACTED:{find_secrets(token)[0][2]}] end"
    assert mask_text("mail bob@example.org", emails=True)[0] == "mail [REDACTED:email]"
    assert mask_text("mail bob@example.org", emails=False)[0] == "mail bob@example.org"


def test_masked_glyphs_are_recognised() -> None:
    field = np.full((20, 200), 255, np.uint8)
    for i in range(8):
        cv2.circle(field, (10 + i * 12, 10), 3, 0, -1)
    assert looks_masked(field)
    text = np.full((20, 200), 255, np.uint8)
    cv2.putText(text, "hunter2", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    assert not looks_masked(text)
    assert not looks_masked(np.full((20, 200), 255, np.uint8))


def test_blur_destroys_the_box_content() -> None:
    img = screen()
    out = blur_boxes(img, [(110, 125, 110, 25)])
    assert not np.array_equal(out[125:150, 110:220], img[125:150, 110:220])
    assert np.array_equal(out[300:, :], img[300:, :])  # elsewhere untouched
    assert out[128:148, 115:215].std() < img[128:148, 115:215].std() / 2


def test_task_files(tmp_path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text('goal: g\nsteps:\n  - type "Alice" into the field labelled "Name"\n'
                 "  - {click: Submit Order, kind: button}\n  - expect text \"Thank you\"\n")
    t = load_task(p)
    assert [s.kind for s in t.steps] == ["type", "click", "expect"]
    assert (t.steps[0].text, t.steps[0].label) == ("Alice", "Name")
    assert t.steps[1].target_kind == "button" and t.steps[2].text == "Thank you"
    assert parse_sentence("press ctrl+shift+s").keys == ["ctrl", "shift", "s"]
    assert parse_sentence("scroll down 2").amount == -2
    with pytest.raises(TaskError):
        parse_sentence("make me a sandwich")


def test_rate_limiter_spaces_actions() -> None:
    lim = RateLimiter(20.0)
    t0 = time.monotonic()
    for _ in range(5):
        lim.acquire()
    assert time.monotonic() - t0 >= 4 * 0.05 * 0.9
