"""Parse Python files for the tests that read the tree's imports, in a child interpreter with one thread.

On 3.11 (CI runs 3.11.7) the AST constructor keeps its recursion depth in interpreter-wide state, so a parse
racing another thread's parse can raise ``SystemError: AST constructor recursion depth mismatch`` (reproduced here
with a second thread formatting tracebacks; see python/cpython#106905 and pytest-dev/pytest#10763).
Any thread that formats a traceback parses (``traceback`` does, to place its carets), and the test session's Ray,
driver and service threads log exceptions; a child that only parses has no other thread, and the trees come back
pickled. A file's tree is kept while its size and mtime stand, since the surface checks read it once per package."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PARSE_EACH_LINE = (
    "import ast, pickle, sys\n"
    "paths = sys.stdin.read().splitlines()\n"
    "trees = [ast.parse(open(path, encoding='utf-8').read(), path) for path in paths]\n"
    "sys.stdout.buffer.write(pickle.dumps(trees))\n"
)


_parsed: dict[tuple[Path, int, int], ast.Module] = {}


def parse_files(paths: Sequence[Path]) -> dict[Path, ast.Module]:
    """Each file's module tree, parsed by a fresh single-threaded interpreter; a syntax error fails the call."""
    keys = {path: (path, path.stat().st_mtime_ns, path.stat().st_size) for path in paths}
    unparsed = [path for path, key in keys.items() if key not in _parsed]
    if unparsed:
        _parsed.update(zip((keys[path] for path in unparsed), _parse_in_child(unparsed), strict=True))
    return {path: _parsed[keys[path]] for path in paths}


def _parse_in_child(paths: Sequence[Path]) -> list[ast.Module]:
    child = subprocess.run(
        [sys.executable, "-c", PARSE_EACH_LINE],
        input="\n".join(str(path) for path in paths).encode(),
        capture_output=True,
        check=False,
    )
    if child.returncode != 0:
        raise SyntaxError(child.stderr.decode(errors="replace").strip())  # the child's traceback names the file
    trees: list[ast.Module] = pickle.loads(child.stdout)
    return trees
