"""The batch pipeline on a local Ray: agreement with the reference computations, the Datasink into real
Cassandra, retries, a failed load leaving the previous snapshot serving, a bad raw file, the job entrypoint."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.datagen import RideshareConfig, write_chunk, write_dimensions
from ma_ray.datagen.rideshare_features import driver_stats, rider_stats
from ma_ray.engine import Engine, EngineChoice
from ma_ray.palette.catalog import FeatureRepository
from ma_ray.palette.meta_store.sqlite import SqliteMetaStore
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.online import OnlineTable, now_us, open_online_store
from ma_ray.palette.pipelines import (
    BatchPipeline,
    BatchRunError,
    OnlineStoreDatasink,
    PipelineError,
    RetryPolicy,
    RunMode,
    RunStatus,
    compute_snapshot,
    find_raw_input,
)
from ma_ray.palette.pipelines.batch import DRIVER_COMBINE_MAX_ROWS
from ma_ray.palette.repository import load_repository

CONFIG = RideshareConfig(trips=10_000, days=7)
LAST_DAY = CONFIG.start_date + timedelta(days=CONFIG.days - 1)
FAST_RETRY = RetryPolicy(attempts=2, backoff_s=0.01)


@pytest.fixture(scope="module")
def raw_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("raw"))
    write_dimensions(CONFIG, root)
    for chunk in range(CONFIG.chunks):
        write_chunk(CONFIG, chunk, root)
    return root


@pytest.fixture(scope="module")
def repo() -> FeatureRepository:
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        return load_repository(path)


def _assert_agrees(got: pa.Table, expected: pa.Table) -> None:
    """Exact for keys, counts and timestamps; 1e-9 relative for means; nulls in the same places."""
    assert got.schema == expected.schema and got.num_rows == expected.num_rows > 0
    for name in expected.column_names:
        have, want = got[name], expected[name]
        assert pc.is_null(have).equals(pc.is_null(want)), name
        if pa.types.is_floating(want.type):
            close = pc.less_equal(pc.abs(pc.subtract(have, want)), pc.multiply(pc.abs(want), 1e-9))
            assert pc.all(pc.fill_null(close, True)).as_py(), name
        else:
            assert have.equals(want), name


def test_pipeline_agrees_with_the_reference_and_records_runs(
    ray_cluster: str, raw_uri: str, repo: FeatureRepository, tmp_path: Path
) -> None:
    settings = load_settings(state_dir=tmp_path)
    meta = SqliteMetaStore(tmp_path / "meta.sqlite")
    pipeline = BatchPipeline(repo, settings, raw_uri, retry=FAST_RETRY, meta_store=meta)
    records = pipeline.run(LAST_DAY)
    assert [(r.group, r.status, r.attempts, r.engine) for r in records] == [
        ("driver_stats", RunStatus.SUCCEEDED, 1, "local"),  # 10,000 trips: below the threshold
        ("rider_stats", RunStatus.SUCCEEDED, 1, "local"),
    ]
    offline = OfflineStore(settings.offline_uri)
    for record, reference in zip(records, (driver_stats, rider_stats), strict=True):
        expected = reference(raw_uri, LAST_DAY)
        _assert_agrees(offline.read("rideshare", record.group, LAST_DAY), expected)
        info = offline.snapshot("rideshare", record.group, LAST_DAY)
        assert (record.snapshot_version, record.snapshot_rows, record.online_rows) == (
            info.content_sha256,
            expected.num_rows,
            expected.num_rows,
        )
        assert record.inputs["rows"] == CONFIG.trips and record.inputs["table"] == "trips"
        snapshot = f"snapshot:{record.snapshot_id}"
        assert meta.parents(snapshot) == ["group:rideshare:" + record.group, "raw:trips"]
        assert meta.children(snapshot) == [f"run:{record.run_id}"]

    # The online store serves the snapshot's values, stamped with the end of the day.
    driver = driver_stats(raw_uri, LAST_DAY).slice(0, 1).to_pylist()[0]
    online = open_online_store(settings)
    try:
        table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == "driver_stats"))
        [answer] = online.get(table, [driver["driver_id"]], ["trip_count_7d", "rating_avg"], now_us())
    finally:
        online.close()
    assert answer.values == {"trip_count_7d": driver["trip_count_7d"], "rating_avg": driver["rating_avg"]}

    # A second run of the same day is a no-op; a backfill of an earlier day publishes a snapshot only.
    assert [r.run_id for r in pipeline.run(LAST_DAY)] == [r.run_id for r in records]
    [backfilled] = pipeline.backfill(LAST_DAY - timedelta(days=2), LAST_DAY - timedelta(days=2), ["driver_stats"])
    assert (backfilled.mode, backfilled.status, backfilled.online_rows) == (RunMode.BACKFILL, RunStatus.SUCCEEDED, None)
    _assert_agrees(
        offline.read("rideshare", "driver_stats", backfilled.snapshot_date),
        driver_stats(raw_uri, backfilled.snapshot_date),
    )
    meta.close()


@pytest.mark.parametrize(
    ("engine", "driver_combine_max_rows"),
    [
        (EngineChoice(Engine.LOCAL), 0),
        (EngineChoice(Engine.RAY_DATA), DRIVER_COMBINE_MAX_ROWS),  # the states are combined in the driver
        (EngineChoice(Engine.RAY_DATA), 0),  # the states are shuffled by key bucket
        (EngineChoice(Engine.AUTO, local_below_rows=CONFIG.trips), DRIVER_COMBINE_MAX_ROWS),  # at the threshold
    ],
    ids=["local", "ray-data-driver-combine", "ray-data-shuffle", "auto-at-threshold"],
)
def test_every_engine_computes_the_reference_snapshot(
    ray_cluster: str,
    raw_uri: str,
    repo: FeatureRepository,
    tmp_path: Path,
    engine: EngineChoice,
    driver_combine_max_rows: int,
) -> None:
    pipeline = BatchPipeline(
        repo, load_settings(state_dir=tmp_path), raw_uri, engine=engine, driver_combine_max_rows=driver_combine_max_rows
    )
    for group, reference in (("driver_stats", driver_stats), ("rider_stats", rider_stats)):
        plan = pipeline.plans([group])[0]
        raw = find_raw_input(raw_uri, plan, LAST_DAY)
        assert raw.rows == CONFIG.trips
        _assert_agrees(pipeline.compute(plan, LAST_DAY, raw), reference(raw_uri, LAST_DAY))


@pytest.fixture
def cassandra_settings(services: Settings, tmp_path: Path) -> Iterator[Settings]:
    settings = load_settings(
        state_dir=tmp_path,
        online_store="cassandra",
        cassandra_keyspace=f"test_batch_{uuid.uuid4().hex[:8]}",
        cassandra_request_timeout_s=5.0,
        redis_url=services.redis.url,
        cassandra_hosts=services.cassandra.hosts,
        cassandra_port=services.cassandra.port,
    )
    yield settings
    from ma_ray.palette.online.cassandra import CassandraOnlineStore

    store = CassandraOnlineStore(settings)
    store.drop_keyspace()
    store.close()


def test_datasink_bulk_loads_cassandra_idempotently(
    ray_cluster: str, raw_uri: str, repo: FeatureRepository, cassandra_settings: Settings
) -> None:
    # A catalog of its own, so the Redis cache keys of this test collide with nobody's.
    repo = repo.model_copy(update={"catalog": f"bp_{uuid.uuid4().hex[:8]}"})
    pipeline = BatchPipeline(repo, cassandra_settings, raw_uri, load_batch_rows=50)
    plan = pipeline.plans(["driver_stats"])[0]
    raw = find_raw_input(raw_uri, plan, LAST_DAY)
    snapshot = compute_snapshot(
        [pq.read_table(f, filesystem=raw.fs) for f in raw.files], plan.bind(raw.schema), LAST_DAY
    )
    info = pipeline.offline.write_snapshot(repo.catalog, plan.group, LAST_DAY, snapshot, plan.join_key)
    assert pipeline.load(plan, info) == snapshot.num_rows
    assert pipeline.load(plan, info) == snapshot.num_rows  # again: the same rows, nothing duplicated

    from ma_ray.palette.online.cassandra import CassandraOnlineStore

    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == "driver_stats"))
    store = CassandraOnlineStore(cassandra_settings)
    try:
        keys = snapshot["driver_id"].to_pylist()
        answers = store.get(table, keys, list(table.features), now_us())
        count = store._session.execute(f"SELECT count(*) FROM {store.keyspace}.{table.name}").one()[0]
    finally:
        tiered = open_online_store(cassandra_settings)
        tiered.teardown(table)  # drops the table and its Redis keys
        tiered.close()
        store.close()
    assert count == snapshot.num_rows
    expected = snapshot.to_pylist()
    for answer, row in zip(answers, expected, strict=True):
        assert answer.feature_ts is not None
        assert answer.values == {name: row[name] for name in table.features}


class FlakySink(OnlineStoreDatasink):
    """Fails the first time any worker writes (a marker file remembers it across processes and attempts)."""

    marker: str = ""

    def put(self, store, rows) -> None:  # type: ignore[no-untyped-def]
        marker = Path(self.marker)
        if not marker.exists():
            marker.write_text("failed once")
            raise ConnectionError("online store unreachable (injected)")
        super().put(store, rows)


class HalfSink(OnlineStoreDatasink):
    """Writes the first batch of each task, then fails: a load that dies half-way, every time."""

    def put(self, store, rows) -> None:  # type: ignore[no-untyped-def]
        if getattr(self, "_wrote", False):
            raise ConnectionError("online store went away mid-load (injected)")
        super().put(store, rows)
        self._wrote = True


def test_failed_attempt_is_retried_and_reuses_the_snapshot(
    ray_cluster: str, raw_uri: str, repo: FeatureRepository, tmp_path: Path
) -> None:
    settings = load_settings(state_dir=tmp_path)

    def flaky(*args: object) -> FlakySink:
        sink = FlakySink(*args)  # type: ignore[arg-type]
        sink.marker = str(tmp_path / "failed-once")
        return sink

    pipeline = BatchPipeline(repo, settings, raw_uri, retry=FAST_RETRY, sink_factory=flaky, meta_store=None)
    [record] = pipeline.run(LAST_DAY, groups=["driver_stats"])
    assert (record.status, record.attempts, record.reused_snapshot) == (RunStatus.SUCCEEDED, 2, True)
    assert "online store unreachable" in record.errors[0]
    assert record.online_rows == record.snapshot_rows


def test_final_failure_keeps_the_previous_snapshot_serving(
    ray_cluster: str, raw_uri: str, repo: FeatureRepository, tmp_path: Path
) -> None:
    settings = load_settings(state_dir=tmp_path)
    previous_day = LAST_DAY - timedelta(days=1)
    good = BatchPipeline(repo, settings, raw_uri, retry=FAST_RETRY)
    good.run(previous_day, groups=["driver_stats"])
    failing = BatchPipeline(repo, settings, raw_uri, retry=FAST_RETRY, sink_factory=HalfSink, load_batch_rows=20)
    with pytest.raises(BatchRunError, match="failed after 2 attempt") as raised:
        failing.run(LAST_DAY, groups=["driver_stats"])
    record = raised.value.record
    assert record.status is RunStatus.FAILED and "mid-load" in (record.error or "")
    assert failing.runs.runs("rideshare", "driver_stats", LAST_DAY)[-1].status is RunStatus.FAILED

    # Every driver of the previous snapshot is still served: its old row, or (idempotently) its new one.
    old = {r["driver_id"]: r for r in driver_stats(raw_uri, previous_day).to_pylist()}
    new = {r["driver_id"]: r for r in driver_stats(raw_uri, LAST_DAY).to_pylist()}
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == "driver_stats"))
    online = open_online_store(settings)
    try:
        answers = online.get(table, list(old), ["trip_count_7d"], now_us())
    finally:
        online.close()
    served_old = 0
    for answer in answers:
        assert answer.found
        if answer.values["trip_count_7d"] == old[answer.key]["trip_count_7d"] and answer.feature_ts < _us(LAST_DAY):
            served_old += 1
        else:
            assert answer.values["trip_count_7d"] == new[answer.key]["trip_count_7d"]
    assert served_old > 0


def _us(day: date) -> int:
    from ma_ray.palette.pipelines.spec import day_end, epoch_us

    return epoch_us(day_end(day)) - 86_400_000_000


def test_raw_file_with_a_wrong_schema_fails_naming_the_column(
    raw_uri: str, repo: FeatureRepository, tmp_path: Path
) -> None:
    broken = tmp_path / "raw"
    shutil.copytree(raw_uri, broken)
    victim = sorted((broken / "trips" / f"date={LAST_DAY.isoformat()}").glob("*.parquet"))[0]
    table = pq.read_table(victim)
    index = table.schema.get_field_index("distance_km")
    pq.write_table(table.set_column(index, "distance_km", pc.cast(table["distance_km"], pa.string())), victim)
    pipeline = BatchPipeline(repo, load_settings(state_dir=tmp_path), str(broken), retry=FAST_RETRY)
    with pytest.raises(BatchRunError, match=r"column 'distance_km' of raw file .* is string, expected float") as raised:
        pipeline.run(LAST_DAY, groups=["driver_stats"])
    assert raised.value.record.attempts == 1  # a schema error needs a fix, not a retry
    assert OfflineStore(str(tmp_path / "offline")).latest("rideshare", "driver_stats") is None


def test_job_entrypoint(
    ray_cluster: str, raw_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from apps.batch_pipeline import main

    monkeypatch.setenv("MA_RAY_STATE_DIR", str(tmp_path))
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        common = ["--catalog", "rideshare", "--repository", str(path), "--raw-uri", raw_uri]
        day = ["--start", LAST_DAY.isoformat(), "--ray-address", ray_cluster]
        assert main([*common, *day, "--groups", "rider_stats", "--backfill", "--json"]) == 0
        [record] = json.loads(capsys.readouterr().out)
        assert (record["group"], record["status"], record["mode"]) == ("rider_stats", "succeeded", "backfill")
        assert main([*common, *day, "--groups", "driver_realtime"]) == 2
        assert "streaming path" in capsys.readouterr().err
        assert main([*common, "--start", "2020-01-01", "--groups", "rider_stats", "--attempts", "1"]) == 1
        assert "has not landed" in capsys.readouterr().err


def test_stream_fallback_run_loads_batch_values_beside_the_stream(
    ray_cluster: str, raw_uri: str, repo: FeatureRepository, tmp_path: Path
) -> None:
    """A streaming group's batch run fills its fallback table (what readers get while the stream lags) and
    never writes over the stream's own table."""
    settings = load_settings(state_dir=tmp_path)
    meta = SqliteMetaStore(tmp_path / "meta.sqlite")
    pipeline = BatchPipeline(repo, settings, raw_uri, retry=FAST_RETRY, meta_store=meta)
    with pytest.raises(PipelineError, match="streaming path computes it"):
        pipeline.plans(["driver_realtime"])
    [record] = pipeline.run(LAST_DAY, groups=["driver_realtime"], stream_fallback=True)
    assert record.status is RunStatus.SUCCEEDED and record.online_rows == record.snapshot_rows > 0
    stream_table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == "driver_realtime"))
    snapshot = OfflineStore(settings.offline_uri).read(repo.catalog, "driver_realtime", LAST_DAY)
    keys = snapshot["driver_id"].to_pylist()[:20]
    store = open_online_store(settings)
    store.update(stream_table)
    fallback = store.get(stream_table.batch_fallback(), keys, ["trip_count_1h"], now_us())
    assert all(v.found for v in fallback)
    expected = dict(zip(snapshot["driver_id"].to_pylist(), snapshot["trip_count_1h"].to_pylist(), strict=True))
    assert {v.key: v.values["trip_count_1h"] for v in fallback} == {k: expected[k] for k in keys}
    assert not any(v.found for v in store.get(stream_table, keys, ["trip_count_1h"], now_us()))
