"""The walk of XGBoost trees (a Python loop for a few rows, numpy gathers for more) answers as XGBoost does, or
is not used: objectives, NaN defaults, split boundaries, uneven trees, models it cannot reproduce, and the
predictor's choice between the two."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from ma_ray.serving.frameworks import XGBoostPredictor
from ma_ray.serving.xgboost_trees import LINKS, MAX_STEPS, PYTHON_WALK_STEPS, XGBoostTrees

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)
X = RNG.normal(size=(600, 6)).astype(np.float32)
X[RNG.random(X.shape) < 0.15] = np.nan  # every split learns a default branch
SIGNAL = np.nan_to_num(X).sum(axis=1)


def _booster(objective: str, depth: int = 4, rounds: int = 15, **params: Any) -> xgb.Booster:
    label = (SIGNAL > 0).astype(float) if "logi" in objective else np.abs(SIGNAL)
    params = {"objective": objective, "max_depth": depth, "nthread": 1, **params}
    return xgb.train(params, xgb.DMatrix(X, label=label), num_boost_round=rounds)


def _rows(count: int) -> np.ndarray:
    rows = RNG.normal(size=(count, 6))
    rows[RNG.random(rows.shape) < 0.15] = np.nan
    return rows  # float64, as a replica's model inputs are


@pytest.mark.parametrize("objective", sorted(LINKS))
def test_every_objective_it_compiles_answers_as_xgboost(objective: str) -> None:
    booster = _booster(objective)
    trees = XGBoostTrees.of(booster)
    assert trees is not None
    rows = _rows(300)
    want = booster.inplace_predict(rows)
    got = trees.predict(rows)
    assert got.dtype == np.float32
    if objective.endswith("logistic"):  # the link's expf may differ from numpy's in the last bit
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:  # same comparisons, same float32 additions in the same order: the same bits
        np.testing.assert_array_equal(got, want)


def test_deep_uneven_trees_and_split_boundaries() -> None:
    booster = _booster("reg:squarederror", depth=9, rounds=30, min_child_weight=5)
    trees = XGBoostTrees.of(booster)
    assert trees is not None
    probes = trees.probe_rows()  # rows at each split value, just below it, and NaN there
    np.testing.assert_array_equal(trees.predict(probes), booster.inplace_predict(probes))


def test_the_python_loop_and_the_numpy_gathers_answer_alike_at_every_split() -> None:
    """A row alone takes the Python loop, the probes together the numpy walk: the same bits as XGBoost both ways."""
    booster = _booster("reg:squarederror", depth=9, rounds=30, min_child_weight=5)
    trees = XGBoostTrees.of(booster)
    assert trees is not None
    probes = trees.probe_rows()
    assert trees.trees * trees.depth <= PYTHON_WALK_STEPS < len(probes) * trees.trees * trees.depth
    alone = np.concatenate([trees.predict(probe[None, :]) for probe in probes])
    np.testing.assert_array_equal(alone, booster.inplace_predict(probes))


@pytest.mark.parametrize("copies", [1, 64])  # the Python loop, the numpy walk
def test_infinite_and_out_of_float32_range_inputs_compare_as_xgboosts(copies: int) -> None:
    booster = _booster("reg:squarederror")
    trees = XGBoostTrees.of(booster)
    assert trees is not None
    row = [[np.inf, -np.inf, 1e300, -1e300, 1e-300, 0.0]]  # 1e300 is inf in float32, as XGBoost casts it
    rows = np.array(row * copies)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow warning per request
        np.testing.assert_array_equal(trees.predict(rows), booster.inplace_predict(rows))


@pytest.mark.parametrize("copies", [1, 64])  # the Python loop, the numpy walk
def test_a_row_of_missing_inputs_follows_every_default_branch(copies: int) -> None:
    booster = _booster("binary:logistic")
    trees = XGBoostTrees.of(booster)
    assert trees is not None
    rows = np.full((copies, 6), np.nan)
    np.testing.assert_allclose(trees.predict(rows), booster.inplace_predict(rows), rtol=1e-6)


@pytest.mark.parametrize(
    ("objective", "params"),
    [
        ("count:poisson", {}),  # a link it does not implement
        ("multi:softprob", {"num_class": 3}),  # several outputs per row
        ("reg:squarederror", {"booster": "dart", "rate_drop": 0.1}),  # trees weighted at prediction
    ],
)
def test_models_it_cannot_reproduce_keep_xgboosts_predictor(objective: str, params: dict[str, Any]) -> None:
    label = RNG.integers(0, 3, len(X)) if "multi" in objective else np.abs(SIGNAL)
    booster = xgb.train({"objective": objective, "max_depth": 3, **params}, xgb.DMatrix(X, label=label), 5)
    assert XGBoostTrees.of(booster) is None


def test_categorical_splits_keep_xgboosts_predictor() -> None:
    import pandas as pd

    frame = pd.DataFrame({"city": pd.Categorical(RNG.choice(["a", "b", "c"], len(X))), "x": SIGNAL})
    data = xgb.DMatrix(frame, label=frame["city"].cat.codes * 2.0 + SIGNAL, enable_categorical=True)
    booster = xgb.train({"max_depth": 3, "tree_method": "hist"}, data, 5)
    assert XGBoostTrees.of(booster) is None


def test_a_walk_that_disagrees_at_load_is_not_used() -> None:
    booster = _booster("reg:squarederror")
    model = json.loads(booster.save_raw("json"))
    model["learner"]["learner_model_param"]["base_score"] = "[9E0]"  # what a misread format would do
    trees = XGBoostTrees.from_model(model)
    assert trees is not None and not trees.agrees_with(booster)


def test_base_score_in_both_of_xgboosts_spellings() -> None:
    model = json.loads(_booster("reg:squarederror").save_raw("json"))
    params = model["learner"]["learner_model_param"]
    current = XGBoostTrees.from_model(model)
    params["base_score"] = params["base_score"].strip("[]")  # XGBoost < 3: "4.8E-1"
    older = XGBoostTrees.from_model(model)
    assert current is not None and older is not None and current.base_margin == older.base_margin


def test_the_predictor_walks_few_rows_and_hands_many_or_misshapen_ones_to_xgboost() -> None:
    booster = _booster("reg:squarederror")
    calls: list[int] = []

    class Counting:
        def inplace_predict(self, matrix: np.ndarray) -> np.ndarray:
            calls.append(len(matrix))
            return booster.inplace_predict(matrix)

    trees = XGBoostTrees.of(booster)
    assert trees is not None
    predictor = XGBoostPredictor(Counting(), trees)
    most = MAX_STEPS // (len(trees.roots) * trees.depth)  # rows the walk takes at most
    few, many = _rows(most), _rows(most + 1)
    assert predictor.predict(few) == booster.inplace_predict(few).tolist() and calls == []
    assert predictor.predict(many) == booster.inplace_predict(many).tolist() and calls == [most + 1]
    with pytest.raises(ValueError, match="Feature shape mismatch"):  # XGBoost's own message
        predictor.predict(np.zeros((1, 4)))
    assert XGBoostPredictor(booster).predict(few) == booster.inplace_predict(few).tolist()  # no walk: XGBoost
