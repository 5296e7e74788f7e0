"""Training the SAC behaviour policies of the offline datasets (the ``medium`` and ``expert`` levels).

In the background; about 40 env steps/s on a loaded 2-core CPU::

    python -m mbrl_po.agents.policies train --env halfcheetah --steps 60000 --seed 0

It runs `mbrl_po.agents.SACAgent` in ``runs/policies/<task>-s<seed>`` (resumable: rerun the same
command), saves an actor snapshot with its deterministic evaluation return every ``--snapshot-every`` steps,
and at the end writes the ``medium`` and ``expert`` checkpoints into ``benchmarks/policies/``
(:func:`mbrl_po.data.policies.write_levels`; ``select`` redoes that choice from an existing run). The actor
checkpoints, and acting with them, are the data layer's (:mod:`mbrl_po.data.policies`), which needs no agent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# a command-line module (python -m): passive OpenMP waits before torch loads, as the mbrl-po entry point does
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from mbrl_po.agents.common import RunDir  # noqa: E402
from mbrl_po.agents.mbpo import SACAgent  # noqa: E402
from mbrl_po.config import load_agent_config, parse_set  # noqa: E402
from mbrl_po.data.policies import actor_from_sb3, git_commit, save_actor, write_levels  # noqa: E402

__all__ = ["main", "train_policies"]


def train_policies(task: str, steps: int, seed: int = 0, snapshot_every: int = 5000, eval_episodes: int = 5,
                   runs_dir: str | Path = "runs/policies", out_dir: str | Path | None = None,
                   overrides: Mapping[str, Any] | None = None, progress: bool | None = None,
                   command: str = "") -> dict[str, Any]:
    """Train SAC on ``task`` and write its ``medium`` and ``expert`` actor checkpoints.

    Runs (or resumes) :class:`mbrl_po.agents.SACAgent` in ``<runs_dir>/<task>-s<seed>``; every
    ``snapshot_every`` env steps the actor is evaluated (``eval_episodes`` deterministic episodes on the
    separately seeded eval env) and saved to ``snapshots/step-<N>.pt``. At the end
    :func:`~mbrl_po.data.policies.write_levels` picks the checkpoints (``select_medium``) and copies them to
    ``<out_dir>/<task>-{medium,expert}.pt`` with JSON sidecars.

    Returns:
        ``{"medium": meta, "expert": meta, "snapshots": [...]}``.
    """
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

    class _SnapshotSAC(SACAgent):
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


def main(argv: list[str] | None = None) -> int:
    """``python -m mbrl_po.agents.policies train --env halfcheetah --steps 60000 --seed 0``."""
    parser = argparse.ArgumentParser(prog="python -m mbrl_po.agents.policies",
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
    cmd = "python -m mbrl_po.agents.policies " + " ".join(sys.argv[1:] if argv is None else argv)
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
