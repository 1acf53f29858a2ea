"""The README's shell examples run as written: every ```bash block marked `<!-- readme-test: NAME -->` is taken
from README.md itself and run with `bash -euo pipefail` from the repository root, in the order of a
user's story: start the cluster, `ray job submit` the demo and a batch pipeline, `serve deploy` the Serve config,
`serve status`, `curl` the HTTP applications, then the `ma-ray` CLI over the state the jobs left.

Each block runs as in the newcomer's one shell: a PATH without the venv, no MA_RAY_* or RAY_* variables, then
`source .venv/bin/activate` (the README's line) and the `export` lines of the blocks before it. The cluster is the
README's `cluster-start` block: its exports and `ray get-auth-token --generate` run as written, and its `ray start
--head` line starts a head of the same size (its `--num-cpus`) in the same environment, on free ports and in the
foreground so the test can stop it. The only changes to the README's text are those of `REWRITES` (and
`SERVE_CONFIG_REWRITES` for the test's copy of the Serve config), each of which must still match the README; the
README lists them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.ports import free_port
from tests.ray_head import ray_head

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^<!-- readme-test: ([\w-]+) -->\n```bash\n(.*?)^```", flags=re.S | re.M)
SERVE_CONFIG = "clusters/serve/ma-ray-serve.yaml"
ACTIVATE = "source .venv/bin/activate"
HEAD_LINE = re.compile(r"^ray start --head .*--num-cpus (\d+).*\n", flags=re.M)

# The README's examples use the fixed ports of a user's cluster and its checkout's state dir; the test's cluster,
# Serve proxy and state use free ports and a temporary folder, so they never collide with another Ray, server or
# state on the machine. The demo's million trips would take many minutes here: 20,000 is the smallest world in
# which the README's driver (drv_0000392) exists. The Serve config is replaced by a copy that differs only as
# SERVE_CONFIG_REWRITES says.
REWRITES: dict[str, str] = {
    "$PWD/.ma_ray": "{state_dir}",
    "http://127.0.0.1:8265": "{job_server}",
    "localhost:8000": "localhost:{serve_port}",
    "localhost:9000": "localhost:{grpc_port}",
    "--trips 1000000": "--trips 20000",
    SERVE_CONFIG: "{serve_config}",
}
# The proxies' ports (HTTP, gRPC), as above; and no GPU per GPU-pool replica, which the README says to set on
# nodes without GPUs (this machine has none).
SERVE_CONFIG_REWRITES: dict[str, str] = {
    "port: 8000": "port: {serve_port}",
    "port: 9000": "port: {grpc_port}",
    "gpus_per_replica: 1": "gpus_per_replica: 0",
}
APPS = ("prediction", "features", "gallery")
FEATURE = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"


def readme_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for name, text in BLOCK.findall(README):
        assert name not in blocks, f"two README blocks are marked readme-test: {name}"
        blocks[name] = text
    return blocks


BLOCKS = readme_blocks()


def newcomer_env() -> dict[str, str]:
    """This machine's environment as a fresh shell has it: the venv off PATH, no ma-ray or Ray variables."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = ":".join(p for p in os.environ["PATH"].split(":") if p and Path(p) != Path(venv_bin))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MA_RAY_", "RAY_")) and k != "VIRTUAL_ENV"}
    return {**env, "PATH": path}


@dataclasses.dataclass(frozen=True)
class Story:
    env: dict[str, str]
    values: dict[str, str]  # what REWRITES' placeholders stand for
    exports: tuple[str, ...] = ()  # the export lines of the blocks run so far, as the user's shell keeps them
    jobs_output: str = ""

    def rewritten(self, text: str) -> str:
        for fixed, ours in REWRITES.items():
            text = text.replace(fixed, ours.format(**self.values))
        return text

    def script(self, text: str) -> str:
        return "\n".join([ACTIVATE, *self.exports, self.rewritten(text)])

    def then(self, name: str) -> Story:
        """The story after block ``name``: its exports kept for the blocks after it."""
        exports = [self.rewritten(line) for line in BLOCKS[name].splitlines() if line.startswith("export ")]
        return dataclasses.replace(self, exports=(*self.exports, *exports))

    def run(self, name: str, timeout_s: float = 120, text: str | None = None) -> str:
        """One README block, rewritten as REWRITES says; its output (stdout and stderr), after a zero exit."""
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.script(BLOCKS[name] if text is None else text)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one transcript, as a terminal shows it
            text=True,
            timeout=timeout_s,
            check=False,
        )
        output = result.stdout
        assert result.returncode == 0, f"README block {name} exited {result.returncode}:\n{output[-4000:]}"
        return output

    def shell_env(self) -> dict[str, str]:
        """The environment the story's shell has now (the venv activated, the exports made): `ray start`'s."""
        dump = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.script("env -0")],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return dict(item.split("=", 1) for item in dump.stdout.split("\0") if "=" in item)


