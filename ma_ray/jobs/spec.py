"""The training job spec: what a user writes (YAML on disk) to have the job controller train and register a model.

Shape checks live here (pydantic, ``extra="forbid"``: a misspelt key is an error, not a silent default); checks
against the world (the feature catalog, offline snapshots, cluster capacity) live in `ma_ray.jobs.validation`.

```yaml
name: eta_minutes                 # the Gallery model this job trains a version of
framework: xgboost                # xgboost | torch | deepspeed
tier: 1                           # 1 (business critical) .. 4
owner: marketplace-ml
features: ["@palette:rideshare:driver_stats:trip_count_7d:driver_id"]
transforms: {peak: "hour(@basis:request_ts) in [7, 8, 9]"}
label: {uri: /data/raw, table: trips, timestamp: requested_at, name: minutes,
        value: "@basis:duration_s / 60", where: "@basis:status == 'completed'",
        columns: {driver_id: driver_id, request_ts: requested_at}}
data: {start: 2026-01-02T00:00:00Z, end: 2026-01-07T00:00:00Z}   # or {snapshot: 2026-01-06}
hyperparameters: {max_depth: 6, eta: 0.2, num_boost_round: 60}
resources: {workers: 2, cpus_per_worker: 1, gpus_per_worker: 0, memory_gb_per_worker: 1}
engine: auto                      # auto | local (one process) | ray_train; auto: local below local_below_rows
estimated_duration_s: 600
cluster: {location: us-east}         # data locality
```
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ma_ray.gallery import NAME_PATTERN
from ma_ray.jobs.clusters import Cluster, ClusterRegistry, CostClass, Node
from ma_ray.jobs.resources import Resources
from ma_ray.training import LOCAL_BELOW_ROWS, TrainingShape, local_refusal

SPEC_FRAMEWORKS: dict[str, str] = {"xgboost": "xgboost", "torch": "pytorch", "deepspeed": "deepspeed"}
"""Framework as a spec names it -> as the trainers and Gallery name it."""

JsonScalar = str | int | float | bool | None
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SpecError(ValueError):
    """A spec that cannot be run; ``reasons`` lists every problem, each saying what to fix."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("job spec refused:\n" + "\n".join(f"  - {r}" for r in reasons))
        self.reasons = reasons


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSource(_Model):
    """Labels from a Parquet dataset (``<uri>/<table>``, hive-partitioned or not).

    ``value`` and ``where`` are DSL expressions over the table's columns, written ``@basis:<column>``;
    ``columns`` copies source columns into the training table under new names (join keys, request fields)."""

    uri: str = Field(min_length=1)
    table: str = Field(min_length=1)
    timestamp: Identifier
    name: Identifier = "label"
    value: str = Field(min_length=1)
    where: str | None = None
    columns: dict[Identifier, Identifier] = {}
    text: Identifier | None = None

    @field_validator("value", "where")
    @classmethod
    def _parses(cls, source: str | None) -> str | None:
        from ma_ray.palette.dsl import DslError, parse

        if source is not None:
            try:
                parse(source)
            except DslError as error:
                raise ValueError(f"not a DSL expression over @basis:<column> refs: {error}") from None
        return source


class DataWindow(_Model):
    """Which labels to train on: those timestamped in ``[start, end)``, or, with ``snapshot``, those of the day
    after that snapshot date (the day the snapshot served), which must then exist for every feature group."""

    snapshot: date | None = None
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DataWindow:
        if self.snapshot is not None and (self.start or self.end):
            raise ValueError("give either snapshot or start/end, not both")
        if self.snapshot is None and (self.start is None or self.end is None):
            raise ValueError("give snapshot: YYYY-MM-DD, or both start and end (ISO timestamps)")
        if self.snapshot is None and self.bounds()[0] >= self.bounds()[1]:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def bounds(self) -> tuple[datetime, datetime]:
        """The label time range, UTC, end exclusive."""
        if self.snapshot is not None:
            first = datetime.combine(self.snapshot + timedelta(days=1), time(), tzinfo=UTC)
            return first, first + timedelta(days=1)
        assert self.start is not None and self.end is not None
        return _utc(self.start), _utc(self.end)


