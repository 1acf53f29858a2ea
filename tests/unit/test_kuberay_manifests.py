"""The KubeRay manifests validate against the real CRD schemas, and every entrypoint they name exists."""

from __future__ import annotations

import importlib
import importlib.metadata
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT.parent / "shared" / "kuberay-crds"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
MANIFESTS = sorted((ROOT / "clusters" / "kuberay").glob("*.yaml"))


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in MANIFESTS:
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            found.append((f"{path.name}#{index}", doc))
    return found


def crd_schema(kind: str) -> dict:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR}: manifests cannot be validated here")
    return _load_crd_schema(kind)


@cache
def _load_crd_schema(kind: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are megabytes of YAML
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


RAY_DOCS = [(name, doc) for name, doc in documents() if doc.get("apiVersion") == "ray.io/v1"]


def test_there_are_ray_manifests() -> None:
    assert {doc["kind"] for _, doc in RAY_DOCS} >= {"RayCluster", "RayJob"}


@pytest.mark.parametrize(("name", "doc"), RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_manifest_matches_the_crd(name: str, doc: dict) -> None:
    import jsonschema

    schema = crd_schema(doc["kind"])
    spec_schema = schema["properties"]["spec"]
    jsonschema.validate(doc["spec"], spec_schema, cls=jsonschema.Draft7Validator)
    assert doc["metadata"]["name"]


def test_a_wrong_manifest_is_caught() -> None:
    import jsonschema

    schema = crd_schema("RayJob")["properties"]["spec"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"entrypoint": 42}, schema)


RAY_JOBS = [(name, doc) for name, doc in RAY_DOCS if doc["kind"] == "RayJob"]


@pytest.mark.parametrize(("name", "doc"), RAY_JOBS, ids=[name for name, _ in RAY_JOBS])
def test_job_entrypoints_resolve(name: str, doc: dict) -> None:
    args = shlex.split(doc["spec"]["entrypoint"])
    assert args[:2] == ["python", "-m"], f"{name}: entrypoints run `python -m apps.<name>`"
    module = importlib.import_module(args[2])
    assert callable(module.main)
    selector = doc["spec"].get("clusterSelector", {}).get("ray.io/cluster")
    clusters = {d["metadata"]["name"] for _, d in RAY_DOCS if d["kind"] == "RayCluster"}
    assert selector in clusters, f"{name} selects cluster {selector!r}, not one of {clusters}"


def test_settings_configmap_holds_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ma_ray.config import env_names, load_settings

    [config_map] = [d for _, d in documents() if d.get("kind") == "ConfigMap"]
    for key, value in config_map["data"].items():
        assert key in env_names(), f"{key} is no setting (`ma-ray settings show` lists them)"
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert not any(settings.is_managed(name) for name in ("redis", "cassandra", "kafka"))


def test_image_matches_the_ray_version() -> None:
    ray_version = importlib.metadata.version("ray")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray_version}-py311" in dockerfile
    [cluster] = [d for _, d in RAY_DOCS if d["kind"] == "RayCluster"]
    assert cluster["spec"]["rayVersion"] == ray_version


SERVE_CONFIG = ROOT / "clusters" / "serve" / "ma-ray-serve.yaml"


def test_rayservice_is_rendered_from_its_sources() -> None:
    import runpy

    render = runpy.run_path(str(ROOT / "clusters" / "kuberay" / "render_rayservice.py"))["render"]
    assert (ROOT / "clusters" / "kuberay" / "rayservice.yaml").read_text() == render(), (
        "rayservice.yaml is stale: run python clusters/kuberay/render_rayservice.py"
    )


def test_rayservice_embeds_the_serve_config_and_the_cluster_spec() -> None:
    [service] = [d for _, d in RAY_DOCS if d["kind"] == "RayService"]
    [cluster] = [d for _, d in RAY_DOCS if d["kind"] == "RayCluster"]
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == yaml.safe_load(SERVE_CONFIG.read_text())
    assert service["spec"]["rayClusterConfig"] == cluster["spec"]


def test_serve_config_is_valid_and_its_import_paths_resolve() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(SERVE_CONFIG.read_text()))
    from ray import serve

    for application in config.applications:
        module_name, _, attribute = application.import_path.partition(":")
        module = importlib.import_module(module_name)
        assert isinstance(getattr(module, attribute)(application.args), serve.Application)
        defined = {obj.name for obj in vars(module).values() if isinstance(obj, serve.Deployment)}
        configured = {d.name for d in application.deployments}
        assert configured <= defined, f"{application.name}: no deployment named {configured - defined}"


def _cluster_specs() -> list[tuple[str, dict]]:
    specs = [(name, doc["spec"]) for name, doc in RAY_DOCS if doc["kind"] == "RayCluster"]
    specs += [(name, doc["spec"]["rayClusterConfig"]) for name, doc in RAY_DOCS if doc["kind"] == "RayService"]
    specs += [(name, doc["spec"]["rayClusterSpec"]) for name, doc in RAY_DOCS if "rayClusterSpec" in doc["spec"]]
    return specs


def test_every_pod_runs_the_shipped_serve_ingress() -> None:
    """Serve's ingress is chosen by environment where Ray starts: every head and worker pod carries the one the
    README's cluster and a local Ray get (`SERVE_INGRESS_ENV`)."""
    from ma_ray.ray_runtime import SERVE_INGRESS_ENV

    specs = _cluster_specs()
    assert {name.split("#")[0] for name, _ in specs} >= {"raycluster.yaml", "rayservice.yaml"}
    for name, spec in specs:
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        for container in (c for group in groups for c in group["template"]["spec"]["containers"]):
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            assert env.items() >= SERVE_INGRESS_ENV.items(), f"{name}: {container['name']} lacks {SERVE_INGRESS_ENV}"
