"""End-to-end HTTP predictions of an XGBoost model with 10 inputs served from cache, against bare Ray Serve
deployments through the same ingress, in the same run.

Endpoints behind one Serve ingress, timed in alternation so drift on a shared machine hits them alike (the
targets' pair, ``predict`` and ``body``, alternating with each other only; then all four in turn, for the
diagnostics against ``bare`` and ``hop``, whose three replica calls between two predictions evict more of the
prediction's caches on a 2-core box):
``predict`` (the prediction application: a tier-1 replica takes HTTP and answers itself: features, DSL,
XGBoost), ``bare`` (one deployment returning a constant), ``body`` (a bare multiplexed deployment that reads and
parses the same JSON body and gets its model from Serve's multiplexed cache: the floor the targets use, with as
many replicas as the tier-1 pool that takes the prediction's requests; with the default proxy a replica fetches a
body with one more Ray call, which ``bare`` never makes), ``hop`` (an ingress deployment calling a constant
deployment through a handle: what the old two-hop shape cost with no work).
Throughput: 16 concurrent clients (asyncio + aiohttp, one process) against predict and body, alternating, after
an untimed slice on each, for ``--target-seconds`` per endpoint in 10 s windows (the target's pair: one run's
10 s windows gave that ratio from 0.67 to 1.01x, so a few seconds' load cannot decide a 0.8x target); then
predict against ``body_one`` (``body`` with Serve's default of one replica) and ``uncoalesced`` (the same
prediction application with coalescing off), to show what the second replica and coalescing buy. gRPC:
ModelInfer against ``:predict``, alternating, and the same pair between ``grpc_body`` (``body`` over gRPC) and
``body``: the floor. Behind HAProxy on a local Ray the run ends with ``body`` behind Serve's default proxy, timed by
a child process on a Ray of its own (an ingress mode is fixed when Ray starts): the issue's second p50 target.
Each phase runs with only the deployments it times (the targets' pair alone; the others are deployed for their
phase and deleted after it): on a 2-core box every idle replica, and the controller watching it, takes CPU.
On Cassandra (``--store cassandra``) the store's floor, a raw read from this process, is timed in its own loop
right after the latency loop; then once more just before each prediction, for diagnosis only: a second client in
lockstep with the predictions keeps Cassandra's idle workers spinning on the box the replicas share.
The server-side stage timings come from each answer's ``X-MA-Timing`` header (all stages, serialization
included). ``notes`` in the results file says what dominates.

``--ingress haproxy`` (the default: the ingress ma-ray ships) starts Ray with ``RAY_SERVE_ENABLE_HA_PROXY=1``
(Serve's HAProxy with replicas taking HTTP directly) and writes ``prediction_http_haproxy.json``; ``--ingress
proxy`` starts it with ``0`` (Serve's Python proxy) and writes ``prediction_http.json``.

Run alone: `python bench/prediction_http.py [--requests 1000] [--seconds 10] [--target-seconds 80]
[--ingress haproxy|proxy]` (embedded defaults: SQLite features, local Ray on 2 CPUs; no servers). ``--address
auto`` runs on a Ray started as the README's cluster path starts one (``ray start --head ...``, token
authentication on) and writes ``prediction_http_cluster.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from importlib import resources

import aiohttp
import numpy as np
import ray
import requests
from _harness import Result, Target, free_port, report
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

from apps.prediction import REPLICA_ENV, build_app
from apps.prediction.open_inference_grpc import SERVICER
from ma_ray.config import load_settings
from ma_ray.datagen import RideshareConfig, driver_stats, write_chunk, write_dimensions
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.palette import FeatureRegistry, FeatureRepository, load_repository, load_snapshot
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import OnlineTable, now_us, open_online_store
from ma_ray.serving import OUTPUT, OUTPUT_DATATYPE, POOL_DEPLOYMENTS, TIER1_GROUP, TIMING_HEADER, decode_timing
from ma_ray.serving.inference_grpc import messages as pb

STATS = "@palette:rideshare:driver_stats:{}:driver_id"
FEATURES = tuple(
    STATS.format(f)
    for f in ("trip_count_7d", "rating_avg", "acceptance_rate", "cancellation_rate", "avg_trip_distance")
)
TRANSFORMS = {
    "derived_a": f"log1p({FEATURES[0]})",
    "derived_b": f"{FEATURES[2]} * (1 - {FEATURES[3]})",
    "derived_c": f"clip({FEATURES[1]}, 1, 5)",
    "hour": "hour(@basis:request_ts)",
    "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]",
}
AS_OF = date(2026, 1, 7)
TARGET_WINDOW_S = 10.0  # the throughput target's pair alternates in windows this long
CLIENTS = 16
BATCH_ROWS = 16  # rows per request in the batched-throughput run: the seed's batched prediction calls
INGRESS_STAGES = ("parsing", "routing", "serialization")
# Per-request sums (a request has feature_lookup_hit or _miss, never both): their p50s, not sums of p50s.
INGRESS_MODES = {
    "proxy": "Serve's default Python proxy",
    "haproxy": "RAY_SERVE_ENABLE_HA_PROXY=1 (HAProxy, replicas take HTTP directly)",
}
STORES = {
    "sqlite": "SQLite, one driver (cache hits)",
    "cassandra": "Cassandra + Redis (1 s Redis TTL), a random driver per request (mostly misses)",
}
ROUTES = {"predict": "v1/models/eta:predict", "bare": "constant", "hop": "hop", "body": "body"}
RAW_READ = "raw_read"  # the primary read from the bench's process, on Cassandra
LOCKSTEP = "lockstep "  # the loop that reads the primary from the bench just before each prediction
POOL_WORK, INGRESS_WORK = "pool work (the pool's stages of one request)", "ingress work (parsing+routing+serialization)"
# The bare deployments run as the prediction pools do (their code on the replica's main loop: `REPLICA_ENV`), so
# the floor differs from the prediction only by the work.
BARE_ACTOR = {"num_cpus": 0.25, "runtime_env": {"env_vars": REPLICA_ENV}}


@serve.deployment(ray_actor_options=BARE_ACTOR, max_ongoing_requests=64)
class Constant:
    async def __call__(self, request: object = None) -> dict:
        return {"predictions": [1.0]}


@serve.deployment(ray_actor_options=BARE_ACTOR, max_ongoing_requests=64)
class BodyConstant:
    """A bare multiplexed deployment: reads and parses the request body, gets its model from Serve's multiplexed
    cache, returns a constant. Behind the default proxy a replica fetches a body with one more Ray call (Serve's
    ASGI receive proxy), which every handler that reads its input pays and ``Constant`` skips."""

    @serve.multiplexed(max_num_models_per_replica=4)
    async def get_model(self, model_id: str) -> float:
        return 1.0

    async def __call__(self, request: Request) -> dict:
        rows = json.loads(await request.body())["rows"]
        model = await self.get_model("eta:1")
        return {"predictions": [model] * len(rows)}


@serve.deployment(ray_actor_options=BARE_ACTOR, max_ongoing_requests=64)
class GrpcBodyConstant:
    """``BodyConstant`` over gRPC: ModelInfer reads the request's row count (Serve's gRPC server has parsed the
    message), gets its model from Serve's multiplexed cache and answers one FP64 per row: the floor of the gRPC
    target."""

    def __init__(self) -> None:
        # Behind the default proxy a request reaches the replica pickled under the messages' module name, which
        # importing this module registers (the replica unpickles this class by value, not by importing the bench).
        importlib.import_module("ma_ray.serving.inference_grpc")

    @serve.multiplexed(max_num_models_per_replica=4)
    async def get_model(self, model_id: str) -> float:
        return 1.0

    async def ModelInfer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        rows = int(request.inputs[0].shape[0])
        model = await self.get_model("eta:1")
        output = pb.ModelInferResponse.InferOutputTensor(name=OUTPUT, datatype=OUTPUT_DATATYPE, shape=[rows])
        raw = np.full(rows, model, dtype="<f8").tobytes()
        return pb.ModelInferResponse(model_name=request.model_name, outputs=[output], raw_output_contents=[raw])


@serve.deployment(ray_actor_options=BARE_ACTOR, max_ongoing_requests=64)
class Hop:
    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, request: object) -> dict:
        return await self.inner.remote()


@contextlib.contextmanager
def deployed(apps: dict[str, Application]) -> Iterator[None]:
    """Serve ``apps`` (each at ``/<name>``) for one phase of the run, deleted after it."""
    for name, app in apps.items():
        serve.run(app, name=name, route_prefix=f"/{name}")
    try:
        yield
    finally:
        for name in apps:
            serve.delete(name)


def sample_repository() -> FeatureRepository:
    """The rideshare sample's feature repository, as shipped in the package."""
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        return load_repository(path)


