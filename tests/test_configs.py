"""Every envs/*.toml x agents/*.toml pair loads, validates and builds its agent (without training)."""

from pathlib import Path

import pytest
import torch

from mbrl_po.cli import _agent_class, main
from mbrl_po.config import load_agent_config

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted(p.stem for p in (ROOT / "envs").glob("*.toml"))
AGENTS = sorted(p.stem for p in (ROOT / "agents").glob("*.toml"))


def test_there_are_tasks_and_agents():
    assert {"halfcheetah", "hopper", "walker2d", "ant", "humanoid", "swimmer", "inverted_pendulum",
            "inverted_double_pendulum", "reacher", "pusher"} <= set(ENVS)
    assert {"pets", "mbpo", "sac"} <= set(AGENTS)


@pytest.mark.mujoco
@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("env", ENVS)
def test_every_pair_loads_and_builds(agent, env):
    small = {"device": "cpu", "steps": 10, "model": {"hidden_sizes": [8], "ensemble_size": 2, "num_elites": 1}}
    cfg = load_agent_config(agent, env, small)
    assert cfg.env == env
    built = _agent_class(cfg.kind)(cfg, None)
    assert built.step == 0


def test_task_overrides_reach_the_agent_config():
    cfg = load_agent_config("pets", "halfcheetah")
    assert cfg.planner.horizon == 30
    cfg = load_agent_config("mbpo", "hopper")
    assert cfg.mbpo.rollout_schedule == (20, 150, 1, 15) and cfg.sac.target_entropy == -1.0
    # command-line overrides win over the task file
    cfg = load_agent_config("pets", "halfcheetah", {"planner": {"horizon": 7}})
    assert cfg.planner.horizon == 7


def test_cli_reports_bad_keys_with_choices(capsys):
    assert main(["show-config", "--agent", "pets", "--env", "hopper", "--set", "planner.optimiser=cem"]) == 2
    err = capsys.readouterr().err
    assert "planner.optimiser: unknown key" in err and "did you mean 'optimizer'" in err
    assert main(["show-config", "--agent", "pets", "--objective", "pg", "--reward-matrix", "inverse-cov"]) == 2
    assert "allowed ['identity', 'scaled', 'inverse_cov', 'learned']" in capsys.readouterr().err
    assert main(["show-config", "--agent", "pets", "--env", "hopper", "--set", "planner.horizon=9"]) == 0
    assert "horizon = 9" in capsys.readouterr().out


def test_learned_init_is_validated_reaches_the_trainer_and_keeps_old_ids():
    from mbrl_po.agents.common import build_model, build_trainer

    base = load_agent_config("pets", "inverted_pendulum", overrides={"objective": {"name": "pg"}})
    residual = load_agent_config("pets", "inverted_pendulum",
                                 overrides={"objective": {"name": "pg", "learned_init": "residual"}})
    # a new option at its default leaves the config (its TOML, hash and trial ids) as it was
    assert "learned_init" not in base.to_dict()["objective"] and "learned_init" not in base.to_toml()
    assert residual.to_dict()["objective"]["learned_init"] == "residual"
    assert residual.config_hash() != base.config_hash()
    trainer = build_trainer(residual, build_model(residual, 4, 1, learn_reward=False, device=torch.device("cpu")))
    assert trainer.objective.reward_matrix.init == "residual" and trainer.bilevel is not None
    with pytest.raises(ValueError, match=r"objective.learned_init: got 'marginal', allowed \['identity', 'residual'\]"):
        load_agent_config("pets", "inverted_pendulum", overrides={"objective": {"learned_init": "marginal"}})
    with pytest.raises(ValueError, match="applies to reward_matrix='learned' only"):
        load_agent_config("pets", "inverted_pendulum", overrides={"objective": {
            "name": "pg", "reward_matrix": "inverse_cov", "learned_init": "residual"}})


def test_learned_base_reaches_the_trainer_and_is_validated():
    from mbrl_po.agents.common import build_model, build_trainer

    cfg = load_agent_config("pets", "inverted_pendulum", overrides={"objective": {
        "name": "pg", "structure": "diag", "learned_base": "residual"}})
    assert cfg.to_dict()["objective"]["learned_base"] == "residual"
    trainer = build_trainer(cfg, build_model(cfg, 4, 1, learn_reward=False, device=torch.device("cpu")))
    assert trainer.objective.reward_matrix.base == "residual"
    for bad in ({"reward_matrix": "inverse_cov"}, {"structure": "full"}, {"learned_init": "residual"}):
        with pytest.raises(ValueError, match="objective.learned_base: got 'residual'"):
            load_agent_config("pets", "inverted_pendulum", overrides={"objective": {
                "name": "pg", "learned_base": "residual", **bad}})


def test_bench_help_reaches_each_benchmark(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "u-landscape", "--help"])
    assert e.value.code == 0 and "mbrl_po.benchmark.u_landscape" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "planner-sweep", "--help"])
    assert e.value.code == 0 and "--settings" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0 and "u-landscape" in capsys.readouterr().out
    assert main(["bench"]) == 2
    assert main(["bench", "nope"]) == 2
    allowed = "['offline', 'u-landscape', 'speed', 'online', 'planner-sweep']"
    assert f"bench: got 'nope', allowed {allowed}" in capsys.readouterr().err
