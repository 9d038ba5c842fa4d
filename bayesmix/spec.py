"""Model specifications: dataclasses, TOML loading and validation.

A spec is a mixing (prior on the weights) x a kernel (Gaussian component and
its prior). All kernel hyperparameters live on the *standardised* data scale
(each column centred and divided by its standard deviation).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesmix.engines.names import ENGINE_CHOICES as ENGINES
from bayesmix.errors import InputError

MIXINGS = ("dp", "finite", "pitman_yor", "mfm")
MFM_WEIGHTS = ("static", "dynamic")
K_PRIOR_FAMILIES = {  # family -> its parameters (on K - 1, except uniform on K)
    "uniform": ("max",),
    "poisson": ("rate",),
    "geometric": ("p",),
    "negbin": ("r", "p"),
    "bnb": ("a_lambda", "a_pi", "b_pi"),
}
COVARIANCES = ("full", "diag", "spherical", "auto")
KERNEL_PRIORS = ("conjugate", "semi_conjugate", "weakly_informative")
KERNEL_SCALES = ("hierarchical", "fixed")
MEAN_CENTRES = ("midrange", "median")
#: NUTS backends; numpyro and blackjax (through JAX) need the optional extra bayesmix[jax]
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
PARAMETRIZATIONS = ("centred", "non_centred")
# models/ at the repository root is the source of truth; bayesmix/models links to it
# and is shipped as package data, so names resolve from any directory.
MODELS_DIR = Path(__file__).parent / "models"
#: the spec used without --model (chosen by the recovery study: reports/validation/recovery.md)
DEFAULT_MODEL = "mfm_auto"


@dataclass(frozen=True)
class GammaPrior:
    """Gamma(shape, rate) prior: density b^a x^(a-1) e^(-b x) / Gamma(a)."""

    shape: float
    rate: float


# the weakly informative kernel's default scale prior: sigma ~ InverseGamma(2, 0.4) on the
# standardised scale (mean 0.4, mode 0.13, P(sigma > 1) = 6.2%, P(sigma < 0.05) = 0.3%);
# chosen in reports/benchmarks/nuts_study_zero_avoiding.md
DEFAULT_SIGMA_INV_GAMMA = GammaPrior(2.0, 0.4)


@dataclass(frozen=True)
class BetaPrior:
    """Beta(a, b) prior on (0, 1)."""

    a: float
    b: float


@dataclass(frozen=True)
class FPrior:
    """F(df1, df2) prior on (0, inf) (for the dynamic MFM's alpha; telescope's default F(6, 3))."""

    df1: float
    df2: float


@dataclass(frozen=True)
class KPrior:
    """Prior on the number of components K of a mixture of finite mixtures: ``family`` in
    uniform (K ~ U{1..max}), poisson, geometric, negbin, bnb (on K - 1), ``params`` by name."""

    family: str
    params: tuple[tuple[str, float], ...]

    def get(self, name: str) -> float:
        return dict(self.params)[name]


@dataclass(frozen=True)
class MixingSpec:
    """Prior on the weights: a Gibbs-type partition prior (``bayesmix/mixings``).

    ``dp``: DP(alpha); blocked/NUTS: truncated sticks v_k ~ Beta(1, alpha), T components.
    ``finite``: w ~ Dirichlet(gamma, ..., gamma), K components.
    ``pitman_yor``: PY(theta, sigma), strength theta > -sigma (``concentration``, prior on
    theta + sigma), discount sigma in [0, 1) (``discount`` or ``discount_prior``, Beta);
    blocked/NUTS: v_k ~ Beta(1 - sigma, theta + k sigma), T components.
    ``mfm``: mixture of finite mixtures, K ~ ``k_prior``, w | K ~ Dirichlet(gamma_K) with
    gamma_K = gamma (``weights = "static"``) or alpha / K (``"dynamic"``); ``n_components`` is
    the largest K the samplers represent (K_max).
    The concentration (alpha, gamma or theta) is fixed (``concentration``) or has a prior
    (``concentration_prior``), never both.
    """

    type: str = "dp"
    n_components: int = 20
    concentration: float | None = None
    concentration_prior: GammaPrior | FPrior | None = GammaPrior(1.0, 1.0)
    discount: float | None = None
    discount_prior: BetaPrior | None = None
    weights: str = "static"
    k_prior: KPrior | None = None

    @property
    def concentration_name(self) -> str:
        """alpha (DP, dynamic MFM), gamma (finite, static MFM) or strength (Pitman-Yor)."""
        if self.type == "pitman_yor":
            return "strength"
        if self.type == "dp" or (self.type == "mfm" and self.weights == "dynamic"):
            return "alpha"
        return "gamma"

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The mixing's random hyperparameters, by name (those with a prior)."""
        names = []
        if self.concentration is None:
            names.append(self.concentration_name)
        if self.type == "pitman_yor" and self.discount is None:
            names.append("discount")
        return tuple(names)


