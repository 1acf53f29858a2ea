"""The demo's model stages: train on point-in-time features and register in Gallery; predict over HTTP."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import requests
from ray import serve

from apps.prediction import build_app
from ma_ray.datagen import read_raw
from ma_ray.gallery import Gallery, InputSignature, PaletteLineage
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.pipelines import BatchPipeline
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.text_table import format_table
from ma_ray.training.training_data import training_table

if TYPE_CHECKING:
    from apps.demo import DemoContext

MODEL = "eta_minutes"
STATS = "@palette:rideshare:driver_stats:{}:driver_id"
SIGNATURE = InputSignature(
    features=(
        STATS.format("trip_count_7d"),
        STATS.format("rating_avg"),
        STATS.format("acceptance_rate"),
        STATS.format("avg_trip_distance"),
        "@palette:rideshare:driver_model_inputs:reliability_score:driver_id",
    ),
    transforms={"request_hour": "hour(@basis:request_ts)", "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]"},
)
TRAINING_DAYS = 5


def stage_train(ctx: DemoContext) -> None:
    """Backfill daily driver_stats snapshots, join completed trips point-in-time with them (each trip sees only
    the snapshot before it), train XGBoost on trip minutes, register it in Gallery as production."""
    as_of = ctx.facts["as_of"]
    first = as_of - timedelta(days=TRAINING_DAYS)
    meta = open_meta_store(ctx.settings)
    try:
        registry = FeatureRegistry(meta)
        repo = registry.repository("rideshare")
        BatchPipeline(repo, ctx.settings, ctx.raw_uri).backfill(first, as_of - timedelta(days=1), ["driver_stats"])
        table = training_table(
            repo,
            OfflineStore(ctx.settings.offline_uri),
            _labels(ctx.raw_uri, first, as_of),
            "requested_at",
            list(SIGNATURE.features),
            dict(SIGNATURE.transforms),
        )
        booster, rmse, rows = _fit(table)
        gallery = Gallery.from_settings(ctx.settings, lineage=PaletteLineage(registry))
        gallery.register_model(
            name=MODEL,
            owner="marketplace-ml",
            tier=1,
            framework="xgboost",
            description="Trip duration in minutes from driver features and request time",
        )
        version = gallery.log_model(
            MODEL,
            booster,
            signature=SIGNATURE,
            metrics={"rmse_minutes": rmse},
            training_snapshot=f"rideshare.driver_stats:{first}..{as_of - timedelta(days=1)}",
        )
        gallery.set_alias(MODEL, "production", version.version, reason="demo")
        gallery.close()
    finally:
        meta.close()
    print(
        f"{rows:,} completed trips, point-in-time joined with {TRAINING_DAYS} daily snapshots; "
        f"validation RMSE {rmse:.2f} minutes"
    )
    print(f"registered {version.model_id} (production) with lineage to its features and snapshots")


def _labels(raw_uri: str, first: Any, as_of: Any) -> pa.Table:
    trips = read_raw(raw_uri, "trips").to_table(
        columns=["driver_id", "requested_at", "duration_s", "status"],
        filter=(ds.field("date") > str(first)) & (ds.field("date") <= str(as_of)),
    )
    done = trips.filter(pc.equal(trips["status"], "completed"))
    return pa.table(
        {
            "driver_id": done["driver_id"],
            "requested_at": done["requested_at"],
            "request_ts": done["requested_at"],
            "minutes": pc.divide(pc.cast(done["duration_s"], "float64"), 60),
        }
    )


def _fit(table: pa.Table) -> tuple[Any, float, int]:
    import xgboost as xgb

    columns = [*SIGNATURE.features, *SIGNATURE.transforms]
    x = np.column_stack([pc.cast(table[c], "float64").to_numpy(zero_copy_only=False) for c in columns])
    y = table["minutes"].to_numpy()
    cut = int(len(y) * 0.8)
    params = {"max_depth": 6, "eta": 0.2, "nthread": 2, "objective": "reg:squarederror"}
    booster = xgb.train(params, xgb.DMatrix(x[:cut], label=y[:cut]), num_boost_round=60)
    rmse = float(np.sqrt(np.mean((booster.inplace_predict(x[cut:]) - y[cut:]) ** 2)))
    return booster, rmse, len(y)


def stage_predict(ctx: DemoContext) -> None:
    """Serve the prediction application and ask it over HTTP, as a client would; print the latency table."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"settings": ctx.settings.model_dump()}), name="prediction", route_prefix="/")
    try:
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict"
        request_ts = f"{ctx.facts['as_of']}T08:30:00+00:00"
        drivers = ctx.facts["hot_drivers"]
        sample = requests.post(
            url, json={"rows": [{"driver_id": d, "request_ts": request_ts} for d in drivers]}, timeout=60
        ).json()
        print(
            format_table(
                [(d, round(p, 1)) for d, p in zip(drivers, sample["predictions"], strict=True)],
                ["driver", f"predicted minutes ({MODEL}:{sample['version']})"],
            )
        )
        _latency_table(url, drivers[0], request_ts)
    finally:
        serve.shutdown()
    print(
        f"(served at http://127.0.0.1:{port}/v1/models/{{model}}:predict; the Ray dashboard shows the "
        "deployments and the ray_ma_ray_* metrics)"
    )


def _latency_table(url: str, driver: str, request_ts: str, count: int = 200) -> None:
    stages: dict[str, list[float]] = {}
    for _ in range(count):
        started = time.perf_counter()
        answer = requests.post(url, json={"rows": [{"driver_id": driver, "request_ts": request_ts}]}, timeout=60)
        total = (time.perf_counter() - started) * 1000
        for stage, ms in {**answer.json()["timing_ms"], "total over HTTP": total}.items():
            stages.setdefault(stage, []).append(ms)
    rows = [(stage, *np.percentile(values, [50, 95, 99]).round(2)) for stage, values in stages.items()]
    print(f"latency of {count} single-row predictions (ms):")
    print(format_table(rows, ["stage", "p50", "p95", "p99"]))
