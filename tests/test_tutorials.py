"""Every tutorial notebook runs top to bottom (in quick mode) without a cell error.

Each notebook is executed with nbclient in a fresh `python3` kernel (ipykernel from this
environment), with `tutorials/` as the working directory and `KERAS_NAS_QUICK=1`, which makes
every notebook use tiny settings. The repository root is put first on the kernel's
`PYTHONPATH`, so the notebooks import this checkout's `keras_nas` whether or not it is
installed.
"""

import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def kernel_env(tmp_dir=None):
    env = dict(os.environ)
    if tmp_dir is not None:  # the notebooks' tempfile.mkdtemp() folders land here
        env["TMPDIR"] = str(tmp_dir)
    env["KERAS_NAS_QUICK"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return env


def execute(path, tmp_dir=None):
    """Runs the notebook at `path`; returns the executed notebook (outputs included)."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    # `env` goes to the kernel manager's start_kernel: the kernel process's environment.
    client.execute(env=kernel_env(tmp_dir))
    return nb


def test_there_are_tutorials():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 6, names
    assert "01_quickstart.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), (
        f"{path.name} was committed with outputs; clear them first")
    assert 'os.environ.get("KERAS_NAS_QUICK") == "1"' in code[0].source, (
        f"{path.name}: the first code cell must read the quick-mode switch")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    before = set(TUTORIALS.rglob("*"))
    start = time.perf_counter()
    try:
        nb = execute(path, tmp_path)
    except nbclient.exceptions.CellExecutionError as e:  # the failing cell's traceback
        pytest.fail(f"{path.name} failed:\n{e}", pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s", file=sys.stderr)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "not every cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # Quick mode is on inside the kernel (the first cell prints it).
    first = "".join(o.get("text", "") for o in code[0].outputs if o.output_type == "stream")
    assert "quick mode: True" in first, first
    # Notebooks write only to their temporary folder, never beside themselves (their working
    # directory). The rest of the tree is not watched: other work may change it meanwhile.
    new = sorted(str(p) for p in set(TUTORIALS.rglob("*")) - before)
    assert not new, f"{path.name} wrote into tutorials/: {new[:10]}"
