"""A random forest evaluated with numpy: the learned stage of detection, no scikit-learn.

Why numpy: the agent side ships alone to remote machines and stays light; scikit-learn is
only needed to train (corpus.train, dev only). The trees are stored flat in one .npz file
(node feature, threshold, children, leaf class shares); prediction walks every tree for every
row at once, one level per step, so a few hundred proposals take about a millisecond.
Thresholds stay float64 and rows are compared as float32, as scikit-learn does, so the walk
reproduces its predict_proba exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL = Path(__file__).with_name("models") / "kinds.npz"


@dataclass
class Forest:
    feature: np.ndarray  # int32 per node; -1 at leaves
    threshold: np.ndarray  # float64 per node
    left: np.ndarray  # int32 per node (global index)
    right: np.ndarray
    value: np.ndarray  # float32 (nodes, classes): class shares at leaves
    roots: np.ndarray  # int32 per tree
    depth: int
    classes: tuple[str, ...]
    min_score: np.ndarray  # float32 per class: the score a detection of the class needs
    feature_names: tuple[str, ...]
    meta: str = ""  # how it was trained (seeds, versions), JSON

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        n = X.shape[0]
        if n == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth + 1):
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            go_left = X[rows, np.maximum(f, 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].mean(axis=1)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(
                f, feature=self.feature, threshold=self.threshold, left=self.left,
                right=self.right, value=self.value, roots=self.roots,
                depth=np.int32(self.depth), classes=np.array(self.classes),
                min_score=self.min_score, feature_names=np.array(self.feature_names),
                meta=np.array(self.meta))

    @classmethod
    def load(cls, path: Path = MODEL) -> Forest:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["feature"], z["threshold"], z["left"], z["right"], z["value"],
                       z["roots"], int(z["depth"]), tuple(str(c) for c in z["classes"]),
                       z["min_score"], tuple(str(c) for c in z["feature_names"]),
                       str(z["meta"]))


def from_sklearn(model, classes: tuple[str, ...], min_score: np.ndarray,
                 feature_names: tuple[str, ...], meta: str = "") -> Forest:
    """Flatten a fitted scikit-learn forest (RandomForest/ExtraTrees classifier)."""
    feats, thrs, lefts, rights, values, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for est in model.estimators_:
        t = est.tree_
        roots.append(offset)
        leaf = t.children_left == -1
        feats.append(np.where(leaf, -1, t.feature).astype(np.int32))
        thrs.append(t.threshold.astype(np.float64))
        lefts.append(np.where(leaf, -1, t.children_left + offset).astype(np.int32))
        rights.append(np.where(leaf, -1, t.children_right + offset).astype(np.int32))
        v = t.value[:, 0, :].astype(np.float64)
        v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
        values.append(v.astype(np.float32))
        depth = max(depth, int(t.max_depth))
        offset += t.node_count
    # scikit-learn's class order is model.classes_ (indices into `classes` here)
    order = np.asarray(model.classes_, int)
    value = np.zeros((offset, len(classes)), np.float32)
    value[:, order] = np.concatenate(values)
    return Forest(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts),
                  np.concatenate(rights), value, np.asarray(roots, np.int32), depth,
                  tuple(classes), np.asarray(min_score, np.float32), tuple(feature_names),
                  meta)
