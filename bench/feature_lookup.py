"""The feature lookup API as users call it, each call next to the raw read of the same keys in the same run.

Three hops, 1 / 10 / 100 entities x 5 / 50 features, on SQLite (embedded) and on Cassandra + Redis (warm:
every key read once first, so Redis holds them):
- in-process: `FeatureServer.get_features`, what a feature-serving actor or a prediction replica runs, against
  the raw store read of the same keys (one `MGET` on Redis; one batched `SELECT` on SQLite);
- actor: a feature-serving actor over Ray, against a bare actor answering a reply of the same size;
- HTTP: `POST /v1/features:get` through Serve's proxy, against a bare Serve deployment answering a body of the
  same size.
Random drivers per call (the L1's 100 ms TTL rarely holds them), an L1 hit (one driver, asked again), and one
lookup of both groups (1 and 10 entities) against the raw read of both groups' keys.
With ``--feast-python`` (a Python that has Feast, e.g. `uv venv /tmp/feast && uv pip install --python
/tmp/feast/bin/python "feast[redis]==0.67.*"`), Feast's `get_online_features` on the same data shape, SQLite and
Redis online stores, is timed in the same run (`bench/_feast_lookup.py`) and each in-process figure compared.
Run: `ma-ray services up`, then `python bench/feature_lookup.py [--drivers 10000] [--calls 1000]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import ray
import requests
from _harness import Result, Target, interleaved_latencies_us, report
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from actors.feature_server import FeatureServer, FeatureServerActor
from apps.feature_api import FeatureAPI
from ma_ray.config import load_settings
from ma_ray.connections import redis_client
from ma_ray.palette import Entity, Feature, FeatureGroup, FeatureRegistry, FeatureRepository, FeatureType
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import EntityRow, OnlineTable, now_us

CATALOG = "lookup_bench"
WIDTHS = (5, 50)
ENTITIES = (1, 10, 100)
JOIN_KEY = "driver_id"


@cache
def repository() -> FeatureRepository:
    """A driver entity with a 5-feature group (driver_stats' shape: one count, four rates) and a 50-feature one."""
    narrow = [Feature(name="trip_count_7d", type=FeatureType.INT, default=0)] + [
        Feature(name=f"rate_{i}", type=FeatureType.FLOAT, default=0.0) for i in range(4)
    ]
    wide = [Feature(name=f"f_{i:02d}", type=FeatureType.FLOAT, default=0.0) for i in range(50)]
    groups = [
        FeatureGroup(name=f"drivers_{len(features)}", entity="driver", owner="bench", source="batch", features=features)
        for features in (narrow, wide)
    ]
    return FeatureRepository(catalog=CATALOG, entities=[Entity(name="driver", join_key=JOIN_KEY)], groups=groups)


@cache
def refs(width: int) -> list[str]:
    group = next(g for g in repository().groups if len(g.features) == width)
    return [f"@palette:{CATALOG}:{group.name}:{f.name}:{JOIN_KEY}" for f in group.features]


def driver(i: int) -> str:
    return f"drv_{i:07d}"


class Backend:
    """One backend's state: settings, a loaded in-process feature server, and the raw read of its primary path."""

    def __init__(self, name: str, drivers: int, state_dir: Path) -> None:
        self.name = name
        overrides: dict[str, Any] = {"state_dir": state_dir}
        if name == "cassandra":
            overrides |= {"online_store": "cassandra", "cassandra_keyspace": f"bench_{uuid.uuid4().hex[:8]}"}
        self.settings = load_settings(**overrides)
        self.p50_us: dict[tuple[int, int], float] = {}  # (entities, features) -> in-process p50, random drivers
        meta = open_meta_store(self.settings)
        FeatureRegistry(meta).apply(repository())
        meta.close()
        self.server = FeatureServer(CATALOG, self.settings.model_dump(mode="json"))
        self.tables = {len(g.features): OnlineTable.of(repository(), g) for g in repository().groups}
        self._load(drivers)
        self.raw_read = self._raw_reader()
        self.raw_read_groups = self._raw_groups_reader()

    def _load(self, drivers: int) -> None:
        store, rng, ts = self.server.resolver.store, np.random.default_rng(0), now_us() - 60_000_000
        for table in self.tables.values():
            store.update(table)
            values = rng.random((drivers, len(table.features)))
            names = list(table.features)
            rows = [EntityRow(driver(i), ts, dict(zip(names, r.tolist(), strict=True))) for i, r in enumerate(values)]
            for row in rows if "trip_count_7d" in names else []:
                row.values["trip_count_7d"] = int(row.values["trip_count_7d"] * 300)
            for start in range(0, drivers, 2000):
                store.put(table, rows[start : start + 2000])
        for width in WIDTHS:  # warm: each key read once through the read path (Redis is filled by reads)
            for start in range(0, drivers, 100):
                self.server.get_features([{JOIN_KEY: driver(i)} for i in range(start, start + 100)], refs(width))

    def _raw_reader(self) -> Callable[[int, list[str]], object]:
        """The raw read of the same keys a lookup's store read takes: Redis MGET, or one batched SQLite SELECT."""
        if self.name == "cassandra":
            client = redis_client(self.settings)
            prefix = f"mr:{self.settings.cassandra.keyspace}"
            return lambda width, keys: client.mget([f"{prefix}:{self.tables[width].name}:{k}" for k in keys])
        db = sqlite3.connect(str(self.settings.state_dir / "online.sqlite"), check_same_thread=False)

        def select(width: int, keys: list[str]) -> object:
            table = self.tables[width]
            columns = ", ".join(f'"{n}"' for n in table.features)
            sql = (
                f'SELECT entity_key, MAX(feature_ts), {columns} FROM "{table.name}" '
                f"WHERE entity_key IN ({', '.join('?' * len(keys))}) AND feature_ts <= ? GROUP BY entity_key"
            )
            return db.execute(sql, (*keys, now_us())).fetchall()

        return select

    def _raw_groups_reader(self) -> Callable[[list[str]], object]:
        """The raw read of the same keys in every group: one MGET of all of them on Redis; each group's SELECT in
        turn on SQLite (one query per table)."""
        if self.name == "cassandra":
            client = redis_client(self.settings)
            prefix = f"mr:{self.settings.cassandra.keyspace}"
            names = [f"{prefix}:{table.name}:" for table in self.tables.values()]
            return lambda keys: client.mget([name + k for name in names for k in keys])
        return lambda keys: [self.raw_read(width, keys) for width in self.tables]

    def close(self) -> None:
        store = self.server.resolver.store
        for table in self.tables.values():
            store.teardown(table)
        if self.name == "cassandra":
            store.primary.drop_keyspace()  # type: ignore[attr-defined]
        store.close()


def key_sets(drivers: int, entities: int, count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[driver(int(i)) for i in rng.choice(drivers, entities, replace=False)] for _ in range(count)]


def cycling(inputs: list[Any], call: Callable[[Any], object]) -> Callable[[], object]:
    """A nullary call that walks ``inputs`` in order, so variants timed in alternation read the same keys."""
    walk: Iterator[Any] = itertools.cycle(inputs)
    return lambda: call(next(walk))


def compare(
    call: Callable[[Any], object], floor: Callable[[Any], object], inputs: list[Any], calls: int, warmup: int = 50
) -> tuple[float, float]:
    """p50 microseconds of ``call`` and ``floor``, timed in alternation over the same ``inputs``."""
    samples = interleaved_latencies_us(
        {"call": cycling(inputs, call), "floor": cycling(inputs, floor)}, calls, warmup=warmup
    )
    return float(np.percentile(samples["call"], 50)), float(np.percentile(samples["floor"], 50))


def lookup(server: FeatureServer, wanted: list[str], keys: list[str]) -> object:
    return server.get_features([{JOIN_KEY: k} for k in keys], wanted)


def remote_lookup(actor: Any, wanted: list[str], rows: list[dict[str, str]]) -> object:
    return ray.get(actor.get_features.remote(rows, wanted))


def post(session: requests.Session, url: str, body: dict) -> None:
    session.post(url, json=body, timeout=30).raise_for_status()


def in_process(backend: Backend, drivers: int, calls: int) -> list[Result]:
    results = []
    for width in WIDTHS:
        for n in ENTITIES:
            sets = key_sets(drivers, n, calls, seed=n * width)
            api, raw = compare(
                partial(lookup, backend.server, refs(width)), partial(backend.raw_read, width), sets, calls
            )
            backend.p50_us[(n, width)] = api
            results.append(
                Result(
                    f"{backend.name}: get_features in-process, {n} x {width}, p50 vs raw store read",
                    api,
                    "us",
                    baseline=raw,
                    target=Target("ratio", "<=", 2.0) if (n, width) == (100, 5) else None,
                )
            )
    return results + l1_hits(backend, calls) + both_groups(backend, drivers, calls)


def l1_hits(backend: Backend, calls: int) -> list[Result]:
    """The same keys asked again: answered by the in-process L1 (the 100 ms TTL refills it now and then)."""
    results = []
    for n, target in ((1, Target("value", "<=", 150)), (100, None)):
        keys = [driver(i) for i in range(n)]
        api, raw = compare(partial(lookup, backend.server, refs(5)), partial(backend.raw_read, 5), [keys], calls)
        results.append(
            Result(
                f"{backend.name}: get_features in-process, L1 hit, {n} x 5, p50 (baseline: raw store read)",
                api,
                "us",
                baseline=raw,
                target=target,
            )
        )
    return results


def both_groups(backend: Backend, drivers: int, calls: int) -> list[Result]:
    """One lookup of both groups' features (a model reading two groups of one entity), against the raw read of every
    group's keys; on Redis also against one raw MGET per group in turn, what the lookup paid before 7 Dec 2026."""
    wanted, results = refs(5) + refs(50), []
    for n in (1, 10):
        sets = key_sets(drivers, n, calls, seed=13 * n)
        variants = {
            "lookup": cycling(sets, partial(lookup, backend.server, wanted)),
            "floor": cycling(sets, backend.raw_read_groups),
        }
        if backend.name == "cassandra":
            variants["per_group"] = cycling(sets, lambda keys: [backend.raw_read(width, keys) for width in WIDTHS])
        p50 = {name: float(np.percentile(us, 50)) for name, us in interleaved_latencies_us(variants, calls).items()}
        shape = f"{n} x (5 + 50), both groups"
        floor = "one raw MGET of both groups' keys" if backend.name == "cassandra" else "each group's raw SELECT"
        results.append(
            Result(
                f"{backend.name}: get_features in-process, {shape}, p50 vs {floor}", p50["lookup"], "us", p50["floor"]
            )
        )
        if "per_group" in p50:
            results.append(
                Result(
                    f"{backend.name}: get_features in-process, {shape}, p50 vs one raw MGET per group in turn",
                    p50["lookup"],
                    "us",
                    baseline=p50["per_group"],
                )
            )
    return results


@ray.remote(num_cpus=0.25)
class BareActor:
    """The floor of an actor hop: the same arguments in, a reply of the same size out."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def get_features(self, rows: list[dict[str, Any]], refs: list[str]) -> Any:
        return self.reply


def over_ray(backend: Backend, drivers: int, calls: int) -> list[Result]:
    actor = FeatureServerActor.remote(CATALOG, backend.settings.model_dump(mode="json"))
    results = []
    for width in WIDTHS:
        for n in ENTITIES:
            rows = [[{JOIN_KEY: k} for k in keys] for keys in key_sets(drivers, n, calls, seed=7 * n + width)]
            bare = BareActor.remote(backend.server.get_features(rows[0], refs(width)))
            api, floor = compare(
                partial(remote_lookup, actor, refs(width)), partial(remote_lookup, bare, refs(width)), rows, calls, 20
            )
            ray.kill(bare)
            results.append(
                Result(
                    f"{backend.name}: feature-serving actor over Ray, {n} x {width}, p50 vs bare actor, same reply",
                    api,
                    "us",
                    baseline=floor,
                )
            )
    ray.kill(actor)
    return results


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25})
class BareHTTP:
    """The floor of the HTTP hop: reads the request body, answers a body of the same size."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, request: Request) -> Response:
        await request.body()
        return Response(self.body, media_type="application/json")


def over_http(backend: Backend, drivers: int, calls: int, port: int) -> list[Result]:
    serve.run(FeatureAPI.bind(CATALOG, backend.settings.model_dump(mode="json")), name="lookup", route_prefix="/f")
    session, results = requests.Session(), []
    for width in WIDTHS:
        for n in ENTITIES:
            sets = key_sets(drivers, n, calls, seed=11 * n + width)
            bodies = [{"rows": [{JOIN_KEY: k} for k in keys], "features": refs(width)} for keys in sets]
            reply = backend.server.get_features(bodies[0]["rows"], refs(width)).to_json()
            serve.run(BareHTTP.bind(reply), name="bare", route_prefix="/bare")
            url = f"http://127.0.0.1:{port}"
            api, floor = compare(
                partial(post, session, f"{url}/f/v1/features:get"),
                partial(post, session, f"{url}/bare"),
                bodies,
                calls,
                20,
            )
            serve.delete("bare")
            results.append(
                Result(
                    f"{backend.name}: POST /v1/features:get, {n} x {width}, p50 vs bare Serve, same body",
                    api,
                    "us",
                    baseline=floor,
                )
            )
    serve.delete("lookup")
    return results


FEAST_BACKENDS = {"sqlite": "sqlite", "cassandra": "redis"}  # ma-ray's backend -> the Feast store it reads like


def against_feast(backends: list[Backend], feast_python: str, drivers: int, calls: int) -> list[Result]:
    """Feast's in-process lookup on the same shapes, run now by ``feast_python``; each ma-ray figure against it."""
    script = Path(__file__).resolve().parent / "_feast_lookup.py"
    wanted = ",".join(FEAST_BACKENDS[b.name] for b in backends)
    command = [feast_python, str(script), "--drivers", str(drivers), "--calls", str(calls), "--backends", wanted]
    feast = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    return [
        Result(
            f"{backend.name}: get_features in-process, {n} x {width}, p50 vs Feast 0.67 get_online_features "
            f"({FEAST_BACKENDS[backend.name]})",
            p50,
            "us",
            baseline=feast[f"{FEAST_BACKENDS[backend.name]} {n} x {width}"],
            target=Target("ratio", "<=", 1.0),
        )
        for backend in backends
        for (n, width), p50 in backend.p50_us.items()
    ]


def main() -> Path:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1000, help="timed in-process calls per figure")
    parser.add_argument("--hop-calls", type=int, default=300, help="timed actor and HTTP calls per figure")
    parser.add_argument("--backends", default="sqlite,cassandra")
    parser.add_argument("--in-process-only", action="store_true", help="skip the actor and HTTP figures")
    parser.add_argument("--feast-python", help="a Python with Feast installed: compare with Feast in this run")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as state_dir:
        backends = [Backend(name, args.drivers, Path(state_dir) / name) for name in args.backends.split(",")]
        try:
            for backend in backends:  # before Ray starts: its daemons would share the two cores with these figures
                results += in_process(backend, args.drivers, args.calls)
            if args.feast_python:
                results += against_feast(backends, args.feast_python, args.drivers, args.calls)
            if args.in_process_only:
                return report("feature_lookup_in_process", results, notes=NOTES)
            ray.init(include_dashboard=False, logging_level="ERROR")
            port = int(18000 + np.random.default_rng().integers(0, 1000))
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            for backend in backends:
                results += over_ray(backend, args.drivers, args.hop_calls)
                results += over_http(backend, args.drivers, args.hop_calls, port)
        finally:
            for backend in backends:
                backend.close()
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
    return report("feature_lookup", results, notes=NOTES)


NOTES = (
    "In-process figures time FeatureServer.get_features (resolver + tiered store + column-wise answer), what "
    "actors and prediction replicas run; the baseline is the raw read of the same keys in the same run (Redis "
    "MGET for Cassandra + Redis, one batched SELECT for SQLite). Actor and HTTP figures are against bare Ray / "
    "Serve answering a reply of the same size: their ratio is what ma-ray adds on top of the hop."
)


if __name__ == "__main__":
    main()
