"""`ma-ray jobs submit|list|status|logs|cancel`: training jobs through the job controller actor.

The controller runs in the Ray cluster the settings name (``MA_RAY_RAY_ADDRESS``; default: the local cluster
``ray start --head`` started). ``submit --clusters FILE`` starts it there if it is not running yet (as a child
process, `python -m actors.job_controller`, like `ma-ray demo` runs its app). A spec is checked here first and
again by the controller; a refused spec prints every reason and exits 1 with nothing submitted.
``submit --dry-run --clusters FILE`` runs the controller's validation here, without Ray, and submits nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ma_ray.config import load_settings
from ma_ray.jobs.spec import SpecError, TrainingJobSpec, load_spec
from ma_ray.jobs.workflow import CONTROLLER_NAME, CONTROLLER_NAMESPACE, JobState
from ma_ray.text_table import format_table

if TYPE_CHECKING:
    from ma_ray.jobs.validation import ValidatedJob

REFUSED = 1
T = TypeVar("T")


def _connect() -> None:
    import ray

    if not ray.is_initialized():
        address = load_settings().ray.address or "auto"
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as error:
            raise ValueError(
                f"no Ray cluster at {address!r} ({error}): start one with `ray start --head` or set MA_RAY_RAY_ADDRESS"
            ) from None


def controller_command(clusters: str, preempt_grace_s: float | None = None) -> list[str]:
    """The child process that starts the controller; the grace period is passed only when given (else its default)."""
    command = [sys.executable, "-m", "actors.job_controller", "--clusters", clusters]
    if preempt_grace_s is not None:
        command += ["--preempt-grace-s", str(preempt_grace_s)]
    return command


def _controller(clusters: str | None, preempt_grace_s: float | None = None) -> Any:
    import ray

    _connect()
    try:
        running = ray.get_actor(CONTROLLER_NAME, namespace=CONTROLLER_NAMESPACE)
    except ValueError:
        if clusters is None:
            raise ValueError(
                "no job controller is running in this Ray cluster: pass --clusters FILE to start one "
                "(see clusters/jobs/clusters.yaml)"
            ) from None
    else:
        if preempt_grace_s is not None:  # the running controller keeps the grace period it was started with
            print(
                "note: a job controller is already running, so --preempt-grace-s is ignored; stop it (ray.kill the "
                f"actor {CONTROLLER_NAME} in namespace {CONTROLLER_NAMESPACE}) to start one with another grace period",
                file=sys.stderr,
            )
        return running
    code = subprocess.call(controller_command(clusters, preempt_grace_s))
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
    if args.dry_run:
        return _dry_run(spec, args)
    controller = _controller(args.clusters, args.preempt_grace_s)
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


def _dry_run(spec: TrainingJobSpec, args: argparse.Namespace) -> int:
    """Validate exactly as the controller would (settings from MA_RAY_*, clusters from the file); Ray is not used."""
    from ma_ray.jobs.spec import load_clusters
    from ma_ray.jobs.validation import DEFAULT_HEADROOM, validate_job

    if args.clusters is None:  # the controller's clusters are unknown without Ray: the check needs them here
        raise ValueError("--dry-run checks the spec against a clusters file: pass --clusters FILE "
                         "(see clusters/jobs/clusters.yaml)")  # fmt: skip
    try:
        validated = validate_job(spec, load_settings(), load_clusters(args.clusters), DEFAULT_HEADROOM)
    except SpecError as error:
        return _print_refused(error.reasons, args.json)
    plan = dry_run_plan(validated)
    print(json.dumps({"would_submit": plan}, indent=2) if args.json else _describe_plan(plan))
    return 0


def dry_run_plan(validated: ValidatedJob) -> dict[str, Any]:
    """What the controller would record and ask the scheduler for: the resolved snapshots and the request."""
    from ma_ray.jobs.validation import job_request

    spec = validated.spec
    request = job_request(spec.name, spec)
    start, end = spec.data.bounds()
    return {
        "name": spec.name,
        "framework": spec.framework,
        "tier": spec.tier,
        "owner": spec.owner,
        "labels": {"uri": f"{spec.label.uri}/{spec.label.table}", "start": start.isoformat(), "end": end.isoformat()},
        "snapshots": {group: [str(d) for d in dates] for group, dates in sorted(validated.snapshots.items())},
        "training_snapshot": validated.training_snapshot,
        "request": {
            "workers": request.max_workers,
            "min_workers": request.min_workers,
            "worker": {"cpu": request.worker.cpu, "gpu": request.worker.gpu, "memory_gb": request.worker.memory_gb},
            "data_location": request.data_location,
        },
    }


def _describe_plan(plan: dict[str, Any]) -> str:
    request, worker, labels = plan["request"], plan["request"]["worker"], plan["labels"]
    elastic = f" (elastic down to {request['min_workers']})" if request["min_workers"] else ""
    snapshots = "; ".join(f"{g}: {d[0]}..{d[-1]} ({len(d)} day(s))" for g, d in plan["snapshots"].items()) or "none"
    return "\n".join(
        [
            f"would submit {plan['name']} ({plan['framework']}, tier {plan['tier']}, owner {plan['owner']}); "
            "dry run: nothing was submitted",
            f"  snapshots: {snapshots}",
            f"  labels: {labels['uri']} from {labels['start']} to {labels['end']} (end excluded)",
            f"  resources: {request['workers']} worker(s){elastic} of {worker['cpu']:g} CPU, {worker['gpu']:g} GPU, "
            f"{worker['memory_gb']:g} GiB; data location {request['data_location'] or 'any'}",
        ]
    )


def _wait(controller: Any, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = _call(controller.status, job_id)
        if JobState(status["state"]).terminal or time.monotonic() > deadline:
            return status
        time.sleep(1.0)


class ControllerJobs:
    """Jobs as the running controller answers them (a running attempt's logs live)."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def list(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = _call(self.controller.list)
        return jobs

    def status(self, job_id: str) -> dict[str, Any]:
        status: dict[str, Any] = _call(self.controller.status, job_id)
        return status

    def logs(self, job_id: str) -> dict[int, str]:
        logs: dict[int, str] = _call(self.controller.logs, job_id)
        return logs


class StoredJobs:
    """Jobs as the job store keeps them: what `list`, `status` and `logs` read when no controller runs, e.g. after
    `ma-ray demo`, whose Ray ended with it (logs are those the controller archived when each attempt ended)."""

    def __init__(self) -> None:
        self.settings = load_settings()

    def _read(self, read: Callable[[Any], T]) -> T:
        from ma_ray.jobs.job_store import open_job_store

        store = open_job_store(self.settings)
        try:
            return read(store)
        finally:
            store.close()

    def list(self) -> list[dict[str, Any]]:
        return self._read(lambda store: [r.to_dict() for r in store.list()])

    def status(self, job_id: str) -> dict[str, Any]:
        from ma_ray.jobs.job_store import job_status

        return self._read(lambda store: job_status(store, job_id))

    def logs(self, job_id: str) -> dict[int, str]:
        from ma_ray.jobs.job_store import known_job

        def archived(store: Any) -> dict[int, str]:
            known_job(store, job_id)  # an unknown job is an error, not an empty log
            logs: dict[int, str] = store.logs(job_id)
            return logs

        return self._read(archived)


def _jobs() -> ControllerJobs | StoredJobs:
    """The running controller, or the job store the settings name when no Ray cluster or controller runs."""
    try:
        return ControllerJobs(_controller(None))
    except ValueError as why:
        print(f"note: {why}; reading the job store of {load_settings().meta_store} instead", file=sys.stderr)
        return StoredJobs()


def _list(args: argparse.Namespace) -> int:
    jobs = _jobs().list()
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
    status = _jobs().status(args.job_id)
    print(json.dumps(status, indent=2, default=str) if args.json else _describe(status))
    return 0


def _logs(args: argparse.Namespace) -> int:
    logs = _jobs().logs(args.job_id)
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


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (e.g. 120)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def add_commands(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = nouns.add_parser("jobs", help="training jobs: submit a spec, list, status, logs, cancel")
    verbs = jobs.add_subparsers(dest="verb", required=True)
    submit = verbs.add_parser("submit", help="validate a job spec (YAML) and submit it to the job controller")
    submit.add_argument("spec", help="the job spec file (see clusters/jobs/*.yaml)")
    submit.add_argument("--clusters", help="clusters YAML; starts the controller with it if none is running")
    submit.add_argument("--wait", action="store_true", help="wait until the job finishes; exit 1 unless it succeeded")
    submit.add_argument("--timeout", type=float, default=3600.0, help="--wait gives up after this many seconds")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the spec as the controller would (needs --clusters, not Ray) and print what would be submitted",
    )
    submit.add_argument(
        "--preempt-grace-s",
        type=_positive_seconds,
        help="when submit starts the controller: how long a preempted job may take to checkpoint before its Ray "
        "job is stopped (default: the controller's, 120 s)",
    )
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
