"""Model-based value of candidate action sequences, for the trajectory optimizers (PETS).

:class:`TrajectoryEvaluator` is a ``trajectory_evaluator(obs, action_sequences) -> returns`` callable as
expected by :class:`~mbrl_po.planning.MPCAgent`: every candidate is rolled out from ``obs`` by P particles
of a :class:`~mbrl_po.models.model_env.ModelEnv` and scored by the mean particle return.
"""

from __future__ import annotations

import math

import torch

from mbrl_po.models.model_env import ModelEnv

__all__ = ["TrajectoryEvaluator"]


class TrajectoryEvaluator:
    """Scores N action sequences by their average return over P model particles.

    The N * P particles are laid out candidate-major (particle p of candidate n is row ``n * P + p``) and
    rolled out together with ``model_env`` (whose propagation mode decides how particles use the ensemble
    members). A candidate any of whose particle returns is NaN or +-inf scores ``-inf``, so it can never be
    preferred to a valid one. No host synchronisation happens inside a call.

    Args:
        model_env: the model environment used for the rollouts.
        num_particles: P >= 1.
        discount: gamma in ``sum_t gamma^t r_t`` (1 = undiscounted, as in PETS).

    Raises:
        ValueError: for a non-positive ``num_particles`` or a discount outside (0, 1].
    """

    def __init__(self, model_env: ModelEnv, num_particles: int, discount: float = 1.0) -> None:
        if not isinstance(model_env, ModelEnv):
            raise ValueError(f"model_env: expected a ModelEnv, got {type(model_env).__name__}")
        if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles: must be a positive integer, got {num_particles!r}")
        if not (isinstance(discount, int | float) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount: must be in (0, 1], got {discount!r}")
        self.model_env = model_env
        self.num_particles = num_particles
        self.discount = float(discount)

    def __call__(self, obs: torch.Tensor, action_sequences: torch.Tensor) -> torch.Tensor:
        """Mean particle return of each candidate.

        Args:
            obs: (O,) current observation (a (1, O) batch is accepted).
            action_sequences: (N, H, A) candidate plans.

        Returns:
            (N,) returns on the device and in the dtype of ``action_sequences``; ``-inf`` for candidates
            with a non-finite particle return.
        """
        env = self.model_env
        if not isinstance(action_sequences, torch.Tensor) or action_sequences.ndim != 3:
            raise ValueError(
                "action_sequences: expected a tensor of shape (N, H, A), "
                f"got {getattr(action_sequences, 'shape', type(action_sequences).__name__)}"
            )
        if action_sequences.shape[2] != env.action_dim:
            raise ValueError(
                f"action_sequences: expected shape (N, H, {env.action_dim}), got {tuple(action_sequences.shape)}"
            )
        if not isinstance(obs, torch.Tensor):
            raise ValueError(f"obs: expected a torch.Tensor, got {type(obs).__name__}")
        if obs.ndim == 2 and obs.shape[0] == 1:
            obs = obs[0]
        if obs.shape != (env.obs_dim,):
            raise ValueError(f"obs: expected shape ({env.obs_dim},), got {tuple(obs.shape)}")
        n, p = action_sequences.shape[0], self.num_particles
        obs0 = obs.to(device=env.device, dtype=env.dtype).unsqueeze(0).expand(n * p, -1)
        actions = action_sequences.to(device=env.device, dtype=env.dtype).repeat_interleave(p, dim=0)
        returns = env.rollout(obs0, actions, discount=self.discount).reshape(n, p)
        valid = torch.isfinite(returns).all(dim=1)
        score = torch.where(valid, returns.mean(dim=1), torch.full_like(returns[:, 0], -math.inf))
        return score.to(device=action_sequences.device, dtype=action_sequences.dtype)
