"""Task definitions: one TOML file per Gymnasium task, loaded into a frozen :class:`TaskConfig`.

Schema of ``envs/<name>.toml`` (top-level keys)::

    id = "Hopper-v5"                  # exact gymnasium id (or "package.module:EnvClass")
    max_episode_steps = 1000          # optional; default: the id's registered limit
    termination = "hopper"            # key of TERMINATIONS, "none", or "package.module:function"
    reward = "learned"                # "learned" (the model predicts it), a key of REWARDS, or "pkg.mod:fn"
    planning_reward = "hopper_proxy"  # reward a planner may use: exact, *_proxy, "learned" or "pkg.mod:fn"
    [env_kwargs]                      # forwarded to gymnasium.make
    [agent.pets.planner]              # per-agent overrides: agent -> section -> key = value
    [agent.mbpo.mbpo]
    [agent.mbpo.sac]

A bare name resolves to ``$MBRL_PO_ENVS_DIR/<name>.toml`` when that variable is set and the file is there,
else to the shipped ``envs/`` (the copy installed with the package, or the checkout's folder; see
:mod:`mbrl_po.resources`); any path to a ``.toml`` file works too.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import inspect
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from mbrl_po.envs.rewards import REWARDS
from mbrl_po.envs.terminations import TERMINATIONS, never
from mbrl_po.resources import shipped_config_dir
from mbrl_po.types import TransitionFn

ENVS_DIR_VAR = "MBRL_PO_ENVS_DIR"
DEFAULT_ENVS_DIR = shipped_config_dir("envs")
NO_TERMINATION = "none"
LEARNED = "learned"
ALLOWED_KEYS = ("id", "max_episode_steps", "termination", "reward", "planning_reward", "env_kwargs", "agent")


def _did_you_mean(got: str, allowed: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(got, list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _import_function(field_name: str, spec: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (dots after the colon walk attributes)."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"{field_name}: expected 'package.module:function', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{field_name}: cannot import module {module_name!r} from {spec!r}: {e}") from e
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ValueError(
                f"{field_name}: module {module_name!r} has no attribute {attr_path!r} (from {spec!r})"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{field_name}: {spec!r} is a {type(obj).__name__}, expected a callable")
    return obj


def bind_env_kwargs(fn: Callable[..., torch.Tensor], env_kwargs: Mapping[str, Any]) -> TransitionFn:
    """Bind the entries of ``env_kwargs`` that match keyword-only parameters of ``fn``.

    This is how a termination or reward function learns e.g. a task's ``healthy_z_range`` or
    ``include_cfrc_ext_in_observation``. TOML arrays become tuples.

    Args:
        fn: a function ``fn(obs, action, next_obs, *, **params)``.
        env_kwargs: the task's ``env_kwargs``.

    Returns:
        ``fn`` itself when nothing matches, else a :func:`functools.partial` of it.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins / C callables have no signature
        return fn
    bound = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in env_kwargs.items()
        if k in params and params[k].kind == inspect.Parameter.KEYWORD_ONLY
    }
    return functools.partial(fn, **bound) if bound else fn


def _check_fn_field(field_name: str, value: Any, registry: Mapping[str, Any], special: str) -> None:
    if callable(value):
        return
    if not isinstance(value, str):
        raise ValueError(
            f"{field_name}: expected a name (str) or a callable, got {type(value).__name__} {value!r}"
        )
    if value == special or value in registry:
        return
    if ":" in value:
        _import_function(field_name, value)
        return
    allowed = [special, *sorted(registry)]
    raise ValueError(
        f"{field_name}: unknown name {value!r}; allowed: {', '.join(allowed)}, "
        f"or 'package.module:function'{_did_you_mean(value, allowed)}"
    )


def _resolve_fn(
    value: str | Callable[..., torch.Tensor], registry: Mapping[str, Any], field_name: str
) -> Callable[..., torch.Tensor]:
    if callable(value):
        return value
    if value in registry:
        return registry[value]
    return _import_function(field_name, value)


