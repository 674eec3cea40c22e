"""The notebooks run top to bottom (``jupyter nbconvert --execute``) in quick mode and draw their
figures; the committed files carry no outputs.

Both notebooks execute at once (each is mostly JAX compile time). They write into a temporary
folder: ``JAXNAS_NOTEBOOK_OUT`` for runs and figures, ``JAXNAS_STUDY_DIR`` for the study, which
is empty so that ``transfer_study.ipynb`` runs its own tiny study.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart", "transfer_study")
DATA = REPO.parent / "shared" / "data" / "transnas-bench-101"
PNG = b"\x89PNG\r\n\x1a\n"


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in _code(nb) for o in c.outputs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    if shutil.which("jupyter") is None:
        pytest.skip("jupyter is not installed (pip install -e .[dev])")
    if not (DATA / "micro.csv").is_file():
        pytest.fail(f"the shared TransNAS-Bench-101 tables are not at {DATA}")
    tmp = tmp_path_factory.mktemp("notebooks")
    env = dict(os.environ)
    env.update(JAXNAS_NOTEBOOK_QUICK="1", JAXNAS_NOTEBOOK_OUT=str(tmp / "out"),
               JAXNAS_STUDY_DIR=str(tmp / "study"), JAXNAS_DATA=str(DATA),
               # The kernel must import this checkout's jaxnas, whatever `pip install -e` points at.
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--ExecutePreprocessor.timeout=600", "--output-dir", str(tmp / "executed"),
             str(NOTEBOOKS / f"{name}.ipynb")],
            cwd=NOTEBOOKS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in NAMES
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        path = tmp / "executed" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4) if path.is_file() else None
        out[name] = (proc.returncode, stderr, nb)
    return tmp, out


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_have_no_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in _code(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.parametrize("name", NAMES)
def test_colab_install_and_quick_mode_come_first(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c.source for c in _code(nb)]
    assert 'if "google.colab" in sys.modules:' in code[0]
    assert '!pip install -q "git+https://github.com/' in code[0]
    # The XLA flag only works if it is set before the first cell that imports jax or jaxnas.
    first_import = next(i for i, s in enumerate(code) if "import jax" in s or "from jaxnas" in s)
    quick = next(i for i, s in enumerate(code) if "JAXNAS_NOTEBOOK_QUICK" in s)
    assert quick < first_import and "xla_backend_optimization_level=0" in code[quick]


def test_quickstart_runs_and_plots(executed):
    tmp, out = executed
    rc, stderr, nb = out["quickstart"]
    assert rc == 0, stderr[-3000:]
    assert not [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    assert _images(nb) >= 1
    assert "transnas-bench_v10141024.pth" in "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    run = tmp / "out" / "quickstart-tiny"
    assert (run / "curves.png").read_bytes()[:8] == PNG
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["preset"] == "tiny"
    assert set(results["regimes"]) == {"scratch", "zero_shot", "finetune", "retrain"}


def test_transfer_study_runs_a_tiny_study_and_draws_it(executed):
    tmp, out = executed
    rc, stderr, nb = out["transfer_study"]
    assert rc == 0, stderr[-3000:]
    assert not [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    assert _images(nb) >= 3  # heatmap, curves grid, gains
    study = json.loads((tmp / "study" / "study.json").read_text())
    assert study["complete"] and study["study"]["preset"] == "tiny" and study["runs_total"] == 2
    for f in ("heatmap.png", "curves_grid.png"):
        assert (tmp / "study" / f).read_bytes()[:8] == PNG
        assert (tmp / "out" / "study-figures" / f).read_bytes()[:8] == PNG
    assert (tmp / "out" / "study-figures" / "gains.png").read_bytes()[:8] == PNG
    markdown = "".join(o["data"].get("text/markdown", "") for c in _code(nb) for o in c.outputs
                       if o.output_type == "display_data")
    assert "Which pairs gain from pretraining" in markdown
