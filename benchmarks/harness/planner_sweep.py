"""``mbrl-po bench planner-sweep``: which planner can a CPU afford? Return against cost per action, on one model.

A PETS run directory (its last checkpoint: the model trained on the data that PETS collected) is loaded once;
then every planner setting plans episodes on the real env with that same model, from the same env seeds (paired
across settings), and each episode's return and process CPU time per action are recorded::

    mbrl-po bench planner-sweep --run RUN_DIR --settings cem-64x5x10x3 icem-100x5x30x3 \\
        --episodes 2 --episode-steps 300 --out docs/results/planning/halfcheetah

A setting is ``<optimizer>-<population>x<particles>x<horizon>x<iterations>`` (optimizer ``cem``, ``icem`` or
``mppi``), optionally with ``@bf16`` for the model's matmuls in bf16 (``ModelEnv(precision="bf16")``; default
float32); the other planner options are the run's. Rows go to ``<out>/sweep.csv`` as each episode ends (a
killed sweep skips finished episodes when rerun); ``<out>/sweep.md`` and ``sweep.png`` are rewritten at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SETTING = re.compile(r"^(cem|icem|mppi)-(\d+)x(\d+)x(\d+)x(\d+)(?:@(float32|bf16))?$")
COLUMNS = ("setting", "optimizer", "population", "particles", "horizon", "iterations", "episode", "env_seed",
           "max_steps", "steps", "return", "ms_per_action", "machine", "model_run", "model_step", "commit")
ENV_SEED_BASE = 10_000


@dataclass(frozen=True)
class Setting:
    """One planner setting of the sweep."""

    optimizer: str
    population: int
    particles: int
    horizon: int
    iterations: int
    precision: str = "float32"

    @property
    def name(self) -> str:
        tail = "" if self.precision == "float32" else f"@{self.precision}"
        return f"{self.optimizer}-{self.population}x{self.particles}x{self.horizon}x{self.iterations}{tail}"

    @property
    def rows_per_action(self) -> int:
        """Model rows evaluated per planned action, before iCEM's population decay: N x P x H x iterations."""
        return self.population * self.particles * self.horizon * self.iterations


def parse_setting(text: str) -> Setting:
    """``cem-64x5x10x3`` (or ``cem-64x5x10x3@bf16``) -> :class:`Setting`; a ValueError naming the allowed form
    otherwise."""
    m = SETTING.match(text.strip().lower())
    if not m or min(int(x) for x in m.groups()[1:5]) < 1:
        raise ValueError(f"setting: got {text!r}, allowed <cem|icem|mppi>-<population>x<particles>x<horizon>x"
                         "<iterations>[@float32|@bf16] with positive integers, e.g. cem-64x5x10x3 or "
                         "cem-100x5x30x3@bf16")
    return Setting(m.group(1), *(int(x) for x in m.groups()[1:5]), precision=m.group(6) or "float32")


def _planner(agent: Any, s: Setting, seed: int) -> Any:
    """An MPC agent with setting ``s`` on ``agent``'s model (the run's other planner options)."""
    from mbrl_po.models.model_env import ModelEnv
    from mbrl_po.planning import MPCAgent, make_optimizer
    from mbrl_po.planning.evaluator import TrajectoryEvaluator

    p = agent.cfg.planner
    space = agent.env.action_space
    low = torch.as_tensor(space.low, dtype=torch.float32, device=agent.device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=agent.device)
    # the run's other planner settings; its options only when the setting keeps its optimizer
    same = dataclasses.replace(p, optimizer=s.optimizer, horizon=s.horizon, population=s.population,
                               iterations=s.iterations, options=p.options if s.optimizer == p.optimizer else {})
    optimizer = make_optimizer(s.optimizer, s.horizon, low, high, **same.optimizer_kwargs())
    me = agent.model_env
    model_env = ModelEnv(me.model, me.termination_fn, me.reward_fn, me.propagation, me.generator, me.use_elites,
                         precision=s.precision)
    return MPCAgent(optimizer, TrajectoryEvaluator(model_env, s.particles), device=agent.device, seed=seed)


def run_episode(agent: Any, s: Setting, env_seed: int, steps: int) -> tuple[float, int, list[float]]:
    """One episode of at most ``steps`` actions planned with ``s``: (return, steps taken, CPU s per action)."""
    from mbrl_po.envs.task import make_env

    env = make_env(agent.task, seed=env_seed)
    mpc = _planner(agent, s, seed=env_seed)
    obs, _ = env.reset(seed=env_seed)
    total, n, cpu = 0.0, 0, []
    try:
        for _ in range(steps):
            t = time.process_time()
            action = mpc.act(obs)
            cpu.append(time.process_time() - t)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            n += 1
            if terminated or truncated:
                break
    finally:
        env.close()
    return total, n, cpu