class JobResources(_Model):
    """``workers`` of the given shape; ``min_workers`` below ``workers`` makes the job elastic."""

    workers: int = Field(default=2, ge=1, le=1024)
    min_workers: int | None = Field(default=None, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    memory_gb_per_worker: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _floor(self) -> JobResources:
        if self.min_workers is not None and self.min_workers > self.workers:
            raise ValueError(f"min_workers ({self.min_workers}) cannot exceed workers ({self.workers})")
        return self

    @property
    def worker(self) -> Resources:
        return Resources(self.cpus_per_worker, self.gpus_per_worker, self.memory_gb_per_worker)


class ClusterPreference(_Model):
    """``location``: where the job's data lives; clusters there are preferred (then the tier's cost class:
    spot for tiers 3-4, on-demand for tiers 1-2)."""

    location: str | None = None


class NodeSpec(_Model):
    name: str = Field(min_length=1)
    cpu: float = Field(ge=0)
    gpu: float = Field(default=0.0, ge=0)
    memory_gb: float = Field(ge=0)


class ClusterSpec(_Model):
    """A Ray cluster jobs can go to: its job-submission (dashboard) address, location, cost class and nodes."""

    name: str = Field(min_length=1)
    address: str = Field(pattern=r"^https?://", description="e.g. http://head:8265")
    location: str = "local"
    cost_class: Literal["spot", "on_demand"] = "on_demand"
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)
    python: str | None = Field(
        default=None,
        min_length=1,
        description="the interpreter its jobs run with (e.g. /opt/venv/bin/python); unset: the controller's own "
        "for a job server on loopback, else the image's `python`",
    )

    def to_cluster(self) -> Cluster:
        nodes = tuple(Node(n.name, Resources(n.cpu, n.gpu, n.memory_gb)) for n in self.nodes)
        return Cluster(self.name, self.address, self.location, CostClass(self.cost_class), nodes, self.python)


class ClustersFile(_Model):
    clusters: tuple[ClusterSpec, ...] = Field(min_length=1)


