"""Every shipped job spec is accepted by `ma-ray jobs submit --dry-run` after the demo, as the README promises.

A newcomer runs `make demo` in the checkout, then `ma-ray jobs submit clusters/jobs/<spec>.yaml --clusters
clusters/jobs/clusters.yaml`; the specs' label sources are relative (``.ma_ray/offline/raw``), so they resolve
against the directory the command runs in. The demo here wrote its state to a fresh directory instead of the
checkout's ``.ma_ray`` (which other runs share), so the commands run in a directory that looks like that checkout:
the repository's ``clusters/`` and the demo's state as ``.ma_ray``, both linked; the spec files are used as shipped.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "clusters" / "jobs"
SPECS = sorted(p.name for p in JOBS.glob("*.yaml") if p.name != "clusters.yaml")
# Specs that need data the demo does not make, and the one reason --dry-run must give (their top comments say so).
NEEDS_MORE_DATA = {"trip_notes_deepspeed.yaml": r"^label: cannot open \S*/\.ma_ray/offline/notes/trip_notes: "}


@pytest.fixture
def checkout(newcomer_demo: Any, tmp_path: Path) -> Path:
    """A directory like the checkout after `make demo`: the repository's clusters/ and the demo's .ma_ray state."""
    (tmp_path / "clusters").symlink_to(ROOT / "clusters", target_is_directory=True)
    (tmp_path / ".ma_ray").symlink_to(newcomer_demo.state_dir, target_is_directory=True)
    return tmp_path


def _dry_run(newcomer_demo: Any, checkout: Path, spec: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [newcomer_demo.cli, "jobs", "submit", f"clusters/jobs/{spec}", "--clusters",
               "clusters/jobs/clusters.yaml", "--dry-run", *extra]  # fmt: skip
    return subprocess.run(
        command, cwd=checkout, env=newcomer_demo.env, capture_output=True, text=True, check=False, timeout=180
    )


@pytest.mark.parametrize("spec", SPECS)
def test_job_spec_is_accepted_after_the_demo(newcomer_demo: Any, checkout: Path, spec: str) -> None:
    context = f"(the demo exited {newcomer_demo.returncode}; state {newcomer_demo.state_dir})"
    if spec in NEEDS_MORE_DATA:
        assert "label: cannot open" in (JOBS / spec).read_text(), f"{spec}'s top comment must name what it needs"
        result = _dry_run(newcomer_demo, checkout, spec, "--json")
        assert result.returncode == 1, f"{spec} {context}: {result.stdout}{result.stderr}"
        reasons = json.loads(result.stdout)["refused"]
        assert len(reasons) == 1 and re.match(NEEDS_MORE_DATA[spec], reasons[0]), f"{spec} {context}: {reasons}"
        return
    result = _dry_run(newcomer_demo, checkout, spec)
    assert result.returncode == 0, f"{spec} refused {context}:\n{result.stdout}{result.stderr}"
    assert result.stdout.startswith("would submit "), result.stdout


def test_every_exception_names_a_shipped_spec() -> None:
    assert SPECS and set(NEEDS_MORE_DATA) <= set(SPECS), (SPECS, NEEDS_MORE_DATA)
