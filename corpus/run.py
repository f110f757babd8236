"""Render seeds (each toolkit in its own process on an X display) and score perception on them.

Used by `bench/bench_perception.py --corpus` (held-out seeds) and by the corpus test (a few
tuning seeds). Rendered screens are cached by seed in a folder: the corpus is deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from corpus.evaluate import ScreenScore, Summary, score_screen
from producers.perception.types import Element

Perceive = Callable[[np.ndarray], list[Element]]


def render(toolkit: str, seeds: list[int], out: Path, display: str, log: Path) -> None:
    """Render the seeds that are not in `out` yet, in a child process on `display`."""
    todo = [s for s in seeds if not (out / f"{toolkit}-{s}.json").exists()]
    if not todo:
        return
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DISPLAY": display}
    with log.open("ab") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "corpus.render", toolkit, "--seeds",
             ",".join(map(str, todo)), "--out", str(out)],
            stdout=f, stderr=subprocess.STDOUT, env=env, timeout=60 + 5 * len(todo))
    if proc.returncode != 0:
        raise RuntimeError(f"rendering {toolkit} seeds failed (exit {proc.returncode}); "
                           f"see {log}")


def load(out: Path, toolkit: str, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image

    meta = json.loads((out / f"{toolkit}-{seed}.json").read_text())
    image = np.asarray(Image.open(out / f"{toolkit}-{seed}.png").convert("RGB"))
    return image, meta


def default_perceive() -> Perceive:
    """Detection then OCR, as `Perception.observe` runs them on a changed frame."""
    from producers.perception.detect import detect_elements
    from producers.perception.ocr import TesseractOcr

    ocr = TesseractOcr()

    def perceive(frame: np.ndarray) -> list[Element]:
        elements = detect_elements(frame)
        ocr.read_elements(frame, elements)
        return elements

    return perceive


def evaluate(out: Path, toolkit: str, seeds: list[int],
             perceive: Perceive | None = None) -> tuple[Summary, list[ScreenScore]]:
    perceive = perceive or default_perceive()
    summary = Summary()
    scores = []
    for seed in seeds:
        image, meta = load(out, toolkit, seed)
        s = score_screen(perceive(image), meta["truth"])
        summary.add(s)
        scores.append(s)
    return summary, scores
