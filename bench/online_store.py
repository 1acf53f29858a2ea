"""Online feature lookups through ma-ray's tiers, each against a raw-client baseline measured in the same run.

Figures (issue 4): L1 hit (1 entity x 5 features); Redis hit (100 x 5) against the fastest raw redis-py read
of the same keys; Cassandra miss (1 entity, 100 entities) against a raw prepared statement; bulk load
against a naive synchronous insert loop; Zipf-skewed lookups over many drivers through the resolver (the full
read path) with the seed's cache settings: L1 / Redis / Cassandra shares and the hit ratio (issue 15).
Run alone: `python bench/online_store.py [--drivers 1000000] [--lookups 200000]` with `ma-ray services up`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from importlib import resources

import numpy as np
from _harness import Result, Target, interleaved_latencies_us, latencies_us, report

from ma_ray.config import CassandraOnlineStoreConfig, Settings, load_settings
from ma_ray.connections import ONLINE_READ_PROFILE, redis_client
from ma_ray.datagen import driver_id, sample_zipf, zipf_cdf
from ma_ray.palette import FeatureType, load_repository
from ma_ray.palette.online import EntityRow, InProcessCache, OnlineTable, RedisCache, TieredOnlineStore, now_us
from ma_ray.palette.online.cassandra import CassandraOnlineStore
from ma_ray.serving import FeatureResolver, ServingCatalog

with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as _path:
    REPO = load_repository(_path)  # the sample's driver_stats: the five features below

FEATURES = {
    "trip_count_7d": FeatureType.INT,
    "rating_avg": FeatureType.FLOAT,
    "acceptance_rate": FeatureType.FLOAT,
    "cancellation_rate": FeatureType.FLOAT,
    "avg_trip_distance": FeatureType.FLOAT,
}
NAMES = list(FEATURES)


def rows_for(keys: np.ndarray, ts: int, rng: np.random.Generator) -> list[EntityRow]:
    counts, floats = rng.integers(0, 300, len(keys)), rng.random((len(keys), 4))
    return [
        EntityRow(
            str(k),
            ts,
            {
                "trip_count_7d": int(c),
                "rating_avg": 4 + f[0],
                "acceptance_rate": f[1],
                "cancellation_rate": f[2] / 10,
                "avg_trip_distance": 10 * f[3],
            },
        )
        for k, c, f in zip(keys, counts, floats, strict=True)
    ]


def bench_l1(table: OnlineTable) -> list[Result]:
    l1 = InProcessCache(ttl_s=3600)
    l1.put(table, rows_for(np.array(["drv_0000001"]), now_us() - 1, np.random.default_rng(0)))
    read_ts = now_us()
    samples = latencies_us(lambda: l1.get(table, ["drv_0000001"], NAMES, read_ts), 20_000)
    return [
        Result(
            "L1 hit, 1 entity x 5 features, p50",
            float(np.percentile(samples, 50)),
            "us",
            target=Target("value", "<", 20),
        )
    ]


def bench_redis(settings: Settings, table: OnlineTable) -> list[Result]:
    client = redis_client(settings)
    cache = RedisCache(client, prefix=f"bench{uuid.uuid4().hex[:6]}")
    keys = [f"drv_{i:07d}" for i in range(100)]
    cache.put(table, rows_for(np.array(keys), now_us() - 1, np.random.default_rng(1)))
    raw_keys = [cache._key(table, k) for k in keys]

    def pipelined() -> object:
        pipe = client.pipeline(transaction=False)
        for key in raw_keys:
            pipe.get(key)
        return pipe.execute()

    read_ts = now_us()
    samples = interleaved_latencies_us(
        {
            "ma-ray": lambda: cache.get(table, keys, NAMES, read_ts),
            "mget": lambda: client.mget(raw_keys),
            "pipeline": pipelined,
        },
        3000,
    )
    p50 = {name: float(np.percentile(s, 50)) for name, s in samples.items()}
    fastest = min(p50["mget"], p50["pipeline"])
    cache.teardown(table)
    return [
        Result("Redis hit, 100 entities x 5 features, p50", p50["ma-ray"], "us", target=Target("value", "<", 500)),
        Result(
            "Redis hit, 100 x 5, p50 vs fastest raw redis-py read",
            p50["ma-ray"],
            "us",
            baseline=fastest,
            target=Target("ratio", "<=", 1.5),
        ),
    ]


def bench_cassandra(settings: Settings, store: CassandraOnlineStore, table: OnlineTable) -> list[Result]:
    keys = [f"drv_{i:07d}" for i in range(100)]
    store.put(table, rows_for(np.array(keys), now_us() - 1, np.random.default_rng(2)))
    session = store._session
    raw = session.prepare(
        f"SELECT feature_timestamp, {', '.join(NAMES)} FROM {store.keyspace}.{table.name} "
        "WHERE entity_key = ? AND feature_timestamp <= ? LIMIT 1"
    )
    raw.is_idempotent = True
    read_ts = now_us()
    one = interleaved_latencies_us(
        {
            "ma-ray": lambda: store.get(table, ["drv_0000042"], NAMES, read_ts),
            "raw": lambda: session.execute(raw, ("drv_0000042", read_ts), execution_profile=ONLINE_READ_PROFILE).one(),
        },
        2000,
    )
    hundred = latencies_us(lambda: store.get(table, keys, NAMES, read_ts), 300, warmup=20)
    p99, raw_p99 = float(np.percentile(one["ma-ray"], 99)), float(np.percentile(one["raw"], 99))
    return [
        Result("Cassandra miss, 1 entity, p99", p99, "us", target=Target("value", "<", 5000)),
        Result(
            "Cassandra miss, 1 entity, p99 vs raw prepared statement",
            p99,
            "us",
            baseline=raw_p99,
            target=Target("ratio", "<=", 1.3),
        ),
        Result(
            "Cassandra miss, 1 entity, p50 vs raw prepared statement",
            float(np.percentile(one["ma-ray"], 50)),
            "us",
            baseline=float(np.percentile(one["raw"], 50)),
        ),
        Result(
            "Cassandra miss, 100 entities, p50",
            float(np.percentile(hundred, 50)),
            "us",
            target=Target("value", "<", 5000),
        ),
    ]


def bench_bulk_load(store: CassandraOnlineStore, table: OnlineTable, drivers: int) -> tuple[list[Result], int]:
    rng = np.random.default_rng(3)
    naive_rows = rows_for(driver_id(np.arange(2000)), now_us() - 10, rng)
    insert = store._write_statement(table)
    started = time.perf_counter()
    for r in naive_rows:
        store._session.execute(insert, (r.key, r.feature_ts, *(r.values[n] for n in NAMES)))
    naive_rate = len(naive_rows) / (time.perf_counter() - started)
    loaded, ts, started = 0, now_us() - 5, time.perf_counter()
    for start in range(0, drivers, 20_000):
        batch = driver_id(np.arange(start, min(drivers, start + 20_000)))
        store.put(table, rows_for(batch, ts, rng))
        loaded += len(batch)
    rate = loaded / (time.perf_counter() - started)
    return [
        Result(
            f"bulk load into Cassandra ({loaded:,} rows)",
            rate,
            "rows/s",
            baseline=naive_rate,
            target=Target("ratio", ">=", 10),
        )
    ], loaded


def bench_zipf_hit_ratio(
    settings: Settings, store: CassandraOnlineStore, table: OnlineTable, drivers: int, lookups: int, exponent: float
) -> list[Result]:
    """The full read path a prediction takes (`FeatureResolver`: L1 -> Redis -> Cassandra, read-through only,
    nothing pre-warmed) with the seed's settings (L1 10,000 entries / 100 ms, Redis 300 s): a warm-up pass of
    ``lookups`` Zipf-drawn drivers, then a measured pass of as many (the steady state of a serving instance),
    10 drivers a request. Beside it, the share of traffic the hottest 10,000 drivers take and how many drivers a
    cache must hold to answer 95% of it (the key count a deployment's Redis must keep warm)."""
    config = settings.online_store
    assert isinstance(config, CassandraOnlineStoreConfig), "the read path bench runs on the production store"
    redis_cache = RedisCache(
        redis_client(settings), ttl_s=config.redis_cache_ttl_s, prefix=f"zipf{uuid.uuid4().hex[:6]}"
    )
    l1 = InProcessCache(config.l1_cache_ttl_s, config.l1_cache_max_entries)
    tiered = TieredOnlineStore(store, [l1, redis_cache])
    resolver = FeatureResolver(ServingCatalog(REPO), tiered, timeout_s=2.0)
    refs = [f"@palette:rideshare:driver_stats:{name}:driver_id" for name in NAMES]
    rng = np.random.default_rng(4)
    cdf, by_rank = zipf_cdf(drivers, exponent, rng)
    keys = driver_id(sample_zipf(cdf, by_rank, 2 * lookups, rng)).tolist()
    requests = [[{"driver_id": k} for k in keys[i : i + 10]] for i in range(0, 2 * lookups, 10)]
    for rows in requests[: len(requests) // 2]:
        resolver.resolve(rows, refs)
    tiered.served.clear()
    started = time.perf_counter()
    for rows in requests[len(requests) // 2 :]:
        resolver.resolve(rows, refs)
    elapsed = time.perf_counter() - started
    served = tiered.served
    total = sum(served.values())
    redis_cache.teardown(table)
    label = f"Zipf(s={exponent}), {drivers:,} drivers, through the resolver"
    return [
        Result(
            f"{label}: hit ratio (L1 + Redis)",
            (served["l1"] + served["redis"]) / total,
            "ratio",
            target=Target("value", ">=", 0.95) if exponent >= 1.2 else None,
        ),
        Result(f"{label}: L1 share", served["l1"] / total, "ratio"),
        Result(f"{label}: Redis share", served["redis"] / total, "ratio"),
        Result(f"{label}: Cassandra share", served["cassandra"] / total, "ratio"),
        Result(f"{label}: traffic share of the 10,000 hottest drivers", float(cdf[9_999]), "ratio"),
        Result(f"{label}: drivers that take 95% of the traffic", int(np.searchsorted(cdf, 0.95)) + 1, "drivers"),
        Result(f"{label}: throughput, one client, 10 drivers a request", total / elapsed, "lookups/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    settings = load_settings().replaced(cassandra_request_timeout_s=2.0)
    table = OnlineTable.of(REPO, next(g for g in REPO.groups if g.name == "driver_stats"))
    store = CassandraOnlineStore(settings, keyspace="ma_ray_bench_online")
    store.teardown(table)
    store.update(table)
    results = bench_l1(table) + bench_redis(settings, table) + bench_cassandra(settings, store, table)
    load_results, _ = bench_bulk_load(store, table, args.drivers)
    results += load_results
    for exponent in (1.0, 1.2):
        results += bench_zipf_hit_ratio(settings, store, table, args.drivers, args.lookups, exponent)
    store.drop_keyspace()
    store.close()
    report("online_store", results)


if __name__ == "__main__":
    main()
