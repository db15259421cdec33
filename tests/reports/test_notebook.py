"""reports/drift_analysis.ipynb runs headless (nbclient) on the example week and draws."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support.reports import NOW

NOTEBOOK = Path(__file__).resolve().parents[2] / "reports" / "drift_analysis.ipynb"


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec running this interpreter (the venv's), found first on JUPYTER_PATH."""
    name = "vault-drift-test"
    folder = tmp_path / "jupyter" / "kernels" / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vault-drift tests",
        "language": "python",
        "env": {"PYTHONPATH": str(NOTEBOOK.parents[1])},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    return name


def test_notebook_runs_and_draws(history_db: Path, venv_kernel: str) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = f'db_path = {str(history_db)!r}\nperiod = "7d"\nnow = {NOW.isoformat()!r}'

    client = NotebookClient(notebook, kernel_name=venv_kernel, timeout=60,
                            resources={"metadata": {"path": str(NOTEBOOK.parents[1])}})  # fmt: skip
    client.execute()

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 2
    assert any("Drift digest (weekly)" in o.get("text", "") for o in outputs)
