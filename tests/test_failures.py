"""Failing loudly and safely (issue 16): non-finite models, one writer per run directory, one-line errors."""

import csv
import math

import numpy as np
import pytest
import torch

from mbrl_po.agents.common import RunDir
from mbrl_po.agents.pets import PETS
from mbrl_po.config import load_agent_config
from mbrl_po.envs.toy import point_mass_task
from mbrl_po.errors import NonFiniteModelError
from mbrl_po.planning import MPCAgent, make_optimizer

TINY = {
    "device": "cpu", "steps": 60,
    "model": {"ensemble_size": 2, "num_elites": 1, "hidden_sizes": [16], "max_epochs": 2, "batch_size": 32},
    "planner": {"horizon": 4, "population": 16, "particles": 1, "iterations": 1},
    "loop": {"init_steps": 20, "train_every": 20, "eval_every": 1000, "checkpoint_every": 20},
}


def _pets(tmp_path, name="run", **over):  # noqa: ANN001, ANN003
    cfg = load_agent_config("pets", "inverted_pendulum", {**TINY, **over})
    run = RunDir.create(tmp_path, cfg, name)
    return PETS(cfg, run, task=point_mass_task(), progress=False), run


def _nan_weight(model) -> None:  # noqa: ANN001
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "hidden" in n and p.ndim == 3)[:, 0, 0] = math.nan


# ---------------------------------------------------------------------------------------------- non-finite
def test_mpc_refuses_to_act_when_every_candidate_is_invalid():
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    agent = MPCAgent(make_optimizer("cem", 5, low, high, population=8, iterations=2),
                     lambda obs, seqs: torch.full((seqs.shape[0],), math.nan), seed=0)
    with pytest.raises(NonFiniteModelError, match="every one of the 5-step candidate plans scored NaN/inf"):
        agent.act(np.zeros(2, dtype=np.float32))


def test_a_nan_pets_model_never_plans_and_the_next_fit_restores_it(tmp_path):
    agent, run = _pets(tmp_path)
    obs = agent._reset_env()
    for _ in range(20):  # the random steps, then the first fit
        action = agent.env.action_space.sample()
        nxt, r, term, trunc, _ = agent.env.step(action)
        agent.buffer.add(obs, action, r, nxt, term, trunc)
        agent.step += 1
        obs = agent._reset_env() if term or trunc else nxt
    agent._learn()
    assert np.all(np.isfinite(agent._act(obs)))
    _nan_weight(agent.model)
    agent.mpc.reset()
    with pytest.raises(NonFiniteModelError, match="planner: every one"):
        agent._act(obs)
    with pytest.warns(RuntimeWarning, match="restored"):
        agent._retrain(0.0)
    rows = run.read_metrics()
    assert rows[-1]["model_rollback"] == "1" and rows[0]["model_rollback"] == ""
    agent.mpc.reset()
    assert np.all(np.isfinite(agent._act(obs)))  # planning on the restored, finite weights


def test_nan_metrics_are_written_as_nan_not_blank(tmp_path):
    _, run = _pets(tmp_path)
    run.log({"env_step": 3, "model_nll": math.nan, "rollout_error": float("nan"), "model_mse": 0.5})
    with open(run.metrics_path, newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert (row["model_nll"], row["rollout_error"], row["model_mse"], row["u"]) == ("nan", "nan", "0.5", "")