@dataclass(frozen=True)
class TaskConfig:
    """One task: which environment to build and which known functions of it a model-based agent may use.

    Attributes:
        id: Gymnasium id (``"Hopper-v5"``) or an entry point ``"package.module:EnvClass"``.
        max_episode_steps: time limit; None uses the id's registered limit.
        termination: key of :data:`~mbrl_po.envs.TERMINATIONS`, ``"none"``, ``"package.module:function"``
            or a callable ``fn(obs, action, next_obs) -> (...) bool``.
        reward: ``"learned"`` (the dynamics model predicts the reward), a key of
            :data:`~mbrl_po.envs.REWARDS`, ``"package.module:function"`` or a callable.
        planning_reward: reward a planner (PETS) may use instead of the learned one: an exact function,
            a ``*_proxy``, ``"learned"``, ``"package.module:function"`` or a callable.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        agent_overrides: ``{agent: {section: {key: value}}}`` (the ``[agent.*]`` tables), e.g.
            ``{"pets": {"planner": {"horizon": 30}}}``.
        name: the task's name (the TOML file stem, or the id for :func:`custom_task`).
    """

    id: str
    max_episode_steps: int | None = None
    termination: str | Callable[..., torch.Tensor] = NO_TERMINATION
    reward: str | Callable[..., torch.Tensor] = LEARNED
    planning_reward: str | Callable[..., torch.Tensor] = LEARNED
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id: expected a non-empty gymnasium id (str), got {self.id!r}")
        m = self.max_episode_steps
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"max_episode_steps: expected a positive int or None, got {m!r}")
        _check_fn_field("termination", self.termination, TERMINATIONS, NO_TERMINATION)
        _check_fn_field("reward", self.reward, REWARDS, LEARNED)
        _check_fn_field("planning_reward", self.planning_reward, REWARDS, LEARNED)
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs: expected a table (dict), got {type(self.env_kwargs).__name__}")
        if not isinstance(self.agent_overrides, dict):
            raise ValueError(f"agent: expected a table (dict), got {type(self.agent_overrides).__name__}")
        for agent, sections in self.agent_overrides.items():
            if not isinstance(sections, dict):
                raise ValueError(
                    f"agent.{agent}: expected a table of sections such as [agent.{agent}.<section>], "
                    f"got {type(sections).__name__} {sections!r}"
                )
            for section, values in sections.items():
                if not isinstance(values, dict):
                    raise ValueError(
                        f"agent.{agent}.{section}: expected a table of key = value overrides, "
                        f"got {type(values).__name__} {values!r}"
                    )

    def termination_fn(self) -> TransitionFn:
        """The termination function, with this task's ``env_kwargs`` bound.

        Returns:
            ``fn(obs (..., O), action (..., A), next_obs (..., O)) -> (...) bool``; for ``"none"`` a
            function that is always false.
        """
        if self.termination == NO_TERMINATION:
            return never
        return bind_env_kwargs(_resolve_fn(self.termination, TERMINATIONS, "termination"), self.env_kwargs)

    def reward_fn(self) -> TransitionFn | None:
        """The known reward function, or None when the reward is learned.

        Returns:
            ``fn(obs (..., O), action (..., A), next_obs (..., O)) -> (...) float`` or None.
        """
        if self.reward == LEARNED:
            return None
        return bind_env_kwargs(_resolve_fn(self.reward, REWARDS, "reward"), self.env_kwargs)

    def planning_reward_fn(self) -> TransitionFn | None:
        """The reward a planner may use (exact or proxy), or None when it must use the learned one.

        Returns:
            ``fn(obs (..., O), action (..., A), next_obs (..., O)) -> (...) float`` or None.
        """
        if self.planning_reward == LEARNED:
            return None
        return bind_env_kwargs(_resolve_fn(self.planning_reward, REWARDS, "planning_reward"), self.env_kwargs)

    def agent_config(self, agent: str) -> dict[str, dict[str, Any]]:
        """This task's overrides for one agent (a deep copy; empty when there are none).

        Args:
            agent: agent name, e.g. ``"pets"`` or ``"mbpo"``.

        Returns:
            ``{section: {key: value}}``.
        """
        return copy.deepcopy(self.agent_overrides.get(agent, {}))

    def replace(self, **changes: Any) -> TaskConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _envs_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENVS_DIR_VAR):
        dirs.append(Path(os.environ[ENVS_DIR_VAR]).expanduser())
    dirs.append(DEFAULT_ENVS_DIR)
    return dirs


def list_tasks() -> list[str]:
    """Names of the tasks that :func:`load_task` finds by bare name.

    Returns:
        Sorted TOML file stems from ``$MBRL_PO_ENVS_DIR`` (if set) and the shipped ``envs/``.
    """
    names: set[str] = set()
    for d in _envs_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def _task_path(name_or_path: str | Path) -> Path:
    s = str(name_or_path)
    if isinstance(name_or_path, Path) or s.endswith(".toml") or os.sep in s or "/" in s:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ValueError(f"task: file {str(path)!r} does not exist")
        return path
    for d in _envs_dirs():
        path = d / f"{s}.toml"
        if path.is_file():
            return path
    available = list_tasks()
    searched = ", ".join(str(d) for d in _envs_dirs())
    raise ValueError(
        f"task: unknown task {s!r} (searched {searched}); available: {', '.join(available) or 'none'}"
        f"{_did_you_mean(s, available)}"
    )


