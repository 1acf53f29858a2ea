"""The framework trainers on the session's local Ray, end to end, with faults injected.

Per framework, two runs of one ``run_id`` cover the seed's recovery rows with little training:
1. a preemption notice at step 7 (checkpoints every 3 steps): a checkpoint is taken on the notice, status
   ``preempted``;
2. the newest checkpoint (the one from the notice) is corrupted, and the same run is started again with a worker
   killed at step 8: it resumes from step 6 (the corrupt one rejected), Ray Train restarts the killed worker
   group, which resumes from step 6 again (still the newest valid), and the run finishes.
XGBoost runs the same two on its single-process engine too, where Ray retries the killed task.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ma_ray.engine import Engine
from ma_ray.training.checkpoint_policy import CheckpointPolicy
from ma_ray.training.checkpoint_store import MANIFEST
from ma_ray.training.run import FaultInjection, TrainingOutcome, TrainingRun
from ma_ray.training.trainers import FRAMEWORKS, fit
from tests.job_specs import minimal_spec

FEATURES = ("f0", "f1", "f2", "f3")
WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0])


def _tabular(rows: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    y = x @ WEIGHTS + rng.normal(scale=0.1, size=rows)
    return [{**dict(zip(FEATURES, map(float, r), strict=True)), "y": float(t)} for r, t in zip(x, y, strict=True)]


def _run(framework: str, root: Path, faults: FaultInjection, engine: Engine = Engine.RAY_TRAIN) -> TrainingRun:
    import ray.data

    params: dict[str, dict[str, Any]] = {
        "xgboost": {"num_boost_round": 12, "max_depth": 3, "eta": 0.3},
        "pytorch": {"epochs": 4, "batch_size": 64, "lr": 0.03},  # 160 rows per worker: 3 steps per epoch
        "deepspeed": {"epochs": 4, "batch_size": 8, "seq_len": 24, "lr": 1e-2},  # 24 lines per worker
    }
    if framework == "deepspeed":
        from ma_ray.training.trainers.tiny_lm import tiny_corpus

        train, valid = ray.data.from_items(tiny_corpus(48, seed=1)), ray.data.from_items(tiny_corpus(8, seed=2))
        label, features, text = "", (), "text"
    else:
        train, valid = ray.data.from_items(_tabular(320, 0)), ray.data.from_items(_tabular(80, 1))
        label, features, text = "y", FEATURES, None
    return TrainingRun(
        run_id=f"{framework}-{engine}-run",
        checkpoint_uri=str(root),
        train=train,
        valid=valid,
        label_column=label,
        feature_columns=features,
        params=params[framework],
        num_workers=2,
        cpus_per_worker=0.5,
        checkpoint_policy=CheckpointPolicy(min_interval_s=3600, keep_last=3),
        checkpoint_every_steps=3,
        faults=faults,
        text_column=text,
        engine=engine,
    )


def _corrupt_newest(outcome: TrainingOutcome) -> str:
    newest = Path(outcome.checkpoints[-1])
    victim = next(p for p in sorted(newest.rglob("*")) if p.is_file() and p.name != MANIFEST)
    victim.write_bytes(victim.read_bytes() + b"corrupt")
    return newest.name


def _gallery_round_trip(framework: str, outcome: TrainingOutcome, tmp_path: Path) -> Any:
    """What Gallery's flavor for the framework saves from the outcome, loaded back."""
    from ma_ray.gallery.flavors import flavor

    saver = flavor(framework)
    metadata = saver.save(outcome.model, tmp_path / "artifact", **outcome.save_options)
    return saver.load(tmp_path / "artifact", metadata)


def _check_served_language_model(outcome: TrainingOutcome, loaded: Any, tmp_path: Path) -> None:
    """The serving pool's deepspeed object predicts what the checkpoint's weights in its own config predict."""
    import json

    import torch

    from ma_ray.gallery.artifacts import ArtifactStore
    from ma_ray.serving.artifact_cache import LocalArtifactCache
    from ma_ray.serving.frameworks import serving_framework
    from ma_ray.training.trainers.tiny_lm import build_tiny_lm, encode

    metadata = {"tag": loaded.tag, **outcome.save_options}
    published = ArtifactStore(str(tmp_path / "remote")).publish("lm", loaded.path, "deepspeed", metadata)
    artifact = LocalArtifactCache(tmp_path / "node").get(published.uri, published.checksum)
    rows = np.array([encode("driver 1")[:8], encode("rider 42")[:8]], dtype=np.float64)
    served = serving_framework("deepspeed").load(artifact).predict(rows)
    module = build_tiny_lm(**json.loads((loaded.path / "model_config.json").read_text())).eval()
    states = torch.load(loaded.tag_dir / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=True)
    module.load_state_dict(states["module"])
    with torch.inference_mode():
        truth = module(torch.as_tensor(rows, dtype=torch.int64))[:, -1, :].argmax(dim=-1).tolist()
    assert metadata["factory"].endswith("tiny_lm:build_tiny_lm") and served == [float(t) for t in truth]


