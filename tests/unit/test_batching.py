"""Batched inference: one vectorized call per distinct model, each request's answers back in order."""

from __future__ import annotations

import numpy as np

from ma_ray.serving.batching import infer_grouped


class Scaled:
    """A model whose prediction is its row sum times a factor; it counts its calls."""

    def __init__(self, factor: float) -> None:
        self.factor, self.calls = factor, 0

    def predict(self, matrix: np.ndarray) -> list[float]:
        self.calls += 1
        if (matrix < 0).any():
            raise ValueError("negative input")
        return (matrix.sum(axis=1) * self.factor).tolist()


def test_one_call_per_model_and_answers_split_back_per_request() -> None:
    a, b = Scaled(1.0), Scaled(10.0)
    jobs = [
        (a, np.array([[1.0, 2.0]])),
        (b, np.array([[1.0, 1.0], [2.0, 2.0]])),
        (a, np.array([[3.0, 3.0], [0.0, 1.0]])),
    ]
    assert infer_grouped(jobs) == [[3.0], [20.0, 40.0], [6.0, 1.0]]
    assert (a.calls, b.calls) == (1, 1)


def test_empty_batch() -> None:
    assert infer_grouped([]) == []


def test_a_bad_request_fails_only_itself_its_batch_mates_are_answered() -> None:
    a = Scaled(1.0)
    jobs = [(a, np.array([[1.0, 2.0]])), (a, np.array([[-1.0, 0.0]])), (a, np.array([[2.0, 2.0]]))]
    first, bad, last = infer_grouped(jobs)
    assert first == [3.0] and last == [4.0]
    assert isinstance(bad, ValueError) and str(bad) == "negative input"
    assert a.calls == 4  # the stacked call, then each request alone
