"""Deploying model versions to the prediction service on Ray Serve (2 tier-1 replicas, each taking HTTP), through
HTTP: the alias flips under a running request loop with no failed request and every ingress switched when the
deployment returns; a broken version rolls back while the previous one keeps serving; pinned versions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY
from ray import serve

from apps import deploy
from apps.gallery_api import GalleryAdminAPI
from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import DeploymentFailedError, DeploymentStatus, Gallery
from ma_ray.gallery.artifacts import MANIFEST
from ma_ray.serving.rollout import DEPLOY_FAILURES, Rollout, ServePool
from tests.e2e.test_prediction import REQUEST_TS, SIGNATURE, expected, train
from tests.ports import free_port
from tests.rideshare_data import load_sample

APP = "prediction"
POOL = "ModelPoolTier1"  # the test models are tier 1
REPLICAS = 2
TOKEN = "test-deploy-token"


@dataclass
class Service:
    url: str
    admin_url: str
    gallery: Gallery
    rollout: Rollout
    state_dir: Path
    snapshot: object
    boosters: dict[str, dict[int, object]] = field(default_factory=dict)

    def body(self, drivers: int = 1) -> dict:
        return {"rows": [{"driver_id": d, "request_ts": REQUEST_TS} for d in self.snapshot.index[:drivers]]}

    def register(self, model: str, seeds: list[int], corrupt: tuple[int, ...] = ()) -> None:
        """One version per seed (distinct artifacts); the versions in ``corrupt`` get their data overwritten."""
        self.gallery.register_model(name=model, owner="maps", tier=1, framework="xgboost")
        for seed in seeds:
            version = self.gallery.log_model(model, train(seed), signature=SIGNATURE)
            self.boosters.setdefault(model, {})[version.version] = train(seed)
            if version.version in corrupt:
                for path in Path(version.artifact_uri).rglob("*"):
                    if path.is_file() and path.name != MANIFEST:
                        path.write_bytes(b"not a model")


@pytest.fixture(scope="module")
def service(ray_cluster: str, raw_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    state_dir = tmp_path_factory.mktemp("deploy")
    overrides = {"state_dir": state_dir, "admin_token": TOKEN}
    snapshot = load_sample(load_settings(**overrides), raw_uri, batch_rows=5000)
    gallery = Gallery.from_settings(load_settings(**overrides))
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serving = {"replicas": {POOL: REPLICAS}, "num_cpus_per_replica": 0.1}
    serve.run(build_app({"settings": overrides, "serving": serving}), name=APP, route_prefix="/deploy")
    serve.run(GalleryAdminAPI.bind(overrides), name="gallery_admin", route_prefix="/admin")
    try:
        yield Service(
            f"http://127.0.0.1:{port}/deploy/v1/models",
            f"http://127.0.0.1:{port}/admin/v1/admin/models",
            gallery,
            Rollout(gallery, ServePool(gallery, APP)),
            state_dir,
            snapshot,
        )
    finally:
        serve.delete("gallery_admin")
        serve.delete(APP)
        serve.shutdown()
        gallery.close()


class RequestLoop(threading.Thread):
    """Clients predicting without pause until stopped; every answer's status and version, in order."""

    def __init__(self, url: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.answers: list[tuple[int, int | None]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self._stop_event.is_set():
            response = session.post(self.url, json=self.body, timeout=60)
            version = response.json().get("version") if response.ok else None
            self.answers.append((response.status_code, version))

    def stop(self) -> list[tuple[int, int | None]]:
        self._stop_event.set()
        self.join(timeout=60)
        return self.answers


def versions_served(service: Service, model: str, count: int = 20) -> set[int]:
    session = requests.Session()
    answers = [session.post(f"{service.url}/{model}:predict", json=service.body(), timeout=60) for _ in range(count)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    return {a.json()["version"] for a in answers}


def test_the_alias_flips_under_load_without_a_failed_request(service: Service) -> None:
    service.register("eta_flip", [10, 11])
    first = service.rollout.deploy("eta_flip", 1)
    assert (first.status, first.previous_version, len(first.replicas)) == ("live", None, REPLICAS)
    assert versions_served(service, "eta_flip") == {1}

    loops = [RequestLoop(f"{service.url}/eta_flip:predict", service.body()) for _ in range(2)]
    for loop in loops:
        loop.start()
    report = service.rollout.deploy("eta_flip", 2)
    after = versions_served(service, "eta_flip")
    answers = [answer for loop in loops for answer in loop.stop()]

    assert (report.status, report.previous_version, len(report.replicas)) == ("live", 1, REPLICAS)
    assert report.laggards == [] and len([r for r in report.acknowledged if r.startswith("ingress-")]) >= REPLICAS
    assert after == {2}  # every ingress had switched when the deployment returned
    assert answers and {status for status, _ in answers} == {200}
    assert {version for _, version in answers} <= {1, 2}


def test_a_version_that_fails_to_load_rolls_back_and_the_previous_keeps_serving(service: Service) -> None:
    service.register("eta_broken", [20, 21], corrupt=(2,))
    service.rollout.deploy("eta_broken", 1)
    failures = REGISTRY.get_sample_value(DEPLOY_FAILURES, {"model": "eta_broken"}) or 0.0

    loop = RequestLoop(f"{service.url}/eta_broken:predict", service.body())
    loop.start()
    with pytest.raises(DeploymentFailedError, match="corrupted") as failed:
        service.rollout.deploy("eta_broken", 2)
    answers = loop.stop()

    assert "stays at version 1" in str(failed.value)
    assert service.gallery.resolve("eta_broken", "production") == 1
    assert answers and set(answers) == {(200, 1)}
    assert versions_served(service, "eta_broken") == {1}
    latest = service.rollout.deployer.history("eta_broken")[0]
    assert (latest.version, latest.status) == (2, DeploymentStatus.ROLLED_BACK)
    assert "corrupted" in latest.reason and POOL in latest.reason
    assert REGISTRY.get_sample_value(DEPLOY_FAILURES, {"model": "eta_broken"}) == failures + 1


def test_the_deploy_job_moves_production_and_pinned_versions_stay_reachable(
    service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service.register("eta_pin", [30, 31])
    service.rollout.deploy("eta_pin", 1)
    monkeypatch.setenv("MA_RAY_STATE_DIR", str(service.state_dir))

    assert deploy.main(["--model", "eta_pin", "--version", "latest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["model_id"], report["status"], report["previous_version"]) == ("eta_pin:2", "live", 1)

    driver = service.snapshot.index[0]
    context = {"snapshot": service.snapshot, "boosters": service.boosters["eta_pin"]}
    for version in (1, 2):
        pinned = requests.post(f"{service.url}/eta_pin:predict?version={version}", json=service.body(), timeout=60)
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["version"] == version
        assert pinned.json()["predictions"] == pytest.approx([expected(context, driver, version)], rel=1e-5)
    assert versions_served(service, "eta_pin") == {2}
    assert deploy.main(["--model", "eta_pin", "--version", "9"]) == 2
    assert "no version 9" in capsys.readouterr().err


def test_the_admin_route_deploys_with_a_bearer_token_and_reports_a_rollback(service: Service) -> None:
    service.register("eta_admin", [40, 41], corrupt=(2,))
    url, auth = f"{service.admin_url}/eta_admin:deploy", {"Authorization": f"Bearer {TOKEN}"}
    assert requests.post(url, json={"version": 1}, timeout=120).status_code == 401

    live = requests.post(url, json={"version": 1}, headers=auth, timeout=120)
    assert live.status_code == 200, live.text
    assert (live.json()["model_id"], live.json()["status"], len(live.json()["replicas"])) == (
        "eta_admin:1",
        "live",
        REPLICAS,
    )

    broken = requests.post(url, json={"version": "latest"}, headers=auth, timeout=120)
    assert broken.status_code == 422, broken.text
    assert "stays at version 1" in broken.json()["detail"] and "Traceback" not in broken.text
    assert versions_served(service, "eta_admin") == {1}
