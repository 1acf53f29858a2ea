"""The session's cluster runs as a user's does: Ray's token authentication on, so a client without the token is
refused and one with it (what `ray job`, `serve` and ma-ray's own clients send) gets through."""

from __future__ import annotations

from pathlib import Path

import requests


def test_the_job_api_refuses_a_client_without_the_token(job_server: str) -> None:
    assert requests.get(f"{job_server}/api/jobs/", timeout=10).status_code in (401, 403)


def test_the_job_api_answers_a_client_with_the_token(job_server: str) -> None:
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    answer = requests.get(f"{job_server}/api/jobs/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and isinstance(answer.json(), list)


def test_ray_own_client_sends_the_token(job_server: str) -> None:
    from ray.job_submission import JobSubmissionClient

    assert isinstance(JobSubmissionClient(job_server).list_jobs(), list)
