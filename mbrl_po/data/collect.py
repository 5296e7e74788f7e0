"""Collect real transitions from a Gymnasium environment, and save/load them as ``.npz`` with provenance.

A transition dataset is a dict of numpy arrays, all with the same leading length B::

    obs             (B, O) float32   observation s_t
    actions         (B, A) float32   action a_t
    next_obs        (B, O) float32   s_{t+1}; on an episode's last step the TRUE final observation
                                     (what ``env.step`` returned), never the observation of the next reset
    rewards         (B,)   float32   r_t
    terminated      (B,)   bool      the episode ended by termination at this step
    truncated       (B,)   bool      the episode ended by truncation (time limit) at this step
    episode_starts  (B,)   bool      s_t is the first observation of an episode (right after ``reset``)

Within an episode ``next_obs[i] == obs[i + 1]``; an episode ends at a row with ``terminated | truncated``,
or at the end of the data (an unfinished episode: neither flag is set there).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

FIELDS: dict[str, tuple[int, type]] = {
    "obs": (2, np.floating),
    "actions": (2, np.floating),
    "next_obs": (2, np.floating),
    "rewards": (1, np.floating),
    "terminated": (1, np.bool_),
    "truncated": (1, np.bool_),
    "episode_starts": (1, np.bool_),
}
PROVENANCE_KEY = "__provenance__"

Policy = Callable[[np.ndarray], np.ndarray]


def _progress_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not os.environ.get("CI")


def random_policy(action_space: Any, seed: int = 0) -> Policy:
    """A uniformly random policy on a private, seeded copy of ``action_space`` (the env's own is untouched).

    Args:
        action_space: a Gymnasium space.
        seed: seeds the copy's RNG, so the action sequence depends on ``seed`` only.

    Returns:
        ``policy(obs (O,)) -> action (A,)``.
    """
    space = copy.deepcopy(action_space)
    space.seed(int(seed))

    def policy(obs: np.ndarray) -> np.ndarray:  # noqa: ARG001 - obs unused by a random policy
        return np.asarray(space.sample())

    return policy


def _resolve_env(env_or_task: Any) -> tuple[Any, bool]:
    """(env, whether we built it) for a gymnasium Env, a TaskConfig or a task name."""
    from mbrl_po.envs.task import TaskConfig, load_task, make_env

    if isinstance(env_or_task, str | Path):
        return make_env(load_task(env_or_task), seed=None), True
    if isinstance(env_or_task, TaskConfig):
        return make_env(env_or_task, seed=None), True
    if hasattr(env_or_task, "step") and hasattr(env_or_task, "reset") and hasattr(env_or_task, "action_space"):
        return env_or_task, False
    raise ValueError(
        f"env_or_task: expected a gymnasium Env, a TaskConfig or a task name (str), "
        f"got {type(env_or_task).__name__}"
    )


def collect(
    env_or_task: Any,
    num_steps: int,
    policy: Policy | Any | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """Step an environment for ``num_steps`` transitions, resetting whenever an episode ends.

    The first reset uses ``reset(seed=seed)``; later resets continue the env's own RNG, so the whole dataset
    is a deterministic function of ``seed`` (and of the policy).

    Args:
        env_or_task: a Gymnasium ``Env`` (not closed afterwards), a :class:`~mbrl_po.envs.TaskConfig`, or a task
            name such as ``"halfcheetah"`` (built with :func:`~mbrl_po.envs.make_env` and closed afterwards).
        num_steps: B, number of transitions (>= 1).
        policy: ``policy(obs (O,)) -> action (A,)``, or an object with SB3's ``predict(obs) -> (action, state)``;
            None: uniformly random actions from a copy of ``env.action_space`` seeded with ``seed``.
        seed: reset seed and random-policy seed.
        progress: show a tqdm bar (default: when stderr is a terminal and ``CI`` is unset).

    Returns:
        A dict of numpy arrays (see the module docstring): obs (B, O), actions (B, A), next_obs (B, O),
        rewards (B,), terminated (B,), truncated (B,), episode_starts (B,).

    Raises:
        ValueError: on a bad ``num_steps``/``seed``/``env_or_task``, or when the policy returns an action of the
            wrong shape or with NaN/inf.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer) or num_steps < 1:
        raise ValueError(f"num_steps: must be an integer >= 1, got {num_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: must be an integer >= 0, got {seed!r}")
    num_steps, seed = int(num_steps), int(seed)
    env, owned = _resolve_env(env_or_task)
    try:
        act_shape = tuple(env.action_space.shape or ())
        if policy is None:
            act_fn = random_policy(env.action_space, seed)
        elif hasattr(policy, "predict") and callable(policy.predict):
            def act_fn(o: np.ndarray) -> np.ndarray:
                return np.asarray(policy.predict(o, deterministic=False)[0])
        elif callable(policy):
            act_fn = policy
        else:
            raise ValueError(f"policy: expected None, a callable or an object with .predict, got {type(policy)}")

        obs, _ = env.reset(seed=seed)
        obs = np.asarray(obs)
        obs_buf = np.empty((num_steps, *obs.shape), dtype=np.float32)
        next_buf = np.empty_like(obs_buf)
        act_buf = np.empty((num_steps, *act_shape), dtype=np.float32)
        rew = np.empty(num_steps, dtype=np.float32)
        term = np.zeros(num_steps, dtype=bool)
        trunc = np.zeros(num_steps, dtype=bool)
        starts = np.zeros(num_steps, dtype=bool)
        new_episode = True
        bar = None
        if _progress_enabled(progress):
            from tqdm.auto import tqdm

            bar = tqdm(total=num_steps, desc="collect", leave=False)
        for i in range(num_steps):
            action = np.asarray(act_fn(obs))
            if action.shape != act_shape:
                raise ValueError(f"policy: returned an action of shape {action.shape}, expected {act_shape}")
            if np.issubdtype(action.dtype, np.floating) and not np.isfinite(action).all():
                raise ValueError(f"policy: returned a non-finite action at step {i}: {action}")
            next_obs, reward, terminated, truncated, _ = env.step(action)
            obs_buf[i] = obs
            act_buf[i] = action
            next_buf[i] = next_obs  # the true final observation when the episode ends here
            rew[i] = reward
            term[i] = bool(terminated)
            trunc[i] = bool(truncated)
            starts[i] = new_episode
            if terminated or truncated:
                obs, _ = env.reset()
                obs = np.asarray(obs)
                new_episode = True
            else:
                obs = np.asarray(next_obs)
                new_episode = False
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        if owned:
            env.close()
    if act_buf.ndim == 1:
        act_buf = act_buf[:, None]
    return {
        "obs": obs_buf,
        "actions": act_buf,
        "next_obs": next_buf,
        "rewards": rew,
        "terminated": term,
        "truncated": trunc,
        "episode_starts": starts,
    }


