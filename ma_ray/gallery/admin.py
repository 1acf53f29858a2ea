"""What every Gallery admin front end shares (the HTTP API and the web UI): who may write, and the HTTP status
each Gallery error answers with."""

from __future__ import annotations

import hmac

from ma_ray.gallery.errors import (
    AliasConflictError,
    DeploymentFailedError,
    DeploymentInProgressError,
    NothingToRollBackError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
)


def admin_refusal(token: str | None, authorization: str | None) -> tuple[int, str] | None:
    """(status, reason) when ``authorization`` may not write, None when it holds ``Bearer <token>``."""
    if not token:
        return 403, "admin writes are disabled: set MA_RAY_ADMIN_TOKEN on the server"
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        return 401, "admin writes need 'Authorization: Bearer <MA_RAY_ADMIN_TOKEN>'"
    return None


def error_status(error: Exception) -> int:
    """404 unknown model, version or alias; 409 a conflict (compare-and-set, nothing to roll back, a deployment
    in progress); 422 a failed deployment; 400 anything else."""
    if isinstance(error, UnknownModelError | UnknownVersionError | UnknownAliasError):
        return 404
    if isinstance(error, AliasConflictError | NothingToRollBackError | DeploymentInProgressError):
        return 409
    if isinstance(error, DeploymentFailedError):
        return 422
    return 400
