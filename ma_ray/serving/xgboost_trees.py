"""An XGBoost tree ensemble walked in Python and numpy, for a request's few rows (up to ``MAX_STEPS`` rows x trees
x depth).

``Booster.inplace_predict`` costs 0.18 ms for one row on a quiet core and 0.5 ms in a busy replica
(`bench/xgboost_predict.py`), whatever the trees: its per-call setup dwarfs 20-100 trees of a few levels. Up to
``PYTHON_WALK_STEPS`` each row goes down each tree in a Python loop over lists (about 60 ns a level, no per-call
setup: 10 us for one row of 20 trees of depth 4); past it every tree of every row moves one level per step, a
handful of numpy gathers per level (about 45 us whatever the rows, then slowly more).

It computes what XGBoost computes: float32 inputs, ``x < split`` with NaN taking the node's default branch, the
trees' leaves added one by one in XGBoost's order onto the base margin in float32, then the objective's link.
:meth:`XGBoostTrees.of` compiles a booster only when it can promise that: one output, numerical splits, gbtree,
an objective whose link it knows; and only when its answers on probe rows (every split value, just below it,
NaN) equal XGBoost's. Any other booster keeps XGBoost's predictor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Rows x trees x depth up to which the walk beats XGBoost's predictor (`bench/xgboost_predict.py`: 64 rows of 20
# trees of depth 4 take 0.76x its time, 16 rows of 100 trees of depth 6 0.97x, 64 of those 2.2x); past it, XGBoost.
MAX_STEPS = 8192
# Rows x trees x depth up to which the Python loop beats the numpy gathers (1 row of 100 trees of depth 6: 41 us
# against 68; 2 rows: 75 against 78; 16 rows of 20 trees of depth 4: 82 against 64).
PYTHON_WALK_STEPS = 1024
PROBED_SPLITS = 4096  # splits probed at load, drawn at random beyond this (a big ensemble's check stays ~0.1 s)
PROBE_TOLERANCE = 1e-6  # relative: XGBoost's expf and numpy's may differ in the last bit of the link


Link = Callable[[np.ndarray], np.ndarray]  # margin -> prediction


def _identity(margin: np.ndarray) -> np.ndarray:
    return margin


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    one = np.float32(1)
    probability: np.ndarray = one / (one + np.exp(-margin))
    return probability


def _logit(score: float) -> float:
    return float(np.log(score / (1 - score)))


# objective -> (base_score -> base margin, margin -> prediction): XGBoost's ProbToMargin and PredTransform
LINKS: dict[str, tuple[Callable[[float], float], Link]] = {
    "reg:squarederror": (float, _identity),
    "reg:absoluteerror": (float, _identity),
    "reg:pseudohubererror": (float, _identity),
    "binary:logitraw": (float, _identity),
    "binary:logistic": (_logit, _sigmoid),
    "reg:logistic": (_logit, _sigmoid),
}


@dataclass(frozen=True, repr=False)
class XGBoostTrees:
    """Every tree's nodes in flat arrays (node ids offset per tree); a leaf points at itself, so extra steps
    leave a row's walk where it ended."""

    feature: np.ndarray  # int32: the input a split reads (0 at leaves)
    split: np.ndarray  # float32: go left when the input is below it
    default_left: np.ndarray  # bool: where a missing (NaN) input goes
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    leaf_value: np.ndarray  # float32 (0 at splits)
    roots: np.ndarray  # int32, one per tree, in XGBoost's order
    depth: int
    base_margin: np.float32
    link: Link
    inputs: int
    nodes: NodeLists

    @property
    def trees(self) -> int:
        return len(self.roots)

    @classmethod
    def of(cls, booster: Any) -> XGBoostTrees | None:
        """The booster compiled, or None when it is outside what this walk reproduces exactly."""
        compiled = cls.from_model(json.loads(booster.save_raw("json")))
        if compiled is None or not compiled.agrees_with(booster):
            return None
        return compiled

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> XGBoostTrees | None:
        """From XGBoost's JSON model (``Booster.save_raw("json")``), or None if unsupported."""
        learner = model["learner"]
        link = LINKS.get(learner["objective"]["name"])
        params = learner["learner_model_param"]
        booster = learner["gradient_booster"]
        if link is None or booster["name"] != "gbtree" or int(params["num_class"]) > 1:
            return None
        if int(params.get("num_target", "1")) != 1:
            return None
        trees = booster["model"]["trees"]
        if any(any(tree["split_type"]) for tree in trees):
            return None  # categorical splits
        return cls._compiled(trees, link, _base_score(params["base_score"]), int(params["num_feature"]))

    @classmethod
    def _compiled(
        cls, trees: list[dict[str, Any]], link: tuple[Callable[[float], float], Link], base: float, inputs: int
    ) -> XGBoostTrees:
        sizes = [len(tree["left_children"]) for tree in trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        left = np.concatenate([np.asarray(t["left_children"], np.int64) for t in trees])
        right = np.concatenate([np.asarray(t["right_children"], np.int64) for t in trees])
        own = np.arange(len(left), dtype=np.int64)
        shift = np.repeat(offsets, sizes).astype(np.int64)
        leaf = left == -1
        split = np.concatenate([np.asarray(t["split_conditions"], np.float32) for t in trees])
        return cls(
            feature=np.where(leaf, 0, np.concatenate([t["split_indices"] for t in trees])).astype(np.int32),
            split=split,
            default_left=np.concatenate([t["default_left"] for t in trees]).astype(bool),
            left=np.where(leaf, own, left + shift).astype(np.int32),
            right=np.where(leaf, own, right + shift).astype(np.int32),
            leaf_value=np.where(leaf, split, np.float32(0)).astype(np.float32),  # a leaf's value is its condition
            roots=offsets,
            depth=max((_depth(t["left_children"], t["right_children"]) for t in trees), default=0),
            base_margin=np.float32(link[0](base)),
            link=link[1],
            inputs=inputs,
            nodes=NodeLists.of(np.where(leaf, -1, np.concatenate([t["split_indices"] for t in trees])), split, trees),
        )

    def walks(self, matrix: np.ndarray) -> bool:
        """Whether ``matrix`` is small enough for this walk, and has the model's inputs."""
        rows, inputs = int(matrix.shape[0]), int(matrix.shape[1])
        return inputs == self.inputs and rows * len(self.roots) * max(self.depth, 1) <= MAX_STEPS

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """One prediction per row of ``matrix`` (rows x inputs), as XGBoost's predictor gives it (float32)."""
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf, as XGBoost's own cast makes it
            x = np.asarray(matrix, dtype=np.float32)
        if len(x) * self.trees * self.depth <= PYTHON_WALK_STEPS:
            steps = np.array(self.nodes.leaves(x.tolist(), float(self.base_margin)), np.float32)
        else:
            steps = np.empty((len(x), self.trees + 1), np.float32)
            steps[:, 0] = self.base_margin
            steps[:, 1:] = self._numpy_leaves(x)
        # XGBoost adds the trees one at a time onto the base margin, in float32: a running sum keeps that order
        margins: np.ndarray = np.cumsum(steps.reshape(len(x), self.trees + 1), axis=1, dtype=np.float32)[:, -1]
        return self.link(margins)

    def _numpy_leaves(self, x: np.ndarray) -> np.ndarray:
        """Each row's leaf value in each tree (rows x trees): every walk moves one level per step."""
        node = np.broadcast_to(self.roots, (len(x), self.trees))
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            value = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.default_left[node], value < self.split[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaves: np.ndarray = self.leaf_value[node]
        return leaves

    def agrees_with(self, booster: Any) -> bool:
        """Whether this walk answers as XGBoost does on probe rows: each split value, just below it, and NaN."""
        probes = self.probe_rows()
        want = booster.inplace_predict(probes)
        if want.shape != (len(probes),):
            return False
        return bool(np.allclose(self.predict(probes), want, rtol=PROBE_TOLERANCE, atol=0, equal_nan=True))

    def probe_rows(self) -> np.ndarray:
        """Rows that take every branch a split has: one per split at its value (right), one just below (left),
        one with NaN (the default); the other inputs drawn from the splits, so the walks go deep."""
        rng = np.random.default_rng(0)
        splits = np.flatnonzero(self.left != np.arange(len(self.left)))
        if len(splits) > PROBED_SPLITS:
            splits = rng.choice(splits, PROBED_SPLITS, replace=False)
        features, values = self.feature[splits], self.split[splits]
        pool = values if len(values) else np.zeros(1, np.float32)
        base = rng.choice(pool, size=(3 * len(values) + 1, self.inputs)).astype(np.float32)
        at = np.arange(len(values))
        base[at, features] = values
        base[len(values) + at, features] = np.nextafter(values, np.float32(-np.inf))
        base[2 * len(values) + at, features] = np.nan
        return base


@dataclass(frozen=True, repr=False)
class NodeLists:
    """The nodes as Python lists, for the loop that walks a few rows: list indexing and float comparisons cost
    tens of nanoseconds where a numpy call costs a microsecond. The splits are float32 values held exactly in
    Python floats, and so are the inputs, so ``x < split`` answers as XGBoost's float32 comparison does."""

    feature: list[int]  # -1 at leaves
    split: list[float]
    default_left: list[bool]
    left: list[int]
    right: list[int]
    leaf_value: list[float]
    roots: list[int]

    @classmethod
    def of(cls, feature: np.ndarray, split: np.ndarray, trees: list[dict[str, Any]]) -> NodeLists:
        sizes = [len(tree["left_children"]) for tree in trees]
        shift = np.repeat(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes).astype(np.int64)
        left = np.concatenate([np.asarray(t["left_children"], np.int64) for t in trees]) + shift
        right = np.concatenate([np.asarray(t["right_children"], np.int64) for t in trees]) + shift
        return cls(
            feature=feature.astype(np.int64).tolist(),
            split=split.tolist(),
            default_left=np.concatenate([t["default_left"] for t in trees]).astype(bool).tolist(),
            left=left.tolist(),
            right=right.tolist(),
            leaf_value=np.where(feature < 0, split, np.float32(0)).astype(np.float32).tolist(),
            roots=np.cumsum([0, *sizes[:-1]]).astype(np.int64).tolist(),
        )

    def leaves(self, rows: list[list[float]], base_margin: float) -> list[list[float]]:
        """Per row, the base margin then its leaf value in each tree, in order (what XGBoost adds up)."""
        feature, split, left, right = self.feature, self.split, self.left, self.right
        default_left, leaf_value, roots = self.default_left, self.leaf_value, self.roots
        every = []
        for row in rows:
            found = [base_margin]
            for node in roots:
                while (index := feature[node]) >= 0:
                    value = row[index]
                    if value < split[node]:
                        node = left[node]
                    elif value != value:  # NaN: the node's default branch
                        node = left[node] if default_left[node] else right[node]
                    else:
                        node = right[node]
                found.append(leaf_value[node])
            every.append(found)
        return every


def _base_score(text: str | float) -> float:
    """XGBoost 3 writes ``base_score`` as a one-element list in a string (``"[5E-1]"``), older ones as ``"5E-1"``."""
    value = json.loads(text) if isinstance(text, str) and text.startswith("[") else text
    return float(value[0] if isinstance(value, list) else value)


def _depth(left: list[int], right: list[int]) -> int:
    """Splits on the longest root-to-leaf path."""
    deepest, level = 0, [(0, 0)]
    while level:
        node, depth = level.pop()
        if left[node] == -1:
            deepest = max(deepest, depth)
        else:
            level += [(left[node], depth + 1), (right[node], depth + 1)]
    return deepest


__all__ = ["LINKS", "MAX_STEPS", "PYTHON_WALK_STEPS", "NodeLists", "XGBoostTrees"]