def validate_transitions(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check a transition dict (see the module docstring) and return it as numpy arrays.

    Raises:
        ValueError: naming the field, on a missing key, wrong rank or dtype, mismatched length or dims,
            NaN/inf, empty data, or an ``episode_starts`` that does not start the data.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"data: expected a dict of numpy arrays, got {type(data).__name__}")
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise ValueError(f"data: missing fields {missing}; required {list(FIELDS)}")
    out: dict[str, np.ndarray] = {}
    length = None
    for name, (ndim, kind) in FIELDS.items():
        arr = np.asarray(data[name])
        if arr.ndim != ndim:
            raise ValueError(f"{name}: expected {ndim} dims, got shape {arr.shape}")
        if kind is np.bool_:
            if arr.dtype != np.bool_:
                if not np.isin(arr, (0, 1)).all():
                    raise ValueError(f"{name}: expected booleans (or 0/1), got dtype {arr.dtype}")
                arr = arr.astype(bool)
        else:
            if not np.issubdtype(arr.dtype, np.number):
                raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{name}: contains {int((~np.isfinite(arr)).sum())} NaN/inf values")
        if length is None:
            length = arr.shape[0]
        elif arr.shape[0] != length:
            raise ValueError(f"{name}: has {arr.shape[0]} rows, expected {length} (the length of obs)")
        out[name] = arr
    if not length:
        raise ValueError("data: is empty (0 transitions)")
    if out["next_obs"].shape[1] != out["obs"].shape[1]:
        raise ValueError(f"next_obs: has dim {out['next_obs'].shape[1]}, expected obs dim {out['obs'].shape[1]}")
    if not out["episode_starts"][0]:
        raise ValueError("episode_starts: the first row must start an episode (got False at row 0)")
    return out


def episode_ids(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """(B,) int episode index of each row: a new episode starts at ``episode_starts`` or after a row with
    ``terminated | truncated``."""
    ends = np.asarray(data["terminated"], bool) | np.asarray(data["truncated"], bool)
    starts = np.asarray(data["episode_starts"], bool).copy()
    starts[1:] |= ends[:-1]
    starts[0] = True
    return np.cumsum(starts) - 1


def save_npz(path: str | Path, data: Mapping[str, Any], provenance: Mapping[str, Any] | None = None) -> Path:
    """Validate and write a transition dict to a compressed ``.npz``, with a JSON provenance record.

    Args:
        path: file to write (parent folders are created).
        data: transition dict (see the module docstring).
        provenance: JSON-serialisable facts about the data (env id, seed, policy, package version...).

    Returns:
        The path written.

    Raises:
        ValueError: on invalid data or non-JSON-serialisable provenance.
    """
    arrays = validate_transitions(data)
    prov = dict(provenance or {})
    try:
        blob = json.dumps(prov, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"provenance: must be JSON-serialisable, got {prov!r}: {e}") from e
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays, **{PROVENANCE_KEY: np.array(blob)})
    return path


def load_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_npz`.

    Returns:
        (data, provenance): the validated transition dict and the provenance dict ({} if none was stored).

    Raises:
        ValueError: if the file is missing or does not hold a valid transition dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    with np.load(path, allow_pickle=False) as z:
        raw = {k: z[k] for k in z.files}
    prov_blob = raw.pop(PROVENANCE_KEY, None)
    provenance = json.loads(str(prov_blob)) if prov_blob is not None else {}
    try:
        data = validate_transitions(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return data, provenance
