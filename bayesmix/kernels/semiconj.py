"""Semi-conjugate Gaussian kernels with a hierarchical scale, for the blocked and telescoping
Gibbs samplers (numba; arrays in, arrays out).

The prior (Fruehwirth-Schnatter's parametrisation, as in the R package telescope;
Fruehwirth-Schnatter, Malsiner-Walli & Gruen 2021, Bayesian Analysis 16, Sec. 4), on D features:

    mu_k ~ N(b0, B0),  B0 = diag(B0_d),             independent of Sigma_k,
    Sigma_k^{-1} ~ W(c0, C0),                        density  |Q|^{c0-(D+1)/2} exp(-tr(C0 Q)),
    C0 ~ W(g0, G0),  G0 = diag(G0_d)                 (hierarchical scale; or C0 fixed).

W(c, C) in this parametrisation is the standard Wishart with 2c degrees of freedom and scale
matrix (2C)^{-1}, so Sigma_k ~ IW(2 c0, 2 C0). In one dimension it is Richardson & Green's
(1997, JRSS-B 59, Sec. 2.2) prior: sigma_k^{-2} ~ Gamma(alpha = c0, beta = C0) and
beta ~ Gamma(g = g0, h = G0). Diagonal kernels (``fam = niw.DIAG``) apply the 1-D prior to every feature
independently (C0 diagonal).

Full conditionals, with n_k points, mean xbar_k and scatter S_k of component k:

    Sigma_k | mu_k, z   ~ IW(2 c0 + n_k, 2 C0 + S_k + n_k (xbar_k - mu_k)(xbar_k - mu_k)^T),
    mu_k | Sigma_k, z   ~ N(P^{-1} (B0^{-1} b0 + n_k Sigma_k^{-1} xbar_k), P^{-1}),
                          P = B0^{-1} + n_k Sigma_k^{-1},
    C0 | Sigma_1..K     ~ W(g0 + K c0, G0 + sum_k Sigma_k^{-1})   (K: every component of the
                          model: the truncation T for blocked samplers, K for the telescoping one).

``hs = [c0, g0, hierarchical (1/0), b0_1..b0_D, B0_1..B0_D, G0_1..G0_D]`` (``layout``).
The chain carries C0 as a (D, D) array (diagonal for diagonal kernels).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from bayesmix.errors import InputError
from bayesmix.kernels.niw import FULL, bartlett_factor, draw_iw_chol, draw_params_all
from bayesmix.numerics.linalg import chol_lower, gram, tri_inv_lower
from bayesmix.spec import KernelSpec

CONJUGATE = 0
SEMI_CONJUGATE = 1


class SemiHyper(NamedTuple):
    """The semi-conjugate hyperparameters on the standardised scale (module docstring):
    B0 and G0 are the diagonals of B0 and G0 (``data_hyper``)."""

    c0: float
    g0: float
    hierarchical: bool
    b0: np.ndarray  # (D,)
    B0: np.ndarray  # (D,)  # noqa: N815 (the literature's names)
    G0: np.ndarray  # (D,)  # noqa: N815

    def packed(self) -> np.ndarray:
        """The ``hs`` array of the numba kernels (``layout``)."""
        return layout(self.c0, self.g0, self.hierarchical, self.b0, self.B0, self.G0)


def data_hyper(kern: KernelSpec, x: np.ndarray) -> SemiHyper:
    """The data-scaled semi-conjugate hyperparameters (``KernelSpec`` docstring) of standardised
    data x (N, D): b0 = midrange or median, B0 = mean_var * R_d^2, G0 = G0 / R_d^2, R_d the
    range (R_d = 1 and b0 = m0 if not ``kernel.data_scaled``). One function for the Gibbs
    engines and the PyMC graph, so that they run the same prior."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    c0, g0, g, centre = kern.semi_defaults(d)
    lo, hi = x.min(axis=0), x.max(axis=0)
    if kern.data_scaled:
        r = hi - lo
        r = np.where(r > 0, r, 1.0)  # a constant feature: unit range (standardised data)
        b0 = 0.5 * (lo + hi) if centre == "midrange" else np.median(x, axis=0)
    else:
        r, b0 = np.ones(d), np.full(d, float(kern.m0))
    if not 2.0 * c0 > d - 1:
        raise InputError(
            f"kernel.c0 must be > (D - 1) / 2 = {(d - 1) / 2} in {d} dimensions, got {c0}"
        )
    full = d > 1 and kern.covariance == "full"
    if full and kern.scale == "hierarchical" and not 2.0 * g0 > d - 1:
        raise InputError(
            f"kernel.g0 must be > (D - 1) / 2 = {(d - 1) / 2} in {d} dimensions for the "
            f"Wishart prior on C0, got {g0}"
        )
    return SemiHyper(
        float(c0), float(g0), kern.scale == "hierarchical", b0, kern.mean_var * r**2, g / r**2
    )


