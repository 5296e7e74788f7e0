"""stable-baselines3's own ``SAC.learn`` at the settings of mbrl-po's ``sac`` agent: a check of our SAC loop.

The ``sac`` agent keeps SB3's ``SAC`` (policy, critics, optimizers, update) but replaces SB3's collection loop
with the package's (:class:`mbrl_po.agents.SACAgent`: own replay buffer, random ``loop.init_steps``, checkpoints).
This script trains SB3's SAC with SB3's *own* loop and buffer on the same task, with the same hyperparameters
(read from the resolved ``sac`` agent config) and ``learning_starts = loop.init_steps``, and scores it with the
agent's protocol (``loop.eval_episodes`` deterministic episodes every ``--eval-every`` steps). If the two curves
differ beyond seed noise, our loop is at fault; if they agree, the returns are SB3 SAC's at these settings.

    python -m benchmarks.peers.sb3_sac --env hopper --steps 40000 --seeds 0 1 --out docs/results/locomotion/sb3_sac

Writes ``<out>/sb3_sac_<env>.csv`` (seed, env_step, eval_return, wall_s), one row per evaluation, appended as
they come. A seed whose rows already reach ``--steps`` is skipped; SB3's loop cannot resume, so a seed with
rows short of it is refused (delete its rows to rerun it).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import SAC

from mbrl_po.config import load_agent_config
from mbrl_po.envs.task import load_task, make_env

EVAL_SEED_OFFSET = 10_000  # the agents' eval seeds: seed + offset + step + episode


def evaluate(model: SAC, env, episodes: int, seed: int) -> float:  # noqa: ANN001
    """Mean return of ``episodes`` deterministic episodes, reset with seeds ``seed, seed + 1, ...``."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns))


def run_seed(env_name: str, seed: int, steps: int, eval_every: int, out_csv: Path) -> None:
    """Train SB3's SAC for ``steps`` env steps with seed ``seed``, appending one eval row per ``eval_every``."""
    cfg = load_agent_config("sac", env_name, {"seed": seed, "steps": steps})
    s, loop = cfg.sac, cfg.loop
    task = load_task(env_name)
    env, eval_env = make_env(task, seed=seed), make_env(task)
    model = SAC("MlpPolicy", env, learning_rate=s.learning_rate, buffer_size=min(steps, s.buffer_size),
                learning_starts=loop.init_steps, batch_size=s.batch_size, tau=s.tau, gamma=s.gamma,
                train_freq=1, gradient_steps=s.updates_per_step, target_entropy=s.target_entropy,
                policy_kwargs={"net_arch": list(s.net_arch)}, seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    new = not out_csv.exists()
    with out_csv.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["seed", "env_step", "eval_return", "wall_s"])
        while model.num_timesteps < steps:
            model.learn(eval_every, reset_num_timesteps=False)
            step = model.num_timesteps
            ret = evaluate(model, eval_env, loop.eval_episodes, seed + EVAL_SEED_OFFSET + step)
            w.writerow([seed, step, f"{ret:.3f}", f"{time.perf_counter() - t0:.1f}"])
            f.flush()
            print(f"seed={seed} step={step} eval={ret:.1f} ({time.perf_counter() - t0:.0f}s)", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper", help="task name (envs/<name>.toml)")
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="docs/results/locomotion/sb3_sac")
    args = p.parse_args(argv)
    if args.steps <= 0 or args.eval_every <= 0:
        p.error(f"--steps and --eval-every: got {args.steps}, {args.eval_every}, allowed positive integers")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    out_csv = out / f"sb3_sac_{args.env}.csv"
    reached: dict[int, int] = {}
    if out_csv.exists():
        with out_csv.open(newline="") as f:
            for r in csv.DictReader(f):
                reached[int(r["seed"])] = max(reached.get(int(r["seed"]), 0), int(r["env_step"]))
    for seed in args.seeds:
        if reached.get(seed, 0) >= args.steps:
            print(f"seed={seed}: already at step {reached[seed]} in {out_csv}, skipped")
            continue
        if seed in reached:
            raise SystemExit(f"seed {seed}: {out_csv} has rows up to step {reached[seed]} < --steps {args.steps}; "
                             f"SB3's loop cannot resume: delete that seed's rows to rerun it")
        run_seed(args.env, seed, args.steps, args.eval_every, out_csv)


if __name__ == "__main__":
    main()
