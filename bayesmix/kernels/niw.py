"""Conjugate Gaussian kernels for the Gibbs engines (numba; arrays in, arrays out).

``hyp = [m0, kappa0, nu0, psi0]`` is a Normal-Inverse-Wishart prior on the standardised scale:
Sigma ~ IW(nu0, psi0 I), mu | Sigma ~ N(m0 1, Sigma / kappa0). The 1-D Normal-Inverse-Gamma
prior sigma^2 ~ IG(a0, b0) is the same family with nu0 = 2 a0 and psi0 = 2 b0. The covariance
family ``fam`` (an integer; a bool is read as full / diag) is

  FULL (0)       Sigma ~ IW(nu0, psi0 I);
  DIAG (1)       the 1-D NIG independently for every feature: Sigma = diag(sigma_d^2);
  SPHERICAL (2)  one NIG variance shared by the D features: Sigma = sigma^2 I,
                 sigma^2 ~ IG(nu0/2, psi0/2), mu | sigma^2 ~ N(m0 1, sigma^2 / kappa0 I).

With n points, mean xbar and scatter S:

    kappa_n = kappa0 + n,  nu_n = nu0 + n,  m_n = (kappa0 m0 + n xbar) / kappa_n,
    Psi_n = Psi0 + S + kappa0 n / kappa_n (xbar - m0)(xbar - m0)^T,

(SPHERICAL: nu_n = nu0 + n D and the scalar Psi_n = psi0 + tr(S) + kappa0 n / kappa_n
|xbar - m0|^2, i.e. a_n = a0 + n D / 2, b_n = Psi_n / 2), and the posterior predictive of a new
point is the multivariate Student-t t_{nu_n - D + 1}(m_n, Psi_n (kappa_n + 1) / (kappa_n
(nu_n - D + 1))) (DIAG: a product of univariate t's with df nu_n; SPHERICAL: the D-variate
t_{nu_n}(m_n, Psi_n (kappa_n + 1) / (kappa_n nu_n) I), Murphy 2007, sec. 9, with the D
features as iid observations sharing sigma^2).

Component parameters are stored as (mu, L) with L the lower Cholesky factor of Sigma (DIAG and
SPHERICAL kernels: L = diag(sigma_d)). The collapsed sampler keeps per-cluster predictive state
(the ``cl_*`` functions): cnt, the posterior mean, scl (full: lower Cholesky factor of Psi_n;
diag: Psi_n,dd on the diagonal; spherical: the scalar Psi_n in scl[k, 0, 0], zeros elsewhere)
and cached predictive constants
  full:      log t(x) = cst_k - p_n log1p(q_k0 |L^{-1}(x - m_n)|^2),  q_k0 = kappa_n/(kappa_n + 1)
  diag:      log t(x) = cst_k - p_n sum_d log1p(q_kd (x_d - m_nd)^2),
             q_kd = kappa_n/((kappa_n + 1) Psi_n,dd)
  spherical: log t(x) = cst_k - p_n log1p(q_k0 |x - m_n|^2),  q_k0 = kappa_n/((kappa_n + 1) Psi_n)
with p_n = (nu_n + 1)/2 (spherical: (nu_n + D)/2) and cst_k = tc[n] - sum_d log L_dd (full),
tc[n] - 1/2 sum_d log Psi_dd (diag) or tc[n] - D/2 log Psi_n (spherical).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.numerics.linalg import chol_downdate, chol_lower, chol_update, gram, tri_inv_lower

LOG_PI = math.log(math.pi)
LOG_2PI = math.log(2.0 * math.pi)
NEG_INF = -np.inf
# covariance families (the ``fam`` argument)
FULL = 0
DIAG = 1
SPHERICAL = 2


def family_code(covariance: str, d: int) -> int:
    """The ``fam`` code of ``kernel.covariance`` in d dimensions (1-D: every family is DIAG)."""
    if d == 1 or covariance == "diag":
        return DIAG
    if covariance == "spherical":
        return SPHERICAL
    if covariance == "full":
        return FULL
    raise ValueError(f"covariance must be 'full', 'diag' or 'spherical', got {covariance!r}")


@njit(cache=True, nogil=True)
def bartlett_factor(df, a):
    """a <- the Bartlett factor of W(df, I): lower, a_ii^2 ~ chi2(df - i), a_ij ~ N(0, 1)
    (i > j), so that a a^T ~ W(df, I)."""
    d = a.shape[0]
    for i in range(d):
        for j in range(d):
            a[i, j] = 0.0
        a[i, i] = math.sqrt(2.0 * np.random.gamma(0.5 * (df - i), 1.0))
        for j in range(i):
            a[i, j] = np.random.standard_normal()


@njit(cache=True, nogil=True)
def draw_iw_chol(c, nu, a, m, s, out):
    """out = chol(Sigma) for Sigma ~ IW(nu, c c^T), c lower, via Bartlett on Sigma^{-1}.

    Sigma^{-1} = c^{-T} A A^T c^{-1}, A lower with A_ii^2 ~ chi2(nu - i), A_ij ~ N(0, 1),
    so Sigma = (c A^{-T})(c A^{-T})^T.  a, m, s are (D, D) work arrays.
    """
    d = c.shape[0]
    bartlett_factor(nu, a)
    tri_inv_lower(a, m)  # m = A^{-1}
    # out <- B = c m^T (reuse out as scratch), then s = B B^T
    for i in range(d):
        for j in range(d):
            t = 0.0
            for k in range(min(i, j) + 1):
                t += c[i, k] * m[j, k]
            out[i, j] = t
    gram(out, s)
    chol_lower(s, out)


@njit(cache=True, nogil=True)
def niw_posterior(n, xbar, scatter, hyp, fam, m_out, psi_out):
    """Conditional-posterior hyperparameters from sufficient statistics.

    kappa_n = kappa0 + n, nu_n = nu0 + n, m_n = (kappa0 m0 + n xbar) / kappa_n,
    Psi_n = psi0 I + S + kappa0 n / kappa_n (xbar - m0)(xbar - m0)^T  (diagonal only if DIAG).
    SPHERICAL: nu_n = nu0 + n D and Psi_n = (psi0 + tr(S) + kappa0 n / kappa_n |xbar - m0|^2) I.
    Returns (kappa_n, nu_n); writes m_n, Psi_n.
    """
    m0, k0, nu0, psi0 = hyp[0], hyp[1], hyp[2], hyp[3]
    kn = k0 + n
    f = k0 * n / kn
    d = xbar.shape[0]
    for i in range(d):
        m_out[i] = (k0 * m0 + n * xbar[i]) / kn if n > 0 else m0
    if fam == SPHERICAL:
        v = psi0
        if n > 0:
            for i in range(d):
                v += scatter[i, i] + f * (xbar[i] - m0) ** 2
        for i in range(d):
            for j in range(d):
                psi_out[i, j] = v if i == j else 0.0
        return kn, nu0 + n * d
    for i in range(d):
        for j in range(d):
            if fam != FULL and i != j:
                psi_out[i, j] = 0.0
                continue
            v = f * (xbar[i] - m0) * (xbar[j] - m0) + scatter[i, j] if n > 0 else 0.0
            if i == j:
                v += psi0
            psi_out[i, j] = v
    return kn, nu0 + n


@njit(cache=True, nogil=True)
def nig_posterior(n, xbar, ss, m0, kappa0, a0, b0):
    """1-D Normal-Inverse-Gamma update: (m_n, kappa_n, a_n, b_n) from n, mean, scatter ss.

    a_n = a0 + n/2, b_n = b0 + ss/2 + kappa0 n (xbar - m0)^2 / (2 kappa_n).
    """
    hyp = np.array([m0, kappa0, 2.0 * a0, 2.0 * b0])
    xb = np.array([xbar])
    sc = np.array([[ss]])
    m = np.empty(1)
    psi = np.empty((1, 1))
    kn, nun = niw_posterior(n, xb, sc, hyp, DIAG, m, psi)
    return m[0], kn, 0.5 * nun, 0.5 * psi[0, 0]


@njit(cache=True, nogil=True)
def draw_params_all(kk, cnt, xbar, scat, hyp, fam, mu, lc, psi, wa, wb, wc, wl):
    """Draw (mu_k, Sigma_k), k < kk, from the NIW (NIG per feature if DIAG, one NIG variance if
    SPHERICAL) conditional posterior given n_k, xbar_k and scatter S_k (see niw_posterior);
    empty components draw from the prior.

    Sigma ~ IW(nu_n, Psi_n) (DIAG: sigma_d^2 ~ IG(nu_n/2, Psi_n,dd/2); SPHERICAL: Sigma =
    sigma^2 I, sigma^2 ~ IG((nu0 + n D)/2, Psi_n/2) with the scalar Psi_n), mu ~ N(m_n,
    Sigma/kappa_n).
    Writes mu[k] and lc[k] = chol(Sigma_k); psi, wa, wb, wc, wl are (D, D) work arrays.
    """
    m0, k0, nu0, psi0 = hyp[0], hyp[1], hyp[2], hyp[3]
    d = mu.shape[1]
    for k in range(kk):
        n = cnt[k]
        kn = k0 + n
        nun = nu0 + n
        f = k0 * n / kn
        if fam == SPHERICAL:
            v = psi0
            if n > 0:
                for a in range(d):
                    v += scat[k, a, a] + f * (xbar[k, a] - m0) ** 2
            sg = math.sqrt(v / (2.0 * np.random.gamma(0.5 * (nu0 + n * d), 1.0)))
            for a in range(d):
                for b in range(d):
                    lc[k, a, b] = 0.0
                lc[k, a, a] = sg
        elif fam == DIAG:
            for a in range(d):
                v = psi0
                if n > 0:
                    v += scat[k, a, a] + f * (xbar[k, a] - m0) ** 2
                for b in range(d):
                    lc[k, a, b] = 0.0
                lc[k, a, a] = math.sqrt(v / (2.0 * np.random.gamma(0.5 * nun, 1.0)))
        else:
            for a in range(d):
                for b in range(d):
                    v = psi0 if a == b else 0.0
                    if n > 0:
                        v += scat[k, a, b] + f * (xbar[k, a] - m0) * (xbar[k, b] - m0)
                    psi[a, b] = v
            chol_lower(psi, wl)
            draw_iw_chol(wl, nun, wa, wb, wc, psi)  # psi <- chol(Sigma)
            for a in range(d):
                for b in range(d):
                    lc[k, a, b] = psi[a, b]
        sk = 1.0 / math.sqrt(kn)
        for a in range(d):
            wa[0, a] = np.random.standard_normal()
        for a in range(d):
            t = 0.0
            for b in range(a + 1):
                t += lc[k, a, b] * wa[0, b]
            mn = (k0 * m0 + n * xbar[k, a]) / kn if n > 0 else m0
            mu[k, a] = mn + sk * t


@njit(cache=True, nogil=True)
def draw_params(n, xbar, scatter, hyp, fam, mu_out, l_out):
    """One (mu, chol Sigma) draw from the conditional posterior of n points (see draw_params_all)."""
    d = xbar.shape[0]
    cnt = np.full(1, n, np.int64)
    mu = np.empty((1, d))
    lc = np.empty((1, d, d))
    w = np.empty((5, d, d))
    draw_params_all(
        1, cnt, xbar.reshape(1, d), scatter.reshape(1, d, d), hyp, fam, mu, lc,
        w[0], w[1], w[2], w[3], w[4],
    )  # fmt: skip
    mu_out[:] = mu[0]
    l_out[:, :] = lc[0]


@njit(cache=True, nogil=True)
def cluster_stats(x, z, k, cnt, xbar, scatter, fam):
    """Counts, means and scatter matrices (diagonal only unless FULL) of labels 0..k-1 (two
    passes)."""
    n, d = x.shape
    for j in range(k):
        cnt[j] = 0
        for a in range(d):
            xbar[j, a] = 0.0
            for b in range(d):
                scatter[j, a, b] = 0.0
    for i in range(n):
        j = z[i]
        if j < 0:
            continue
        cnt[j] += 1
        for a in range(d):
            xbar[j, a] += x[i, a]
    for j in range(k):
        if cnt[j] > 0:
            for a in range(d):
                xbar[j, a] /= cnt[j]
    for i in range(n):
        j = z[i]
        if j < 0:
            continue
        for a in range(d):
            da = x[i, a] - xbar[j, a]
            if fam != FULL:
                scatter[j, a, a] += da * da
            else:
                for b in range(a + 1):
                    scatter[j, a, b] += da * (x[i, b] - xbar[j, b])
    if fam == FULL:
        for j in range(k):
            for a in range(d):
                for b in range(a):
                    scatter[j, b, a] = scatter[j, a, b]


@njit(cache=True, nogil=True)
def mixture_prepare(logw, lc, fam, c, li):
    """Normal log-density constants: c_k = log w_k - sum_d log L_kdd - D/2 log 2pi, li = L^{-1}."""
    kk, d = lc.shape[0], lc.shape[1]
    for k in range(kk):
        s = 0.0
        for a in range(d):
            s += math.log(lc[k, a, a])
        c[k] = logw[k] - s - 0.5 * d * LOG_2PI
        if fam != FULL:
            for a in range(d):
                for b in range(d):
                    li[k, a, b] = 0.0
                li[k, a, a] = 1.0 / lc[k, a, a]
        else:
            tri_inv_lower(lc[k], li[k])


@njit(cache=True, nogil=True)
def mixture_pass(x, mu, li, c, kk, fam, z, sample):
    """sum_i log sum_{k<kk} exp(lp_ik), lp_ik = c_k - |li_k (x_i - mu_k)|^2 / 2 = log w_k N(x_i | k);
    if sample, also draws z_i with P(z_i = k) ∝ exp(lp_ik) (the blocked z step)."""
    n, d = x.shape
    lp = np.empty(kk)
    dv = np.empty(d)
    tot_ll = 0.0
    for i in range(n):
        mx = NEG_INF
        for k in range(kk):
            ck = c[k]
            if ck == NEG_INF:
                lp[k] = NEG_INF
                continue
            qq = 0.0
            if d == 1:
                y = (x[i, 0] - mu[k, 0]) * li[k, 0, 0]
                qq = y * y
            elif d == 2:  # unrolled: the common 2-D case
                d0 = x[i, 0] - mu[k, 0]
                d1 = x[i, 1] - mu[k, 1]
                y0 = li[k, 0, 0] * d0
                y1 = li[k, 1, 0] * d0 + li[k, 1, 1] * d1
                qq = y0 * y0 + y1 * y1
            elif fam != FULL:
                for a in range(d):
                    y = (x[i, a] - mu[k, a]) * li[k, a, a]
                    qq += y * y
            else:
                for a in range(d):
                    dv[a] = x[i, a] - mu[k, a]
                for a in range(d):
                    y = 0.0
                    for b in range(a + 1):
                        y += li[k, a, b] * dv[b]
                    qq += y * y
            v = ck - 0.5 * qq
            lp[k] = v
            if v > mx:
                mx = v
        tot = 0.0
        for k in range(kk):
            # exp(-60) ~ 1e-26 is below the 2^-53 resolution of the uniform draw: skip the exp
            dl = lp[k] - mx
            e = math.exp(dl) if dl > -60.0 else 0.0
            lp[k] = e
            tot += e
        tot_ll += mx + math.log(tot)
        if sample:
            uu = np.random.random() * tot
            t = 0
            acc = lp[0]
            while t < kk - 1 and uu >= acc:
                t += 1
                acc += lp[t]
            while lp[t] == 0.0:  # rounding at the top end: back off to a positive entry
                t -= 1
            z[i] = t
    return tot_ll


@njit(cache=True, nogil=True)
def mixture_loglik(x, logw, mu, lc, fam):
    """sum_i log sum_k w_k N(x_i | mu_k, L_k L_k^T) (components with w_k = 0 skipped)."""
    d = x.shape[1]
    kk = mu.shape[0]
    c = np.empty(kk)
    li = np.empty((kk, d, d))
    mixture_prepare(logw, lc, fam, c, li)
    mu2 = np.empty((kk, d))
    m = 0
    for k in range(kk):
        if c[k] > NEG_INF:
            c[m] = c[k]
            mu2[m] = mu[k]
            li[m] = li[k]
            m += 1
    return mixture_pass(x, mu2, li, c, m, fam, np.empty(0, np.int64), False)


@njit(cache=True, nogil=True)
def predictive_tables(nmax, d, hyp, fam):
    """tc[n], tp[n] (n = 0..nmax): the count-only parts of the Student-t log predictive
    (SPHERICAL: the D-variate t with nu = nu0 + n D, tc = lgamma((nu + D)/2) - lgamma(nu/2)
    - D/2 log(pi (kappa + 1)/kappa), tp = (nu + D)/2)."""
    tc = np.empty(nmax + 1)
    tp = np.empty(nmax + 1)
    for n in range(nmax + 1):
        nu = hyp[2] + n
        kap = hyp[1] + n
        lk = math.log((kap + 1.0) / kap)
        if fam == SPHERICAL:
            nu = hyp[2] + n * d
            tc[n] = math.lgamma(0.5 * (nu + d)) - math.lgamma(0.5 * nu) - 0.5 * d * (LOG_PI + lk)
            tp[n] = 0.5 * (nu + d)
            continue
        if fam != FULL:
            tc[n] = d * (
                math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * LOG_PI - 0.5 * lk
            )
        else:
            tc[n] = (
                math.lgamma(0.5 * (nu + 1.0))
                - math.lgamma(0.5 * (nu - d + 1.0))
                - 0.5 * d * LOG_PI
                - 0.5 * d * lk
            )
        tp[n] = 0.5 * (nu + 1.0)
    return tc, tp


@njit(cache=True, nogil=True)
def cl_consts(k, cnt, scl, cst, q, tc, hyp, fam):
    """Refresh the cached predictive constants of slot k."""
    n = cnt[k]
    kap = hyp[1] + n
    d = scl.shape[1]
    s = 0.0
    if fam == SPHERICAL:
        q[k, 0] = kap / ((kap + 1.0) * scl[k, 0, 0])
        cst[k] = tc[n] - 0.5 * d * math.log(scl[k, 0, 0])
    elif fam == DIAG:
        for a in range(d):
            s += math.log(scl[k, a, a])
            q[k, a] = kap / ((kap + 1.0) * scl[k, a, a])
        cst[k] = tc[n] - 0.5 * s
    else:
        for a in range(d):
            s += math.log(scl[k, a, a])
        cst[k] = tc[n] - s
        q[k, 0] = kap / (kap + 1.0)


@njit(cache=True, nogil=True)
def cl_reset(k, cnt, mean, scl, cst, q, tc, hyp, fam):
    """Slot k <- the prior (n = 0): m = m0, Psi = psi0 I (SPHERICAL: scl[k, 0, 0] = psi0)."""
    d = mean.shape[1]
    cnt[k] = 0
    for a in range(d):
        mean[k, a] = hyp[0]
        for b in range(d):
            scl[k, a, b] = 0.0
        if fam == FULL:
            scl[k, a, a] = math.sqrt(hyp[3])
        elif fam == DIAG or a == 0:
            scl[k, a, a] = hyp[3]
    cl_consts(k, cnt, scl, cst, q, tc, hyp, fam)


@njit(cache=True, nogil=True)
def cl_add(x, i, k, cnt, mean, scl, cst, q, tc, hyp, fam, u):
    """Add x_i to slot k: Psi += kappa/(kappa+1) (x - m)(x - m)^T, m += (x - m)/(kappa+1)
    (SPHERICAL: the scalar Psi += kappa/(kappa+1) |x - m|^2)."""
    d = mean.shape[1]
    kap = hyp[1] + cnt[k]
    f = kap / (kap + 1.0)
    if fam == SPHERICAL:
        r2 = 0.0
        for a in range(d):
            r = x[i, a] - mean[k, a]
            r2 += r * r
            mean[k, a] += r / (kap + 1.0)
        scl[k, 0, 0] += f * r2
    elif fam == DIAG:
        for a in range(d):
            r = x[i, a] - mean[k, a]
            scl[k, a, a] += f * r * r
            mean[k, a] += r / (kap + 1.0)
    else:
        sf = math.sqrt(f)
        for a in range(d):
            r = x[i, a] - mean[k, a]
            u[a] = sf * r
            mean[k, a] += r / (kap + 1.0)
        chol_update(scl[k], u)
    cnt[k] += 1
    cl_consts(k, cnt, scl, cst, q, tc, hyp, fam)


@njit(cache=True, nogil=True)
def cl_remove(x, i, k, cnt, mean, scl, cst, q, tc, hyp, fam, u):
    """Remove x_i from slot k (cnt >= 2): with kappa' = current, kappa = kappa' - 1,
    m = (kappa' m' - x)/kappa, Psi = Psi' - kappa'/kappa (x - m')(x - m')^T (SPHERICAL: the
    scalar Psi -= kappa'/kappa |x - m'|^2).
    Returns False if the Cholesky downdate lost definiteness (caller rebuilds the slot)."""
    d = mean.shape[1]
    kp = hyp[1] + cnt[k]
    kap = kp - 1.0
    f = kp / kap
    ok = True
    if fam == SPHERICAL:
        r2 = 0.0
        for a in range(d):
            r = x[i, a] - mean[k, a]
            r2 += r * r
            mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
        scl[k, 0, 0] -= f * r2
        if not scl[k, 0, 0] > 0.0:
            ok = False
    elif fam == DIAG:
        for a in range(d):
            r = x[i, a] - mean[k, a]
            scl[k, a, a] -= f * r * r
            if not scl[k, a, a] > 0.0:
                ok = False
            mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
    else:
        sf = math.sqrt(f)
        for a in range(d):
            r = x[i, a] - mean[k, a]
            u[a] = sf * r
            mean[k, a] = (kp * mean[k, a] - x[i, a]) / kap
        ok = chol_downdate(scl[k], u)
    cnt[k] -= 1
    if ok:
        cl_consts(k, cnt, scl, cst, q, tc, hyp, fam)
    return ok


@njit(cache=True, nogil=True)
def cl_kernel(x, i, k, mean, scl, q, fam, u):
    """The x-dependent part of the Student-t log predictive: log t_k(x_i) = cst_k - p_n * this.

    full: log1p(q_k0 |L^{-1}(x_i - m)|^2) (forward substitution); diag: sum_d log1p(q_kd r_d^2);
    spherical: log1p(q_k0 |x_i - m|^2)."""
    d = mean.shape[1]
    if fam == SPHERICAL:
        r2 = 0.0
        for a in range(d):
            r = x[i, a] - mean[k, a]
            r2 += r * r
        return math.log1p(q[k, 0] * r2)
    if fam == DIAG:
        s = 0.0
        for a in range(d):
            r = x[i, a] - mean[k, a]
            s += math.log1p(q[k, a] * r * r)
        return s
    r2 = 0.0
    for a in range(d):
        t = x[i, a] - mean[k, a]
        for b in range(a):
            t -= scl[k, a, b] * u[b]
        t /= scl[k, a, a]
        u[a] = t
        r2 += t * t
    return math.log1p(q[k, 0] * r2)


@njit(cache=True, nogil=True)
def cl_logpred(x, i, k, mean, scl, cst, q, p, fam, u):
    """Student-t log posterior predictive of x_i under slot k (p = tp[cnt[k]])."""
    return cst[k] - p * cl_kernel(x, i, k, mean, scl, q, fam, u)


@njit(cache=True, nogil=True)
def cl_set_from_stats(k, n, xbar, scatter, cnt, mean, scl, cst, q, tc, hyp, fam, psi):
    """Slot k <- the conditional posterior of n points with mean xbar and scatter S (exact)."""
    niw_posterior(n, xbar, scatter, hyp, fam, mean[k], psi)
    cnt[k] = n
    d = mean.shape[1]
    if fam != FULL:
        for a in range(d):
            for b in range(d):
                scl[k, a, b] = 0.0
            if fam == DIAG or a == 0:
                scl[k, a, a] = psi[a, a]
    else:
        chol_lower(psi, scl[k])
    cl_consts(k, cnt, scl, cst, q, tc, hyp, fam)


@njit(cache=True, nogil=True)
def cl_rebuild_one(x, z, k, cnt, mean, scl, cst, q, tc, hyp, fam, psi):
    """Recompute slot k exactly from its members (z_i == k)."""
    n, d = x.shape
    m = 0
    xb = np.zeros((1, d))
    sc = np.zeros((1, d, d))
    zz = np.full(n, -1, np.int64)
    for i in range(n):
        if z[i] == k:
            zz[i] = 0
            m += 1
    cc = np.zeros(1, np.int64)
    cluster_stats(x, zz, 1, cc, xb, sc, fam)
    cl_set_from_stats(k, m, xb[0], sc[0], cnt, mean, scl, cst, q, tc, hyp, fam, psi)


@njit(cache=True, nogil=True)
def log_marginal(n, xbar, scat, hyp, fam, psi, wl):
    """log p(x_1..x_n) of one cluster under the NIW prior (NIG per feature if DIAG):
    -nD/2 log pi + log G_D(nu_n/2) - log G_D(nu0/2) + nu0/2 log|Psi0| - nu_n/2 log|Psi_n|
    + D/2 log(kappa0/kappa_n)  (Murphy 2007, eq. 266).
    SPHERICAL (given sigma^2 the D features are independent NIG-normal models sharing sigma^2,
    then sigma^2 ~ IG(a0, b0) is integrated out): with a_n = a0 + nD/2, b_n = Psi_n/2,
    (2 pi)^(-nD/2) (kappa0/kappa_n)^(D/2) G(a_n)/G(a0) b0^a0 / b_n^a_n, i.e.
    -nD/2 log pi + lgamma(nu_n/2) - lgamma(nu0/2) + nu0/2 log psi0 - nu_n/2 log Psi_n
    + D/2 log(kappa0/kappa_n), nu_n = nu0 + nD, Psi_n the scalar of ``niw_posterior``."""
    m0, k0, nu0, psi0 = hyp[0], hyp[1], hyp[2], hyp[3]
    d = xbar.shape[0]
    kn = k0 + n
    nun = nu0 + n
    f = k0 * n / kn
    if fam == SPHERICAL:
        nus = nu0 + n * d
        v = psi0
        for a in range(d):
            v += scat[a, a] + f * (xbar[a] - m0) ** 2
        return (
            -0.5 * n * d * LOG_PI
            + math.lgamma(0.5 * nus)
            - math.lgamma(0.5 * nu0)
            + 0.5 * nu0 * math.log(psi0)
            - 0.5 * nus * math.log(v)
            + 0.5 * d * math.log(k0 / kn)
        )
    if fam == DIAG:
        v = d * (
            -0.5 * n * LOG_PI
            + math.lgamma(0.5 * nun)
            - math.lgamma(0.5 * nu0)
            + 0.5 * nu0 * math.log(psi0)
            + 0.5 * math.log(k0 / kn)
        )
        for a in range(d):
            v -= 0.5 * nun * math.log(psi0 + scat[a, a] + f * (xbar[a] - m0) ** 2)
        return v
    for a in range(d):
        for b in range(d):
            psi[a, b] = scat[a, b] + f * (xbar[a] - m0) * (xbar[b] - m0) + (psi0 if a == b else 0.0)
    chol_lower(psi, wl)
    v = -0.5 * n * d * LOG_PI + 0.5 * nu0 * d * math.log(psi0) + 0.5 * d * math.log(k0 / kn)
    for a in range(d):
        v += math.lgamma(0.5 * (nun - a)) - math.lgamma(0.5 * (nu0 - a)) - nun * math.log(wl[a, a])
    return v


@njit(cache=True, nogil=True)
def draw_scale(kk, cnt, xbar, scat, hyp, fam, psi, wl, wa, wb, wc):
    """psi0 | partition, for the conjugate kernel with psi0 ~ Gamma(hyp[4], hyp[5])
    (Psi0 = psi0 I; NIG: psi0 = 2 b0), by data augmentation: Sigma_c | x_c, psi0 from the
    NIW/NIG conditional posterior for every occupied cluster c < kk, then
    psi0 | Sigma ~ Gamma(hyp[4] + K+ nu0 D / 2, hyp[5] + 1/2 sum_c tr(Sigma_c^{-1}))
    (IW(Sigma; nu0, psi0 I) is proportional to psi0^(nu0 D / 2) exp(-psi0 tr(Sigma^{-1}) / 2)).
    SPHERICAL (one sigma_c^2 per cluster, IG(nu0/2, psi0/2)): Gamma(hyp[4] + K+ nu0 / 2,
    hyp[5] + 1/2 sum_c sigma_c^-2).
    Returns the new psi0; psi, wl, wa, wb, wc are (D, D) work arrays."""
    m0, k0, nu0, psi0 = hyp[0], hyp[1], hyp[2], hyp[3]
    d = xbar.shape[1]
    tr = 0.0
    kplus = 0
    for k in range(kk):
        n = cnt[k]
        if n == 0:
            continue
        kplus += 1
        kn = k0 + n
        f = k0 * n / kn
        nun = nu0 + n
        if fam == SPHERICAL:
            v = psi0
            for a in range(d):
                v += scat[k, a, a] + f * (xbar[k, a] - m0) ** 2
            tr += 2.0 * np.random.gamma(0.5 * (nu0 + n * d), 1.0) / v
            continue
        if fam == DIAG:
            for a in range(d):
                v = psi0 + scat[k, a, a] + f * (xbar[k, a] - m0) ** 2
                tr += 2.0 * np.random.gamma(0.5 * nun, 1.0) / v  # 1/sigma^2 ~ Gamma(nun/2, v/2)
            continue
        for a in range(d):
            for b in range(d):
                v = scat[k, a, b] + f * (xbar[k, a] - m0) * (xbar[k, b] - m0)
                psi[a, b] = v + psi0 if a == b else v
        chol_lower(psi, wl)  # Psi_n = c c^T; Sigma^{-1} = c^{-T} A A^T c^{-1} (Bartlett)
        tri_inv_lower(wl, wa)  # wa = c^{-1}
        bartlett_factor(nun, wb)
        for a in range(d):  # tr(Sigma^{-1}) = |c^{-T} A|_F^2
            for b in range(d):
                t = 0.0
                for e in range(d):
                    t += wa[e, a] * wb[e, b]
                tr += t * t
    shape = hyp[4] + 0.5 * kplus * nu0 * (1 if fam == SPHERICAL else d)
    return np.random.gamma(shape, 1.0) / (hyp[5] + 0.5 * tr)
