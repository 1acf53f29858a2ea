"""The node-local artifact cache: one verified fetch per node, loads from local disk in native formats
(XGBoost UBJ, PyTorch state dict memory-mapped), corrupted sources never cached; pruned to a disk budget, least
recently used first, never an entry just fetched or pinned by a live process."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ma_ray.gallery.artifacts import MANIFEST, ArtifactStore, PublishedArtifact
from ma_ray.gallery.errors import CorruptArtifactError
from ma_ray.gallery.flavors import flavor
from ma_ray.serving.artifact_cache import PINS, TRASH_PREFIX, LocalArtifactCache
from ma_ray.serving.frameworks import serving_framework

FACTORY = "ma_ray.training.trainers.torch_trainer:mlp"
WEIGHTS = 10_000  # bytes of data per pruning-test artifact; its entry adds a manifest of a few hundred bytes
TWO_ENTRIES = 25_000  # a budget that holds two such entries, not three


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
    assert serving_framework("xgboost").load(second).predict(x) == model.inplace_predict(x).tolist()


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
    artifact = LocalArtifactCache(tmp_path / "node").get(published.uri, published.checksum)
    loaded = serving_framework("pytorch").load(artifact).module
    x = torch.rand(3, 4)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), module(x)) and not loaded.training


def publish_blob(tmp_path: Path, tag: str, shards: int = 1) -> PublishedArtifact:
    """An artifact of WEIGHTS random bytes in ``shards`` files (pruning never loads it: any flavor name does)."""
    src = tmp_path / "blobs" / tag
    src.mkdir(parents=True)
    for shard in range(shards):
        (src / f"weights-{shard}.bin").write_bytes(os.urandom(WEIGHTS // shards))
    return ArtifactStore(str(tmp_path / "remote")).publish("m", src, "xgboost")


def entries(cache: LocalArtifactCache) -> set[str]:
    return {p.name for p in cache.root.iterdir() if not p.name.startswith(".")}


def name(published: PublishedArtifact) -> str:
    return published.checksum.removeprefix("sha256:")


def age(cache: LocalArtifactCache, published: PublishedArtifact, mtime: float) -> None:
    os.utime(cache.root / name(published), (mtime, mtime))  # as if last used long ago: no sleeping in tests


def disk_bytes(cache: LocalArtifactCache) -> int:
    return sum(f.stat().st_size for e in entries(cache) for f in (cache.root / e).rglob("*") if f.is_file())


def test_a_fetch_evicts_least_recently_used_entries_to_the_budget(tmp_path: Path) -> None:
    a, b, c = (publish_blob(tmp_path, tag) for tag in "abc")
    cache = LocalArtifactCache(tmp_path / "node", max_bytes=TWO_ENTRIES)
    cache.get(a.uri, a.checksum)
    cache.get(b.uri, b.checksum)
    age(cache, a, 1_000)
    age(cache, b, 2_000)
    assert not cache.get(a.uri, a.checksum).fetched  # a hit: a is now the most recently used
    assert entries(cache) == {name(a), name(b)} and cache.evicted_total == 0  # hits never prune
    cache.get(c.uri, c.checksum)
    assert entries(cache) == {name(a), name(c)}
    assert cache.evicted_total == 1 and WEIGHTS < cache.evicted_bytes_total < 2 * WEIGHTS
    assert disk_bytes(cache) <= TWO_ENTRIES


def test_an_unbounded_cache_never_prunes(tmp_path: Path) -> None:
    published = [publish_blob(tmp_path, tag) for tag in "abc"]
    cache = LocalArtifactCache(tmp_path / "node")
    for p in published:
        cache.get(p.uri, p.checksum)
    assert entries(cache) == {name(p) for p in published} and cache.prune() == []


def test_the_entry_just_fetched_is_kept_even_over_the_budget(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = publish_blob(tmp_path, "a"), publish_blob(tmp_path, "b")
    cache = LocalArtifactCache(tmp_path / "node", max_bytes=WEIGHTS // 2)
    with caplog.at_level(logging.WARNING, logger="ma_ray.serving.artifact_cache"):
        assert cache.get(a.uri, a.checksum).path.joinpath("weights-0.bin").stat().st_size == WEIGHTS
    assert entries(cache) == {name(a)} and "over its" in caplog.text
    cache.get(b.uri, b.checksum)
    assert entries(cache) == {name(b)}


def test_pinned_entries_are_kept_until_unpinned(tmp_path: Path) -> None:
    a, b, c = (publish_blob(tmp_path, tag) for tag in "abc")
    cache = LocalArtifactCache(tmp_path / "node", max_bytes=0)
    other_replica = LocalArtifactCache(tmp_path / "node", max_bytes=0)  # its own pin files, same process
    cache.pin(a.checksum)
    cache.pin(a.checksum)  # two loaded models sharing one artifact
    other_replica.pin(b.checksum)
    cache.get(a.uri, a.checksum)
    cache.get(b.uri, b.checksum)
    cache.get(c.uri, c.checksum)
    assert entries(cache) == {name(a), name(b), name(c)}
    cache.unpin(a.checksum)
    other_replica.unpin(b.checksum)
    assert set(cache.prune()) == {b.checksum, c.checksum} and entries(cache) == {name(a)}  # a: one pin left
    cache.unpin(a.checksum)
    assert cache.prune() == [a.checksum] and entries(cache) == set()
    assert list((cache.root / PINS).iterdir()) == []


def pin_in_child(root: Path, checksum: str, wait: bool) -> subprocess.Popen[str]:
    """Another process pins ``checksum`` (and stays alive until its stdin closes, if ``wait``)."""
    code = (
        "import sys\n"
        "from ma_ray.serving.artifact_cache import LocalArtifactCache\n"
        f"LocalArtifactCache({str(root)!r}).pin({checksum!r})\n"
        "print('pinned', flush=True)\n" + ("sys.stdin.read()\n" if wait else "")
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "pinned\n"
    return child


def test_a_live_process_pin_keeps_its_entry_and_a_dead_ones_is_removed(tmp_path: Path) -> None:
    a, b = publish_blob(tmp_path, "a"), publish_blob(tmp_path, "b")
    cache = LocalArtifactCache(tmp_path / "node", max_bytes=0)
    cache.get(a.uri, a.checksum)
    alive = pin_in_child(cache.root, a.checksum, wait=True)
    try:
        assert cache.prune() == [] and entries(cache) == {name(a)}
    finally:
        alive.communicate("")  # it exits without unpinning: its pin file stays, with a dead pid
    dead = pin_in_child(cache.root, b.checksum, wait=False)
    dead.wait()
    cache.get(b.uri, b.checksum)  # the fetch's prune evicts a: both pins are stale
    assert entries(cache) == {name(b)}
    assert list((cache.root / PINS).iterdir()) == []
    assert cache.prune() == [b.checksum]


def test_trash_is_never_served_and_leftovers_are_deleted(tmp_path: Path) -> None:
    a, b = publish_blob(tmp_path, "a"), publish_blob(tmp_path, "b")
    cache = LocalArtifactCache(tmp_path / "node", max_bytes=TWO_ENTRIES)
    cache.get(a.uri, a.checksum)
    os.rename(cache.root / name(a), cache.root / f"{TRASH_PREFIX}crashed")  # a pruner died before deleting
    again = cache.get(a.uri, a.checksum)
    assert again.fetched and again.path == cache.root / name(a)
    cache.get(b.uri, b.checksum)
    assert not list(cache.root.glob(f"{TRASH_PREFIX}*")) and entries(cache) == {name(a), name(b)}


def churn(root: str, max_bytes: int, artifacts: list[tuple[str, str]], rounds: int) -> tuple[int, list[str]]:
    """Get each artifact in turn (each fetch prunes the others'); returns the evictions and every get that
    returned an entry with a file missing while its directory was still there (a half-deleted entry)."""
    cache = LocalArtifactCache(root, max_bytes=max_bytes)
    torn = []
    for _ in range(rounds):
        for uri, checksum in artifacts:
            got = cache.get(uri, checksum)
            missing = [f.path for f in got.manifest.files if not (got.path / f.path).is_file()]
            if missing and got.path.exists():  # only this process fetches these: a gone file means a gone entry
                torn.append(f"{got.path}: {missing}")
    return cache.evicted_total, torn


def test_concurrent_gets_and_prunes_never_serve_a_half_deleted_entry(tmp_path: Path) -> None:
    # Many files per entry: deleting one in place (not renamed away first) would leave it half there a while.
    blobs = [(p.uri, p.checksum) for p in (publish_blob(tmp_path, tag, shards=100) for tag in "abcd")]
    root = str(tmp_path / "node")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(churn, [(root, WEIGHTS, blobs[:2], 30), (root, WEIGHTS, blobs[2:], 30)])
    assert [torn for _, torn in results] == [[], []]
    assert all(evicted > 0 for evicted, _ in results)  # both processes pruned
    assert not list(Path(root).glob(f"{TRASH_PREFIX}*"))