def _check_model(framework: str, outcome: TrainingOutcome, tmp_path: Path) -> None:
    loaded = _gallery_round_trip(framework, outcome, tmp_path)
    rows = _tabular(50, 7)
    x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float32)
    y = np.array([r["y"] for r in rows])
    if framework == "xgboost":
        import xgboost as xgb

        matrix = xgb.DMatrix(x, feature_names=list(FEATURES))
        predicted = outcome.model.predict(matrix)
        assert np.array_equal(loaded.predict(matrix), predicted)
    elif framework == "pytorch":
        import torch

        with torch.no_grad():
            predicted = outcome.model(torch.from_numpy(x)).squeeze(-1).numpy()
            assert np.array_equal(loaded(torch.from_numpy(x)).squeeze(-1).numpy(), predicted)
    else:
        from ma_ray.training.trainers.tiny_lm import VOCAB

        assert (loaded.path / "latest").is_file() and (loaded.tag_dir / "mp_rank_00_model_states.pt").is_file()
        assert (loaded.path / "model_config.json").is_file()
        assert outcome.metrics["valid_perplexity"] < len(VOCAB)  # better than a uniform guess
        _check_served_language_model(outcome, loaded, tmp_path)
        shutil.rmtree(Path(outcome.model).parent)  # the caller owns the local copy of the final checkpoint
        return
    # Better than always predicting the mean: the model learnt something from the features.
    assert float(np.sqrt(np.mean((predicted - y) ** 2))) < float(np.std(y))


ENGINES = [(framework, Engine.RAY_TRAIN) for framework in FRAMEWORKS] + [("xgboost", Engine.LOCAL)]


@pytest.mark.parametrize(("framework", "engine"), ENGINES, ids=[f"{f}-{e}" for f, e in ENGINES])
def test_preemption_corruption_and_worker_loss_recover(
    framework: str, engine: Engine, ray_cluster: str, tmp_path: Path
) -> None:
    preempted = fit(framework, _run(framework, tmp_path, FaultInjection(preempt_at_step=7), engine))
    assert preempted.status == "preempted" and preempted.final_step == 7
    assert [Path(c).name.split("-")[1] for c in preempted.checkpoints] == ["0000000003", "0000000006", "0000000007"]
    assert "Preemption notice at step 7: checkpoint_now" in preempted.log_lines

    corrupt = _corrupt_newest(preempted)
    finished = fit(framework, _run(framework, tmp_path, FaultInjection(fail_at_step=8), engine))
    assert finished.status == "succeeded" and finished.final_step == 12
    assert finished.resumed_from_step == 6
    rerun = finished.log_lines[finished.log_lines.index("Preemption notice at step 7: checkpoint_now") :]
    assert any(line.startswith(f"Rejected checkpoint {corrupt}") for line in rerun)
    # Once when the rerun started, once after Ray Train restarted the killed worker group (Ray the killed task).
    assert rerun.count("Resumed from step 6") == 2
    assert (tmp_path / f"{framework}-{engine}-run" / "_faults" / "fail").is_file()
    assert len(finished.checkpoints) == 3  # keep_last
    assert finished.metrics and all(math.isfinite(v) for v in finished.metrics.values())
    _check_model(framework, finished, tmp_path)


def test_unknown_framework_names_the_known_ones(ray_cluster: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="deepspeed, pytorch, xgboost"):
        fit("sklearn", _run("xgboost", tmp_path, FaultInjection()))


def test_the_single_process_engine_refuses_other_frameworks(ray_cluster: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the single-process engine trains xgboost only, not pytorch"):
        fit("pytorch", _run("pytorch", tmp_path, FaultInjection(), Engine.LOCAL))


def test_the_single_process_engine_takes_arrow_tables_and_ray_datasets_alike(ray_cluster: str, tmp_path: Path) -> None:
    """The same rows as Arrow tables (what `apps.train` hands over) or Ray Datasets give the same model."""
    import dataclasses

    import pyarrow as pa

    base = _run("xgboost", tmp_path, FaultInjection(), Engine.LOCAL)
    arrow = dataclasses.replace(base, run_id="arrow", train=pa.Table.from_pylist(_tabular(320, 0)),
                                valid=pa.Table.from_pylist(_tabular(80, 1)))  # fmt: skip
    from_tables, from_datasets = fit("xgboost", arrow), fit("xgboost", base)
    assert from_tables.final_step == from_datasets.final_step == 12
    assert from_tables.history == from_datasets.history and "valid_rmse" in from_tables.metrics


def _spec(**changes: Any) -> Any:
    from ma_ray.jobs import parse_spec

    return parse_spec(minimal_spec(resources={"workers": 2, "cpus_per_worker": 0.5}, **changes))


def test_a_job_picks_its_engine_on_the_cluster_it_runs_on_and_warms_the_single_process_one(ray_cluster: str) -> None:
    """`apps.train` as a job runs it: one process below the spec's threshold when the job fits a node of this Ray;
    the warm-up task (started while the table is built) runs in a worker that can import the trainer."""
    import ray

    from apps.train import largest_node_cpus, pick_engine, warm_up_local_engine

    spec, node_cpus = _spec(local_below_rows=1000), largest_node_cpus()
    assert node_cpus >= 1
    assert pick_engine(spec, 999, 2) is Engine.LOCAL
    assert pick_engine(spec, 1000, 2) is Engine.RAY_TRAIN  # at the threshold
    assert pick_engine(spec, 999, int(node_cpus / 0.5) + 1) is Engine.RAY_TRAIN  # more CPUs than a node has
    assert pick_engine(spec, 10**9, 2, engine="local") is Engine.LOCAL  # the CLI's override wins
    assert pick_engine(_spec(framework="torch"), 10, 2) is Engine.RAY_TRAIN
    with pytest.raises(ValueError, match="one process cannot hold them; use engine ray_train"):
        pick_engine(_spec(engine="local"), 10, int(node_cpus / 0.5) + 1)
    assert warm_up_local_engine(_spec(engine="ray_train"), None, None) is None
    assert warm_up_local_engine(spec, None, "ray_train") is None
    ray.get(warm_up_local_engine(spec, None, None), timeout=120)
