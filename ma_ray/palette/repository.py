"""Loading a feature repository: a folder of YAML files, one YAML file, or a Python file.

YAML files hold ``catalog``, ``entities`` and ``groups``; several files of one folder merge into one
repository. A Python file defines ``repository = FeatureRepository(...)``. Both become the same models.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ma_ray.palette.catalog import FeatureRepository


class RepositoryError(ValueError):
    """A feature repository that cannot be loaded; the message names the file and the problem."""


def load_repository(path: str | Path) -> FeatureRepository:
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise RepositoryError(f"{path} holds no .yaml files")
        return _from_yaml_files(files)
    if path.suffix in (".yaml", ".yml"):
        return _from_yaml_files([path])
    if path.suffix == ".py":
        return _from_python(path)
    raise RepositoryError(f"{path} is not a folder, a .yaml file or a .py file")


def _from_yaml_files(files: list[Path]) -> FeatureRepository:
    merged: dict[str, Any] = {"entities": [], "groups": []}
    for file in files:
        data = _read(file)
        catalog = data.pop("catalog", None)
        if catalog is not None:
            if merged.get("catalog", catalog) != catalog:
                raise RepositoryError(f"{file} declares catalog '{catalog}', another file '{merged['catalog']}'")
            merged["catalog"] = catalog
        for key in ("entities", "groups"):
            merged[key].extend(data.pop(key, None) or [])
        if data:
            raise RepositoryError(f"{file}: unknown top-level key(s) {', '.join(sorted(data))}")
    if "catalog" not in merged:
        raise RepositoryError(f"no file among {', '.join(f.name for f in files)} declares `catalog: <name>`")
    try:
        return FeatureRepository.model_validate(merged)
    except ValidationError as error:
        raise RepositoryError(_describe(error, files)) from None


def _read(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise RepositoryError(f"{file} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RepositoryError(f"{file} must hold a mapping with catalog / entities / groups")
    return data


def _from_python(file: Path) -> FeatureRepository:
    spec = importlib.util.spec_from_file_location(f"ma_ray_feature_repo_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise RepositoryError(f"{file} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the user's own repository code, as Feast does with feature_repo.py
    repository = getattr(module, "repository", None)
    if not isinstance(repository, FeatureRepository):
        raise RepositoryError(f"{file} must define `repository = FeatureRepository(...)`")
    return repository


def _describe(error: ValidationError, files: list[Path]) -> str:
    where = ", ".join(str(f) for f in files)
    lines = [f"invalid feature repository ({where}):"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        lines.append(f"  {location or 'repository'}: {item['msg']}")
    return "\n".join(lines)
