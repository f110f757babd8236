"""Train the detector's forest on tuning screens of the corpus, deterministically.

    python -m corpus.train [--screens 1200] [--out producers/perception/models/kinds.npz]

Renders the tuning seeds that are not cached yet (each toolkit in its own process on an Xvfb
of its own), turns every proposal of every screen into a feature row (the detector's own
code: producers.perception.detect.candidates) labelled from the truth, fits a random forest
with a fixed seed on one thread (rare kinds weighted up, `class_weights`), picks each kind's
minimum score on the last fifth of the screens (kept out of the fit), refits on all and
writes the flattened forest. Same seeds and
same library versions give the same file byte for byte. Only tuning seeds are ever read.

Labels: a proposal is a check box or radio button when it is a small square-ish box at the
left of that widget's true box (the indicator); otherwise it is the kind of the true box it
overlaps with IoU >= 0.7, "none" below 0.5 (what the evaluation would not count), and left
out of the fit in between: a box that only partly fits (the blank part of a field right of
its text) must not learn to score like the whole widget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from corpus import split
from corpus.evaluate import SCORED
from producers.perception.types import Box, contains, iou

CLASSES = ("none", "button", "text_field", "checkbox", "radio", "combobox", "slider", "tab",
           "menu_item", "link", "text")
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "corpus" / "tuning"
POS_IOU, NEG_IOU = 0.7, 0.5
FOREST = {"n_estimators": 40, "min_samples_leaf": 3, "max_leaf_nodes": 1500,
          "max_features": "sqrt", "random_state": 0, "n_jobs": 1}


def _is_indicator(b: Box, tb: Box) -> bool:
    x, _y, w, h = b
    return (contains(tb, b, slack=2) and abs(w - h) <= max(3, 0.2 * max(w, h))
            and 6 <= w <= 40 and h <= tb[3] + 2 and x - tb[0] <= 0.6 * tb[3] + 6)


def label(boxes: list[Box], truth: list[dict[str, Any]]) -> np.ndarray:
    """Class index per proposal, -1 for 'leave out'."""
    rows = [((t["x"], t["y"], t["w"], t["h"]), t["kind"]) for t in truth]
    out = np.zeros(len(boxes), np.int64)
    for i, b in enumerate(boxes):
        ind = [k for tb, k in rows if k in ("checkbox", "radio") and _is_indicator(b, tb)]
        if ind:
            out[i] = CLASSES.index(ind[0])
            continue
        best, kind = 0.0, "none"
        for tb, k in rows:
            if k in ("checkbox", "radio"):
                continue
            v = iou(b, tb)
            if v > best:
                best, kind = v, k
        if best >= POS_IOU:
            out[i] = CLASSES.index(kind) if kind in SCORED else 0
        elif best >= NEG_IOU:
            out[i] = -1
    return out


def screen_rows(out: Path, toolkit: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from corpus.run import load
    from producers.perception.detect import DetectConfig, candidates

    image, meta = load(out, toolkit, seed)
    c = candidates(image, DetectConfig())
    return c.X, label(c.boxes, meta["truth"])


def dataset(seeds: list[int], out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, screen index) over both toolkits, rows left out dropped."""
    Xs, ys, gs = [], [], []
    for g, (toolkit, seed) in enumerate((t, s) for s in seeds for t in split.TOOLKITS):
        X, y = screen_rows(out, toolkit, seed)
        keep = y >= 0
        Xs.append(X[keep])
        ys.append(y[keep])
        gs.append(np.full(int(keep.sum()), g))
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(gs)


#: no kind weighs more than this many times a row of the commonest widget kinds
MAX_WEIGHT = 4.0
#: the share of a kind's held-back rows above its minimum score that must be right
ROW_PRECISION = 0.9


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Rare kinds weigh more: a kind's rows weigh sqrt(rows of the commonest kind / its own
    rows), capped. Without it a combo box's field part, a selected tab or a link, a few
    hundred rows among 17000 of fields and buttons, loses every close vote."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    top = counts[1:].max()
    return {k: 1.0 if k == 0 or counts[k] == 0 else
            float(min(MAX_WEIGHT, max(1.0, np.sqrt(top / counts[k]))))
            for k in range(len(CLASSES))}


