"""The mixings known to the compiled samplers: one integer code each, and the dispatch from
that code to the mixing's module. Adding a mixing means its module plus one line in each of
these functions (and one line in ``bayesmix/mixings/__init__.py``'s table).

The chain state every mixing shares (float array): [concentration (alpha | gamma | theta),
its log MH step, accepted, proposed, accepted split-merge moves, discount (PY), its log MH
step, accepted, proposed, K (MFM), the conjugate kernel's scale psi0 when it has a prior
(``SCALE_SLOT``; 0 otherwise)]. ``hp`` holds the hyperprior: [concentration fixed (1/0),
its prior's a, b, discount fixed (1/0), c, d, prior family of the concentration (0 Gamma,
1 F)].
"""

from __future__ import annotations

import math

from numba import njit

from bayesmix.mixings import dp, finite, mfm, pitman_yor, sticks

DP, FINITE, PITMAN_YOR, MFM, MFM_DYNAMIC = 0, 1, 2, 3, 4
STATE_SIZE = 11
K_SLOT = mfm.K_SLOT
SCALE_SLOT = 10


@njit(cache=True, nogil=True)
def is_mfm(kind):
    """Whether the mixing carries K, the number of components, in state[K_SLOT]."""
    return kind == MFM or kind == MFM_DYNAMIC


@njit(cache=True, nogil=True)
def sigma_of(kind, state):
    """The Gibbs-type index sigma: existing clusters weigh n_j - sigma."""
    if kind == PITMAN_YOR:
        return state[pitman_yor.DISCOUNT]
    if kind == FINITE or kind == MFM:
        return -state[0]
    if kind == MFM_DYNAMIC:
        return -mfm.gamma_of(state[0], state[K_SLOT], True)
    return 0.0


@njit(cache=True, nogil=True)
def urn_r(kind, t, state, kfin, n, logpk, vtab):
    """log of the new-cluster weight in a collapsed sweep with t occupied clusters."""
    if kind == DP:
        return dp.urn_r(t, state[0])
    if kind == FINITE:
        return finite.urn_r(t, state[0], kfin)
    if kind == PITMAN_YOR:
        return pitman_yor.urn_r(t, state[0], state[pitman_yor.DISCOUNT])
    if kind == MFM_DYNAMIC:  # given K: the finite Dirichlet(alpha / K) urn
        return finite.urn_r(t, mfm.gamma_of(state[0], state[K_SLOT], True), int(state[K_SLOT]))
    return mfm.urn_r(t, state[0], n, logpk, vtab)


@njit(cache=True, nogil=True)
def split_merge_constants(kind, state):
    """(labelled, c1): the split/merge prior ratio is exp(r) Γ(n_A - s) Γ(n_B - s) /
    (Γ(n_A + n_B - s) exp(c1)) with r the urn's log new-cluster weight and c1 = log Γ(1 - s),
    except for the finite mixture's labelled slots, where r = 0, c1 = log Γ(gamma) and the
    proposal picks one of the empty slots (the same ratio, written as before the rewrite)."""
    if kind == FINITE:
        return True, math.lgamma(state[0])
    return False, math.lgamma(1.0 - sigma_of(kind, state))


@njit(cache=True, nogil=True)
def collapsed_update(kind, state, hp, it, tune, cnt, act, nact, n, kfin, logpk):
    """The mixing's hyperparameters given the partition (one sweep's worth of updates)."""
    if kind == DP:
        state[0] = dp.escobar_west(state[0], nact, n, hp[1], hp[2])
    elif kind == FINITE:
        state[0] = finite.collapsed_update(state, cnt, act, nact, kfin, n, hp[1], hp[2], it, tune)
    elif kind == PITMAN_YOR:
        pitman_yor.collapsed_update(state, hp, it, tune, cnt, act, nact, n)
    elif kind == MFM_DYNAMIC:
        mfm.collapsed_update_dynamic(state, hp, it, tune, cnt, act, nact, n, logpk)
    else:
        mfm.collapsed_update(state, hp, it, tune, cnt, act, nact, n, logpk)


@njit(cache=True, nogil=True)
def blocked_weights(kind, cnt, state, lv, l1v, logw):
    """w | z for a blocked sampler: Dirichlet (finite) or truncated sticks (DP, Pitman-Yor)."""
    if kind == FINITE:
        finite.blocked_weights(cnt, state[0], logw)
    else:
        sticks.stick_weights(cnt, state[0], sigma_of(kind, state), lv, l1v, logw)


@njit(cache=True, nogil=True)
def hyper_given_counts(kind):
    """Whether a blocked sampler updates the mixing's hyperparameters | z with the weights
    integrated out (``blocked_update_counts``, before the weights | z) rather than | weights
    (``blocked_update``, after them)."""
    return kind == PITMAN_YOR


@njit(cache=True, nogil=True)
def blocked_update_counts(kind, state, hp, it, tune, z, cnt, mu, lc, lab_of, old_of):
    """Moves on the labelled allocations and the mixing's hyperparameters, weights integrated
    out (Pitman-Yor: ``pitman_yor.blocked_update``); returns whether z was relabelled."""
    if kind == PITMAN_YOR:
        return pitman_yor.blocked_update(state, hp, it, tune, z, cnt, mu, lc, lab_of, old_of)
    return False


@njit(cache=True, nogil=True)
def blocked_update(kind, state, hp, it, tune, logw, lv, l1v):
    """The mixing's hyperparameters given the weights of a blocked sampler (DP: alpha | v;
    finite: gamma | w)."""
    if kind == DP:
        state[0] = dp.blocked_update(state, l1v, hp[1], hp[2])
    elif kind == FINITE:
        state[0] = finite.blocked_update(state, logw, hp[1], hp[2], it, tune)
