"""The tree-reading tests' parser: the trees ``ast.parse`` gives, out of reach of other threads' parses."""

from __future__ import annotations

import ast
import threading
import traceback
from pathlib import Path

import pytest

from tests.python_source import parse_files


@pytest.mark.unit
def test_each_file_gets_the_tree_ast_parse_gives_and_an_edit_is_read_again(tmp_path: Path) -> None:
    sources = {"a.py": "import ma_ray.jobs\n", "b.py": "def f():\n    from ma_ray import config\n", "c.py": ""}
    for name, source in sources.items():
        (tmp_path / name).write_text(source)
    paths = [tmp_path / name for name in sources]
    trees = parse_files(paths)
    assert list(trees) == paths
    assert [ast.dump(tree) for tree in trees.values()] == [ast.dump(ast.parse(s)) for s in sources.values()]
    (tmp_path / "c.py").write_text("import numpy\n")
    assert ast.dump(parse_files(paths)[tmp_path / "c.py"]) == ast.dump(ast.parse("import numpy\n"))


@pytest.mark.unit
def test_a_syntax_error_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    with pytest.raises(SyntaxError, match=r"broken\.py"):
        parse_files([tmp_path / "ok.py", tmp_path / "broken.py"])


@pytest.mark.unit
def test_a_thread_formatting_tracebacks_meanwhile_changes_nothing() -> None:
    """The thread parses each traceback's line (3.11's ``traceback`` does), the race that failed CI in-process."""
    stop = threading.Event()

    def format_tracebacks() -> None:
        while not stop.is_set():
            try:
                _ = {"present": 1}["missing"]
            except KeyError:
                traceback.format_exc()

    thread = threading.Thread(target=format_tracebacks, daemon=True)
    thread.start()
    try:
        paths = sorted((Path(__file__).resolve().parents[2] / "ma_ray" / "serving").rglob("*.py"))
        trees = parse_files(paths)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert len(trees) == len(paths) and all(isinstance(tree, ast.Module) for tree in trees.values())
