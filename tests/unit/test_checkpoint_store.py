"""The checkpoint store on a local folder: layout, manifest, validation with fallback, restore, retention; and
the training/random state that goes into every checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ma_ray.training.checkpoint_policy import CheckpointPolicy
from ma_ray.training.checkpoint_state import TrainingState, capture_rng, read_state, restore_rng, write_state
from ma_ray.training.checkpoint_store import MANIFEST, CheckpointStore


def _stage(tmp_path: Path, name: str, payload: bytes) -> Path:
    folder = tmp_path / f"stage-{name}"
    (folder / "nested").mkdir(parents=True)
    (folder / "model.bin").write_bytes(payload)
    (folder / "nested" / "state.json").write_text(json.dumps({"name": name}))
    return folder


def _store(tmp_path: Path, keep_last: int = 3) -> CheckpointStore:
    return CheckpointStore(str(tmp_path / "ckpt"), "run-1", CheckpointPolicy(keep_last=keep_last))


def test_save_writes_files_and_a_manifest_with_checksums(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = store.save(_stage(tmp_path, "a", b"weights"), step=10, epoch=1)
    folder = tmp_path / "ckpt" / "run-1" / manifest.checkpoint_id
    stored = json.loads((folder / MANIFEST).read_text())
    assert (stored["step"], stored["epoch"]) == (10, 1)
    assert {f["path"]: f["size"] for f in stored["files"]} == {"model.bin": 7, "nested/state.json": 13}
    assert store.latest_valid().chosen == manifest


def test_newest_valid_checkpoint_is_chosen_and_a_corrupt_one_falls_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    older = store.save(_stage(tmp_path, "a", b"one"), step=1, epoch=0)
    newer = store.save(_stage(tmp_path, "b", b"two"), step=2, epoch=0)
    assert store.latest_valid().chosen == newer

    (tmp_path / "ckpt" / "run-1" / newer.checkpoint_id / "model.bin").write_bytes(b"TWO")
    selection = store.latest_valid()
    assert selection.chosen == older
    assert selection.rejected == {newer.checkpoint_id: ["model.bin: sha256 mismatch"]}


def test_missing_file_unreadable_manifest_and_unfinished_save_are_not_used(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.save(_stage(tmp_path, "a", b"one"), step=1, epoch=0)
    second = store.save(_stage(tmp_path, "b", b"two"), step=2, epoch=0)
    third = store.save(_stage(tmp_path, "c", b"three"), step=3, epoch=0)
    root = tmp_path / "ckpt" / "run-1"
    (root / third.checkpoint_id / MANIFEST).write_text("{not json")
    (root / second.checkpoint_id / "nested" / "state.json").unlink()
    store.write_files("step-0000000004-unfinished", _stage(tmp_path, "d", b"four"))  # no manifest: never committed

    selection = store.latest_valid()
    assert selection.chosen == first
    assert selection.rejected[second.checkpoint_id] == ["nested/state.json: missing"]
    assert selection.rejected[third.checkpoint_id][0].startswith(MANIFEST)
    assert "step-0000000004-unfinished" not in selection.rejected


def test_restore_copies_the_checkpoint_files(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = store.save(_stage(tmp_path, "a", b"weights"), step=5, epoch=2)
    out = store.restore(manifest, tmp_path / "restored")
    assert (out / "model.bin").read_bytes() == b"weights"
    assert json.loads((out / "nested" / "state.json").read_text()) == {"name": "a"}


def test_prune_keeps_the_newest_n(tmp_path: Path) -> None:
    store = _store(tmp_path, keep_last=2)
    saved = [store.save(_stage(tmp_path, str(step), b"x" * step), step=step, epoch=0) for step in (1, 2, 3, 4)]
    assert store.prune() == [saved[0].checkpoint_id, saved[1].checkpoint_id]
    remaining, _ = store.manifests()
    assert [m.step for m in sorted(remaining, key=lambda m: m.order)] == [3, 4]
    assert not (tmp_path / "ckpt" / "run-1" / saved[0].checkpoint_id).exists()


def test_an_empty_or_absent_run_has_nothing_to_resume(tmp_path: Path) -> None:
    selection = _store(tmp_path).latest_valid()
    assert selection.chosen is None and selection.rejected == {}


def test_run_id_must_be_one_folder_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run id"):
        CheckpointStore(str(tmp_path), "a/b")


def test_file_uri_works_like_a_path(tmp_path: Path) -> None:
    store = CheckpointStore(f"file://{tmp_path}/ckpt", "run-1")
    manifest = store.save(_stage(tmp_path, "a", b"weights"), step=1, epoch=0)
    assert _store(tmp_path).latest_valid().chosen == manifest
    assert store.uri(manifest.checkpoint_id) == f"file://{tmp_path}/ckpt/run-1/{manifest.checkpoint_id}"


def test_training_and_random_state_round_trip(tmp_path: Path) -> None:
    import torch

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    rng = capture_rng()
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    state = TrainingState(epoch=3, step=120, best_metric=0.25, step_in_epoch=7)
    write_state(tmp_path, state, [rng, capture_rng()])

    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    saved = read_state(tmp_path)
    assert saved.training == state
    restore_rng(saved.rng_for(0) or {})
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert saved.rng_for(5) == saved.rng[0]
