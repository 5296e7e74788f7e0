"""PETS end to end: known-model control on a toy env, learning on it, InvertedPendulum-v5 with every
objective, and kill-and-resume."""

import numpy as np
import pytest
import torch
from test_model_env import point_mass_ensemble
from test_reward_matrix import dc4d05d_format

from mbrl_po.agents.common import RunDir
from mbrl_po.agents.pets import PETS
from mbrl_po.config import load_agent_config
from mbrl_po.envs.toy import PointMassEnv, point_mass_reward, point_mass_task, point_mass_termination
from mbrl_po.models.model_env import ModelEnv
from mbrl_po.planning import MPCAgent, make_optimizer
from mbrl_po.planning.evaluator import TrajectoryEvaluator

TINY = {
    "device": "cpu",
    "model": {"ensemble_size": 3, "num_elites": 2, "hidden_sizes": [32, 32], "max_epochs": 15, "batch_size": 64},
    "planner": {"horizon": 8, "population": 50, "particles": 2, "iterations": 2},
}


def _episode_return(env: PointMassEnv, act) -> float:  # noqa: ANN001
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(act(obs))
        total += r
        done = term or trunc
    return total


def test_mpc_with_the_known_model_controls_the_toy_env():
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    menv = ModelEnv(point_mass_ensemble(), point_mass_termination, point_mass_reward, "ts1",
                    torch.Generator().manual_seed(0))
    agent = MPCAgent(make_optimizer("cem", 10, low, high, population=100, iterations=4),
                     TrajectoryEvaluator(menv, 1), seed=0)
    env = PointMassEnv(x0=1.0)
    planned = _episode_return(env, agent.act)
    rng = np.random.default_rng(0)
    random = np.mean([_episode_return(PointMassEnv(x0=1.0), lambda o: rng.uniform(-1, 1, 1)) for _ in range(5)])
    idle = _episode_return(PointMassEnv(x0=1.0), lambda o: np.zeros(1))  # never moves: -1 per step
    assert planned > -10.0, planned  # brought to rest near 0: the idle policy scores -40
    assert planned > 3 * max(random, idle), (planned, random, idle)


def _cfg(objective: dict, steps: int = 300, **loop):  # noqa: ANN003
    over = {**TINY, "steps": steps, "objective": objective,
            "loop": {"init_steps": 100, "train_every": 100, "eval_every": 150, "checkpoint_every": 50, **loop}}
    return load_agent_config("pets", "inverted_pendulum", over)


@pytest.mark.parametrize("inference_precision", ["float32", "bf16"])
def test_pets_learns_the_toy_env(tmp_path, inference_precision):
    """Planning with the model's matmuls in bf16 (``model.inference_precision``) controls the toy env too."""
    cfg = load_agent_config("pets", "inverted_pendulum", {
        **TINY, "steps": 400, "loop": {"init_steps": 80, "train_every": 80, "eval_every": 400},
        "planner": {"horizon": 10, "population": 60, "particles": 2, "iterations": 3},
        "model": {**TINY["model"], "inference_precision": inference_precision}})
    run = RunDir.create(tmp_path, cfg, "toy")
    agent = PETS(cfg, run, task=point_mass_task(), progress=False)
    assert agent.model_env.precision == inference_precision
    out = agent.train()
    rng = np.random.default_rng(0)
    random = np.mean([_episode_return(PointMassEnv(), lambda o: rng.uniform(-1, 1, 1)) for _ in range(10)])
    assert out["eval_return"] > random + 5, (out, random)


@pytest.mark.mujoco
@pytest.mark.parametrize("objective", [
    {"name": "nll"}, {"name": "mse"}, {"name": "pg", "reward_matrix": "learned"},
    {"name": "pg", "reward_matrix": "inverse_cov"},
])
def test_pets_on_inverted_pendulum_end_to_end(tmp_path, objective):
    cfg = _cfg(objective)
    run = RunDir.create(tmp_path, cfg, "run")
    out = PETS(cfg, run, progress=False).train()
    rows = run.read_metrics()
    assert out["env_steps"] == 300
    assert [int(r["env_step"]) for r in rows if r["eval_return"]] == [150, 300]
    model_rows = [r for r in rows if r["model_fit_s"]]
    assert [int(r["env_step"]) for r in model_rows] == [100, 200, 300]
    assert all(r["model_nll"] and r["model_mse"] for r in model_rows[1:])  # scored on fresh data
    assert any(r["rollout_error"] not in ("", "nan") for r in model_rows[1:])
    if objective.get("reward_matrix") == "learned":
        assert all(r["u"] for r in model_rows)
    assert run.checkpoint_path.exists() and (run.path / "learning_curve.png").exists()
    assert float(rows[-1]["wall_time"]) > 0


