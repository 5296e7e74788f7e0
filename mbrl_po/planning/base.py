"""Common machinery for sampling-based trajectory optimizers.

Shape letters used throughout the planning package:

* ``N``: number of candidate action sequences (population),
* ``H``: planning horizon,
* ``A``: action dimension,
* ``K``: number of elites.

An *objective* is any callable ``evaluate(action_sequences: Tensor[N, H, A]) -> Tensor[N]``
returning the value (return) of each candidate; higher is better. Optimizers keep every
tensor on the device of the action bounds while optimizing: no ``.item()``, no ``.cpu()``, no
numpy, and no Python branching on tensor values, so one ``optimize`` call runs without host
synchronisation and can be captured by ``torch.compile``.

Invalid returns (NaN, and also ``+inf`` which in practice only appears when a learned model
blows up) are mapped to ``-inf`` by :func:`sanitize_returns`: such a candidate never becomes
an elite, never gets a positive MPPI weight and is never reported as the best sequence.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Objective",
    "OptionError",
    "TrajectoryOptimizer",
    "as_bounds",
    "check_bool",
    "check_fraction",
    "check_nonneg",
    "check_positive",
    "check_positive_int",
    "elite_statistics",
    "sanitize_returns",
    "shift_sequence",
]

Objective = Callable[[Tensor], Tensor]
"""``evaluate(action_sequences: Tensor[N, H, A]) -> Tensor[N]``, higher is better."""


# --------------------------------------------------------------------------------------------
# Config validation helpers (used by the frozen dataclass configs' ``__post_init__``).
# --------------------------------------------------------------------------------------------


class OptionError(ValueError):
    """A hyper-parameter of an optimizer config out of range: names the field, the value and what is allowed.

    Attributes:
        owner: the config class, e.g. ``"ICEMConfig"``.
        field: the field, e.g. ``"noise_beta"``.
        value: the value given.
        allowed: what is allowed, e.g. ``"a finite number >= 0"``.
    """

    def __init__(self, owner: str, field: str, value: Any, allowed: str) -> None:
        self.owner, self.field, self.value, self.allowed = owner, field, value, allowed
        super().__init__(f"{owner}.{field} must be {allowed}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    """Raises :class:`OptionError` unless ``value`` is an int ``>= minimum``."""
    if not _is_int(value) or value < minimum:
        raise OptionError(owner, name, value, f"an integer >= {minimum}")


def check_positive(owner: str, name: str, value: Any) -> None:
    """Raises :class:`OptionError` unless ``value`` is a finite real ``> 0``."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise OptionError(owner, name, value, "a finite number > 0")


def check_nonneg(owner: str, name: str, value: Any) -> None:
    """Raises :class:`OptionError` unless ``value`` is a finite real ``>= 0``."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise OptionError(owner, name, value, "a finite number >= 0")


def check_bool(owner: str, name: str, value: Any) -> None:
    """Raises :class:`OptionError` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise OptionError(owner, name, value, "a bool")


def check_fraction(owner: str, name: str, value: Any, *, low_open: bool, high_open: bool) -> None:
    """Raises :class:`OptionError` unless ``value`` lies in the interval described by the flags.

    Args:
        owner: Class name used in the message.
        name: Field name used in the message.
        value: Value to validate.
        low_open: Whether 0 is excluded.
        high_open: Whether 1 is excluded.
    """
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise OptionError(owner, name, value, f"in {interval}")


# --------------------------------------------------------------------------------------------
# Tensor helpers.
# --------------------------------------------------------------------------------------------


