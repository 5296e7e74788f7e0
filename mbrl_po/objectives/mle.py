"""Maximum-likelihood baselines: Gaussian NLL, and MSE on the mean only."""

from __future__ import annotations

from typing import Any

import torch

from mbrl_po.objectives.base import gaussian_nll
from mbrl_po.types import ModelBatch


class _Stateless:
    name: str

    def setup(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        return None

    def observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor) -> None:
        return None

    def extra_metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"state: the {self.name!r} objective keeps no state, got keys {sorted(state)}")


class NLLObjective(_Stateless):
    """Gaussian negative log-likelihood (the MLE baseline), summed over members, averaged over rows and dims."""

    name = "nll"

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, logvar = model(batch.inputs)
        nll = gaussian_nll(mean, logvar, batch.targets).mean(dim=(1, 2))  # (E,)
        loss = nll.sum()
        return loss, {"nll": nll.mean().detach()}


class MSEObjective(_Stateless):
    """Mean squared error of the predicted mean.

    Args:
        fit_variance: also fit the variance head by Gaussian NLL with the mean *detached*, so the mean is
            trained by MSE alone while sampling and NLL metrics stay meaningful (default). False leaves the
            variance head untrained (the paper's pure MSE baseline, whose NLL is undefined).
    """

    name = "mse"

    def __init__(self, fit_variance: bool = True) -> None:
        if not isinstance(fit_variance, bool):
            raise ValueError(f"fit_variance: got {fit_variance!r}, allowed a bool")
        self.fit_variance = fit_variance

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, logvar = model(batch.inputs)
        mse = ((mean - batch.targets) ** 2).mean(dim=(1, 2))
        loss = mse.sum()
        if self.fit_variance:
            loss = loss + gaussian_nll(mean.detach(), logvar, batch.targets).mean(dim=(1, 2)).sum()
        return loss, {"mse": mse.mean().detach()}