def fit(X: np.ndarray, y: np.ndarray):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**FOREST, class_weight=class_weights(y)).fit(X, y)


def min_scores(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per kind, the lowest score whose detections (argmax) are still >= ROW_PRECISION
    correct on held-back rows, so the selection's precision is set on data the fit did not
    see. Rows undercount a detection's precision: a part of a widget (a scale's trough
    without its value) is a wrong row, but the selection drops it inside the whole."""
    best = proba.argmax(axis=1)
    score = proba.max(axis=1)
    out = np.full(len(CLASSES), 0.5, np.float32)
    for k in range(1, len(CLASSES)):
        mine = best == k
        if not mine.any():
            continue
        s, ok = score[mine], (y[mine] == k)
        order = np.argsort(-s, kind="stable")
        prec = np.cumsum(ok[order]) / np.arange(1, len(order) + 1)
        good = np.flatnonzero(prec >= ROW_PRECISION)
        out[k] = float(s[order][good[-1]]) if good.size else 0.5
        out[k] = min(max(out[k], 0.3), 0.6)
    return out


def train(seeds: list[int], out: Path) -> Any:
    """The flattened forest (producers.perception.forest.Forest) trained on `seeds`."""
    import sklearn

    from producers.perception.features import feature_names
    from producers.perception.forest import from_sklearn

    X, y, groups = dataset(seeds, out)
    cut = int(0.8 * (int(groups.max()) + 1))
    fit_rows = groups < cut
    probe = fit(X[fit_rows], y[fit_rows])
    proba = np.zeros((int((~fit_rows).sum()), len(CLASSES)))
    proba[:, probe.classes_] = probe.predict_proba(X[~fit_rows])
    thresholds = min_scores(proba, y[~fit_rows])
    model = fit(X, y)
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()[:16]
    meta = json.dumps({"seeds": [seeds[0], seeds[-1], len(seeds)], "rows": len(y),
                       "data_sha256_16": digest, "sklearn": sklearn.__version__,
                       "numpy": np.__version__, "forest": FOREST,
                       "class_weight": [round(v, 4) for v in class_weights(y).values()],
                       "class_counts": np.bincount(y, minlength=len(CLASSES)).tolist()})
    return from_sklearn(model, CLASSES, thresholds, tuple(feature_names()), meta)


def render_tuning(seeds: list[int], out: Path) -> None:
    """Render the tuning seeds not cached yet, on an Xvfb started for the purpose."""
    import os
    import subprocess
    import tempfile

    for s in seeds:
        if split.is_held_out(s):
            raise ValueError(f"seed {s} is held out: never trained on")
    tmp = Path(tempfile.mkdtemp(prefix="corpus-train-"))
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, pass_fds=(w,))
    os.close(w)
    with os.fdopen(r, "rb") as f:
        display = f":{int(f.readline().strip())}"
    try:
        from corpus.run import render

        for toolkit in split.TOOLKITS:
            render(toolkit, seeds, out, display, tmp / "render.log")
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def main(argv: list[str] | None = None) -> None:
    from producers.perception.forest import MODEL

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--screens", type=int, default=1200, help="tuning seeds per toolkit")
    ap.add_argument("--cache", type=Path, default=CACHE, help="rendered screens (by seed)")
    ap.add_argument("--out", type=Path, default=MODEL)
    args = ap.parse_args(argv)
    seeds = split.tuning(args.screens)
    t0 = time.perf_counter()
    render_tuning(seeds, args.cache)
    t1 = time.perf_counter()
    forest = train(seeds, args.cache)
    forest.save(args.out)
    scores = dict(zip(forest.classes, np.round(forest.min_score, 2).tolist(), strict=True))
    print(f"rendered in {t1 - t0:.0f} s, trained in {time.perf_counter() - t1:.0f} s: "
          f"{args.out} ({args.out.stat().st_size // 1024} KiB, {len(forest.feature)} nodes); "
          f"min scores {scores}")


if __name__ == "__main__":
    main()