def _kill_at_checkpoint_then_resume(monkeypatch, cfg, run: RunDir, die, before_resume=None) -> PETS:  # noqa: ANN001
    """Train in ``run`` until the checkpoint where ``die(agent, saves_so_far)`` is true, then resume from it
    (after ``before_resume(run)``, when given)."""
    saves = {"n": 0}
    original = PETS.save_checkpoint

    def save_then_die(self):  # noqa: ANN001, ANN202
        original(self)
        saves["n"] += 1
        if die(self, saves["n"]):
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(PETS, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        PETS(cfg, run, progress=False).train()
    monkeypatch.setattr(PETS, "save_checkpoint", original)
    if before_resume is not None:
        before_resume(run)
    return PETS.resume(run, progress=False)


def _strip(rows):  # noqa: ANN001, ANN202 - metrics rows without the timings
    return [{k: v for k, v in r.items() if k not in ("wall_time", "model_fit_s")} for r in rows]


@pytest.mark.mujoco
def test_kill_and_resume_gives_the_same_buffer_and_metrics(tmp_path, monkeypatch):
    objective = {"name": "pg", "reward_matrix": "learned"}
    cfg = _cfg(objective, steps=260)
    full = RunDir.create(tmp_path, cfg, "full")
    a = PETS(cfg, full, progress=False)
    a.train()

    killed = RunDir.create(tmp_path, cfg, "killed")
    b = _kill_at_checkpoint_then_resume(monkeypatch, cfg, killed, lambda agent, n: n == 3)
    assert 0 < b.step < 260
    b.train()

    ta, tb = a.buffer.transitions(), b.buffer.transitions()
    for field in ("obs", "actions", "next_obs", "rewards", "terminated"):
        assert torch.equal(getattr(ta, field), getattr(tb, field)), field

    assert _strip(full.read_metrics()) == _strip(killed.read_metrics())


@pytest.mark.mujoco
@pytest.mark.parametrize("objective", [{"name": "pg", "reward_matrix": "learned"},
                                       {"name": "pg", "reward_matrix": "inverse_cov"}], ids=["learned", "inverse_cov"])
def test_a_checkpoint_of_the_old_format_resumes_to_the_same_run(tmp_path, monkeypatch, objective):
    """A latest.pt as mbrl_po wrote it up to dc4d05d (no objective state; φ in the solver's state, a heuristic U as
    ``objective_u``) resumes to the rows of the run that was never stopped."""
    cfg = _cfg(objective, steps=260)
    full = RunDir.create(tmp_path, cfg, "full")
    PETS(cfg, full, progress=False).train()

    def rewrite(run: RunDir) -> None:
        state = torch.load(run.checkpoint_path, map_location="cpu", weights_only=False)
        assert state["trainer"]["fits"] == 1  # killed after the first fit: there is a U to restore
        torch.save(dc4d05d_format(state), run.checkpoint_path)

    killed = RunDir.create(tmp_path, cfg, "killed")
    b = _kill_at_checkpoint_then_resume(monkeypatch, cfg, killed, lambda agent, n: n == 3, before_resume=rewrite)
    assert 0 < b.step < 260
    b.train()
    assert _strip(full.read_metrics()) == _strip(killed.read_metrics())


@pytest.mark.mujoco
def test_eval_episodes_zero_logs_the_training_episodes_and_survives_a_kill(tmp_path, monkeypatch):
    """loop.eval_episodes = 0: each eval row is the mean return of the training episodes since the last one;
    a run killed between an episode end and the next evaluation resumes to the same rows."""
    cfg = load_agent_config("pets", "inverted_pendulum", {
        **TINY, "steps": 240, "loop": {"init_steps": 60, "train_every": 60, "eval_every": 120, "eval_episodes": 0,
                                       "checkpoint_every": 1}})
    full = RunDir.create(tmp_path, cfg, "full")
    PETS(cfg, full, progress=False).train()
    rows = full.read_metrics()
    evals = [r for r in rows if r["eval_return"] != ""]
    assert [int(r["env_step"]) for r in evals] == [120, 240]
    last = 0
    for ev in evals:
        step = int(ev["env_step"])
        eps = [float(r["episode_return"]) for r in rows
               if r["episode_return"] != "" and last < int(r["env_step"]) <= step]
        assert eps, "the test needs episodes between evaluations"
        assert float(ev["eval_return"]) == pytest.approx(sum(eps) / len(eps))
        last = step

    killed = RunDir.create(tmp_path, cfg, "killed")  # dies at a checkpoint after some episodes, between evals
    b = _kill_at_checkpoint_then_resume(monkeypatch, cfg, killed, lambda agent, n: agent.step > 120 and n >= 2
                                        and agent.step % 120)
    assert 120 < b.step < 240 and b.recent_returns  # episodes since the last eval, rebuilt from metrics.csv
    b.train()

    assert _strip(killed.read_metrics()) == _strip(rows)


def test_unknown_config_keys_and_values_fail_with_the_choices():
    with pytest.raises(ValueError, match=r"planner\.horizn: unknown key.*did you mean 'horizon'"):
        load_agent_config("pets", "inverted_pendulum", {"planner": {"horizn": 3}})
    with pytest.raises(ValueError, match=r"objective\.name: got 'mle', allowed \['nll', 'mse', 'pg', 'beta_nll'\]"):
        load_agent_config("pets", "inverted_pendulum", {"objective": {"name": "mle"}})
    with pytest.raises(ValueError, match=r"planner\.optimizer: got 'cme'.*did you mean 'cem'"):
        load_agent_config("pets", "inverted_pendulum", {"planner": {"optimizer": "cme"}})
    with pytest.raises(ValueError, match=r"planner\.horizon: got 'long'"):
        load_agent_config("pets", "inverted_pendulum", {"planner": {"horizon": "long"}})
    with pytest.raises(ValueError, match="agent: got 'petz'"):
        load_agent_config("petz", "inverted_pendulum")
