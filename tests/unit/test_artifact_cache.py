"""The node-local artifact cache: one verified fetch per node, loads from local disk in native formats
(XGBoost UBJ, PyTorch state dict memory-mapped), corrupted sources never cached."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ma_ray.gallery.artifacts import MANIFEST, ArtifactStore, PublishedArtifact
from ma_ray.gallery.errors import CorruptArtifactError
from ma_ray.gallery.flavors import flavor
from ma_ray.serving.artifact_cache import LocalArtifactCache, load_local

FACTORY = "ma_ray.training.trainers.torch_trainer:mlp"


def publish(tmp_path: Path, framework: str, model: object, **options: object) -> PublishedArtifact:
    saver = flavor(framework)
    metadata = saver.save(model, tmp_path / "saved", **options)
    return ArtifactStore(str(tmp_path / "remote")).publish("m", tmp_path / "saved", framework, metadata)


def booster() -> object:
    import xgboost as xgb

    x = np.random.default_rng(0).random((64, 3))
    return xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=3)


def test_fetched_once_then_served_from_local_disk(tmp_path: Path) -> None:
    model = booster()
    published = publish(tmp_path, "xgboost", model)
    cache = LocalArtifactCache(tmp_path / "node")
    first = cache.get(published.uri, published.checksum)
    shutil.rmtree(tmp_path / "remote")  # the second get must not need the source
    second = cache.get(published.uri, published.checksum)
    assert first.fetched and not second.fetched and first.path == second.path
    x = np.random.default_rng(1).random((5, 3))
    assert load_local(second).inplace_predict(x).tolist() == model.inplace_predict(x).tolist()


def test_concurrent_gets_fetch_once_and_leave_no_staging(tmp_path: Path) -> None:
    published = publish(tmp_path, "xgboost", booster())
    cache = LocalArtifactCache(tmp_path / "node")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cache.get(published.uri, published.checksum), range(8)))
    assert sum(r.fetched for r in results) == 1
    assert [p.name for p in (tmp_path / "node").iterdir() if not p.name.endswith(".lock")] == [results[0].path.name]


def test_a_corrupted_source_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    published = publish(tmp_path, "xgboost", booster())
    for path in Path(published.uri).rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            path.write_bytes(b"not a model")
    cache = LocalArtifactCache(tmp_path / "node")
    with pytest.raises(CorruptArtifactError, match="corrupted"):
        cache.get(published.uri, published.checksum)
    assert [p for p in (tmp_path / "node").iterdir() if not p.name.endswith(".lock")] == []


def test_torch_state_dict_is_memory_mapped_into_the_factorys_module(tmp_path: Path) -> None:
    import torch

    from ma_ray.training.trainers.torch_trainer import mlp

    module = mlp(4, [8], 1)
    published = publish(
        tmp_path,
        "pytorch",
        module,
        factory=FACTORY,
        factory_kwargs={"in_features": 4, "hidden": [8], "out_features": 1},
    )
    loaded = load_local(LocalArtifactCache(tmp_path / "node").get(published.uri, published.checksum))
    x = torch.rand(3, 4)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), module(x)) and not loaded.training
