"""Behaviour policies for offline datasets: small SAC actor checkpoints, how they are chosen, how they act.

Three policy levels per task, as in D4RL/Minari:

- ``random``: uniform actions from the env's action space (no checkpoint).
- ``medium``: a SAC actor stopped early: the training snapshot whose evaluation return is closest to half of
  the final snapshot's return.
- ``expert``: the final SAC actor.

A checkpoint is ``benchmarks/policies/<task>-<level>.pt`` (the actor only, float32, a few hundred KB) with a
JSON sidecar ``<task>-<level>.json`` (env id, training steps, snapshot step, evaluation return, seed, commit,
the command that trained it). The actor is a copy of stable-baselines3's SAC actor (``latent_pi`` MLP with ReLU,
``mu`` and ``log_std`` heads, tanh squashing) that loads without stable-baselines3.

This module is the data side: the actor, its checkpoint files, acting with it, and picking the levels among a
training run's snapshots (:func:`write_levels`). Training the SAC agent that makes the snapshots is the agents'
side, :mod:`mbrl_po.agents.policies` (``python -m mbrl_po.agents.policies train --env halfcheetah``); the data
layer imports nothing from :mod:`mbrl_po.agents`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "LEVELS",
    "POLICY_DIR",
    "SACActor",
    "actor_from_sb3",
    "git_commit",
    "load_actor",
    "make_policy",
    "policy_path",
    "save_actor",
    "select_medium",
    "write_levels",
]

LEVELS = ("random", "medium", "expert")
POLICY_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "policies"
FORMAT = "mbrl_po.sac_actor/1"
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # stable-baselines3's SAC clamp


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit of the repository holding this package (``+dirty`` when the tree has changes),
    or ``"unknown"`` outside a git checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------- the actor
class SACActor(nn.Module):
    """stable-baselines3's SAC actor without stable-baselines3: MLP (ReLU) -> ``mu``, ``log_std``; tanh squash.

    Args:
        obs_dim: O.
        act_dim: A.
        hidden: hidden layer widths (SB3's ``net_arch``).
        action_low: (A,) env lower action bounds.
        action_high: (A,) env upper action bounds.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int] | tuple[int, ...],
                 action_low: Any, action_high: Any) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = int(obs_dim)
        for h in hidden:
            layers += [nn.Linear(last, int(h)), nn.ReLU()]
            last = int(h)
        self.latent_pi = nn.Sequential(*layers)
        self.mu = nn.Linear(last, int(act_dim))
        self.log_std = nn.Linear(last, int(act_dim))
        self.obs_dim, self.act_dim, self.hidden = int(obs_dim), int(act_dim), [int(h) for h in hidden]
        low = torch.as_tensor(np.asarray(action_low, dtype=np.float32).reshape(-1))
        high = torch.as_tensor(np.asarray(action_high, dtype=np.float32).reshape(-1))
        if low.shape != (self.act_dim,) or high.shape != (self.act_dim,) or not bool((high > low).all()):
            raise ValueError(f"action bounds: expected ({act_dim},) with high > low, got {low} .. {high}")
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, O) observations -> (B, A) env-scale actions: ``tanh(mu)`` or ``tanh(mu + std * eps)``."""
        latent = self.latent_pi(obs)
        mean = self.mu(latent)
        if deterministic:
            squashed = torch.tanh(mean)
        else:
            std = torch.clamp(self.log_std(latent), LOG_STD_MIN, LOG_STD_MAX).exp()
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            squashed = torch.tanh(mean + std * eps)
        return self.action_low + 0.5 * (squashed + 1.0) * (self.action_high - self.action_low)


def actor_from_sb3(sac: Any, action_low: Any, action_high: Any) -> SACActor:
    """A float32 CPU :class:`SACActor` copy of a stable-baselines3 SAC model's actor (``sac.actor``)."""
    src = sac.actor
    if getattr(src, "use_sde", False):
        raise ValueError("actor: gSDE actors are not supported; train SAC with use_sde=False")
    linears = [m for m in src.latent_pi if isinstance(m, nn.Linear)]
    if any(not isinstance(m, nn.Linear | nn.ReLU) for m in src.latent_pi):
        raise ValueError(f"actor: expected a Linear/ReLU latent_pi, got {src.latent_pi}")
    obs_dim = linears[0].in_features if linears else src.mu.in_features
    actor = SACActor(obs_dim, src.mu.out_features, [m.out_features for m in linears], action_low, action_high)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in src.state_dict().items()}
    missing, unexpected = actor.load_state_dict({**state, "action_low": actor.action_low,
                                                 "action_high": actor.action_high}, strict=False)
    if missing or [k for k in unexpected if not k.startswith("features_extractor")]:
        raise ValueError(f"actor: state dict mismatch, missing {missing}, unexpected {unexpected}")
    return actor


