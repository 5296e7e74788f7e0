"""Behaviour policies for offline datasets: small SAC actor checkpoints, how they are trained, how they act.

Three policy levels per task, as in D4RL/Minari:

- ``random``: uniform actions from the env's action space (no checkpoint).
- ``medium``: a SAC actor stopped early: the training snapshot whose evaluation return is closest to half of
  the final snapshot's return.
- ``expert``: the final SAC actor.

A checkpoint is ``benchmarks/policies/<task>-<level>.pt`` (the actor only, float32, a few hundred KB) with a
JSON sidecar ``<task>-<level>.json`` (env id, training steps, snapshot step, evaluation return, seed, commit,
the command that trained it). The actor is a copy of stable-baselines3's SAC actor (``latent_pi`` MLP with ReLU,
``mu`` and ``log_std`` heads, tanh squashing) that loads without stable-baselines3.

Training (in the background; about 40 env steps/s on a loaded 2-core CPU)::

    python -m mbrl_po.data.policies train --env halfcheetah --steps 60000 --seed 0

It runs :class:`mbrl_po.agents.mbpo.SAC` in ``runs/policies/<task>-s<seed>`` (resumable: rerun the same
command), saves an actor snapshot with its deterministic evaluation return every ``--snapshot-every`` steps,
and at the end writes the ``medium`` and ``expert`` checkpoints into ``benchmarks/policies/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    "train_policies",
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
                f"`python -m mbrl_po.data.policies train --env {task}` (see docs/datasets.md)"
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


def train_policies(task: str, steps: int, seed: int = 0, snapshot_every: int = 5000, eval_episodes: int = 5,
                   runs_dir: str | Path = "runs/policies", out_dir: str | Path | None = None,
                   overrides: Mapping[str, Any] | None = None, progress: bool | None = None,
                   command: str = "") -> dict[str, Any]:
    """Train SAC on ``task`` and write its ``medium`` and ``expert`` actor checkpoints.

    Runs (or resumes) :class:`mbrl_po.agents.mbpo.SAC` in ``<runs_dir>/<task>-s<seed>``; every
    ``snapshot_every`` env steps the actor is evaluated (``eval_episodes`` deterministic episodes on the
    separately seeded eval env) and saved to ``snapshots/step-<N>.pt``. At the end :func:`select_medium`
    picks the checkpoints, which are copied to ``<out_dir>/<task>-{medium,expert}.pt`` with JSON sidecars.

    Returns:
        ``{"medium": meta, "expert": meta, "snapshots": [...]}``.
    """
    from mbrl_po.agents.common import RunDir
    from mbrl_po.agents.mbpo import SAC
    from mbrl_po.config import load_agent_config

    over: dict[str, Any] = {"steps": int(steps), "seed": int(seed), "device": "cpu",
                            "loop": {"eval_every": int(snapshot_every), "eval_episodes": int(eval_episodes),
                                     "checkpoint_every": max(int(snapshot_every), 1000)}}
    for k, v in (overrides or {}).items():
        if isinstance(v, Mapping):
            over.setdefault(k, {}).update(v)
        else:
            over[k] = v
    cfg = load_agent_config("sac", task, over)
    run_path = Path(runs_dir) / f"{task}-s{seed}"
    commit = git_commit()

    class _SnapshotSAC(SAC):
        def _log(self, **row: Any) -> None:
            super()._log(**row)
            if "eval_return" in row:
                actor = actor_from_sb3(self.sac, self.env.action_space.low, self.env.action_space.high)
                save_actor(run_path / "snapshots" / f"step-{self.step:07d}.pt", actor, {
                    "env_id": self.task.id, "task": task, "snapshot_step": self.step, "train_steps": cfg.steps,
                    "eval_return": float(row["eval_return"]), "eval_episodes": cfg.loop.eval_episodes,
                    "eval_mode": "deterministic", "seed": cfg.seed, "commit": commit,
                    "wall_time_s": float(row.get("wall_time", float("nan"))),
                })
                print(f"[policies] step {self.step}: eval return {row['eval_return']:.1f}", file=sys.stderr,
                      flush=True)

    if (run_path / "checkpoints" / "latest.pt").is_file():
        run = RunDir(run_path)
        agent = _SnapshotSAC.resume(run, progress=progress)
        print(f"[policies] resuming {run_path} at step {agent.step}", file=sys.stderr, flush=True)
    else:
        run = RunDir.create(Path(runs_dir), cfg, run_path.name) if not run_path.exists() or not any(
            run_path.iterdir()) else RunDir(run_path)
        if not (run_path / "config.toml").exists():
            raise ValueError(f"runs_dir: {run_path} exists without a run in it")
        agent = _SnapshotSAC(cfg, run, progress=progress)
    agent.train()
    return write_levels(task, run_path, out_dir, upto=cfg.steps, command=command)


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


def main(argv: list[str] | None = None) -> int:
    """``python -m mbrl_po.data.policies train --env halfcheetah --steps 60000 --seed 0``."""
    from mbrl_po.config import parse_set

    parser = argparse.ArgumentParser(prog="python -m mbrl_po.data.policies",
                                     description="train the SAC behaviour policies of the offline datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train SAC and write <env>-medium.pt and <env>-expert.pt")
    p.add_argument("--env", required=True, help="task name (halfcheetah, hopper, walker2d, ...)")
    p.add_argument("--steps", type=int, default=60000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--runs-dir", default="runs/policies")
    p.add_argument("--out", default=None, help="checkpoint folder (default benchmarks/policies)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="SAC config override, e.g. loop.init_steps=5000")
    p = sub.add_parser("select", help="write <env>-medium.pt and <env>-expert.pt from an existing run's snapshots")
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--upto", type=int, default=None, help="ignore snapshots after this env step")
    p.add_argument("--runs-dir", default="runs/policies")
    p.add_argument("--out", default=None, help="checkpoint folder (default benchmarks/policies)")
    p.add_argument("--train-command", default="", help="the training command, recorded in the sidecars")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("MBRL_PO_THREADS", "1")))
    cmd = "python -m mbrl_po.data.policies " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "select":
            res = write_levels(args.env, Path(args.runs_dir) / f"{args.env}-s{args.seed}", args.out, args.upto,
                               args.train_command or cmd)
        else:
            res = train_policies(args.env, args.steps, args.seed, args.snapshot_every, args.eval_episodes,
                                 args.runs_dir, args.out, parse_set(args.set or []), command=cmd)
    except ValueError as e:
        print(f"policies: error: {e}", file=sys.stderr)
        return 2
    for level in ("medium", "expert"):
        m = res[level]
        print(f"{level}: step {m['snapshot_step']} eval return {m['eval_return']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
