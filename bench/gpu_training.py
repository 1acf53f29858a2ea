"""Training on a real GPU (issue 7): the PyTorch (DDP) and DeepSpeed (ZeRO stage 2) trainers with ``use_gpu``,
NCCL as the process-group backend, through the same fault scenario as tests/integration/test_trainers.py:

1. a preemption notice at step 7 (checkpoints every 3 steps): a checkpoint is taken on the notice;
2. the newest checkpoint is corrupted and the run started again with its worker killed at step 8: it resumes
   from step 6 (the corrupt one rejected), Ray Train restarts the worker, which resumes from step 6 again, and the
   run finishes at step 12.

Each step is checked (the script stops at the first mismatch) and the workers' own log lines must say they
trained on ``cuda``. Figures: the wall time of each run and the final validation metric.

Needs CUDA; on a machine without it the script says so and writes nothing (``--without-gpu`` runs the same
scenario on CPU with gloo, as a check of the script, and writes nothing either). Run alone:
`python bench/gpu_training.py` (a local Ray with 1 GPU, one training worker).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from _harness import Result, report

from ma_ray.training import MANIFEST, CheckpointPolicy, FaultInjection, TrainingOutcome, TrainingRun
from ma_ray.training.trainers import fit

FEATURES = ("f0", "f1", "f2", "f3")
PARAMS: dict[str, dict[str, Any]] = {
    "pytorch": {"epochs": 4, "batch_size": 64, "lr": 0.03, "hidden": [256, 256]},  # 3 steps per epoch
    "deepspeed": {"epochs": 4, "batch_size": 8, "seq_len": 24, "lr": 1e-2},  # 24 lines: 3 steps per epoch
}


def _tabular(rows: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=rows)
    return [{**dict(zip(FEATURES, map(float, r), strict=True)), "y": float(t)} for r, t in zip(x, y, strict=True)]


def _run(framework: str, root: Path, faults: FaultInjection, device: str) -> TrainingRun:
    if framework == "deepspeed":
        from ma_ray.training.trainers.tiny_lm import tiny_corpus

        train, valid = ray.data.from_items(tiny_corpus(24, seed=1)), ray.data.from_items(tiny_corpus(8, seed=2))
        label, features, text = "", (), "text"
    else:
        train, valid = ray.data.from_items(_tabular(192, 0)), ray.data.from_items(_tabular(80, 1))
        label, features, text = "y", FEATURES, None
    return TrainingRun(
        run_id=f"{framework}-gpu",
        checkpoint_uri=str(root),
        train=train,
        valid=valid,
        label_column=label,
        feature_columns=features,
        params=PARAMS[framework],
        num_workers=1,  # one GPU: NCCL refuses two ranks on one device
        cpus_per_worker=2,
        use_gpu=device == "cuda",
        checkpoint_policy=CheckpointPolicy(min_interval_s=3600, keep_last=3),
        checkpoint_every_steps=3,
        faults=faults,
        text_column=text,
    )


def _expect(condition: bool, what: str, outcome: TrainingOutcome) -> None:
    if not condition:
        raise AssertionError(f"{what}; the run's log:\n" + "\n".join(outcome.log_lines))


def scenario(framework: str, root: Path, device: str) -> list[Result]:
    preempted = fit(framework, _run(framework, root, FaultInjection(preempt_at_step=7), device))
    _expect(preempted.status == "preempted" and preempted.final_step == 7, "preempted at step 7", preempted)
    _expect(any(f"trains on {device}" in line for line in preempted.log_lines), f"trained on {device}", preempted)
    newest = Path(preempted.checkpoints[-1])
    victim = next(p for p in sorted(newest.rglob("*")) if p.is_file() and p.name != MANIFEST)
    victim.write_bytes(victim.read_bytes() + b"corrupt")
    finished = fit(framework, _run(framework, root, FaultInjection(fail_at_step=8), device))
    _expect(finished.status == "succeeded" and finished.final_step == 12, "finished at step 12", finished)
    _expect(finished.resumed_from_step == 6, "resumed from step 6 past the corrupt checkpoint", finished)
    rerun = finished.log_lines[finished.log_lines.index("Preemption notice at step 7: checkpoint_now") :]
    _expect(any(line.startswith(f"Rejected checkpoint {newest.name}") for line in rerun), "rejected", finished)
    _expect(rerun.count("Resumed from step 6") == 2, "resumed twice (rerun, then after the worker kill)", finished)
    devices = sorted({line for line in finished.log_lines if "trains on" in line})
    metric = "valid_perplexity" if framework == "deepspeed" else "valid_rmse"
    if framework == "deepspeed":
        shutil.rmtree(Path(finished.model).parent)
    print(f"{framework}: {devices}")
    return [
        Result(f"{framework} on {device}: run preempted at step 7, wall", preempted.metrics["wall_time_s"], "s"),
        Result(
            f"{framework} on {device}: rerun after corruption and a worker kill, wall",
            finished.metrics["wall_time_s"],
            "s",
        ),
        Result(f"{framework} on {device}: final {metric}", finished.metrics[metric], ""),
        Result(f"{framework} on {device}: resumed from step", float(finished.resumed_from_step or 0), "step"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--without-gpu", action="store_true", help="check the script on CPU; writes nothing")
    args = parser.parse_args()
    if not args.without_gpu and not torch.cuda.is_available():
        print("gpu_training: no CUDA device here; nothing measured (run it on a GPU machine)")
        return
    device = "cpu" if args.without_gpu else "cuda"
    ray.init(num_cpus=8, num_gpus=0 if args.without_gpu else 1, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as root:
        for framework in PARAMS:
            results += scenario(framework, Path(root) / framework, device)
    ray.shutdown()
    if args.without_gpu:
        print([(r.metric, r.value) for r in results])
        return
    notes = (
        f"GPU: {torch.cuda.get_device_name(0)}; one Ray Train worker with 1 GPU, NCCL; the fault scenario of "
        "tests/integration/test_trainers.py (preempt at 7, corrupt the newest checkpoint, kill the worker at 8), "
        "every step of it checked; wall times include Ray Train's worker start and checkpoint uploads"
    )
    report("gpu_training", results, notes)


if __name__ == "__main__":
    main()
