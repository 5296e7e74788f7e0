"""Online benchmark suites: TOML data files in ``benchmarks/suites/``, validated when loaded.

A suite expands into a list of :class:`Trial` s (agent x task x objective x seed), each with a resolved
:class:`~mbrl_po.config.AgentConfig` and a stable id: the hash of that resolved config (seed included) and of
the definition of a suite-derived task. Schema of ``benchmarks/suites/<name>.toml``::

    name = "cpu"                        # must equal the file stem
    description = "..."
    seeds = 5                           # seeds 0..4 (or an explicit list, e.g. [0, 1, 2])

    [objectives.nll]                    # named objective variants: [objective] tables of the agent config
    name = "nll"
    [objectives.pg-learned]
    name = "pg"
    reward_matrix = "learned"

    [tasks.ip-distract]                 # optional derived tasks: a task of envs/ with observation wrappers
    base = "inverted_pendulum"
    distractor_dims = 16                # pure-noise dims appended to every observation, N(0, distractor_std^2)
    distractor_std = 1.0
    obs_noise_std = 0.02                # Gaussian noise added to the task's own observation dims
    max_episode_steps = 1000            # optional; replaces the base task's limit

    [[cells]]                           # one or more: agent x tasks x objectives x seeds
    agent = "pets"                      # pets | mbpo | sac (sac ignores objectives: the model-free floor)
    tasks = ["inverted_pendulum", "reacher"]
    objectives = ["nll", "pg-learned"]  # default: every [objectives.*] of the suite
    steps = 1000                        # env steps; must be a multiple of loop.eval_every
    seeds = [0, 1, 2]                   # optional: this cell's seeds (a count or a list) instead of the suite's
    [cells.set]                         # overrides of the agent config, as with --set (dotted keys)
    planner.horizon = 10

Merge order of a trial's config: agent file < the task's ``[agent.<kind>]`` tables < the cell's ``set`` <
the command line's ``--set`` < the trial's objective, steps and seed.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbrl_po.config import AGENT_KINDS, AgentConfig, ObjectiveSection, load_agent_config
from mbrl_po.envs.task import TaskConfig, load_task
from mbrl_po.envs.wrappers import DistractedObservation, make_wrapped_env  # noqa: F401  (re-exported)

SUITES_DIR_VAR = "MBRL_PO_SUITES_DIR"
DEFAULT_SUITES_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"
#: the gymnasium entry point of a derived task (a library function: a run of one resumes without this harness)
WRAPPED_ENV_ENTRY_POINT = "mbrl_po.envs.wrappers:make_wrapped_env"

SUITE_KEYS = ("name", "description", "seeds", "objectives", "tasks", "cells")
CELL_KEYS = ("agent", "tasks", "objectives", "steps", "seeds", "set")
DERIVED_TASK_KEYS = ("base", "distractor_dims", "distractor_std", "obs_noise_std", "max_episode_steps")
#: loop counters (env steps) that ``budget_scale`` scales together with ``steps``
SCALED_KEYS = (("loop", "init_steps"), ("loop", "train_every"), ("loop", "eval_every"),
               ("loop", "checkpoint_every"), ("mbpo", "epoch_length"))
SCALE_FLOOR = 10


def _unknown(where: str, keys: Any, allowed: tuple[str, ...]) -> None:
    for k in keys:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}{k}: unknown key, allowed {list(allowed)}{hint}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class DerivedTask:
    """A suite's ``[tasks.<name>]``: a task of ``envs/`` seen through :class:`DistractedObservation`."""

    name: str
    base: str
    distractor_dims: int = 0
    distractor_std: float = 1.0
    obs_noise_std: float = 0.0
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        w = f"tasks.{self.name}."
        if not isinstance(self.distractor_dims, int) or isinstance(self.distractor_dims, bool) \
                or self.distractor_dims < 0:
            raise ValueError(f"{w}distractor_dims: got {self.distractor_dims!r}, allowed an integer >= 0")
        for k in ("distractor_std", "obs_noise_std"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise ValueError(f"{w}{k}: got {v!r}, allowed a number >= 0")
        m = self.max_episode_steps
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"{w}max_episode_steps: got {m!r}, allowed a positive integer")

    @property
    def wrapped(self) -> bool:
        return bool(self.distractor_dims or self.obs_noise_std)

    def variant(self) -> str:
        """What differs from the base task, e.g. ``distractors=16(std=1),obs_noise=0.02`` ('' when nothing)."""
        parts = []
        if self.distractor_dims:
            parts.append(f"distractors={self.distractor_dims}(std={self.distractor_std:g})")
        if self.obs_noise_std:
            parts.append(f"obs_noise={self.obs_noise_std:g}")
        if self.max_episode_steps is not None:
            parts.append(f"max_episode_steps={self.max_episode_steps}")
        return ",".join(parts)

    def spec(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", *DERIVED_TASK_KEYS)}

    def task_config(self) -> TaskConfig:
        """The derived :class:`TaskConfig` (named ``self.name``)."""
        base = load_task(self.base)
        for k in ("termination", "reward", "planning_reward"):
            if not isinstance(getattr(base, k), str):
                raise ValueError(f"tasks.{self.name}.base: task {self.base!r} has a callable {k}; need a name")
        changes: dict[str, Any] = {"name": self.name}
        if self.max_episode_steps is not None:
            changes["max_episode_steps"] = self.max_episode_steps
        if self.wrapped:
            changes["id"] = WRAPPED_ENV_ENTRY_POINT
            changes["env_kwargs"] = {**base.env_kwargs, "env_id": base.id, "distractor_dims": self.distractor_dims,
                                     "distractor_std": float(self.distractor_std),
                                     "obs_noise_std": float(self.obs_noise_std)}
        return base.replace(**changes)

    def task_toml(self) -> str:
        """The derived task as an ``envs/``-style TOML file (what a worker loads by name)."""
        t = self.task_config()
        lines = [f"# derived by a benchmark suite from envs/{self.base}.toml: {self.variant() or 'unchanged'}",
                 f"id = {json.dumps(t.id)}"]
        if t.max_episode_steps is not None:
            lines.append(f"max_episode_steps = {t.max_episode_steps}")
        lines += [f"{k} = {json.dumps(getattr(t, k))}" for k in ("termination", "reward", "planning_reward")]
        lines.append("\n[env_kwargs]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.env_kwargs.items()]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Trial:
    """One agent run of a suite: everything a worker needs, with no file of the suite.

    Attributes:
        suite: the suite's name.
        agent: ``pets`` | ``mbpo`` | ``sac``.
        task: task name (``envs/<task>.toml`` or a derived task of the suite).
        env_id: the exact gymnasium id underneath.
        env_variant: wrappers of a derived task ('' for a plain task).
        objective: ``nll`` | ``mse`` | ``pg`` (``none`` for SAC).
        u_option: the PG reward matrix U, e.g. ``learned`` or ``inverse_cov-residual`` ('' when not PG).
        seed: the seed.
        config: the resolved agent config.
        task_files: ``{task name: TOML text}`` of the derived tasks the config refers to.
        trial_id: 12 hex digits: hash of the resolved config (seed included) and the derived task definition.
    """

    suite: str
    agent: str
    task: str
    env_id: str
    env_variant: str
    objective: str
    u_option: str
    seed: int
    config: AgentConfig
    task_files: dict[str, str] = field(default_factory=dict)
    trial_id: str = ""

    @property
    def objective_label(self) -> str:
        if self.objective == "none":
            return "model-free"
        return self.objective if not self.u_option else f"{self.objective}-{self.u_option}"

    @property
    def label(self) -> str:
        """``agent/task/objective/s<seed>``: what ``--only`` patterns match (besides the trial id)."""
        return f"{self.agent}/{self.task}/{self.objective_label}/s{self.seed}"

    @property
    def steps(self) -> int:
        return self.config.steps

    def payload(self) -> dict[str, Any]:
        """A picklable description for a worker process or a Ray task."""
        return {
            "trial_id": self.trial_id, "label": self.label, "suite": self.suite, "agent": self.agent,
            "task": self.task, "env_id": self.env_id, "env_variant": self.env_variant,
            "objective": self.objective, "u_option": self.u_option, "seed": self.seed,
            "config_toml": self.config.to_toml(), "config_hash": self.config.config_hash(),
            "task_files": dict(self.task_files),
        }


def u_option(obj: ObjectiveSection) -> str:
    """The U of a PG objective as written in runs.csv: ``learned``, ``inverse_cov-residual``, ... ('' for MLE,
    or the options of an MLE objective that has any: ``b1`` for ``beta_nll`` at β = 1).

    A structure other than the reward matrix's default is appended (``learned-diag``, ``inverse_cov-residual-full``),
    and so are a learned U's non-default start (``learned-diag-init-residual``), an estimator other than the
    score function (``state_inverse_cov-pathwise``) and the objective's options, sorted (``beta`` as ``-b<β>``,
    the others as ``-<key><value>``: ``state_inverse_cov-pathwise-b0.5``).
    """
    if obj.name != "pg":
        return _options_suffix(obj)[1:]
    out = obj.reward_matrix
    if obj.reward_matrix in ("scaled", "inverse_cov"):
        out = f"{obj.reward_matrix}-{obj.covariance}"
    default = {"learned": "scalar", "inverse_cov": "diag"}.get(obj.reward_matrix)
    if obj.structure and default is not None and obj.structure != default:
        out = f"{out}-{obj.structure}"
    if obj.reward_matrix == "learned" and obj.learned_init != "identity":
        out = f"{out}-init-{obj.learned_init}"
    if obj.reward_matrix == "learned" and obj.learned_base:
        out = f"{out}-on-{obj.learned_base}"
    if obj.estimator != ObjectiveSection.estimator:
        out = f"{out}-{obj.estimator}"
    return out + _options_suffix(obj)


def _options_suffix(obj: ObjectiveSection) -> str:
    """``-<key><value>`` per option of ``obj``, sorted (``beta`` written ``b``, ``fit_steps`` ``fs``): ``-b0.5``;
    '' without options."""
    parts = []
    for key, value in sorted(obj.options.items()):
        name = {"beta": "b", "fit_steps": "fs"}.get(key, key)
        parts.append(f"-{name}{value:g}" if isinstance(value, int | float) else f"-{name}{value}")
    return "".join(parts)


def trial_id(cfg: AgentConfig, derived: DerivedTask | None) -> str:
    """Stable id: SHA-1 of the resolved config TOML (seed included) and the derived task's definition."""
    text = cfg.to_toml() + "\n# task\n" + json.dumps(derived.spec() if derived else {}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _scale_overrides(cfg: AgentConfig, scale: float) -> dict[str, Any]:
    """Overrides that multiply steps and the loop's step counters by ``scale``. Intervals (retrain, eval,
    checkpoint) do not drop below ``min(original, SCALE_FLOOR)`` steps, so that a tiny scale does not refit
    the model at every step; steps stays a multiple of ``eval_every`` so the last step is evaluated."""
    over: dict[str, Any] = {}
    for section, key in SCALED_KEYS:
        v = getattr(getattr(cfg, section), key)
        low = {"init_steps": 0, "epoch_length": 1}.get(key, min(v, SCALE_FLOOR))
        over.setdefault(section, {})[key] = max(low, int(round(v * scale)))
    every = over["loop"]["eval_every"]
    over["steps"] = max(every, int(math.ceil(max(1, round(cfg.steps * scale)) / every)) * every)
    return over


@dataclass(frozen=True)
class Cell:
    """One ``[[cells]]`` table."""

    agent: str
    tasks: tuple[str, ...]
    objectives: tuple[str, ...]
    steps: int
    set: dict[str, Any]
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Suite:
    """A validated suite file."""

    name: str
    description: str
    seeds: tuple[int, ...]
    objectives: dict[str, dict[str, Any]]
    tasks: dict[str, DerivedTask]
    cells: tuple[Cell, ...]
    path: Path | None = None

    def trials(self, seeds: int | None = None, budget_scale: float = 1.0,
               overrides: dict[str, Any] | None = None, only: str | None = None,
               max_episode_steps: int | None = None) -> list[Trial]:
        """Expand the suite.

        Args:
            seeds: use seeds ``0..seeds-1`` in every cell instead of the suite's and the cells' own.
            budget_scale: multiply ``steps`` and the loop's step counters (init, train/eval/checkpoint
                intervals, MBPO epoch length) by this; 1 = the suite's budgets.
            overrides: extra config overrides for every trial (``--set``), applied after the cell's.
            only: comma-separated fnmatch patterns on the trial label (``agent/task/objective/s<seed>``) or id.
            max_episode_steps: cut every episode (training and evaluation) at this many steps: each task becomes
                a derived task ``<task>-ep<N>`` (for smoke tests of suites with long episodes).

        Returns:
            The trials, seed-major (every cell's seed 0 first, then seed 1, ...; within a seed: cell, task,
            objective).
        """
        if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
            raise ValueError(f"seeds: got {seeds!r}, allowed a positive integer")
        if not budget_scale > 0:
            raise ValueError(f"budget_scale: got {budget_scale!r}, allowed > 0")
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool)
                                              or not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps: got {max_episode_steps!r}, allowed a positive integer")
        forced = tuple(range(seeds)) if seeds is not None else None
        patterns = [p.strip() for p in (only or "").split(",") if p.strip()]
        out: list[Trial] = []
        for cell in self.cells:
            objectives = ("none",) if cell.agent == "sac" else cell.objectives
            for task_name in cell.tasks:
                derived = self.tasks.get(task_name)
                if max_episode_steps is not None:
                    spec = derived.spec() if derived else {"name": task_name, "base": task_name}
                    task_name = f"{task_name}-ep{max_episode_steps}"
                    derived = DerivedTask(**{**spec, "name": task_name, "max_episode_steps": max_episode_steps})
                base = load_task(derived.base if derived else task_name)
                files = {task_name: derived.task_toml()} if derived else {}
                for obj_name in objectives:
                    for seed in forced or cell.seeds or self.seeds:
                        over = _merge(cell.set, overrides or {})
                        if obj_name != "none":
                            over = _merge(over, {"objective": self.objectives[obj_name]})
                        over = _merge(over, {"steps": cell.steps, "seed": seed})
                        where = f"suite {self.name!r}, cell {cell.agent} x {task_name}: "
                        try:
                            cfg = load_agent_config(cell.agent, task_name, over,
                                                    task_overrides=base.agent_config(cell.agent))
                            if budget_scale != 1.0:
                                cfg = load_agent_config(cell.agent, task_name,
                                                        _merge(over, _scale_overrides(cfg, budget_scale)),
                                                        task_overrides=base.agent_config(cell.agent))
                        except ValueError as e:
                            raise ValueError(f"{where}{e}") from None
                        if cfg.steps % cfg.loop.eval_every:
                            raise ValueError(f"{where}steps: got {cfg.steps}, allowed a multiple of "
                                             f"loop.eval_every ({cfg.loop.eval_every}) so the last step is "
                                             "evaluated")
                        t = Trial(
                            suite=self.name, agent=cell.agent, task=task_name, env_id=base.id,
                            env_variant=derived.variant() if derived else "",
                            objective="none" if cell.agent == "sac" else cfg.objective.name,
                            u_option="" if cell.agent == "sac" else u_option(cfg.objective), seed=seed,
                            config=cfg, task_files=files, trial_id=trial_id(cfg, derived),
                        )
                        if patterns and not any(fnmatch.fnmatchcase(t.label, p) or t.trial_id.startswith(p)
                                                for p in patterns):
                            continue
                        out.append(t)
        # seed-major order: a sweep stopped half-way has whole seeds of every cell rather than whole cells
        out.sort(key=lambda t: t.seed)
        ids = [t.trial_id for t in out]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            labels = sorted(t.label for t in out if t.trial_id in dup)
            raise ValueError(f"suite {self.name!r}: identical trials (same config and seed): {labels}")
        return out


def suites_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(SUITES_DIR_VAR):
        dirs.append(Path(os.environ[SUITES_DIR_VAR]).expanduser())
    dirs.append(DEFAULT_SUITES_DIR)
    return dirs


def list_suites() -> list[str]:
    """Names of the suites found by bare name."""
    return sorted({p.stem for d in suites_dirs() if d.is_dir() for p in d.glob("*.toml")})


def suite_path(name_or_path: str | Path) -> Path:
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s or os.sep in s:
        path = Path(s).expanduser()
        if not path.is_file():
            raise ValueError(f"suite: file {s!r} does not exist")
        return path
    for d in suites_dirs():
        if (d / f"{s}.toml").is_file():
            return d / f"{s}.toml"
    avail = list_suites()
    close = difflib.get_close_matches(s, avail, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"suite: got {s!r}, allowed {avail} (in {', '.join(map(str, suites_dirs()))}){hint}")


def _str_list(where: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise ValueError(f"{where}: got {v!r}, allowed a non-empty list of names")
    return tuple(v)


def _seed_list(where: str, v: Any) -> tuple[int, ...]:
    """A seed count ``n`` (seeds ``0..n-1``) or a list of distinct seeds >= 0, as a tuple."""
    seeds = list(range(v)) if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else v
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}: got {v!r}, allowed a positive count or a list of distinct seeds >= 0")
    return tuple(seeds)


def suite_from_dict(data: dict[str, Any], name: str, path: Path | None = None) -> Suite:
    """Validate a parsed suite file (see the module docstring) and build the :class:`Suite`."""
    w = f"suite {name!r}: "
    _unknown(w, data, SUITE_KEYS)
    if data.get("name", name) != name:
        raise ValueError(f"{w}name: got {data['name']!r}, allowed {name!r} (the file stem)")
    seeds = _seed_list(f"{w}seeds", data.get("seeds", 5))
    objectives = data.get("objectives", {"nll": {"name": "nll"}})
    if not isinstance(objectives, dict) or not objectives:
        raise ValueError(f"{w}objectives: got {objectives!r}, allowed tables [objectives.<label>]")
    for label, table in objectives.items():
        if not isinstance(table, dict):
            raise ValueError(f"{w}objectives.{label}: got {table!r}, allowed a table of objective keys")
        try:
            ObjectiveSection(**table)
        except TypeError as e:
            raise ValueError(f"{w}objectives.{label}: {e}; allowed keys "
                             f"{list(ObjectiveSection.__dataclass_fields__)}") from None
        except ValueError as e:
            raise ValueError(f"{w}objectives.{label}: {e}") from None
    tasks: dict[str, DerivedTask] = {}
    for tname, table in (data.get("tasks") or {}).items():
        if not isinstance(table, dict):
            raise ValueError(f"{w}tasks.{tname}: got {table!r}, allowed a table")
        _unknown(f"{w}tasks.{tname}.", table, DERIVED_TASK_KEYS)
        if "base" not in table:
            raise ValueError(f"{w}tasks.{tname}.base: missing; allowed a task name of envs/")
        try:
            d = DerivedTask(name=tname, **table)
            d.task_config()
        except ValueError as e:
            raise ValueError(f"{w}{e}") from None
        tasks[tname] = d
    cells_raw = data.get("cells")
    if not isinstance(cells_raw, list) or not cells_raw:
        raise ValueError(f"{w}cells: got {cells_raw!r}, allowed one or more [[cells]] tables")
    cells = []
    for i, c in enumerate(cells_raw):
        cw = f"{w}cells[{i}]."
        _unknown(cw, c, CELL_KEYS)
        agent = c.get("agent")
        if agent not in AGENT_KINDS:
            raise ValueError(f"{cw}agent: got {agent!r}, allowed {list(AGENT_KINDS)}")
        ctasks = _str_list(f"{cw}tasks", c.get("tasks"))
        for t in ctasks:
            if t not in tasks:
                try:
                    load_task(t)
                except ValueError as e:
                    raise ValueError(f"{cw}tasks: {e}; or a [tasks.*] of the suite ({sorted(tasks)})") from None
        cobjs = _str_list(f"{cw}objectives", c.get("objectives", list(objectives)))
        for o in cobjs:
            if o not in objectives:
                raise ValueError(f"{cw}objectives: got {o!r}, allowed {sorted(objectives)}")
        steps = c.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{cw}steps: got {steps!r}, allowed a positive integer")
        sets = c.get("set", {})
        if not isinstance(sets, dict):
            raise ValueError(f"{cw}set: got {sets!r}, allowed a table of config overrides")
        for k in ("objective", "steps", "seed", "env", "kind"):
            if k in sets:
                raise ValueError(f"{cw}set.{k}: set by the suite itself (objectives/steps/seeds/tasks/agent)")
        cseeds = _seed_list(f"{cw}seeds", c["seeds"]) if "seeds" in c else None
        cells.append(Cell(agent, ctasks, cobjs, steps, sets, cseeds))
    suite = Suite(name, str(data.get("description", "")), tuple(seeds), objectives, tasks, tuple(cells), path)
    suite.trials(seeds=1)  # resolve every cell's config once: bad overrides fail now, not mid-sweep
    return suite


def load_suite(name_or_path: str | Path) -> Suite:
    """Load and validate ``benchmarks/suites/<name>.toml`` (or a path; ``$MBRL_PO_SUITES_DIR`` first)."""
    path = suite_path(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"suite: {str(path)!r} is not valid TOML: {e}") from e
    return suite_from_dict(data, path.stem, path)
