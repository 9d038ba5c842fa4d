"""The one spelling of engine names, used by the CLI, the spec, the engines and every consumer."""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    """Sampling engines. ``AUTO`` resolves to ``COLLAPSED`` (conjugate priors) or ``NUTS``.

    NUTS and blocked Gibbs sample a DP truncated at T sticks; the collapsed sampler samples
    the untruncated DP. The NUTS backend (nutpie, pymc) is a separate setting, ``sampler``.
    """

    AUTO = "auto"
    NUTS = "nuts"
    GIBBS = "gibbs"  # blocked Gibbs (Ishwaran & James 2001)
    COLLAPSED = "collapsed"  # collapsed Gibbs with split-merge (Neal 2000, alg. 3; Dahl 2003)
    SUBCLUSTER = "subcluster"  # parallel restricted Gibbs + split-merge (Chang & Fisher 2013)

    @classmethod
    def parse(cls, name: str | Engine) -> Engine:
        """An engine from its name; also reads the older labels 'nuts (nutpie)', 'blocked'."""
        text = str(name).strip().lower()
        if text.startswith("nuts"):
            return cls.NUTS
        if text == "blocked":
            return cls.GIBBS
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(e.value for e in cls)
            raise ValueError(f"unknown engine '{name}' (choose {choices})") from None

    @property
    def is_gibbs(self) -> bool:
        return self in (Engine.GIBBS, Engine.COLLAPSED, Engine.SUBCLUSTER)

    def truncates_dp(self) -> bool:
        """Whether this engine samples a DP through a finite truncation."""
        return self in (Engine.NUTS, Engine.GIBBS)

    def label(self, sampler: str | None = None) -> str:
        """Human name: 'NUTS (nutpie)', 'blocked Gibbs', 'collapsed Gibbs'."""
        if self is Engine.NUTS:
            return f"NUTS ({sampler})" if sampler else "NUTS"
        return {
            Engine.GIBBS: "blocked Gibbs",
            Engine.COLLAPSED: "collapsed Gibbs",
            Engine.SUBCLUSTER: "sub-cluster Gibbs (parallel restricted sweeps + split-merge)",
        }.get(self, self.value)


ENGINE_CHOICES: tuple[str, ...] = tuple(e.value for e in Engine)
