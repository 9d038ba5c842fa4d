"""Random-walk Metropolis-Hastings on a log scale for the mixing hyperparameters: steps per sweep, target acceptance and the burn-in adaptation of the step."""

from __future__ import annotations

import math

from numba import njit

MH_STEPS = 5
MH_TARGET = 0.44


@njit(cache=True, nogil=True)
def mh_record(state, slot, it, tune, logratio, accept):
    """Book-keeping of one MH step of the parameter whose log step is state[slot]: during
    burn-in, Robbins-Monro adaptation of the log step towards MH_TARGET acceptance; after it,
    count proposals (state[slot + 2]) and acceptances (state[slot + 1])."""
    if it < tune:
        p = 1.0 if logratio >= 0.0 else math.exp(logratio)
        state[slot] += (p - MH_TARGET) / (it + 1.0) ** 0.6
        state[slot] = min(max(state[slot], -8.0), 3.0)
    else:
        state[slot + 2] += 1.0
        if accept:
            state[slot + 1] += 1.0
