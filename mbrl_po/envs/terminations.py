"""Termination functions for the Gymnasium v5 MuJoCo tasks, computed from observations.

Every function has the signature ``fn(obs, action, next_obs, **env_params) -> Tensor[...]`` where
``obs`` and ``next_obs`` are (..., O) and ``action`` is (..., A) with any leading batch dims (B, or
E, N, P, ...). The result is a bool tensor of the leading shape, true where the *next* state is
terminal. Only tensor ops are used: no Python loops over the batch and no host syncs, so the functions
run on any device inside a planner or a model rollout.

The keyword-only parameters mirror the constructor arguments of the Gymnasium environment with the same
name and the same defaults (``healthy_z_range``, ``terminate_when_unhealthy``,
``exclude_current_positions_from_observation``, ...). :meth:`mbrl_po.envs.TaskConfig.termination_fn`
binds the ones present in a task's ``env_kwargs``, so a task that changes e.g. ``healthy_z_range`` gets a
matching termination function.

Notes on exactness (checked step by step against the real environments in ``tests/test_envs.py``):

* Hopper-v5 also checks ``healthy_state_range`` on the *unclipped* joint velocities, while the
  observation clips velocities to [-10, 10]; a velocity beyond +-100 (never seen in practice) cannot
  be detected from the observation.
* InvertedDoublePendulum-v5 terminates on the tip site height ``y <= 1``. The observation holds the
  cart position and sin/cos of both hinge angles, so the tip follows from forward kinematics. MuJoCo's
  RK4 integrator leaves ``site_xpos`` at its last integration stage rather than at the final ``qpos``,
  so the environment's ``y`` differs from the kinematic one by up to ~1e-4: only steps that end within
  that distance of ``y = 1`` can disagree.
"""

from __future__ import annotations

import math

import torch

from mbrl_po.types import TransitionFn

_INF = math.inf

# Gymnasium v5 defaults of the healthy ranges: the defaults of the ``*_is_healthy`` checks, of the terminations
# here and of the reward proxies in :mod:`mbrl_po.envs.rewards` (tests/test_terminations_rewards.py compares
# them with the environments' constructors).
HOPPER_HEALTHY_STATE_RANGE = (-100.0, 100.0)
HOPPER_HEALTHY_Z_RANGE = (0.7, _INF)
HOPPER_HEALTHY_ANGLE_RANGE = (-0.2, 0.2)
WALKER2D_HEALTHY_Z_RANGE = (0.8, 2.0)
WALKER2D_HEALTHY_ANGLE_RANGE = (-1.0, 1.0)
ANT_HEALTHY_Z_RANGE = (0.2, 1.0)
HUMANOID_HEALTHY_Z_RANGE = (1.0, 2.0)

# Geometry of inverted_double_pendulum.xml: both poles are 0.6 long, the tip site sits at the end of the
# second pole, and the hinges rotate about the y axis, so a pole at angle q points along (sin q, cos q).
_IDP_POLE_LENGTH = 0.6


