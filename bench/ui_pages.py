"""The web UI's pages, timed as a browser asks for them (HTTP GET to `ma-ray ui`'s app under uvicorn), next to
the floor of the same server answering a fixed page of the same size class in the same run.

Target (issue 20): every page under 300 ms with the demo's state (``--state-dir`` after `make demo`) and with
500 registered models (the default: a state seeded here with the sample catalog at two schema versions, 500
models of two versions and an alias each, and 200 finished jobs with training histories).
Run alone: `python bench/ui_pages.py [--state-dir .ma_ray] [--requests 30]`.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
import uvicorn
from _harness import Result, Target, free_port, latencies_us, report
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from ma_ray.config import Settings, load_settings
from ma_ray.gallery import Gallery, VersionSpec
from ma_ray.jobs import JobRecord, JobState, open_job_store
from ma_ray.palette import FeatureRegistry, load_repository
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.ui import build_ui

SAMPLE = Path(__file__).resolve().parents[1] / "ma_ray" / "palette" / "samples" / "rideshare"


def seed(settings: Settings, models: int, jobs: int) -> tuple[str, str]:
    """The seeded state; returns a model and a job whose pages are timed."""
    meta = open_meta_store(settings)
    registry, repo = FeatureRegistry(meta), load_repository(SAMPLE)
    registry.apply(repo)
    group = repo.groups[0]
    extra = group.features[0].model_copy(update={"name": f"{group.features[0].name}_v2"})
    changed = group.model_copy(update={"features": (*group.features, extra)})
    registry.apply(repo.model_copy(update={"groups": (changed, *repo.groups[1:])}))
    meta.close()
    gallery = Gallery.from_settings(settings)
    artifact = Path(settings.state_dir) / "weights.bin"
    artifact.write_bytes(b"w" * 4096)
    for i in range(models):
        name = f"model_{i:03d}"
        gallery.register_model(name=name, owner="bench", tier=1 + i % 4, framework="other", description=f"#{i}")
        published = gallery.artifacts.publish(name, str(artifact), "other")
        spec = VersionSpec(artifact_uri=published.uri, checksum=published.checksum,
                           size_bytes=published.size_bytes, flavor="other", metrics={"rmse": 1.0})  # fmt: skip
        for _ in range(2):
            gallery.register_version(name, spec)
        gallery.set_alias(name, "production", 2)
    gallery.close()
    store = open_job_store(settings)
    history = [{"step": float(s), "train-rmse": 3.0 / s, "valid-rmse": 3.3 / s} for s in range(1, 51)]
    for i in range(jobs):
        record = JobRecord(f"job-{i:04d}", {"name": "model_000", "framework": "xgboost"},
                           state=JobState.SUCCEEDED, tier=1 + i % 4, attempt=1)  # fmt: skip
        store.put(record)
        store.add_event(record.job_id, "submitted")
        store.put_outcome(record.job_id, 1, {"status": "succeeded", "history": history, "checkpoints": []})
    store.close()
    return "model_000", "job-0000"


def pick(settings: Settings) -> tuple[str, str, str]:
    """A model, a job and a group of an existing state (after `make demo`)."""
    gallery = Gallery.from_settings(settings)
    model = gallery.models()[0].name
    gallery.close()
    store = open_job_store(settings)
    job = store.list()[0].job_id
    store.close()
    return model, job, "driver_stats"


def serve_in_thread(app: FastAPI) -> tuple[str, uvicorn.Server]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the UI server did not start within 30 s")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", help="time an existing state (e.g. .ma_ray after make demo) instead")
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    state = args.state_dir or tempfile.mkdtemp(prefix="ui_bench_")
    settings = load_settings(state_dir=state)
    if args.state_dir:
        model, job, group = pick(settings)
        label = "an existing state, --state-dir"
    else:
        model, job = seed(settings, args.models, args.jobs)
        group, label = "driver_stats", f"{args.models} models, {args.jobs} jobs"
    root = FastAPI()
    root.mount("/ui", build_ui(settings, metrics_urls=list, pool_states=list))
    features_size = 0

    @root.get("/floor", response_class=HTMLResponse)
    def floor() -> str:  # the same server answering a fixed page: what any page costs before its reads
        return "x" * features_size

    url, server = serve_in_thread(root)
    session = requests.Session()
    features_size = len(session.get(f"{url}/ui/features", timeout=30).content)
    floor_us = latencies_us(lambda: session.get(f"{url}/floor", timeout=30), args.requests, warmup=5)
    pages = {
        "features": "/features", "feature group": f"/features/rideshare/{group}",
        "lineage": f"/lineage?node=group:rideshare:{group}&direction=downstream", "models": "/models",
        "model": f"/models/{model}", "jobs": "/jobs", "job": f"/jobs/{job}", "serving": "/serving",
    }  # fmt: skip
    results = [Result("floor: a fixed page of the features page's size, p50", float(np.median(floor_us)) / 1000, "ms")]
    for name, path in pages.items():
        response = session.get(f"{url}/ui{path}", timeout=30)
        assert response.status_code == 200, (path, response.status_code)
        samples = latencies_us(lambda path=path: session.get(f"{url}/ui{path}", timeout=30), args.requests, warmup=3)
        p50, p99 = float(np.median(samples)) / 1000, float(np.percentile(samples, 99)) / 1000
        results.append(Result(f"{name} page p50 ({label})", p50, "ms", baseline=results[0].value,
                              target=Target("value", "<", 300)))  # fmt: skip
        results.append(Result(f"{name} page p99 ({label})", p99, "ms", target=Target("value", "<", 300)))
    server.should_exit = True
    name = "ui_pages_demo" if args.state_dir else "ui_pages"
    report(name, results, notes=f"GET over loopback to uvicorn; floor page of {features_size} bytes; {label}")


if __name__ == "__main__":
    main()
