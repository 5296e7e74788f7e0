"""Reward functions for the Gymnasium v5 MuJoCo tasks, computed from observations.

Every function has the signature ``fn(obs, action, next_obs, **env_params) -> Tensor[...]`` where
``obs``/``next_obs`` are (..., O) and ``action`` is (..., A) with any leading batch dims; the result is a
float tensor of the leading shape. Only tensor ops are used (no loops over the batch, no host syncs).
The keyword-only parameters mirror the environment's constructor arguments, with the same defaults;
:meth:`mbrl_po.envs.TaskConfig.planning_reward_fn` binds the ones set in a task's ``env_kwargs``.

Two kinds of functions live here:

* **Exact** (``inverted_pendulum``, ``inverted_double_pendulum``, ``reacher``, ``pusher``,
  ``point_mass``): equal to the environment's reward, checked step by step in ``tests/test_envs.py``.
  ``inverted_double_pendulum`` is exact up to ~1e-4 (see :mod:`mbrl_po.envs.terminations` on the tip
  site) and only while the joint velocities stay inside the [-10, 10] clip of the observation.
* **Proxies** (``*_proxy``) for the locomotion tasks, whose forward reward is a finite difference of the
  x position, which the observation excludes. The proxy replaces it by the trapezoid estimate
  ``(v_x(obs) + v_x(next_obs)) / 2`` from the observed velocities (for Humanoid, the centre-of-mass
  velocity from ``cinert``/``cvel`` when the observation has them, else the root velocity); the healthy,
  control and contact terms are exact whenever the observation holds what they need. Correlations with
  the true reward are measured in ``tests/test_envs.py`` and listed in ``docs/envs.md``.
"""

from __future__ import annotations

import math

import torch

from mbrl_po.envs.terminations import (
    ANT_HEALTHY_Z_RANGE,
    HOPPER_HEALTHY_ANGLE_RANGE,
    HOPPER_HEALTHY_STATE_RANGE,
    HOPPER_HEALTHY_Z_RANGE,
    HUMANOID_HEALTHY_Z_RANGE,
    WALKER2D_HEALTHY_ANGLE_RANGE,
    WALKER2D_HEALTHY_Z_RANGE,
    ant_is_healthy,
    hopper_is_healthy,
    humanoid_is_healthy,
    inverted_double_pendulum_tip,
    walker2d_is_healthy,
)
from mbrl_po.envs.terminations import inverted_pendulum as _inverted_pendulum_termination
from mbrl_po.types import TransitionFn

_INF = math.inf


def _sq_sum(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=-1)


def _trapezoid(obs: torch.Tensor, next_obs: torch.Tensor, index: int) -> torch.Tensor:
    return 0.5 * (obs[..., index] + next_obs[..., index])


def _locomotion(
    velocity: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    forward_reward_weight: float,
    ctrl_cost_weight: float,
    healthy: torch.Tensor | None = None,
    healthy_reward: float = 0.0,
) -> torch.Tensor:
    """The terms every locomotion proxy shares: ``w_f velocity + healthy_reward [healthy] - w_c |a|^2``.

    Args:
        velocity: (...) forward velocity estimate.
        action: (..., A) actions.
        next_obs: (..., O) next observations (their dtype is the healthy term's).
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        healthy: (...) bool from a ``*_is_healthy`` check (None: the task has no healthy reward).
        healthy_reward: reward per step while healthy.

    Returns:
        (...) rewards (contact costs, where a task has them, are subtracted by the caller).
    """
    reward = forward_reward_weight * velocity
    if healthy is not None:
        reward = reward + healthy_reward * healthy.to(next_obs.dtype)
    return reward - ctrl_cost_weight * _sq_sum(action)


# ----------------------------------------------------------------------------------------- exact rewards


