"""The newcomer's `ma-ray demo`: run once per session the way a new user runs it, for every test that reads it."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a fresh shell on a stock Debian has: no venv on PATH, no MA_RAY_* or RAY_* variables.
NEWCOMER_PATH = "/usr/bin:/bin"
NEWCOMER_TRIPS = 10_000  # the smallest world; the default 28 days, so the dates are those of `make demo`


@dataclass(frozen=True)
class NewcomerDemo:
    result: subprocess.CompletedProcess[str]
    env: dict[str, str]  # the newcomer's environment, with the state dir the demo used
    cli: str  # the venv's `ma-ray`, by absolute path as `make demo` runs it
    state_dir: Path
    summary: dict[str, Any]  # the demo's demo-summary.json

    @property
    def returncode(self) -> int:
        return self.result.returncode


def newcomer_env(state_dir: Path) -> dict[str, str]:
    return {"HOME": os.environ.get("HOME", "/root"), "PATH": NEWCOMER_PATH, "MA_RAY_STATE_DIR": str(state_dir)}


@pytest.fixture(scope="session")
def newcomer_demo(tmp_path_factory: pytest.TempPathFactory, ma_ray_cli: str) -> NewcomerDemo:
    """`ma-ray demo` in a fresh state dir, starting its own Ray: nothing of the test session's (its Ray, its venv
    on PATH, its settings) reaches it."""
    state_dir = tmp_path_factory.mktemp("newcomer") / "state"
    env = newcomer_env(state_dir)
    result = subprocess.run(
        [ma_ray_cli, "demo", "--trips", str(NEWCOMER_TRIPS)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    summary_file = state_dir / "demo-summary.json"
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert summary_file.exists(), f"the demo wrote no summary; exit {result.returncode}:\n{output}"
    return NewcomerDemo(result, env, ma_ray_cli, state_dir, json.loads(summary_file.read_text()))
