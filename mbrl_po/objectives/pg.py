"""The policy-gradient objective of arXiv 2510.07624 with a Mahalanobis reward.

The model p_θ(·|x) is treated as a policy and trained to maximise, per data point (x, y),

    J(θ) = E_{ŷ ~ p_θ(·|x)} [ r_U(ŷ, y) ] + λ · H(p_θ(·|x)),      r_U(ŷ, y) = -(ŷ - y)ᵀ U (ŷ - y).

As in the authors' code, J is divided by the target dim T (log-prob and entropy averaged over dims), which
keeps the r:H balance of the theory. Two gradient estimators:

* ``score`` (the paper's): G samples without gradient, surrogate ``mean[log p_θ(ŷ) · r̃]`` where r̃ is the
  transformed reward minus an optional baseline;
* ``pathwise``: ŷ = μ + σ ε drawn with ``rsample``, loss ``-mean r(ŷ)``; same optimum, lower variance.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mbrl_po.objectives.base import LOG_2PI, gaussian_entropy
from mbrl_po.objectives.names import REWARD_MATRICES
from mbrl_po.objectives.reward_matrix import RewardMatrix, make_reward_matrix
from mbrl_po.types import ModelBatch

ESTIMATORS = ("score", "pathwise")
REWARD_TRANSFORMS = ("none", "normalize", "rbf")
BASELINES = ("none", "loo")


def mahalanobis_reward(diff: torch.Tensor, u: torch.Tensor, diagonal: bool) -> torch.Tensor:
    """r = -dᵀ U d over the last axis. diff (..., T), u (T, T) -> (...)."""
    if diagonal:
        return -(diff * diff * u.diagonal()).sum(-1)
    return -((diff @ u) * diff).sum(-1)


def expected_reward(
    mean: torch.Tensor, logvar: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """Closed form of E_{ŷ~N(μ, diag σ²)}[r_U(ŷ, y)] = -(μ-y)ᵀU(μ-y) - Σ_t U_tt σ_t².

    mean, logvar (E, B, T); targets (B, T) or (E, B, T); u (T, T). Returns (E, B).
    """
    d = mean - targets
    return -((d @ u) * d).sum(-1) - (torch.exp(logvar) * u.diagonal()).sum(-1)


def expected_reward_diagonal(
    mean: torch.Tensor, logvar: torch.Tensor, targets: torch.Tensor, u_diag: torch.Tensor
) -> torch.Tensor:
    """Closed form of E[r_U] for a per-sample diagonal U(x): -Σ_t U_t(x) ((μ_t-y_t)² + σ_t²).

    mean, logvar (E, B, T); targets (B, T) or (E, B, T); u_diag (B, T) or (E, B, T). Returns (E, B).
    """
    d = mean - targets
    return -(u_diag * (d * d + torch.exp(logvar))).sum(-1)


def _finite_positive(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


class PGObjective:
    """Maximise E[r_U(ŷ, y)] + λ H(p_θ(·|x)) with a score-function or pathwise estimator.

    Args:
        reward_matrix: the U to use (a :class:`~mbrl_po.objectives.reward_matrix.RewardMatrix`), or its name
            (one of ``REWARD_MATRICES``, e.g. ``"learned"``; built by ``make_reward_matrix``).
        entropy_weight: λ > 0.
        num_samples: G, samples per data point (default 5).
        estimator: ``"score"`` or ``"pathwise"``.
        reward_transform: ``"none"``, ``"normalize"`` (r - min over the G samples, the authors' option) or
            ``"rbf"`` (exp(γ r)).
        rbf_gamma: γ of the rbf transform.
        baseline: ``"loo"`` (leave-one-out mean of the other G-1 rewards: unbiased, our default) or ``"none"``
            (the paper's code). Score estimator only.
        clip_logprob: optional c > 0; the per-dim log-prob is clamped to [-c, c] (the authors' option).
        covariance, structure, init, base, beta, fit_steps: the reward matrix's options when ``reward_matrix``
            is a name (None: not given; which name takes which: ``REWARD_MATRIX_OPTIONS``; ``fixed``: ``init`` is
            U; ``beta``: the tempering of ``state_inverse_cov``, the PG counterpart of β-NLL's β; ``fit_steps``:
            Adam steps of each refit of the state heuristic's variance net, default 50, after every held-out
            evaluation: fewer where evaluations are frequent, as with full-batch updates).

    Attributes:
        reward_matrix: the :class:`~mbrl_po.objectives.reward_matrix.RewardMatrix` in use.
    """

    name = "pg"

    def __init__(
        self,
        reward_matrix: RewardMatrix | str = "learned",
        entropy_weight: float = 1.0,
        num_samples: int = 5,
        estimator: str = "score",
        reward_transform: str = "none",
        rbf_gamma: float = 1.0,
        baseline: str = "loo",
        clip_logprob: float | None = None,
        covariance: str | None = None,
        structure: str | None = None,
        init: float | torch.Tensor | str | None = None,
        base: str | None = None,
        beta: float | None = None,
        fit_steps: int | None = None,
    ) -> None:
        if not (isinstance(entropy_weight, int | float) and entropy_weight > 0 and math.isfinite(entropy_weight)):
            raise ValueError(f"entropy_weight: λ must be a finite number > 0, got {entropy_weight!r}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples: must be an integer >= 1, got {num_samples!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: got {estimator!r}, allowed {list(ESTIMATORS)}")
        if reward_transform not in REWARD_TRANSFORMS:
            raise ValueError(f"reward_transform: got {reward_transform!r}, allowed {list(REWARD_TRANSFORMS)}")
        if baseline not in BASELINES:
            raise ValueError(f"baseline: got {baseline!r}, allowed {list(BASELINES)}")
        if baseline == "loo" and num_samples < 2 and estimator == "score":
            raise ValueError("num_samples: the 'loo' baseline needs num_samples >= 2, got 1")
        if clip_logprob is not None and not _finite_positive(clip_logprob):
            raise ValueError(f"clip_logprob: got {clip_logprob!r}, allowed None or a finite number > 0")
        if not _finite_positive(rbf_gamma):
            raise ValueError(f"rbf_gamma: got {rbf_gamma!r}, allowed a finite number > 0")
        options = {"covariance": covariance, "structure": structure, "init": init, "base": base, "beta": beta,
                   "fit_steps": fit_steps}
        if isinstance(reward_matrix, str):
            reward_matrix = make_reward_matrix(reward_matrix, entropy_weight=entropy_weight, **options)
        elif not isinstance(reward_matrix, RewardMatrix):
            raise ValueError(f"reward_matrix: got {reward_matrix!r}, allowed a RewardMatrix or a name in "
                             f"{list(REWARD_MATRICES)}")
        else:
            for key, value in options.items():
                if value is not None:
                    raise ValueError(f"{key}: got {value!r} with a RewardMatrix object; it is that object's option")
            lam = reward_matrix.entropy_weight
            if lam is not None and abs(lam - entropy_weight) > 1e-12:
                raise ValueError(
                    f"entropy_weight: {entropy_weight} differs from the reward matrix's λ ({lam}); pass the same "
                    f"λ to both"
                )
        self.reward_matrix = reward_matrix
        self.entropy_weight = float(entropy_weight)
        self.num_samples = num_samples
        self.estimator = estimator
        self.reward_transform = reward_transform
        self.rbf_gamma = rbf_gamma
        self.baseline = baseline
        self.clip_logprob = clip_logprob
        self.generator: torch.Generator | None = None

    # ------------------------------------------------------------------ hooks used by the trainer
    def setup(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        self.reward_matrix.setup(train_targets)

    def observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """Show the reward matrix the held-out residuals (and, to a state-dependent U, their inputs)."""
        if self.reward_matrix.state_dependent:
            self.reward_matrix.observe_residuals(targets - mean, inputs=inputs)
        else:
            self.reward_matrix.observe_residuals(targets - mean)

    def extra_metrics(self) -> dict[str, float]:
        return self.reward_matrix.describe()

    def state_dict(self) -> dict[str, Any]:
        """``{"reward_matrix": self.reward_matrix.state_dict()}``: U and what it was estimated from."""
        return {"reward_matrix": self.reward_matrix.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward_matrix.load_state_dict(state["reward_matrix"])

    # ------------------------------------------------------------------ the objective
    def _transform(self, r: torch.Tensor) -> torch.Tensor:
        if self.reward_transform == "normalize":
            return r - r.min(dim=0, keepdim=True).values.detach()
        if self.reward_transform == "rbf":
            return torch.exp(self.rbf_gamma * r)
        return r

    def loss(self, model: torch.nn.Module, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative of J / T, summed over members. batch.inputs (E, B, I), batch.targets (E, B, T)."""
        mean, logvar = model(batch.inputs)
        return self.loss_from_prediction(mean, logvar, batch.targets, inputs=batch.inputs)

    def _reward(self, diff: torch.Tensor, u: torch.Tensor, diagonal: bool) -> torch.Tensor:
        """r_U of (G, E, B, T) differences: a (T, T) U, or the per-sample diagonal (E, B, T) / (B, T) of U(x)."""
        if u.ndim == 2 and not self.reward_matrix.state_dependent:
            return mahalanobis_reward(diff, u, diagonal)
        return -(diff * diff * u).sum(-1)

    def loss_from_prediction(
        self, mean: torch.Tensor, logvar: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as :meth:`loss` from (E, B, T) means/log-variances and (E, B, T) or (B, T) targets; a
        state-dependent U also needs the (E, B, I) or (B, I) normalised ``inputs``."""
        rm = self.reward_matrix
        scale = None
        if rm.state_dependent:
            if inputs is None:
                raise ValueError(f"inputs: reward_matrix={rm.kind!r} depends on x; pass the model's inputs")
            u = rm.diagonal_at(inputs).detach()
            scale = rm.entropy_scale_at(inputs)
        else:
            u = rm.matrix().detach()
        diagonal = rm.is_diagonal()
        dim = mean.shape[-1]
        std = torch.exp(0.5 * logvar)
        g = self.num_samples
        eps = torch.randn((g, *mean.shape), generator=self.generator, device=mean.device, dtype=mean.dtype)
        entropy_elem = gaussian_entropy(logvar)
        if scale is not None:  # a per-sample λ(x) = λ w(x) (the tempered heuristic)
            entropy_elem = entropy_elem * scale.detach()
        entropy = entropy_elem.sum(-1).mean(-1)  # (E,)
        if self.estimator == "pathwise":
            y_hat = mean + std * eps
            r = self._transform(self._reward(y_hat - targets, u, diagonal))  # (G, E, B)
            j = r.mean(dim=(0, 2)) + self.entropy_weight * entropy
            reward_mean = r.detach().mean()
        else:
            y_hat = (mean + std * eps).detach()
            r = self._transform(self._reward(y_hat - targets, u, diagonal))  # (G, E, B)
            if self.baseline == "loo":
                adv = r - (r.sum(0, keepdim=True) - r) / (g - 1)
            else:
                adv = r
            logp = -0.5 * (LOG_2PI + logvar + (y_hat - mean) ** 2 * torch.exp(-logvar)).sum(-1)  # (G, E, B)
            if self.clip_logprob is not None:
                c = self.clip_logprob * dim
                logp = logp.clamp(-c, c)
            j = (logp * adv.detach()).mean(dim=(0, 2)) + self.entropy_weight * entropy
            reward_mean = r.detach().mean()
        loss = -(j / dim).sum()
        return loss, {"pg_reward": reward_mean, "entropy": entropy.detach().mean() / dim}

    def loss_full_covariance(
        self, mean: torch.Tensor, scale_tril: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The PG loss for a full-covariance Gaussian policy N(mean, L Lᵀ) (the paper's ``PG_Full_Cov``).

        mean (..., B, T), scale_tril (..., B, T, T) lower triangular with positive diagonal, targets (..., B, T).
        With U = (λ/2)Σ⁻¹ its optimum is N(μ, Σ) exactly; a diagonal model can only reach
        σ_t² = λ / (2 U_tt). Returns the loss averaged over rows (and leading dims) and metrics.
        """
        if self.reward_matrix.state_dependent:
            raise ValueError(f"reward_matrix: {self.reward_matrix.kind!r} depends on x; the full-covariance loss "
                             f"takes a constant U")
        u = self.reward_matrix.matrix().detach()
        dim = mean.shape[-1]
        dist = torch.distributions.MultivariateNormal(mean, scale_tril=scale_tril)
        g = self.num_samples
        eps = torch.randn((g, *mean.shape), generator=self.generator, device=mean.device, dtype=mean.dtype)
        y_hat = mean + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        entropy = dist.entropy()
        if self.estimator == "pathwise":
            r = self._transform(mahalanobis_reward(y_hat - targets, u, False))
            j = r.mean(0) + self.entropy_weight * entropy
        else:
            y_hat = y_hat.detach()
            r = self._transform(mahalanobis_reward(y_hat - targets, u, False))
            adv = r - (r.sum(0, keepdim=True) - r) / (g - 1) if self.baseline == "loo" else r
            logp = dist.log_prob(y_hat)
            if self.clip_logprob is not None:
                logp = logp.clamp(-self.clip_logprob * dim, self.clip_logprob * dim)
            j = (logp * adv.detach()).mean(0) + self.entropy_weight * entropy
        return -(j / dim).mean(), {"pg_reward": r.detach().mean(), "entropy": entropy.detach().mean() / dim}

    def analytic_objective(
        self, mean: torch.Tensor, logvar: torch.Tensor, targets: torch.Tensor, u: torch.Tensor | None = None,
        *, u_diag: torch.Tensor | None = None, entropy_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exact J / T (no sampling), summed over members: used for the bilevel hypergradient.

        mean, logvar (E, B, T); targets (B, T) or (E, B, T); either ``u`` (T, T) or ``u_diag``, the per-sample
        diagonal (B, T) or (E, B, T) of a state-dependent U(x); ``entropy_scale`` an optional per-sample factor
        w(x) on λ (:meth:`RewardMatrix.entropy_scale_at`). Returns a scalar.
        """
        dim = mean.shape[-1]
        if (u is None) == (u_diag is None):
            raise ValueError("u, u_diag: give exactly one (a (T, T) U, or the per-sample diagonal of U(x))")
        if u_diag is not None:
            j = expected_reward_diagonal(mean, logvar, targets, u_diag).mean(-1)
        else:
            j = expected_reward(mean, logvar, targets, u).mean(-1)
        h = gaussian_entropy(logvar)
        if entropy_scale is not None:
            h = h * entropy_scale
        j = j + self.entropy_weight * h.sum(-1).mean(-1)
        return (j / dim).sum()
