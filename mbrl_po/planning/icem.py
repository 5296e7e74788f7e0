"""Improved CEM (iCEM, Pinneri et al., 2020): coloured noise, elite carry-over, decaying population."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mbrl_po.planning.base import (
    Objective,
    OptionError,
    TrajectoryOptimizer,
    check_bool,
    check_fraction,
    check_nonneg,
    check_positive,
    check_positive_int,
    elite_statistics,
)

__all__ = ["ICEMConfig", "ICEMOptimizer", "colored_noise"]


def colored_noise(
    num_samples: int,
    horizon: int,
    action_dim: int,
    beta: float,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    oversample: int = 1,
) -> Tensor:
    """Gaussian noise with power spectral density ``~ 1 / f^beta`` along the horizon axis.

    Generated in the frequency domain with ``torch.fft.irfft`` as in the ``colorednoise``
    package used by the iCEM authors, fully batched, with two differences: (i) the signal is
    generated over ``L = oversample * H`` steps and cropped to the first ``H``, because an
    irfft signal is periodic and, without the crop, the last action would be as correlated
    with the first one as with its neighbour; (ii) the normalisation includes the DC term, so
    every step has unit variance exactly (``beta = 0`` yields i.i.d. standard normal noise).
    ``beta = 2`` (iCEM's default) is Brownian-like, strongly correlated in time.

    Args:
        num_samples: N.
        horizon: H.
        action_dim: A.
        beta: Spectral exponent, >= 0.
        generator: Random generator on ``device``.
        device: Output device.
        dtype: Output floating dtype.
        oversample: Generated length over H, >= 1 (1 reproduces the periodic noise).

    Returns:
        Tensor of shape (N, H, A).
    """
    length = max(1, oversample) * horizon
    if length == 1:  # a single frequency (DC): plain white noise
        return torch.randn((num_samples, 1, action_dim), generator=generator, device=device, dtype=dtype)
    freqs = torch.fft.rfftfreq(length, device=device, dtype=dtype)  # (F,), F = L // 2 + 1
    freqs = freqs.clamp_min(1.0 / length)
    scale = freqs.pow(-beta / 2.0)  # amplitude ~ f^(-beta/2)  =>  power ~ f^(-beta)
    num_freqs = freqs.shape[0]
    # Per-frequency factors making the irfft output real-valued with the right variance: the
    # DC (and, for even L, the Nyquist) coefficient of a real signal is real, with twice the
    # variance of the real part of the other coefficients.
    real_fix = torch.ones(num_freqs, device=device, dtype=dtype)
    imag_fix = torch.ones(num_freqs, device=device, dtype=dtype)
    real_fix[0] = math.sqrt(2.0)
    imag_fix[0] = 0.0
    if length % 2 == 0:
        real_fix[-1] = math.sqrt(2.0)
        imag_fix[-1] = 0.0
    # Exact std of every output step: var = sum_k c_k s_k^2 / L^2 with c_k = 2 (DC, Nyquist)
    # or 4 (others).
    weight = torch.where(imag_fix == 0, 2.0, 4.0)
    sigma = torch.sqrt(torch.sum(weight * scale**2)) / length
    # One draw for real and imaginary parts: (2, N, A, F).
    parts = torch.randn(
        (2, num_samples, action_dim, num_freqs), generator=generator, device=device, dtype=dtype
    )
    spectrum = torch.complex(parts[0] * (scale * real_fix), parts[1] * (scale * imag_fix))
    signal = torch.fft.irfft(spectrum, n=length, dim=-1)[..., :horizon] / sigma  # (N, A, H)
    return signal.transpose(1, 2).contiguous()


@dataclass(frozen=True)
class ICEMConfig:
    """Hyper-parameters of :class:`ICEMOptimizer` (defaults follow Pinneri et al., 2020).

    Attributes:
        horizon: H, >= 1.
        population: N, candidates sampled at the first iteration, >= 2.
        iterations: Number of refit iterations, >= 1.
        elite_fraction: ``K = max(1, floor(elite_fraction * population))``, in (0, 1].
        alpha: Momentum, in [0, 1): ``new = alpha * old + (1 - alpha) * elite_stat`` for the
            mean and the standard deviation.
        noise_beta: Exponent of the coloured noise, ``power ~ 1 / f^noise_beta``, >= 0.
        keep_elite_fraction: Fraction of the K elites carried over to the next iteration
            (and, with ``shift_elites``, to the next call, shifted in time), in [0, 1].
        population_decay: Factor ``gamma >= 1``; iteration ``i`` samples
            ``max(floor(N * gamma^-i), 2K)`` candidates.
        shift_elites: Keep the final elites across ``optimize`` calls; they are shifted by the
            number of steps announced through :meth:`ICEMOptimizer.advance`.
        add_mean: At the last iteration, also evaluate the distribution mean itself.
        init_std: Initial per-step std (> 0), reset at every call; None means a quarter of the
            action range.
        min_std: Floor on the std after each refit, >= 0.
        return_mean_elites: Return the final mean (True) or, as in the paper, the best
            candidate evaluated during the call (False).
    """

    horizon: int
    population: int = 300
    iterations: int = 4
    elite_fraction: float = 0.1
    alpha: float = 0.1
    noise_beta: float = 2.0
    keep_elite_fraction: float = 0.3
    population_decay: float = 1.25
    shift_elites: bool = True
    add_mean: bool = True
    init_std: float | None = None
    min_std: float = 0.0
    return_mean_elites: bool = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_int(name, "horizon", self.horizon)
        check_positive_int(name, "population", self.population, minimum=2)
        check_positive_int(name, "iterations", self.iterations)
        check_fraction(name, "elite_fraction", self.elite_fraction, low_open=True, high_open=False)
        check_fraction(name, "alpha", self.alpha, low_open=False, high_open=True)
        check_nonneg(name, "noise_beta", self.noise_beta)
        check_fraction(name, "keep_elite_fraction", self.keep_elite_fraction, low_open=False, high_open=False)
        check_positive(name, "population_decay", self.population_decay)
        if self.population_decay < 1:
            raise OptionError(name, "population_decay", self.population_decay, ">= 1")
        if self.init_std is not None:
            check_positive(name, "init_std", self.init_std)
        check_nonneg(name, "min_std", self.min_std)
        for flag in ("shift_elites", "add_mean", "return_mean_elites"):
            check_bool(name, flag, getattr(self, flag))

    @property
    def num_elites(self) -> int:
        """K."""
        return max(1, int(self.elite_fraction * self.population))

    @property
    def num_kept_elites(self) -> int:
        """Elites carried over between iterations and calls."""
        return int(self.keep_elite_fraction * self.num_elites)

    def population_at(self, iteration: int) -> int:
        """Number of freshly sampled candidates at ``iteration`` (0-based)."""
        decayed = int(math.floor(self.population * self.population_decay ** (-iteration)))
        return max(decayed, 2 * self.num_elites)


class ICEMOptimizer(TrajectoryOptimizer):
    """iCEM: CEM with coloured noise, elite carry-over and a decaying population.

    Per call (one environment step in MPC): the std is reset to ``init_std``; at every
    iteration ``i`` the optimizer samples ``population_at(i)`` sequences
    ``clip(mean + std * coloured_noise)``, adds the kept elites (from the previous
    iteration, or at ``i = 0`` the previous call's elites shifted in time with fresh
    trailing actions) and, at the last iteration, the mean; it then refits mean and std to the
    finite-valued top ``K`` with momentum ``alpha``.

    Args:
        config: Hyper-parameters.
        action_low: Lower bounds, shape (A,).
        action_high: Upper bounds, shape (A,).
    """

    def __init__(self, config: ICEMConfig, action_low: Tensor | np.ndarray, action_high: Tensor | np.ndarray):
        super().__init__(config.horizon, action_low, action_high)
        self.config = config
        self._elite_memory: Tensor | None = None  # (k, H, A), frame of the last call
        self._pending_shift = 0

    def reset(self) -> None:
        super().reset()
        self._elite_memory = None
        self._pending_shift = 0

    def advance(self, steps: int) -> None:
        """Records that ``steps`` actions were executed; the stored elites are shifted lazily."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self._pending_shift += int(steps)

    def _shifted_memory(self) -> tuple[Tensor | None, int]:
        """Previous call's elites and the pending shift, or ``(None, 0)`` if not usable.

        Returns:
            ``(memory, shift)`` with memory of shape (k, H, A) in the previous call's frame.
        """
        memory, shift = self._elite_memory, self._pending_shift
        self._pending_shift = 0
        if memory is None or not self.config.shift_elites or self.config.num_kept_elites == 0:
            return None, 0
        if memory.shape[1:] != (self.horizon, self.action_dim) or shift >= self.horizon:
            return None, 0
        return memory.to(device=self.device, dtype=self.dtype), shift

    def _optimize(
        self, evaluate: Objective, init_mean: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cfg = self.config
        keep = cfg.num_kept_elites
        mean = init_mean
        std = self._default_std(cfg.init_std).expand(self.horizon, -1).clone()
        best_value, best_sequence = self._initial_best(init_mean)
        memory, shift = self._shifted_memory()
        sizes = [cfg.population_at(i) for i in range(cfg.iterations)]
        num_tails = memory.shape[0] if (memory is not None and shift > 0) else 0
        # All randomness is drawn in one call, before the loop (see CEMOptimizer).
        noise = colored_noise(
            num_tails + sum(sizes),
            self.horizon,
            self.action_dim,
            cfg.noise_beta,
            generator,
            self.device,
            self.dtype,
        )
        tail_noise, *iteration_noise = torch.split(noise, [num_tails, *sizes], dim=0)
        carried = memory
        if memory is not None and shift > 0:
            # Shifted elites get new trailing actions drawn from the initial distribution.
            tail = self.clip(mean + std * tail_noise)[:, self.horizon - shift :]
            carried = torch.cat([memory[:, shift:], tail], dim=1)
        for i in range(cfg.iterations):
            parts = [self.clip(mean + std * iteration_noise[i])]  # (N_i, H, A)
            if carried is not None:
                parts.append(carried)
            if cfg.add_mean and i == cfg.iterations - 1:
                parts.append(mean[None])
            samples = torch.cat(parts, dim=0)  # (N_i [+ k] [+ 1], H, A)
            values = self._evaluate(evaluate, samples)
            best_value, best_sequence = self._update_best(best_value, best_sequence, samples, values)
            elite_mean, elite_std, elites, _, ok = elite_statistics(
                samples, values, cfg.num_elites, mean, std
            )
            # Without any valid elite the distribution is kept exactly as it was.
            mean = torch.where(ok, cfg.alpha * mean + (1 - cfg.alpha) * elite_mean, mean)
            std = torch.where(ok, (cfg.alpha * std + (1 - cfg.alpha) * elite_std).clamp_min(cfg.min_std), std)
            carried = elites[:keep] if keep > 0 else None
        self._elite_memory = carried.clone() if (carried is not None and cfg.shift_elites) else None
        plan = mean if cfg.return_mean_elites else best_sequence
        return plan.clone(), mean, best_value, best_sequence
