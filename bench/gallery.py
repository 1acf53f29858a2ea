"""Gallery: alias resolution from the store (Cassandra) and from the cache, and alias change -> every
subscriber invalidated over Redis pub/sub, each against a baseline measured in the same run.

Figures (issue 6): resolution from Cassandra p50 < 1 ms (baseline: the raw prepared SELECT it issues);
from the cache, microseconds (baseline: a bare dict lookup); alias change -> all N subscribers invalidated,
p99 < 1 s (baseline: the compare-and-set write alone, without the broadcast).
Run alone: `python bench/gallery.py [--subscribers 20] [--changes 100]` with `ma-ray services up`.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import numpy as np
from _harness import Result, Target, interleaved_latencies_us, report

from ma_ray.config import load_settings
from ma_ray.connections import redis_client
from ma_ray.gallery import AliasCache, ArtifactStore, Gallery, RedisAliasBus, VersionSpec
from ma_ray.gallery.store.cassandra import CassandraGalleryStore

MODEL = "bench_eta"


def setup(gallery: Gallery, tmp: str, versions: int = 2) -> None:
    gallery.register_model(name=MODEL, owner="bench", tier=1, framework="other")
    with open(f"{tmp}/w.bin", "wb") as handle:
        handle.write(b"w" * 1024)
    published = gallery.artifacts.publish(MODEL, f"{tmp}/w.bin", "other")
    spec = VersionSpec(
        artifact_uri=published.uri, checksum=published.checksum, size_bytes=published.size_bytes, flavor="other"
    )
    for _ in range(versions):
        gallery.register_version(MODEL, spec)
    gallery.set_alias(MODEL, "production", 1)


def bench_resolution(gallery: Gallery, store: CassandraGalleryStore) -> list[Result]:
    session, raw = store._session, store._alias_state
    samples = interleaved_latencies_us(
        {
            "gallery": lambda: gallery.resolve(MODEL, "production"),
            "raw": lambda: session.execute(raw, (MODEL, "production")).one(),
        },
        3000,
    )
    p50 = {k: float(np.percentile(v, 50)) for k, v in samples.items()}
    cache = AliasCache(gallery.resolve, ttl_s=3600)
    lookup = {(MODEL, "production"): 1}
    cached = interleaved_latencies_us(
        {"cache": lambda: cache.get(MODEL, "production"), "dict": lambda: lookup[(MODEL, "production")]}, 50_000
    )
    cache_p50 = {k: float(np.percentile(v, 50)) for k, v in cached.items()}
    return [
        Result("alias resolution from Cassandra, p50", p50["gallery"], "us", target=Target("value", "<", 1000)),
        Result(
            "alias resolution from Cassandra, p50 vs raw prepared SELECT",
            p50["gallery"],
            "us",
            baseline=p50["raw"],
            target=Target("ratio", "<=", 1.5),
        ),
        Result("alias resolution from Cassandra, p99", float(np.percentile(samples["gallery"], 99)), "us"),
        Result(
            "alias resolution from the cache (hit), p50",
            cache_p50["cache"],
            "us",
            baseline=cache_p50["dict"],
            target=Target("value", "<", 10),
        ),
    ]


def bench_invalidation(gallery: Gallery, bus: RedisAliasBus, subscribers: int, changes: int) -> list[Result]:
    seen: dict[str, list[float]] = {}
    lock = threading.Lock()

    def handler(change) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        with lock:
            seen.setdefault(change.event_id, []).append(now)

    caches = []
    for i in range(subscribers):
        cache = AliasCache(gallery.resolve, ttl_s=3600)
        caches.append(cache)
        bus.subscribe(f"bench-replica-{i}", lambda c, cache=cache: (cache.on_change(c), handler(c)))
    invalidated, acknowledged, cas_only = [], [], []
    for _ in range(changes):
        started = time.perf_counter()
        gallery._swap(MODEL, "production", 2, expected=1, reason="bench: write only")
        cas_only.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()
        event = gallery.set_alias(MODEL, "production", 1, expected=2, reason="bench")
        propagation = gallery.wait_for_propagation(event.event_id, timeout_s=5)
        acknowledged.append((time.perf_counter() - started) * 1e6)
        assert propagation.complete, propagation.laggards
        invalidated.append((max(seen[event.event_id]) - started) * 1e6)
        assert len(seen[event.event_id]) == subscribers
    inv = np.array(invalidated)
    label = f"alias change -> all {subscribers} Redis subscribers invalidated"
    return [
        Result(f"{label}, p50", float(np.percentile(inv, 50)), "us"),
        Result(
            f"{label}, p99",
            float(np.percentile(inv, 99)),
            "us",
            baseline=float(np.percentile(cas_only, 99)),
            target=Target("value", "<", 1_000_000),
        ),
        Result(f"{label} and acknowledged (wait_for_propagation), p99", float(np.percentile(acknowledged, 99)), "us"),
        Result("alias compare-and-set alone (Cassandra LWT batch), p50", float(np.percentile(cas_only, 50)), "us"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    settings = load_settings()
    store = CassandraGalleryStore(settings, keyspace="ma_ray_bench_gallery")
    store.drop()
    store = CassandraGalleryStore(settings, keyspace="ma_ray_bench_gallery")
    bus = RedisAliasBus(redis_client(settings), namespace="ma_ray_bench:gallery")
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery(store, ArtifactStore(f"{tmp}/artifacts"), bus, user="bench")
        setup(gallery, tmp)
        results = bench_resolution(gallery, store)
        results += bench_invalidation(gallery, bus, args.subscribers, args.changes)
        bus.close()
    store.drop()
    store.close()
    report("gallery", results)


if __name__ == "__main__":
    main()
