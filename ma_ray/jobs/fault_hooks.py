"""Fault injection, a test hook kept out of the job spec: a test hands `Faults` to the controller's ``submit``
beside the spec, the job's record carries them to the training entrypoint, and both refuse or ignore them unless
the settings turn ``test_hooks`` on (``MA_RAY_TEST_HOOKS``). A user's spec file cannot name them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ma_ray.config import Settings


class Faults(BaseModel):
    """Fail rank 0 once at a step (a lost worker), or deliver a preemption notice at a step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_at_step: int | None = Field(default=None, ge=1)
    preempt_at_step: int | None = Field(default=None, ge=1)


def fault_refusals(faults: dict[str, Any], settings: Settings) -> list[str]:
    """Why a submission's faults are refused: none given, or test hooks on, is fine."""
    if not faults or settings.test_hooks:
        return []
    return ["faults: fault injection is a test hook (it kills workers): refused unless the settings turn on "
            "test_hooks (MA_RAY_TEST_HOOKS=1, for tests only)"]  # fmt: skip


def allowed_faults(faults: dict[str, Any], settings: Settings) -> Faults:
    """The faults a job's record carries, if the settings allow test hooks; none otherwise (the controller
    refuses them first: this keeps a record written another way from killing workers)."""
    return Faults.model_validate(faults) if settings.test_hooks else Faults()
