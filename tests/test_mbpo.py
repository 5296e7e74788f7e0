"""MBPO and plain SAC: rollout schedule, the mixed real/model sampler, InvertedPendulum-v5 end to end with the
nll and pg (learned U) objectives, and kill-and-resume."""

import tempfile

import numpy as np
import pytest
import torch

from mbrl_po.agents.common import RunDir
from mbrl_po.agents.mbpo import MBPO, MixedSampler, SACAgent, model_buffer_capacity, rollout_length
from mbrl_po.config import load_agent_config
from mbrl_po.data.replay_buffer import ReplayBuffer

LOOP = {"init_steps": 100, "train_every": 100, "eval_every": 150, "checkpoint_every": 50}
SAC_TINY = {"batch_size": 32, "net_arch": [32, 32], "updates_per_step": 2}
MODEL_TINY = {"ensemble_size": 3, "num_elites": 2, "hidden_sizes": [32, 32], "max_epochs": 10, "batch_size": 64}
# k = 1 in epoch 1 (steps 100-199), k = 3 from epoch 2 on: the model buffer is resized at step 200
MBPO_TINY = {"rollouts_per_step": 20, "updates_per_step": 2, "epoch_length": 100, "rollout_schedule": [1, 2, 1, 3]}


def _mbpo_cfg(objective: dict, steps: int = 300):  # noqa: ANN202
    return load_agent_config("mbpo", "inverted_pendulum", {
        "device": "cpu", "steps": steps, "objective": objective, "model": MODEL_TINY, "mbpo": MBPO_TINY,
        "sac": SAC_TINY, "loop": LOOP})


def _sac_cfg(steps: int = 300):  # noqa: ANN202
    return load_agent_config("sac", "inverted_pendulum", {"device": "cpu", "steps": steps, "sac": SAC_TINY,
                                                          "loop": LOOP})


# ---------------------------------------------------------------------------------------------- pieces
def test_rollout_length_schedule():
    hopper = (20, 150, 1, 15)
    assert [rollout_length(hopper, e) for e in (0, 19, 20, 21, 85, 149, 150, 500)] == [1, 1, 1, 1, 8, 14, 15, 15]
    assert [rollout_length((1, 2, 1, 3), e) for e in (0, 1, 2, 3)] == [1, 1, 3, 3]
    assert [rollout_length((0, 10, 10, 1), e) for e in (0, 5, 10)] == [10, 5, 1]  # may shrink too
    assert rollout_length((5, 5, 1, 4), 5) == 1 and rollout_length((5, 5, 1, 4), 6) == 4
    with pytest.raises(ValueError, match="rollout_schedule"):
        rollout_length((10, 5, 1, 4), 0)
    with pytest.raises(ValueError, match="rollout_schedule"):
        rollout_length((0, 5, 0, 4), 0)
    cfg = _mbpo_cfg({"name": "nll"})
    assert model_buffer_capacity(cfg, 3) == 20 * 100 * 1 * 3


