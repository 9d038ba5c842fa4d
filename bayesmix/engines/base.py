"""The contract between engines and the posterior tools.

Every engine returns :class:`Draws`: posterior draws on the *standardised*
data scale, as plain numpy arrays with leading (chain, draw) axes. The
posterior assembler turns them into the DataTree in the data's own units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Draws:
    """Posterior draws of a Gaussian mixture on the standardised scale.

    Shapes (C chains, S draws, K components, D features, N observations):
      w:    (C, S, K)        mixture weights, rows sum to 1
      mu:   (C, S, K, D)     component means
      cov:  (C, S, K, D, D)  component covariances (diagonal for diag kernels)
      concentration: (C, S) the mixing's concentration (alpha, gamma or the Pitman-Yor
                     strength); None when fixed
      params: name -> (C, S) every random parameter of the mixing (concentration, discount,
              K of an MFM), as the posterior group stores them
      kernel_params: name -> the kernel's random hyperparameters: the scale C0 (C, S, D, D) of
              a semi-conjugate kernel with a hierarchical scale, or b0 / psi0 (C, S) of a
              conjugate one (standardised scale)
      z:    (C, S, N) int    allocations, when the engine samples them natively; (C, S_z, N)
            when it kept only the draws ``z_draws`` (K+ of every draw then comes from
            ``sample_stats["n_occupied"]``)
      z_draws: (S_z,) the draw indices (within each chain) whose z is in ``z``; None = all
      sample_stats: name -> (C, S) array (e.g. ``diverging``)
      timing: ``compile_s`` and ``sampling_s`` in seconds
    """

    w: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    concentration: np.ndarray | None
    engine: str  # an engines.names.Engine value
    z: np.ndarray | None = None
    z_draws: np.ndarray | None = None
    sampler: str | None = None  # the NUTS backend (nutpie, pymc); None for Gibbs
    params: dict[str, np.ndarray] = field(default_factory=dict)  # the mixing's, by name
    kernel_params: dict[str, np.ndarray] = field(default_factory=dict)
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        return self.w.shape[0]

    @property
    def n_draws(self) -> int:
        return self.w.shape[1]

    @property
    def n_components(self) -> int:
        return self.w.shape[2]