def inverted_pendulum(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """InvertedPendulum-v5 (exact): 1 while the pole is up, 0 on the terminal step.

    Args:
        obs: (..., 4) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 4) next observations.

    Returns:
        (...) rewards.
    """
    alive = ~_inverted_pendulum_termination(obs, action, next_obs)
    return alive.to(next_obs.dtype)


def inverted_pendulum_shaped(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """A shaped *planning* reward for InvertedPendulum-v5 (not the env's reward).

    The env pays 1 per step while |angle| <= 0.2, which gives a short-horizon planner nothing to prefer among
    plans that all survive the horizon, so the cart drifts into the end of the rail (|x| = 1). This adds
    LQR-like quadratic costs on the pole angle, the cart position and velocity and the pole velocity:
    ``alive * max(15 - (angle / 0.2)^2 - 10 x^2 - x_vel^2 - 0.01 angle_vel^2, 0.05)``: positive while alive,
    so falling (0 from then on) is never preferred. The cart terms are strong on purpose: with only
    ``0.1 x^2`` the receding-horizon (H = 15) controller of the linearised pendulum has a closed-loop
    spectral radius of 0.9997 (the cart drifts), with ``10 x^2 + x_vel^2`` 0.97.
    Returns reported by the agents are always the env's own.

    Args:
        obs: (..., 4) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 4) next observations ``[x, angle, x_vel, angle_vel]``.

    Returns:
        (...) planning rewards.
    """
    alive = inverted_pendulum(obs, action, next_obs)
    x, angle, x_vel, ang_vel = next_obs[..., 0], next_obs[..., 1], next_obs[..., 2], next_obs[..., 3]
    cost = (angle / 0.2) ** 2 + 10.0 * x**2 + x_vel**2 + 0.01 * ang_vel**2
    return alive * (15.0 - cost).clamp_min(0.05)


def inverted_double_pendulum(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, *, healthy_reward: float = 10.0
) -> torch.Tensor:
    """InvertedDoublePendulum-v5 (exact to ~1e-4 while |joint velocity| < 10).

    ``reward = healthy_reward * [y > 1] - 0.01 x_tip^2 - (y_tip - 2)^2 - 1e-3 w1^2 - 5e-3 w2^2``.

    Args:
        obs: (..., 9) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 9) next observations ``[x, sin q1, sin q2, cos q1, cos q2, v, w1, w2, f]``.
        healthy_reward: the env's ``healthy_reward``.

    Returns:
        (...) rewards.
    """
    x, y = inverted_double_pendulum_tip(next_obs)
    w1, w2 = next_obs[..., 6], next_obs[..., 7]
    alive = healthy_reward * (y > 1.0).to(next_obs.dtype)
    dist_penalty = 0.01 * x * x + (y - 2.0) ** 2
    vel_penalty = 1e-3 * w1 * w1 + 5e-3 * w2 * w2
    return alive - dist_penalty - vel_penalty


def reacher(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    reward_dist_weight: float = 1.0,
    reward_control_weight: float = 1.0,
) -> torch.Tensor:
    """Reacher-v5 (exact): ``-|fingertip - target| - |a|^2`` (the z offset is 0).

    Args:
        obs: (..., 10) observations (unused).
        action: (..., 2) actions.
        next_obs: (..., 10) next observations; entries 8:10 are fingertip - target (x, y).
        reward_dist_weight: the env's ``reward_dist_weight``.
        reward_control_weight: the env's ``reward_control_weight``.

    Returns:
        (...) rewards.
    """
    dist = torch.linalg.vector_norm(next_obs[..., 8:10], dim=-1)
    return -reward_dist_weight * dist - reward_control_weight * _sq_sum(action)


def pusher(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    reward_near_weight: float = 0.5,
    reward_dist_weight: float = 1.0,
    reward_control_weight: float = 0.1,
) -> torch.Tensor:
    """Pusher-v5 (exact): ``-|object - goal| - 0.5 |object - tips_arm| - 0.1 |a|^2``.

    Args:
        obs: (..., 23) observations (unused).
        action: (..., 7) actions.
        next_obs: (..., 23) next observations; 14:17 tips_arm, 17:20 object, 20:23 goal positions.
        reward_near_weight: the env's ``reward_near_weight``.
        reward_dist_weight: the env's ``reward_dist_weight``.
        reward_control_weight: the env's ``reward_control_weight``.

    Returns:
        (...) rewards.
    """
    tips, obj, goal = next_obs[..., 14:17], next_obs[..., 17:20], next_obs[..., 20:23]
    near = torch.linalg.vector_norm(obj - tips, dim=-1)
    dist = torch.linalg.vector_norm(obj - goal, dim=-1)
    return -reward_dist_weight * dist - reward_near_weight * near - reward_control_weight * _sq_sum(action)


# --------------------------------------------------------------------------------- locomotion proxies


def halfcheetah_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.0,
    ctrl_cost_weight: float = 0.1,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """HalfCheetah-v5 proxy: ``w * mean(v_x, v_x') - 0.1 |a|^2`` (control term exact).

    Args:
        obs: (..., 17) observations; entry 8 is the root x velocity.
        action: (..., 6) actions.
        next_obs: (..., 17) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    iv = 8 if exclude_current_positions_from_observation else 9
    return _locomotion(_trapezoid(obs, next_obs, iv), action, next_obs, forward_reward_weight, ctrl_cost_weight)


def hopper_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.0,
    ctrl_cost_weight: float = 1e-3,
    healthy_reward: float = 1.0,
    healthy_state_range: tuple[float, float] = HOPPER_HEALTHY_STATE_RANGE,
    healthy_z_range: tuple[float, float] = HOPPER_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = HOPPER_HEALTHY_ANGLE_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Hopper-v5 proxy: ``mean(v_x, v_x') + healthy - 1e-3 |a|^2`` (healthy and control terms exact).

    Args:
        obs: (..., 11) observations; entry 5 is the (clipped) root x velocity.
        action: (..., 3) actions.
        next_obs: (..., 11) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        healthy_reward: reward per step while healthy (paid even if ``terminate_when_unhealthy=False``).
        healthy_state_range: see :func:`mbrl_po.envs.terminations.hopper_is_healthy`.
        healthy_z_range: see :func:`mbrl_po.envs.terminations.hopper_is_healthy`.
        healthy_angle_range: see :func:`mbrl_po.envs.terminations.hopper_is_healthy`.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    iv = 5 if exclude_current_positions_from_observation else 6
    healthy = hopper_is_healthy(
        next_obs,
        healthy_state_range=healthy_state_range,
        healthy_z_range=healthy_z_range,
        healthy_angle_range=healthy_angle_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )
    return _locomotion(
        _trapezoid(obs, next_obs, iv), action, next_obs, forward_reward_weight, ctrl_cost_weight, healthy,
        healthy_reward,
    )


def walker2d_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.0,
    ctrl_cost_weight: float = 1e-3,
    healthy_reward: float = 1.0,
    healthy_z_range: tuple[float, float] = WALKER2D_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = WALKER2D_HEALTHY_ANGLE_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Walker2d-v5 proxy: ``mean(v_x, v_x') + healthy - 1e-3 |a|^2`` (healthy and control terms exact).

    Args:
        obs: (..., 17) observations; entry 8 is the (clipped) root x velocity.
        action: (..., 6) actions.
        next_obs: (..., 17) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        healthy_reward: reward per step while healthy.
        healthy_z_range: see :func:`mbrl_po.envs.terminations.walker2d_is_healthy`.
        healthy_angle_range: see :func:`mbrl_po.envs.terminations.walker2d_is_healthy`.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    iv = 8 if exclude_current_positions_from_observation else 9
    healthy = walker2d_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        healthy_angle_range=healthy_angle_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )
    return _locomotion(
        _trapezoid(obs, next_obs, iv), action, next_obs, forward_reward_weight, ctrl_cost_weight, healthy,
        healthy_reward,
    )


def swimmer_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.0,
    ctrl_cost_weight: float = 1e-4,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Swimmer-v5 proxy: ``mean(v_x, v_x') - 1e-4 |a|^2`` (control term exact).

    Args:
        obs: (..., 8) observations; entry 3 is the root x velocity.
        action: (..., 2) actions.
        next_obs: (..., 8) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    iv = 3 if exclude_current_positions_from_observation else 5
    return _locomotion(_trapezoid(obs, next_obs, iv), action, next_obs, forward_reward_weight, ctrl_cost_weight)


def ant_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.0,
    ctrl_cost_weight: float = 0.5,
    contact_cost_weight: float = 5e-4,
    healthy_reward: float = 1.0,
    healthy_z_range: tuple[float, float] = ANT_HEALTHY_Z_RANGE,
    exclude_current_positions_from_observation: bool = True,
    include_cfrc_ext_in_observation: bool = True,
) -> torch.Tensor:
    """Ant-v5 proxy: ``mean(v_x, v_x') + healthy - 0.5 |a|^2 - 5e-4 |contact|^2``.

    The healthy and control terms are exact; the contact term is exact when the observation holds the
    (already clipped) contact forces and is left out for the truncated 27-d observation.

    Args:
        obs: (..., O) observations (O = 105, or 27 truncated); entry 13 is the torso x velocity.
        action: (..., 8) actions.
        next_obs: (..., O) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        contact_cost_weight: the env's ``contact_cost_weight``.
        healthy_reward: reward per step while healthy.
        healthy_z_range: see :func:`mbrl_po.envs.terminations.ant_is_healthy`.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.
        include_cfrc_ext_in_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    n_state = 27 if exclude_current_positions_from_observation else 29
    iv = n_state - 14
    healthy = ant_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )
    reward = _locomotion(
        _trapezoid(obs, next_obs, iv), action, next_obs, forward_reward_weight, ctrl_cost_weight, healthy,
        healthy_reward,
    )
    if include_cfrc_ext_in_observation:
        reward = reward - contact_cost_weight * _sq_sum(next_obs[..., n_state:])
    return reward


# Humanoid: 14 bodies (world + 13), qpos 24, qvel 23, 17 actuators.
_HUMANOID_NBODY, _HUMANOID_NQ, _HUMANOID_NV = 13, 24, 23


def humanoid_com_x_velocity(
    obs: torch.Tensor,
    *,
    exclude_current_positions_from_observation: bool = True,
    include_cinert_in_observation: bool = True,
    include_cvel_in_observation: bool = True,
) -> torch.Tensor:
    """x velocity of Humanoid-v5's centre of mass from ``cinert`` and ``cvel`` in the observation.

    Falls back to the root (torso) x velocity when ``cinert`` or ``cvel`` is not observed.

    Args:
        obs: (..., O) observations.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.
        include_cinert_in_observation: the Gymnasium flag of the same name.
        include_cvel_in_observation: the Gymnasium flag of the same name.

    Returns:
        (...) velocities.
    """
    n_qpos = _HUMANOID_NQ - (2 if exclude_current_positions_from_observation else 0)
    if not (include_cinert_in_observation and include_cvel_in_observation):
        return obs[..., n_qpos]
    start = n_qpos + _HUMANOID_NV
    nb = _HUMANOID_NBODY
    cinert = obs[..., start : start + 10 * nb].unflatten(-1, (nb, 10))
    cvel = obs[..., start + 10 * nb : start + 16 * nb].unflatten(-1, (nb, 6))
    mass, mass_offset = cinert[..., 9], cinert[..., 6:9]  # m, m * (xipos - subtree_com)
    omega, lin = cvel[..., :3], cvel[..., 3:]
    # sum_i m_i v_com_i with v_com_i = lin_i + omega_i x offset_i; only the x component is needed.
    cross_x = omega[..., 1] * mass_offset[..., 2] - omega[..., 2] * mass_offset[..., 1]
    momentum_x = mass * lin[..., 0] + cross_x
    return momentum_x.sum(dim=-1) / mass.sum(dim=-1)


def humanoid_proxy(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    forward_reward_weight: float = 1.25,
    ctrl_cost_weight: float = 0.1,
    contact_cost_weight: float = 5e-7,
    contact_cost_range: tuple[float, float] = (-_INF, 10.0),
    healthy_reward: float = 5.0,
    healthy_z_range: tuple[float, float] = HUMANOID_HEALTHY_Z_RANGE,
    exclude_current_positions_from_observation: bool = True,
    include_cinert_in_observation: bool = True,
    include_cvel_in_observation: bool = True,
    include_qfrc_actuator_in_observation: bool = True,
    include_cfrc_ext_in_observation: bool = True,
) -> torch.Tensor:
    """Humanoid-v5 proxy: ``1.25 mean(v_com, v_com') + healthy - 0.1 |a|^2 - contact cost``.

    The velocity is the centre-of-mass one from ``cinert``/``cvel`` when observed (348-d obs) and the
    torso velocity otherwise (truncated 45-d obs, a much weaker proxy). Healthy and control terms are
    exact; the contact term is exact when ``cfrc_ext`` is observed and left out otherwise.

    Args:
        obs: (..., O) observations (O = 348, or 45 truncated).
        action: (..., 17) actions.
        next_obs: (..., O) next observations.
        forward_reward_weight: the env's ``forward_reward_weight``.
        ctrl_cost_weight: the env's ``ctrl_cost_weight``.
        contact_cost_weight: the env's ``contact_cost_weight``.
        contact_cost_range: the env's ``contact_cost_range`` (clip of the contact cost).
        healthy_reward: reward per step while healthy.
        healthy_z_range: see :func:`mbrl_po.envs.terminations.humanoid_is_healthy`.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.
        include_cinert_in_observation: the Gymnasium flag of the same name.
        include_cvel_in_observation: the Gymnasium flag of the same name.
        include_qfrc_actuator_in_observation: the Gymnasium flag of the same name (layout only).
        include_cfrc_ext_in_observation: the Gymnasium flag of the same name.

    Returns:
        (...) rewards.
    """
    flags = {
        "exclude_current_positions_from_observation": exclude_current_positions_from_observation,
        "include_cinert_in_observation": include_cinert_in_observation,
        "include_cvel_in_observation": include_cvel_in_observation,
    }
    v_com = 0.5 * (humanoid_com_x_velocity(obs, **flags) + humanoid_com_x_velocity(next_obs, **flags))
    healthy = humanoid_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )
    reward = _locomotion(v_com, action, next_obs, forward_reward_weight, ctrl_cost_weight, healthy, healthy_reward)
    if include_cfrc_ext_in_observation:  # cfrc_ext[1:] is the last block of the observation
        lo, hi = contact_cost_range
        contact = contact_cost_weight * _sq_sum(next_obs[..., -6 * _HUMANOID_NBODY :])
        reward = reward - contact.clamp(min=lo, max=hi)
    return reward


POINT_MASS_ACTION_COST = 0.1
"""Action cost of :class:`~mbrl_po.envs.toy.PointMassEnv`."""


def point_mass_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Exact reward of :class:`~mbrl_po.envs.toy.PointMassEnv`: ``-x'^2 - 0.1 a^2``.

    Args:
        obs: (..., 2) observations (unused).
        action: (..., 1) actions (clipped to [-1, 1]).
        next_obs: (..., 2) next observations.

    Returns:
        (...) rewards.
    """
    a = action[..., 0].clamp(-1.0, 1.0)
    x = next_obs[..., 0]
    return -(x * x) - POINT_MASS_ACTION_COST * (a * a)


REWARDS: dict[str, TransitionFn] = {
    "inverted_pendulum": inverted_pendulum,
    "inverted_pendulum_shaped": inverted_pendulum_shaped,
    "inverted_double_pendulum": inverted_double_pendulum,
    "reacher": reacher,
    "pusher": pusher,
    "point_mass": point_mass_reward,
    "halfcheetah_proxy": halfcheetah_proxy,
    "hopper_proxy": hopper_proxy,
    "walker2d_proxy": walker2d_proxy,
    "swimmer_proxy": swimmer_proxy,
    "ant_proxy": ant_proxy,
    "humanoid_proxy": humanoid_proxy,
}
"""Reward functions by name (the ``reward`` / ``planning_reward`` fields of a task TOML). Names ending in
``_proxy`` are approximations (see the module docstring); ``"learned"`` is not a key."""
