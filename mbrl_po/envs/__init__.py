"""Tasks (one TOML per Gymnasium v5 MuJoCo task), termination and reward functions, and a toy env.

Typical use::

    from mbrl_po.envs import load_task, make_env

    task = load_task("hopper")
    env = make_env(task, seed=0)
    is_done = task.termination_fn()          # fn(obs, action, next_obs) -> (...) bool
    reward = task.planning_reward_fn()       # fn(obs, action, next_obs) -> (...) float, or None
"""

from mbrl_po.envs.rewards import REWARDS
from mbrl_po.envs.task import (
    TaskConfig,
    bind_env_kwargs,
    custom_task,
    list_tasks,
    load_task,
    make_env,
    task_from_dict,
)
from mbrl_po.envs.terminations import TERMINATIONS, never
from mbrl_po.envs.toy import (
    PointMassEnv,
    point_mass_dynamics,
    point_mass_reward,
    point_mass_task,
    point_mass_termination,
)
from mbrl_po.envs.wrappers import DistractedObservation, make_wrapped_env
from mbrl_po.types import TransitionFn

__all__ = [
    "REWARDS",
    "TERMINATIONS",
    "DistractedObservation",
    "PointMassEnv",
    "TaskConfig",
    "TransitionFn",
    "bind_env_kwargs",
    "custom_task",
    "list_tasks",
    "load_task",
    "make_env",
    "make_wrapped_env",
    "never",
    "point_mass_dynamics",
    "point_mass_reward",
    "point_mass_task",
    "point_mass_termination",
    "task_from_dict",
]
