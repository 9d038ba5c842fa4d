"""The README's Python API as a plain script: no ``if __name__ == "__main__":`` guard needed.

Chains run in threads (nogil numba kernels), so nothing is pickled and no process is spawned;
a 5,000-row file is large enough that the former process pool would have been used.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix.data import dataset_path

SCRIPT = """
import bayesmix

result = bayesmix.fit({path!r}, "sparse_finite", seed=1, draws=150, tune=100, progress=False)
print("MODE", result.summary["n_clusters"]["mode"])
print("WORKERS", result.run["engine"]["workers"], result.run["engine"]["start_method"])
"""


def _big_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    n = 5000
    lab = rng.integers(0, 2, n)
    x = np.array([[-4.0, 0.0], [4.0, 1.0]])[lab] + rng.normal(size=(n, 2))
    path = tmp_path / "big.csv"
    pd.DataFrame(x, columns=["a", "b"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("which", ["faithful", "big"])
def test_readme_api_runs_as_a_script_without_main_guard(which, tmp_path):
    path = dataset_path("faithful") if which == "faithful" else _big_csv(tmp_path)
    script = tmp_path / "analysis.py"
    script.write_text(textwrap.dedent(SCRIPT.format(path=str(path))))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MODE" in p.stdout
    workers = p.stdout.split("WORKERS", 1)[1].split()
    assert workers[1] == "threads" and int(workers[0]) >= 1
    if which == "big":
        assert p.stdout.split("MODE", 1)[1].split()[0] == "2"


def test_python_dash_c(tmp_path):
    code = SCRIPT.format(path=str(dataset_path("galaxies")))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MODE" in p.stdout
