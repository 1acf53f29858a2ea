"""Scaling: the batch pipeline, the point-in-time join, stream aggregation and prediction throughput at 1, 2, 4, 8
and 16 CPUs (those this machine has), each against its own 1-CPU figure.

Each CPU count runs in a child process pinned to that many cores (``taskset -c 0-(n-1)``, inherited by the local
Ray it starts with ``num_cpus=n``), so Arrow's and XGBoost's threads cannot borrow the other cores either:
- pipeline: `BatchPipeline.compute` on the Ray Data engine over ``--trips`` raw trips (generated once), rows/s;
- join: `point_in_time_join` over Ray datasets, ``--labels`` x ``--features`` rows, label rows/s;
- stream: a backlog of ``--events`` trip events in Kafka aggregated by one actor per CPU (two partitions each)
  into Cassandra + Redis, events/s (needs `ma-ray services up`; skipped, and said so, without Kafka);
- predict: the prediction app with one tier-1 replica per CPU, 16 clients sending single-row requests for
  ``--predict-seconds``, predictions/s (the load generator shares the pinned cores: on a small machine it takes
  a share of them).
Efficiency at n CPUs is throughput(n) / (n x throughput(1)); the target is >= 0.7 at 8 CPUs for the pipeline and
the join (a machine with 8 cores or more). Each figure is the median of ``--repeats`` timed runs after one warm-up.
Run: `python bench/scaling.py [--cpus 1,2,4,8,16] [--name NAME]`; writes bench/results/scaling[_NAME].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from _harness import Result, Target, free_port, report

WORKLOADS = ("pipeline", "join", "stream", "predict")
UNITS = {"pipeline": "rows/s", "join": "label rows/s", "stream": "events/s", "predict": "predictions/s"}
TARGET_AT = 8  # CPUs where the efficiency target applies
TARGETED = ("pipeline", "join")
CHILD_TIMEOUT_S = 3600


def _repository() -> Any:
    from ma_ray.palette import load_repository

    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        return load_repository(path)


def _timed(call: Any, repeats: int) -> float:
    """The median seconds of ``repeats`` calls, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---- the workloads, each run inside a child pinned to its CPUs ---------------------------------------------------
def pipeline(args: argparse.Namespace) -> float:
    from ma_ray.config import load_settings
    from ma_ray.datagen import RideshareConfig
    from ma_ray.engine import Engine, EngineChoice
    from ma_ray.palette.pipelines import BatchPipeline, find_raw_input

    config = RideshareConfig(trips=args.trips, days=7)
    as_of = config.start_date + timedelta(days=config.days - 1)
    raw_uri = f"{args.data}/raw"
    state = tempfile.mkdtemp(prefix="scaling-pipeline-")
    engine = EngineChoice(Engine.RAY_DATA)
    batch = BatchPipeline(_repository(), load_settings(state_dir=state), raw_uri, engine=engine)
    plan = batch.plans(["driver_stats"])[0]
    raw = find_raw_input(raw_uri, plan, as_of)
    seconds = _timed(lambda: batch.compute(plan, as_of, raw), args.repeats)
    shutil.rmtree(state, ignore_errors=True)
    return raw.rows / seconds


