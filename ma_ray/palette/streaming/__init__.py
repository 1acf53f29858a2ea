"""The streaming path's logic, free of Kafka and Ray: validated events -> bucketed sliding windows per
entity -> online rows and offline log tables, with checkpoints that record the offsets they include.

`actors/stream_aggregator.py` runs it against Kafka; `apps/stream_pipeline.py` is the command line.
"""

from ma_ray.palette.streaming.atomic_files import AtomicFileStore
from ma_ray.palette.streaming.events import REASONS, EventParser, Rejected
from ma_ray.palette.streaming.processor import (
    CheckpointMismatchError,
    Offsets,
    StreamAggregator,
    offset_key,
)
from ma_ray.palette.streaming.window import EntityWindows, WindowAgg, bucket_seconds

__all__ = [
    "REASONS",
    "AtomicFileStore",
    "CheckpointMismatchError",
    "EntityWindows",
    "EventParser",
    "Offsets",
    "Rejected",
    "StreamAggregator",
    "WindowAgg",
    "bucket_seconds",
    "offset_key",
]
