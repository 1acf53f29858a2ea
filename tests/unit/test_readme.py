"""The README matches the code: its Python examples run as written, its test command is what CI runs, its curls
reach routes that exist, its catalog sample, settings table and tier values are the code's."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # the README's own code, nothing else


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    script = (ROOT / ".ci" / "run").read_text()
    assert script.strip().splitlines()[-1] == "exec make test"


def _section(heading: str) -> str:
    """The README's text from ``## heading`` to the next ``## `` heading."""
    start = README.index(f"\n## {heading}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


# --- Settings: every Settings field has a row in the table ---------------------------------------------------


def _table_settings() -> set[str]:
    """Env vars the settings table names; ``_SUFFIX`` in a row extends the row's first ``MA_RAY_<WORD>``."""
    names: set[str] = set()
    for row in re.findall(r"^\| (`MA_RAY_.*?) \|", _section("Settings"), flags=re.M):
        cells = re.findall(r"`([A-Z0-9_]+)`", row)
        group = "MA_RAY_" + cells[0].removeprefix("MA_RAY_").split("_")[0]
        names.update(cell if cell.startswith("MA_RAY_") else group + cell for cell in cells)
    return names


def test_settings_table_lists_every_setting() -> None:
    from ma_ray.config import env_names

    fields = env_names()
    listed = _table_settings()
    assert not fields - listed, f"add to the README's Settings table: {sorted(fields - listed)}"
    assert not listed - fields, f"the README's Settings table names no such setting: {sorted(listed - fields)}"


def test_settings_yaml_sample_and_quoted_errors_are_the_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ma_ray.config import CassandraOnlineStoreConfig, Settings, SettingsError, load_settings

    sample = tmp_path / "sample.yaml"
    sample.write_text(re.search(r"```yaml\n(.*?)```", _section("Settings"), flags=re.S)[1])
    settings = Settings.from_yaml(sample)
    assert isinstance(settings.online_store, CassandraOnlineStoreConfig) and settings.cassandra.local_dc == "dc1"
    quoted = re.findall(r"e\.g\. `(.*?)` or\s+`(.*?)`", _section("Settings"), flags=re.S)[0]
    for env, message in zip(
        ({"MA_RAY_ONLINE_STORE": "mysql"}, {"MA_RAY_REDIS_CACHE_TTL_S": "60"}), quoted, strict=True
    ):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert " ".join(message.split()) in str(caught.value)
        for name in env:
            monkeypatch.delenv(name)


# --- Online features: every tier value the code reports is listed --------------------------------------------


def _reported_tiers() -> set[str]:
    """The ``tier`` values a feature lookup can report: each online store's, and those the resolver sets."""
    from ma_ray.palette.online.tiered import UNAVAILABLE, TieredOnlineStore

    stores = "".join(p.read_text() for p in (ROOT / "ma_ray" / "palette" / "online").glob("*.py"))
    store_tiers = set(re.findall(r'^\s+layer = "(\w+)"', stores, flags=re.M)) - {TieredOnlineStore.layer}  # a composite
    resolver = (ROOT / "ma_ray" / "serving" / "feature_resolver.py").read_text()
    resolver_tiers = set(re.findall(r'tier=\[?(?:answer\.layer or )?"(\w+)"', resolver))
    assert {"sqlite", "l1"} <= store_tiers and {"deadline", "dsl"} <= resolver_tiers  # the patterns still match
    return store_tiers | resolver_tiers | {UNAVAILABLE}


def test_readme_lists_every_reported_tier() -> None:
    sentence = README[README.index("the `tier` that served it") :].split("\n\n")[0]
    missing = sorted(t for t in _reported_tiers() if f"`{t}`" not in sentence)
    assert not missing, f"list these tier values where the README explains `tier`: {missing}"


# --- Feature repositories: the sample shown is the sample shipped ----------------------------------------------


def _shipped_sample() -> dict:
    merged: dict = {"entities": [], "groups": []}
    for path in sorted((ROOT / "ma_ray" / "palette" / "samples" / "rideshare").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        merged["catalog"] = data["catalog"]
        merged["entities"] += data.get("entities", [])
        merged["groups"] += data.get("groups", [])
    return merged


def _by_name(items: list[dict], name: str, what: str) -> dict:
    found = [item for item in items if item["name"] == name]
    assert found, f"the README's sample shows {what} {name!r}, which ma_ray/palette/samples/rideshare lacks"
    return found[0]


def test_readme_catalog_sample_is_the_shipped_sample() -> None:
    """Entities and groups may leave fields out (never change one); each feature shown has all its fields."""
    shown = yaml.safe_load(re.search(r"```yaml\n(.*?)```", _section("Feature repositories"), flags=re.S)[1])
    sample = _shipped_sample()
    assert shown["catalog"] == sample["catalog"]
    for entity in shown["entities"]:
        real = _by_name(sample["entities"], entity["name"], "entity")
        assert entity.items() <= real.items(), f"entity {entity['name']}: README {entity}, sample {real}"
    for group in shown["groups"]:
        real = _by_name(sample["groups"], group["name"], "group")
        fields = {k: v for k, v in group.items() if k != "features"}
        assert fields.items() <= real.items(), f"group {group['name']}: README {fields}, sample {real}"
        for feature in group["features"]:
            shipped = _by_name(real["features"], feature["name"], "feature")
            assert feature == shipped, f"feature {feature['name']}: README {feature}, sample {shipped}"


# --- Serve: every curl path is a route of the application mounted there --------------------------------------


def _serve_mounts() -> dict[str, str]:
    """route_prefix -> module of each application in the Serve config (its FastAPI app is ``module.api``)."""
    config = yaml.safe_load((ROOT / "clusters" / "serve" / "ma-ray-serve.yaml").read_text())
    return {app["route_prefix"]: app["import_path"].split(":")[0] for app in config["applications"]}


def _curl_calls() -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, mounts) of each `curl localhost:8000/...` in a bash block. A block introduced by
    `serve run apps.<module>:app` alone (no Serve config named) talks to that application at ``/``."""
    calls = []
    for block in re.finditer(r"```bash\n(.*?)```", README, flags=re.S):
        intro = README[README.rfind("```", 0, block.start()) + 3 : block.start()]
        alone = re.search(r"`serve run (apps\.\w+):app`", intro)
        mounts = {"/": alone[1]} if alone and "ma-ray-serve.yaml" not in intro else _serve_mounts()
        for command in block[1].replace("\\\n", " ").splitlines():
            for path in re.findall(r"\bcurl\b.*?localhost:8000(/[^\s'\"]*)", command):
                method = re.search(r" -X (\w+)", command)
                calls.append((method[1] if method else "POST" if " -d " in command else "GET", path, mounts))
    return calls


def _served(method: str, path: str, mounts: dict[str, str]) -> bool:
    import importlib

    from starlette.routing import Match

    prefix = max((p for p in mounts if path == p or path.startswith(p.rstrip("/") + "/")), key=len)
    scope = {"type": "http", "method": method, "path": path[len(prefix.rstrip("/")) :] or "/", "root_path": ""}
    module = mounts[prefix]
    # the UI's app is built on its replica (it needs the settings); its routes are the module-level router's
    routes = importlib.import_module("ma_ray.ui.app").router.routes if module == "apps.ui" else None
    routes = routes or importlib.import_module(module).api.routes
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def test_readme_curls_reach_routes_that_exist() -> None:
    calls = _curl_calls()
    assert len(calls) >= 5, calls  # the parser still finds the README's curls
    wrong = [f"{method} {path}" for method, path, mounts in calls if not _served(method, path, mounts)]
    assert not wrong, f"no application mounted there serves: {wrong} (see clusters/serve/ma-ray-serve.yaml)"
