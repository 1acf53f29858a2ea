"""The streaming path's logic, free of Kafka and Ray: validated events -> bucketed sliding windows per
entity -> online rows and offline log tables, with checkpoints that record the offsets they include.

`actors/stream_aggregator.py` runs it against Kafka; `apps/stream_pipeline.py` is the command line. Each
stream's health (lag, newest event) is published on a board that readers consult to fall back to batch values.
"""

from ma_ray.palette.streaming.atomic_files import AtomicFileStore
from ma_ray.palette.streaming.events import REASONS, EventParser, Rejected
from ma_ray.palette.streaming.health import (
    HealthBoard,
    StreamHealth,
    StreamLagMonitor,
    open_health_board,
    stream_checkpoint_root,
)
from ma_ray.palette.streaming.metrics import StreamMetrics, shared_stream_metrics
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
    "HealthBoard",
    "Offsets",
    "Rejected",
    "StreamAggregator",
    "StreamHealth",
    "StreamLagMonitor",
    "StreamMetrics",
    "WindowAgg",
    "bucket_seconds",
    "offset_key",
    "open_health_board",
    "shared_stream_metrics",
    "stream_checkpoint_root",
]