def test_every_rewrite_matches_the_readme() -> None:
    """A rewrite that matches nothing would hide that the README changed under the test."""
    assert set(BLOCKS) == {
        "cluster-start", "jobs", "serve-deploy", "serve-status", "serve-http", "predict-timing", "predict-v2",
        "predict-tritonclient", "predict-grpc", "features-cli", "models-cli",
    }  # fmt: skip
    marked = "\n".join(BLOCKS.values())
    assert all(fixed in marked for fixed in REWRITES), [fixed for fixed in REWRITES if fixed not in marked]
    config = (ROOT / SERVE_CONFIG).read_text()
    assert all(config.count(fixed) == 1 for fixed in SERVE_CONFIG_REWRITES)
    assert HEAD_LINE.search(BLOCKS["cluster-start"]), "the cluster-start block starts no head"
    assert ACTIVATE in README, "the README no longer tells users to activate the venv"
    for fixed in REWRITES:  # the README tells users what the test changes
        assert f"`{fixed}`" in README or fixed in ("--trips 1000000", SERVE_CONFIG), fixed


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """The README's cluster-start block (its head of the same size, in the shell's environment), then its `jobs`
    block on that cluster; torn down with the cluster at the end of the module."""
    folder = tmp_path_factory.mktemp("readme_shell")
    serve_port, grpc_port = free_port(), free_port()
    config = (ROOT / SERVE_CONFIG).read_text()
    for fixed, ours in SERVE_CONFIG_REWRITES.items():
        config = config.replace(fixed, ours.format(serve_port=serve_port, grpc_port=grpc_port))
    (folder / "ma-ray-serve.yaml").write_text(config)
    values = {"state_dir": str(folder / "state"), "serve_port": str(serve_port), "grpc_port": str(grpc_port),
              "serve_config": str(folder / "ma-ray-serve.yaml"), "job_server": ""}  # fmt: skip
    head_line = HEAD_LINE.search(BLOCKS["cluster-start"])
    assert head_line is not None
    before = Story(newcomer_env(), values)
    before.run("cluster-start", text=BLOCKS["cluster-start"].replace(head_line.group(0), ""))
    started = before.then("cluster-start")
    with ray_head(num_cpus=int(head_line.group(1)), object_store_mb=300, env=started.shell_env()) as head:
        on_cluster = dataclasses.replace(started, values={**values, "job_server": head.job_server})
        jobs_output = on_cluster.run("jobs", timeout_s=600)
        yield dataclasses.replace(on_cluster.then("jobs"), jobs_output=jobs_output)


@dataclasses.dataclass(frozen=True)
class Serving:
    story: Story
    statuses: dict[str, str]  # application -> status, from the README's `serve status`


