"""Task TOMLs, the loader and its errors, make_env, custom tasks and the toy point mass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mbrl_po.envs import (
    REWARDS,
    TERMINATIONS,
    PointMassEnv,
    TaskConfig,
    custom_task,
    list_tasks,
    load_task,
    make_env,
    never,
    point_mass_dynamics,
    point_mass_reward,
    point_mass_task,
    point_mass_termination,
    task_from_dict,
)
from mbrl_po.envs import rewards as R
from mbrl_po.envs import terminations as T
from mbrl_po.envs.task import DEFAULT_ENVS_DIR

# name: (gymnasium id, obs dim, action dim, termination, planning reward) -- as documented in docs/envs.md
EXPECTED = {
    "halfcheetah": ("HalfCheetah-v5", 17, 6, "none", "halfcheetah_proxy"),
    "hopper": ("Hopper-v5", 11, 3, "hopper", "hopper_proxy"),
    "walker2d": ("Walker2d-v5", 17, 6, "walker2d", "walker2d_proxy"),
    "ant": ("Ant-v5", 105, 8, "ant", "ant_proxy"),
    "ant_truncated": ("Ant-v5", 27, 8, "ant", "ant_proxy"),
    "humanoid": ("Humanoid-v5", 348, 17, "humanoid", "humanoid_proxy"),
    "humanoid_truncated": ("Humanoid-v5", 45, 17, "humanoid", "humanoid_proxy"),
    "swimmer": ("Swimmer-v5", 8, 2, "none", "swimmer_proxy"),
    "inverted_pendulum": ("InvertedPendulum-v5", 4, 1, "inverted_pendulum", "inverted_pendulum_shaped"),
    "inverted_double_pendulum": (
        "InvertedDoublePendulum-v5",
        9,
        1,
        "inverted_double_pendulum",
        "inverted_double_pendulum",
    ),
    "reacher": ("Reacher-v5", 10, 2, "none", "reacher"),
    "pusher": ("Pusher-v5", 23, 7, "none", "pusher"),
}
MBPO = {  # published MBPO settings: rollout schedule, updates per env step, SAC target entropy
    "hopper": ([20, 150, 1, 15], 20, -1.0),
    "walker2d": ([20, 150, 1, 1], 20, -3.0),
    "halfcheetah": ([20, 150, 1, 1], 40, -3.0),
    "ant": ([20, 100, 1, 25], 20, -4.0),
    "ant_truncated": ([20, 100, 1, 25], 20, -4.0),
    "humanoid": ([20, 300, 1, 20], 20, -2.0),
    "humanoid_truncated": ([20, 300, 1, 20], 20, -2.0),
}


def _write(tmp_path: Path, text: str, name: str = "t") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------- the TOMLs


def test_every_documented_task_has_a_toml() -> None:
    assert sorted(p.stem for p in DEFAULT_ENVS_DIR.glob("*.toml")) == sorted(EXPECTED)
    assert set(EXPECTED) <= set(list_tasks())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_toml_loads_with_expected_fields(name: str) -> None:
    env_id, _, _, termination, planning_reward = EXPECTED[name]
    task = load_task(name)
    assert isinstance(task, TaskConfig)
    assert (task.name, task.id, task.termination, task.reward) == (name, env_id, termination, "learned")
    assert task.planning_reward == planning_reward
    assert task.reward_fn() is None
    assert callable(task.termination_fn()) and callable(task.planning_reward_fn())
    from mbrl_po.config import SECTIONS, load_agent_config

    for agent, sections in task.agent_overrides.items():
        assert set(sections) <= set(SECTIONS)
        load_agent_config(agent, name)  # the overrides are valid keys and values
    if name in MBPO:
        schedule, updates, entropy = MBPO[name]
        mbpo = task.agent_config("mbpo")
        assert mbpo["mbpo"] == {"rollout_schedule": schedule, "updates_per_step": updates}
        assert mbpo["sac"] == {"target_entropy": entropy}
    pets = task.agent_config("pets")
    if name == "halfcheetah":
        assert pets["planner"]["horizon"] == 30
    if name in ("inverted_pendulum", "inverted_double_pendulum", "reacher", "pusher"):
        assert 15 <= pets["planner"]["horizon"] <= 25


@pytest.mark.mujoco
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_make_env_builds_documented_dims(name: str) -> None:
    _, obs_dim, act_dim, _, _ = EXPECTED[name]
    task = load_task(name)
    env = make_env(task, seed=0)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    assert env.spec.max_episode_steps == task.max_episode_steps
    obs, *_ = env.step(env.action_space.sample())
    o = torch.as_tensor(obs).unsqueeze(0)
    a = torch.as_tensor(env.action_space.sample(), dtype=torch.float64).unsqueeze(0)
    assert task.termination_fn()(o, a, o).shape == (1,)
    assert task.planning_reward_fn()(o, a, o).shape == (1,)
    env.close()


@pytest.mark.mujoco
def test_make_env_seed_and_overrides() -> None:
    task = load_task("hopper")
    e1, e2 = make_env(task, seed=3), make_env(task, seed=3)
    a = e1.action_space.sample()
    assert a.shape == (3,) and np.array_equal(a, e2.action_space.sample())
    np.testing.assert_array_equal(e1.step(a)[0], e2.step(a)[0])
    short = make_env(task, max_episode_steps=7, terminate_when_unhealthy=False)
    short.reset(seed=0)
    assert short.spec.max_episode_steps == 7
    assert [short.step(short.action_space.high)[3] for _ in range(7)][-1]


# -------------------------------------------------------------------------------------- loader errors


def test_unknown_top_level_key_names_key_and_allowed(tmp_path: Path) -> None:
    p = _write(tmp_path, 'id = "Hopper-v5"\nterminaton = "hopper"\n')
    with pytest.raises(ValueError, match="terminaton") as e:
        load_task(p)
    msg = str(e.value)
    assert "allowed" in msg and "planning_reward" in msg and "did you mean 'termination'" in msg


def test_unknown_termination_name_lists_valid_names(tmp_path: Path) -> None:
    p = _write(tmp_path, 'id = "Hopper-v5"\ntermination = "hoper"\n')
    with pytest.raises(ValueError, match="termination") as e:
        load_task(p)
    msg = str(e.value)
    assert "'hoper'" in msg and "did you mean 'hopper'" in msg
    assert all(name in msg for name in [*TERMINATIONS, "none"])


@pytest.mark.parametrize("field", ["reward", "planning_reward"])
def test_unknown_reward_name_lists_valid_names(tmp_path: Path, field: str) -> None:
    p = _write(tmp_path, f'id = "Hopper-v5"\n{field} = "hopper_proxi"\n')
    with pytest.raises(ValueError, match=field) as e:
        load_task(p)
    msg = str(e.value)
    assert "did you mean 'hopper_proxy'" in msg and all(name in msg for name in [*REWARDS, "learned"])


def test_unknown_task_lists_available_tasks() -> None:
    with pytest.raises(ValueError, match="hoppr") as e:
        load_task("hoppr")
    msg = str(e.value)
    assert "available" in msg and "walker2d" in msg and "did you mean 'hopper'" in msg


def test_missing_file_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_task(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match="id: missing"):
        load_task(_write(tmp_path, 'termination = "hopper"\n'))
    with pytest.raises(ValueError, match="max_episode_steps"):
        load_task(_write(tmp_path, 'id = "Hopper-v5"\nmax_episode_steps = 0\n'))
    with pytest.raises(ValueError, match="not valid TOML"):
        load_task(_write(tmp_path, "id = \n"))
    with pytest.raises(ValueError, match=r"agent\.pets"):
        load_task(_write(tmp_path, 'id = "Hopper-v5"\n[agent]\npets = 3\n'))
    with pytest.raises(ValueError, match=r"agent\.pets\.planner"):
        task_from_dict({"id": "Hopper-v5", "agent": {"pets": {"planner": 30}}})
    with pytest.raises(ValueError, match="termination: cannot import module"):
        task_from_dict({"id": "Hopper-v5", "termination": "no_such_module_xyz:fn"})
    with pytest.raises(ValueError, match="has no attribute"):
        task_from_dict({"id": "Hopper-v5", "termination": "mbrl_po.envs.terminations:nope"})


def test_envs_dir_env_var_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, 'id = "Pendulum-v1"\nmax_episode_steps = 50\n', name="my_pendulum")
    monkeypatch.setenv("MBRL_PO_ENVS_DIR", str(tmp_path))
    task = load_task("my_pendulum")
    assert (task.name, task.id, task.termination, task.planning_reward) == (
        "my_pendulum",
        "Pendulum-v1",
        "none",
        "learned",
    )
    assert task.termination_fn() is never and task.planning_reward_fn() is None
    assert "my_pendulum" in list_tasks() and "hopper" in list_tasks()
    assert load_task(str(tmp_path / "my_pendulum.toml")).id == "Pendulum-v1"
    assert load_task(DEFAULT_ENVS_DIR / "hopper.toml").name == "hopper"


def test_user_functions_by_import_string(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        'id = "Hopper-v5"\ntermination = "mbrl_po.envs.terminations:hopper"\n'
        'planning_reward = "mbrl_po.envs.rewards:hopper_proxy"\n[env_kwargs]\nhealthy_z_range = [0.5, 2.0]\n',
    )
    task = load_task(p)
    obs = torch.zeros(3, 11, dtype=torch.float64)
    obs[:, 0] = torch.tensor([0.6, 1.5, 2.5])
    done = task.termination_fn()(obs, torch.zeros(3, 3), obs)
    assert done.tolist() == [False, False, True]  # the bound healthy_z_range replaced (0.7, inf)
    assert task.planning_reward_fn()(obs, torch.zeros(3, 3), obs).tolist() == [1.0, 1.0, 0.0]


# ----------------------------------------------------------------------------------------- custom tasks


def test_custom_task_with_callables() -> None:
    def term(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return next_obs[..., 0] < -0.99

    def rew(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return -(action**2).sum(-1)

    task = custom_task("Pendulum-v1", termination_fn=term, reward_fn=rew, max_episode_steps=20)
    assert task.termination_fn() is term and task.reward_fn() is rew and task.planning_reward_fn() is rew
    env = make_env(task, seed=0)
    assert env.spec.max_episode_steps == 20 and env.observation_space.shape == (3,)
    plain = custom_task("Pendulum-v1")
    assert plain.termination == "none" and plain.reward_fn() is None and plain.max_episode_steps is None
    assert make_env(plain).spec.max_episode_steps == 200  # gymnasium's registered limit
    named = custom_task("Hopper-v5", termination_fn="hopper", reward_fn="hopper_proxy")
    assert named.termination_fn() is T.hopper and named.reward_fn() is R.hopper_proxy
    with pytest.raises(ValueError, match="termination"):
        custom_task("Pendulum-v1", termination_fn=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id"):
        custom_task("")


def test_task_config_is_frozen() -> None:
    task = load_task("hopper")
    with pytest.raises(AttributeError):
        task.id = "Walker2d-v5"  # type: ignore[misc]
    assert task.replace(max_episode_steps=10).max_episode_steps == 10
    task.agent_config("mbpo")["mbpo"]["updates_per_step"] = 1
    assert task.agent_overrides["mbpo"]["mbpo"]["updates_per_step"] == 20


# ---------------------------------------------------------------------------------------------- toy env


def test_point_mass_functions_are_exact() -> None:
    env = PointMassEnv()
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (2,) and env.action_space.shape == (1,)
    rng = np.random.default_rng(0)
    steps = 0
    for _ in range(60):
        action = rng.uniform(-1.5, 1.5, size=1).astype(np.float32)  # out-of-range actions are clipped
        next_obs, reward, terminated, truncated, _ = env.step(action)
        o, a, n = (torch.as_tensor(x, dtype=torch.float64) for x in (obs, action, next_obs))
        assert (point_mass_dynamics(o, a) - n).abs().max() < 1e-12
        assert abs(float(point_mass_reward(o, a, n)) - reward) < 1e-12
        assert bool(point_mass_termination(o, a, n)) == terminated
        steps += 1
        obs = next_obs
        assert truncated == (steps == env.max_steps)
        if terminated or truncated:
            obs, _ = env.reset()
            steps = 0


def test_point_mass_terminates_and_truncates() -> None:
    env = PointMassEnv(x0=1.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [1.0, 0.0])
    flags = [env.step(np.ones(1))[2:4] for _ in range(20)]
    assert flags[-1][0] and not flags[0][0]  # pushed past |x| = 2
    env = PointMassEnv(x0=0.0, max_steps=5)
    env.reset()
    assert [env.step(np.zeros(1))[3] for _ in range(5)] == [False] * 4 + [True]


def test_point_mass_batched_rollout_and_task() -> None:
    obs = torch.tensor([[0.5, 0.0], [-0.5, 0.2]], dtype=torch.float64).expand(4, 2, 2)
    actions = torch.full((4, 2, 1), -1.0, dtype=torch.float64)
    assert point_mass_dynamics(obs, actions).shape == (4, 2, 2)
    task = point_mass_task()
    assert task.reward_fn() is point_mass_reward and task.termination_fn() is point_mass_termination
    env = make_env(task, seed=1)
    assert isinstance(env.unwrapped, PointMassEnv) and env.spec.max_episode_steps == 40
