"""The learned stage of detection: the numpy tree walk is scikit-learn's forest, the committed
model is what `python -m corpus.train` writes (deterministic, trained on tuning seeds only),
and the agent side runs it without scikit-learn or the corpus."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from corpus import split
from corpus.train import CLASSES, label, train
from producers.perception.features import feature_names
from producers.perception.forest import MODEL, Forest, from_sklearn


def test_the_numpy_walk_is_scikit_learns_forest() -> None:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 7)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 3] * X[:, 1] > 0.3)  # classes 0..3, 1 absent
    y[y == 1] = 0
    rf = RandomForestClassifier(n_estimators=7, min_samples_leaf=2, random_state=1).fit(X, y)
    classes = ("a", "b", "c", "d")
    f = from_sklearn(rf, classes, np.full(4, 0.5), tuple("abcdefg"))
    Xt = rng.normal(size=(300, 7)).astype(np.float32)
    want = np.zeros((300, 4))
    want[:, rf.classes_] = rf.predict_proba(Xt)
    assert np.allclose(f.predict_proba(Xt), want, atol=1e-6)
    assert f.predict_proba(np.zeros((0, 7))).shape == (0, 4)


def test_the_committed_model_is_small_and_says_how_it_was_trained() -> None:
    f = Forest.load(MODEL)
    assert MODEL.stat().st_size < 4 * 2**20
    assert f.classes == CLASSES and f.feature_names == tuple(feature_names())
    meta = json.loads(f.meta)
    first, last, n = meta["seeds"]
    assert n >= 500 and not split.is_held_out(last) and (first, last) == (0, n - 1)
    assert meta["forest"]["random_state"] == 0 and meta["forest"]["n_jobs"] == 1
    assert all(0.3 <= s <= 0.6 for s in f.min_score[1:])


def test_labels_follow_the_evaluation_rules() -> None:
    truth = [{"kind": "button", "text": "OK", "x": 100, "y": 100, "w": 80, "h": 30},
             {"kind": "checkbox", "text": "Auto save", "x": 300, "y": 100, "w": 120, "h": 24},
             {"kind": "text_area", "text": "", "x": 500, "y": 100, "w": 200, "h": 100}]
    boxes = [(100, 100, 80, 30), (101, 101, 50, 28), (300, 100, 120, 24), (304, 105, 14, 14),
             (500, 100, 200, 100), (0, 0, 20, 20)]
    got = [CLASSES[i] if i >= 0 else "left out" for i in label(boxes, truth)]
    assert got == ["button", "left out", "none", "checkbox", "none", "none"]


def test_training_is_deterministic(sample, tmp_path) -> None:
    """Two fits on the same tuning screens write the same bytes (the committed model is
    reproduced by `python -m corpus.train` the same way, on 1200 screens per toolkit)."""
    seeds = split.tuning(3, start=200)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    train(seeds, sample).save(a)
    train(seeds, sample).save(b)
    assert a.read_bytes() == b.read_bytes()
    assert Forest.load(a).predict_proba(np.zeros((2, len(feature_names())))).shape == (
        2, len(CLASSES))


def test_the_agent_side_needs_neither_scikit_learn_nor_the_corpus() -> None:
    code = ("import sys, numpy as np\n"
            "from producers.perception.detect import detect_elements\n"
            "img = np.full((200, 300, 3), 230, np.uint8); img[50:80, 40:200] = 255\n"
            "detect_elements(img)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'corpus', 'scipy')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture(scope="module")
def sample(xvfb, tmp_path_factory):
    from corpus.run import render

    out = tmp_path_factory.mktemp("train")
    for toolkit in split.TOOLKITS:
        render(toolkit, split.tuning(3, start=200), out, xvfb.display, out / "render.log")
    return out