def layout(c0: float, g0: float, hierarchical: bool, b0, bvar, g0_rate) -> np.ndarray:
    """Pack the hyperparameters into the ``hs`` array of the numba kernels."""
    b0, bvar, g0_rate = (np.asarray(v, dtype=np.float64).ravel() for v in (b0, bvar, g0_rate))
    head = np.array([c0, g0, 1.0 if hierarchical else 0.0])
    return np.concatenate([head, b0, bvar, g0_rate])


def unpack(hs: np.ndarray, d: int) -> dict[str, np.ndarray]:
    """The named hyperparameters of an ``hs`` array (standardised scale)."""
    return {
        "c0": hs[0:1],
        "g0": hs[1:2],
        "hierarchical": hs[2:3],
        "b0": hs[3 : 3 + d],
        "B0_diag": hs[3 + d : 3 + 2 * d],
        "G0_diag": hs[3 + 2 * d : 3 + 3 * d],
    }


def initial_scale(hs: np.ndarray, d: int) -> np.ndarray:
    """C0 at its prior mean E[C0] = g0 G0^{-1} (the fixed C0 when the scale is not learned)."""
    g0 = hs[1]
    return np.diag(g0 / hs[3 + 2 * d : 3 + 3 * d])


@njit(cache=True, nogil=True)
def draw_params_semi(kk, cnt, xbar, scat, hs, fam, mu, lc, c0m):
    """One Gibbs scan over the kernel parameters of components 0..kk-1 (module docstring):
    Sigma_k | mu_k, then mu_k | Sigma_k (empty components: from the prior), then C0 | Sigma
    if the scale is hierarchical. mu and lc (chol Sigma) hold the current values and are
    overwritten; c0m is C0, updated in place."""
    d = mu.shape[1]
    c0, g0, hier = hs[0], hs[1], hs[2] > 0.5
    b0 = hs[3 : 3 + d]
    bv = hs[3 + d : 3 + 2 * d]
    gr = hs[3 + 2 * d : 3 + 3 * d]
    if fam != FULL:  # diagonal (SPHERICAL is refused by the driver)
        _scan_diag(kk, cnt, xbar, scat, c0, g0, hier, b0, bv, gr, mu, lc, c0m)
        return
    psi = np.empty((d, d))
    wl = np.empty((d, d))
    wa = np.empty((d, d))
    wb = np.empty((d, d))
    wc = np.empty((d, d))
    qsum = np.zeros((d, d))
    eps = np.empty(d)
    rhs = np.empty(d)
    for k in range(kk):
        n = cnt[k]
        # Sigma_k | mu_k ~ IW(2 c0 + n, 2 C0 + S_k(mu_k))
        for a in range(d):
            for b in range(d):
                v = 2.0 * c0m[a, b]
                if n > 0:
                    v += scat[k, a, b] + n * (xbar[k, a] - mu[k, a]) * (xbar[k, b] - mu[k, b])
                psi[a, b] = v
        chol_lower(psi, wl)
        draw_iw_chol(wl, 2.0 * c0 + n, wa, wb, wc, psi)  # psi <- chol(Sigma_k)
        for a in range(d):
            for b in range(d):
                lc[k, a, b] = psi[a, b]
        # Q = Sigma^{-1} = L^{-T} L^{-1}
        tri_inv_lower(psi, wa)  # wa = L^{-1}
        for a in range(d):
            for b in range(a + 1):
                t = 0.0
                for e in range(a, d):
                    t += wa[e, a] * wa[e, b]
                wb[a, b] = t
                wb[b, a] = t
        for a in range(d):
            for b in range(d):
                qsum[a, b] += wb[a, b]
        # mu_k | Sigma_k ~ N(P^{-1} (B0^{-1} b0 + n Q xbar), P^{-1}), P = B0^{-1} + n Q
        for a in range(d):
            t = b0[a] / bv[a]
            if n > 0:
                for b in range(d):
                    t += n * wb[a, b] * xbar[k, b]
            rhs[a] = t
            for b in range(d):
                wc[a, b] = n * wb[a, b]
            wc[a, a] += 1.0 / bv[a]
        chol_lower(wc, wl)  # P = Lp Lp^T
        for a in range(d):  # forward: Lp y = rhs
            t = rhs[a]
            for b in range(a):
                t -= wl[a, b] * eps[b]
            eps[a] = t / wl[a, a]
        for a in range(d):  # eps <- y + N(0, I)
            eps[a] += np.random.standard_normal()
        for a in range(d - 1, -1, -1):  # backward: Lp^T mu = eps
            t = eps[a]
            for b in range(a + 1, d):
                t -= wl[b, a] * mu[k, b]
            mu[k, a] = t / wl[a, a]
    if not hier:
        return
    # C0 | Sigma ~ W_FS(g0 + kk c0, G0 + sum Q_k) = W(2 (g0 + kk c0), (2 (G0 + sum Q_k))^{-1})
    shape = g0 + kk * c0
    for a in range(d):
        for b in range(d):
            psi[a, b] = 2.0 * qsum[a, b]
        psi[a, a] += 2.0 * gr[a]
    chol_lower(psi, wl)  # 2 (G0 + sum Q) = L L^T, so V = L^{-T} L^{-1} = R R^T with R = L^{-T}
    tri_inv_lower(wl, wa)
    for a in range(d):
        for b in range(d):
            wb[a, b] = wa[b, a]
    _draw_wishart(2.0 * shape, wb, wc, psi, c0m)


