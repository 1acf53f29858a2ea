"""The benchmark harness: timing helpers, a results file per benchmark, and a readable table.

Each benchmark writes ``bench/results/<name>.json`` as
``{"name", "machine", "results": [{"metric", "value", "unit", "baseline", "ratio", "target", "met"}]}``.
A target is ``{"on": "value" | "ratio", "op": "<" | "<=" | ">" | ">=", "value": x}``; a missed target is
printed and recorded as ``"met": false``, never hidden.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ma_ray.text_table import format_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass
class Target:
    on: str  # "value" or "ratio"
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.on not in ("value", "ratio") or self.op not in _OPS:
            raise ValueError(f"bad target {self}: on must be value|ratio, op one of {', '.join(_OPS)}")


@dataclass
class Result:
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: Target | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.baseline and self.ratio is None:
            self.ratio = self.value / self.baseline
        if self.target is not None:
            measured = self.ratio if self.target.on == "ratio" else self.value
            self.met = measured is not None and _OPS[self.target.op](measured, self.target.value)


def machine() -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
    }


def latencies_us(call: Callable[[], object], iterations: int, warmup: int = 50) -> np.ndarray:
    """Per-call wall time in microseconds."""
    for _ in range(warmup):
        call()
    samples = np.empty(iterations)
    for i in range(iterations):
        started = time.perf_counter_ns()
        call()
        samples[i] = (time.perf_counter_ns() - started) / 1000
    return samples


def interleaved_latencies_us(
    calls: dict[str, Callable[[], object]], iterations: int, warmup: int = 50
) -> dict[str, np.ndarray]:
    """Time several variants in alternation, so drift on a noisy machine hits them all alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples = {name: np.empty(iterations) for name in calls}
    for i in range(iterations):
        for name, call in calls.items():
            started = time.perf_counter_ns()
            call()
            samples[name][i] = (time.perf_counter_ns() - started) / 1000
    return samples


def percentiles_vs(
    metric: Callable[[int], str], samples: np.ndarray, baseline: np.ndarray, unit: str = "us"
) -> list[Result]:
    """p50 and p99 of ``samples`` against the same percentile of ``baseline``, each named ``metric(q)``."""
    return [
        Result(metric(q), float(np.percentile(samples, q)), unit, baseline=float(np.percentile(baseline, q)))
        for q in (50, 99)
    ]


def report(name: str, results: list[Result], notes: str | None = None) -> Path:
    """Write the results file (with ``notes``: what the figures mean, what dominated them) and print the
    table; returns the file's path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload: dict[str, object] = {"name": name, "machine": machine(), "results": [_as_json(r) for r in results]}
    if notes:
        payload["notes"] = notes
    path.write_text(json.dumps(payload, indent=2) + "\n")
    rows = [(r.metric, r.value, r.unit, r.baseline, r.ratio, _target_text(r.target), _met_text(r.met)) for r in results]
    print(f"\n{name}")
    print(format_table(rows, ["metric", "value", "unit", "baseline", "ratio", "target", "met"]))
    missed = [r.metric for r in results if r.met is False]
    if missed:
        print(f"MISSED TARGETS: {', '.join(missed)}")
    if notes:
        print(notes)
    print(f"-> {path}")
    return path


def _as_json(result: Result) -> dict[str, object]:
    data = asdict(result)
    for key in ("value", "baseline", "ratio"):
        if data[key] is not None:
            data[key] = round(float(data[key]), 4)
    return data


def _target_text(target: Target | None) -> str:
    return "" if target is None else f"{target.on} {target.op} {target.value:g}"


def _met_text(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def free_port() -> int:
    """A TCP port free on loopback now (for a benchmark's Serve proxy)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
