"""Named batches and the shape letters used across mbrl_po.

Shape letters (used in every docstring):
    E  ensemble members          B  batch of transitions
    N  candidate action plans    H  planning / rollout horizon
    P  particles per candidate   O  observation dim
    A  action dim                I  model input dim (O + A)
    T  model target dim (O, plus 1 when the reward is learned)
    G  samples drawn per data point by the PG objective
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

TransitionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(obs (..., O), action (..., A), next_obs (..., O)) -> (...)``: a reward or a termination function of one
transition (float rewards, bool flags), on any batch shape and device."""


@dataclass(frozen=True)
class TransitionData:
    """Validated real transitions, all on one device, float32.

    Attributes:
        obs: (B, O) observations.
        actions: (B, A) actions.
        next_obs: (B, O) next observations.
        rewards: (B,) rewards.
        terminated: (B,) bool, true where the episode ended by termination (not truncation).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def index(self, idx: torch.Tensor) -> TransitionData:
        """Rows ``idx`` (any integer tensor) of every field."""
        return TransitionData(
            self.obs[idx], self.actions[idx], self.next_obs[idx], self.rewards[idx], self.terminated[idx]
        )

    def to(self, device: torch.device | str) -> TransitionData:
        return TransitionData(
            self.obs.to(device),
            self.actions.to(device),
            self.next_obs.to(device),
            self.rewards.to(device),
            self.terminated.to(device),
        )


@dataclass(frozen=True)
class ModelBatch:
    """A minibatch in the model's normalised space, one slice per ensemble member.

    Attributes:
        inputs: (E, B, I) normalised model inputs.
        targets: (E, B, T) normalised targets.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
