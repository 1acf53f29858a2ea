"""The seed's checkpoint policy, as pure decisions: when to checkpoint, which to keep, which one to resume from.

- Interval: ``max(min_interval_s, fraction * estimated duration)``. The seed says a 10-minute minimum and 10 %;
  its tuning table recommends 15 minutes; both are settings.
- Retention: keep the newest ``keep_last`` (default 3); ``to_delete`` names the rest.
- Validation: every checkpoint carries a manifest (step, epoch, created_at, files with sha256 and size);
  ``latest_valid`` picks the newest checkpoint whose files all match, falling back to older ones.
- Preemption: on a notice, ``on_preemption_notice`` says whether to checkpoint now.

Storage and serialisation live elsewhere: these functions take manifests and a lookup callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ma_ray.storage import FileDigest, FileEntry

SEED_MIN_INTERVAL_S = 600.0
TUNED_MIN_INTERVAL_S = 900.0


@dataclass(frozen=True)
class CheckpointManifest:
    """What a checkpoint claims to contain; written last, next to its files."""

    checkpoint_id: str
    step: int
    epoch: int
    created_at: float
    files: tuple[FileEntry, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "step": self.step,
            "epoch": self.epoch,
            "created_at": self.created_at,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointManifest:
        """Parse a manifest; raises ``ValueError`` naming the problem when it is malformed."""
        try:
            files = tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"])
            step, epoch, created_at = int(data["step"]), int(data["epoch"]), float(data["created_at"])
            return cls(str(data["checkpoint_id"]), step, epoch, created_at, files)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed checkpoint manifest: {exc!r}") from exc

    @property
    def order(self) -> tuple[int, float]:
        """Newer sorts higher: by step, then creation time."""
        return (self.step, self.created_at)


FileLookup = Callable[[str, str], FileDigest | None]
"""``lookup(checkpoint_id, path)``: the stored file's facts, or None if it is missing."""


def problems(manifest: CheckpointManifest, lookup: FileLookup) -> list[str]:
    """Why a checkpoint cannot be used (empty when it is valid)."""
    if not manifest.files:
        return ["manifest lists no files"]
    found: list[str] = []
    for entry in manifest.files:
        facts = lookup(manifest.checkpoint_id, entry.path)
        if facts is None:
            found.append(f"{entry.path}: missing")
        elif facts.size != entry.size:
            found.append(f"{entry.path}: size {facts.size} != {entry.size}")
        elif facts.sha256 != entry.sha256:
            found.append(f"{entry.path}: sha256 mismatch")
    return found


@dataclass(frozen=True)
class Selection:
    """The checkpoint to resume from (None: start from scratch) and the newer ones rejected, with reasons."""

    chosen: CheckpointManifest | None
    rejected: dict[str, list[str]] = field(default_factory=dict)


def latest_valid(manifests: Sequence[CheckpointManifest], lookup: FileLookup) -> Selection:
    """The newest checkpoint whose files all match their manifest, falling back to older ones."""
    rejected: dict[str, list[str]] = {}
    for manifest in sorted(manifests, key=lambda m: m.order, reverse=True):
        found = problems(manifest, lookup)
        if not found:
            return Selection(manifest, rejected)
        rejected[manifest.checkpoint_id] = found
    return Selection(None, rejected)


class PreemptionAction(StrEnum):
    CHECKPOINT_NOW = "checkpoint_now"
    STOP_NOTHING_NEW = "stop_nothing_new"  # the last checkpoint already holds the current step
    STOP_NO_TIME = "stop_no_time"  # the save would not finish before the node goes; resume from the last one


@dataclass(frozen=True)
class CheckpointPolicy:
    min_interval_s: float = SEED_MIN_INTERVAL_S
    fraction_of_estimate: float = 0.10
    keep_last: int = 3

    def __post_init__(self) -> None:
        if self.min_interval_s <= 0 or not 0 < self.fraction_of_estimate <= 1 or self.keep_last < 1:
            raise ValueError(f"invalid checkpoint policy {self}")

    def interval_s(self, estimated_duration_s: float) -> float:
        """Seconds between checkpoints for a job expected to run ``estimated_duration_s``."""
        if estimated_duration_s < 0:
            raise ValueError("estimated duration cannot be negative")
        return max(self.min_interval_s, self.fraction_of_estimate * estimated_duration_s)

    def is_due(self, now_s: float, last_checkpoint_s: float, estimated_duration_s: float) -> bool:
        """True once an interval has passed since the last checkpoint (or since the start, if none yet)."""
        return now_s - last_checkpoint_s >= self.interval_s(estimated_duration_s)

    def to_delete(self, manifests: Sequence[CheckpointManifest]) -> list[CheckpointManifest]:
        """Checkpoints beyond the newest ``keep_last``, oldest first."""
        ordered = sorted(manifests, key=lambda m: m.order)
        return ordered[: max(len(ordered) - self.keep_last, 0)]


def on_preemption_notice(
    step: int, last_checkpoint_step: int | None, seconds_left: float, expected_save_s: float
) -> PreemptionAction:
    """What to do when the node announces it will go in ``seconds_left``."""
    if last_checkpoint_step is not None and last_checkpoint_step >= step:
        return PreemptionAction.STOP_NOTHING_NEW
    if expected_save_s > seconds_left:
        return PreemptionAction.STOP_NO_TIME
    return PreemptionAction.CHECKPOINT_NOW
