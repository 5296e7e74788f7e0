"""Agent configuration: frozen dataclasses, loaded from ``agents/<kind>.toml`` and validated at load.

Merge order: the dataclass defaults below < the agent file < the task's ``[agent.<kind>]`` tables
(``envs/<task>.toml``) < command-line flags and ``--set section.key=value`` overrides. A default lives here
only: the TOML files hold what differs from it. Unknown sections, keys or values fail at load with the valid
choices, which are the library's own (each imported from the module that implements it). The resolved config
is written into every run directory as ``config.toml``.

Option tables: ``planner.options`` holds the selected optimizer's keyword arguments that no planner field
sets (iCEM's ``noise_beta``, ``keep_elite_fraction``, ...; MPPI's ``gamma``, ``sigma``, ``beta``), and
``objective.options`` the objective's (``pg``: ``rbf_gamma``, ``clip_logprob``; ``mse``: ``fit_variance``).
They are checked at load by the factories that build them (:func:`mbrl_po.planning.optimizer_config`,
:func:`mbrl_po.objectives.make_objective`), without building a model or an optimizer; what they leave out
keeps the library's default.

Identity: :meth:`AgentConfig.to_dict` is what ``config.toml`` holds, what :meth:`AgentConfig.config_hash`
and the benchmark trial ids hash. Results and run directories are filed under those ids, so the rule is that
no change of the code changes the id of an existing config:

* schema version 1 is the fields of the first recorded results: always written;
* :data:`SCHEMA_ADDED` records, per later version, the fields it added and the value each reads as when
  absent (its default). Such a field is written only when it departs from that value, so every config an
  older schema can express keeps its text and hash;
* a config that needs a version newer than :data:`UNVERSIONED_SCHEMA` (the versions from before this rule,
  whose configs were hashed without a version) starts with ``schema = N``: the oldest version that
  expresses it, so it keeps its id when later versions come;
* a new field gets a new version in :data:`SCHEMA_ADDED` (``tests/test_identity.py`` fails otherwise), a
  default of a recorded field never changes, and ``config.toml`` files of any older version load as they
  are (absent fields take the recorded value; a newer ``schema`` than this code knows is refused).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbrl_po.models.ensemble import ACTIVATIONS as _ACTIVATIONS
from mbrl_po.models.ensemble import PRECISIONS
from mbrl_po.models.model_env import PROPAGATIONS
from mbrl_po.objectives import OBJECTIVES as _OBJECTIVES
from mbrl_po.objectives import make_objective, objective_options
from mbrl_po.objectives.names import (
    COVARIANCES,
    LEARNED,
    LEARNED_BASES,
    LEARNED_INITS,
    NEEDS_A_MATRIX,
    REWARD_MATRICES,
    REWARD_MATRIX_OPTIONS,
    STRUCTURES,
)
from mbrl_po.objectives.pg import BASELINES, ESTIMATORS, REWARD_TRANSFORMS
from mbrl_po.planning import OPTIMIZERS as _OPTIMIZERS
from mbrl_po.planning import OptionError, optimizer_config, optimizer_options
from mbrl_po.resources import shipped_config_dir
from mbrl_po.training.bilevel import METHODS as BILEVEL_METHODS
from mbrl_po.training.trainer import EARLY_STOP_METRICS

# The choices a config accepts. Each is declared once, by the library module that implements it (imported
# above); the config only adds its own (agent kinds, devices, where a planner's reward comes from).
AGENT_KINDS = ("pets", "mbpo", "sac")
DEVICES = ("auto", "cpu", "cuda")
PLANNER_REWARDS = ("task", "learned")
ACTIVATIONS = tuple(_ACTIVATIONS)
OBJECTIVE_NAMES = tuple(_OBJECTIVES)
OPTIMIZERS = tuple(_OPTIMIZERS)
#: the reward matrices an agent can name (``fixed`` needs its matrix as a value, so is left out)
REWARD_MATRIX_NAMES = tuple(n for n in REWARD_MATRICES if n not in NEEDS_A_MATRIX)

AGENTS_DIR_VAR = "MBRL_PO_AGENTS_DIR"
DEFAULT_AGENTS_DIR = shipped_config_dir("agents")


SCHEMA_ADDED: dict[int, dict[str, Any]] = {
    2: {"objective.learned_init": "identity", "objective.learned_base": ""},
    3: {"planner.options": {}, "objective.options": {}},
    4: {"model.inference_precision": "float32"},
    5: {"model.early_stop_metric": "nll"},
}
"""What each schema version added to version 1 (the fields of the first recorded results): ``{version:
{"section.field": the value it reads as when absent}}``. See the module docstring, "Identity"."""
SCHEMA_VERSION = max(SCHEMA_ADDED)
#: the newest version that predates the ``schema`` key: configs it expresses are hashed without one
UNVERSIONED_SCHEMA = 2


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}: got {value!r}, allowed {list(allowed)}{hint}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    """An integer ``> 0`` (``>= 0`` with ``allow_zero``); a ValueError naming ``name`` otherwise."""
    _integer(name, value, 0 if allow_zero else 1)


def _integer(name: str, value: Any, minimum: int = 1) -> None:
    """An integer (not a bool) ``>= minimum``; a ValueError naming ``name`` and the allowed range otherwise."""
    if not _is_int(value) or value < minimum:
        allowed = "> 0" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name}: got {value!r}, allowed an integer {allowed}")


def _real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
          low_open: bool = False, high_open: bool = False) -> None:
    """A finite number inside ``[low, high]`` (an end is excluded with ``low_open`` / ``high_open``; None: no
    bound); a ValueError naming ``name`` and the allowed range otherwise (NaN and inf are never allowed)."""
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            allowed = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            allowed = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f"{'<' if high_open else '<='} {high:g}"
        else:
            allowed = "a finite number"
        raise ValueError(f"{name}: got {value!r}, allowed {allowed}")


def _sizes(name: str, value: tuple[Any, ...], allow_empty: bool = False) -> None:
    """A tuple of integers ``> 0`` (layer widths); a ValueError naming ``name`` otherwise."""
    if (not value and not allow_empty) or not all(_is_int(v) and v > 0 for v in value):
        raise ValueError(f"{name}: got {list(value)!r}, allowed a {'' if allow_empty else 'non-empty '}"
                         f"list of integers > 0")


def _table(name: str, value: Any) -> dict[str, Any]:
    """An option table (a dict with string keys), copied with its keys sorted (one spelling per config)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name}: got {value!r}, allowed a table of options")
    return dict(sorted(value.items()))


