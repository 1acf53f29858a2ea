"""Imports run one way: ``apps -> actors -> ma_ray/<subsystem> -> ma_ray core``, and inside ``ma_ray`` the feature store
sits below the registry, training, serving and jobs. The layers are listed once, here; the README's architecture
section names the same ones. Every import in a module counts, a lazy one inside a function included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.python_source import parse_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ma_ray", "actors", "apps")
# Lowest first. A component may import its own modules and any lower layer's; never a higher layer's, nor a
# sibling in its own layer (siblings are independent of each other).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),
    frozenset({"ma_ray.palette", "ma_ray.services", "ma_ray.datagen"}),
    frozenset({"ma_ray.gallery"}),
    frozenset({"ma_ray.training"}),
    frozenset({"ma_ray.serving", "ma_ray.jobs"}),
    frozenset({"ma_ray.ui"}),  # the web UI reads every subsystem
    frozenset({"ma_ray.cli", "ma_ray"}),  # the command and the package root, which re-exports the demo's generator
    frozenset({"actors"}),
    frozenset({"apps"}),
)
# ma_ray's shared mechanisms, one neutral home each: settings, clients, metrics, storage URIs and digests, the
# circuit breaker, the engine choice. A new top-level module or package must be placed in a layer above.
CORE = frozenset(
    {
        "config",
        "connections",
        "metrics",
        "gauge_histogram",
        "batched_counter",
        "periodic_export",
        "tagged_series",
        "engine",
        "sqlite_file",
        "row_dicts",
        "text_table",
        "ray_runtime",
        "circuit_breaker",
    }
    | {"storage"}
)
LAYER_OF = {component: index for index, layer in enumerate(LAYERS) for component in layer}


class UnplacedModuleError(LookupError):
    """A module of ma_ray belongs to no layer: add it to ``LAYERS`` or ``CORE``."""


def component(module: str) -> str | None:
    """The layered component a module belongs to; None for modules outside the three packages."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] != "ma_ray" or len(parts) == 1:
        return parts[0]
    if parts[1] in CORE:
        return "core"
    if f"ma_ray.{parts[1]}" in LAYER_OF:
        return f"ma_ray.{parts[1]}"
    raise UnplacedModuleError(f"ma_ray.{parts[1]} is in no layer: place it in LAYERS or CORE ({__file__})")


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a module's ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root``'s three packages that runs against the layers, as ``file:line: a -> b``."""
    found = []
    paths = [path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))]
    for path, tree in parse_files(paths).items():
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        source = component(module)
        assert source is not None
        for line, target in imported_modules(tree):
            imported = component(target)
            if imported is None or imported == source:
                continue
            if LAYER_OF[imported] >= LAYER_OF[source]:
                found.append(f"{path.relative_to(root)}:{line}: {source} -> {imported} ({target})")
    return found


@pytest.mark.unit
def test_every_import_runs_down_the_layers() -> None:
    assert violations(ROOT) == []


@pytest.mark.unit
def test_every_module_of_ma_ray_is_placed() -> None:
    entries = [e for e in (ROOT / "ma_ray").iterdir() if not e.name.startswith(("_", ".")) and e.suffix in ("", ".py")]
    placed = {e.name: component(f"ma_ray.{e.name.removesuffix('.py')}") for e in entries}  # raises if in no layer
    assert set(placed.values()) <= LAYER_OF.keys()
    assert placed["config"] == "core" and placed["palette"] == "ma_ray.palette" and placed["cli.py"] == "ma_ray.cli"


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


@pytest.mark.unit
def test_the_check_catches_upward_sibling_and_lazy_imports(tmp_path: Path) -> None:
    for package in PACKAGES:
        write(tmp_path, f"{package}/__init__.py", "")
    write(tmp_path, "ma_ray/palette/online.py", "from ma_ray.serving.x import y\nimport ma_ray.config\n")
    write(tmp_path, "ma_ray/serving/x.py", "def f():\n    from ma_ray.jobs import spec\n")
    write(tmp_path, "ma_ray/config.py", "from ma_ray.palette import catalog\n")
    write(tmp_path, "actors/a.py", "from apps.train import f\nfrom ma_ray.palette import catalog\n")
    write(tmp_path, "apps/train.py", "from actors.a import A\nimport numpy\n")
    assert violations(tmp_path) == [
        "ma_ray/config.py:1: core -> ma_ray.palette (ma_ray.palette)",
        "ma_ray/palette/online.py:1: ma_ray.palette -> ma_ray.serving (ma_ray.serving.x)",
        "ma_ray/serving/x.py:2: ma_ray.serving -> ma_ray.jobs (ma_ray.jobs)",
        "actors/a.py:1: actors -> apps (apps.train)",
    ]


@pytest.mark.unit
def test_a_module_in_no_layer_is_named() -> None:
    with pytest.raises(UnplacedModuleError, match=r"ma_ray\.newthing is in no layer"):
        component("ma_ray.newthing.module")
