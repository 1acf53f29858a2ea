"""CPU time per request of every process on the box, HTTP predictions against the bare multiplexed deployment
that reads the same body, 16 clients, behind Serve's HAProxy ingress: where a prediction's CPU goes, including the
processes a replica profile never shows (Ray's metrics agent, HAProxy and Serve's HAProxy manager, the load
generator).

Each endpoint takes ``--rounds`` windows of ``--seconds`` under load, alternating; each window is followed by
``DRAIN_S`` idle seconds so that what the load leaves to be done later (Ray's metrics export, every 10 s) lands
in the window that caused it. An idle window of the same length, measured first, is taken off each. CPU time is
each process's user + system time from ``/proc``. A diagnosis, not a target: throughput on this 2-core box moves
more from run to run than these shares do (`docs/serving-performance.md`).

Run alone: `python bench/prediction_cpu.py [--rounds 3] [--seconds 10]` (embedded defaults: SQLite features,
local Ray; no servers); writes ``prediction_cpu.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import ray
from _harness import Result, free_port, report
from prediction_http import BodyConstant, _load, interleaved, prepare
from ray import serve

from apps.prediction import build_app
from ma_ray.serving import POOL_DEPLOYMENTS, TIER1_GROUP

DRAIN_S = 12.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SHOWN = 6  # other processes named in the results; the rest count in the total only
SERVING = {"predict": "ray::ServeReplica:prediction:ModelPoolTier1", "body": "ray::ServeReplica:body:BodyConstant"}


def cpu_seconds_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (its command line, user + system CPU seconds so far), for every process that can be read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # the process ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        name = command or stat.split("(", 1)[1].rsplit(")", 1)[0]
        found[int(entry.name)] = (_short(name), (int(fields[11]) + int(fields[12])) / TICKS_PER_S)
    return found


def _short(command: str) -> str:
    """A process's name as Ray's workers title themselves (``ray::ServeReplica:...``), else its program."""
    first = command.split()[0] if command.split() else command
    return first if first.startswith("ray::") else Path(first).name + "".join(f" {a}" for a in command.split()[1:2])


def window(url: str | None, body: dict, seconds: float) -> tuple[int, Counter[str]]:
    """Requests answered under load for ``seconds`` (none when ``url`` is None), then ``DRAIN_S`` idle; CPU seconds
    each process name used over the whole window."""
    before = cpu_seconds_by_process()
    done = asyncio.run(_load(url, [body], seconds))[0] if url else 0
    time.sleep(DRAIN_S if url else seconds + DRAIN_S)
    used: Counter[str] = Counter()
    for pid, (name, total) in cpu_seconds_by_process().items():
        used[name] += max(total - before.get(pid, (name, 0.0))[1], 0.0)
    return done, used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="load windows per endpoint, alternating")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per window, 16 clients")
    args = parser.parse_args()
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        overrides, drivers = prepare(state, "sqlite")
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"settings": overrides}), name="prediction", route_prefix="/")
        front = serve.status().applications["prediction"].deployments[POOL_DEPLOYMENTS[TIER1_GROUP]]
        replicas = front.replica_states.get("RUNNING", 1)
        serve.run(BodyConstant.options(num_replicas=replicas).bind(), name="body", route_prefix="/body")
        base = f"http://127.0.0.1:{port}"
        urls = {"predict": f"{base}/v1/models/eta:predict", "body": f"{base}/body"}
        body = {"rows": [{"driver_id": drivers[0], "request_ts": "2026-01-07T08:30:00+00:00"}]}
        interleaved(urls, [body], 100)  # warm-up: model loaded, connections open
        time.sleep(DRAIN_S)
        _, idle = window(None, body, args.seconds)
        done = dict.fromkeys(urls, 0)
        used: dict[str, Counter[str]] = {name: Counter() for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                answered, cpu = window(url, body, args.seconds)
                done[name] += answered
                used[name].update(cpu)
        serve.shutdown()
    ray.shutdown()
    report("prediction_cpu", results(done, used, idle, args.rounds), notes(done, used, idle, args.rounds))


def net_ms(used: Counter[str], idle: Counter[str], rounds: int, requests: int, name: str | None = None) -> float:
    """CPU ms a request of one process name (all processes when None), the idle windows' use taken off."""
    if name is None:
        return (sum(used.values()) - rounds * sum(idle.values())) / requests * 1000
    return (used[name] - rounds * idle[name]) / requests * 1000


def results(done: dict[str, int], used: dict[str, Counter[str]], idle: Counter[str], rounds: int) -> list[Result]:
    def share(endpoint: str, name: str | None = None) -> float:
        return net_ms(used[endpoint], idle, rounds, done[endpoint], name)

    out = [
        Result(
            "CPU a single-row prediction, every process on the box (16 clients, HAProxy) vs the bare deployment",
            share("predict"),
            "ms",
            baseline=share("body"),
        ),
        Result(
            "CPU a request in the replicas that answer it: the tier-1 pool vs the bare deployment",
            share("predict", SERVING["predict"]),
            "ms",
            baseline=share("body", SERVING["body"]),
        ),
        Result(
            "answers in the load windows (16 clients) vs the bare deployment's",
            done["predict"],
            "requests",
            done["body"],
        ),
    ]
    others = (used["predict"] + used["body"]).most_common()
    for name, _ in [o for o in others if o[0] not in SERVING.values()][:SHOWN]:
        metric = f"CPU a request in {name}: prediction vs bare"
        out.append(Result(metric, share("predict", name), "ms", baseline=share("body", name)))
    return out


def notes(done: dict[str, int], used: dict[str, Counter[str]], idle: Counter[str], rounds: int) -> str:
    agent = "ray::DashboardAgent"
    return (
        f"{rounds} windows an endpoint, alternating: {done['predict']} predictions and {done['body']} bare answers. "
        f"Ray's metrics agent ({agent}): {net_ms(used['predict'], idle, rounds, done['predict'], agent):.3f} ms a "
        f"prediction against {net_ms(used['body'], idle, rounds, done['body'], agent):.3f} a bare answer. A "
        "process's share is net of the idle window and can come out slightly negative. 1-minute load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end."
    )


if __name__ == "__main__":
    main()