def join(args: argparse.Namespace) -> float:
    import ray
    import ray.data
    from point_in_time_join import TTL_S, as_blocks, make_data

    from ma_ray.palette.offline import point_in_time_join

    labels, features = make_data(args.labels, args.features, entities=min(args.features // 10, 1_000_000))
    blocks = max(8, 2 * args.child_cpus)
    label_ds, feature_ds = (ray.data.from_arrow(as_blocks(table, blocks)) for table in (labels, features))

    def run() -> None:
        joined = point_in_time_join(label_ds, feature_ds, "driver_id", "label_ts", ttl_s=TTL_S).materialize()
        assert joined.count() == labels.num_rows

    return labels.num_rows / _timed(run, args.repeats)


def stream(args: argparse.Namespace) -> float | None:
    import ray
    from stream_pipeline import GROUP, records

    from actors.stream_aggregator import ensure_topic
    from apps.stream_pipeline import replay, start_actors
    from ma_ray.config import load_settings
    from ma_ray.connections import kafka_admin
    from ma_ray.palette.online.cassandra import CassandraOnlineStore

    settings = load_settings()
    try:
        kafka_admin(settings).list_topics(timeout=5)
    except Exception as error:  # no broker: say so in the results rather than fail the other workloads
        print(f"stream skipped: no Kafka at {settings.kafka.bootstrap} ({error})", file=sys.stderr)
        return None
    actors, partitions = args.child_cpus, 2 * args.child_cpus
    overrides = {
        "state_dir": tempfile.mkdtemp(prefix="scaling-stream-"),
        "online_store": "cassandra",
        "cassandra_keyspace": f"scaling_{uuid.uuid4().hex[:8]}",
        "kafka_bootstrap": settings.kafka.bootstrap,
    }
    events = records(args.events)
    repo = _repository()
    rates = []
    try:
        for attempt in range(args.repeats + 1):  # the first is the warm-up
            topic = f"scaling-{uuid.uuid4().hex[:8]}"
            ensure_topic(settings, topic, partitions)
            replay(settings, topic, events)
            handles = start_actors(repo, GROUP, topic, partitions, actors, overrides, batch_size=5000)
            ray.get([h.lag.remote() for h in handles])
            started = time.perf_counter()
            reports = ray.get([h.run.remote() for h in handles])
            elapsed = time.perf_counter() - started
            for handle in handles:
                ray.kill(handle)
            kafka_admin(settings).delete_topics([topic, f"{topic}.dead-letter"])
            consumed = sum(r["events"] for r in reports)
            assert consumed == len(events), f"consumed {consumed} of {len(events)} events"
            if attempt:
                rates.append(consumed / elapsed)
    finally:
        store = CassandraOnlineStore(load_settings(**overrides))
        store.drop_keyspace()
        store.close()
    return statistics.median(rates)


def predict(args: argparse.Namespace) -> float:
    import asyncio

    from prediction_http import _load, prepare
    from ray import serve

    from apps.prediction import build_app

    state = tempfile.mkdtemp(prefix="scaling-predict-")
    overrides, drivers = prepare(state, "sqlite")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    # Replicas ask for a quarter CPU each (the app's default), so the other pools fit beside them; the taskset
    # pinning, not Ray's accounting, is what holds the run to its cores.
    serving = {"replicas": {"ModelPoolTier1": args.child_cpus}}
    serve.run(build_app({"settings": overrides, "serving": serving}), name="prediction", route_prefix="/")
    url = f"http://127.0.0.1:{port}/v1/models/eta:predict"
    bodies = [{"rows": [{"driver_id": d, "request_ts": "2026-01-07T08:30:00+00:00"}]} for d in drivers[:64]]
    asyncio.run(_load(url, bodies, 2.0))  # warm-up: connections open, every replica's model loaded
    rates = []
    for _ in range(args.repeats):
        done, failed = asyncio.run(_load(url, bodies, args.predict_seconds))
        assert failed == 0, f"{failed} failed predictions"
        rates.append(done / args.predict_seconds)
    serve.shutdown()
    shutil.rmtree(state, ignore_errors=True)
    return statistics.median(rates)


def child(args: argparse.Namespace) -> None:
    """Run the chosen workloads on a local Ray of ``--child-cpus`` CPUs; print their throughputs as JSON."""
    import ray
    import ray.data

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=args.child_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs = {"pipeline": pipeline, "join": join, "stream": stream, "predict": predict}
    figures = {name: runs[name](args) for name in args.workloads.split(",")}
    ray.shutdown()
    print("SCALING " + json.dumps(figures))


# ---- the parent: data once, one pinned child per CPU count, the report ------------------------------------------
def generate(args: argparse.Namespace) -> None:
    import ray
    from batch_pipeline import generate as write_raw

    from ma_ray.datagen import RideshareConfig

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    write_raw(RideshareConfig(trips=args.trips, days=7), f"{args.data}/raw")
    ray.shutdown()


def run_child(cpus: int, args: argparse.Namespace) -> dict[str, float | None]:
    command = ["taskset", "-c", f"0-{cpus - 1}", sys.executable, __file__, "--child-cpus", str(cpus)]
    for option in ("workloads", "trips", "labels", "features", "events", "predict_seconds", "repeats", "data"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=CHILD_TIMEOUT_S)
    line = next((x for x in done.stdout.splitlines() if x.startswith("SCALING ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"{cpus} CPUs failed ({done.returncode}):\n{done.stderr[-4000:]}")
    print(f"{cpus} CPUs: {line[8:]}", file=sys.stderr)
    return json.loads(line[8:])


def results_for(figures: dict[int, dict[str, float | None]], machine: str) -> list[Result]:
    results = []
    for name in figures[min(figures)]:
        one = figures[1][name] if 1 in figures else None
        for cpus, measured in figures.items():
            value = measured[name]
            if value is None:  # skipped: the notes say why
                continue
            results.append(Result(f"{name} at {cpus} CPU(s) ({machine})", value, UNITS[name]))
            if one and cpus > 1:
                target = Target("value", ">=", 0.7) if name in TARGETED and cpus == TARGET_AT else None
                efficiency = value / (cpus * one)
                results.append(Result(f"{name} efficiency at {cpus} CPUs vs 1", efficiency, "", target=target))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", default="1,2,4,8,16", help="CPU counts to run (those above this machine's skipped)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--trips", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=5_000_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--predict-seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", help="suffix of the results file: scaling_<name>.json (e.g. the machine)")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--child-cpus", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if args.child_cpus:
        child(args)
        return
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin each run to its CPUs")
    counts = [n for n in sorted({int(c) for c in args.cpus.split(",")}) if n <= (os.cpu_count() or 1)]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory(prefix="scaling-") as data:
        args.data = data
        generate(args)
        figures = {cpus: run_child(cpus, args) for cpus in counts}
    skipped = any(measured.get("stream", 0) is None for measured in figures.values())
    notes = (
        "Each CPU count ran pinned to that many cores with a local Ray of as many CPUs; the servers (Kafka, "
        "Cassandra, Redis) were not pinned. "
        + ("The stream workload was skipped: no Kafka (run `ma-ray services up`). " if skipped else "")
        + f"Efficiency targets apply at {TARGET_AT} CPUs, on a machine that has them."
    )
    report(f"scaling_{args.name}" if args.name else "scaling", results_for(figures, machine), notes)


if __name__ == "__main__":
    main()
