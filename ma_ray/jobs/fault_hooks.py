"""Fault injection, a test hook kept out of the job spec: a test hands a `FaultInjection` (the trainers' own) to
the controller's ``submit`` beside the spec, the job's record carries it to the training entrypoint, and both
refuse or ignore it unless the settings turn ``test_hooks`` on (``MA_RAY_TEST_HOOKS``). A user's spec file
cannot name it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import TypeAdapter

from ma_ray.config import Settings
from ma_ray.training import FaultInjection

_RECORDED = TypeAdapter(FaultInjection)


def recorded_faults(faults: FaultInjection | None) -> dict[str, Any]:
    """What a job's record keeps of ``faults``: the steps set, nothing for none."""
    return {k: v for k, v in asdict(faults).items() if v is not None} if faults else {}


def fault_refusals(faults: dict[str, Any], settings: Settings) -> list[str]:
    """Why a submission's faults are refused: none given, or test hooks on, is fine."""
    if not faults or settings.test_hooks:
        return []
    return ["faults: fault injection is a test hook (it kills workers): refused unless the settings turn on "
            "test_hooks (MA_RAY_TEST_HOOKS=1, for tests only)"]  # fmt: skip


def allowed_faults(faults: dict[str, Any], settings: Settings) -> FaultInjection:
    """The faults a job's record carries, if the settings allow test hooks; none otherwise (the controller
    refuses them first: this keeps a record written another way from killing workers)."""
    return _RECORDED.validate_python(faults) if settings.test_hooks and faults else FaultInjection()
