"""Golden test: the Gibbs engines give bit-identical draws for today's specs (DP and finite;
fixed and random concentration; 1-D NIG, full NIW and diagonal kernels; collapsed and blocked)
as the reference recorded in ``tests/golden/gibbs_golden.npz`` by ``tests/golden/gibbs_cases.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.golden.gibbs_cases import GOLDEN, cases, run

CASES = cases()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_draws_are_bit_identical(name, golden):
    spec, x, algorithm = CASES[name]
    got = run(spec, x, algorithm)
    keys = sorted(k.split("/", 1)[1] for k in golden if k.startswith(name + "/"))
    assert keys == sorted(got), (keys, sorted(got))
    for key in keys:
        np.testing.assert_array_equal(got[key], golden[f"{name}/{key}"], err_msg=f"{name} {key}")
