"""What every dynamics objective provides, and the Gaussian helpers they share."""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch

from mbrl_po.types import ModelBatch

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log-likelihood in nats, ``½(log 2π + logvar + (y-μ)²/var)``.

    All arguments (..., T); returns (..., T).
    """
    return 0.5 * (LOG_2PI + logvar + (target - mean) ** 2 * torch.exp(-logvar))


def gaussian_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise differential entropy of N(·, exp(logvar)): ``½(log 2πe + logvar)``; (..., T) -> (..., T)."""
    return 0.5 * (LOG_2PI + 1.0 + logvar)


@runtime_checkable
class Objective(Protocol):
    """A loss over a model batch. Objectives live outside the model: they are the axis under study."""

    name: str

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss to minimise (summed over members, averaged over rows and target dims) and detached
        scalar metrics."""
        ...

    def setup(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        """Called once per ``fit`` with the (B, T) normalised training targets."""
        ...

    def observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """Called after each held-out evaluation with (E, B, T) predicted means, (B, T) targets and the (B, I)
        normalised inputs (a state-dependent U(x) is fitted to them). The trainer passes ``inputs`` only to an
        objective whose ``observe_holdout`` takes that keyword, so objectives written before it still work."""
        ...

    def extra_metrics(self) -> dict[str, float]:
        """Per-epoch metrics of the objective itself (e.g. the current U)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What the objective estimated or learned (PG: its reward matrix's state; NLL, MSE: ``{}``), saved
        by ``DynamicsTrainer.state_dict``."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        ...
