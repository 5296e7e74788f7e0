"""Model predictive path integral (MPPI) trajectory optimizer (Williams et al., 2017; PDDM-style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mbrl_po.planning.base import (
    Objective,
    TrajectoryOptimizer,
    check_fraction,
    check_positive,
    check_positive_int,
)

__all__ = ["MPPIConfig", "MPPIOptimizer", "correlated_noise_filter"]


@dataclass(frozen=True)
class MPPIConfig:
    """Hyper-parameters of :class:`MPPIOptimizer`.

    Attributes:
        horizon: H, >= 1.
        population: N, candidates per iteration, >= 2.
        iterations: Number of re-weighting iterations, >= 1.
        gamma: Reward scaling (inverse temperature, ``temperature = 1 / gamma``), > 0. Weights
            are ``softmax(gamma * returns)``, so it must be chosen relative to the return scale.
        sigma: Marginal std of the exploration noise at every step (> 0); None means a quarter
            of the action range.
        beta: Noise filter coefficient in (0, 1]: the noise is the AR(1) process
            ``n_h = beta * eps_h + (1 - beta) * n_{h-1}`` rescaled to marginal std ``sigma``;
            ``beta = 1`` gives white noise, smaller values smoother, more correlated noise.
    """

    horizon: int
    population: int = 500
    iterations: int = 3
    gamma: float = 10.0
    sigma: float | None = None
    beta: float = 0.7

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_int(name, "horizon", self.horizon)
        check_positive_int(name, "population", self.population, minimum=2)
        check_positive_int(name, "iterations", self.iterations)
        check_positive(name, "gamma", self.gamma)
        if self.sigma is not None:
            check_positive(name, "sigma", self.sigma)
        check_fraction(name, "beta", self.beta, low_open=True, high_open=False)


def correlated_noise_filter(
    horizon: int, beta: float, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Lower-triangular matrix turning white noise into unit-variance AR(1) noise.

    ``L[h, j] = beta * (1 - beta)^(h - j)`` for ``j <= h``, each row rescaled to unit norm, so
    ``n = L @ eps`` (over the horizon axis) has unit marginal variance at every step.

    Args:
        horizon: H.
        beta: Filter coefficient in (0, 1].
        device: Output device.
        dtype: Output dtype.

    Returns:
        Tensor of shape (H, H).
    """
    idx = torch.arange(horizon, device=device, dtype=dtype)
    lag = idx[:, None] - idx[None, :]
    causal = lag >= 0
    filt = torch.where(causal, beta * (1.0 - beta) ** lag.clamp_min(0), torch.zeros_like(lag))
    return filt / filt.norm(dim=1, keepdim=True)


class MPPIOptimizer(TrajectoryOptimizer):
    """MPPI: exponentially weighted average of noisy perturbations of the mean.

    Each iteration samples ``N`` sequences ``clip(mean + sigma * L @ eps)`` with the
    correlated noise of :func:`correlated_noise_filter`, and sets the mean to the average
    of the samples weighted by ``softmax(gamma * returns)``. Invalid (``-inf``) candidates get
    weight zero; if every candidate is invalid the mean is left unchanged. The plan is the
    final mean.

    Compared with PDDM (Nagabandi et al., 2019) the filter acts on the noise rather than on
    the actions, so the sampling distribution stays centred on the mean (no lag bias) and does
    not depend on the previously executed action.

    Args:
        config: Hyper-parameters.
        action_low: Lower bounds, shape (A,).
        action_high: Upper bounds, shape (A,).
    """

    def __init__(self, config: MPPIConfig, action_low: Tensor | np.ndarray, action_high: Tensor | np.ndarray):
        super().__init__(config.horizon, action_low, action_high)
        self.config = config

    def _optimize(
        self, evaluate: Objective, init_mean: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cfg = self.config
        shape = (cfg.population, self.horizon, self.action_dim)
        sigma = self._default_std(cfg.sigma)  # (A,)
        filt = correlated_noise_filter(self.horizon, cfg.beta, self.device, self.dtype)  # (H, H)
        mean = init_mean
        best_value, best_sequence = self._initial_best(init_mean)
        # All randomness is drawn in one call, before the loop (see CEMOptimizer).
        eps = torch.randn((cfg.iterations, *shape), generator=generator, device=self.device, dtype=self.dtype)
        noise = torch.einsum("hj,inja->inha", filt, eps)  # (I, N, H, A), correlated over H
        for i in range(cfg.iterations):
            samples = self.clip(mean + sigma * noise[i])  # (N, H, A)
            values = self._evaluate(evaluate, samples)  # (N,)
            best_value, best_sequence = self._update_best(best_value, best_sequence, samples, values)
            valid = torch.isfinite(values)
            any_valid = valid.any()
            # With no valid candidate, softmax over zeros is uniform and the result discarded.
            logits = torch.where(any_valid, cfg.gamma * values, torch.zeros_like(values))
            weights = torch.softmax(logits, dim=0)[:, None, None]  # (N, 1, 1)
            mean = torch.where(any_valid, (weights * samples).sum(dim=0), mean)
        return mean.clone(), mean, best_value, best_sequence
