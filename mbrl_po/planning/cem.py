"""Cross-entropy method (CEM) trajectory optimizer, as used by PETS (Chua et al., 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mbrl_po.planning.base import (
    Objective,
    TrajectoryOptimizer,
    check_bool,
    check_fraction,
    check_nonneg,
    check_positive,
    check_positive_int,
    elite_statistics,
)

__all__ = ["CEMConfig", "CEMOptimizer"]


@dataclass(frozen=True)
class CEMConfig:
    """Hyper-parameters of :class:`CEMOptimizer`.

    Attributes:
        horizon: H, number of planned steps, >= 1.
        population: N, candidates sampled per iteration, >= 2.
        iterations: Number of refit iterations, >= 1.
        elite_fraction: Fraction of the population kept as elites, in (0, 1];
            ``K = max(1, floor(elite_fraction * N))``.
        alpha: Smoothing, in [0, 1): ``new = alpha * old + (1 - alpha) * elite_stat`` for the
            mean and the variance (PETS convention).
        init_std: Initial per-step standard deviation (> 0); None means a quarter of the
            action range, i.e. PETS' ``var = (high - low)^2 / 16``.
        min_std: Floor on the standard deviation after each refit, >= 0.
        return_mean_elites: Return the final distribution mean (True) or the best candidate
            ever evaluated (False).
    """

    horizon: int
    population: int = 500
    iterations: int = 5
    elite_fraction: float = 0.1
    alpha: float = 0.1
    init_std: float | None = None
    min_std: float = 0.0
    return_mean_elites: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_int(name, "horizon", self.horizon)
        check_positive_int(name, "population", self.population, minimum=2)
        check_positive_int(name, "iterations", self.iterations)
        check_fraction(name, "elite_fraction", self.elite_fraction, low_open=True, high_open=False)
        check_fraction(name, "alpha", self.alpha, low_open=False, high_open=True)
        if self.init_std is not None:
            check_positive(name, "init_std", self.init_std)
        check_nonneg(name, "min_std", self.min_std)
        check_bool(name, "return_mean_elites", self.return_mean_elites)

    @property
    def num_elites(self) -> int:
        """K."""
        return max(1, int(self.elite_fraction * self.population))


class CEMOptimizer(TrajectoryOptimizer):
    """Cross-entropy method with a diagonal Gaussian over (H, A) and clipped samples.

    Each iteration samples ``N`` sequences ``clip(mean + std * eps)``, evaluates them, and
    refits mean and variance to the finite-valued top ``K`` (smoothed with ``alpha``). If
    no candidate of an iteration is valid, the distribution is left unchanged.

    Args:
        config: Hyper-parameters.
        action_low: Lower bounds, shape (A,).
        action_high: Upper bounds, shape (A,).
    """

    def __init__(self, config: CEMConfig, action_low: Tensor | np.ndarray, action_high: Tensor | np.ndarray):
        super().__init__(config.horizon, action_low, action_high)
        self.config = config

    def _optimize(
        self, evaluate: Objective, init_mean: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cfg = self.config
        shape = (cfg.population, self.horizon, self.action_dim)
        mean = init_mean
        var = self._default_std(cfg.init_std).expand(self.horizon, -1).square()
        min_var = cfg.min_std**2
        best_value, best_sequence = self._initial_best(init_mean)
        # All randomness is drawn in one call, before the loop: the loop is then pure tensor
        # math, which torch.compile can capture (it cannot trace generator arguments).
        noise = torch.randn(
            (cfg.iterations, *shape), generator=generator, device=self.device, dtype=self.dtype
        )
        for i in range(cfg.iterations):
            samples = self.clip(mean + var.sqrt() * noise[i])  # (N, H, A)
            values = self._evaluate(evaluate, samples)  # (N,)
            best_value, best_sequence = self._update_best(best_value, best_sequence, samples, values)
            elite_mean, elite_std, _, _, ok = elite_statistics(
                samples, values, cfg.num_elites, mean, var.sqrt()
            )
            # Without any valid elite the distribution is kept exactly as it was.
            mean = torch.where(ok, cfg.alpha * mean + (1 - cfg.alpha) * elite_mean, mean)
            new_var = (cfg.alpha * var + (1 - cfg.alpha) * elite_std.square()).clamp_min(min_var)
            var = torch.where(ok, new_var, var)
        plan = mean if cfg.return_mean_elites else best_sequence
        return plan.clone(), mean, best_value, best_sequence
