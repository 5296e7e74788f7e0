"""Termination and reward functions against the real Gymnasium v5 environments, step by step."""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mbrl_po.envs import REWARDS, TERMINATIONS, load_task, make_env, never
from mbrl_po.envs import rewards as R
from mbrl_po.envs import terminations as T

# Lower bounds on corr(proxy, true reward) over the rollouts of `_rollout` (350 steps: random, constant
# extreme and bang-bang actions; seeds 0-4). Measured values are in the comments and in docs/envs.md.
PROXY_CORRELATION_BOUNDS = {  # name: (bound on the total reward, bound on the forward term alone)
    "halfcheetah": (0.95, 0.95),  # measured 0.969, 0.971
    "hopper": (0.99, 0.99),  # measured 1.000, 1.000
    "walker2d": (0.99, 0.99),  # measured 1.000, 1.000
    "swimmer": (0.99, 0.99),  # measured 1.000, 1.000
    "ant": (0.99, 0.97),  # measured 0.998, 0.986
    "ant_truncated": (0.99, 0.97),  # measured 0.998, 0.986 (the contact cost is tiny here)
    "humanoid": (0.99, 0.99),  # measured 1.000, 1.000 (centre-of-mass velocity from cinert/cvel)
    "humanoid_truncated": (0.7, 0.7),  # measured 0.761, 0.795 (torso velocity only: a weak proxy)
}
EXACT_REWARD_TASKS = ["inverted_pendulum", "inverted_double_pendulum", "reacher", "pusher"]
TERMINATING_TASKS = [
    "hopper",
    "walker2d",
    "ant",
    "ant_truncated",
    "humanoid",
    "humanoid_truncated",
    "inverted_pendulum",
    "inverted_double_pendulum",
]
ALL_TASKS = sorted(
    [*PROXY_CORRELATION_BOUNDS, "inverted_pendulum", "inverted_double_pendulum", "reacher", "pusher"]
)

# Policies: uniform random, constant extremes (make the hoppers and walkers fall fast), bang-bang.
POLICIES = ("random", "high", "low", "bang_bang", "random")
STEPS_PER_POLICY = 70


@dataclass(frozen=True)
class Rollout:
    obs: torch.Tensor  # (B, O) float64
    action: torch.Tensor  # (B, A) float64
    next_obs: torch.Tensor  # (B, O) float64
    reward: torch.Tensor  # (B,) float64
    terminated: torch.Tensor  # (B,) bool
    reward_forward: torch.Tensor  # (B,) info["reward_forward"] (0 where absent)
    tip_y: torch.Tensor  # (B,) InvertedDoublePendulum tip site height (nan elsewhere)


def _policy_action(env, policy: str, t: int) -> np.ndarray:
    space = env.action_space
    if policy == "random":
        return space.sample()
    if policy == "high":
        return space.high.copy()
    if policy == "low":
        return space.low.copy()
    return space.high.copy() if (t // 5) % 2 == 0 else space.low.copy()


def _start_high(env) -> np.ndarray:
    """Ant: drop the torso from above the healthy range so that the first steps terminate."""
    u = env.unwrapped
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    qpos[2] += 0.5
    u.set_state(qpos, qvel)
    return u._get_obs()


@functools.cache
def _rollout(name: str) -> Rollout:
    task = load_task(name)
    env = make_env(task, seed=0)
    rows: dict[str, list] = {k: [] for k in Rollout.__dataclass_fields__}
    for k, policy in enumerate(POLICIES):
        obs, _ = env.reset(seed=k)
        drop = name.startswith("ant") and k == len(POLICIES) - 1
        if drop:
            obs = _start_high(env)
        for t in range(STEPS_PER_POLICY):
            action = _policy_action(env, policy, t)
            next_obs, reward, terminated, truncated, info = env.step(action)
            rows["obs"].append(obs)
            rows["action"].append(action)
            rows["next_obs"].append(next_obs)
            rows["reward"].append(reward)
            rows["terminated"].append(terminated)
            rows["reward_forward"].append(info.get("reward_forward", 0.0))
            tip = env.unwrapped.data.site_xpos[0, 2] if name == "inverted_double_pendulum" else np.nan
            rows["tip_y"].append(tip)
            obs = next_obs
            if terminated or truncated:
                obs, _ = env.reset()
                if drop:
                    obs = _start_high(env)
    env.close()
    return Rollout(
        **{
            k: torch.as_tensor(np.asarray(v), dtype=torch.bool if k == "terminated" else torch.float64)
            for k, v in rows.items()
        }
    )


def _assert_close(pred: torch.Tensor, true: torch.Tensor, atol: float, what: str) -> None:
    """Cheaper than torch.testing.assert_close (whose first call costs ~1 s of imports)."""
    err = (pred - true).abs()
    assert err.max() <= atol, f"{what}: max |error| {float(err.max()):.3g} at step {int(err.argmax())}"


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack((a, b)))[0, 1])