def _unknown_key(name: str, key: str, allowed: list[str], where: str = "") -> None:
    if key not in allowed:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}: unknown key{where}, allowed {allowed}{hint}")


def _as_float(value: Any, annotation: Any) -> Any:
    """An integer given for a float field, as a float (so ``1`` and ``1.0`` are one config)."""
    floats = annotation is float or (typing.get_origin(annotation) in (typing.Union, types.UnionType)
                                     and float in typing.get_args(annotation))
    return float(value) if floats and _is_int(value) else value


#: planner fields that an optimizer takes as keyword arguments when its config has them
PLANNER_SHARED = ("population", "iterations", "elite_fraction", "alpha")


@dataclass(frozen=True)
class ModelSection:
    """The dynamics ensemble and its trainer."""

    ensemble_size: int = 7
    num_elites: int = 5
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    activation: str = "silu"
    lr: float = 1e-3
    weight_decay: float = 5e-5
    batch_size: int = 256
    max_epochs: int = 50  # per retraining round
    patience: int = 5
    # schema 5: the held-out score of early stopping and the elites (DynamicsTrainer's early_stop_metric):
    # "nll" (the recorded results) or "mse" (MBPO's and mbrl-lib's: the mean's squared error, raw units)
    early_stop_metric: str = "nll"
    holdout_fraction: float = 0.1
    grad_clip: float = 10.0
    precision: str = "float32"  # training: the trainer's autocast
    # planning and MBPO rollouts (schema 4): the matmuls of the model's forward passes outside training
    # (``ModelEnv(precision=...)``); "bf16" only on CPUs with bf16 matrix instructions or CUDA (emulated and
    # far slower elsewhere). Evaluation metrics (held-out NLL, rollout error) stay in float32.
    inference_precision: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for k in ("ensemble_size", "num_elites", "batch_size", "max_epochs", "patience"):
            _positive(f"model.{k}", getattr(self, k))
        if self.num_elites > self.ensemble_size:
            raise ValueError(
                f"model.num_elites: got {self.num_elites}, allowed <= ensemble_size ({self.ensemble_size})"
            )
        _sizes("model.hidden_sizes", self.hidden_sizes)
        _real("model.lr", self.lr, 0, low_open=True)
        _real("model.weight_decay", self.weight_decay, 0)
        _real("model.holdout_fraction", self.holdout_fraction, 0, 1, high_open=True)
        _real("model.grad_clip", self.grad_clip, 0, low_open=True)
        _choice("model.early_stop_metric", self.early_stop_metric, EARLY_STOP_METRICS)
        _choice("model.precision", self.precision, PRECISIONS)
        _choice("model.inference_precision", self.inference_precision, PRECISIONS)
        _choice("model.activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class ObjectiveSection:
    """The dynamics objective: the axis under study."""

    name: str = "nll"
    reward_matrix: str = "learned"
    entropy_weight: float = 1.0
    num_samples: int = 5
    estimator: str = "score"
    baseline: str = "loo"
    reward_transform: str = "none"
    covariance: str = "residual"
    structure: str = ""  # "" = the reward matrix's default
    bilevel_method: str = "implicit"
    bilevel_lr: float = 0.05
    bilevel_iterations: int = 5
    # where a learned U (``learned`` or ``state_learned``) starts: "identity" (U = I) or "residual" (the
    # heuristic of the untrained model's residuals; see docs/offline.md, "The u landscape")
    learned_init: str = "identity"  # schema 2
    # "residual": the learned U is a correction on the residual heuristic, U = U_res · exp(φ) (scalar/diag)
    learned_base: str = ""  # schema 2
    # further keyword arguments of make_objective(name, ...) that no field above sets (schema 3), e.g. pg's
    # rbf_gamma or clip_logprob; validated by the objective's constructor at load
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _table("objective.options", self.options))
        _choice("objective.name", self.name, OBJECTIVE_NAMES)
        _choice("objective.reward_matrix", self.reward_matrix, REWARD_MATRIX_NAMES)
        _real("objective.entropy_weight", self.entropy_weight, 0, low_open=True)
        _integer("objective.num_samples", self.num_samples, 1)
        _real("objective.bilevel_lr", self.bilevel_lr, 0, low_open=True)
        _integer("objective.bilevel_iterations", self.bilevel_iterations, 1)
        _choice("objective.estimator", self.estimator, ESTIMATORS)
        _choice("objective.baseline", self.baseline, BASELINES)
        _choice("objective.reward_transform", self.reward_transform, REWARD_TRANSFORMS)
        _choice("objective.covariance", self.covariance, COVARIANCES)
        _choice("objective.structure", self.structure, ("", *STRUCTURES))
        _choice("objective.bilevel_method", self.bilevel_method, BILEVEL_METHODS)
        _choice("objective.learned_init", self.learned_init, ("identity", *LEARNED_INITS))
        if self.name == "pg" and self.learned_init != "identity" and self.reward_matrix not in LEARNED:
            raise ValueError(f"objective.learned_init: got {self.learned_init!r} with reward_matrix="
                             f"{self.reward_matrix!r}; it applies to reward_matrix in {list(LEARNED)} only")
        _choice("objective.learned_base", self.learned_base, ("", *LEARNED_BASES))
        if self.name == "pg" and self.estimator == "score" and self.baseline == "loo" and self.num_samples < 2:
            raise ValueError(f"objective.num_samples: got {self.num_samples!r}, allowed an integer >= 2 with the "
                             f"score estimator's 'loo' baseline (or set objective.baseline='none')")
        if self.name == "pg" and self.learned_base:
            if self.reward_matrix not in LEARNED or self.structure == "full" or self.learned_init != "identity":
                raise ValueError(f"objective.learned_base: got {self.learned_base!r} with reward_matrix="
                                 f"{self.reward_matrix!r}, structure={self.structure!r}, learned_init="
                                 f"{self.learned_init!r}; it needs reward_matrix in {list(LEARNED)}, a scalar "
                                 f"or diag structure and learned_init='identity'")
        self._check_options()

    def _mapped(self) -> dict[str, str]:
        """make_objective's keyword arguments that a field sets: ``{argument: field}``."""
        if self.name != "pg":
            return {}
        return {k: k for k in ("reward_matrix", "entropy_weight", "num_samples", "estimator", "baseline",
                               "reward_transform", "covariance", "structure")} | {"init": "learned_init",
                                                                                   "base": "learned_base"}

    def objective_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``make_objective(self.name, ...)``: the fields, then ``options``."""
        out: dict[str, Any] = {}
        if self.name == "pg":
            out = dict(reward_matrix=self.reward_matrix, entropy_weight=self.entropy_weight,
                       num_samples=self.num_samples, estimator=self.estimator, baseline=self.baseline,
                       reward_transform=self.reward_transform,
                       # one covariance field for every U: passed only to the kinds that take it
                       covariance=self.covariance if "covariance" in REWARD_MATRIX_OPTIONS[self.reward_matrix]
                       else None,
                       structure=self.structure or None)
            if self.reward_matrix in LEARNED and self.learned_init == "residual":
                out["init"] = "residual"
            if self.reward_matrix in LEARNED and self.learned_base:
                out["base"] = self.learned_base
        return {**out, **self.options}

    def _check_options(self) -> None:
        if not self.options:
            return
        mapped = self._mapped()
        allowed = [k for k in objective_options(self.name) if k not in mapped]
        for key in self.options:
            if key in mapped:
                raise ValueError(f"objective.options.{key}: set objective.{mapped[key]} instead")
            _unknown_key(f"objective.options.{key}", key, allowed, f" for objective {self.name!r}")
        hints = typing.get_type_hints(_OBJECTIVES[self.name].__init__)
        object.__setattr__(self, "options", {k: _as_float(v, hints.get(k)) for k, v in self.options.items()})
        try:
            make_objective(self.name, **self.objective_kwargs())  # small: no model, no data
        except ValueError as e:
            field_name = str(e).partition(":")[0]
            raise ValueError(f"objective.options.{e}" if field_name in self.options else f"objective: {e}") \
                from None

    def label(self) -> str:
        """Short name for tables: ``nll``, ``mse`` or ``pg-<reward_matrix>``."""
        return self.name if self.name != "pg" else f"pg-{self.reward_matrix}"


@dataclass(frozen=True)
class PlannerSection:
    """PETS' model-predictive control."""

    optimizer: str = "cem"
    horizon: int = 15
    population: int = 350
    iterations: int = 5
    particles: int = 20
    elite_fraction: float = 0.1
    alpha: float = 0.1
    propagation: str = "ts1"
    reward: str = "task"  # "task": the task's planning reward (exact/proxy); "learned": the model's reward head
    # the optimizer's other keyword arguments (schema 3), e.g. iCEM's noise_beta or MPPI's gamma; the
    # optimizer's own defaults hold for the rest (mbrl_po.planning.{cem,icem,mppi}); validated at load
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _table("planner.options", self.options))
        _choice("planner.optimizer", self.optimizer, OPTIMIZERS)
        _choice("planner.propagation", self.propagation, PROPAGATIONS)
        _choice("planner.reward", self.reward, PLANNER_REWARDS)
        for k in ("horizon", "iterations", "particles"):
            _positive(f"planner.{k}", getattr(self, k))
        _integer("planner.population", self.population, 2)
        _real("planner.elite_fraction", self.elite_fraction, 0, 1, low_open=True)
        _real("planner.alpha", self.alpha, 0, 1, high_open=True)
        self._check_options()

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``make_optimizer(self.optimizer, self.horizon, low, high, ...)``: the fields
        of :data:`PLANNER_SHARED` the optimizer takes (MPPI takes no ``elite_fraction`` nor ``alpha``), then
        ``options``."""
        names = optimizer_options(self.optimizer)
        return {**{k: getattr(self, k) for k in PLANNER_SHARED if k in names}, **self.options}

    def _check_options(self) -> None:
        if not self.options:
            return
        names = optimizer_options(self.optimizer)
        allowed = [k for k in names if k not in PLANNER_SHARED]
        for key in self.options:
            if key in PLANNER_SHARED or key == "horizon":
                raise ValueError(f"planner.options.{key}: set planner.{key} instead")
            _unknown_key(f"planner.options.{key}", key, allowed, f" for optimizer {self.optimizer!r}")
        hints = typing.get_type_hints(_OPTIMIZERS[self.optimizer][0])
        object.__setattr__(self, "options", {k: _as_float(v, hints[k]) for k, v in self.options.items()})
        try:
            optimizer_config(self.optimizer, self.horizon, **self.optimizer_kwargs())
        except OptionError as e:
            where = f"planner.options.{e.field}" if e.field in self.options else f"planner.{e.field}"
            raise ValueError(f"{where}: got {e.value!r}, allowed {e.allowed}") from None


@dataclass(frozen=True)
class LoopSection:
    """The outer loop: data collection, retraining, evaluation, checkpoints."""

    init_steps: int = 1000  # random-action steps before the agent acts
    train_every: int = 250
    eval_every: int = 1000
    eval_episodes: int = 1
    checkpoint_every: int = 1000
    rollout_error_horizon: int = 10

    def __post_init__(self) -> None:
        _positive("loop.init_steps", self.init_steps, allow_zero=True)
        # 0: no separate evaluation episodes; the training episodes' returns are the evaluation
        _positive("loop.eval_episodes", self.eval_episodes, allow_zero=True)
        for k in ("train_every", "eval_every", "checkpoint_every", "rollout_error_horizon"):
            _positive(f"loop.{k}", getattr(self, k))


@dataclass(frozen=True)
class MBPOSection:
    """MBPO: SAC on k-step model rollouts branched from real states."""

    rollout_schedule: tuple[int, int, int, int] = (20, 150, 1, 15)  # [start_epoch, end_epoch, k_start, k_end]
    epoch_length: int = 1000  # env steps per "epoch" of the schedule
    rollouts_per_step: int = 400
    updates_per_step: int = 20
    real_ratio: float = 0.05
    model_retain_epochs: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "rollout_schedule", tuple(self.rollout_schedule))
        sched = self.rollout_schedule
        if len(sched) != 4 or not all(_is_int(v) for v in sched) or not (
            0 <= sched[0] <= sched[1] and sched[2] >= 1 and sched[3] >= 1
        ):
            raise ValueError(f"mbpo.rollout_schedule: got {list(sched)!r}, allowed 4 integers [start_epoch >= 0, "
                             f"end_epoch >= start_epoch, k_start >= 1, k_end >= 1]")
        _real("mbpo.real_ratio", self.real_ratio, 0, 1)
        for k in ("epoch_length", "rollouts_per_step", "updates_per_step", "model_retain_epochs"):
            _positive(f"mbpo.{k}", getattr(self, k))


@dataclass(frozen=True)
class SACSection:
    """Forwarded to stable_baselines3.SAC."""

    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    buffer_size: int = 1_000_000
    target_entropy: float | str = "auto"
    net_arch: tuple[int, ...] = (256, 256)
    updates_per_step: int = 1  # plain SAC's gradient steps per env step

    def __post_init__(self) -> None:
        object.__setattr__(self, "net_arch", tuple(self.net_arch))
        _real("sac.learning_rate", self.learning_rate, 0, low_open=True)
        _real("sac.gamma", self.gamma, 0, 1)
        _real("sac.tau", self.tau, 0, 1, low_open=True)
        for k in ("batch_size", "buffer_size", "updates_per_step"):
            _positive(f"sac.{k}", getattr(self, k))
        _sizes("sac.net_arch", self.net_arch, allow_empty=True)
        if isinstance(self.target_entropy, str):
            if self.target_entropy != "auto":
                raise ValueError(f"sac.target_entropy: got {self.target_entropy!r}, allowed 'auto' or a finite "
                                 f"number")
        else:
            try:
                _real("sac.target_entropy", self.target_entropy)
            except ValueError:
                raise ValueError(f"sac.target_entropy: got {self.target_entropy!r}, allowed 'auto' or a finite "
                                 f"number") from None


@dataclass(frozen=True)
class AgentConfig:
    """Everything a run needs. ``env`` is a task name (``envs/<name>.toml``) or a path."""

    kind: str
    env: str = "inverted_pendulum"
    steps: int = 10_000
    seed: int = 0
    device: str = "auto"
    model: ModelSection = field(default_factory=ModelSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    planner: PlannerSection = field(default_factory=PlannerSection)
    loop: LoopSection = field(default_factory=LoopSection)
    mbpo: MBPOSection = field(default_factory=MBPOSection)
    sac: SACSection = field(default_factory=SACSection)

    def __post_init__(self) -> None:
        _choice("kind", self.kind, AGENT_KINDS)
        _choice("device", self.device, DEVICES)
        _positive("steps", self.steps)
        _integer("seed", self.seed, 0)
        if not isinstance(self.env, str) or not self.env:
            raise ValueError(f"env: got {self.env!r}, allowed a task name (envs/<name>.toml) or a path")

    def schema_version(self) -> int:
        """The oldest schema that expresses this config: the newest version one of whose added fields
        departs from its :data:`SCHEMA_ADDED` value (1 when none does)."""
        d = dataclasses.asdict(self)
        return max([1] + [v for v, added in SCHEMA_ADDED.items() for path, absent in added.items()
                          if _get(d, path) != absent])

    def to_dict(self) -> dict[str, Any]:
        """The config's identity: all fields, sections as tables, less the fields a later schema added that
        hold the value they read as when absent; headed by ``schema = N`` when that version is newer than
        :data:`UNVERSIONED_SCHEMA` (see the module docstring, "Identity")."""
        d = dataclasses.asdict(self)
        version = self.schema_version()
        for added in SCHEMA_ADDED.values():
            for path, absent in added.items():
                if _get(d, path) == absent:
                    _pop(d, path)
        return {"schema": version, **d} if version > UNVERSIONED_SCHEMA else d

    def to_toml(self) -> str:
        """:meth:`to_dict` as TOML: what ``config.toml`` of a run directory holds and trial ids hash."""
        return dump_toml(self.to_dict())

    def config_hash(self) -> str:
        """Hash of :meth:`to_dict` but the seed (so seeds of one configuration share it)."""
        d = self.to_dict()
        d.pop("seed")
        return hashlib.sha1(dump_toml(d).encode()).hexdigest()[:10]


def _get(d: dict[str, Any], path: str) -> Any:
    section, _, key = path.rpartition(".")
    return (d[section] if section else d)[key]


def _pop(d: dict[str, Any], path: str) -> None:
    section, _, key = path.rpartition(".")
    (d[section] if section else d).pop(key)


SECTIONS: dict[str, type] = {
    "model": ModelSection, "objective": ObjectiveSection, "planner": PlannerSection,
    "loop": LoopSection, "mbpo": MBPOSection, "sac": SACSection,
}


# ---------------------------------------------------------------------------------------------- TOML
def _toml_key(k: str) -> str:
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else _toml_value(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (a section's option table)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(d: dict[str, Any]) -> str:
    """A minimal TOML writer for flat scalars and one level of tables whose values may be inline tables
    (enough for our configs)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines.extend(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- build
def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check (and gently coerce) a TOML value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise ValueError(f"{name}: got {value!r} ({type(value).__name__}), allowed a {annotation.__name__}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name}: got {value!r}, allowed a table")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name}: got {value!r}, allowed a list")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        for a in args:
            try:
                return _coerce(name, value, a)
            except ValueError:
                continue
        raise ValueError(f"{name}: got {value!r}, allowed one of {[a.__name__ for a in args]}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if cls is AgentConfig and "schema" in data:  # a written config (config.toml) says which schema it is
        data = dict(data)
        version = data.pop("schema")
        if not _is_int(version) or not 1 <= version <= SCHEMA_VERSION:
            raise ValueError(f"schema: got {version!r}, allowed an integer in [1, {SCHEMA_VERSION}] (a newer "
                             f"schema was written by a newer mbrl-po)")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{prefix}{key}: unknown key, allowed {names}{hint}")
        if key in SECTIONS and cls is AgentConfig:
            if not isinstance(value, dict):
                raise ValueError(f"{key}: expected a table, got {value!r}")
            kwargs[key] = _build(SECTIONS[key], value, f"{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", value, hints[key])
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["planner.horizon=30", "objective.name=pg"]`` -> nested dict; values are TOML literals or strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set: expected key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def agents_dir() -> Path:
    """``$MBRL_PO_AGENTS_DIR``, else the shipped ``agents/`` (the copy installed with the package, or the
    checkout's folder; see :mod:`mbrl_po.resources`)."""
    if os.environ.get(AGENTS_DIR_VAR):
        return Path(os.environ[AGENTS_DIR_VAR])
    return DEFAULT_AGENTS_DIR


def read_agent_file(kind_or_path: str) -> dict[str, Any]:
    """Read ``agents/<kind>.toml`` (or a path) into a dict."""
    path = Path(kind_or_path)
    avail = sorted(p.stem for p in agents_dir().glob("*.toml"))
    if path.suffix != ".toml":
        path = agents_dir() / f"{kind_or_path}.toml"
        if not path.exists():
            raise ValueError(f"agent: got {kind_or_path!r}, available {avail} (in {agents_dir()})")
    elif not path.is_file():
        raise ValueError(f"agent: {str(path)!r} does not exist; give an agent name {avail} or the path of an "
                         f"agent TOML file")
    return _read_toml(path, "agent")


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """``path`` parsed; a ValueError naming the file when it cannot be read or is not TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ValueError(f"{what}: cannot read {str(path)!r} ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}: {str(path)!r} is not valid TOML ({e}); fix or replace the file") from None


def load_agent_config(
    agent: str,
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
    task_overrides: dict[str, Any] | None = None,
) -> AgentConfig:
    """Resolve an agent config: agent file < the task's ``[agent.<kind>]`` < ``overrides``.

    Args:
        agent: agent name (``agents/<agent>.toml``) or path to a TOML file.
        env: task name; defaults to the agent file's ``env``.
        overrides: nested dict of final overrides (from CLI flags and ``--set``).
        task_overrides: the task's per-agent tables; read from the task file when None.
    """
    data = read_agent_file(agent)
    data = _merge(data, {"env": env} if env else {})
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if k == "env"})
    kind = data.get("kind", agent)
    if task_overrides is None:
        from mbrl_po.envs.task import load_task

        task_overrides = load_task(data.get("env", "inverted_pendulum")).agent_config(kind)
    data = _merge(data, task_overrides or {})
    data = _merge(data, overrides or {})
    return _build(AgentConfig, data, "")


def load_run_config(path: str | Path) -> AgentConfig:
    """Read a resolved ``config.toml`` written into a run directory."""
    return _build(AgentConfig, _read_toml(Path(path), "config"), "")
