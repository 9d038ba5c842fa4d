"""compare over kernel priors: models/compare_kernel loads as a folder (by name or path), and the
reading names the kernel prior when only the kernel varies."""

from __future__ import annotations

from bayesmix.compare import load_specs, varied_prior
from bayesmix.spec import MODELS_DIR


def test_compare_kernel_folder_loads_by_name_and_path():
    by_name = load_specs(["compare_kernel"])
    by_path = load_specs([MODELS_DIR / "compare_kernel"])
    assert [s.name for s in by_name] == [s.name for s in by_path]
    assert len(by_name) == 4
    assert len({str(s.mixing) for s in by_name}) == 1  # one mixing ...
    assert len({str(s.kernel) for s in by_name}) == 4  # ... under four kernel priors
    assert {s.kernel.prior for s in by_name} == {"conjugate", "semi_conjugate"}


def test_varied_prior_names_what_differs():
    a = {"mixing": {"type": "mfm"}, "kernel": {"b0": 0.25}}
    b = {"mixing": {"type": "mfm"}, "kernel": {"b0": 0.025}}
    c = {"mixing": {"type": "dp"}, "kernel": {"b0": 0.25}}
    assert varied_prior([a, b]) == "kernel prior"
    assert varied_prior([a, c]) == "mixing prior"
    assert varied_prior([b, c]) == "prior"
    assert varied_prior([a]) == "prior"
    assert varied_prior([{"name": "x"}, {"name": "y"}]) == "prior"
