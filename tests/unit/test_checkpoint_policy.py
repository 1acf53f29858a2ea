import pytest

from ma_ray.storage import FileDigest, FileEntry
from ma_ray.training.checkpoint_policy import (
    TUNED_MIN_INTERVAL_S,
    CheckpointManifest,
    CheckpointPolicy,
    PreemptionAction,
    latest_valid,
    on_preemption_notice,
    problems,
)


def manifest(step: int, *files: tuple[str, str, int], created_at: float | None = None) -> CheckpointManifest:
    entries = tuple(FileEntry(path, size, sha) for path, sha, size in files) or (
        FileEntry("model.pt", 100, f"sha-{step}"),
    )
    return CheckpointManifest(
        f"ckpt-{step}", step, step // 100, float(step) if created_at is None else created_at, entries
    )


def store_of(*manifests: CheckpointManifest) -> dict[tuple[str, str], FileDigest]:
    return {(m.checkpoint_id, f.path): FileDigest(f.sha256, f.size) for m in manifests for f in m.files}


def test_interval_is_the_larger_of_the_minimum_and_ten_percent() -> None:
    policy = CheckpointPolicy()
    assert policy.interval_s(3600) == 600  # 10 % of an hour is 6 min: the 10-minute floor wins
    assert policy.interval_s(10 * 3600) == 3600
    assert CheckpointPolicy(min_interval_s=TUNED_MIN_INTERVAL_S).interval_s(3600) == 900
    assert CheckpointPolicy(fraction_of_estimate=0.25).interval_s(10 * 3600) == 9000
    assert policy.is_due(now_s=700, last_checkpoint_s=100, estimated_duration_s=3600)
    assert not policy.is_due(now_s=699, last_checkpoint_s=100, estimated_duration_s=3600)


@pytest.mark.parametrize("kwargs", [{"min_interval_s": 0}, {"fraction_of_estimate": 0}, {"keep_last": 0}])
def test_invalid_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="invalid checkpoint policy"):
        CheckpointPolicy(**kwargs)


def test_retention_keeps_the_newest_n_and_deletes_the_rest_oldest_first() -> None:
    manifests = [manifest(s) for s in (500, 100, 400, 200, 300)]
    assert [m.step for m in CheckpointPolicy().to_delete(manifests)] == [100, 200]
    assert [m.step for m in CheckpointPolicy(keep_last=1).to_delete(manifests)] == [100, 200, 300, 400]
    assert CheckpointPolicy().to_delete(manifests[:3]) == []


def test_latest_valid_falls_back_when_the_latest_is_corrupt() -> None:
    good, bad = manifest(100), manifest(200)
    store = store_of(good, bad)
    store[("ckpt-200", "model.pt")] = FileDigest("garbage", 100)
    selection = latest_valid([bad, good], lambda cid, path: store.get((cid, path)))
    assert selection.chosen == good
    assert selection.rejected == {"ckpt-200": ["model.pt: sha256 mismatch"]}


def test_missing_and_truncated_files_and_empty_manifests_are_invalid() -> None:
    m = manifest(300, ("model.pt", "a", 10), ("optim.pt", "b", 20), ("rng.pkl", "c", 1))
    store = {("ckpt-300", "model.pt"): FileDigest("a", 9), ("ckpt-300", "rng.pkl"): FileDigest("c", 1)}
    assert problems(m, lambda cid, path: store.get((cid, path))) == ["model.pt: size 9 != 10", "optim.pt: missing"]
    empty = CheckpointManifest("ckpt-0", 0, 0, 0.0, ())
    assert problems(empty, lambda cid, path: None) == ["manifest lists no files"]


def test_no_valid_checkpoint_means_start_from_scratch() -> None:
    selection = latest_valid([manifest(100), manifest(200)], lambda cid, path: None)
    assert selection.chosen is None and set(selection.rejected) == {"ckpt-100", "ckpt-200"}
    assert latest_valid([], lambda cid, path: None).chosen is None


def test_equal_steps_are_ordered_by_creation_time() -> None:
    older, newer = manifest(100, created_at=1.0), manifest(100, created_at=2.0)
    newer = CheckpointManifest("ckpt-100b", 100, 1, 2.0, newer.files)
    store = store_of(older, newer)
    assert latest_valid([newer, older], lambda cid, path: store.get((cid, path))).chosen == newer


def test_manifest_round_trips_and_malformed_ones_are_refused() -> None:
    m = manifest(300, ("model.pt", "a" * 64, 10))
    assert CheckpointManifest.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="malformed checkpoint manifest"):
        CheckpointManifest.from_dict({"checkpoint_id": "x", "step": 1})
    with pytest.raises(ValueError, match="malformed checkpoint manifest"):
        CheckpointManifest.from_dict({**m.to_dict(), "step": "not-a-number"})


def test_preemption_notice_decisions() -> None:
    assert on_preemption_notice(500, 400, seconds_left=30, expected_save_s=10) == PreemptionAction.CHECKPOINT_NOW
    assert on_preemption_notice(500, None, seconds_left=30, expected_save_s=10) == PreemptionAction.CHECKPOINT_NOW
    assert on_preemption_notice(500, 500, seconds_left=30, expected_save_s=10) == PreemptionAction.STOP_NOTHING_NEW
    assert on_preemption_notice(500, 400, seconds_left=5, expected_save_s=10) == PreemptionAction.STOP_NO_TIME
