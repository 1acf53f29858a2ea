"""The seed's non-model checkpoint contents: training state (epoch, step, best metric) and the random states of
numpy, torch and Python's ``random``, as plain JSON (no pickle, so restoring a checkpoint runs no code).

torch's generator is captured only when torch is already imported: a trainer that never loads torch (XGBoost)
has no torch randomness to restore, and importing it just to checkpoint would cost seconds.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

STATE_FILE = "training_state.json"


@dataclass(frozen=True)
class TrainingState:
    """Where training stands. ``step_in_epoch`` lets a run resumed mid-epoch skip the batches it already did."""

    epoch: int = 0
    step: int = 0
    best_metric: float | None = None
    step_in_epoch: int = 0


def capture_rng() -> dict[str, Any]:
    """This process's random states as JSON-able data."""
    legacy = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())  # legacy=True: the tuple form
    kind, keys, pos, has_gauss, cached = legacy
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }  # fmt: skip
    if "torch" in sys.modules:
        import torch

        state["torch"] = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what `capture_rng` captured (torch's only when it was captured)."""
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            np.asarray(numpy_state["keys"], dtype=np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss"]))
    if "torch" in state:
        import torch

        raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(raw))


@dataclass(frozen=True)
class SavedState:
    """A checkpoint's ``training_state.json``: the training state and one random state per rank."""

    training: TrainingState
    rng: list[dict[str, Any]] = field(default_factory=list)

    def rng_for(self, rank: int) -> dict[str, Any] | None:
        """The random state rank ``rank`` saved (rank 0's when the checkpoint was taken with fewer ranks)."""
        if not self.rng:
            return None
        return self.rng[rank] if rank < len(self.rng) else self.rng[0]


def write_state(directory: Path, training: TrainingState, rng: list[dict[str, Any]]) -> Path:
    """Write ``training_state.json`` into a checkpoint's local folder."""
    path = Path(directory) / STATE_FILE
    path.write_text(json.dumps({"training": asdict(training), "rng": rng}))
    return path


def read_state(directory: Path) -> SavedState:
    """Read ``training_state.json`` from a restored checkpoint folder."""
    data = json.loads((Path(directory) / STATE_FILE).read_text())
    return SavedState(TrainingState(**data["training"]), list(data.get("rng", [])))
