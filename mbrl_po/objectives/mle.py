"""Maximum-likelihood baselines: Gaussian NLL, β-NLL (Seitzer et al., ICLR 2022), and MSE on the mean only."""

from __future__ import annotations

import math
from typing import Any

import torch

from mbrl_po.objectives.base import gaussian_nll
from mbrl_po.types import ModelBatch


class _Stateless:
    name: str

    def setup(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        return None

    def observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
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


class BetaNLLObjective(_Stateless):
    """β-NLL (Seitzer et al., "On the pitfalls of heteroscedastic uncertainty estimation with probabilistic
    neural networks", ICLR 2022): the Gaussian NLL of each element weighted by a stop-gradient ``σ^{2β}``,

        loss = Σ_members mean_{rows, dims} [ sg(σ²)^β · ½(log 2π + log σ² + (y-μ)²/σ²) ].

    The weight does not change where the per-element optimum is (σ² = (y-μ)² for the variance, the same
    stationary points as NLL), only how strongly each element pulls: the mean's gradient is
    ``σ^{2β} (μ-y)/σ² = (μ-y)/σ^{2(1-β)}``. β = 0 is NLL exactly; β = 1 gives the mean the MSE's gradient
    ``(μ-y)`` (half of ``d(y-μ)²/dμ``), so badly fitted, high-variance points are no longer down-weighted.

    Args:
        beta: β in [0, 1] (the paper recommends 0.5).
    """

    name = "beta_nll"

    def __init__(self, beta: float = 0.5) -> None:
        ok = isinstance(beta, int | float) and not isinstance(beta, bool) and math.isfinite(beta)
        if not (ok and 0.0 <= beta <= 1.0):
            raise ValueError(f"beta: got {beta!r}, allowed a number in [0, 1]")
        self.beta = float(beta)

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, logvar = model(batch.inputs)
        return self.loss_from_prediction(mean, logvar, batch.targets)

    def loss_from_prediction(
        self, mean: torch.Tensor, logvar: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as :meth:`loss` from (E, B, T) means/log-variances and (E, B, T) or (B, T) targets."""
        elem = gaussian_nll(mean, logvar, targets)
        if self.beta != 0.0:
            elem = elem * torch.exp(self.beta * logvar.detach())
        loss = elem.mean(dim=(1, 2)).sum()
        nll = gaussian_nll(mean.detach(), logvar.detach(), targets).mean()
        return loss, {"beta_nll": loss.detach() / mean.shape[0], "nll": nll}


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
