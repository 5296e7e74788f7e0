"""A tiny deterministic 1-D point mass, with its exact dynamics, reward and termination in torch.

Use it to test planners and model rollouts against a known model::

    env = PointMassEnv()
    obs, _ = env.reset(seed=0)
    next_obs = point_mass_dynamics(torch.as_tensor(obs), torch.tensor([0.5], dtype=torch.float64))

The exact reward and termination live with the other tasks' in :mod:`mbrl_po.envs.rewards` and
:mod:`mbrl_po.envs.terminations` (so the registries do not import this module) and are re-exported here.

Dynamics (semi-implicit Euler, ``dt = 0.1``, action clipped to [-1, 1])::

    v' = v + dt * a          x' = x + dt * v'
    reward = -x'^2 - 0.1 * a^2          terminated = |x'| > 2

Episodes start at ``x ~ U(-1, 1)`` (or a fixed ``x0``), ``v = 0``, and are truncated after 40 steps.
The environment is not registered with Gymnasium: instantiate it directly, or use
:func:`point_mass_task` with :func:`mbrl_po.envs.make_env`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mbrl_po.envs.rewards import POINT_MASS_ACTION_COST, point_mass_reward
from mbrl_po.envs.task import TaskConfig
from mbrl_po.envs.terminations import POINT_MASS_X_LIMIT, point_mass_termination

__all__ = [
    "POINT_MASS_ACTION_COST",
    "POINT_MASS_DT",
    "POINT_MASS_ENTRY_POINT",
    "POINT_MASS_MAX_STEPS",
    "POINT_MASS_X_LIMIT",
    "PointMassEnv",
    "point_mass_dynamics",
    "point_mass_reward",
    "point_mass_task",
    "point_mass_termination",
]

POINT_MASS_DT = 0.1
POINT_MASS_MAX_STEPS = 40
POINT_MASS_ENTRY_POINT = "mbrl_po.envs.toy:PointMassEnv"


class PointMassEnv(gym.Env[np.ndarray, np.ndarray]):
    """1-D point mass driven by a bounded force; the goal is to bring it to rest at x = 0.

    Observation: ``[x, v]`` (float64). Action: force in [-1, 1] (shape (1,); clipped).

    Args:
        x0: fixed start position; None draws it from U(-1, 1) with the reset seed.
        max_steps: steps before the episode is truncated.
        render_mode: accepted for API compatibility; nothing is rendered.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self, x0: float | None = None, max_steps: int = POINT_MASS_MAX_STEPS, render_mode: str | None = None
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps: expected a positive int, got {max_steps}")
        self.x0 = x0
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.dt = POINT_MASS_DT
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._state = np.zeros(2, dtype=np.float64)
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        x = self.np_random.uniform(-1.0, 1.0) if self.x0 is None else float(self.x0)
        self._state = np.array([x, 0.0], dtype=np.float64)
        self._steps = 0
        return self._state.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        x, v = self._state
        v = v + POINT_MASS_DT * a
        x = x + POINT_MASS_DT * v
        self._state = np.array([x, v], dtype=np.float64)
        self._steps += 1
        reward = -(x * x) - POINT_MASS_ACTION_COST * (a * a)
        terminated = bool(abs(x) > POINT_MASS_X_LIMIT)
        truncated = self._steps >= self.max_steps
        return self._state.copy(), float(reward), terminated, truncated, {}


def point_mass_dynamics(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Exact next observation of :class:`PointMassEnv`.

    Args:
        obs: (..., 2) observations ``[x, v]``.
        action: (..., 1) actions (clipped to [-1, 1]).

    Returns:
        (..., 2) next observations.
    """
    a = action[..., 0].clamp(-1.0, 1.0)
    v = obs[..., 1] + POINT_MASS_DT * a
    x = obs[..., 0] + POINT_MASS_DT * v
    return torch.stack((x, v), dim=-1)


def point_mass_task() -> TaskConfig:
    """The point mass as a :class:`~mbrl_po.envs.TaskConfig` (exact reward and termination).

    Returns:
        A task whose ``id`` is the entry point ``"mbrl_po.envs.toy:PointMassEnv"``;
        :func:`mbrl_po.envs.make_env` builds it without registering it with Gymnasium.
    """
    return TaskConfig(
        name="point_mass",
        id=POINT_MASS_ENTRY_POINT,
        max_episode_steps=POINT_MASS_MAX_STEPS,
        termination="point_mass",
        reward="point_mass",
        planning_reward="point_mass",
    )
