"""Gallery's errors: each says what was wrong and how to fix it. Every one is a ValueError or KeyError
subclass, so `ma-ray` prints it without a traceback."""

from __future__ import annotations


class GalleryError(ValueError):
    """Base of Gallery's user-facing errors."""


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class UnknownVersionError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class UnknownAliasError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class ModelExistsError(GalleryError):
    """A model of that name is registered already, with different metadata."""


class AliasConflictError(GalleryError):
    """A compare-and-set of an alias lost: the alias no longer points where the caller expected."""

    def __init__(self, model: str, alias: str, expected: int | None, actual: int | None) -> None:
        self.model, self.alias, self.expected, self.actual = model, alias, expected, actual
        want = "unset" if expected is None else f"version {expected}"
        have = "unset" if actual is None else f"version {actual}"
        super().__init__(
            f"alias '{alias}' of model '{model}' was changed concurrently: expected {want}, it is {have}; "
            "read it again and retry with the current value as expected"
        )


class NothingToRollBackError(GalleryError):
    """The alias has no previous version to go back to."""


class ChecksumMismatchError(GalleryError):
    """An artifact's content does not match the checksum it was registered (or is being registered) with."""


class CorruptArtifactError(GalleryError):
    """An artifact failed verification at load: missing files, wrong sizes or wrong checksums. Never served."""


class UnsafeFactoryError(GalleryError):
    """A model factory reference that is malformed, not importable, or not allowed."""


class DeploymentInProgressError(GalleryError):
    """Another deployment of the same model holds the deployment lock."""

    def __init__(self, model: str, holder: str, expires_in_s: float) -> None:
        self.model, self.holder, self.expires_in_s = model, holder, expires_in_s
        super().__init__(
            f"deployment in progress: model '{model}' is being deployed by '{holder}' (lease expires in "
            f"{expires_in_s:.0f}s); wait for it to finish, or for the lease to expire if that deployer crashed"
        )


class DeploymentFailedError(GalleryError):
    """A deployment's load step failed; the deployment was rolled back and the previous version still serves."""


class LeaseLostError(GalleryError):
    """A deployment lock lease expired and was taken over before its holder released or renewed it."""


class PropagationTimeoutError(GalleryError):
    """An alias change was stored and broadcast, but not every replica acknowledged it in time."""

    def __init__(self, message: str, laggards: list[str]) -> None:
        self.laggards = laggards
        super().__init__(message)
