"""Each package with a public surface names it in ``__all__``, and code outside the package (apps, actors,
benchmarks, other subsystems) imports those names from the package, never from its modules, except the modules
a package names as imported by their own path. Tests may reach into modules."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.python_source import parse_files

ROOT = Path(__file__).resolve().parents[2]
CALLERS = ("apps", "actors", "bench", "ma_ray")
# Package -> its modules imported by their own path (each package's docstring says why).
PACKAGES: dict[str, frozenset[str]] = {
    "ma_ray.serving": frozenset({"multiplexer", "inference_grpc"}),
    "ma_ray.jobs": frozenset({"workflow", "cli"}),
    "ma_ray.training": frozenset({"trainers"}),  # a package with its own surface, checked below
    "ma_ray.training.trainers": frozenset({"torch_trainer", "tiny_lm"}),
    # The subpackages have surfaces of their own, checked below.
    "ma_ray.palette": frozenset({"cli", "dsl", "meta_store", "offline", "online", "pipelines", "streaming"}),
    "ma_ray.palette.online": frozenset({"cassandra", "sqlite"}),  # backends, chosen by name in one place
    "ma_ray.palette.offline": frozenset(),
    "ma_ray.palette.pipelines": frozenset(),
    "ma_ray.palette.streaming": frozenset(),
    "ma_ray.palette.dsl": frozenset(),
    "ma_ray.palette.meta_store": frozenset(),
    "ma_ray.gallery": frozenset({"cli", "flavors", "store"}),
    "ma_ray.gallery.flavors": frozenset({"pytorch", "xgboost", "deepspeed"}),  # each imports its framework
    "ma_ray.gallery.store": frozenset({"cassandra", "sqlite"}),  # backends, chosen by name in one place
    "ma_ray.datagen": frozenset(),
    "ma_ray.services": frozenset(),
    "ma_ray.storage": frozenset(),
    "ma_ray.config": frozenset(),
    "ma_ray.ui": frozenset({"cli"}),
}


def imports_into(package: str) -> Iterator[tuple[str, str | None, list[str]]]:
    """(file:line, submodule or None, names) for every import of ``package`` outside it."""
    inside = ROOT / package.replace(".", "/")
    callers = [
        path for folder in CALLERS for path in sorted((ROOT / folder).rglob("*.py")) if inside not in path.parents
    ]
    for path, tree in parse_files(callers).items():
        for node in ast.walk(tree):
            for submodule, names in _imported(node, package):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", submodule, names  # type: ignore[attr-defined]


def _imported(node: ast.AST, package: str) -> Iterator[tuple[str | None, list[str]]]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == package:
            yield None, [alias.name for alias in node.names]
        elif node.module.startswith(f"{package}."):
            yield node.module[len(package) + 1 :], []
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith(f"{package}."):
                yield alias.name[len(package) + 1 :], []


@pytest.mark.unit
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_public_name_resolves_once(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names)), "a name is listed twice"
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


@pytest.mark.unit
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_callers_import_the_public_names(package: str) -> None:
    public = set(importlib.import_module(package).__all__) | PACKAGES[package]
    wrong = []
    for where, submodule, names in imports_into(package):
        if submodule is not None and submodule.split(".")[0] not in PACKAGES[package]:
            wrong.append(f"{where}: imports {package}.{submodule}; import its names from {package}")
        wrong += [f"{where}: {name} is not in {package}.__all__" for name in names if name not in public]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.unit
def test_the_checks_catch_a_module_import_and_an_unlisted_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "apps"
    app.mkdir()
    (app / "x.py").write_text("from ma_ray.jobs.scheduler import TieredScheduler\nfrom ma_ray.jobs import nope\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = list(imports_into("ma_ray.jobs"))
    assert [(submodule, names) for _, submodule, names in found] == [("scheduler", []), (None, ["nope"])]


@pytest.mark.unit
def test_importing_serving_loads_neither_ray_serve_nor_grpc() -> None:
    """Feature-serving actors and the CLI import ``ma_ray.serving`` for the resolver alone."""
    probe = "import sys, ma_ray.serving; print(sorted(m for m in ('ray.serve', 'grpc') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
