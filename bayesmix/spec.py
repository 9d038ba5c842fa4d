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

MIXINGS = ("dp", "finite")
COVARIANCES = ("full", "diag")
KERNEL_PRIORS = ("conjugate", "weakly_informative")
SAMPLERS = ("nutpie", "pymc")
# models/ at the repository root is the source of truth; bayesmix/models links to it
# and is shipped as package data, so names resolve from any directory.
MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class GammaPrior:
    """Gamma(shape, rate) prior: density b^a x^(a-1) e^(-b x) / Gamma(a)."""

    shape: float
    rate: float


@dataclass(frozen=True)
class MixingSpec:
    """Prior on the weights.

    ``dp``: truncated stick-breaking DP, v_k ~ Beta(1, alpha), T components.
    ``finite``: w ~ Dirichlet(gamma, ..., gamma), K components.
    The concentration is fixed (``concentration``) or has a Gamma prior
    (``concentration_prior``), never both.
    """

    type: str = "dp"
    n_components: int = 20
    concentration: float | None = None
    concentration_prior: GammaPrior | None = GammaPrior(1.0, 1.0)

    @property
    def concentration_name(self) -> str:
        return "alpha" if self.type == "dp" else "gamma"


@dataclass(frozen=True)
class KernelSpec:
    """Gaussian kernel and its prior (standardised scale).

    conjugate, 1-D (and per feature for ``diag``): Normal-Inverse-Gamma,
        sigma^2 ~ IG(a0, b0), mu | sigma^2 ~ N(m0, sigma^2 / kappa0).
    conjugate, full covariance: Normal-Inverse-Wishart,
        Sigma ~ IW(nu0, psi0 * I), mu | Sigma ~ N(m0, Sigma / kappa0);
        nu0 defaults to D + 2 so that E[Sigma] = psi0 * I.
    weakly_informative: mu ~ N(m0, mu_sd^2), sigma ~ HalfNormal(sigma_sd),
        and for full covariance an LKJ(lkj_eta) correlation (NUTS only).
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
    sigma_sd: float = 1.0
    lkj_eta: float = 2.0

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
    target_accept: float | None = None  # NUTS step-size target (None: the backend's 0.8)
    seed: int = 20261126


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
    _check_unknown(where, "mixing", table, _MIXING_KEYS)
    mtype = _choice(where, "mixing.type", table.get("type", "dp"), MIXINGS)
    conc_key = "alpha" if mtype == "dp" else "gamma"
    other = "gamma" if mtype == "dp" else "alpha"
    size_key = "truncation" if mtype == "dp" else "K"
    wrong_size = "K" if mtype == "dp" else "truncation"
    for bad in (other, f"{other}_prior", wrong_size):
        if bad in table:
            raise _err(where, f"mixing.{bad}", f"does not apply to mixing type '{mtype}'")
    n = _positive(
        where, f"mixing.{size_key}", table.get(size_key, 20 if mtype == "dp" else 10), True
    )
    if n < 2:
        raise _err(where, f"mixing.{size_key}", "must be at least 2")
    fixed = table.get(conc_key)
    prior = table.get(f"{conc_key}_prior")
    if fixed is not None and prior is not None:
        raise _err(
            where, f"mixing.{conc_key}", f"give either {conc_key} or {conc_key}_prior, not both"
        )
    if fixed is None and prior is None:
        raise _err(
            where,
            f"mixing.{conc_key}",
            f"give {conc_key} = value or {conc_key}_prior = {{shape, rate}}",
        )
    return MixingSpec(
        type=mtype,
        n_components=int(n),
        concentration=None if fixed is None else _positive(where, f"mixing.{conc_key}", fixed),
        concentration_prior=None
        if prior is None
        else _gamma_prior(where, f"mixing.{conc_key}_prior", prior),
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
    for key in ("kappa0", "a0", "b0", "nu0", "psi0", "mu_sd", "sigma_sd", "lkj_eta"):
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
    for key in ("chains", "draws", "tune", "gibbs_draws"):
        if key in table:
            kw[key] = _positive(where, f"sampler.{key}", table[key], integer=True)
    if "target_accept" in table:
        ta = table["target_accept"]
        if isinstance(ta, bool) or not isinstance(ta, (int, float)) or not 0 < ta < 1:
            raise _err(where, "sampler.target_accept", f"must be a number in (0, 1), got {ta!r}")
        kw["target_accept"] = float(ta)
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
