"""Why a prediction could not be served, and the status each failure is: one mapping for `:predict`, the Open
Inference Protocol's REST routes and its gRPC methods (which carry the status's gRPC code)."""

from __future__ import annotations

from ray.exceptions import RayTaskError

from ma_ray.serving import CacheFullError, EntityKeyError, UnknownReferenceError


class ModelLoadError(RuntimeError):
    """A model version could not be loaded on a pool replica (corrupt artifact, missing factory, ...)."""


class PoolMissingError(RuntimeError):
    """The model's pool deployment was left out of this app (``serving.replicas`` 0)."""


class ModelNotReadyError(RuntimeError):
    """The model resolves, but this replica cannot serve it now."""


# What a request can fail with, and its HTTP status: bad input, unknown model/version/alias (Gallery's KeyError),
# a version that cannot be served now.
_STATUSES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((EntityKeyError, UnknownReferenceError, ValueError), 400),
    ((KeyError,), 404),
    ((ModelLoadError, CacheFullError, PoolMissingError, ModelNotReadyError), 503),
)
ERROR_TYPES = tuple(kind for kinds, _ in _STATUSES for kind in kinds)


def status_of(error: BaseException) -> int:
    """The status of one of `ERROR_TYPES` (a pool replica's error arrives as a RayTaskError that is one too)."""
    return next(status for kinds, status in _STATUSES if isinstance(error, kinds))


def cause(error: BaseException) -> BaseException:
    # An exception raised in a pool replica arrives as a RayTaskError that is also an instance of its cause.
    return error.cause if isinstance(error, RayTaskError) else error


def message_of(error: BaseException) -> str:
    """What to tell the caller: the cause's own words, without Ray's task wrapper or KeyError's quotes."""
    return str(cause(error)).strip("'\"")
