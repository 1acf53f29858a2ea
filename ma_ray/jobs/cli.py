"""`ma-ray jobs submit|list|status|logs|cancel`: training jobs through the job controller actor.

The controller runs in the Ray cluster the settings name (``MA_RAY_RAY_ADDRESS``; default: the local cluster
``ray start --head`` started). ``submit --clusters FILE`` starts it there if it is not running yet (as a child
process, `python -m actors.job_controller`, like `ma-ray demo` runs its app). A spec is checked here first and
again by the controller; a refused spec prints every reason and exits 1 with nothing submitted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from ma_ray.config import load_settings
from ma_ray.jobs.spec import SpecError, load_spec
from ma_ray.jobs.workflow import CONTROLLER_NAME, CONTROLLER_NAMESPACE, JobState
from ma_ray.text_table import format_table

REFUSED = 1


def _connect() -> None:
    import ray

    if not ray.is_initialized():
        address = load_settings().ray_address or "auto"
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as error:
            raise ValueError(
                f"no Ray cluster at {address!r} ({error}): start one with `ray start --head` or set MA_RAY_RAY_ADDRESS"
            ) from None


def _controller(clusters: str | None) -> Any:
    import ray

    _connect()
    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=CONTROLLER_NAMESPACE)
    except ValueError:
        if clusters is None:
            raise ValueError(
                "no job controller is running in this Ray cluster: pass --clusters FILE to start one "
                "(see clusters/jobs/clusters.yaml)"
            ) from None
    code = subprocess.call([sys.executable, "-m", "actors.job_controller", "--clusters", clusters])
    if code:
        raise ValueError(f"starting the job controller failed (exit {code})")
    return ray.get_actor(CONTROLLER_NAME, namespace=CONTROLLER_NAMESPACE)


def _call(method: Any, *args: Any) -> Any:
    import ray

    return ray.get(method.remote(*args))


def _print_refused(reasons: list[str], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"refused": reasons}, indent=2))
    else:
        print("job spec refused, nothing was submitted:", file=sys.stderr)
        for reason in reasons:
            print(f"  - {reason}", file=sys.stderr)
    return REFUSED


def cmd_jobs(args: argparse.Namespace) -> int:
    handlers = {"submit": _submit, "list": _list, "status": _status, "logs": _logs, "cancel": _cancel}
    return handlers[args.verb](args)


def _submit(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec)
    except SpecError as error:
        return _print_refused(error.reasons, args.json)
    controller = _controller(args.clusters)
    answer = _call(controller.submit, spec.model_dump(mode="json"))
    if "refused" in answer:
        return _print_refused(answer["refused"], args.json)
    job = answer["job"]
    if not args.wait:
        print(json.dumps(job, indent=2) if args.json else f"submitted {job['job_id']} ({job['message']})")
        return 0
    if not args.json:
        print(f"submitted {job['job_id']}; waiting for it to finish")
    final = _wait(controller, job["job_id"], args.timeout)
    print(json.dumps(final, indent=2, default=str) if args.json else _describe(final))
    return 0 if final["state"] == JobState.SUCCEEDED else 1


def _wait(controller: Any, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = _call(controller.status, job_id)
        if JobState(status["state"]).terminal or time.monotonic() > deadline:
            return status
        time.sleep(1.0)


def _list(args: argparse.Namespace) -> int:
    jobs = _call(_controller(None).list)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    rows = [
        (j["job_id"], j["spec"]["framework"], j["tier"], j["state"], j["attempt"], j["cluster"], j["model_version"],
         j["message"])
        for j in jobs
    ]  # fmt: skip
    print(format_table(rows, ["job", "framework", "tier", "state", "attempt", "cluster", "model", "message"]))
    return 0


def _describe(status: dict[str, Any]) -> str:
    lines = [
        f"{status['job_id']}: {status['state']} - {status['message']}",
        f"framework {status['spec']['framework']}, tier {status['tier']}, attempt {status['attempt']} "
        f"({status['failures']} failed, at most {status['max_attempts']}), cluster {status['cluster'] or '-'}, "
        f"workers {status.get('workers') or '-'}",
        f"snapshots {status['training_snapshot']}; model {status['model_version'] or '-'}",
    ]
    outcome = status.get("outcome")
    if outcome:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(outcome.get("metrics", {}).items()))
        lines.append(
            f"last attempt: {outcome['status']}, step {outcome['final_step']}, resumed from "
            f"{outcome['resumed_from_step']}, {outcome['rows']} rows; {metrics}"
        )
    events = [(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"])), e["message"]) for e in status["events"]]
    return "\n".join(lines) + "\n" + format_table(events, ["at (UTC)", "event"])


def _status(args: argparse.Namespace) -> int:
    status = _call(_controller(None).status, args.job_id)
    print(json.dumps(status, indent=2, default=str) if args.json else _describe(status))
    return 0


def _logs(args: argparse.Namespace) -> int:
    logs = _call(_controller(None).logs, args.job_id)
    if args.json:
        print(json.dumps(logs, indent=2))
        return 0
    for attempt, text in sorted(logs.items()):
        print(f"===== attempt {attempt} =====")
        print(text.rstrip())
    return 0


def _cancel(args: argparse.Namespace) -> int:
    record = _call(_controller(None).cancel, args.job_id)
    print(json.dumps(record, indent=2) if args.json else f"{record['job_id']}: {record['state']} ({record['message']})")
    return 0


def add_commands(nouns: argparse._SubParsersAction) -> None:
    jobs = nouns.add_parser("jobs", help="training jobs: submit a spec, list, status, logs, cancel")
    verbs = jobs.add_subparsers(dest="verb", required=True)
    submit = verbs.add_parser("submit", help="validate a job spec (YAML) and submit it to the job controller")
    submit.add_argument("spec", help="the job spec file (see clusters/jobs/*.yaml)")
    submit.add_argument("--clusters", help="clusters YAML; starts the controller with it if none is running")
    submit.add_argument("--wait", action="store_true", help="wait until the job finishes; exit 1 unless it succeeded")
    submit.add_argument("--timeout", type=float, default=3600.0, help="--wait gives up after this many seconds")
    for verb, text in (
        ("list", "every job"),
        ("status", "a job's state, last outcome and events"),
        ("logs", "a job's logs, by attempt"),
        ("cancel", "cancel a queued job or stop a running one"),
    ):
        sub = verbs.add_parser(verb, help=text)
        if verb != "list":
            sub.add_argument("job_id")
    for sub in verbs.choices.values():
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=cmd_jobs)
