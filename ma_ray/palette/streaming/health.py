"""How far behind each aggregation actor is, published for readers that fall back to batch values.

Every actor writes a `StreamHealth` (consumer lag, freshness of its last micro-batch, when it last looked)
next to its checkpoint whenever it measures its lag. `group_lagging` says whether a streaming group is
outside its SLA: an actor that has not reported for a while (dead, stuck) counts as lagging, and so does one
with unread events whose last batch was older than the SLA. Readers then serve the batch value and say so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ma_ray.palette.pipelines.spec import MICROS_PER_SECOND
from ma_ray.palette.streaming.checkpoints import CheckpointStore

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


def health_store(checkpoint_dir: str | Path) -> CheckpointStore:
    return CheckpointStore(checkpoint_dir, suffix=HEALTH_SUFFIX)


def publish(store: CheckpointStore, health: StreamHealth) -> None:
    store.save(health.actor, json.dumps(asdict(health)).encode())


def read_health(store: CheckpointStore) -> list[StreamHealth]:
    found = []
    for name in store.names():
        data = store.load(name)
        if data is not None:
            found.append(StreamHealth(**json.loads(data)))
    return found


def group_lagging(health: list[StreamHealth], sla_s: float, now_us: int) -> bool:
    """True when no actor reported, or any actor of the group is outside the SLA."""
    return not health or any(h.lagging(sla_s, now_us) for h in health)
