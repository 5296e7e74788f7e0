"""Data collection on real MuJoCo envs: shapes, final observations across resets, determinism, npz round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl_po.data.collect import collect, episode_ids, load_npz, random_policy, save_npz, validate_transitions
from mbrl_po.envs import load_task, make_env

pytestmark = pytest.mark.mujoco


def test_shapes_dtypes_and_truncation_final_obs():
    task = load_task("halfcheetah")
    env = make_env(task, max_episode_steps=50)
    data = collect(env, 130, seed=3, progress=False)
    assert data["obs"].shape == (130, 17) and data["next_obs"].shape == (130, 17)
    assert data["actions"].shape == (130, 6) and data["rewards"].shape == (130,)
    assert data["obs"].dtype == np.float32 and data["terminated"].dtype == bool
    assert np.flatnonzero(data["truncated"]).tolist() == [49, 99]
    assert np.flatnonzero(data["episode_starts"]).tolist() == [0, 50, 100]
    assert not data["terminated"].any()
    assert np.all(np.abs(data["actions"]) <= 1.0)
    assert episode_ids(data)[[0, 49, 50, 129]].tolist() == [0, 0, 1, 2]
    # within an episode next_obs[i] == obs[i + 1]; across the reset it is not
    same = np.all(data["next_obs"][:-1] == data["obs"][1:], axis=1)
    assert np.flatnonzero(~same).tolist() == [49, 99]
    # replay: next_obs on the truncated step is the true final observation, obs[50] the next reset's
    env2 = make_env(task, max_episode_steps=50)
    env2.reset(seed=3)
    for i in range(50):
        final, *_ = env2.step(data["actions"][i])
    np.testing.assert_allclose(data["next_obs"][49], final, rtol=1e-6, atol=1e-6)
    reset_obs, _ = env2.reset()
    np.testing.assert_allclose(data["obs"][50], reset_obs, rtol=1e-6, atol=1e-6)
    env.close()
    env2.close()


def test_termination_rows_keep_the_terminal_observation():
    task = load_task("hopper")
    data = collect(task, 300, seed=0, progress=False)  # a random hopper falls within a few dozen steps
    ends = np.flatnonzero(data["terminated"])
    assert len(ends) >= 2
    assert data["episode_starts"][ends[ends < 299] + 1].all()
    done = task.termination_fn()
    as_t = {k: torch.as_tensor(data[k]) for k in ("obs", "actions", "next_obs")}
    flags = done(as_t["obs"], as_t["actions"], as_t["next_obs"]).numpy()
    np.testing.assert_array_equal(flags, data["terminated"])  # the terminal next_obs is unhealthy
    # the reset observations are healthy: the termination test on them as next_obs is false
    starts = np.flatnonzero(data["episode_starts"])[1:]
    assert not done(as_t["obs"][starts], as_t["actions"][starts], as_t["obs"][starts]).any()


def test_seed_determinism_and_policies():
    a = collect("halfcheetah", 60, seed=7, progress=False)
    b = collect("halfcheetah", 60, seed=7, progress=False)
    c = collect("halfcheetah", 60, seed=8, progress=False)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["actions"], c["actions"]) and not np.allclose(a["obs"][0], c["obs"][0])

    zero = collect("halfcheetah", 20, policy=lambda o: np.zeros(6, np.float32), progress=False)
    assert np.all(zero["actions"] == 0)

    class SB3Like:
        def predict(self, obs, deterministic=False):
            return np.full(6, 0.5, np.float32), None

    half = collect("halfcheetah", 10, policy=SB3Like(), progress=False)
    assert np.all(half["actions"] == 0.5)

    # the random policy uses its own copy of the space: the env's space RNG is untouched
    env = make_env(load_task("halfcheetah"))
    env.action_space.seed(0)
    ref = env.action_space.sample()
    env.action_space.seed(0)
    random_policy(env.action_space, seed=1)(np.zeros(17))
    np.testing.assert_array_equal(env.action_space.sample(), ref)
    env.close()


def test_collect_errors():
    with pytest.raises(ValueError, match="num_steps"):
        collect("halfcheetah", 0)
    with pytest.raises(ValueError, match="seed"):
        collect("halfcheetah", 5, seed=-1)
    with pytest.raises(ValueError, match="env_or_task"):
        collect(42, 5)
    with pytest.raises(ValueError, match=r"policy: returned an action of shape \(3,\)"):
        collect("halfcheetah", 5, policy=lambda o: np.zeros(3), progress=False)
    with pytest.raises(ValueError, match="non-finite"):
        collect("halfcheetah", 5, policy=lambda o: np.full(6, np.nan), progress=False)


def test_npz_round_trip_and_validation(tmp_path):
    data = collect("halfcheetah", 40, seed=0, progress=False)
    prov = {"env_id": "HalfCheetah-v5", "seed": 0, "policy": "uniform random"}
    path = save_npz(tmp_path / "sub" / "d.npz", data, prov)
    loaded, prov2 = load_npz(path)
    assert prov2 == prov
    for k in data:
        np.testing.assert_array_equal(loaded[k], data[k])
        assert loaded[k].dtype == data[k].dtype

    with pytest.raises(ValueError, match="no such file"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="provenance"):
        save_npz(tmp_path / "x.npz", data, {"bad": object()})
    bad = dict(data)
    del bad["episode_starts"]
    with pytest.raises(ValueError, match="missing fields"):
        validate_transitions(bad)
    bad = dict(data, rewards=data["rewards"][:-1])
    with pytest.raises(ValueError, match="rewards: has 39 rows, expected 40"):
        validate_transitions(bad)
    bad = dict(data, obs=data["obs"].copy())
    bad["obs"][3, 2] = np.nan
    with pytest.raises(ValueError, match="obs: contains 1 NaN"):
        validate_transitions(bad)
    bad = dict(data, next_obs=data["next_obs"][:, :5])
    with pytest.raises(ValueError, match="next_obs: has dim 5"):
        validate_transitions(bad)
    bad = dict(data, actions=data["actions"][:, 0])
    with pytest.raises(ValueError, match="actions: expected 2 dims"):
        validate_transitions(bad)
    bad = dict(data, terminated=np.full(40, 2))
    with pytest.raises(ValueError, match="terminated: expected booleans"):
        validate_transitions(bad)
    np.savez(tmp_path / "junk.npz", obs=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="junk.npz: data: missing fields"):
        load_npz(tmp_path / "junk.npz")
