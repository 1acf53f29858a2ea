"""The README's shell examples run as written: every ```bash block marked `<!-- readme-test: NAME -->` is taken
from README.md itself and run with `bash -euo pipefail` from the repository root, in the order of a
user's story: `ray job submit` the demo and a batch pipeline, `serve deploy` the Serve config, `serve status`,
`curl` the HTTP applications, then the `ma-ray` CLI over the state the jobs left.

The cluster is the README's one-machine try: `ray start --head` with an absolute `MA_RAY_STATE_DIR` in its
environment (a fresh temporary folder), so jobs, Serve replicas and the CLI share one state and none of it lands
in the repository. The only changes to the README's text are those of `REWRITES` (and `SERVE_CONFIG_REWRITES`
for the test's copy of the Serve config), each of which must still match the README.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
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

# The README's examples use the fixed ports of a user's cluster; the test's cluster and Serve proxy listen on free
# ports so they never collide with another Ray or server on the machine. The demo's million trips would take many
# minutes here: 20,000 is the smallest world in which the README's driver (drv_0000392) exists. The Serve config
# is replaced by a copy that differs only as SERVE_CONFIG_REWRITES says.
REWRITES: dict[str, str] = {
    "http://127.0.0.1:8265": "{job_server}",
    "localhost:8000": "localhost:{serve_port}",
    "--trips 1000000": "--trips 20000",
    SERVE_CONFIG: "{serve_config}",
}
# The proxy's port, as above; and no GPU per GPU-pool replica, which the README says to set on nodes without
# GPUs (this machine has none).
SERVE_CONFIG_REWRITES: dict[str, str] = {
    "port: 8000": "port: {serve_port}",
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


@dataclasses.dataclass(frozen=True)
class Story:
    env: dict[str, str]
    values: dict[str, str]  # what REWRITES' placeholders stand for
    jobs_output: str

    def run(self, name: str, timeout_s: float = 120) -> str:
        """One README block, rewritten as REWRITES says; its output (stdout and stderr), after a zero exit."""
        script = BLOCKS[name]
        for fixed, ours in REWRITES.items():
            script = script.replace(fixed, ours.format(**self.values))
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
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


def test_every_rewrite_matches_the_readme() -> None:
    """A rewrite that matches nothing would hide that the README changed under the test."""
    assert set(BLOCKS) == {
        "jobs", "serve-deploy", "serve-status", "serve-http", "predict-timing", "features-cli", "models-cli"
    }  # fmt: skip
    marked = "\n".join(BLOCKS.values())
    assert all(fixed in marked for fixed in REWRITES), [fixed for fixed in REWRITES if fixed not in marked]
    config = (ROOT / SERVE_CONFIG).read_text()
    assert all(config.count(fixed) == 1 for fixed in SERVE_CONFIG_REWRITES)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """A cluster of the test's own (its environment carries the state folder, as the README says to export), the
    README's `jobs` block run on it; torn down with the cluster at the end of the module."""
    folder = tmp_path_factory.mktemp("readme_shell")
    state = str(folder / "state")
    serve_port = free_port()
    config = (ROOT / SERVE_CONFIG).read_text()
    for fixed, ours in SERVE_CONFIG_REWRITES.items():
        config = config.replace(fixed, ours.format(serve_port=serve_port))
    (folder / "ma-ray-serve.yaml").write_text(config)
    with ray_head(num_cpus=4, object_store_mb=300, extra_env={"MA_RAY_STATE_DIR": state}) as head:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MA_RAY_") and k != "RAY_ADDRESS"}
        env.update(
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            RAY_ADDRESS=head.job_server,
            MA_RAY_STATE_DIR=state,
        )
        values = {
            "job_server": head.job_server,
            "serve_port": str(serve_port),
            "serve_config": str(folder / "ma-ray-serve.yaml"),
        }
        before_jobs = Story(env, values, jobs_output="")
        yield dataclasses.replace(before_jobs, jobs_output=before_jobs.run("jobs", timeout_s=600))


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
            ["serve", "shutdown", "--address", story.values["job_server"], "--yes"],
            env=story.env,
            capture_output=True,
            timeout=120,
            check=False,
        )


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
