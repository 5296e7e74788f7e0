"""Sampling-based trajectory optimizers (CEM, iCEM, MPPI) and a receding-horizon MPC agent.

Shapes: N candidates, H horizon, A action dimension. See ``docs/planning.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from torch import Tensor

from mbrl_po.planning.base import Objective, OptionError, TrajectoryOptimizer, sanitize_returns, shift_sequence
from mbrl_po.planning.cem import CEMConfig, CEMOptimizer
from mbrl_po.planning.icem import ICEMConfig, ICEMOptimizer, colored_noise
from mbrl_po.planning.mpc import MPCAgent, TrajectoryEvaluatorFn
from mbrl_po.planning.mppi import MPPIConfig, MPPIOptimizer

__all__ = [
    "OPTIMIZERS",
    "CEMConfig",
    "CEMOptimizer",
    "ICEMConfig",
    "ICEMOptimizer",
    "MPCAgent",
    "MPPIConfig",
    "MPPIOptimizer",
    "Objective",
    "OptionError",
    "TrajectoryEvaluatorFn",
    "TrajectoryOptimizer",
    "colored_noise",
    "make_optimizer",
    "optimizer_config",
    "optimizer_options",
    "sanitize_returns",
    "shift_sequence",
]

OPTIMIZERS: dict[str, tuple[type, type[TrajectoryOptimizer]]] = {
    "cem": (CEMConfig, CEMOptimizer),
    "icem": (ICEMConfig, ICEMOptimizer),
    "mppi": (MPPIConfig, MPPIOptimizer),
}
"""Name -> (config class, optimizer class)."""


def _lookup(name: str) -> tuple[str, type, type[TrajectoryOptimizer]]:
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {sorted(OPTIMIZERS)}")
    return (key, *OPTIMIZERS[key])


def optimizer_options(name: str) -> tuple[str, ...]:
    """The keyword arguments :func:`make_optimizer` takes for optimizer ``name`` (its config's fields but
    ``horizon``), in declaration order."""
    _, config_cls, _ = _lookup(name)
    return tuple(f.name for f in dataclasses.fields(config_cls) if f.name != "horizon")


def optimizer_config(name: str, horizon: int, **kwargs: Any) -> Any:
    """The validated config of optimizer ``name`` (:class:`CEMConfig`, :class:`ICEMConfig` or
    :class:`MPPIConfig`); no tensor is built, so a caller can check options before it has action bounds.

    Raises:
        ValueError: For an unknown name or unknown keyword arguments; :class:`OptionError` (a ValueError
            naming the field, the value and what is allowed) for an invalid value.
    """
    key, config_cls, _ = _lookup(name)
    fields = set(optimizer_options(key))
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for optimizer {key!r}; valid: {sorted(fields)}")
    return config_cls(horizon=horizon, **kwargs)


def make_optimizer(
    name: str,
    horizon: int,
    action_low: Tensor | np.ndarray,
    action_high: Tensor | np.ndarray,
    **kwargs: Any,
) -> TrajectoryOptimizer:
    """Builds a trajectory optimizer by name.

    Args:
        name: One of ``"cem"``, ``"icem"``, ``"mppi"`` (case-insensitive).
        horizon: H.
        action_low: Lower bounds, shape (A,); the optimizer works on their device.
        action_high: Upper bounds, shape (A,).
        **kwargs: Fields of the matching config (:class:`CEMConfig`, :class:`ICEMConfig`,
            :class:`MPPIConfig`), e.g. ``population=400``; :func:`optimizer_options` lists them.

    Returns:
        The optimizer.

    Raises:
        ValueError: For an unknown name, unknown keyword arguments, or invalid values (an
            :class:`OptionError` for the latter).
    """
    key, _, optimizer_cls = _lookup(name)
    return optimizer_cls(optimizer_config(key, horizon, **kwargs), action_low, action_high)
