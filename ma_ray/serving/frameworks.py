"""How a pool replica serves each framework: one object per framework (Gallery's framework names) that sizes a
model in memory, loads it from its local artifact at a precision, and predicts a matrix of model inputs.
Chosen by name in :func:`serving_framework`; the frameworks themselves import lazily, on first load.

- ``xgboost``: the native UBJ file; a request's few rows walk the trees in numpy (`ma_ray.serving.xgboost_trees`),
  more rows, or a booster that walk does not reproduce, go to ``Booster.inplace_predict``; precision does not apply.
- ``pytorch``: the ``state_dict`` memory-mapped (``torch.load(mmap=True)``: pages come from the page cache, shared
  by the node's replicas) into the module its factory builds; the first output per row.
- ``deepspeed``: the module weights of a ZeRO checkpoint (``mp_rank_00_model_states.pt``, the full weights at
  ZeRO stages 1 and 2) loaded into the causal LM its factory builds, without DeepSpeed; a row is token ids and
  its prediction the most likely next token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ma_ray.gallery.flavors import flavor as flavor_for
from ma_ray.gallery.flavors import resolve_factory
from ma_ray.serving.precision import SIZE_FACTOR, apply_precision, check_precision, input_dtype
from ma_ray.serving.xgboost_trees import XGBoostTrees

if TYPE_CHECKING:
    from ma_ray.serving.artifact_cache import LocalArtifact

PREDICT_THREADS = 1  # XGBoost threads per prediction in a replica (see `XGBoostServing.load`)
MODEL_STATES = "mp_rank_00_model_states.pt"  # DeepSpeed's module weights, written by rank 0 of model parallel 0


class Predictor(Protocol):
    def predict(self, matrix: np.ndarray) -> list[float]:
        """One prediction per row of ``matrix`` (rows x model inputs, float64)."""


class ServingFramework(Protocol):
    name: str
    deep: bool  # served by the GPU pool, batched across requests

    def memory_bytes(self, artifact_bytes: int, precision: str) -> int:
        """What a model of this artifact size holds in memory once loaded at ``precision`` (the cache's size)."""

    def load(self, artifact: LocalArtifact, device: str = "cpu", precision: str = "fp32") -> Predictor: ...


@dataclass(frozen=True)
class XGBoostPredictor:
    booster: Any
    trees: XGBoostTrees | None = None  # the booster walked in Python and numpy, when that reproduces it

    def predict(self, matrix: np.ndarray) -> list[float]:
        if self.trees is not None and self.trees.walks(matrix):
            walked: list[float] = self.trees.predict(matrix).tolist()
            return walked
        predictions: list[float] = self.booster.inplace_predict(matrix).tolist()
        return predictions


class XGBoostServing:
    name, deep = "xgboost", False

    def memory_bytes(self, artifact_bytes: int, precision: str) -> int:
        return max(artifact_bytes, 1)

    def load(self, artifact: LocalArtifact, device: str = "cpu", precision: str = "fp32") -> XGBoostPredictor:
        booster = flavor_for(self.name).load(artifact.path, artifact.manifest.metadata)
        # A request's few rows on one thread: XGBoost's OpenMP team waits for its slowest thread, and on a core a
        # neighbour keeps busy that wait is a scheduler slice (`bench/xgboost_predict_threads.py`: single-row p99
        # 0.3 ms on one thread, 21 ms on two with one busy process on two cores). Replicas are the parallelism.
        booster.set_param({"nthread": PREDICT_THREADS})
        # A request's few rows skip XGBoost's per-call setup (0.2-0.5 ms) for a walk of the same trees.
        return XGBoostPredictor(booster, XGBoostTrees.of(booster))


@dataclass(frozen=True)
class TorchPredictor:
    module: Any
    device: str
    precision: str

    def predict(self, matrix: np.ndarray) -> list[float]:
        import torch

        with torch.inference_mode():
            output = self.module(torch.as_tensor(matrix, dtype=input_dtype(self.precision), device=self.device))
        predictions: list[float] = output.reshape(len(matrix), -1)[:, 0].float().cpu().tolist()
        return predictions


class _DeepServing:
    deep = True

    def memory_bytes(self, artifact_bytes: int, precision: str) -> int:
        return max(int(artifact_bytes * SIZE_FACTOR[precision]), 1)

    @staticmethod
    def _module(metadata: dict[str, Any], state: dict[str, Any], device: str, precision: str) -> Any:
        check_precision(precision, device)
        module = resolve_factory(metadata["factory"])(**metadata.get("factory_kwargs", {}))
        module.load_state_dict(state)
        return apply_precision(module.to(device).eval(), precision, device)


class TorchServing(_DeepServing):
    name = "pytorch"

    def load(self, artifact: LocalArtifact, device: str = "cpu", precision: str = "fp32") -> TorchPredictor:
        import torch

        from ma_ray.gallery.flavors.pytorch import FILE

        state = torch.load(artifact.path / FILE, map_location="cpu", weights_only=True, mmap=True)
        return TorchPredictor(self._module(artifact.manifest.metadata, state, device, precision), device, precision)


@dataclass(frozen=True)
class NextTokenPredictor:
    module: Any  # token ids [batch, time] -> logits [batch, time, vocab]
    device: str

    def predict(self, matrix: np.ndarray) -> list[float]:
        import torch

        ids = matrix.astype(np.int64)
        if ids.size and (ids.min() < 0 or not np.array_equal(ids, matrix)):
            raise ValueError("a language model's inputs are token ids: whole numbers from 0")
        try:
            with torch.inference_mode():
                logits = self.module(torch.as_tensor(ids, device=self.device))
        except IndexError:  # an id past the token embeddings, or a row past the position embeddings
            raise ValueError(
                "a row holds a token id past the language model's vocabulary, or more tokens than its context"
            ) from None
        predictions: list[float] = logits[:, -1, :].argmax(dim=-1).float().cpu().tolist()
        return predictions


class DeepSpeedServing(_DeepServing):
    name = "deepspeed"

    def load(self, artifact: LocalArtifact, device: str = "cpu", precision: str = "fp32") -> NextTokenPredictor:
        import torch

        metadata = artifact.manifest.metadata
        if "factory" not in metadata:
            raise ValueError(
                "this deepspeed artifact names no model factory: log it with factory= and factory_kwargs= "
                "(the callable that builds the module its checkpoint fills)"
            )
        checkpoint = flavor_for(self.name).load(artifact.path, metadata)
        states = torch.load(checkpoint.tag_dir / MODEL_STATES, map_location="cpu", weights_only=True)
        return NextTokenPredictor(self._module(metadata, states["module"], device, precision), device)


FRAMEWORKS: dict[str, ServingFramework] = {f.name: f for f in (XGBoostServing(), TorchServing(), DeepSpeedServing())}
DEEP_FRAMEWORKS = frozenset(name for name, framework in FRAMEWORKS.items() if framework.deep)


def serving_framework(name: str) -> ServingFramework:
    """The serving object of a Gallery framework name; ``ValueError`` naming those there are otherwise."""
    try:
        return FRAMEWORKS[str(name)]
    except KeyError:
        raise ValueError(f"no serving for framework '{name}': serve one of {', '.join(sorted(FRAMEWORKS))}") from None


__all__ = [
    "DEEP_FRAMEWORKS",
    "FRAMEWORKS",
    "DeepSpeedServing",
    "NextTokenPredictor",
    "Predictor",
    "ServingFramework",
    "TorchPredictor",
    "TorchServing",
    "XGBoostPredictor",
    "XGBoostServing",
    "serving_framework",
]
