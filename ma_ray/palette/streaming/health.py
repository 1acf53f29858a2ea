"""How far behind each aggregation actor is, published for readers that fall back to batch values.

Every actor publishes a `StreamHealth` (consumer lag, freshness of its last micro-batch, when it last looked) on
a health board whenever it measures its lag. `group_lagging` says whether a streaming group is outside its SLA:
an actor that has not reported for a while (dead, stuck) counts as lagging, and so does one with unread events
whose last batch was older than the SLA. Readers then serve the batch value and say so.

The board lives where the platform's state lives, so actors and readers on different nodes see the same one:
files next to the actors' checkpoints on embedded defaults (`FileHealthBoard`), Redis in production
(`ma_ray.palette.streaming.redis_health.RedisHealthBoard`); `open_health_board` picks by the settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ma_ray.palette.online import now_us
from ma_ray.palette.pipelines import MICROS_PER_SECOND
from ma_ray.palette.streaming.atomic_files import AtomicFileStore

if TYPE_CHECKING:
    from ma_ray.config import Settings

HEALTH_SUFFIX = ".health.json"


@dataclass(frozen=True)
class StreamHealth:
    actor: str
    lag_messages: int
    freshness_s: float | None  # produced -> written online, for the oldest event of the last micro-batch
    updated_us: int

    def lagging(self, sla_s: float, now_us: int, report_every_s: float = 5.0) -> bool:
        silent_s = (now_us - self.updated_us) / MICROS_PER_SECOND
        if silent_s > max(sla_s, 3 * report_every_s):
            return True
        return self.lag_messages > 0 and (self.freshness_s is None or self.freshness_s > sla_s)


class HealthBoard(Protocol):
    """Where aggregation actors publish their health and readers read it, per streaming group."""

    def publish(self, catalog: str, group: str, health: StreamHealth) -> None: ...

    def read(self, catalog: str, group: str) -> list[StreamHealth]: ...


def health_from_json(data: bytes | str) -> StreamHealth:
    return StreamHealth(**json.loads(data))


def health_to_json(health: StreamHealth) -> bytes:
    return json.dumps(asdict(health)).encode()


class FileHealthBoard:
    """One file per actor next to its checkpoint (``<root>/<catalog>/<group>/<actor>.health.json``): one node,
    or a filesystem every node mounts."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileHealthBoard:
        return cls(stream_checkpoint_root(settings.state_dir))

    def _store(self, catalog: str, group: str) -> AtomicFileStore:
        return AtomicFileStore(self.root / catalog / group, suffix=HEALTH_SUFFIX)

    def publish(self, catalog: str, group: str, health: StreamHealth) -> None:
        self._store(catalog, group).save(health.actor, health_to_json(health))

    def read(self, catalog: str, group: str) -> list[StreamHealth]:
        store = self._store(catalog, group)
        found = []
        for name in store.names():
            data = store.load(name)
            if data is not None:
                found.append(health_from_json(data))
        return found


def open_health_board(settings: Settings) -> HealthBoard:
    """The board of the settings' backends: files embedded, Redis with the production online store."""
    board: HealthBoard = settings.online_store.build("health_board", settings)
    return board


def group_lagging(health: list[StreamHealth], sla_s: float, now_us: int) -> bool:
    """True when no actor reported, or any actor of the group is outside the SLA."""
    return not health or any(h.lagging(sla_s, now_us) for h in health)


def stream_checkpoint_root(state_dir: str | Path) -> Path:
    """Where aggregation actors keep checkpoints and health by default: ``<root>/<catalog>/<group>``."""
    return Path(state_dir).absolute() / "stream_checkpoints"


class StreamLagMonitor:
    """Answers "is this streaming group outside its lag SLA?" for readers, from the actors' published health,
    re-read at most every ``refresh_s``. A group no actor has ever reported on is not lagging: its stream path
    is not deployed, and the online table holds whatever was written to it."""

    def __init__(self, board: HealthBoard, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.refresh_s = refresh_s
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[float, bool]] = {}

    def lagging(self, catalog: str, group: str, sla_s: float) -> bool:
        now = self._clock()
        cached = self._answers.get((catalog, group))
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        health = self.board.read(catalog, group)
        answer = bool(health) and group_lagging(health, sla_s, now_us())
        self._answers[(catalog, group)] = (now, answer)
        return answer
