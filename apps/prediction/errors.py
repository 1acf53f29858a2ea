"""Why a prediction could not be served, beyond bad input: each maps to a 503 (or gRPC UNAVAILABLE)."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model version could not be loaded on a pool replica (corrupt artifact, missing factory, ...)."""


class PoolMissingError(RuntimeError):
    """The model's pool deployment was left out of this app (``serving.replicas`` 0)."""