# ------------------------------------------------------------------------------------------ terminations


@pytest.mark.mujoco
@pytest.mark.parametrize("name", ALL_TASKS)
def test_termination_matches_env_every_step(name: str) -> None:
    task = load_task(name)
    ro = _rollout(name)
    pred = task.termination_fn()(ro.obs, ro.action, ro.next_obs)
    assert pred.dtype == torch.bool and pred.shape == ro.terminated.shape
    if name in TERMINATING_TASKS:
        assert ro.terminated.sum() >= 3, f"{name}: the rollouts must include terminal steps"
        assert (~ro.terminated).sum() >= 50
    else:
        assert task.termination == "none" and not ro.terminated.any()
    mask = torch.ones_like(ro.terminated)
    if name == "inverted_double_pendulum":
        # The env reads the tip from MuJoCo's last RK4 stage: it may differ from forward kinematics by
        # ~1e-4, so only steps that end that close to y = 1 are excused.
        _, y = T.inverted_double_pendulum_tip(ro.next_obs)
        assert (y - ro.tip_y).abs().max() < 5e-4
        mask = (ro.tip_y - 1.0).abs() > 1e-3
        assert mask.float().mean() > 0.95
    wrong = (pred != ro.terminated) & mask
    assert not wrong.any(), f"{name}: termination differs from the env at steps {wrong.nonzero().flatten()}"


@pytest.mark.mujoco
def test_termination_respects_env_kwargs() -> None:
    base = load_task("hopper")
    off = base.replace(env_kwargs={"terminate_when_unhealthy": False})
    wide = base.replace(env_kwargs={"healthy_angle_range": [-10.0, 10.0], "healthy_z_range": [0.0, 10.0]})
    ro = _rollout("hopper")
    assert not off.termination_fn()(ro.obs, ro.action, ro.next_obs).any()
    assert wide.termination_fn()(ro.obs, ro.action, ro.next_obs).sum() < ro.terminated.sum()
    env = make_env(off, seed=0)  # the env agrees: it never terminates
    for _ in range(60):
        assert not env.step(env.action_space.high)[2]


# --------------------------------------------------------------------------------------------- rewards


@pytest.mark.mujoco
@pytest.mark.parametrize("name", EXACT_REWARD_TASKS)
def test_exact_reward_matches_env(name: str) -> None:
    task = load_task(name)
    assert task.planning_reward in (name, f"{name}_shaped")  # a shaped planning reward is allowed
    task = task.replace(planning_reward=name)
    ro = _rollout(name)
    pred = task.planning_reward_fn()(ro.obs, ro.action, ro.next_obs)
    assert pred.dtype == torch.float64 and pred.shape == ro.reward.shape
    if name == "inverted_double_pendulum":
        # Exact while the joint velocities are inside the obs clip and the tip is not at y = 1.
        mask = (ro.next_obs[:, 5:8].abs() < 10.0).all(-1) & ((ro.tip_y - 1.0).abs() > 1e-3)
        assert mask.float().mean() > 0.8
        _assert_close(pred[mask], ro.reward[mask], 1e-3, name)  # measured max 2e-4
    else:
        # atol: the env sums the squared float32 action in float32.
        _assert_close(pred, ro.reward, 1e-6, name)


