"""Offline datasets: npz/Minari round trips, the policy-checkpoint collection path, the collect CLI, errors."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mbrl_po.cli import main as cli_main
from mbrl_po.data.collect import collect
from mbrl_po.data.datasets import collect_dataset, episode_returns, load_dataset, minari_available, write_minari
from mbrl_po.data.policies import POLICY_DIR, SACActor, actor_from_sb3, load_actor, save_actor, select_medium

needs_minari = pytest.mark.skipif(not minari_available(),
                                  reason="minari (with h5py) is not installed: pip install 'mbrl-po[minari]'")
TASK = "inverted_pendulum"  # cheap, and its episodes terminate: several episodes in a few hundred steps


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _tiny_actor(path: Path, env_id: str = "InvertedPendulum-v5") -> Path:
    torch.manual_seed(1)
    actor = SACActor(4, 1, [8], [-3.0], [3.0])
    return save_actor(path, actor, {"env_id": env_id, "eval_return": 1.0, "snapshot_step": 0, "seed": 0})


# ---------------------------------------------------------------------------------------------- npz
def test_collect_random_npz_round_trip(tmp_path):
    path, prov = collect_dataset(TASK, "random", 300, seed=2, out=tmp_path, fmt="npz")
    assert path == tmp_path / f"{TASK}-random-s2.npz"
    data, loaded = load_dataset(path)
    assert len(data["obs"]) == 300 and data["obs"].shape[1] == 4 and data["actions"].shape == (300, 1)
    assert loaded["format"] == "npz" and loaded["source"] == str(path)
    for k in ("policy", "seed", "num_steps", "mean_return", "commit", "env_id"):
        assert loaded[k] == prov[k]
    assert prov["policy"] == "random" and prov["env_id"] == "InvertedPendulum-v5"
    returns, finished = episode_returns(data)
    assert finished.sum() >= 2 and prov["mean_return"] == pytest.approx(returns[finished].mean())
    # the same seed gives the same data
    data2, _ = load_dataset(collect_dataset(TASK, "random", 300, seed=2, out=tmp_path / "b", fmt="npz")[0])
    _assert_same(data, data2)


def test_npz_works_without_minari(tmp_path, monkeypatch):
    path, _ = collect_dataset(TASK, "random", 50, out=tmp_path, fmt="npz")
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari -> ImportError
    assert not minari_available()
    assert len(load_dataset(path)[0]["obs"]) == 50
    with pytest.raises(ValueError, match="minari"):
        load_dataset("mujoco/halfcheetah/medium-v0")
    with pytest.raises(ValueError, match="minari"):
        collect_dataset(TASK, "random", 50, out=tmp_path, fmt="minari")


# ---------------------------------------------------------------------------------------------- policies
def test_policy_checkpoint_collection(tmp_path):
    _tiny_actor(tmp_path / f"{TASK}-medium.pt")
    path, prov = collect_dataset(TASK, "medium", 300, seed=0, out=tmp_path / "d", fmt="npz", policy_dir=tmp_path)
    data, loaded = load_dataset(path)
    assert loaded["policy"] == "medium" and loaded["policy_sampling"] == "stochastic"
    assert loaded["policy_meta"]["env_id"] == "InvertedPendulum-v5"
    assert np.all(np.abs(data["actions"]) <= 3.0) and data["actions"].std() > 0
    # reproducible (seeded action noise); deterministic actions differ from sampled ones
    again, _ = load_dataset(collect_dataset(TASK, "medium", 300, out=tmp_path / "e", fmt="npz",
                                            policy_dir=tmp_path)[0])
    _assert_same(data, again)
    det, dprov = collect_dataset(TASK, "medium", 300, out=tmp_path / "f", fmt="npz", policy_dir=tmp_path,
                                 deterministic=True)
    assert dprov["policy_sampling"] == "deterministic"
    assert not np.array_equal(load_dataset(det)[0]["actions"], data["actions"])
    # a checkpoint path works as the policy too
    _, pprov = collect_dataset(TASK, str(tmp_path / f"{TASK}-medium.pt"), 20, out=tmp_path / "g", fmt="npz")
    assert pprov["policy"] == "checkpoint"


def test_actor_matches_sb3_and_round_trips(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import SAC

    from mbrl_po.agents.mbpo import SpacesOnlyEnv

    obs_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    act_space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    sac = SAC("MlpPolicy", SpacesOnlyEnv(obs_space, act_space), buffer_size=1, seed=0,
              policy_kwargs={"net_arch": [16, 16]}, device="cpu")
    actor = actor_from_sb3(sac, act_space.low, act_space.high)
    obs = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    ours = actor(torch.as_tensor(obs), deterministic=True).detach().numpy()
    np.testing.assert_allclose(ours, sac.predict(obs, deterministic=True)[0], atol=1e-5)
    path = save_actor(tmp_path / "a.pt", actor, {"eval_return": 3.5})
    loaded, meta = load_actor(path)
    assert meta["eval_return"] == 3.5 and meta["hidden"] == [16, 16]
    np.testing.assert_allclose(loaded(torch.as_tensor(obs), deterministic=True).detach().numpy(), ours)
    assert path.stat().st_size < 20_000


def test_select_medium():
    snaps = [{"step": s, "eval_return": r} for s, r in [(5, -1.0), (10, 900.0), (15, 2100.0), (20, 3900.0),
                                                         (25, 4000.0)]]
    medium, expert = select_medium(snaps)
    assert expert["step"] == 25 and medium["step"] == 15
    assert select_medium(snaps[:1]) == (snaps[0], snaps[0])


@pytest.mark.skipif(not (POLICY_DIR / "halfcheetah-expert.pt").is_file(), reason="no committed checkpoints")
def test_committed_checkpoints():
    for level in ("medium", "expert"):
        path = POLICY_DIR / f"halfcheetah-{level}.pt"
        actor, meta = load_actor(path)
        assert (actor.obs_dim, actor.act_dim) == (17, 6)
        assert meta["env_id"] == "HalfCheetah-v5" and meta["level"] == level
        for k in ("train_steps", "snapshot_step", "eval_return", "seed", "commit"):
            assert k in meta
        assert path.stat().st_size < 1_000_000
    med = json.loads((POLICY_DIR / "halfcheetah-medium.json").read_text())
    assert med["snapshot_step"] < med["train_steps"]


# ---------------------------------------------------------------------------------------------- minari
@needs_minari
def test_minari_round_trip(tmp_path):
    data = collect(TASK, 250, seed=1)  # several terminated episodes
    ends = np.flatnonzero(data["terminated"] | data["truncated"])
    data = {k: v[: ends[-2] + 3] for k, v in data.items()}  # ... and an unfinished last one
    assert len(ends) >= 3 and not (data["terminated"][-1] or data["truncated"][-1])
    prov = {"task": TASK, "env_id": "InvertedPendulum-v5", "policy": "random", "seed": 1, "num_steps": 250,
            "mean_return": 7.0, "commit": "abc"}
    target = write_minari("test_ns/pendulum/random-v0", data, prov, root=tmp_path)
    assert target == tmp_path / "test_ns/pendulum/random-v0" and (target / "data" / "metadata.json").is_file()
    for source, kw in ((target, {}), (target / "data", {}), ("test_ns/pendulum/random-v0", {"root": tmp_path})):
        back, meta = load_dataset(source, **kw)
        np.testing.assert_allclose(back["obs"], data["obs"])
        np.testing.assert_allclose(back["next_obs"], data["next_obs"])
        _assert_same({k: back[k] for k in ("terminated", "truncated", "episode_starts")},
                     {k: data[k] for k in ("terminated", "truncated", "episode_starts")})
        np.testing.assert_allclose(back["rewards"], data["rewards"])
        np.testing.assert_allclose(back["actions"], data["actions"])
        assert meta["format"] == "minari" and meta["env_id"] == "InvertedPendulum-v5"
        assert meta["policy"] == "random" and meta["commit"] == "abc" and meta["mean_return"] == 7.0
    with pytest.raises(ValueError, match="already exists"):
        write_minari("test_ns/pendulum/random-v0", data, prov, root=tmp_path)
    write_minari("test_ns/pendulum/random-v0", data, prov, root=tmp_path, overwrite=True)


@needs_minari
def test_collect_cli_minari(tmp_path, capsys):
    assert cli_main(["collect", "--env", TASK, "--policy", "random", "--steps", "120", "--out", str(tmp_path)]) == 0
    assert "mean return" in capsys.readouterr().out
    data, meta = load_dataset(tmp_path / "mbrl_po" / TASK / "random-v0")
    assert len(data["obs"]) == 120 and meta["command"].startswith("mbrl-po ") and meta["dataset_id"]
    assert cli_main(["collect", "--env", TASK, "--steps", "10", "--out", str(tmp_path)]) == 2  # exists


@needs_minari
def test_minari_errors(tmp_path):
    data = collect(TASK, 40, seed=0)
    with pytest.raises(ValueError, match="dataset_id"):
        write_minari("no-version", data, {}, root=tmp_path)
    broken = {**data, "next_obs": data["next_obs"] + 1.0}
    with pytest.raises(ValueError, match="not consecutive"):
        write_minari("ns/broken-v0", broken, {}, root=tmp_path)
    with pytest.raises(ValueError, match="not stored"):
        load_dataset("ns/unknown-v0", root=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------- errors
def test_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="no such .npz"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a Minari dataset"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a .npz"):
        load_dataset(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="no such file or folder"):
        load_dataset(tmp_path / "mbrl_po" / "halfcheetah" / "medium-v0")
    with pytest.raises(ValueError, match="neither"):
        load_dataset("halfcheetah medium")
    with pytest.raises(ValueError, match="policy"):
        collect_dataset(TASK, "novice", 10, out=tmp_path, fmt="npz")
    with pytest.raises(ValueError, match="no 'expert' checkpoint"):
        collect_dataset(TASK, "expert", 10, out=tmp_path, fmt="npz", policy_dir=tmp_path)
    with pytest.raises(ValueError, match="format"):
        collect_dataset(TASK, "random", 10, out=tmp_path, fmt="csv")
    _tiny_actor(tmp_path / "hopper-medium.pt", env_id="InvertedPendulum-v5")
    with pytest.raises(ValueError, match="obs/action dims"):
        collect_dataset("hopper", "medium", 10, out=tmp_path, fmt="npz", policy_dir=tmp_path)
    with pytest.raises(ValueError, match="not an actor checkpoint"):
        torch.save({"a": torch.zeros(1)}, tmp_path / "bad.pt")
        load_actor(tmp_path / "bad.pt")
    assert cli_main(["collect", "--env", TASK, "--policy", "novice", "--steps", "5", "--out", str(tmp_path)]) == 2
    assert "policy" in capsys.readouterr().err


def test_offline_benchmark_reads_a_dataset(tmp_path):
    from benchmarks.harness.offline import OfflineConfig, load_or_collect

    path, _ = collect_dataset(TASK, "random", 120, seed=4, out=tmp_path, fmt="npz")
    data, prov = load_or_collect(OfflineConfig(env=TASK, dataset=str(path), num_transitions=100))
    assert len(data["obs"]) == 100 and prov["policy"] == "random"
    with pytest.raises(ValueError, match="fewer than"):
        load_or_collect(OfflineConfig(env=TASK, dataset=str(path), num_transitions=500))
    with pytest.raises(ValueError, match="not HalfCheetah-v5"):
        load_or_collect(OfflineConfig(env="halfcheetah", dataset=str(path), num_transitions=100))


@pytest.mark.mujoco
def test_train_policies_writes_levels_that_collect_uses(tmp_path, capsys):
    """Training lives with the agents (mbrl_po.agents.policies); the data layer reads what it writes."""
    from mbrl_po.agents.policies import main as policies_main

    out = tmp_path / "policies"
    args = ["train", "--env", TASK, "--steps", "300", "--snapshot-every", "100", "--eval-episodes", "1",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--set", "loop.init_steps=100",
            "--set", "sac.net_arch=[16]"]
    assert policies_main(args) == 0
    assert "expert: step 300" in capsys.readouterr().out
    for level in ("medium", "expert"):
        actor, meta = load_actor(out / f"{TASK}-{level}.pt")
        assert meta["level"] == level and meta["env_id"] == "InvertedPendulum-v5" and actor.hidden == [16]
        assert meta["command"].startswith("python -m mbrl_po.agents.policies train")
    assert cli_main(["collect", "--env", TASK, "--policy", "expert", "--steps", "50", "--policy-dir", str(out),
                     "--format", "npz", "--out", str(tmp_path / "data")]) == 0
    data, prov = load_dataset(next((tmp_path / "data").glob("*.npz")))
    assert len(data["obs"]) == 50 and prov["policy"] == "expert"