class TrainingJobSpec(_Model):
    """One training job; see the module docstring for a full example."""

    name: str = Field(pattern=NAME_PATTERN, description="the Gallery model this job trains a version of")
    framework: str
    tier: int = Field(ge=1, le=4)
    owner: str = Field(default="ml-platform", min_length=1)
    description: str = ""
    features: tuple[str, ...] = Field(min_length=1)
    transforms: dict[Annotated[str, Field(pattern=NAME_PATTERN)], str] = {}
    label: LabelSource
    data: DataWindow
    hyperparameters: dict[str, JsonScalar | list[JsonScalar]] = {}
    resources: JobResources = JobResources()
    engine: Literal["auto", "local", "ray_train"] = Field(
        default="auto",
        description="local: one process with every CPU of `resources` (XGBoost on CPUs); ray_train: a Ray Train "
        "worker group; auto: local when the job can run so and has fewer than local_below_rows training rows",
    )
    local_below_rows: int = Field(default=LOCAL_BELOW_ROWS, ge=0, description="training rows below which auto is local")
    estimated_duration_s: float = Field(default=600.0, gt=0)
    cluster: ClusterPreference = ClusterPreference()
    max_attempts: int = Field(default=3, ge=1, le=20, description="Ray job submissions before the job fails")
    max_failures: int = Field(default=2, ge=0, description="worker-group restarts inside one attempt")
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    validation_fraction: float = Field(default=0.2, ge=0, lt=1)
    alias: str | None = Field(default=None, pattern=NAME_PATTERN, description="Gallery alias to point at the result")

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str) -> str:
        if value not in SPEC_FRAMEWORKS:
            raise ValueError(f"unknown framework {value!r}: use one of {', '.join(SPEC_FRAMEWORKS)}")
        return value

    @field_validator("features")
    @classmethod
    def _refs(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        from ma_ray.palette import check_input_refs

        return check_input_refs(refs)

    @field_validator("transforms")
    @classmethod
    def _transforms(cls, transforms: dict[str, str]) -> dict[str, str]:
        from ma_ray.palette.dsl import check_transforms

        return check_transforms(transforms)

    @model_validator(mode="after")
    def _resizable(self) -> TrainingJobSpec:
        # An elastic job restarts from its checkpoint with another worker count, which DeepSpeed refuses.
        floor = self.resources.min_workers or self.resources.workers
        if self.framework == "deepspeed" and floor < self.resources.workers:
            raise ValueError(
                "resources: a deepspeed job cannot be elastic (min_workers below workers): ZeRO's partitioned "
                "optimizer state restores only with the worker count it was saved with"
            )
        return self

    @field_validator("engine")
    @classmethod
    def _engine(cls, engine: str, info: ValidationInfo) -> str:
        # framework and resources come before engine: validated already, when they are valid
        framework, resources = info.data.get("framework"), info.data.get("resources")
        if engine != "local" or framework is None:
            return engine
        gpus = resources.gpus_per_worker if resources is not None else 0.0
        # the cluster is not known here: the node-size check waits for the job's run (`apps.train`)
        refused = local_refusal(TrainingShape(SPEC_FRAMEWORKS[framework], 0, 0.0, gpus, math.inf))
        if refused is not None:
            raise ValueError(refused)
        return engine

    @property
    def trainer_framework(self) -> str:
        """The framework as the trainers and Gallery name it (``torch`` -> ``pytorch``)."""
        return SPEC_FRAMEWORKS[self.framework]

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Training table columns the model reads: the features, then the transforms."""
        return (*self.features, *self.transforms)

    def to_yaml(self) -> str:
        text: str = yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
        return text


def parse_spec(data: Any, source: str = "spec") -> TrainingJobSpec:
    """Validate a decoded spec; ``SpecError`` lists every problem with the field it is in."""
    if not isinstance(data, dict):
        raise SpecError([f"{source} must be a mapping of field: value, not {type(data).__name__}"])
    try:
        return TrainingJobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError([_describe(item) for item in error.errors()]) from None


def load_spec(path: str | Path) -> TrainingJobSpec:
    """Read and validate a YAML spec file; a relative local ``label.uri`` is made absolute (from the working
    directory), since the job runs elsewhere."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"{path} does not exist or is not a file"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError([f"{path} is not valid YAML: {error}"]) from None
    spec = parse_spec(data, str(path))
    if "://" not in spec.label.uri and not Path(spec.label.uri).is_absolute():  # relative to where it was run
        label = spec.label.model_copy(update={"uri": str(Path(spec.label.uri).absolute())})
        spec = spec.model_copy(update={"label": label})
    return spec


def load_clusters(path: str | Path) -> ClusterRegistry:
    """The cluster registry from a YAML file ``{clusters: [{name, address, location, cost_class, nodes}]}``."""
    return ClusterRegistry(c.to_cluster() for c in load_clusters_file(path))


def load_clusters_file(path: str | Path) -> tuple[ClusterSpec, ...]:
    """The clusters of a YAML clusters file, validated."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"clusters file {path} does not exist"])
    try:
        parsed = ClustersFile.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as error:
        items = error.errors() if isinstance(error, ValidationError) else []
        raise SpecError([f"{path}: {_describe(i)}" for i in items] or [f"{path}: {error}"]) from None
    return parsed.clusters


def _describe(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "spec"
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        message = "unknown field (check its spelling; see the TrainingJobSpec docstring)"
    return f"{where}: {message}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
