"""Finding and checking a pipeline's raw input: the ``date=`` partitions its window touches, file by file.

Every file's Parquet footer is read before any data: a file that lacks a column the declarations use, or holds
it with another type than the other files, fails the run with the file and the column named, instead of a
confusing error (or a silent cast) deep inside a Ray task.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ma_ray.palette.pipelines.spec import BoundPlan, GroupPlan, PipelineError, RawSchemaError
from ma_ray.storage import filesystem_and_path


class RawDataMissingError(PipelineError):
    """The raw partitions a run needs are not there (yet): retrying may help once upstream data lands."""


@dataclass(frozen=True)
class RawInput:
    """The files one run reads and what their footers say."""

    table: str
    fs: pafs.FileSystem
    files: tuple[str, ...]
    dates: tuple[date, ...]
    rows: int
    schema: pa.Schema

    def describe(self, root_uri: str) -> dict[str, object]:
        return {
            "raw_uri": root_uri,
            "table": self.table,
            "dates": [d.isoformat() for d in self.dates],
            "files": len(self.files),
            "rows": self.rows,
        }


def find_raw_input(root_uri: str, plan: GroupPlan, as_of: date) -> RawInput:
    """The files of every partition of the plan's widest window as of ``as_of``.

    Raises `RawDataMissingError` when the as-of day itself has no data, `RawSchemaError` for a bad file.
    """
    fs, root = filesystem_and_path(root_uri)
    files, dates = [], []
    for day in plan.partition_dates(as_of):
        folder = f"{root.rstrip('/')}/{plan.raw_source}/date={day.isoformat()}"
        if fs.get_file_info(folder).type != pafs.FileType.Directory:
            continue
        found = sorted(
            info.path
            for info in fs.get_file_info(pafs.FileSelector(folder))
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
        )
        if found:
            files.extend(found)
            dates.append(day)
    if as_of not in dates:
        raise RawDataMissingError(
            f"no raw {plan.raw_source} for {as_of} under {root_uri}/{plan.raw_source}/date={as_of.isoformat()}: "
            "the day's data has not landed (or the date is wrong)"
        )
    schema, rows = check_files(fs, files, plan)
    return RawInput(plan.raw_source, fs, tuple(files), tuple(dates), rows, schema)


def check_files(fs: pafs.FileSystem, files: list[str], plan: GroupPlan) -> tuple[pa.Schema, int]:
    """Read every footer; the schema the files agree on (each column's most common type) and the row count.

    Raises `RawSchemaError` naming the file and the column when a file lacks a needed column or disagrees.
    """
    footers = {path: pq.read_metadata(path, filesystem=fs) for path in files}
    schemas = {path: meta.schema.to_arrow_schema() for path, meta in footers.items()}
    types: dict[str, Counter[pa.DataType]] = {}
    for schema in schemas.values():
        for field in schema:
            types.setdefault(field.name, Counter())[field.type] += 1
    agreed = pa.schema([(name, counts.most_common(1)[0][0]) for name, counts in types.items()])
    bound = BoundPlan.of(plan, agreed)  # refuses declarations the data cannot satisfy, naming the column
    where = f"{plan.catalog}.{plan.group}"
    for path, schema in schemas.items():
        for name in bound.columns:
            expected = agreed.field(name).type
            if name not in schema.names:
                raise RawSchemaError(f"{where}: raw file {path} has no column '{name}' (expected {expected})")
            actual = schema.field(name).type
            if actual != expected:
                raise RawSchemaError(
                    f"{where}: column '{name}' of raw file {path} is {actual}, expected {expected} "
                    f"(as in {types[name][expected]} other file(s))"
                )
    return agreed, sum(meta.num_rows for meta in footers.values())
