"""Every envs/*.toml x agents/*.toml pair loads, validates and builds its agent (without training)."""

from pathlib import Path

import pytest
import torch

from mbrl_po.agents import agent_class
from mbrl_po.cli import main
from mbrl_po.config import SCHEMA_VERSION, load_agent_config

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
    built = agent_class(cfg.kind)(cfg, None)
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
    assert ("allowed ['identity', 'scaled', 'inverse_cov', 'learned', 'state_inverse_cov', 'state_learned']"
            in capsys.readouterr().err)
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
    with pytest.raises(ValueError, match=r"applies to reward_matrix in \['learned', 'state_learned'\] only"):
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
    assert e.value.code == 0 and "benchmarks.harness.u_landscape" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "planner-sweep", "--help"])
    assert e.value.code == 0 and "--settings" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "early-stop", "--help"])
    assert e.value.code == 0 and "--refits" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0 and "u-landscape" in capsys.readouterr().out
    assert main(["bench"]) == 2
    assert main(["bench", "nope"]) == 2
    allowed = "['offline', 'u-landscape', 'speed', 'online', 'planner-sweep', 'early-stop']"
    assert f"bench: got 'nope', allowed {allowed}" in capsys.readouterr().err


def test_bench_and_report_outside_a_checkout_say_where_the_harness_is(capsys, monkeypatch, tmp_path):
    from mbrl_po import cli

    monkeypatch.chdir(tmp_path)
    assert cli.checkout_root() == ROOT  # an editable or source-tree mbrl_po: the checkout it was imported from
    monkeypatch.setattr(cli, "checkout_root", lambda: None)  # an installed wheel run in another folder
    assert main(["bench", "online", "cpu", "--dry-run"]) == 2
    assert capsys.readouterr().err == ("mbrl-po bench: the benchmark harness lives in a checkout of the repository "
                                       "(benchmarks/harness/); run it from there\n")
    assert main(["report", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("mbrl-po report: the benchmark harness lives in a checkout")
    assert main(["bench"]) == 2  # the usage line needs no harness


# every value the issue-16 probe found accepted: each fails at load, naming the field and the allowed range
BAD_VALUES = [
    (["--set", "model.lr=-1"], "model.lr: got -1.0, allowed > 0"),
    (["--set", "model.lr=nan"], "model.lr: got nan, allowed > 0"),
    (["--set", "model.holdout_fraction=1.5"], "model.holdout_fraction: got 1.5, allowed [0, 1)"),
    (["--set", "model.weight_decay=-1"], "model.weight_decay: got -1.0, allowed >= 0"),
    (["--set", "model.grad_clip=-1"], "model.grad_clip: got -1.0, allowed > 0"),
    (["--set", "model.early_stop_metric=loss"], "model.early_stop_metric: got 'loss', allowed ['nll', 'mse']"),
    (["--set", "planner.elite_fraction=2"], "planner.elite_fraction: got 2.0, allowed (0, 1]"),
    (["--set", "planner.alpha=-3"], "planner.alpha: got -3.0, allowed [0, 1)"),
    (["--set", "planner.population=1"], "planner.population: got 1, allowed an integer >= 2"),
    (["--set", "objective.num_samples=0"], "objective.num_samples: got 0, allowed an integer > 0"),
    (["--objective", "pg", "--set", "objective.num_samples=1"],
     "objective.num_samples: got 1, allowed an integer >= 2"),
    (["--set", "objective.bilevel_lr=-1"], "objective.bilevel_lr: got -1.0, allowed > 0"),
    (["--set", "objective.bilevel_iterations=0"], "objective.bilevel_iterations: got 0, allowed an integer > 0"),
    (["--set", "model.hidden_sizes=[0]"], "model.hidden_sizes: got [0], allowed a non-empty list of integers > 0"),
    (["--set", "model.hidden_sizes=[-5]"], "model.hidden_sizes: got [-5], allowed"),
    (["--set", 'model.hidden_sizes=["a"]'], "model.hidden_sizes: got ['a'], allowed"),
    (["--set", "model.hidden_sizes=[]"], "model.hidden_sizes: got [], allowed"),
    (["--set", "model.ensemble_size=true"], "model.ensemble_size: got True (bool), allowed a int"),
    (["--set", "sac.net_arch=[-5]"], "sac.net_arch: got [-5], allowed a list of integers > 0"),
    (["--set", "mbpo.rollout_schedule=[20,10,1,0]"], "mbpo.rollout_schedule: got [20, 10, 1, 0], allowed 4 integers"),
    (["--set", "mbpo.rollout_schedule=[1,2,3]"], "mbpo.rollout_schedule: got [1, 2, 3], allowed 4 integers"),
    (["--seed", "-1"], "seed: got -1, allowed an integer >= 0"),
    (["--steps", "0"], "steps: got 0, allowed an integer > 0"),
    (["--set", "sac.gamma=5"], "sac.gamma: got 5.0, allowed [0, 1]"),
    (["--set", "sac.tau=0"], "sac.tau: got 0.0, allowed (0, 1]"),
    (["--set", "sac.learning_rate=0"], "sac.learning_rate: got 0.0, allowed > 0"),
    (["--set", "sac.target_entropy=nan"], "sac.target_entropy: got nan, allowed 'auto' or a finite number"),
    (["--set", "sac.target_entropy=inf"], "sac.target_entropy: got inf, allowed 'auto' or a finite number"),
    (["--set", "mbpo.real_ratio=nan"], "mbpo.real_ratio: got nan, allowed [0, 1]"),
    # option tables, validated by the factories (make_optimizer's configs, make_objective's constructors)
    (["--set", "planner.optimizer=icem", "--set", "planner.options.noise_beta=-1"],
     "planner.options.noise_beta: got -1.0, allowed a finite number >= 0"),
    (["--set", "planner.optimizer=icem", "--set", "planner.options.keep_elite_fraction=2"],
     "planner.options.keep_elite_fraction: got 2.0, allowed in [0, 1]"),
    (["--set", "planner.optimizer=icem", "--set", "planner.options.population_decay=0.5"],
     "planner.options.population_decay: got 0.5, allowed >= 1"),
    (["--set", "planner.optimizer=icem", "--set", "planner.options.shift_elites=1"],
     "planner.options.shift_elites: got 1, allowed a bool"),
    (["--set", "planner.optimizer=mppi", "--set", "planner.options.gamma=0"],
     "planner.options.gamma: got 0.0, allowed a finite number > 0"),
    (["--set", "planner.optimizer=mppi", "--set", "planner.options.beta=1.5"],
     "planner.options.beta: got 1.5, allowed in (0, 1]"),
    (["--set", "planner.optimizer=mppi", "--set", "planner.options.sigma=inf"],
     "planner.options.sigma: got inf, allowed a finite number > 0"),
    (["--set", "planner.options.init_std=-1"], "planner.options.init_std: got -1.0, allowed a finite number > 0"),
    (["--set", "planner.optimizer=icem", "--set", "planner.options.noise_bta=1"],
     "planner.options.noise_bta: unknown key for optimizer 'icem', allowed ['noise_beta', "),
    (["--set", "planner.options.noise_beta=1"], "planner.options.noise_beta: unknown key for optimizer 'cem'"),
    (["--set", "planner.options.population=3"], "planner.options.population: set planner.population instead"),
    (["--set", "planner.options=3"], "planner.options: got 3, allowed a table"),
    (["--objective", "pg", "--set", "objective.options.rbf_gamma=-1"],
     "objective.options.rbf_gamma: got -1.0, allowed a finite number > 0"),
    (["--objective", "pg", "--set", "objective.options.clip_logprob=0"],
     "objective.options.clip_logprob: got 0.0, allowed None or a finite number > 0"),
    (["--objective", "pg", "--set", "objective.options.init=residual"],
     "objective.options.init: set objective.learned_init instead"),
    (["--set", "objective.options.rbf_gamma=2"], "objective.options.rbf_gamma: unknown key for objective 'nll'"),
    (["--objective", "mse", "--set", "objective.options.fit_variance=1"],
     "objective.options.fit_variance: got 1, allowed a bool"),
    (["--set", "schema=9"], f"schema: got 9, allowed an integer in [1, {SCHEMA_VERSION}]"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_show_config_refuses_each_bad_value_naming_field_and_range(args, message, capsys):
    assert main(["show-config", "--agent", "mbpo", "--env", "hopper", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbrl-po: error: ") and message in err and err.count("\n") == 1, err


def test_sections_validate_when_built_directly_too():
    from mbrl_po.config import ModelSection, PlannerSection, SACSection

    with pytest.raises(ValueError, match=r"model.lr: got -0.5, allowed > 0"):
        ModelSection(lr=-0.5)
    with pytest.raises(ValueError, match=r"planner.elite_fraction: got 0.0, allowed \(0, 1\]"):
        PlannerSection(elite_fraction=0.0)
    with pytest.raises(ValueError, match="sac.target_entropy"):
        SACSection(target_entropy=float("nan"))
    # the edges that are allowed stay allowed
    assert ModelSection(holdout_fraction=0.0, weight_decay=0.0).holdout_fraction == 0.0
    assert PlannerSection(elite_fraction=1.0, alpha=0.0).elite_fraction == 1.0
    assert SACSection(gamma=1.0, tau=1.0, target_entropy=-3.0, net_arch=()).gamma == 1.0


def test_config_choices_are_the_librarys_own():
    from mbrl_po import config
    from mbrl_po.models.ensemble import ACTIVATIONS
    from mbrl_po.models.model_env import PROPAGATIONS
    from mbrl_po.objectives import OBJECTIVES, REWARD_MATRICES
    from mbrl_po.planning import OPTIMIZERS
    from mbrl_po.training.trainer import PRECISIONS

    assert config.PROPAGATIONS is PROPAGATIONS and config.PRECISIONS is PRECISIONS
    assert config.ACTIVATIONS == tuple(ACTIVATIONS) and config.OPTIMIZERS == tuple(OPTIMIZERS)
    assert config.OBJECTIVE_NAMES == tuple(OBJECTIVES)
    assert set(config.REWARD_MATRIX_NAMES) == set(REWARD_MATRICES) - {"fixed"}  # fixed: a tensor, set in code
    for name in PROPAGATIONS:  # every library choice is reachable from a config
        assert load_agent_config("pets", "hopper", {"planner": {"propagation": name}}).planner.propagation == name
    for name in ACTIVATIONS:
        assert load_agent_config("pets", "hopper", {"model": {"activation": name}}).model.activation == name


def test_icem_and_mppi_options_reach_the_built_optimizer():
    from mbrl_po.agents.pets import PETS
    from mbrl_po.config import parse_set
    from mbrl_po.envs.toy import point_mass_task
    from mbrl_po.planning import ICEMOptimizer, MPPIOptimizer

    small = {"device": "cpu", "model": {"hidden_sizes": [8], "ensemble_size": 2, "num_elites": 1}}
    icem = load_agent_config("pets", "inverted_pendulum", {**small, **parse_set([
        "planner.optimizer=icem", "planner.options.noise_beta=1", "planner.options.keep_elite_fraction=0.5",
        "planner.options.population_decay=1.5", "planner.options.shift_elites=false"])})
    agent = PETS(icem, None, task=point_mass_task(), progress=False)
    for mpc in (agent.mpc, agent.eval_mpc):
        assert isinstance(mpc.optimizer, ICEMOptimizer)
        c = mpc.optimizer.config
        assert (c.noise_beta, c.keep_elite_fraction, c.population_decay, c.shift_elites) == (1.0, 0.5, 1.5, False)
        assert (c.population, c.iterations, c.elite_fraction) == (100, 3, 0.05)  # the planner's own fields
        assert c.add_mean is True  # not set: iCEM's own default
    mppi = load_agent_config("pets", "inverted_pendulum", {**small, **parse_set([
        "planner.optimizer=mppi", "planner.options.gamma=2", "planner.options.sigma=0.3",
        "planner.options.beta=0.5"])})
    optimizer = PETS(mppi, None, task=point_mass_task(), progress=False).mpc.optimizer
    assert isinstance(optimizer, MPPIOptimizer)
    assert (optimizer.config.gamma, optimizer.config.sigma, optimizer.config.beta) == (2.0, 0.3, 0.5)


def test_objective_options_reach_the_trainer():
    from mbrl_po.agents.common import build_model, build_trainer

    cfg = load_agent_config("pets", "inverted_pendulum", {"objective": {
        "name": "pg", "reward_transform": "rbf", "options": {"rbf_gamma": 2, "clip_logprob": 3}}})
    assert cfg.objective.options == {"clip_logprob": 3.0, "rbf_gamma": 2.0}
    trainer = build_trainer(cfg, build_model(cfg, 4, 1, learn_reward=False, device=torch.device("cpu")))
    assert (trainer.objective.rbf_gamma, trainer.objective.clip_logprob) == (2.0, 3.0)
    mse = load_agent_config("pets", "inverted_pendulum", {"objective": {"name": "mse",
                                                                         "options": {"fit_variance": False}}})
    trainer = build_trainer(mse, build_model(mse, 4, 1, learn_reward=False, device=torch.device("cpu")))
    assert trainer.objective.fit_variance is False


def test_show_config_checks_options_without_building_an_optimizer(capsys, monkeypatch):
    import mbrl_po.planning.icem as icem

    def refuse(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("show-config built an optimizer")

    monkeypatch.setattr(icem.ICEMOptimizer, "__init__", refuse)
    args = ["show-config", "--agent", "pets", "--env", "hopper", "--set", "planner.optimizer=icem"]
    assert main([*args, "--set", "planner.options.noise_beta=0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("schema = 3\n") and "options = {noise_beta = 0.5}" in out
    assert main([*args, "--set", "planner.options.noise_beta=-2"]) == 2
    assert "planner.options.noise_beta: got -2.0" in capsys.readouterr().err


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_files_hold_only_what_differs_from_the_defaults(agent):
    """A default lives in mbrl_po/config.py: an agent file that repeats one would hide a change of it."""
    import tomllib
    import typing

    from mbrl_po.config import AgentConfig, _coerce

    data = tomllib.loads((ROOT / "agents" / f"{agent}.toml").read_text())
    defaults = AgentConfig(kind=data["kind"])
    repeated = []
    for key, value in data.items():
        if isinstance(value, dict):
            section = getattr(defaults, key)
            hints = typing.get_type_hints(type(section))
            repeated += [f"{key}.{k}" for k, v in value.items() if _coerce(k, v, hints[k]) == getattr(section, k)]
        elif key != "kind" and _coerce(key, value, typing.get_type_hints(AgentConfig)[key]) == getattr(defaults, key):
            repeated.append(key)
    assert not repeated, f"agents/{agent}.toml repeats defaults: {repeated}"


def test_docs_list_every_config_key_with_its_default():
    """docs/agents.md copies the defaults of mbrl_po/config.py; this keeps the copy true."""
    import dataclasses
    import re
    import tomllib

    from mbrl_po.config import SECTIONS, AgentConfig

    text = (ROOT / "docs" / "agents.md").read_text()
    defaults = AgentConfig(kind="pets")
    tables = {"": [f for f in dataclasses.fields(AgentConfig) if f.name not in SECTIONS]}
    tables |= {s: list(dataclasses.fields(cls)) for s, cls in SECTIONS.items()}
    for section, fields in tables.items():
        heading = "### Top level" if not section else f"### `[{section}]`"
        body = text.split(heading, 1)[1].split("\n### ", 1)[0]
        rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", body, flags=re.M))
        assert {f.name for f in fields} == set(rows), (section, sorted(rows))
        for f in fields:
            cell = rows[f.name].strip()
            if f.name == "kind":
                assert cell == "(required)"
                continue
            value = tomllib.loads(f"v = {cell.strip('`')}")["v"]
            want = getattr(getattr(defaults, section) if section else defaults, f.name)
            assert (tuple(value) if isinstance(value, list) else value) == want, (section, f.name, cell)