def save_actor(path: str | Path, actor: SACActor, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``actor`` (float32) to ``path`` (.pt) and ``meta`` (plus the architecture) to ``path`` with .json.

    Returns:
        The .pt path.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"path: a policy checkpoint must end in .pt, got {str(path)!r}")
    arch = {"obs_dim": actor.obs_dim, "act_dim": actor.act_dim, "hidden": actor.hidden}
    meta = {"format": FORMAT, **arch, **dict(meta or {})}
    try:
        blob = json.dumps(meta, indent=2, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"meta: must be JSON-serialisable: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in actor.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, **arch, "state_dict": state}, tmp)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(blob + "\n")
    return path


def load_actor(path: str | Path) -> tuple[SACActor, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_actor`.

    Returns:
        (actor in eval mode, metadata from the JSON sidecar, {} if it is missing).

    Raises:
        ValueError: if the file is missing or is not an actor checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"policy: no such checkpoint {str(path)!r}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise ValueError(f"policy: {path} is not a readable torch checkpoint: {e}") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"policy: {path} is not an actor checkpoint (expected format {FORMAT!r})")
    state = blob["state_dict"]
    actor = SACActor(blob["obs_dim"], blob["act_dim"], blob["hidden"], state["action_low"].numpy(),
                     state["action_high"].numpy())
    actor.load_state_dict(state)
    actor.eval()
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return actor, meta


def policy_path(task: str, level: str, root: str | Path | None = None) -> Path:
    """``<root>/<task>-<level>.pt`` (root defaults to ``benchmarks/policies``)."""
    return Path(root or POLICY_DIR) / f"{task}-{level}.pt"


def make_policy(env: Any, policy: str, seed: int = 0, deterministic: bool = False,
                root: str | Path | None = None, task: str | None = None
                ) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """A behaviour policy for :func:`mbrl_po.data.collect.collect`.

    Args:
        env: the env it will act in (its action space; and its spec's id is checked against the checkpoint's).
        policy: ``random``, ``medium``, ``expert`` (``<root>/<task>-<level>.pt``) or a path to a ``.pt`` checkpoint.
        seed: seeds the random policy, or the actor's sampling noise.
        deterministic: act with ``tanh(mu)`` instead of sampling (the default samples, like the SAC
            behaviour policy during training and like D4RL's data).
        root: where the level checkpoints live (default ``benchmarks/policies``).
        task: task name used to find level checkpoints (e.g. ``halfcheetah``).

    Returns:
        (``policy(obs) -> action``, provenance dict: policy level/path, sampling mode, checkpoint metadata).
    """
    from mbrl_po.data.collect import random_policy

    if policy == "random":
        return random_policy(env.action_space, seed), {"policy": "random", "policy_sampling": "uniform"}
    if policy in LEVELS:
        if task is None:
            raise ValueError(f"policy: level {policy!r} needs the task name to find its checkpoint")
        path = policy_path(task, policy, root)
        if not path.is_file():
            raise ValueError(
                f"policy: no {policy!r} checkpoint for task {task!r} at {path}; train it with "
                f"`python -m mbrl_po.agents.policies train --env {task}` (see docs/datasets.md)"
            )
    elif str(policy).endswith(".pt"):
        path = Path(policy)
    else:
        raise ValueError(f"policy: got {policy!r}, allowed {list(LEVELS)} or a path to a .pt actor checkpoint")
    actor, meta = load_actor(path)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    if (actor.obs_dim, actor.act_dim) != (obs_dim, act_dim):
        raise ValueError(f"policy: {path} is for obs/action dims ({actor.obs_dim}, {actor.act_dim}), "
                         f"the env has ({obs_dim}, {act_dim})")
    env_id = getattr(getattr(env, "spec", None), "id", None)
    if meta.get("env_id") and env_id and meta["env_id"] != env_id:
        raise ValueError(f"policy: {path} was trained on {meta['env_id']}, not {env_id}")
    gen = torch.Generator().manual_seed(int(seed))

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            o = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
            return actor(o, deterministic=deterministic, generator=gen)[0].numpy()

    prov = {
        "policy": policy if policy in LEVELS else "checkpoint",
        "policy_path": str(path.name if policy in LEVELS else path),
        "policy_sampling": "deterministic" if deterministic else "stochastic",
        "policy_meta": {k: meta[k] for k in ("env_id", "train_steps", "snapshot_step", "eval_return",
                                             "eval_episodes", "seed", "commit", "level") if k in meta},
    }
    return act, prov


# ---------------------------------------------------------------------------------------------- training
def select_medium(snapshots: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(medium, expert) among snapshot records ``{"step", "eval_return", ...}``: expert is the last one,
    medium the one whose return is closest to half of the expert's (the earlier one on ties; never the
    expert itself when there are two or more)."""
    if not snapshots:
        raise ValueError("snapshots: none to choose from")
    snaps = sorted(snapshots, key=lambda s: s["step"])
    expert = snaps[-1]
    target = 0.5 * float(expert["eval_return"])
    pool = snaps[:-1] or snaps
    medium = min(pool, key=lambda s: (abs(float(s["eval_return"]) - target), s["step"]))
    return medium, expert


def write_levels(task: str, run_path: str | Path, out_dir: str | Path | None = None, upto: int | None = None,
                 command: str = "") -> dict[str, Any]:
    """Pick ``medium`` and ``expert`` among the snapshots of a training run and write them to ``out_dir``.

    Args:
        task: task name (the checkpoint file prefix).
        run_path: the run folder holding ``snapshots/step-*.pt``.
        out_dir: where ``<task>-{medium,expert}.pt`` go (default ``benchmarks/policies``).
        upto: ignore snapshots after this env step (None: all); the expert is the last one kept.
        command: the training command, recorded in the sidecars.

    Returns:
        ``{"medium": meta, "expert": meta, "snapshots": [{"step", "eval_return"}, ...]}``.
    """
    snaps = []
    for js in sorted((Path(run_path) / "snapshots").glob("step-*.json")):
        meta = json.loads(js.read_text())
        if upto is None or meta.get("snapshot_step", 0) <= upto:
            snaps.append({**meta, "step": meta["snapshot_step"], "path": str(js.with_suffix(".pt"))})
    if not snaps:
        raise ValueError(f"run_path: no snapshots{'' if upto is None else f' up to step {upto}'} in "
                         f"{Path(run_path) / 'snapshots'}")
    medium, expert = select_medium(snaps)
    out: dict[str, Any] = {"snapshots": [{"step": s["step"], "eval_return": s["eval_return"]} for s in snaps]}
    for level, snap in (("medium", medium), ("expert", expert)):
        actor, meta = load_actor(snap["path"])
        meta = {k: v for k, v in meta.items() if k not in ("format", "obs_dim", "act_dim", "hidden")}
        meta.update({"level": level, "train_steps": int(expert["step"]), "expert_return": float(expert["eval_return"]),
                     "selection": "final snapshot" if level == "expert" else
                     "snapshot whose eval return is closest to half of the final snapshot's",
                     "command": command, "snapshots": out["snapshots"]})
        save_actor(policy_path(task, level, out_dir), actor, meta)
        out[level] = meta
    return out
