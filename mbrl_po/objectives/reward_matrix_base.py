"""The base class of the reward matrices, :class:`RewardMatrix`, on its own so that the constant types
(:mod:`mbrl_po.objectives.reward_matrix`) and the state-dependent ones
(:mod:`mbrl_po.objectives.state_reward_matrix`) both build on it without importing each other."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

__all__ = ["RewardMatrix", "check_lambda"]


def check_lambda(entropy_weight: Any) -> float:
    """λ as a float; ValueError naming ``entropy_weight`` unless it is a finite number > 0."""
    ok = isinstance(entropy_weight, int | float) and not isinstance(entropy_weight, bool)
    if not (ok and entropy_weight > 0 and math.isfinite(entropy_weight)):
        raise ValueError(f"entropy_weight: λ must be a finite number > 0, got {entropy_weight!r}")
    return float(entropy_weight)


class RewardMatrix(ABC):
    """What the PG objective (and the bilevel solver) need of a reward matrix U, and its own state.

    Attributes:
        kind: the name ``make_reward_matrix`` knows it by (one of ``REWARD_MATRICES``).
        entropy_weight: the λ its U is scaled with (the PG objective checks it has the same), or None when U does
            not depend on λ (a fixed U).

    The trainer calls :meth:`setup` once per fit with the (B, T) training targets, then
    :meth:`observe_residuals` after every held-out evaluation; the objective reads :meth:`matrix` (T, T).
    """

    kind: str
    entropy_weight: float | None = None
    #: U depends on the input x (:meth:`diagonal_at`); :meth:`matrix` then raises
    state_dependent: bool = False
    #: U has parameters that :class:`~mbrl_po.training.bilevel.BilevelSolver` learns (:meth:`parameters`)
    learnable: bool = False
    #: the solver's outer learning rate is multiplied by this for :meth:`parameters` (a network needs smaller
    #: steps than the log of a scalar U)
    outer_lr_scale: float = 1.0

    def parameters(self) -> list[nn.Parameter]:
        """What the bilevel solver optimises (the same objects across fits); [] for a U that is not learned or
        not set up yet."""
        return []

    def diagonal_at(self, inputs: torch.Tensor) -> torch.Tensor:
        """The diagonal of U at each input: (..., I) normalised inputs -> (..., T). A diagonal U that does not
        depend on x repeats its diagonal; a state-dependent U overrides this (differentiable in its
        :meth:`parameters` when learned)."""
        if not self.is_diagonal():
            raise ValueError(f"reward_matrix: {self.kind!r} is not diagonal; diagonal_at needs a diagonal U")
        d = self.matrix().diagonal()
        return d.expand(*inputs.shape[:-1], d.shape[0])

    def entropy_scale_at(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """A per-sample, per-dim factor w(x) (..., T) on λ, or None (w = 1: the default). PG then maximises
        Σ_t w_t(x)·(E[r_t] + λ H_t): the optimum variance λ w / (2 w U) = λ/(2U) is unchanged, but each sample
        pulls on the mean with weight w(x) U(x) (the tempered heuristic, ``beta``, uses it)."""
        return None

    @property
    @abstractmethod
    def ready(self) -> bool:
        """Whether :meth:`matrix` has a U to return (after :meth:`setup`, or a loaded state that holds one)."""

    @abstractmethod
    def setup(self, train_targets: torch.Tensor) -> None:
        """Make U ready for targets of dim T from the (B, T) normalised training targets of a fit."""

    def observe_residuals(  # noqa: B027 - most types ignore residuals
        self, residuals: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> None:
        """See (..., T) held-out residuals ``y - μ̂(x)`` of the current model (E, B, T as the trainer passes them)
        and, for a state-dependent U, their (B, I) normalised inputs."""

    @abstractmethod
    def matrix(self) -> torch.Tensor:
        """The current U, (T, T)."""

    @abstractmethod
    def is_diagonal(self) -> bool:
        """Whether U is diagonal by construction (the objective then skips the matmul)."""

    @abstractmethod
    def describe(self) -> dict[str, float]:
        """Scalars of U for logging (``u`` for a scalar U, else ``u_mean_diag`` and more); {} when not ready."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue as this U would (tensors cloned), with its ``kind``."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of the same kind (ValueError naming the field otherwise)."""

    def _check_state(self, state: dict[str, Any], keys: tuple[str, ...]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"kind: the saved reward matrix is {state.get('kind')!r}, this one is {self.kind!r}")
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"state: the saved {self.kind!r} reward matrix lacks {missing}")
