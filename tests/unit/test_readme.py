"""The README's Python examples run as written, and its test command is what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # the README's own code, nothing else


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    script = (ROOT / ".ci" / "run").read_text()
    assert script.strip().splitlines()[-1] == "exec make test"