@njit(cache=True, nogil=True)
def _scan_diag(kk, cnt, xbar, scat, c0, g0, hier, b0, bv, gr, mu, lc, c0m):
    """``draw_params_semi`` for diagonal (and 1-D) kernels, feature by feature:
    tau_kd | mu ~ Gamma(c0 + n/2, C0_d + S_kd(mu)/2), mu_kd | tau ~ N, then
    C0_d ~ Gamma(g0 + kk c0, G0_d + sum_k tau_kd). No work arrays."""
    d = mu.shape[1]
    for a in range(d):
        qs = 0.0
        for k in range(kk):
            n = cnt[k]
            for b in range(d):
                lc[k, a, b] = 0.0
            dm = xbar[k, a] - mu[k, a]
            ss = scat[k, a, a] + n * dm * dm if n > 0 else 0.0
            prec = np.random.gamma(c0 + 0.5 * n, 1.0) / (c0m[a, a] + 0.5 * ss)
            lc[k, a, a] = 1.0 / math.sqrt(prec)
            qs += prec
            p = 1.0 / bv[a] + n * prec
            mn = (b0[a] / bv[a] + n * prec * xbar[k, a]) / p if n > 0 else b0[a]
            mu[k, a] = mn + np.random.standard_normal() / math.sqrt(p)
        if hier:
            c0m[a, a] = np.random.gamma(g0 + kk * c0, 1.0) / (gr[a] + qs)


@njit(cache=True, nogil=True)
def _draw_wishart(df, r, a, m, out):
    """out = Q ~ W(df, V) for any square root r of V (V = r r^T): Q = r A A^T r^T (Bartlett)."""
    d = r.shape[0]
    bartlett_factor(df, a)
    for i in range(d):  # m = r A
        for j in range(d):
            t = 0.0
            for k in range(j, d):
                t += r[i, k] * a[k, j]
            m[i, j] = t
    gram(m, out)


@njit(cache=True, nogil=True)
def start_means(kk, cnt, xbar, hs, mu):
    """Initial mu_k: the component mean where occupied, b0 where empty (the semi-conjugate
    scan draws Sigma_k given mu_k first)."""
    d = mu.shape[1]
    for k in range(kk):
        for a in range(d):
            mu[k, a] = xbar[k, a] if cnt[k] > 0 else hs[3 + a]


@njit(cache=True, nogil=True)
def draw_kernel_params(kern, kk, cnt, xbar, scat, hyp, hs, c0m, fam, mu, lc, ws, start):
    """theta_k | z for k < kk under the kernel ``kern``: CONJUGATE (NIW/NIG, ``hyp``, independent
    draws from the conditional posterior) or SEMI_CONJUGATE (``hs``, one Gibbs scan; at the
    ``start`` of a chain the means begin at the component means). ws: five (D, D) work arrays."""
    if kern == SEMI_CONJUGATE:
        if start:
            start_means(kk, cnt, xbar, hs, mu)
        draw_params_semi(kk, cnt, xbar, scat, hs, fam, mu, lc, c0m)
    else:
        draw_params_all(kk, cnt, xbar, scat, hyp, fam, mu, lc, ws[0], ws[1], ws[2], ws[3], ws[4])
