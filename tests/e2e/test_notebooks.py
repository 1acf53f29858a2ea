"""Every notebook in notebooks/ runs top to bottom without an error, on embedded defaults, and draws its plots."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    plotting = [cell for cell in notebook.cells if cell.cell_type == "code" and "plt.show()" in cell.source]
    images = [cell for cell in plotting if any("image/png" in o.get("data", {}) for o in cell.outputs)]
    assert len(images) == len(plotting)


def test_the_quickstart_is_there() -> None:
    assert "quickstart.ipynb" in {path.name for path in NOTEBOOKS}
