"""`ma-ray models ...` on the embedded backends, through the parser the `ma-ray` command builds from
`ma_ray.gallery.cli.add_commands`: tables for people, --json for scripts, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature, UnknownModelError, VersionSpec
from ma_ray.gallery.cli import add_commands


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MA_RAY_STATE_DIR", str(tmp_path))
    gallery = Gallery.from_settings(load_settings())
    gallery.register_model(name="eta", owner="maps", tier=1, framework="other", description="trip ETA")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"w")
    for n in (1, 2):
        published = gallery.artifacts.publish("eta", tmp_path / "m", "other", {"n": n})
        gallery.register_version(
            "eta",
            VersionSpec(
                artifact_uri=published.uri,
                checksum=published.checksum,
                size_bytes=published.size_bytes,
                flavor="other",
                metrics={"rmse": 3.0 - n},
                signature=InputSignature(features=("@basis:hour",)),
                training_snapshot="2026-11-27",
            ),
        )
    gallery.close()
    return tmp_path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ma-ray")
    add_commands(parser.add_subparsers(dest="noun", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_list_describe_versions(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("models", "list") == 0
    assert "eta    maps   1     other" in capsys.readouterr().out
    assert run("models", "versions", "eta", "--json") == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1, 2]
    assert run("models", "describe", "eta", "--json") == 0
    assert json.loads(capsys.readouterr().out)["latest_version"] == 2


def test_alias_set_history_rollback(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("models", "alias", "set", "eta", "production", "1", "--expected", "none") == 0
    assert run("models", "alias", "set", "eta", "production", "2", "--expected", "1", "--reason", "better") == 0
    assert "eta:production: 1 -> 2 (change #2)" in capsys.readouterr().out
    assert run("models", "alias", "rollback", "eta", "production", "--json") == 0
    assert json.loads(capsys.readouterr().out)["to_version"] == 1
    assert run("models", "alias", "history", "eta", "production", "--json") == 0
    history = json.loads(capsys.readouterr().out)
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1), (1, 2), (2, 1)]
    assert run("models", "versions", "eta") == 0
    assert "production" in capsys.readouterr().out


def test_lineage_shows_inputs_and_snapshot(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("models", "lineage", "eta", "2", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "model": "eta:2",
        "features": ["@basis:hour"],
        "transforms": {},
        "training_snapshot": "2026-11-27",
        "training_job_id": None,
    }


def test_unknown_model_and_bad_expected_are_clear(state: Path) -> None:
    with pytest.raises(UnknownModelError, match="no model 'nobody'"):
        run("models", "describe", "nobody")
    with pytest.raises(SystemExit):
        run("models", "alias", "set", "eta", "production", "1", "--expected", "two")
