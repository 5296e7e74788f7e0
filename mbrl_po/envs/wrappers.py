"""Observation wrappers of the tasks a benchmark suite derives (``[tasks.<name>]`` of ``benchmarks/suites/``).

:func:`make_wrapped_env` is the gymnasium entry point such a derived task names
(``id = "mbrl_po.envs.wrappers:make_wrapped_env"``), so a run on one resumes with the installed package alone.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class DistractedObservation(gym.ObservationWrapper):
    """Appends ``distractor_dims`` pure-noise dimensions and adds Gaussian noise to the task's own dims.

    The noise is drawn from the wrapped env's own generator (``env.unwrapped.np_random``), so seeding the env
    seeds it, and an agent checkpoint of that generator restores it exactly.

    Args:
        env: the env to wrap (a Box observation space).
        distractor_dims: k >= 0 dims of i.i.d. ``N(0, distractor_std^2)`` noise, redrawn every step.
        distractor_std: their standard deviation.
        obs_noise_std: standard deviation of the Gaussian noise added to the original observation dims.
    """

    def __init__(self, env: gym.Env, distractor_dims: int = 0, distractor_std: float = 1.0,
                 obs_noise_std: float = 0.0) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"observation_space: got {space!r}, allowed a 1-D Box")
        self.distractor_dims = int(distractor_dims)
        self.distractor_std = float(distractor_std)
        self.obs_noise_std = float(obs_noise_std)
        low = np.concatenate([space.low, np.full(self.distractor_dims, -np.inf)]).astype(space.dtype)
        high = np.concatenate([space.high, np.full(self.distractor_dims, np.inf)]).astype(space.dtype)
        if self.obs_noise_std > 0:
            low[: space.shape[0]], high[: space.shape[0]] = -np.inf, np.inf
        self.observation_space = gym.spaces.Box(low, high, dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        rng = self.env.unwrapped.np_random
        obs = np.asarray(observation)
        if self.obs_noise_std > 0:
            obs = obs + rng.normal(0.0, self.obs_noise_std, size=obs.shape)
        if self.distractor_dims:
            obs = np.concatenate([obs, rng.normal(0.0, self.distractor_std, size=self.distractor_dims)])
        return obs.astype(self.observation_space.dtype)


def make_wrapped_env(env_id: str, distractor_dims: int = 0, distractor_std: float = 1.0,
                     obs_noise_std: float = 0.0, **kwargs: Any) -> gym.Env:
    """Gymnasium entry point of a derived task: ``gym.make(env_id, **kwargs)`` inside
    :class:`DistractedObservation` (the outer ``gym.make`` adds the task's time limit)."""
    return DistractedObservation(gym.make(env_id, **kwargs), distractor_dims, distractor_std, obs_noise_std)