def as_bounds(
    action_low: Tensor | np.ndarray | Any,
    action_high: Tensor | np.ndarray | Any,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Converts and validates action bounds.

    Args:
        action_low: Lower bounds, shape (A,).
        action_high: Upper bounds, shape (A,).
        device: Target device; defaults to the device of ``action_low`` if it is a tensor, else CPU.
        dtype: Target floating dtype; defaults to float32 (or the tensor's floating dtype).

    Returns:
        ``(low, high)``, two tensors of shape (A,) on ``device``.

    Raises:
        ValueError: If the shapes differ, are not 1-D, contain non-finite values or
            ``low > high`` somewhere.
    """
    if device is None and isinstance(action_low, Tensor):
        device = action_low.device
    if dtype is None:
        dtype = (
            action_low.dtype
            if isinstance(action_low, Tensor) and action_low.is_floating_point()
            else torch.float32
        )
    low = torch.as_tensor(action_low, dtype=dtype, device=device).detach().clone()
    high = torch.as_tensor(action_high, dtype=dtype, device=device).detach().clone()
    if low.ndim != 1 or low.shape != high.shape or low.numel() == 0:
        raise ValueError(
            "action_low and action_high must be non-empty 1-D with equal shapes (A,), got "
            f"{tuple(low.shape)} and {tuple(high.shape)}"
        )
    # Validation happens once, at construction, so the host sync here is harmless.
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise ValueError("action_low and action_high must be finite")
    if (low > high).any():
        raise ValueError(f"action_low must be <= action_high elementwise, got {low} > {high}")
    return low, high


def sanitize_returns(values: Tensor, num_candidates: int) -> Tensor:
    """Maps invalid returns to ``-inf`` and checks the shape.

    NaN and ``+inf`` become ``-inf``; finite values and ``-inf`` are unchanged. Contrary to
    mbrl-lib (which substitutes ``-1e-10`` for NaN, a score that beats any honest negative
    return) an invalid candidate can therefore never be preferred to a valid one.

    Args:
        values: Returns from the objective, shape (N,) (or (N, 1)).
        num_candidates: Expected N.

    Returns:
        Tensor of shape (N,).

    Raises:
        ValueError: If ``values`` does not have N elements along a single axis.
    """
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (num_candidates,):
        raise ValueError(
            f"objective must return a tensor of shape ({num_candidates},), got {tuple(values.shape)}"
        )
    neg_inf = torch.full_like(values, -math.inf)
    return torch.where(torch.isnan(values) | (values == math.inf), neg_inf, values)


def elite_statistics(
    samples: Tensor, values: Tensor, num_elites: int, fallback_mean: Tensor, fallback_std: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Mean and standard deviation of the finite-valued top-``K`` candidates.

    Elites whose value is ``-inf`` (invalid or infeasible) are masked out of the statistics.
    If no elite is finite the fallback statistics are returned unchanged, without any host
    synchronisation.

    Args:
        samples: Candidates, shape (N, H, A).
        values: Sanitized returns, shape (N,).
        num_elites: K, with ``1 <= K <= N``.
        fallback_mean: Mean kept if no elite is valid, shape (H, A).
        fallback_std: Std kept if no elite is valid, shape (H, A).

    Returns:
        ``(mean, std, elites, elite_values, any_valid)`` with shapes (H, A), (H, A), (K, H, A),
        (K,), (); ``elites`` is sorted by decreasing value and ``any_valid`` is a bool tensor.
    """
    elite_values, idx = torch.topk(values, num_elites, dim=0, largest=True, sorted=True)
    elites = samples[idx]
    valid = torch.isfinite(elite_values).to(samples.dtype)  # (K,)
    count = valid.sum()
    weights = (valid / count.clamp_min(1.0))[:, None, None]  # (K, 1, 1)
    mean = (weights * elites).sum(dim=0)
    var = (weights * (elites - mean) ** 2).sum(dim=0)
    any_valid = count > 0
    mean = torch.where(any_valid, mean, fallback_mean)
    std = torch.where(any_valid, var.sqrt(), fallback_std)
    return mean, std, elites, elite_values, any_valid


def shift_sequence(sequence: Tensor, steps: int, fill: Tensor) -> Tensor:
    """Shifts an action sequence forward in time (receding-horizon warm start).

    Args:
        sequence: Plan, shape (H, A).
        steps: Number of executed steps to drop from the front, ``>= 0``.
        fill: Value for the ``steps`` new trailing actions, shape (A,).

    Returns:
        ``cat(sequence[steps:], fill repeated steps times)``, shape (H, A).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    horizon = sequence.shape[0]
    steps = min(steps, horizon)
    tail = fill.to(sequence).expand(steps, sequence.shape[1])
    return torch.cat([sequence[steps:], tail], dim=0)


# --------------------------------------------------------------------------------------------
# Base class.
# --------------------------------------------------------------------------------------------


class TrajectoryOptimizer(abc.ABC):
    """Maximises an objective over action sequences of shape (H, A) inside box bounds.

    Subclasses implement :meth:`_optimize`. After each :meth:`optimize` call,
    :attr:`best_value` / :attr:`best_sequence` hold the best valid candidate evaluated in that
    call (``-inf`` and the clipped initial mean if none was valid) and :attr:`last_mean` the
    final mean of the sampling distribution (used for warm starts).

    Args:
        horizon: H.
        action_low: Lower bounds, shape (A,).
        action_high: Upper bounds, shape (A,).
    """

    def __init__(self, horizon: int, action_low: Tensor | np.ndarray, action_high: Tensor | np.ndarray):
        self.horizon = int(horizon)
        self.action_low, self.action_high = as_bounds(action_low, action_high)
        self._best_value: Tensor | None = None
        self._best_sequence: Tensor | None = None
        self._last_mean: Tensor | None = None

    # ---- properties ------------------------------------------------------------------------

    @property
    def action_dim(self) -> int:
        """A."""
        return int(self.action_low.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the bounds; all optimization happens there."""
        return self.action_low.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the bounds and of the plans."""
        return self.action_low.dtype

    @property
    def best_value(self) -> Tensor | None:
        """0-d tensor: best (sanitized) return seen in the last ``optimize`` call."""
        return self._best_value

    @property
    def best_sequence(self) -> Tensor | None:
        """Tensor[H, A]: candidate achieving :attr:`best_value`."""
        return self._best_sequence

    @property
    def last_mean(self) -> Tensor | None:
        """Tensor[H, A]: final mean of the sampling distribution in the last call."""
        return self._last_mean

    @property
    def mid_action(self) -> Tensor:
        """Tensor[A]: centre of the action box, the default fill value for warm starts."""
        return (self.action_low + self.action_high) / 2

    # ---- state management ------------------------------------------------------------------

    def to(self, device: torch.device | str) -> TrajectoryOptimizer:
        """Moves bounds and internal memory to ``device`` (in place); returns ``self``."""
        self.action_low = self.action_low.to(device)
        self.action_high = self.action_high.to(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, Tensor) and name not in ("action_low", "action_high"):
                setattr(self, name, value.to(device))
        return self

    def reset(self) -> None:
        """Forgets any memory carried between calls (e.g. at an episode boundary)."""
        self._best_value = None
        self._best_sequence = None
        self._last_mean = None

    def advance(self, steps: int) -> None:
        """Informs the optimizer that ``steps`` actions of its last plan were executed.

        Optimizers with memory across calls (iCEM's elites, MPPI's previous action) shift it
        accordingly. The default does nothing.
        """
        del steps

    # ---- optimisation ----------------------------------------------------------------------

    def clip(self, actions: Tensor) -> Tensor:
        """Clamps actions of shape (..., A) into the bounds."""
        return torch.clamp(actions, self.action_low, self.action_high)

    def optimize(self, evaluate: Objective, init_mean: Tensor, generator: torch.Generator) -> Tensor:
        """Maximises ``evaluate``.

        Args:
            evaluate: Objective, ``Tensor[N, H, A] -> Tensor[N]``; higher is better.
            init_mean: Initial mean of the sampling distribution, shape (H, A).
            generator: Source of all randomness; must live on :attr:`device`.

        Returns:
            The plan, shape (H, A), inside the bounds.

        Raises:
            ValueError: If ``init_mean`` has the wrong shape.
        """
        expected = (self.horizon, self.action_dim)
        if tuple(init_mean.shape) != expected:
            raise ValueError(f"init_mean must have shape {expected}, got {tuple(init_mean.shape)}")
        init_mean = self.clip(init_mean.to(device=self.device, dtype=self.dtype))
        plan, mean, best_value, best_sequence = self._optimize(evaluate, init_mean, generator)
        self._last_mean = mean
        self._best_value = best_value
        self._best_sequence = best_sequence
        return plan

    @abc.abstractmethod
    def _optimize(
        self, evaluate: Objective, init_mean: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Runs the optimizer.

        Args:
            evaluate: Objective.
            init_mean: Clipped initial mean, shape (H, A).
            generator: Random generator on :attr:`device`.

        Returns:
            ``(plan, final_mean, best_value, best_sequence)`` with shapes (H, A), (H, A), (), (H, A).
        """

    # ---- shared pieces ---------------------------------------------------------------------

    def _evaluate(self, evaluate: Objective, samples: Tensor) -> Tensor:
        """Calls the objective and sanitizes its output, shape (N,)."""
        return sanitize_returns(evaluate(samples), samples.shape[0])

    @staticmethod
    def _update_best(
        best_value: Tensor, best_sequence: Tensor, samples: Tensor, values: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Keeps the best candidate so far without leaving the device.

        Args:
            best_value: Current best, shape ().
            best_sequence: Current best sequence, shape (H, A).
            samples: Candidates, shape (N, H, A).
            values: Sanitized returns, shape (N,).

        Returns:
            Updated ``(best_value, best_sequence)``.
        """
        value, idx = values.max(dim=0)
        candidate = samples.index_select(0, idx.reshape(1)).squeeze(0)  # traceable, no host sync
        better = value > best_value  # -inf is never better than the initial -inf
        return torch.where(better, value, best_value), torch.where(better, candidate, best_sequence)

    def _initial_best(self, init_mean: Tensor) -> tuple[Tensor, Tensor]:
        """``(-inf, init_mean)`` on the right device and dtype."""
        return torch.full((), -math.inf, dtype=self.dtype, device=self.device), init_mean.clone()

    def _default_std(self, std: float | None) -> Tensor:
        """Tensor[A]: ``std`` or, when None, a quarter of the action range."""
        if std is None:
            return (self.action_high - self.action_low) / 4
        return torch.full_like(self.action_low, float(std))
