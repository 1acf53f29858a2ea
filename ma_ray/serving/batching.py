"""Vectorized inference over a batch of requests (what ``@serve.batch`` hands a GPU pool replica): one call per
distinct model, its rows stacked; each request gets its own slice of the answers back. When a stacked call
fails, its requests are asked one by one, so a bad request fails only itself (its answer is the exception)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Predictor(Protocol):
    def predict(self, matrix: np.ndarray) -> list[float]: ...


def infer_grouped(jobs: Sequence[tuple[Predictor, np.ndarray]]) -> list[list[float] | Exception]:
    """``jobs``: (model, rows) per request, in arrival order; returns each request's predictions (or the error
    its rows raised), in the same order."""
    answers: list[list[float] | Exception] = [[] for _ in jobs]
    by_model: dict[int, list[int]] = {}
    for index, (model, _) in enumerate(jobs):
        by_model.setdefault(id(model), []).append(index)
    for indices in by_model.values():
        model = jobs[indices[0]][0]
        for i, answer in zip(indices, _stacked(model, [jobs[i][1] for i in indices]), strict=True):
            answers[i] = answer
    return answers


def _stacked(model: Predictor, parts: list[np.ndarray]) -> list[list[float] | Exception]:
    """One call over every part's rows; if it fails, one call per part."""
    try:
        predictions = model.predict(np.concatenate(parts))
    except Exception as error:
        return [error] if len(parts) == 1 else [_stacked(model, [part])[0] for part in parts]
    bounds = itertools.accumulate((len(part) for part in parts), initial=0)
    return [predictions[start:end] for start, end in itertools.pairwise(bounds)]