def summary_rows(rows: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Per setting: mean return (and its spread) over episodes, median ms per action, CPU minutes per 1,000
    env steps, in the order the settings first appear."""
    from benchmarks.harness.stats import mean_ci

    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == name]
        rets = [float(r["return"]) for r in mine]
        m, h, n = mean_ci(rets)
        ms = statistics.median(float(r["ms_per_action"]) for r in mine)
        out.append({"setting": name, "episodes": n, "steps": mine[0]["steps"], "return_mean": m, "return_ci": h,
                    "return_min": min(rets), "return_max": max(rets), "ms_per_action": ms,
                    "cpu_min_per_1k": ms * 1000 / 1000 / 60})
    return out


def write_outputs(out: Path, rows: Sequence[dict[str, str]]) -> tuple[Path, Path]:
    """``sweep.md`` (table) and ``sweep.png`` (return against ms per action) from the rows of sweep.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.harness.stats import format_mean_ci, markdown_table

    first = rows[0]
    md = [
        "# Planner sweep: return against cost per action, one model at a time\n",
        f"Generated by `mbrl-po bench planner-sweep` from `{out / 'sweep.csv'}`; do not edit by hand. For each "
        "model (a PETS run's checkpoint), every setting plans the same episodes (env seeds "
        f"{ENV_SEED_BASE}+episode) with that model. Return: the env's reward summed over the episode, mean ± 95% "
        "t-interval over episodes [min, max]. ms per action: median process CPU time of one planned action (one "
        f"thread). Machine: `{first['machine']}`.\n",
    ]
    models = list(dict.fromkeys((r["model_run"], r["model_step"]) for r in rows))
    for run, step in models:
        mine = [r for r in rows if (r["model_run"], r["model_step"]) == (run, step)]
        md.append(f"## Model: `{run}` at env step {step} (episodes of at most {mine[0]['max_steps']} steps; "
                  f"commit `{mine[0]['commit']}`)\n")
        table = [[s["setting"], s["episodes"], f"{format_mean_ci(s['return_mean'], s['return_ci'], 1)} "
                  f"[{s['return_min']:.0f}, {s['return_max']:.0f}]", f"{s['ms_per_action']:.1f}",
                  f"{s['cpu_min_per_1k']:.1f}"] for s in summary_rows(mine)]
        md.append(markdown_table(["setting (opt-N x P x H x iters)", "episodes", "return", "ms per action",
                                  "CPU min per 1k steps"], table))
    summ = summary_rows([r for r in rows if (r["model_run"], r["model_step"]) == models[-1]])
    (out / "sweep.md").write_text("\n".join(md))
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in summ:
        ax.errorbar([s["ms_per_action"]], [s["return_mean"]],
                    yerr=[[s["return_mean"] - s["return_min"]], [s["return_max"] - s["return_mean"]]],
                    fmt="o", capsize=3, label=s["setting"])
    ax.set_xscale("log")
    ax.set_xlabel("ms of CPU per planned action (log)")
    ax.set_ylabel(f"return over {first['steps']} steps (mean, min-max)")
    ax.set_title(f"Planner settings on the model of {Path(models[-1][0]).name} at step {models[-1][1]}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)
    plt.close(fig)
    return out / "sweep.md", out / "sweep.png"


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.harness.online import append_rows, git_commit, machine_string, read_csv
    from mbrl_po.agents.common import RunDir
    from mbrl_po.agents.pets import PETS

    p = argparse.ArgumentParser(prog="mbrl-po bench planner-sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a PETS run directory with a checkpoint (its model is used)")
    p.add_argument("--settings", nargs="+", required=True, help="e.g. cem-64x5x10x3 icem-100x5x30x3")
    p.add_argument("--episodes", type=int, default=2, help="episodes per setting (default 2)")
    p.add_argument("--episode-steps", type=int, default=1000, help="actions per episode at most (default 1000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", required=True, help="folder of sweep.csv, sweep.md, sweep.png")
    args = p.parse_args(argv)
    settings = [parse_setting(s) for s in args.settings]
    for k in ("episodes", "episode_steps", "threads"):
        if getattr(args, k) < 1:
            raise ValueError(f"{k.replace('_', '-')}: got {getattr(args, k)}, allowed a positive integer")
    torch.set_num_threads(args.threads)
    run = RunDir(Path(args.run))
    agent = PETS.resume(run, progress=False)
    if agent.trainer.fits == 0:
        raise ValueError(f"run: {args.run} has no trained model in its checkpoint; let PETS train first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep.csv"
    done = {(r["setting"], int(r["episode"]), r["model_run"], int(r["max_steps"])) for r in read_csv(csv_path)}
    machine, commit = machine_string(), git_commit()
    for s in settings:
        for e in range(args.episodes):
            key = (s.name, e, str(run.path), args.episode_steps)
            if key in done:
                continue
            ret, n, cpu = run_episode(agent, s, ENV_SEED_BASE + e, args.episode_steps)
            row = {"setting": s.name, "optimizer": s.optimizer, "population": s.population,
                   "particles": s.particles, "horizon": s.horizon, "iterations": s.iterations, "episode": e,
                   "env_seed": ENV_SEED_BASE + e, "max_steps": args.episode_steps, "steps": n, "return": round(ret, 3),
                   "ms_per_action": round(float(np.median(cpu)) * 1e3, 3), "machine": machine,
                   "model_run": str(run.path), "model_step": agent.step, "commit": commit}
            append_rows(csv_path, [row], COLUMNS)
            print(f"{s.name} episode {e}: return {ret:.1f} over {n} steps, {row['ms_per_action']:.1f} ms/action",
                  flush=True)
    rows = read_csv(csv_path)
    rows.sort(key=lambda r: r["model_run"] != str(run.path))  # this run's model last: the plot shows it
    md, png = write_outputs(out, rows)
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
