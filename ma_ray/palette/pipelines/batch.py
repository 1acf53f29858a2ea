"""The batch pipeline: raw Parquet -> declared aggregations -> offline snapshot -> online store.

For each batch group and day: find the raw partitions of the widest window and check every file's schema;
compute the snapshot, in this process below ``LOCAL_BELOW_ROWS`` raw rows (Arrow kernels over the files read
as one table), on Ray Data at or above it: one read task per ``batch_rows`` rows (at least one per CPU), each
block turned into per-entity partial states (``map_batches``); few states are combined in the driver, many are
shuffled by a hash of the entity key (``groupby(__bucket).map_groups``) and each bucket finished into feature
values; either way the same exact answer. Then publish the day's immutable offline snapshot; bulk-load it
through `OnlineStoreDatasink`; record the run (JSON run record, with the engine that computed it, + lineage
edges ``raw:<table>`` and ``group:<catalog>:<group>`` -> ``snapshot:<catalog>.<group>.<date>`` ->
``run:<run id>``).

A failed attempt is retried with exponential backoff; a retry reuses the day's snapshot if it was published
(snapshots are immutable) and rewrites online rows idempotently. After the last attempt the run is recorded
as failed and `BatchRunError` is raised: the online store still serves the previous snapshot's rows (plus,
at most, some rows of the new one), because rows are keyed by (entity, feature timestamp) and nothing is
deleted. Declaration and schema errors (`PipelineError`) are not retried: they need a fix, not a wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as pads

from ma_ray.config import Settings
from ma_ray.engine import Engine, EngineChoice, read_blocks
from ma_ray.palette.catalog import FeatureGroup, FeatureRepository
from ma_ray.palette.lineage import Edge, group_node, raw_node, snapshot_node
from ma_ray.palette.meta_store import MetaStore, open_meta_store
from ma_ray.palette.offline import OfflineStore, SnapshotError, SnapshotInfo
from ma_ray.palette.online import OnlineTable
from ma_ray.palette.pipelines.aggregate import BUCKET, combine, compute_snapshot, finalize, partial_aggregate
from ma_ray.palette.pipelines.raw import RawInput, find_raw_input
from ma_ray.palette.pipelines.runs import RetryPolicy, RunMode, RunRecord, RunStatus, RunStore
from ma_ray.palette.pipelines.sink import DEFAULT_BATCH_ROWS, OnlineStoreDatasink
from ma_ray.palette.pipelines.spec import BoundPlan, GroupPlan, PipelineError, PipelineSet, generate_pipelines

LOG = logging.getLogger(__name__)
# Raw rows below which a run computes in this process. Measured on 2 cores at 1M trips (bench/batch_pipeline.py):
# the local path 0.30 s, Ray Data 0.56 s; Ray Data pays off with more CPUs than one process has, or past memory.
LOCAL_BELOW_ROWS = 5_000_000
# Partial-state rows up to which the driver combines them itself: a shuffle costs more below that.
DRIVER_COMBINE_MAX_ROWS = 2_000_000
SinkFactory = Callable[[Settings, OnlineTable, str, int], OnlineStoreDatasink]


class BatchRunError(RuntimeError):
    """A run failed after its last attempt (or at once, for a declaration or schema error)."""

    def __init__(self, record: RunRecord, records: Sequence[RunRecord] = ()) -> None:
        self.record = record
        self.records = list(records)
        super().__init__(
            f"batch run of {record.catalog}.{record.group} for {record.snapshot_date} failed after "
            f"{record.attempts} attempt(s): {record.error}; the previous snapshot stays live "
            f"(run record {record.run_id})"
        )


def run_node(run_id: str) -> str:
    return f"run:{run_id}"


def dates_between(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class BatchPipeline:
    """Runs the generated batch plans of one repository (see the module docstring)."""

    def __init__(
        self,
        repo: FeatureRepository,
        settings: Settings,
        raw_uri: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        buckets: int = 4,
        batch_rows: int | None = 250_000,
        load_tasks: int = 4,
        load_concurrency: int = 2,
        load_batch_rows: int = DEFAULT_BATCH_ROWS,
        sink_factory: SinkFactory = OnlineStoreDatasink,
        meta_store: MetaStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
        engine: EngineChoice | None = None,
        driver_combine_max_rows: int = DRIVER_COMBINE_MAX_ROWS,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.raw_uri = raw_uri or f"{settings.offline_uri}/raw"
        self.pipelines: PipelineSet = generate_pipelines(repo)
        self.retry = retry or RetryPolicy()
        self.buckets = max(1, buckets)
        self.batch_rows = batch_rows
        self.load_tasks = max(1, load_tasks)
        self.load_concurrency = max(1, load_concurrency)
        self.load_batch_rows = load_batch_rows
        self.sink_factory = sink_factory
        self.offline = OfflineStore(settings.offline_uri)
        self.runs = RunStore(settings.offline_uri)
        self._meta_store = meta_store
        self._sleep = sleep
        self.engine = engine or EngineChoice(local_below_rows=LOCAL_BELOW_ROWS)
        self.driver_combine_max_rows = driver_combine_max_rows

    # ---- runs ------------------------------------------------------------------------------------------------
    def plans(self, groups: Iterable[str] | None = None, stream_fallback: bool = False) -> list[GroupPlan]:
        """The plans to run: every batch group, or the named groups. A streaming group is refused unless
        ``stream_fallback``: then its run computes the batch values readers get while its stream lags."""
        if groups is None:
            return list(self.pipelines.batch) + (list(self.pipelines.streaming) if stream_fallback else [])
        chosen = []
        for name in groups:
            plan = self.pipelines.plan(name)
            if plan not in self.pipelines.batch and not stream_fallback:
                raise PipelineError(
                    f"group '{name}' is a {plan.source} group: the streaming path computes it "
                    "(ask for stream fallback to compute its batch values)"
                )
            chosen.append(plan)
        return chosen

    def run(
        self,
        start: date,
        end: date | None = None,
        groups: Iterable[str] | None = None,
        mode: RunMode = RunMode.INCREMENTAL,
        force: bool = False,
        stream_fallback: bool = False,
    ) -> list[RunRecord]:
        """Run every chosen group for every day of [start, end], oldest first; days already done are skipped
        (their earlier record is returned) unless ``force``. Raises `BatchRunError` at the first failed day.
        ``stream_fallback`` also runs streaming groups, loading their values into their fallback tables."""
        plans = self.plans(groups, stream_fallback)
        records: list[RunRecord] = []
        for day in dates_between(start, end or start):
            for plan in plans:
                done = None if force else self.runs.last_success(plan.catalog, plan.group, day, mode)
                if done is not None:
                    records.append(done)
                    continue
                record = self.run_day(plan, day, mode)
                records.append(record)
                if record.status is RunStatus.FAILED:
                    raise BatchRunError(record, records)
        return records

    def backfill(self, start: date, end: date, groups: Iterable[str] | None = None) -> list[RunRecord]:
        """Snapshots of past days (training data); the online store is left alone."""
        return self.run(start, end, groups, RunMode.BACKFILL)

    def run_day(self, plan: GroupPlan, as_of: date, mode: RunMode = RunMode.INCREMENTAL) -> RunRecord:
        """One group, one day, with retries; returns the record (status failed after the last attempt)."""
        record = RunRecord(catalog=plan.catalog, group=plan.group, snapshot_date=as_of, mode=mode)
        self.runs.save(record)
        status = RunStatus.FAILED
        for attempt in range(1, self.retry.attempts + 1):
            record.attempts = attempt
            try:
                self._attempt(plan, as_of, mode, record)
            except (PipelineError, SnapshotError) as error:
                record.errors.append(_describe(attempt, error))
                LOG.error("%s.%s %s: %s (not retried)", plan.catalog, plan.group, as_of, error)
                break
            except Exception as error:
                record.errors.append(_describe(attempt, error))
                self.runs.save(record)
                LOG.warning("%s.%s %s attempt %d failed: %s", plan.catalog, plan.group, as_of, attempt, error)
                if attempt < self.retry.attempts:
                    self._sleep(self.retry.delay_s(attempt))
                continue
            status = RunStatus.SUCCEEDED
            break
        record.status = status
        record.finished_at = datetime.now(UTC)
        self.runs.save(record)
        return record

    def _attempt(self, plan: GroupPlan, as_of: date, mode: RunMode, record: RunRecord) -> None:
        info = self._existing_snapshot(plan, as_of)
        record.reused_snapshot = info is not None
        if info is None:
            started = time.perf_counter()
            raw = find_raw_input(self.raw_uri, plan, as_of)
            record.inputs = raw.describe(self.raw_uri)
            record.engine = self.engine.pick(raw.rows)
            table = self.compute(plan, as_of, raw)
            info = self.offline.write_snapshot(plan.catalog, plan.group, as_of, table, plan.join_key)
            record.compute_s = time.perf_counter() - started
        record.snapshot_path = info.path
        record.snapshot_version = info.content_sha256
        record.snapshot_rows = info.rows
        if mode is RunMode.INCREMENTAL:
            started = time.perf_counter()
            record.online_rows = self.load(plan, info)
            record.load_s = time.perf_counter() - started
        self._record_lineage(plan, record)

    def _existing_snapshot(self, plan: GroupPlan, as_of: date) -> SnapshotInfo | None:
        try:
            return self.offline.snapshot(plan.catalog, plan.group, as_of)
        except SnapshotError:
            return None

    # ---- the Ray Data jobs -----------------------------------------------------------------------------------
    def compute(self, plan: GroupPlan, as_of: date, raw: RawInput | None = None) -> pa.Table:
        """The day's snapshot table (sorted by key), computed by the engine its raw rows call for."""
        raw = raw or find_raw_input(self.raw_uri, plan, as_of)
        bound = plan.bind(raw.schema)
        if self.engine.pick(raw.rows) is Engine.LOCAL:
            files = pads.dataset(list(raw.files), filesystem=raw.fs, format="parquet")
            return compute_snapshot([files.to_table(columns=bound.columns)], bound, as_of)
        return self._compute_on_ray_data(raw, bound, as_of)

    def _compute_on_ray_data(self, raw: RawInput, bound: BoundPlan, as_of: date) -> pa.Table:
        import ray
        import ray.data

        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]  # unannotated in Ray
        blocks = read_blocks(raw.rows, len(raw.files), cpus, self.batch_rows or raw.rows or 1)
        with data_context():
            partials = (
                ray.data.read_parquet(list(raw.files), filesystem=raw.fs, partitioning=None, override_num_blocks=blocks)
                .select_columns(bound.columns)
                .map_batches(
                    # Ray's batch-function type has no room for the parameters fn_kwargs fills in
                    _partial_batch,  # type: ignore[arg-type]
                    fn_kwargs={"bound": bound, "as_of": as_of, "buckets": self.buckets},
                    batch_format="pyarrow",
                    batch_size=None,  # one block, one partial: states shrink a block to its entities
                    zero_copy_batch=True,
                )
                .materialize()
            )
            if partials.count() <= self.driver_combine_max_rows:
                states = [part for part in ray.get(partials.to_arrow_refs()) if part.num_rows]
                return _finished_here(states, bound, as_of)
            finished = partials.groupby(BUCKET, num_partitions=self.buckets).map_groups(
                _final_group, fn_kwargs={"bound": bound, "as_of": as_of}, batch_format="pyarrow"
            )
            parts = [part for part in ray.get(finished.to_arrow_refs()) if part.num_rows]
        if not parts:
            return compute_snapshot([], bound, as_of)
        return pa.concat_tables(parts).sort_by(bound.plan.join_key).combine_chunks()

    def load(self, plan: GroupPlan, info: SnapshotInfo) -> int:
        """Bulk-load a published snapshot into the online store through the Datasink; returns rows written.
        A streaming group's snapshot goes to its batch-fallback table, never over the stream's values."""
        table = OnlineTable.of(self.repo, self._group(plan.group))
        if plan in self.pipelines.streaming:
            table = table.batch_fallback()
        sink = self.sink_factory(self.settings, table, plan.join_key, self.load_batch_rows)
        blocks = max(1, min(self.load_tasks, -(-info.rows // max(1, self.load_batch_rows))))
        with data_context():
            dataset = self.offline.ray_dataset(plan.catalog, plan.group, info.snapshot_date)
            dataset.repartition(blocks).write_datasink(sink, concurrency=min(blocks, self.load_concurrency))
        return sink.rows_written if sink.rows_written is not None else info.rows

    def _group(self, name: str) -> FeatureGroup:
        return next(g for g in self.repo.groups if g.name == name)

    # ---- lineage ---------------------------------------------------------------------------------------------
    def _record_lineage(self, plan: GroupPlan, record: RunRecord) -> None:
        snapshot = snapshot_node(record.snapshot_id)
        edges = [
            Edge(raw_node(plan.raw_source), snapshot),
            Edge(group_node(plan.catalog, plan.group), snapshot),
            Edge(snapshot, run_node(record.run_id)),
        ]
        store = self._meta_store or open_meta_store(self.settings)
        try:
            store.add_edges(edges)
        finally:
            if self._meta_store is None:
                store.close()


@contextmanager
def data_context() -> Iterator[None]:
    """Ray Data settings for these small, many-file jobs, restored afterwards.

    Measured on 2 cores over 280 raw files (1M trips): the file-listing read path of Ray 2.60's datasource v2
    spent ~14 s listing the explicit file list, and the actor-based hash shuffle ~4 s starting its
    aggregators per run; the classic Parquet read and the task-based sort shuffle take ~1 s for the whole job.
    Per-operator resource reservation admitted these jobs' short tasks one at a time, on 2, 4 and 8 CPUs alike,
    so a second CPU bought nothing (bench/scaling.py); these jobs run one fused operator at a time (a read and
    its map; a repartition that finishes before the write), so there is no other operator to reserve for.
    """
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    context = DataContext.get_current()
    saved = (context.use_datasource_v2, context.shuffle_strategy, context.op_resource_reservation_enabled)
    context.use_datasource_v2 = False
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    context.op_resource_reservation_enabled = False
    try:
        yield
    finally:
        context.use_datasource_v2, context.shuffle_strategy, context.op_resource_reservation_enabled = saved


def _partial_batch(batch: pa.Table, bound: BoundPlan, as_of: date, buckets: int) -> pa.Table:
    return partial_aggregate(batch, bound, as_of, buckets)


def _final_group(states: pa.Table, bound: BoundPlan, as_of: date) -> pa.Table:
    return finalize(combine(states, bound), bound, as_of)


def _finished_here(states: list[pa.Table], bound: BoundPlan, as_of: date) -> pa.Table:
    """The snapshot from every block's partial states, combined in this process."""
    if not states:
        return compute_snapshot([], bound, as_of)
    return finalize(combine(pa.concat_tables(states), bound), bound, as_of).sort_by(bound.plan.join_key)


def _describe(attempt: int, error: BaseException) -> str:
    """One line: the root exception (a Ray task error carries the worker's original one as ``cause``)."""
    root = error
    for _ in range(10):
        inner = getattr(root, "cause", None) or root.__cause__
        if not isinstance(inner, BaseException):
            break
        root = inner
    lines = [line.strip() for line in str(root).strip().splitlines() if line.strip()]
    return f"attempt {attempt}: {type(root).__name__}: {lines[0] if lines else ''}"