def _open_interval(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    lo, hi = bounds
    return (x > lo) & (x < hi)


def _closed_interval(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    lo, hi = bounds
    return (x >= lo) & (x <= hi)


def never(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Never terminates (HalfCheetah, Swimmer, Reacher, Pusher and ``termination = "none"``).

    Args:
        obs: (..., O) observations.
        action: (..., A) actions.
        next_obs: (..., O) next observations.

    Returns:
        (...) bool tensor, all false.
    """
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def hopper_is_healthy(
    next_obs: torch.Tensor,
    *,
    healthy_state_range: tuple[float, float] = HOPPER_HEALTHY_STATE_RANGE,
    healthy_z_range: tuple[float, float] = HOPPER_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = HOPPER_HEALTHY_ANGLE_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Hopper-v5 ``is_healthy`` from an observation.

    Observation layout (default): ``[z, angle, thigh, leg, foot, qvel(6)]``; with
    ``exclude_current_positions_from_observation=False`` the root x comes first.

    Args:
        next_obs: (..., 11) or (..., 12) observations.
        healthy_state_range: open range for every entry of ``state_vector()[2:]``.
        healthy_z_range: open range for the torso height.
        healthy_angle_range: open range for the torso angle.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    i = 0 if exclude_current_positions_from_observation else 1
    z, angle, state = next_obs[..., i], next_obs[..., i + 1], next_obs[..., i + 1 :]
    healthy_state = _open_interval(state, healthy_state_range).all(dim=-1)
    return healthy_state & _open_interval(z, healthy_z_range) & _open_interval(angle, healthy_angle_range)


def hopper(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    healthy_state_range: tuple[float, float] = HOPPER_HEALTHY_STATE_RANGE,
    healthy_z_range: tuple[float, float] = HOPPER_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = HOPPER_HEALTHY_ANGLE_RANGE,
    terminate_when_unhealthy: bool = True,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Hopper-v5: terminated = not healthy (z > 0.7, |angle| < 0.2, |state| < 100).

    Args:
        obs: (..., O) observations (unused).
        action: (..., A) actions (unused).
        next_obs: (..., O) next observations, O = 11 by default.
        healthy_state_range: see :func:`hopper_is_healthy`.
        healthy_z_range: see :func:`hopper_is_healthy`.
        healthy_angle_range: see :func:`hopper_is_healthy`.
        terminate_when_unhealthy: when false the task never terminates.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    if not terminate_when_unhealthy:
        return never(obs, action, next_obs)
    return ~hopper_is_healthy(
        next_obs,
        healthy_state_range=healthy_state_range,
        healthy_z_range=healthy_z_range,
        healthy_angle_range=healthy_angle_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )


def walker2d_is_healthy(
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = WALKER2D_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = WALKER2D_HEALTHY_ANGLE_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Walker2d-v5 ``is_healthy``: torso height and angle in open ranges.

    Args:
        next_obs: (..., 17) observations ``[z, angle, joints(6), qvel(9)]`` (18 with the root x first).
        healthy_z_range: open range for the torso height.
        healthy_angle_range: open range for the torso angle.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    i = 0 if exclude_current_positions_from_observation else 1
    return _open_interval(next_obs[..., i], healthy_z_range) & _open_interval(
        next_obs[..., i + 1], healthy_angle_range
    )


def walker2d(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = WALKER2D_HEALTHY_Z_RANGE,
    healthy_angle_range: tuple[float, float] = WALKER2D_HEALTHY_ANGLE_RANGE,
    terminate_when_unhealthy: bool = True,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Walker2d-v5: terminated = not (0.8 < z < 2 and -1 < angle < 1).

    Args:
        obs: (..., O) observations (unused).
        action: (..., A) actions (unused).
        next_obs: (..., O) next observations, O = 17 by default.
        healthy_z_range: see :func:`walker2d_is_healthy`.
        healthy_angle_range: see :func:`walker2d_is_healthy`.
        terminate_when_unhealthy: when false the task never terminates.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    if not terminate_when_unhealthy:
        return never(obs, action, next_obs)
    return ~walker2d_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        healthy_angle_range=healthy_angle_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )


# Ant: qpos has 15 entries (free joint 7 + 8 hinges), qvel 14.
_ANT_NQ, _ANT_NV = 15, 14


def ant_is_healthy(
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = ANT_HEALTHY_Z_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Ant-v5 ``is_healthy``: finite state and torso height in the *closed* range.

    Args:
        next_obs: (..., O) observations; the first 27 entries (29 with x, y) are ``qpos[2:], qvel``,
            optionally followed by the clipped contact forces (O = 105 or 27 truncated).
        healthy_z_range: closed range for the torso height.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    skip = 2 if exclude_current_positions_from_observation else 0
    i = 2 - skip
    state = next_obs[..., : _ANT_NQ + _ANT_NV - skip]
    return torch.isfinite(state).all(dim=-1) & _closed_interval(next_obs[..., i], healthy_z_range)


def ant(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = ANT_HEALTHY_Z_RANGE,
    terminate_when_unhealthy: bool = True,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Ant-v5: terminated = not (state finite and 0.2 <= z <= 1.0). Works for the 105-d and 27-d obs.

    Args:
        obs: (..., O) observations (unused).
        action: (..., A) actions (unused).
        next_obs: (..., O) next observations.
        healthy_z_range: see :func:`ant_is_healthy`.
        terminate_when_unhealthy: when false the task never terminates.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    if not terminate_when_unhealthy:
        return never(obs, action, next_obs)
    return ~ant_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )


def humanoid_is_healthy(
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = HUMANOID_HEALTHY_Z_RANGE,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Humanoid-v5 ``is_healthy``: torso height (``qpos[2]``) in the open range.

    Args:
        next_obs: (..., O) observations starting with ``qpos[2:]`` (O = 348, or 45 truncated).
        healthy_z_range: open range for the torso height.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    i = 0 if exclude_current_positions_from_observation else 2
    return _open_interval(next_obs[..., i], healthy_z_range)


def humanoid(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    *,
    healthy_z_range: tuple[float, float] = HUMANOID_HEALTHY_Z_RANGE,
    terminate_when_unhealthy: bool = True,
    exclude_current_positions_from_observation: bool = True,
) -> torch.Tensor:
    """Humanoid-v5: terminated = not (1.0 < z < 2.0). Works for every ``include_*`` obs layout.

    Args:
        obs: (..., O) observations (unused).
        action: (..., A) actions (unused).
        next_obs: (..., O) next observations.
        healthy_z_range: see :func:`humanoid_is_healthy`.
        terminate_when_unhealthy: when false the task never terminates.
        exclude_current_positions_from_observation: the Gymnasium flag of the same name.

    Returns:
        (...) bool tensor.
    """
    if not terminate_when_unhealthy:
        return never(obs, action, next_obs)
    return ~humanoid_is_healthy(
        next_obs,
        healthy_z_range=healthy_z_range,
        exclude_current_positions_from_observation=exclude_current_positions_from_observation,
    )


def inverted_pendulum(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """InvertedPendulum-v5: terminated = any non-finite obs entry or |pole angle| > 0.2.

    Args:
        obs: (..., 4) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 4) next observations ``[cart x, pole angle, cart v, pole angular v]``.

    Returns:
        (...) bool tensor.
    """
    return ~torch.isfinite(next_obs).all(dim=-1) | (next_obs[..., 1].abs() > 0.2)


def inverted_double_pendulum_tip(next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tip site position of InvertedDoublePendulum-v5 by forward kinematics.

    Args:
        next_obs: (..., 9) observations ``[x, sin q1, sin q2, cos q1, cos q2, qvel(3), constraint force]``.

    Returns:
        ``(x_tip, y_tip)``, each (...): horizontal position and height of the tip.
    """
    x, s1, s2, c1, c2 = (next_obs[..., k] for k in range(5))
    s12 = s1 * c2 + c1 * s2  # sin(q1 + q2)
    c12 = c1 * c2 - s1 * s2  # cos(q1 + q2)
    return x + _IDP_POLE_LENGTH * (s1 + s12), _IDP_POLE_LENGTH * (c1 + c12)


def inverted_double_pendulum(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """InvertedDoublePendulum-v5: terminated = tip height ``y <= 1`` (forward kinematics from the obs).

    Args:
        obs: (..., 9) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 9) next observations.

    Returns:
        (...) bool tensor.
    """
    _, y = inverted_double_pendulum_tip(next_obs)
    return y <= 1.0


POINT_MASS_X_LIMIT = 2.0
"""|x| beyond which :class:`~mbrl_po.envs.toy.PointMassEnv` terminates."""


def point_mass_termination(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Exact termination of :class:`~mbrl_po.envs.toy.PointMassEnv`: ``|x'| > 2``.

    Args:
        obs: (..., 2) observations (unused).
        action: (..., 1) actions (unused).
        next_obs: (..., 2) next observations.

    Returns:
        (...) bool tensor.
    """
    return next_obs[..., 0].abs() > POINT_MASS_X_LIMIT


TERMINATIONS: dict[str, TransitionFn] = {
    "hopper": hopper,
    "walker2d": walker2d,
    "ant": ant,
    "humanoid": humanoid,
    "inverted_pendulum": inverted_pendulum,
    "inverted_double_pendulum": inverted_double_pendulum,
    "point_mass": point_mass_termination,
}
"""Termination functions by name (the ``termination`` field of a task TOML). ``"none"`` is not a key:
it maps to :func:`never`."""