@dataclass(frozen=True)
class KernelSpec:
    """Gaussian kernel and its prior (standardised scale).

    conjugate, 1-D (and per feature for ``diag``): Normal-Inverse-Gamma,
        sigma^2 ~ IG(a0, b0), mu | sigma^2 ~ N(m0, sigma^2 / kappa0).
    conjugate, ``spherical``: one variance per component shared by the D features,
        Sigma = sigma^2 I, sigma^2 ~ IG(a0, b0), mu | sigma^2 ~ N(m0 1, sigma^2 / kappa0 I)
        (mclust's VII; ``bayesmix.kernels.niw``).
    conjugate, full covariance: Normal-Inverse-Wishart,
        Sigma ~ IW(nu0, psi0 * I), mu | Sigma ~ N(m0, Sigma / kappa0);
        nu0 defaults to D + 2 so that E[Sigma] = psi0 * I.
    semi_conjugate: mu independent of Sigma, with a hierarchical (or fixed) scale
        (``bayesmix.kernels.semiconj``; blocked and telescoping Gibbs, and NUTS for the mixings
        it samples: ``kernels.pymc.semi_conjugate``), data-scaled by the
        range R_d of each feature:
        mu ~ N(b0, mean_var * diag(R_d^2)), b0 = the midrange (``mean_centre``) or the median;
        Sigma^{-1} ~ W(c0, C0) (Sigma ~ IW(2 c0, 2 C0)), C0 ~ W(g0, G0 * diag(1 / R_d^2))
        (``scale = "hierarchical"``) or C0 = its prior mean g0 / G0 * diag(R_d^2) (``"fixed"``).
        Defaults (None): in 1-D Richardson & Green (1997): c0 = 2, g0 = 0.2, G0 = 10, midrange;
        for D >= 2 Fruehwirth-Schnatter, Malsiner-Walli & Gruen (2021) / telescope:
        c0 = 2.5 + (D - 1)/2, g0 = 0.5 + (D - 1)/2, G0 = 100 g0 / c0, median.
        ``data_scaled = false`` fixes R_d = 1 and b0 = m0 (a prior that does not look at the
        data, on the standardised scale).
    conjugate with a hierarchical scale (``scale_prior = {shape, rate}``; collapsed Gibbs and
        NUTS):
        b0 ~ Gamma(shape, rate) in 1-D, per feature for ``diag`` (one b0 for all features) and
        for ``spherical``,
        psi0 ~ Gamma(shape, rate) for full covariances; sampled exactly given the partition
        (``kernels.niw.draw_scale``).
    weakly_informative: mu ~ N(m0, mu_sd^2), per feature sigma ~ InverseGamma(shape, rate)
        (``sigma_inv_gamma``, default (2, 0.4): 1 / sigma ~ Gamma(2, rate 0.4), mean 0.4),
        or sigma ~ HalfNormal(sigma_sd) when ``sigma_sd`` is given instead; for full
        covariance an LKJ(lkj_eta) correlation (NUTS only). The inverse gamma is
        zero-avoiding: its density vanishes faster than any power of sigma at 0, which keeps
        the posterior proper when the data hold ties: m points with one tied coordinate in
        one component contribute sigma^-(m-1) after mu is integrated out, which a HalfNormal
        (density > 0 at 0) cannot integrate for m >= 2 (Old Faithful's waiting times take 51
        values in 272 rows; ``sigma_prior``).
    covariance: "full", "diag", "spherical" or "auto": chosen per data set before sampling by
        EM + BIC across the covariance families
        (``bayesmix.posterior.kernel_check.choose_covariance``).
    """

    covariance: str = "full"
    prior: str = "conjugate"
    m0: float = 0.0
    kappa0: float = 0.01
    a0: float = 2.0
    b0: float = 0.25
    nu0: float | None = None
    psi0: float = 0.25
    mu_sd: float = 2.0
    sigma_sd: float | None = None  # weakly informative: sigma ~ HalfNormal(sigma_sd)
    lkj_eta: float = 2.0
    sigma_inv_gamma: GammaPrior | None = None  # weakly informative: sigma ~ InvGamma(shape, rate)
    scale: str = "hierarchical"
    c0: float | None = None
    g0: float | None = None
    G0: float | None = None  # noqa: N815 (the literature's name)
    mean_centre: str | None = None
    mean_var: float = 1.0
    data_scaled: bool = True  # False: R_d = 1 and b0 = m0 (a data-independent prior, e.g. SBC)
    scale_prior: GammaPrior | None = None  # conjugate: b0 (1-D, diag) or psi0 (full) ~ Gamma

    def sigma_prior(self) -> tuple[str, float | GammaPrior]:
        """The weakly informative kernel's scale prior: ("inverse_gamma", GammaPrior) or
        ("half_normal", sd); InverseGamma(2, 0.4) unless sigma_sd or sigma_inv_gamma is set."""
        if self.sigma_inv_gamma is not None:
            return "inverse_gamma", self.sigma_inv_gamma
        if self.sigma_sd is not None:
            return "half_normal", self.sigma_sd
        return "inverse_gamma", DEFAULT_SIGMA_INV_GAMMA

    def semi_defaults(self, d: int) -> tuple[float, float, float, str]:
        """(c0, g0, G0, mean centre) of the semi-conjugate prior in dimension d (class docstring)."""
        if d == 1:
            c0, g0, centre = 2.0, 0.2, "midrange"
        else:
            c0, g0, centre = 2.5 + (d - 1) / 2, 0.5 + (d - 1) / 2, "median"
        c0 = self.c0 if self.c0 is not None else c0
        g0 = self.g0 if self.g0 is not None else g0
        if self.G0 is not None:
            g = self.G0
        else:
            g = 10.0 if d == 1 else 100.0 * g0 / c0
        return float(c0), float(g0), float(g), self.mean_centre or centre

    def nu0_for(self, d: int) -> float:
        """Inverse-Wishart degrees of freedom for dimension d."""
        return float(self.nu0) if self.nu0 is not None else float(d + 2)


