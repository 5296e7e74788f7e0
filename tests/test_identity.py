"""The compatibility contract of config hashes and trial ids.

Committed result rows (``docs/results/<suite>/runs.csv`` and ``partial.csv``) are matched to the trials of a
suite by ``trial_id``, and run directories are named by it; a trial that is running keeps appending rows under
its id. A change to the config code (a new field, a default moved into the library, a trimmed agent TOML)
must therefore leave every existing id as it was. These tests pin them: the ids a suite derives must be the
ones its committed rows carry, and the hashes of the default configs are recorded here as literals.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.harness.suites import list_suites, load_suite
from mbrl_po.config import load_agent_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
#: the files whose ids are live (superseded.csv holds the rows of trials a suite no longer defines)
LIVE_CSVS = ("runs.csv", "partial.csv")


def _committed_rows(suite: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in LIVE_CSVS:
        path = RESULTS / suite / name
        if path.is_file():
            with open(path, newline="") as f:
                rows.extend(csv.DictReader(f))
    return rows


@pytest.mark.parametrize("suite", list_suites())
def test_every_committed_trial_id_is_rederived_with_its_config_hash(suite):
    trials = {t.trial_id: t for t in load_suite(suite).trials()}
    rows = _committed_rows(suite)
    for row in rows:
        t = trials.get(row["trial_id"])
        assert t is not None, f"{suite}: committed trial {row['trial_id']} ({row['agent']}/{row['task']}/" \
                              f"{row['objective']}/{row['u_option']}/s{row['seed']}) is no longer derived"
        assert t.config.config_hash() == row["config_hash"], (suite, t.label)
        assert (t.agent, t.task, t.objective, t.u_option, str(t.seed)) == \
            (row["agent"], row["task"], row["objective"], row["u_option"], row["seed"]), t.label
    if suite in ("cpu", "cpu-stress"):  # finished suites: every trial has its rows
        assert {r["trial_id"] for r in rows} == set(trials)


#: the locomotion suite's trials, running from commit bb55f71 (their run directories are named by these ids)
LOCOMOTION = {
    "mbpo/hopper/nll/s0": ("673f80cccc7d", "f16b5a1b76"),
    "mbpo/hopper/pg-inverse_cov-residual/s0": ("f771c9009aa0", "8dc7a141ad"),
    "pets/halfcheetah/nll/s0": ("2cb02d413603", "fa39db794e"),
    "pets/halfcheetah/pg-inverse_cov-residual/s0": ("cea6c77f5af5", "a7da299c61"),
    "sac/hopper/model-free/s0": ("03a8ea7ad0e3", "e404100596"),
    "sac/halfcheetah/model-free/s0": ("0995620fc90d", "6963d30fb7"),
    "mbpo/hopper/nll/s1": ("297f68c139d5", "f16b5a1b76"),
    "mbpo/hopper/pg-inverse_cov-residual/s1": ("cbb9a4bc509c", "8dc7a141ad"),
    "pets/halfcheetah/nll/s1": ("ed6a7f48746e", "fa39db794e"),
    "pets/halfcheetah/pg-inverse_cov-residual/s1": ("29d17ed5200f", "a7da299c61"),
    "sac/hopper/model-free/s1": ("d7dba8757791", "e404100596"),
    "sac/halfcheetah/model-free/s1": ("9ef8e56f2b0f", "6963d30fb7"),
    "sac/hopper/model-free/s2": ("0f9cf893e174", "e404100596"),
    "sac/halfcheetah/model-free/s2": ("c335bf2c69ab", "6963d30fb7"),
}


def test_locomotion_trial_ids_are_pinned():
    got = {t.label: (t.trial_id, t.config.config_hash()) for t in load_suite("locomotion").trials()}
    assert got == LOCOMOTION


#: ``config_hash()`` of ``load_agent_config(agent, task)`` for every shipped agent x task
DEFAULT_HASHES = {
    ("mbpo", "ant"): "37e6ee77b8", ("mbpo", "ant_truncated"): "9f1d599e16",
    ("mbpo", "halfcheetah"): "08f9ffce0a", ("mbpo", "hopper"): "0095f2fe38",
    ("mbpo", "humanoid"): "5c54d75fc5", ("mbpo", "humanoid_truncated"): "bc688b5eb1",
    ("mbpo", "inverted_double_pendulum"): "8b6c2c2218", ("mbpo", "inverted_pendulum"): "6db17c1804",
    ("mbpo", "pusher"): "2510ed0bf6", ("mbpo", "reacher"): "96a9618ffd",
    ("mbpo", "swimmer"): "3d0f4a4055", ("mbpo", "walker2d"): "2c943926fd",
    ("pets", "ant"): "6e4c04d950", ("pets", "ant_truncated"): "a6539a4119",
    ("pets", "halfcheetah"): "803a269812", ("pets", "hopper"): "ac7b65332c",
    ("pets", "humanoid"): "8f8a70f410", ("pets", "humanoid_truncated"): "d62967dddd",
    ("pets", "inverted_double_pendulum"): "ebd5afbe2c", ("pets", "inverted_pendulum"): "e39fd7f33c",
    ("pets", "pusher"): "e909d5bc73", ("pets", "reacher"): "e871e4c15b",
    ("pets", "swimmer"): "0f59595f6a", ("pets", "walker2d"): "e0342f9f16",
    ("sac", "ant"): "8a6912ee6e", ("sac", "ant_truncated"): "ca811a7fdb",
    ("sac", "halfcheetah"): "7bb641d131", ("sac", "hopper"): "e44ae4f1b1",
    ("sac", "humanoid"): "5f386e2b7c", ("sac", "humanoid_truncated"): "763a447a14",
    ("sac", "inverted_double_pendulum"): "09414637f6", ("sac", "inverted_pendulum"): "b405dfa669",
    ("sac", "pusher"): "e3bcb33845", ("sac", "reacher"): "dd1b346df3",
    ("sac", "swimmer"): "19751a42b3", ("sac", "walker2d"): "e9ee27737c",
}


def test_default_config_hashes_are_pinned():
    agents = sorted(p.stem for p in (ROOT / "agents").glob("*.toml"))
    tasks = sorted(p.stem for p in (ROOT / "envs").glob("*.toml"))
    got = {(a, t): load_agent_config(a, t).config_hash() for a in agents for t in tasks}
    assert got == DEFAULT_HASHES


#: hashes of variants on ``pets`` x ``inverted_pendulum``: fields added after the first results included
VARIANT_HASHES = [
    ({"objective": {"name": "pg"}}, "f0e623e9e9"),
    ({"objective": {"name": "pg", "learned_init": "residual"}}, "9128283c93"),
    ({"objective": {"name": "pg", "structure": "diag", "learned_base": "residual"}}, "9336b2c7cb"),
    ({"objective": {"name": "pg", "reward_matrix": "inverse_cov"}}, "f8414e7ff6"),
]


@pytest.mark.parametrize(("overrides", "expected"), VARIANT_HASHES, ids=[str(o) for o, _ in VARIANT_HASHES])
def test_variant_config_hashes_are_pinned(overrides, expected):
    assert load_agent_config("pets", "inverted_pendulum", overrides).config_hash() == expected


@pytest.mark.parametrize(("optimizer", "expected"), [("icem", "9f671ed759"), ("mppi", "6aa8514af7")])
def test_optimizer_choice_hashes_are_pinned(optimizer, expected):
    assert load_agent_config("pets", "halfcheetah", {"planner": {"optimizer": optimizer}}).config_hash() == expected


# ---------------------------------------------------------------------------------------------- schema
#: the fields of schema version 1 (the first recorded results): always in ``to_dict``, never versioned
SCHEMA_1 = {
    "kind", "env", "steps", "seed", "device",
    *(f"model.{k}" for k in ("ensemble_size", "num_elites", "hidden_sizes", "activation", "lr", "weight_decay",
                             "batch_size", "max_epochs", "patience", "holdout_fraction", "grad_clip", "precision")),
    *(f"objective.{k}" for k in ("name", "reward_matrix", "entropy_weight", "num_samples", "estimator", "baseline",
                                 "reward_transform", "covariance", "structure", "bilevel_method", "bilevel_lr",
                                 "bilevel_iterations")),
    *(f"planner.{k}" for k in ("optimizer", "horizon", "population", "iterations", "particles", "elite_fraction",
                               "alpha", "propagation", "reward")),
    *(f"loop.{k}" for k in ("init_steps", "train_every", "eval_every", "eval_episodes", "checkpoint_every",
                            "rollout_error_horizon")),
    *(f"mbpo.{k}" for k in ("rollout_schedule", "epoch_length", "rollouts_per_step", "updates_per_step",
                            "real_ratio", "model_retain_epochs")),
    *(f"sac.{k}" for k in ("learning_rate", "gamma", "tau", "batch_size", "buffer_size", "target_entropy",
                           "net_arch", "updates_per_step")),
}


def test_every_field_is_in_schema_1_or_recorded_with_the_version_that_added_it():
    import dataclasses

    from mbrl_po.config import SCHEMA_ADDED, SCHEMA_VERSION, SECTIONS, AgentConfig

    paths = {f.name for f in dataclasses.fields(AgentConfig) if f.name not in SECTIONS}
    paths |= {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    added = {p: v for v, fields in SCHEMA_ADDED.items() for p in fields}
    new = sorted(paths - SCHEMA_1 - set(added))
    assert not new, f"fields {new} are new: record them in SCHEMA_ADDED under version {SCHEMA_VERSION + 1}"
    assert set(added) <= paths and not set(added) & SCHEMA_1
    defaults = AgentConfig(kind="pets")
    for v, fields in SCHEMA_ADDED.items():  # each added field reads as absent at its default
        for path, absent in fields.items():
            section, key = path.split(".")
            assert getattr(getattr(defaults, section), key) == absent, (v, path)


def test_a_newer_field_off_its_default_versions_the_hash_and_round_trips(tmp_path):
    from mbrl_po.config import load_run_config

    base = load_agent_config("pets", "halfcheetah", {"planner": {"optimizer": "icem"}})
    assert base.schema_version() == 1 and "schema" not in base.to_toml() and "options" not in base.to_toml()
    new = load_agent_config("pets", "halfcheetah", {"planner": {"optimizer": "icem",
                                                                "options": {"noise_beta": 1, "add_mean": False}}})
    d = new.to_dict()
    assert new.schema_version() == 3 and next(iter(d)) == "schema" and d["schema"] == 3
    assert d["planner"]["options"] == {"add_mean": False, "noise_beta": 1.0}
    assert new.config_hash() not in (base.config_hash(), "9f671ed759")
    # one spelling per config: key order and 1 vs 1.0 do not matter
    same = load_agent_config("pets", "halfcheetah", {"planner": {"optimizer": "icem",
                                                                 "options": {"add_mean": False, "noise_beta": 1.0}}})
    assert same.to_toml() == new.to_toml() and same.config_hash() == new.config_hash()
    path = tmp_path / "config.toml"
    path.write_text(new.to_toml())
    back = load_run_config(path)
    assert back == new and back.to_toml() == new.to_toml()
    # a schema-2 field off its default: no schema key (those configs were hashed before the key existed)
    residual = load_agent_config("pets", "inverted_pendulum", {"objective": {"name": "pg",
                                                                             "learned_init": "residual"}})
    assert residual.schema_version() == 2 and "schema" not in residual.to_dict()
    path.write_text(residual.to_toml())
    assert load_run_config(path).config_hash() == "9128283c93"


def test_early_stop_metric_mse_is_schema_5_and_reaches_the_trainer(tmp_path):
    from mbrl_po.agents.common import build_trainer
    from mbrl_po.config import load_run_config
    from mbrl_po.models import GaussianEnsemble

    base = load_agent_config("mbpo", "hopper", {})
    mse = load_agent_config("mbpo", "hopper", {"model": {"early_stop_metric": "mse"}})
    assert "early_stop_metric" not in base.to_toml() and base.schema_version() < 5  # recorded ids unchanged
    assert mse.schema_version() == 5 and mse.to_dict()["schema"] == 5
    assert mse.config_hash() != base.config_hash()
    path = tmp_path / "config.toml"
    path.write_text(mse.to_toml())
    back = load_run_config(path)
    assert back == mse and back.model.early_stop_metric == "mse"
    model = GaussianEnsemble(11, 3, ensemble_size=2, num_elites=1, hidden_sizes=(8,))
    assert build_trainer(mse, model).early_stop_metric == "mse"
    assert build_trainer(base, model).early_stop_metric == "nll"


def test_old_run_configs_load_with_their_hash(tmp_path):
    """A ``config.toml`` written before the later fields existed, and one that spells them at their default."""
    from mbrl_po.config import load_run_config

    cfg = load_agent_config("pets", "inverted_pendulum", {"objective": {"name": "pg"}})
    old = cfg.to_toml()
    assert "learned_init" not in old and "options" not in old
    path = tmp_path / "config.toml"
    path.write_text(old)
    assert load_run_config(path).config_hash() == "f0e623e9e9"
    spelled = old.replace('[objective]\n', '[objective]\nlearned_init = "identity"\nlearned_base = ""\noptions = {}\n')
    spelled = spelled.replace("[planner]\n", "[planner]\noptions = {}\n")
    path.write_text("schema = 3\n" + spelled)
    assert load_run_config(path).config_hash() == "f0e623e9e9"
    from mbrl_po.config import SCHEMA_VERSION

    path.write_text(f"schema = {SCHEMA_VERSION + 1}\n" + old)
    with pytest.raises(ValueError, match=rf"schema: got {SCHEMA_VERSION + 1}, allowed an integer in \[1, "
                                         rf"{SCHEMA_VERSION}\]"):
        load_run_config(path)