def _filled(n: int, value: float, seed: int, low: float = -3.0, high: float = 3.0) -> ReplayBuffer:
    buf = ReplayBuffer(n, 2, 1, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    buf.add_batch(np.full((n, 2), value), rng.uniform(low, high, (n, 1)), np.full(n, value), np.full((n, 2), value),
                  np.arange(n) % 2 == 0)
    return buf


def test_mixed_sampler_proportions_scaling_and_format():
    real, model = _filled(50, 0.0, 0), _filled(80, 1.0, 1)
    low, high = np.array([-3.0], np.float32), np.array([3.0], np.float32)
    for ratio, batch, n_real in ((0.05, 256, 13), (0.25, 100, 25), (1.0, 32, 32), (0.0, 32, 0)):
        sampler = MixedSampler(real, model, ratio, low, high, torch.device("cpu"))
        s = sampler.sample(batch)
        assert sampler.split(batch) == (n_real, batch - n_real)
        assert s.observations.shape == (batch, 2) and s.next_observations.shape == (batch, 2)
        assert s.actions.shape == (batch, 1) and s.rewards.shape == (batch, 1) and s.dones.shape == (batch, 1)
        assert s.discounts is None and s.dones.dtype == torch.float32
        from_real = s.rewards[:, 0] == 0.0
        assert int(from_real.sum()) == n_real and bool(from_real[:n_real].all())  # real rows come first
        assert set(s.dones.unique().tolist()) <= {0.0, 1.0}
        assert s.actions.abs().max() <= 1.0 and s.actions.abs().max() > 0.5  # env scale [-3, 3] -> [-1, 1]
    # the scaling is the affine map of SB3's policy.scale_action
    one = MixedSampler(_filled(1, 0.0, 2), None, 0.05, np.array([0.0]), np.array([4.0]), torch.device("cpu"))
    raw = float(one.real.transitions().actions[0, 0])
    assert float(one.sample(1).actions[0, 0]) == pytest.approx(2 * raw / 4 - 1, abs=1e-6)
    # no model buffer (plain SAC) or an empty one: all real
    assert MixedSampler(real, None, 0.05, low, high, torch.device("cpu")).split(64) == (64, 0)
    empty = ReplayBuffer(10, 2, 1)
    assert MixedSampler(real, empty, 0.05, low, high, torch.device("cpu")).split(64) == (64, 0)
    with pytest.raises(ValueError, match="real_ratio"):
        MixedSampler(real, model, 1.5, low, high, torch.device("cpu"))


def test_wrong_kind_is_an_error():
    with pytest.raises(ValueError, match="kind: MBPO needs kind='mbpo', got 'sac'"):
        MBPO(_sac_cfg())


# ---------------------------------------------------------------------------------------------- end to end
def _check_run(run: RunDir, out: dict[str, float], steps: int, model: bool, learned_u: bool = False) -> None:
    rows = run.read_metrics()
    assert out["env_steps"] == steps and np.isfinite(out["eval_return"]) and out["wall_time"] > 0
    assert [int(r["env_step"]) for r in rows if r["eval_return"]] == list(range(150, steps + 1, 150))
    assert any(r["episode_return"] for r in rows)
    model_rows = [r for r in rows if r["model_fit_s"]]
    model_cols = ("model_nll", "model_mse", "rollout_error", "u", "model_fit_s")
    if model:
        assert [int(r["env_step"]) for r in model_rows] == list(range(100, steps + 1, 100))
        assert all(r["model_nll"] and r["model_mse"] for r in model_rows[1:])  # scored on fresh data
        assert any(r["rollout_error"] not in ("", "nan") for r in model_rows[1:])
        assert all(bool(r["u"]) == learned_u for r in model_rows)
    else:
        assert not any(r[c] for r in rows for c in model_cols)
    state = run.load_checkpoint()
    assert run.checkpoint_path.exists() and (run.ckpt_dir / state["buffer_files"]["buffer"]).exists()
    assert ("model_buffer" in state["buffer_files"]) == model
    assert len(list(run.ckpt_dir.glob("*.npz"))) == len(state["buffer_files"])  # older buffer files removed
    assert (run.path / "learning_curve.png").exists()


def _check_model_buffer(agent: MBPO) -> None:
    mb = agent.model_buffer
    assert mb is not None and agent.rollout_k == 3 and mb.capacity == 20 * 100 * 3
    d = mb.transitions()
    assert len(d) >= 20 * 100 + 20 * 101  # steps 100-199: k = 1; steps 200-300: k = 3, first step always valid
    assert d.actions.abs().max() <= 3.0 and d.actions.abs().max() > 1.0  # env scale, not SB3's [-1, 1]
    assert torch.isfinite(d.next_obs).all() and torch.isfinite(d.rewards).all()


@pytest.mark.mujoco
def test_mbpo_nll_on_inverted_pendulum_end_to_end(tmp_path):
    cfg = _mbpo_cfg({"name": "nll"})
    run = RunDir.create(tmp_path, cfg, "run")
    agent = MBPO(cfg, run, progress=False)
    out = agent.train()
    _check_run(run, out, 300, model=True)
    _check_model_buffer(agent)
    assert agent.sac._n_updates == 2 * 201 and len(agent.buffer) == 300


def _kill_after_checkpoint(monkeypatch, cls, n: int) -> None:  # noqa: ANN001
    original = cls.save_checkpoint
    saves = {"n": 0}

    def save_then_die(self):  # noqa: ANN001, ANN202
        original(self)
        saves["n"] += 1
        if saves["n"] == n:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(cls, "save_checkpoint", save_then_die)


def _strip(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("wall_time", "model_fit_s")} for r in rows]


def _same_buffers(a: ReplayBuffer, b: ReplayBuffer) -> None:
    ta, tb = a.transitions(), b.transitions()
    for field in ("obs", "actions", "next_obs", "rewards", "terminated"):
        assert torch.equal(getattr(ta, field), getattr(tb, field)), field
    assert np.array_equal(a.truncated(), b.truncated())
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.mujoco
@pytest.mark.parametrize("kind", ["mbpo", "sac"])
def test_kill_and_resume_gives_the_same_run(tmp_path, monkeypatch, kind):
    """pg with a learned U (the most state) for MBPO; the uninterrupted run is also checked end to end."""
    cls, steps = (MBPO, 300) if kind == "mbpo" else (SACAgent, 250)
    cfg = _mbpo_cfg({"name": "pg", "reward_matrix": "learned"}, steps) if kind == "mbpo" else _sac_cfg(steps)
    full = RunDir.create(tmp_path, cfg, "full")
    a = cls(cfg, full, progress=False)
    _check_run(full, a.train(), steps, model=kind == "mbpo", learned_u=True)

    killed = RunDir.create(tmp_path, cfg, "killed")
    _kill_after_checkpoint(monkeypatch, cls, 3)
    with pytest.raises(KeyboardInterrupt):
        cls(cfg, killed, progress=False).train()
    monkeypatch.undo()
    b = cls.resume(killed, progress=False)
    assert 100 < b.step < 200  # killed in the middle of learning, with model rollouts (k = 1) under way
    b.train()

    _same_buffers(a.buffer, b.buffer)
    if kind == "mbpo":
        _check_model_buffer(b)
        _same_buffers(a.model_buffer, b.model_buffer)
    assert a.sac._n_updates == b.sac._n_updates
    for (name, pa), pb in zip(a.sac.policy.state_dict().items(), b.sac.policy.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert _strip(full.read_metrics()) == _strip(killed.read_metrics())


@pytest.mark.mujoco
def test_resume_without_a_checkpoint_starts_over(tmp_path):
    cfg = _sac_cfg(steps=20)
    run = RunDir.create(tmp_path, cfg, "run")
    run.log({"env_step": 5, "episode": 1})
    agent = SACAgent.resume(run, progress=False)
    assert agent.step == 0 and run.read_metrics() == []


@pytest.mark.mujoco
def test_sb3_logger_leaves_no_folder_behind(tmp_path, monkeypatch):
    """SB3's ``configure()`` makes ``<tmp>/SB3-<date>`` even with no output format; the agents must not."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    agent = SACAgent(_sac_cfg(steps=20), progress=False)
    assert agent.sac.logger.output_formats == []
    assert not list(tmp_path.glob("SB3-*"))