@dataclass(frozen=True)
class SamplerSpec:
    """Default sampler settings; the CLI overrides them."""

    engine: str = "auto"
    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    gibbs_draws: int = 5000  # Gibbs sweeps are cheap: keep more draws for the same wall time
    gibbs_thin: int = 1  # Gibbs engines keep every gibbs_thin-th sweep (slowly mixing samplers)
    target_accept: float | None = None  # NUTS step-size target (None: engines.nuts, 0.9)
    seed: int = 20261126
    # NUTS graph options (the posterior is the same; only the geometry NUTS sees changes):
    # "non_centred": conjugate kernel, mu_k = m0 + Sigma_k^{1/2} z_k / sqrt(kappa0), z_k ~ N(0, I)
    parametrization: str = "centred"
    # 1-D finite mixtures: the component means sorted (PyMC's ordered transform)
    ordered_means: bool = False
    # DP: "non_centred" sticks v_k = 1 - u_k^(1/alpha), u_k ~ U(0, 1)
    sticks: str = "centred"


@dataclass(frozen=True)
class ModelSpec:
    """A named model: mixing x kernel, plus default sampler settings."""

    name: str = "dp"
    description: str = ""
    mixing: MixingSpec = field(default_factory=MixingSpec)
    kernel: KernelSpec = field(default_factory=KernelSpec)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable) of the spec."""
        return dataclasses.asdict(self)

    @property
    def is_conjugate(self) -> bool:
        return self.kernel.prior == "conjugate"


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------

_TOP_KEYS = {"name", "description", "mixing", "kernel", "sampler"}
_MIXING_KEYS = {"type", "truncation", "K", "alpha", "gamma", "alpha_prior", "gamma_prior"}
_PY_KEYS = {"type", "truncation", "strength", "strength_prior", "discount", "discount_prior"}
_MFM_KEYS = {"type", "weights", "gamma", "gamma_prior", "alpha", "alpha_prior", "k_prior", "k_max"}
_KERNEL_KEYS = {f.name for f in dataclasses.fields(KernelSpec)}
_SAMPLER_KEYS = {f.name for f in dataclasses.fields(SamplerSpec)}


def _err(where: str, key: str, msg: str) -> InputError:
    return InputError(f"{where}: key '{key}': {msg}")


def _check_unknown(where: str, section: str, table: dict, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            full = f"{section}.{key}" if section else key
            raise _err(where, full, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _positive(where: str, key: str, value: Any, integer: bool = False) -> float | int:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise _err(where, key, f"must be {kind}, got {value!r}")
    if not value > 0:
        raise _err(where, key, f"must be > 0, got {value!r}")
    return int(value) if integer else float(value)


def _gamma_prior(where: str, key: str, value: Any) -> GammaPrior:
    if isinstance(value, dict):
        _check_unknown(where, key, value, {"shape", "rate"})
        if set(value) != {"shape", "rate"}:
            raise _err(where, key, "needs both 'shape' and 'rate'")
        shape, rate = value["shape"], value["rate"]
    elif isinstance(value, list) and len(value) == 2:
        shape, rate = value
    else:
        raise _err(where, key, "must be {shape = a, rate = b} or [a, b]")
    return GammaPrior(
        _positive(where, f"{key}.shape", shape), _positive(where, f"{key}.rate", rate)
    )


def _choice(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _err(where, key, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _parse_mixing(where: str, table: dict) -> MixingSpec:
    mtype = _choice(where, "mixing.type", table.get("type", "dp"), MIXINGS)
    if mtype == "pitman_yor":
        return _parse_pitman_yor(where, table)
    if mtype == "mfm":
        return _parse_mfm(where, table)
    _check_unknown(where, "mixing", table, _MIXING_KEYS)
    conc_key = "alpha" if mtype == "dp" else "gamma"
    other = "gamma" if mtype == "dp" else "alpha"
    size_key = "truncation" if mtype == "dp" else "K"
    wrong_size = "K" if mtype == "dp" else "truncation"
    for bad in (other, f"{other}_prior", wrong_size):
        if bad in table:
            raise _err(where, f"mixing.{bad}", f"does not apply to mixing type '{mtype}'")
    n = _size(where, f"mixing.{size_key}", table.get(size_key, 20 if mtype == "dp" else 10))
    fixed, prior = _fixed_or_prior(where, table, conc_key)
    return MixingSpec(
        type=mtype,
        n_components=n,
        concentration=None if fixed is None else _positive(where, f"mixing.{conc_key}", fixed),
        concentration_prior=None
        if prior is None
        else _gamma_prior(where, f"mixing.{conc_key}_prior", prior),
    )


def _size(where: str, key: str, value: Any) -> int:
    n = _positive(where, key, value, True)
    if n < 2:
        raise _err(where, key, "must be at least 2")
    return int(n)


def _fixed_or_prior(where: str, table: dict, key: str) -> tuple[Any, Any]:
    """(value, prior table) of a hyperparameter given as ``key`` or ``key_prior``."""
    fixed, prior = table.get(key), table.get(f"{key}_prior")
    if fixed is not None and prior is not None:
        raise _err(where, f"mixing.{key}", f"give either {key} or {key}_prior, not both")
    if fixed is None and prior is None:
        raise _err(where, f"mixing.{key}", f"give {key} = value or {key}_prior = {{shape, rate}}")
    return fixed, prior


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(where, key, f"must be a number, got {value!r}")
    return float(value)


def _parse_pitman_yor(where: str, table: dict) -> MixingSpec:
    """PY: strength theta (or strength_prior, Gamma on theta + discount), discount sigma in
    [0, 1) (or discount_prior = {a, b}, Beta), truncation T for blocked Gibbs and NUTS."""
    _check_unknown(where, "mixing", table, _PY_KEYS)
    n = _size(where, "mixing.truncation", table.get("truncation", 20))
    disc = table.get("discount")
    dprior = table.get("discount_prior")
    if disc is not None and dprior is not None:
        raise _err(where, "mixing.discount", "give either discount or discount_prior, not both")
    beta = None
    if disc is None:
        if dprior is None:
            raise _err(
                where, "mixing.discount", "give discount = value in [0, 1) or discount_prior"
            )
        if not isinstance(dprior, dict) or set(dprior) != {"a", "b"}:
            raise _err(where, "mixing.discount_prior", "must be {a = ..., b = ...} (Beta)")
        beta = BetaPrior(
            _positive(where, "mixing.discount_prior.a", dprior["a"]),
            _positive(where, "mixing.discount_prior.b", dprior["b"]),
        )
    else:
        disc = _number(where, "mixing.discount", disc)
        if not 0.0 <= disc < 1.0:
            raise _err(where, "mixing.discount", f"must be in [0, 1), got {disc!r}")
    fixed, prior = _fixed_or_prior(where, table, "strength")
    if fixed is not None:
        fixed = _number(where, "mixing.strength", fixed)
        low = disc if disc is not None else 0.0
        if not fixed > -low:
            raise _err(where, "mixing.strength", f"must be > -discount = {-low:g}, got {fixed!r}")
    return MixingSpec(
        type="pitman_yor",
        n_components=n,
        concentration=fixed,
        concentration_prior=None
        if prior is None
        else _gamma_prior(where, "mixing.strength_prior", prior),
        discount=disc,
        discount_prior=beta,
    )


def _parse_k_prior(where: str, value: Any) -> KPrior:
    key = "mixing.k_prior"
    if not isinstance(value, dict) or "family" not in value:
        raise _err(where, key, 'must be {family = ..., ...}, e.g. {family = "bnb", ...}')
    family = _choice(where, f"{key}.family", value["family"], tuple(K_PRIOR_FAMILIES))
    wanted = K_PRIOR_FAMILIES[family]
    params = {k: v for k, v in value.items() if k != "family"}
    _check_unknown(where, key, params, set(wanted))
    missing = [k for k in wanted if k not in params]
    if missing:
        raise _err(where, f"{key}.{missing[0]}", f"is needed by family '{family}'")
    vals = []
    for name in wanted:
        v = _positive(where, f"{key}.{name}", params[name], integer=name == "max")
        if name == "p" and not v < 1.0:
            raise _err(where, f"{key}.p", f"must be in (0, 1), got {v!r}")
        vals.append((name, float(v)))
    return KPrior(family, tuple(vals))


def _parse_mfm(where: str, table: dict) -> MixingSpec:
    """MFM: K ~ k_prior (default BNB(1, 4, 3) on K - 1), w | K ~ Dirichlet(gamma) ("static",
    gamma or gamma_prior) or Dirichlet(alpha / K) ("dynamic", alpha or alpha_prior, Gamma or
    {family = "F", df1, df2}); k_max bounds K in the samplers (default: where the prior's
    tail mass falls below 1e-10, at most 500)."""
    _check_unknown(where, "mixing", table, _MFM_KEYS)
    weights = _choice(where, "mixing.weights", table.get("weights", "static"), MFM_WEIGHTS)
    key = "gamma" if weights == "static" else "alpha"
    other = "alpha" if weights == "static" else "gamma"
    for bad in (other, f"{other}_prior"):
        if bad in table:
            raise _err(where, f"mixing.{bad}", f"does not apply to weights = '{weights}'")
    fixed, prior = _fixed_or_prior(where, table, key)
    conc_prior = None
    if prior is not None:
        if isinstance(prior, dict) and str(prior.get("family", "")).lower() == "f":
            if weights != "dynamic":
                raise _err(where, f"mixing.{key}_prior", "an F prior applies to alpha (dynamic)")
            _check_unknown(where, f"mixing.{key}_prior", prior, {"family", "df1", "df2"})
            conc_prior = FPrior(
                _positive(where, f"mixing.{key}_prior.df1", prior.get("df1")),
                _positive(where, f"mixing.{key}_prior.df2", prior.get("df2")),
            )
        else:
            conc_prior = _gamma_prior(where, f"mixing.{key}_prior", prior)
    kp = table.get("k_prior", {"family": "bnb", "a_lambda": 1.0, "a_pi": 4.0, "b_pi": 3.0})
    k_prior = _parse_k_prior(where, kp)
    k_max = table.get("k_max")
    if k_max is None:
        k_max = int(k_prior.get("max")) if k_prior.family == "uniform" else 0  # 0: automatic
    else:
        k_max = _positive(where, "mixing.k_max", k_max, True)
    return MixingSpec(
        type="mfm",
        n_components=int(k_max),
        concentration=None if fixed is None else _positive(where, f"mixing.{key}", fixed),
        concentration_prior=conc_prior,
        weights=weights,
        k_prior=k_prior,
    )


def _parse_kernel(where: str, table: dict) -> KernelSpec:
    _check_unknown(where, "kernel", table, _KERNEL_KEYS)
    kw: dict[str, Any] = {}
    if "covariance" in table:
        kw["covariance"] = _choice(where, "kernel.covariance", table["covariance"], COVARIANCES)
    if "prior" in table:
        kw["prior"] = _choice(where, "kernel.prior", table["prior"], KERNEL_PRIORS)
    if "m0" in table:
        m0 = table["m0"]
        if isinstance(m0, bool) or not isinstance(m0, (int, float)):
            raise _err(where, "kernel.m0", f"must be a number, got {m0!r}")
        kw["m0"] = float(m0)
    if "scale" in table:
        kw["scale"] = _choice(where, "kernel.scale", table["scale"], KERNEL_SCALES)
    if "mean_centre" in table:
        kw["mean_centre"] = _choice(where, "kernel.mean_centre", table["mean_centre"], MEAN_CENTRES)
    if "data_scaled" in table:
        if not isinstance(table["data_scaled"], bool):
            raise _err(
                where, "kernel.data_scaled", f"must be true or false, got {table['data_scaled']!r}"
            )
        kw["data_scaled"] = table["data_scaled"]
    if "scale_prior" in table:
        if table.get("prior", "conjugate") != "conjugate":
            raise _err(where, "kernel.scale_prior", "applies only to prior = 'conjugate'")
        kw["scale_prior"] = _gamma_prior(where, "kernel.scale_prior", table["scale_prior"])
    if "sigma_inv_gamma" in table:
        if table.get("prior", "conjugate") != "weakly_informative":
            raise _err(
                where, "kernel.sigma_inv_gamma", "applies only to prior = 'weakly_informative'"
            )
        if "sigma_sd" in table:
            raise _err(
                where,
                "kernel.sigma_inv_gamma",
                "set one scale prior: sigma_sd (HalfNormal) or sigma_inv_gamma (InverseGamma)",
            )
        kw["sigma_inv_gamma"] = _gamma_prior(
            where, "kernel.sigma_inv_gamma", table["sigma_inv_gamma"]
        )
    semi_keys = ("scale", "c0", "g0", "G0", "mean_centre", "mean_var", "data_scaled")
    if table.get("prior", "conjugate") != "semi_conjugate":
        for key in semi_keys:
            if key in table:
                raise _err(where, f"kernel.{key}", "applies only to prior = 'semi_conjugate'")
    positive = ("kappa0", "a0", "b0", "nu0", "psi0", "mu_sd", "sigma_sd", "lkj_eta")
    for key in positive + ("c0", "g0", "G0", "mean_var"):
        if key in table:
            kw[key] = _positive(where, f"kernel.{key}", table[key])
    return KernelSpec(**kw)


def _parse_sampler(where: str, table: dict) -> SamplerSpec:
    _check_unknown(where, "sampler", table, _SAMPLER_KEYS)
    kw: dict[str, Any] = {}
    if "engine" in table:
        kw["engine"] = _choice(where, "sampler.engine", table["engine"], ENGINES)
    if "sampler" in table:
        kw["sampler"] = _choice(where, "sampler.sampler", table["sampler"], SAMPLERS)
    for key in ("chains", "draws", "tune", "gibbs_draws", "gibbs_thin"):
        if key in table:
            kw[key] = _positive(where, f"sampler.{key}", table[key], integer=True)
    if "target_accept" in table:
        ta = table["target_accept"]
        if isinstance(ta, bool) or not isinstance(ta, (int, float)) or not 0 < ta < 1:
            raise _err(where, "sampler.target_accept", f"must be a number in (0, 1), got {ta!r}")
        kw["target_accept"] = float(ta)
    if "parametrization" in table:
        kw["parametrization"] = _choice(
            where, "sampler.parametrization", table["parametrization"], PARAMETRIZATIONS
        )
    if "sticks" in table:
        kw["sticks"] = _choice(where, "sampler.sticks", table["sticks"], PARAMETRIZATIONS)
    if "ordered_means" in table:
        if not isinstance(table["ordered_means"], bool):
            raise _err(
                where,
                "sampler.ordered_means",
                f"must be true or false, got {table['ordered_means']!r}",
            )
        kw["ordered_means"] = table["ordered_means"]
    if "seed" in table:
        seed = table["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _err(where, "sampler.seed", f"must be a non-negative integer, got {seed!r}")
        kw["seed"] = seed
    return SamplerSpec(**kw)


def parse_spec(table: dict, where: str = "<spec>", default_name: str = "model") -> ModelSpec:
    """Validate a parsed TOML table and build a ModelSpec; errors name the key."""
    _check_unknown(where, "", table, _TOP_KEYS)
    for section in ("mixing", "kernel", "sampler"):
        if section in table and not isinstance(table[section], dict):
            raise _err(where, section, "must be a table ([section])")
    name = table.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise _err(where, "name", "must be a non-empty string")
    desc = table.get("description", "")
    if not isinstance(desc, str):
        raise _err(where, "description", "must be a string")
    return ModelSpec(
        name=name,
        description=desc,
        mixing=_parse_mixing(where, table.get("mixing", {})),
        kernel=_parse_kernel(where, table.get("kernel", {})),
        sampler=_parse_sampler(where, table.get("sampler", {})),
        source=where,
    )


def builtin_model_names() -> list[str]:
    """Names of the specs shipped with the package (models/*.toml)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def _builtin_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.toml"


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load a spec by builtin name (``dp``) or by path to a TOML file."""
    text_path = str(name_or_path)
    path = Path(text_path)
    looks_like_path = text_path.endswith(".toml") or "/" in text_path or path.exists()
    if looks_like_path:
        if not path.is_file():
            raise InputError(f"{text_path}: model spec file not found")
        where, default_name = str(path), path.stem
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{text_path}: cannot read model spec ({exc.strerror})") from None
    else:
        res = _builtin_path(text_path)
        if not res.is_file():
            names = ", ".join(builtin_model_names())
            raise InputError(
                f"unknown model '{text_path}' (built-in models: {names}; or give a path to a .toml file)"
            )
        where, default_name = f"models/{text_path}.toml", text_path
        raw = res.read_bytes()
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not valid TOML ({exc})") from None
    return parse_spec(table, where=where, default_name=default_name)