@pytest.fixture(scope="module")
def serving(story: Story) -> Iterator[Serving]:
    """The README's `serve deploy`, then its `serve status` until every application runs (or 3 minutes pass);
    `serve shutdown` at the end, so nothing of it outlives the module."""
    try:
        assert "Sent deploy request successfully" in story.run("serve-deploy")
        deadline = time.monotonic() + 180
        statuses = _app_statuses(story.run("serve-status"))
        while any(statuses.get(app) != "RUNNING" for app in APPS) and time.monotonic() < deadline:
            time.sleep(3)
            statuses = _app_statuses(story.run("serve-status"))
        yield Serving(story, statuses)
    finally:
        subprocess.run(
            ["bash", "-c", story.script(f"serve shutdown --address {story.values['job_server']} --yes")],
            cwd=ROOT, env=story.env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def _app_statuses(output: str) -> dict[str, str]:
    applications = yaml.safe_load(output[output.index("applications:") :]).get("applications") or {}
    return {name: app["status"] for name, app in applications.items()}


def test_ray_job_submit_runs_the_demo_and_a_batch_pipeline(story: Story) -> None:
    succeeded = re.findall(r"Job '(raysubmit_\w+)' succeeded", story.jobs_output)
    assert len(succeeded) == 2, story.jobs_output[-4000:]
    assert "all 8 stages done" in story.jobs_output
    assert "registered eta_minutes:1 with lineage" in story.jobs_output
    assert re.search(r"driver_stats\s+2026-01-28\s+incremental\s+succeeded", story.jobs_output)
    listed = story.jobs_output[story.jobs_output.rindex("[JobDetails(") :]  # `ray job list`: the last lines
    for submission in succeeded:
        status = re.search(rf"submission_id='{submission}', .*?, status=<JobStatus\.(\w+)", listed, flags=re.S)
        assert status and status.group(1) == "SUCCEEDED", listed[-4000:]


def test_serve_status_shows_every_application_running(serving: Serving) -> None:
    assert {app: serving.statuses.get(app) for app in APPS} == dict.fromkeys(APPS, "RUNNING")


def test_curl_predicts_looks_up_features_and_serves_openapi(serving: Serving) -> None:
    output = serving.story.run("serve-http")
    assert re.search(r'\{"model":"eta_minutes","version":1,"predictions":\[[\d.]+\],"degraded":false', output)
    features = re.search(r'\{"read_ts":.*?\]\}', output)
    assert features and FEATURE in features.group(0) and '"defaulted":false' in features.group(0), output
    assert "swagger-ui" in output  # /docs: the prediction application's OpenAPI page


def test_curl_with_timing_header(serving: Serving) -> None:
    output = serving.story.run("predict-timing")
    assert re.search(r"^HTTP/1.1 200", output, flags=re.M)
    assert re.search(r"^x-ma-timing: .*parsing;dur=[\d.]+.*inference;dur=", output, flags=re.M | re.I)
    assert '"model":"eta_minutes","version":1,"predictions":[' in output


def test_curl_and_tritonclient_speak_the_open_inference_protocol(serving: Serving) -> None:
    output = serving.story.run("predict-v2")
    assert '"inputs":[{"name":"driver_id","datatype":"BYTES","shape":[-1]}' in output  # the model's metadata
    answer = r'"model_version":"1","outputs":\[\{"name":"predictions","datatype":"FP64","shape":\[1\],"data":\[[\d.]+\]'
    assert re.search(answer, output), output
    assert re.search(r"^eta_minutes 1 \[[\d.]+\]$", serving.story.run("predict-tritonclient"), flags=re.M)
    over_grpc = serving.story.run("predict-grpc")
    assert "ready True" in over_grpc and re.search(r"^eta_minutes 1 \[[\d.]+\]$", over_grpc, flags=re.M), over_grpc


def test_feature_cli_over_the_jobs_state(story: Story) -> None:
    output = story.run("features-cli")
    assert "applied catalog 'rideshare'" in output
    assert FEATURE in output
    assert re.search(r"^trip_count_7d\s+int\s+0", output, flags=re.M)  # describe rideshare.driver_stats
    assert "raw:trips\n├── group:rideshare:driver_stats" in output  # lineage downstream raw:trips
    assert re.search(r"^model:eta_minutes:1\n├── @palette:", output, flags=re.M)  # upstream: its features
    assert "snapshot:rideshare.driver_stats:" in output


def test_models_cli_over_the_jobs_state(story: Story) -> None:
    output = story.run("models-cli")
    assert re.search(r"^eta_minutes\s+marketplace-ml\s+1\s+xgboost\s+1\s", output, flags=re.M)
    assert re.search(r"^1\s.*xgboost.*valid_rmse=.*production$", output, flags=re.M)
    assert re.search(r"^1\s+\S+\s+\S+\s+-\s+1\s", output, flags=re.M)  # alias history: none -> 1
