"""Vectorized inference over a batch of requests (what ``@serve.batch`` hands a GPU pool replica): one call per
distinct model, its rows stacked; each request gets its own slice of the answers back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Predictor(Protocol):
    def predict(self, matrix: np.ndarray) -> list[float]: ...


def infer_grouped(jobs: Sequence[tuple[Predictor, np.ndarray]]) -> list[list[float]]:
    """``jobs``: (model, rows) per request, in arrival order; returns each request's predictions, same order."""
    answers: list[list[float]] = [[] for _ in jobs]
    by_model: dict[int, list[int]] = {}
    for index, (model, _) in enumerate(jobs):
        by_model.setdefault(id(model), []).append(index)
    for indices in by_model.values():
        predictions = jobs[indices[0]][0].predict(np.concatenate([jobs[i][1] for i in indices]))
        start = 0
        for i in indices:
            count = len(jobs[i][1])
            answers[i] = predictions[start : start + count]
            start += count
    return answers
