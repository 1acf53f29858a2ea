"""Each framework's serving object: sizes, loads from a node-local artifact, predicts; bad inputs say what is
wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ma_ray.gallery.artifacts import ArtifactStore
from ma_ray.gallery.flavors import flavor
from ma_ray.serving import PREDICT_THREADS
from ma_ray.serving.artifact_cache import LocalArtifact, LocalArtifactCache
from ma_ray.serving.frameworks import DEEP_FRAMEWORKS, FRAMEWORKS, serving_framework
from ma_ray.training.trainers.tiny_lm import build_tiny_lm, encode
from tests.zero_checkpoint import LM_CONFIG, LM_FACTORY, zero_checkpoint


def local(tmp_path: Path, framework: str, model: object, **options: object) -> LocalArtifact:
    metadata = flavor(framework).save(model, tmp_path / "saved", **options)
    published = ArtifactStore(str(tmp_path / "remote")).publish("m", tmp_path / "saved", framework, metadata)
    return LocalArtifactCache(tmp_path / "node").get(published.uri, published.checksum)


def test_every_gallery_framework_has_a_serving_object_and_deep_ones_go_to_the_gpu_pool() -> None:
    assert set(FRAMEWORKS) == {"xgboost", "pytorch", "deepspeed"}
    assert sorted(DEEP_FRAMEWORKS) == ["deepspeed", "pytorch"]
    with pytest.raises(ValueError, match="no serving for framework 'sklearn': serve one of deepspeed, pytorch"):
        serving_framework("sklearn")


def test_memory_is_sized_by_precision_for_deep_models_only() -> None:
    assert serving_framework("xgboost").memory_bytes(1000, "fp16") == 1000
    assert serving_framework("pytorch").memory_bytes(1000, "fp16") == 500
    assert serving_framework("deepspeed").memory_bytes(1000, "int8") == 270
    assert serving_framework("pytorch").memory_bytes(0, "fp32") == 1


def test_xgboost_predicts_what_the_booster_does(tmp_path: Path) -> None:
    import xgboost as xgb

    x = np.random.default_rng(0).random((32, 3))
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=3)
    predictor = serving_framework("xgboost").load(local(tmp_path, "xgboost", booster))
    assert predictor.predict(x[:4]) == booster.inplace_predict(x[:4]).tolist()


def test_xgboost_predicts_on_one_thread_whatever_it_was_trained_with(tmp_path: Path) -> None:
    """A replica's prediction never waits on an OpenMP team (see `XGBoostServing.load`)."""
    import json

    import xgboost as xgb

    x = np.random.default_rng(0).random((32, 3))
    booster = xgb.train({"max_depth": 2, "nthread": 2}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=3)
    loaded = serving_framework("xgboost").load(local(tmp_path, "xgboost", booster)).booster
    assert json.loads(loaded.save_config())["learner"]["generic_param"]["nthread"] == str(PREDICT_THREADS) == "1"


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_pytorch_predicts_the_first_output_at_each_precision(tmp_path: Path, precision: str) -> None:
    from ma_ray.training.trainers.torch_trainer import mlp

    torch.manual_seed(0)
    kwargs = {"in_features": 4, "hidden": [8], "out_features": 2}
    module = mlp(**kwargs).eval()
    artifact = local(tmp_path, "pytorch", module, factory="ma_ray.training.trainers.torch_trainer:mlp",
                     factory_kwargs=kwargs)  # fmt: skip
    x = np.random.default_rng(1).random((5, 4))
    predictions = serving_framework("pytorch").load(artifact, "cpu", precision).predict(x)
    with torch.inference_mode():
        expected = module(torch.as_tensor(x, dtype=torch.float32))[:, 0].tolist()
    assert np.allclose(predictions, expected, atol=0.05 if precision != "fp32" else 1e-6)


def test_deepspeed_serves_the_checkpoints_weights_as_next_token_predictions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = build_tiny_lm(**LM_CONFIG).eval()
    artifact = local(tmp_path, "deepspeed", zero_checkpoint(tmp_path / "ds", module), factory=LM_FACTORY,
                     factory_kwargs=LM_CONFIG)  # fmt: skip
    rows = np.array([encode("driver 12 at")[:4], encode("rider 7 to ")[:4]], dtype=np.float64)
    predictions = serving_framework("deepspeed").load(artifact).predict(rows)
    with torch.inference_mode():
        expected = module(torch.as_tensor(rows, dtype=torch.int64))[:, -1, :].argmax(dim=-1).tolist()
    assert predictions == [float(token) for token in expected]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1.5, 2.0], "whole numbers"),
        ([-1.0, 2.0], "whole numbers"),
        ([999.0, 2.0], "past the language model's vocabulary"),
        ([1.0] * 9, "more tokens than its context"),
    ],
)
def test_a_language_model_refuses_inputs_that_are_not_token_ids(tmp_path: Path, row: list[float], message: str) -> None:
    module = build_tiny_lm(**LM_CONFIG)
    artifact = local(tmp_path, "deepspeed", zero_checkpoint(tmp_path / "ds", module), factory=LM_FACTORY,
                     factory_kwargs=LM_CONFIG)  # fmt: skip
    with pytest.raises(ValueError, match=message):
        serving_framework("deepspeed").load(artifact).predict(np.array([row]))


def test_a_deepspeed_artifact_without_a_factory_says_how_to_log_one(tmp_path: Path) -> None:
    artifact = local(tmp_path, "deepspeed", zero_checkpoint(tmp_path / "ds", build_tiny_lm(**LM_CONFIG)))
    with pytest.raises(ValueError, match="log it with factory= and factory_kwargs="):
        serving_framework("deepspeed").load(artifact)


def test_a_deep_model_at_int8_on_a_gpu_is_refused_before_loading(tmp_path: Path) -> None:
    module = build_tiny_lm(**LM_CONFIG)
    artifact = local(tmp_path, "deepspeed", zero_checkpoint(tmp_path / "ds", module), factory=LM_FACTORY,
                     factory_kwargs=LM_CONFIG)  # fmt: skip
    with pytest.raises(ValueError, match=r"int8 \(dynamic quantization\) runs on CPU only"):
        serving_framework("deepspeed").load(artifact, "cuda", "int8")
