"""The GPU model pool on a real GPU (issue 8): a PyTorch model served by ``GpuModelPool`` with
``gpus_per_replica: 1``, over HTTP through Serve's proxy, in fp32 and fp16, against the same pool on CPU
(``gpus_per_replica: 0``, the same code) in the same run.

Checks before timing: the replica reports ``device: cuda``; its answers equal the model run in this process
(fp32 on CUDA to 1e-4 relative, fp16 to 2e-2). Figures per variant: single-row latency p50/p99 (one client),
and predictions/s with 16 concurrent clients sending 16-row requests (``@serve.batch`` stacks them into one
forward pass); ratios are to the CPU pool.

Needs CUDA; on a machine without it the script says so and writes nothing (``--without-gpu`` runs the same
path with the pool on CPU in fp32 and fp16, as a check of the script, and writes nothing either). Run alone:
`python bench/gpu_pool.py` (a local Ray with 1 GPU; embedded defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from importlib import resources

import aiohttp
import numpy as np
import ray
import torch
from _harness import Result, Target, free_port, report
from ray import serve

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.palette import FeatureRegistry, load_repository
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.training.trainers.torch_trainer import mlp

FACTORY = "ma_ray.training.trainers.torch_trainer:mlp"
SHAPE = {"in_features": 4, "hidden": [1024, 1024, 1024], "out_features": 1}
SIGNATURE = InputSignature(
    transforms={
        "hour": "hour(@basis:request_ts)",
        "dow": "day_of_week(@basis:request_ts)",
        "distance": "nfill(@basis:distance_km, 0.0)",
        "log_distance": "log1p(nfill(@basis:distance_km, 0.0))",
    }
)
TS = "2026-01-07T08:30:00+00:00"
CLIENTS, ROWS_PER_REQUEST = 16, 16


def prepare(state: str) -> tuple[dict, torch.nn.Module]:
    settings = load_settings(state_dir=state)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        meta = open_meta_store(settings)
        FeatureRegistry(meta).apply(load_repository(path))
        meta.close()
    torch.manual_seed(0)
    model = mlp(**SHAPE).eval()
    gallery = Gallery.from_settings(settings)
    gallery.register_model(name="surge", owner="bench", tier=2, framework="pytorch")
    gallery.log_model("surge", model, signature=SIGNATURE, factory=FACTORY, factory_kwargs=SHAPE)
    gallery.set_alias("surge", "production", 1)
    gallery.close()
    return settings.model_dump(), model


def rows(count: int, offset: int = 0) -> list[dict]:
    return [{"request_ts": TS, "distance_km": float(1 + (offset + i) % 37)} for i in range(count)]


def truth(model: torch.nn.Module, body_rows: list[dict], device: str) -> list[float]:
    """The model's answers computed here (fp32), from the signature's transforms by hand."""
    hour, dow = 8.0, 2.0  # 2026-01-07 08:30 UTC is a Wednesday: day_of_week counts Monday as 0
    x = [[hour, dow, r["distance_km"], float(np.log1p(r["distance_km"]))] for r in body_rows]
    with torch.inference_mode():
        return model.to(device)(torch.tensor(x, device=device)).squeeze(-1).cpu().tolist()


def deploy(overrides: dict, gpus: float, precision: str, port: int) -> str:
    serving = {
        "gpus_per_replica": gpus,
        "deep_precision": precision,
        "replicas": {"ModelPoolTier1": 2, "ModelPool": 0, "GpuModelPool": 1},
        "num_cpus_per_replica": 1,
        "max_batch_size": 64,
        "forecast_qps": {"surge": 1000.0},  # PREEMPTIVE: loaded at replica start
    }
    serve.run(build_app({"settings": overrides, "serving": serving}), name="prediction", route_prefix="/")
    resident = serve.get_deployment_handle("GpuModelPool", "prediction").resident.remote().result(timeout_s=120)
    return resident["device"]


async def single_row_ms(url: str, requests: int) -> np.ndarray:
    samples = []
    async with aiohttp.ClientSession() as session:
        for i in range(requests):
            started = time.perf_counter()
            async with session.post(url, json={"rows": rows(1, i)}) as response:
                await response.read()
                response.raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return np.array(samples[20:])


async def throughput(url: str, requests: int) -> tuple[float, int]:
    """Predictions/s with CLIENTS concurrent clients, and the failed requests."""
    failed = 0
    left = requests

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failed, left
        while left > 0:
            left -= 1
            async with session.post(url, json={"rows": rows(ROWS_PER_REQUEST, left)}) as response:
                await response.read()
                failed += response.status != 200

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return requests * ROWS_PER_REQUEST / elapsed, failed


def check_answers(url: str, model: torch.nn.Module, device: str, tolerance: float) -> float:
    """Largest relative error of 64 served predictions against the model run here; raises past ``tolerance``."""
    import requests

    body_rows = rows(64, 5)
    served = requests.post(url, json={"rows": body_rows}, timeout=60).json()["predictions"]
    expected = np.array(truth(model, body_rows, device))
    error = float(np.max(np.abs(np.array(served) - expected) / np.maximum(np.abs(expected), 1e-3)))
    if error > tolerance:
        raise AssertionError(f"served predictions differ from the model by {error:.2e} (> {tolerance})")
    return error


def measure(overrides: dict, model: torch.nn.Module, port: int, gpus: float, precision: str) -> dict[str, float]:
    device = deploy(overrides, gpus, precision, port)
    expected_device = "cuda" if gpus else "cpu"
    if device != expected_device:
        raise AssertionError(f"GpuModelPool runs on {device}, expected {expected_device}")
    url = f"http://127.0.0.1:{port}/v1/models/surge:predict"
    error = check_answers(url, model, device, 2e-2 if precision == "fp16" else 1e-4)
    latency = asyncio.run(single_row_ms(url, 320))
    rate, failed = asyncio.run(throughput(url, 1500))
    serve.delete("prediction")
    return {
        "p50": float(np.percentile(latency, 50)),
        "p99": float(np.percentile(latency, 99)),
        "rate": rate,
        "failed": failed,
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--without-gpu", action="store_true", help="check the script on CPU; writes nothing")
    args = parser.parse_args()
    variants = (("cpu fp32", 0, "fp32"), ("cuda fp32", 1, "fp32"), ("cuda fp16", 1, "fp16"))
    if args.without_gpu:
        variants = (("cpu fp32", 0, "fp32"), ("cpu fp16", 0, "fp16"))
    elif not torch.cuda.is_available():
        print("gpu_pool: no CUDA device here; nothing measured (run it on a GPU machine)")
        return
    ray.init(num_cpus=12, num_gpus=0 if args.without_gpu else 1, include_dashboard=False, log_to_driver=False)
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        overrides, model = prepare(state)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        figures = {variant: measure(overrides, model, port, gpus, precision) for variant, gpus, precision in variants}
        serve.shutdown()
    ray.shutdown()
    if args.without_gpu:
        print(json.dumps(figures, indent=1))
        return
    _report(figures)


def _report(figures: dict[str, dict[str, float]]) -> None:
    base = figures["cpu fp32"]
    results = []
    for variant, f in figures.items():
        baseline = None if variant == "cpu fp32" else base
        results += [
            Result(f"{variant} single-row p50", f["p50"], "ms", baseline=baseline and baseline["p50"]),
            Result(f"{variant} single-row p99", f["p99"], "ms", baseline=baseline and baseline["p99"]),
            Result(
                f"{variant} predictions/s, {CLIENTS} clients x {ROWS_PER_REQUEST} rows",
                f["rate"],
                "predictions/s",
                baseline=baseline and baseline["rate"],
            ),
            Result(f"{variant} failed requests", f["failed"], "requests", target=Target("value", "<=", 0)),
            Result(f"{variant} max relative error vs the model here", f["error"], ""),
        ]
    notes = (
        f"GPU: {torch.cuda.get_device_name(0)}; model: MLP {SHAPE['in_features']}->{SHAPE['hidden']}->1 in the "
        "GpuModelPool (1 replica, @serve.batch up to 64 requests) behind 2 tier-1 replicas taking HTTP, one local "
        "Ray; ratios are to the same pool on CPU (gpus_per_replica 0) in the same run. Raw: " + json.dumps(figures)
    )
    report("gpu_pool", results, notes)


if __name__ == "__main__":
    main()
