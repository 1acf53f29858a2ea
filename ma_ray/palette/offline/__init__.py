"""Palette's offline store (immutable daily Parquet snapshots) and point-in-time correct joins for training sets."""

from ma_ray.palette.offline.distributed_join import point_in_time_join
from ma_ray.palette.offline.point_in_time import JoinSpec, point_in_time_join_table
from ma_ray.palette.offline.snapshot import FEATURE_TIMESTAMP, TIMESTAMP_TYPE, SnapshotError, SnapshotInfo
from ma_ray.palette.offline.store import OfflineStore

__all__ = [
    "FEATURE_TIMESTAMP",
    "TIMESTAMP_TYPE",
    "JoinSpec",
    "OfflineStore",
    "SnapshotError",
    "SnapshotInfo",
    "point_in_time_join",
    "point_in_time_join_table",
]