@pytest.mark.mujoco
@pytest.mark.parametrize("name", sorted(PROXY_CORRELATION_BOUNDS))
def test_proxy_reward_correlates_with_env(name: str) -> None:
    task = load_task(name)
    assert task.planning_reward.endswith("_proxy")
    ro = _rollout(name)
    fn = task.planning_reward_fn()
    pred = fn(ro.obs, ro.action, ro.next_obs)
    assert pred.dtype == torch.float64 and pred.shape == ro.reward.shape
    total_bound, forward_bound = PROXY_CORRELATION_BOUNDS[name]
    r = _corr(pred, ro.reward)
    assert r > total_bound, f"{name}: corr(proxy, reward) = {r:.4f}"
    rest = fn(ro.obs, ro.action, ro.next_obs, forward_reward_weight=0.0)
    r_forward = _corr(pred - rest, ro.reward_forward)
    assert r_forward > forward_bound, f"{name}: corr(proxy forward term, reward_forward) = {r_forward:.4f}"
    if not name.endswith("_truncated"):
        # Every term but the forward one is exact when the observation holds what it needs.
        _assert_close(rest, ro.reward - ro.reward_forward, 1e-6, f"{name} (all terms but the forward one)")


# ---------------------------------------------------------------------------- batching, dtype, device


def test_no_host_sync_mode_catches_syncs(no_host_sync) -> None:
    """The mode of ``conftest.py`` that the planning, model-env and reward/termination tests run under."""
    x = torch.randn(4)
    for op in (lambda: bool(x[0] > 0), lambda: x.sum().item(), lambda: x[x > 0], lambda: float(x[1]),
               lambda: x.cpu()):
        with pytest.raises(AssertionError, match="host sync"), no_host_sync():
            op()
    with no_host_sync():
        (x > 0).all(-1)


def _all_fns():
    return [("termination", k, f) for k, f in TERMINATIONS.items()] + [
        ("reward", k, f) for k, f in REWARDS.items()
    ]


_DIMS = {  # (O, A) of the default layout of each function's task
    "hopper": (11, 3),
    "walker2d": (17, 6),
    "ant": (105, 8),
    "humanoid": (348, 17),
    "inverted_pendulum": (4, 1),
    "inverted_double_pendulum": (9, 1),
    "reacher": (10, 2),
    "pusher": (23, 7),
    "point_mass": (2, 1),
    "halfcheetah": (17, 6),
    "swimmer": (8, 2),
}


@pytest.mark.parametrize(("kind", "key", "fn"), _all_fns(), ids=lambda x: x if isinstance(x, str) else "")
def test_functions_batch_over_leading_dims_without_host_sync(kind: str, key: str, fn, no_host_sync) -> None:
    o, a = _DIMS[key.removesuffix("_proxy").removesuffix("_shaped")]
    obs, next_obs = torch.randn(2, 3, 5, o, dtype=torch.float64), torch.randn(2, 3, 5, o, dtype=torch.float64)
    action = torch.rand(2, 3, 5, a, dtype=torch.float64) * 2 - 1
    full = fn(obs, action, next_obs)
    assert full.shape == (2, 3, 5)
    assert full.dtype == (torch.bool if kind == "termination" else torch.float64)
    flat = fn(obs.reshape(30, o), action.reshape(30, a), next_obs.reshape(30, o))
    assert torch.equal(flat, full.reshape(30))
    # float32 in, float32 out
    out32 = fn(obs.float(), action.float(), next_obs.float())
    assert out32.dtype == (torch.bool if kind == "termination" else torch.float32)
    # Any host sync (.item(), `if tensor:`, boolean-mask indexing, ...) raises inside this mode.
    with no_host_sync():
        fn(obs, action, next_obs)


def test_never_terminates() -> None:
    out = never(torch.zeros(4, 7, 3), torch.zeros(4, 7, 1), torch.zeros(4, 7, 3))
    assert out.shape == (4, 7) and out.dtype == torch.bool and not out.any()


