"""Sampling-based trajectory optimizers (CEM, iCEM, MPPI) and a receding-horizon MPC agent.

Shapes: N candidates, H horizon, A action dimension. See ``docs/planning.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from torch import Tensor

from mbrl_po.planning.base import Objective, TrajectoryOptimizer, sanitize_returns, shift_sequence
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
    "TrajectoryEvaluatorFn",
    "TrajectoryOptimizer",
    "colored_noise",
    "make_optimizer",
    "sanitize_returns",
    "shift_sequence",
]

OPTIMIZERS: dict[str, tuple[type, type[TrajectoryOptimizer]]] = {
    "cem": (CEMConfig, CEMOptimizer),
    "icem": (ICEMConfig, ICEMOptimizer),
    "mppi": (MPPIConfig, MPPIOptimizer),
}
"""Name -> (config class, optimizer class)."""


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
            :class:`MPPIConfig`), e.g. ``population=400``.

    Returns:
        The optimizer.

    Raises:
        ValueError: For an unknown name, unknown keyword arguments, or invalid values.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {sorted(OPTIMIZERS)}")
    config_cls, optimizer_cls = OPTIMIZERS[key]
    fields = {f.name for f in dataclasses.fields(config_cls)} - {"horizon"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for optimizer {key!r}; valid: {sorted(fields)}")
    config = config_cls(horizon=horizon, **kwargs)
    return optimizer_cls(config, action_low, action_high)
