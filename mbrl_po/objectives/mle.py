"""Maximum-likelihood baselines: Gaussian NLL, and MSE on the mean only."""

from __future__ import annotations

import torch

from mbrl_po.objectives.base import gaussian_nll
from mbrl_po.types import ModelBatch


class _Stateless:
    def setup(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        return None

    def observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor) -> None:
        return None

    def extra_metrics(self) -> dict[str, float]:
        return {}


class NLLObjective(_Stateless):
    """Gaussian negative log-likelihood (the MLE baseline), summed over members, averaged over rows and dims."""

    name = "nll"

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, logvar = model(batch.inputs)
        nll = gaussian_nll(mean, logvar, batch.targets).mean(dim=(1, 2))  # (E,)
        loss = nll.sum()
        return loss, {"nll": nll.mean().detach()}


class MSEObjective(_Stateless):
    """Mean squared error of the predicted mean; the variance head receives no gradient."""

    name = "mse"

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, _ = model(batch.inputs)
        mse = ((mean - batch.targets) ** 2).mean(dim=(1, 2))
        return mse.sum(), {"mse": mse.mean().detach()}