def prepare(state: str, store: str) -> tuple[dict, list[str]]:
    """Features loaded, the model registered; the settings and every driver with features."""
    overrides: dict = {"state_dir": state}
    if store == "cassandra":  # Redis entries live 1 s: with random drivers most reads go to Cassandra
        overrides |= {"online_store": "cassandra", "cassandra_keyspace": f"bench_{uuid.uuid4().hex[:8]}"}
        overrides |= {"redis_cache_ttl_s": 1}
    settings = load_settings(**overrides)
    raw = f"{state}/raw"
    config = RideshareConfig(trips=20_000, days=7, seed=5)
    write_dimensions(config, raw)
    for chunk in range(config.chunks):
        write_chunk(config, chunk, raw)
    repo = sample_repository()
    meta = open_meta_store(settings)
    FeatureRegistry(meta).apply(repo)
    meta.close()
    snapshot = driver_stats(raw, AS_OF)
    online = open_online_store(settings)
    load_snapshot(snapshot, OnlineTable.of(repo, repo.groups[0]), online, "driver_id")
    online.close()
    import xgboost as xgb

    x = np.random.default_rng(0).random((512, 10))
    booster = xgb.train({"max_depth": 4, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=20)
    gallery = Gallery.from_settings(settings)
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    gallery.log_model("eta", booster, signature=InputSignature(features=FEATURES, transforms=TRANSFORMS))
    gallery.set_alias("eta", "production", 1)
    gallery.close()
    return settings.model_dump(), [str(d) for d in snapshot["driver_id"].to_pylist()]


def drop_keyspace(settings: dict) -> None:
    if settings["online_store"] == "cassandra":
        store = open_online_store(load_settings(**settings))
        store.primary.drop_keyspace()  # type: ignore[attr-defined]
        store.close()


def raw_store_read(settings: dict, probe: str) -> tuple[Callable[[dict], object], Callable[[], None]]:
    """The floor of a feature read on a miss: one driver's features read straight from the primary (Cassandra's
    prepared single-partition read, no cache asked) by this process; and how to close the store. Checked on the
    driver ``probe``: a read that found no row would time the wrong thing. A read past the store's request timeout
    (the seed's 100 ms) stays in the samples at the time it gave up: a Cassandra pause is part of the floor."""
    from cassandra import OperationTimedOut

    store = open_online_store(load_settings(**settings))
    primary = store.primary  # type: ignore[attr-defined]
    repo = sample_repository()
    table = OnlineTable.of(repo, repo.groups[0])
    names = [ref.split(":")[3] for ref in FEATURES]

    def read(body: dict) -> object:
        try:
            return primary.get(table, [body["rows"][0]["driver_id"]], names, now_us())
        except OperationTimedOut as timed_out:
            return timed_out

    if primary.get(table, [probe], names, now_us())[0].feature_ts is None:
        store.close()
        raise RuntimeError(f"the raw read found no features for driver {probe}: the floor would time an empty read")
    return read, store.close


def interleaved(
    urls: dict[str, str], bodies: list[dict], count: int, raw: Callable[[dict], object] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Milliseconds per request for each url, one request to each in turn (the next of ``bodies`` each round), and
    per ``raw`` call (``RAW_READ``: a body half the list away, so it reads a driver no request just read); and the
    server's stage timings."""
    session = requests.Session()
    samples: dict[str, list[float]] = {name: [] for name in [*urls, *([RAW_READ] if raw else [])]}
    stages: dict[str, list[float]] = {}
    for turn, body in enumerate(itertools.islice(itertools.cycle(bodies), count)):
        if raw is not None:
            started = time.perf_counter()
            raw(bodies[(turn + len(bodies) // 2) % len(bodies)])
            samples[RAW_READ].append((time.perf_counter() - started) * 1000)
        for name, url in urls.items():
            started = time.perf_counter()
            response = session.post(url, json=body, headers={TIMING_HEADER: "1"}, timeout=30)
            samples[name].append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            if name == "predict":
                timing = decode_timing(response.headers[TIMING_HEADER])  # the body's timing lacks serialization
                for stage, ms in timing.items():
                    stages.setdefault(stage, []).append(ms)
                stages.setdefault(POOL_WORK, []).append(sum(ms for k, ms in timing.items() if k not in INGRESS_STAGES))
                stages.setdefault(INGRESS_WORK, []).append(sum(timing.get(k, 0.0) for k in INGRESS_STAGES))
    return {name: np.array(values) for name, values in samples.items()}, stages


def grpc_against_http(
    grpc_port: int, url: str, bodies: list[dict], count: int, app: str = "prediction"
) -> dict[str, np.ndarray]:
    """Milliseconds per prediction over gRPC (tritonclient.grpc, ModelInfer, to Serve's application ``app``) and
    over HTTP (``url``), in alternation, each taking the next of ``bodies`` in turn: with many drivers the two
    never read the same one in a row, so neither gets the features the other's read just put in the caches."""
    import tritonclient.grpc as triton

    client, session = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}"), requests.Session()
    samples: dict[str, list[float]] = {"grpc": [], "http": []}
    turns = itertools.cycle(bodies)
    for _ in range(count):
        body, http_body = next(turns), next(turns)
        inputs = []
        for name in ("driver_id", "request_ts"):
            tensor = triton.InferInput(name, [len(body["rows"])], "BYTES")
            tensor.set_data_from_numpy(np.array([row[name].encode() for row in body["rows"]], dtype=np.object_))
            inputs.append(tensor)
        started = time.perf_counter()
        client.infer("eta", inputs, headers={"application": app})  # Serve routes gRPC by app
        samples["grpc"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        session.post(url, json=http_body, timeout=30).raise_for_status()
        samples["http"].append((time.perf_counter() - started) * 1000)
    return {name: np.array(values) for name, values in samples.items()}


async def _load(url: str, bodies: list[dict], seconds: float) -> tuple[int, int]:
    payloads = itertools.cycle([json.dumps(body) for body in bodies])
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:
        deadline = time.monotonic() + seconds

        async def client() -> tuple[int, int]:
            done = failed = 0
            while time.monotonic() < deadline:
                async with session.post(url, data=next(payloads)) as response:
                    await response.read()
                    done, failed = done + (response.status == 200), failed + (response.status != 200)
            return done, failed

        results = await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def throughput(
    urls: dict[str, str], bodies: list[dict], seconds: float, rounds: int = 4
) -> dict[str, tuple[float, int]]:
    """Successful requests per second and failures, 16 clients, alternating endpoints in ``rounds`` slices, after
    one untimed slice on each: an endpoint's first slice under load ran 8-25% under its later ones here (the
    coalescer's gathering, the many-row paths, new connections), the prediction more than bare."""
    for url in urls.values():
        asyncio.run(_load(url, bodies, seconds / rounds))
    done = {name: 0 for name in urls}
    failed = dict.fromkeys(urls, 0)
    for _ in range(rounds):
        for name, url in urls.items():
            ok, bad = asyncio.run(_load(url, bodies, seconds / rounds))
            done[name] += ok
            failed[name] += bad
    return {name: (done[name] / seconds, failed[name]) for name in urls}


def notes(
    lat: dict[str, np.ndarray],
    around: dict[str, np.ndarray],
    stages: dict[str, list],
    qps: dict[str, tuple[float, int]],
    others: dict[str, tuple[float, int]],
) -> str:
    p50 = {name: float(np.percentile(values, 50)) for name, values in lat.items()}
    all4 = {name: float(np.percentile(values, 50)) for name, values in around.items()}
    server = {stage: float(np.percentile(values, 50)) for stage, values in stages.items()}
    pool_stages = {k: ms for k, ms in server.items() if k not in (*INGRESS_STAGES, POOL_WORK, INGRESS_WORK)}
    biggest = max(pool_stages, key=pool_stages.__getitem__) if pool_stages else "-"
    return (
        f"p50 predict {p50['predict']:.2f} ms vs {p50['body']:.2f} ms for a bare multiplexed deployment reading the "
        f"same body, alternating with it (all four endpoints in turn: {all4['predict']:.2f} ms, {all4['body']:.2f} ms "
        f"and {all4['bare']:.2f} ms for a bare constant): the front's own work is the pool stages "
        f"({server.get(POOL_WORK, 0.0):.2f} ms p50: model cache, feature lookup, DSL transforms, XGBoost; largest "
        f"stage {biggest} {server.get(biggest, 0.0):.2f} ms) and the HTTP handling "
        f"({server.get(INGRESS_WORK, 0.0):.2f} ms p50 of parsing+routing+serialization, parsing including the "
        "body fetch). The old two-hop shape "
        f"(a no-work chain) costs {all4['hop'] - all4['bare']:.2f} ms over bare. Throughput: "
        f"{qps['predict'][0]:.0f}/s vs the bare multiplexed deployment's {qps['body'][0]:.0f}/s "
        f"(in a later phase: {others['predict'][0]:.0f}/s against {others['body_one'][0]:.0f}/s with one replica "
        f"and {others['uncoalesced'][0]:.0f}/s for the prediction with coalescing off); on 2 cores the ingress, "
        "the replicas and the load-generating client share the CPUs. Machine shared with other jobs during the run "
        f"(1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at its end): absolute figures "
        "are noisy, "
        "ratios less so."
    )


def raw_read_results(floor: dict[str, np.ndarray]) -> list[Result]:
    """The store's floor, and what a second Cassandra client in lockstep with the predictions does to them."""
    p50 = {name: float(np.percentile(values, 50)) for name, values in floor.items()}
    p99 = {name: float(np.percentile(values, 99)) for name, values in floor.items()}
    return [
        Result(
            "raw Cassandra read p99 (one driver's features, a prepared single-partition read from the bench process, "
            "no cache), alone, right after the latency loop: the store's own floor",
            p99[RAW_READ],
            "ms",
        ),
        Result("raw Cassandra read p50, alone", p50[RAW_READ], "ms"),
        Result(
            "HTTP predict p99 on cache misses with that raw read just before each prediction (a second client in "
            "lockstep keeps Cassandra's idle workers spinning: diagnosis) vs the bare's p99 in that loop",
            p99[f"{LOCKSTEP}predict"],
            "ms",
            baseline=p99[f"{LOCKSTEP}body"],
        ),
        Result("raw Cassandra read p99 in that lockstep loop", p99[f"{LOCKSTEP}{RAW_READ}"], "ms"),
    ]


DEFAULT_PROXY_FLOOR = "--default-proxy-floor"  # the child's flag: it times the default proxy's bare deployment
DEFAULT_PROXY_BODY = "default-proxy body"


def default_proxy_floor(bodies: list[dict], count: int) -> np.ndarray:
    """Milliseconds per request to the bare multiplexed deployment (two replicas) behind Serve's default proxy,
    timed by a child process on a Ray of its own (an ingress mode is fixed when Ray starts, so the two cannot
    alternate): the issue's "today's default-proxy bare deployment, measured in the same run"."""
    spec = json.dumps({"bodies": bodies[:50], "count": count})
    command = [sys.executable, __file__, "--ingress", "proxy", DEFAULT_PROXY_FLOOR, spec]
    child = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    return np.array(json.loads(child.stdout.strip().splitlines()[-1]))


def time_default_proxy_floor(spec: str) -> None:
    """The child's side of `default_proxy_floor`: the latencies, printed as the last line of its output."""
    request = json.loads(spec)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(BodyConstant.options(num_replicas=2).bind(), name="body", route_prefix="/body")
    pair = {"body": f"http://127.0.0.1:{port}/body"}
    interleaved(pair, request["bodies"], 100)
    latencies = interleaved(pair, request["bodies"], request["count"])[0]["body"]
    serve.shutdown()
    ray.shutdown()
    print(json.dumps(latencies.tolist()), flush=True)


def default_proxy_results(p50: dict[str, float], target: Target | None) -> list[Result]:
    """The prediction's p50 against the default proxy's bare deployment, where the run timed it."""
    if DEFAULT_PROXY_BODY not in p50:
        return []
    metric = (
        "HTTP predict p50 vs the bare multiplexed deployment (2 replicas) behind Serve's default proxy, on a Ray of "
        "its own started right after this run's (an ingress mode is fixed when Ray starts)"
    )
    return [Result(metric, p50["predict"], "ms", baseline=p50[DEFAULT_PROXY_BODY], target=target)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per endpoint")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per endpoint, 16 clients")
    parser.add_argument(
        "--target-seconds", type=float, default=80.0, help="load time per endpoint for the throughput target"
    )
    parser.add_argument("--ingress", choices=("haproxy", "proxy"), default="haproxy", help="Serve's ingress mode")
    parser.add_argument(
        "--store", choices=("sqlite", "cassandra"), default="sqlite", help="cassandra: random drivers, mostly misses"
    )
    parser.add_argument("--address", help="a running Ray (e.g. the README's `ray start --head ...`): run there")
    parser.add_argument(DEFAULT_PROXY_FLOOR, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Read by Serve's controller and proxies when Ray starts them; set either way, so a shell's export cannot
    # give a run the other ingress than its results file names.
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if args.ingress == "haproxy" else "0"
    if args.default_proxy_floor:
        return time_default_proxy_floor(args.default_proxy_floor)
    # Logical CPUs for placement only (two prediction apps, two bare ones); the box has 2 cores either way.
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        overrides, drivers = prepare(state, args.store)
        port, grpc_port = free_port(), free_port()
        grpc_options = {"port": grpc_port, "grpc_servicer_functions": [SERVICER]}
        serve.start(http_options={"host": "127.0.0.1", "port": port}, grpc_options=grpc_options)
        serve.run(build_app({"settings": overrides}), name="prediction", route_prefix="/")
        # The floors run as many replicas as the tier-1 pool that takes the prediction's requests (two by default:
        # one can fail); a bare deployment with Serve's default of one replica is timed under load too.
        front = serve.status().applications["prediction"].deployments[POOL_DEPLOYMENTS[TIER1_GROUP]]
        replicas = front.replica_states.get("RUNNING", 1)
        serve.run(BodyConstant.options(num_replicas=replicas).bind(), name="body", route_prefix="/body")
        base = f"http://127.0.0.1:{port}"
        urls = {name: f"{base}/{route}" for name, route in ROUTES.items()}
        urls |= {"body_one": f"{base}/body_one", "uncoalesced": f"{base}/uncoalesced/{ROUTES['predict']}"}
        # SQLite: one driver, its features cached; Cassandra: a random driver per request, Redis entries short-lived.
        chosen = drivers[:1] if args.store == "sqlite" else list(np.random.default_rng(1).permutation(drivers))
        bodies = [{"rows": [{"driver_id": d, "request_ts": "2026-01-07T08:30:00+00:00"}]} for d in chosen]
        batch = [{"rows": [{"driver_id": d, "request_ts": "2026-01-07T08:30:00+00:00"} for d in drivers[:BATCH_ROWS]]}]
        # Each phase runs with the deployments it times and no others: every idle replica, and the controller
        # that watches it, takes CPU on a 2-core box (seven applications idled at half a core here).
        pair = {name: urls[name] for name in ("predict", "body")}
        # Warm-up on the loop's own traffic (on Cassandra, 100 drivers' misses): model loaded, connections open,
        # the read path compiled in the replicas and in Cassandra's JVM.
        interleaved(pair, bodies, 100)
        lat, stages = interleaved(pair, bodies, args.requests)
        floor: dict[str, np.ndarray] = {}
        if args.store == "cassandra":  # the store's floor alone, then beside the prediction (diagnosis)
            raw, close_raw = raw_store_read(overrides, drivers[0])
            floor = interleaved({}, bodies, args.requests, raw)[0]
            floor |= {f"{LOCKSTEP}{name}": ms for name, ms in interleaved(pair, bodies, args.requests, raw)[0].items()}
            close_raw()
        qps = throughput(pair, bodies, args.target_seconds, rounds=max(1, round(args.target_seconds / TARGET_WINDOW_S)))
        batched = throughput(pair, batch, args.seconds)
        grpc_lat = grpc_against_http(grpc_port, urls["predict"], bodies, args.requests)
        with deployed({"grpc_body": GrpcBodyConstant.options(num_replicas=replicas).bind()}):
            grpc_floor = grpc_against_http(grpc_port, urls["body"], bodies, args.requests, app="grpc_body")
        with deployed({"constant": Constant.bind(), "hop": Hop.bind(Constant.bind())}):
            four = {name: urls[name] for name in ROUTES}
            interleaved(four, bodies[:1], 100)
            around, _ = interleaved(four, bodies, args.requests)
        uncoalesced = {"settings": overrides, "serving": {"coalesce_in_flight": 1_000_000, "coalesce_gather_gap_s": 0}}
        with deployed({"body_one": BodyConstant.bind(), "uncoalesced": build_app(uncoalesced)}):
            others = {name: urls[name] for name in ("predict", "body_one", "uncoalesced")}
            qps_others = throughput(others, bodies, args.seconds)
        serve.shutdown()
        drop_keyspace(overrides)
    ray.shutdown()
    # Behind HAProxy on a local Ray, the second p50 target: against the default proxy's bare deployment.
    if args.ingress == "haproxy" and not args.address:
        lat[DEFAULT_PROXY_BODY] = default_proxy_floor(bodies, args.requests)
    p50 = {name: float(np.percentile(values, 50)) for name, values in lat.items()}
    p99 = {name: float(np.percentile(values, 99)) for name, values in lat.items()}

    def cached_only(target: Target) -> Target | None:
        """The issue sets its ratio targets for cached features; on misses only the 15 ms p99 (below)."""
        return target if args.store == "sqlite" else None

    around50 = {name: float(np.percentile(values, 50)) for name, values in around.items()}
    front = [a + b for a, b in zip(stages["parsing"], stages["routing"], strict=True)]
    results = [
        Result(
            f"HTTP predict p50 (XGBoost, 10 inputs; {STORES[args.store]}) vs bare multiplexed deployment reading "
            f"the same body ({replicas} replicas, as the tier-1 pool)",
            p50["predict"],
            "ms",
            baseline=p50["body"],
            target=cached_only(Target("ratio", "<=", 1.3)),
        ),
        Result(
            "HTTP predict p99 vs the same bare's p99",
            p99["predict"],
            "ms",
            p99["body"],
            target=cached_only(Target("ratio", "<=", 2)),
        ),
        Result(
            "HTTP predict p50 vs the same bare, all four endpoints in turn (three other replica calls between two "
            "predictions)",
            around50["predict"],
            "ms",
            around50["body"],
        ),
        Result(
            "HTTP predict p50 vs bare constant deployment (reads no body)", around50["predict"], "ms", around50["bare"]
        ),
        Result(
            "bare multiplexed deployment reading the body p50 vs bare constant",
            around50["body"],
            "ms",
            around50["bare"],
        ),
        Result(
            "two-deployment no-work chain p50 (the old two-hop shape) vs bare", around50["hop"], "ms", around50["bare"]
        ),
        Result(
            "server parsing + routing p50",
            float(np.percentile(front, 50)),
            "ms",
            target=Target("value", "<=", 0.5),
        ),
        *default_proxy_results(p50, cached_only(Target("ratio", "<=", 0.5))),
        Result(
            f"throughput, {CLIENTS} concurrent clients, vs the bare multiplexed deployment ({replicas} replicas, as "
            "the tier-1 pool)",
            qps["predict"][0],
            "predictions/s",
            baseline=qps["body"][0],
            target=cached_only(Target("ratio", ">=", 0.8)),
        ),
        Result(
            f"throughput, {CLIENTS} concurrent clients, vs the bare multiplexed deployment with one replica (Serve's "
            "default)",
            qps_others["predict"][0],
            "predictions/s",
            baseline=qps_others["body_one"][0],
        ),
        Result(
            f"throughput, {CLIENTS} concurrent clients, coalescing off (vs on)",
            qps_others["uncoalesced"][0],
            "predictions/s",
            baseline=qps_others["predict"][0],
        ),
        Result(
            f"throughput, {CLIENTS} concurrent clients, {BATCH_ROWS} rows per request (bare: same body, "
            f"counted as {BATCH_ROWS} answers)",
            batched["predict"][0] * BATCH_ROWS,
            "predictions/s",
            baseline=batched["body"][0] * BATCH_ROWS,
        ),
        Result(
            f"failed requests under {CLIENTS} clients",
            float(qps["predict"][1] + batched["predict"][1] + qps_others["predict"][1]),
            "requests",
        ),
    ]
    results.append(
        Result(
            "gRPC ModelInfer p50 (tritonclient.grpc) vs HTTP :predict p50, alternating, same rows",
            float(np.percentile(grpc_lat["grpc"], 50)),
            "ms",
            baseline=float(np.percentile(grpc_lat["http"], 50)),
            target=cached_only(Target("ratio", "<=", 1.0)),
        )
    )
    results.append(
        Result(
            "bare gRPC ModelInfer p50 vs the bare HTTP deployment's p50, alternating (the floor of the gRPC target)",
            float(np.percentile(grpc_floor["grpc"], 50)),
            "ms",
            baseline=float(np.percentile(grpc_floor["http"], 50)),
        )
    )
    if args.store == "cassandra":
        results.append(
            Result("HTTP predict p99 on cache misses", p99["predict"], "ms", target=Target("value", "<=", 15))
        )
        results += raw_read_results(floor)
    results += [
        Result(f"server stage p50: {stage}", float(np.percentile(values, 50)), "ms") for stage, values in stages.items()
    ]
    name = "prediction_http" + ("" if args.ingress == "proxy" else f"_{args.ingress}")
    name += "" if args.store == "sqlite" else f"_{args.store}"
    name += "_cluster" if args.address else ""
    where = f"the Ray at {args.address} (started as the README says)" if args.address else "a local Ray (4 CPUs)"
    setup = f"Ingress: {INGRESS_MODES[args.ingress]}; features: {STORES[args.store]}; on {where}. "
    report(name, results, setup + notes(lat, around, stages, qps, qps_others))


if __name__ == "__main__":
    main()
