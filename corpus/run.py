"""Render seeds (each toolkit in its own process on an X display) and score perception on them.

Used by `bench/bench_perception.py --corpus` (held-out seeds) and by the corpus test (a few
tuning seeds). Rendered screens are cached by seed in a folder: the corpus is deterministic.

    python -m corpus.run --seeds 1200-1599 [--misses combobox,tab]

scores TUNING seeds (the model is trained on 0-1199; held-out seeds are refused) per kind and
toolkit, and lists each missed widget and wrong detection of the kinds named, with what was
detected over it: where a developer looks for causes.
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

from corpus.evaluate import ScreenScore, Summary, score_pair, score_screen
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


def misses(elements: list[Element], truth: list[dict[str, Any]], kind: str) -> list[str]:
    """Missed true widgets and wrong detections of one kind, each with what overlaps it."""
    from producers.perception.types import iou

    def box(t: dict[str, Any]) -> tuple[int, int, int, int]:
        return (t["x"], t["y"], t["w"], t["h"])

    dets = [e for e in elements if e.kind == kind]
    rows = [t for t in truth if t["kind"] == kind]
    out = []
    for t in rows:
        if not any(score_pair(e, t) > 0 for e in dets):
            over = [(e.kind, e.box, round(iou(e.box, box(t)), 2)) for e in elements
                    if iou(e.box, box(t)) > 0.2]
            out.append(f"missed {kind} {t.get('cls', '')} {box(t)}: detected {over}")
    for e in dets:
        if not any(score_pair(e, t) > 0 for t in rows):
            over = [(t["kind"], box(t), round(iou(e.box, box(t)), 2)) for t in truth
                    if iou(e.box, box(t)) > 0.1]
            out.append(f"wrong {kind} {e.box}: truth {over}")
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    from corpus import split
    from corpus.evaluate import table
    from corpus.render import parse_seeds
    from corpus.train import CACHE, render_tuning

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", required=True, help="tuning seeds, e.g. 1200-1599")
    ap.add_argument("--misses", default="", help="kinds whose failures to list")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    render_tuning(seeds, CACHE)  # refuses held-out seeds
    perceive = default_perceive()
    by_toolkit = {}
    for toolkit in split.TOOLKITS:
        by_toolkit[toolkit] = Summary()
        for seed in seeds:
            image, meta = load(CACHE, toolkit, seed)
            elements = perceive(image)
            by_toolkit[toolkit].add(score_screen(elements, meta["truth"]))
            for kind in filter(None, args.misses.split(",")):
                for line in misses(elements, meta["truth"], kind):
                    print(f"{toolkit}-{seed} {line}")
    print(table(by_toolkit))


if __name__ == "__main__":
    main()