def task_from_dict(data: Mapping[str, Any], name: str = "") -> TaskConfig:
    """Validate a parsed TOML table and build the :class:`TaskConfig`.

    Args:
        data: the top-level table (see the module docstring for the schema).
        name: the task's name, used in error messages and stored in the config.

    Returns:
        The validated task.

    Raises:
        ValueError: for unknown keys, missing ``id``, or bad values.
    """
    where = f" (task {name!r})" if name else ""
    for key in data:
        if key not in ALLOWED_KEYS:
            raise ValueError(
                f"unknown top-level key {key!r}{where}; allowed: {', '.join(ALLOWED_KEYS)}"
                f"{_did_you_mean(key, ALLOWED_KEYS)}"
            )
    if "id" not in data:
        raise ValueError(f'id: missing{where}; every task needs a gymnasium id, e.g. id = "Hopper-v5"')
    try:
        return TaskConfig(
            id=data["id"],
            max_episode_steps=data.get("max_episode_steps"),
            termination=data.get("termination", NO_TERMINATION),
            reward=data.get("reward", LEARNED),
            planning_reward=data.get("planning_reward", LEARNED),
            env_kwargs=copy.deepcopy(dict(data.get("env_kwargs", {}))),
            agent_overrides=copy.deepcopy(dict(data.get("agent", {}))),
            name=name,
        )
    except ValueError as e:
        raise ValueError(f"{e}{where}") from None


def load_task(name_or_path: str | Path) -> TaskConfig:
    """Load and validate a task TOML.

    Args:
        name_or_path: a bare task name (``"hopper"``, resolved in ``$MBRL_PO_ENVS_DIR`` then the
            shipped ``envs/``) or a path to a ``.toml`` file.

    Returns:
        The validated :class:`TaskConfig`; its ``name`` is the file stem.

    Raises:
        ValueError: unknown task name / missing file (lists the available tasks), invalid TOML, unknown
            top-level key (lists the allowed keys), unknown termination or reward name (lists the valid
            names), or a bad value.
    """
    path = _task_path(name_or_path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"task: {str(path)!r} is not valid TOML: {e}") from e
    return task_from_dict(data, name=path.stem)


def custom_task(
    env_id: str,
    termination_fn: str | Callable[..., torch.Tensor] | None = None,
    reward_fn: str | Callable[..., torch.Tensor] | None = None,
    max_episode_steps: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> TaskConfig:
    """A task for any Gymnasium id with user-supplied torch functions.

    Args:
        env_id: a registered Gymnasium id or an entry point ``"package.module:EnvClass"``.
        termination_fn: ``fn(obs (..., O), action (..., A), next_obs (..., O)) -> (...) bool``, a name
            (see :data:`~mbrl_po.envs.TERMINATIONS`) or ``"package.module:function"``; None: never terminates.
        reward_fn: ``fn(obs, action, next_obs) -> (...) float`` (or a name): used both as the known
            reward and as the planning reward; None: the reward is learned.
        max_episode_steps: time limit; None uses the id's registered limit.
        env_kwargs: keyword arguments for ``gymnasium.make``.

    Returns:
        The validated :class:`TaskConfig` (``name`` is ``env_id``).
    """
    reward: str | Callable[..., torch.Tensor] = LEARNED if reward_fn is None else reward_fn
    return TaskConfig(
        id=env_id,
        max_episode_steps=max_episode_steps,
        termination=NO_TERMINATION if termination_fn is None else termination_fn,
        reward=reward,
        planning_reward=reward,
        env_kwargs=dict(env_kwargs or {}),
        name=env_id,
    )


def _env_id_or_spec(env_id: str) -> str | gym.envs.registration.EnvSpec:
    """``"module:Name-v0"`` (gymnasium's import-then-look-up form) stays a string; an entry point
    ``"module:EnvClass"`` that is not registered becomes an unregistered :class:`EnvSpec`."""
    if ":" not in env_id or env_id in gym.registry:
        return env_id
    module_name, _, attr = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"id: cannot import module {module_name!r} of {env_id!r}: {e}") from e
    if attr in gym.registry or not callable(getattr(module, attr, None)):
        return env_id
    return gym.envs.registration.EnvSpec(id=env_id, entry_point=env_id)


def make_env(task: TaskConfig, seed: int | None = None, **overrides: Any) -> gym.Env:
    """Build the task's environment with ``gymnasium.make``.

    Args:
        task: the task.
        seed: when given, the env is reset with it and its action/observation spaces are seeded.
        **overrides: extra or replacing ``gymnasium.make`` keyword arguments (e.g. ``render_mode``);
            ``max_episode_steps`` here replaces the task's.

    Returns:
        The environment, wrapped like ``gymnasium.make`` does (``TimeLimit`` etc.).
    """
    kwargs = {**task.env_kwargs, **overrides}
    max_episode_steps = kwargs.pop("max_episode_steps", task.max_episode_steps)
    try:
        env = gym.make(_env_id_or_spec(task.id), max_episode_steps=max_episode_steps, **kwargs)
    except gym.error.Error as e:  # unknown id or version, a missing dependency: the task file's fault
        raise ValueError(f"env: task {task.name!r} has id {task.id!r}, which gymnasium cannot make ({e}); fix "
                         f"`id` in the task file (e.g. a registered id such as 'Hopper-v5')") from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env