def test_healthy_ranges_use_open_or_closed_bounds_like_gymnasium() -> None:
    hop = torch.zeros(3, 11, dtype=torch.float64)
    hop[:, 0] = torch.tensor([0.7, 0.70001, 1.2])  # z (open at 0.7)
    hop[2, 1] = 0.2  # angle exactly at the bound is unhealthy
    assert T.hopper(hop, torch.zeros(3, 3), hop).tolist() == [True, False, True]
    ant = torch.zeros(4, 27, dtype=torch.float64)
    ant[:, 0] = torch.tensor([0.2, 1.0, 1.0000001, 0.5])  # z (closed range)
    ant[3, 20] = float("nan")
    assert T.ant(ant, torch.zeros(4, 8), ant).tolist() == [False, False, True, True]
    hum = torch.zeros(2, 45, dtype=torch.float64)
    hum[:, 0] = torch.tensor([1.0, 1.5])
    assert T.humanoid(hum, torch.zeros(2, 17), hum).tolist() == [True, False]
    ip = torch.tensor([[0.0, 0.2, 0.0, 0.0], [0.0, -0.2001, 0.0, 0.0], [float("inf"), 0.0, 0.0, 0.0]])
    assert T.inverted_pendulum(ip, torch.zeros(3, 1), ip).tolist() == [False, True, True]
    assert R.inverted_pendulum(ip, torch.zeros(3, 1), ip).tolist() == [1.0, 0.0, 0.0]


_GYM_ENVS = {  # function-name prefix: (gymnasium.envs.mujoco module, env class)
    "hopper": ("hopper_v5", "HopperEnv"),
    "walker2d": ("walker2d_v5", "Walker2dEnv"),
    "ant": ("ant_v5", "AntEnv"),
    "humanoid": ("humanoid_v5", "HumanoidEnv"),
    "halfcheetah": ("half_cheetah_v5", "HalfCheetahEnv"),
    "swimmer": ("swimmer_v5", "SwimmerEnv"),
    "reacher": ("reacher_v5", "ReacherEnv"),
    "pusher": ("pusher_v5", "PusherEnv"),
    "inverted_double_pendulum": ("inverted_double_pendulum_v5", "InvertedDoublePendulumEnv"),
}


@pytest.mark.mujoco
@pytest.mark.parametrize("prefix", sorted(_GYM_ENVS))
def test_keyword_defaults_are_the_environments(prefix: str) -> None:
    """Every keyword of a termination, reward or healthy check that the env's constructor also takes has the
    constructor's default (the healthy ranges are shared constants of ``terminations.py``)."""
    module, cls = _GYM_ENVS[prefix]
    env_init = inspect.signature(getattr(importlib.import_module(f"gymnasium.envs.mujoco.{module}"), cls).__init__)
    fns = [f for name, f in (*TERMINATIONS.items(), *REWARDS.items()) if name.removesuffix("_proxy") == prefix]
    fns += [getattr(T, f"{prefix}_is_healthy")] if hasattr(T, f"{prefix}_is_healthy") else []
    assert fns, prefix
    compared = 0
    for fn in fns:
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind == inspect.Parameter.KEYWORD_ONLY and name in env_init.parameters:
                assert p.default == env_init.parameters[name].default, (fn.__name__, name)
                compared += 1
    assert compared > 0, prefix


def test_inverted_pendulum_shaped_planning_reward() -> None:
    up = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    tilted = torch.tensor([[0.5, 0.15, 0.0, 1.0]])
    fallen = torch.tensor([[0.0, 0.25, 0.0, 0.0]])
    moving = torch.tensor([[0.0, 0.0, 2.0, 0.0]])  # cart velocity is penalised too
    far = torch.tensor([[0.95, 0.19, 3.0, 0.0]])  # alive but costly: the floor keeps it positive
    a = torch.zeros(1, 1)
    r = [float(R.inverted_pendulum_shaped(up, a, x)) for x in (up, tilted, fallen, moving, far)]
    assert r[0] == pytest.approx(15.0) and 0.05 <= r[1] < r[0] and r[2] == 0.0
    assert r[3] == pytest.approx(11.0) and r[4] == pytest.approx(0.05)
