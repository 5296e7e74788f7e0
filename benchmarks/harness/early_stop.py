"""Early stopping on held-out NLL against held-out MSE (MBPO's criterion) for MBPO's model refits on Hopper-v5.

MBPO refits its ensemble every 250 env steps until early stopping; the refits are about half of an MBPO run's
wall time by 25-40k steps (docs/results/README.md, "Long runs"). The MBPO paper's code and mbrl-lib stop (and pick
elites) on the held-out MSE; mbrl-po's default is the held-out NLL (``model.early_stop_metric``). This replays
the refit schedule on a fixed dataset for each criterion, from the same initial weights and seed: a first fit
from scratch on the first ``--start`` rows, then ``--refits`` warm refits, each with ``--every`` more rows (the
agent's schedule: same model, optimizer and trainer). After each fit it scores the elites on a test set of
transitions no fit has seen (``model_metrics``, as the agents log them). It writes one row per fit and a
summary (epochs, CPU seconds per refit, test NLL / MSE / H-step rollout RMSE) into ``--out``.

usage: mbrl-po bench early-stop --data A.npz B.npz --test C.npz [--start 15000] [--refits 4]
       (or python -m benchmarks.harness.early_stop ...)
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mbrl_po.agents.common import build_model, build_trainer, model_metrics
from mbrl_po.config import load_agent_config
from mbrl_po.training.trainer import EARLY_STOP_METRICS
from mbrl_po.types import TransitionData

COLUMNS = ("metric", "fit", "rows", "epochs", "stopped_early", "cpu_s", "wall_s", "holdout_nll", "holdout_mse",
           "test_nll", "test_mse", "test_rollout_rmse")


def provenance(paths: list[Path]) -> list[str]:
    """For each file: its name, rows and the ``mbrl-po collect`` command that made it (when it says)."""
    out = []
    for p in paths:
        d = np.load(p)
        prov = json.loads(str(d["__provenance__"])) if "__provenance__" in d.files else {}
        out.append(f"`{p.name}` ({len(d['obs'])} rows" + (f", mean return {prov['mean_return']:.1f}"
                                                         if "mean_return" in prov else "")
                   + (f"; `{prov['command']}`" if "command" in prov else "") + ")")
    return out


def load_npz(paths: list[Path]) -> tuple[TransitionData, np.ndarray]:
    """The transitions of ``paths`` (``mbrl-po collect --format npz`` files) in order, and (B,) episode ends."""
    parts = [np.load(p) for p in paths]
    cat = {k: np.concatenate([d[k] for d in parts]) for k in ("obs", "actions", "next_obs", "rewards", "terminated",
                                                                "truncated")}
    data = TransitionData(*(torch.as_tensor(cat[k], dtype=torch.float32)
                            for k in ("obs", "actions", "next_obs", "rewards")),
                          torch.as_tensor(cat["terminated"], dtype=torch.bool))
    return data, cat["terminated"] | cat["truncated"]


def replay(metric: str, data: TransitionData, test: TransitionData, test_ends: np.ndarray, start: int, refits: int,
           every: int, seed: int, horizon: int, max_epochs: int | None = None) -> list[dict[str, float | str | int]]:
    """One criterion over the refit schedule; a row per fit. ``max_epochs``: the config's (50) when None."""
    model_cfg = {"early_stop_metric": metric, **({} if max_epochs is None else {"max_epochs": max_epochs})}
    cfg = load_agent_config("mbpo", "hopper", {"model": model_cfg, "seed": seed})
    torch.manual_seed(seed)
    model = build_model(cfg, data.obs.shape[1], data.actions.shape[1], learn_reward=True, device=torch.device("cpu"))
    trainer = build_trainer(cfg, model)
    rows = []
    for k in range(refits + 1):
        n = start + k * every
        c0, w0 = time.process_time(), time.perf_counter()
        report = trainer.fit(data.index(torch.arange(n)))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        with torch.no_grad():
            q = model_metrics(model, test, test_ends, horizon)
        rows.append({"metric": metric, "fit": "first" if k == 0 else f"warm {k}", "rows": n,
                     "epochs": len(report.epochs), "stopped_early": int(report.stopped_early),
                     "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "holdout_nll": round(report.holdout_nll, 4),
                     "holdout_mse": round(report.holdout_mse, 6), "test_nll": round(q["model_nll"], 4),
                     "test_mse": round(q["model_mse"], 6), "test_rollout_rmse": round(q["rollout_error"], 4)})
        print(rows[-1], flush=True)
    return rows


def summary(rows: list[dict], machine: str, command: str, data: list[str] = (), test: list[str] = ()) -> str:
    """Markdown: per criterion, the first fit and the mean over the warm refits; ``data``/``test``: the files."""
    out = ["# Early stopping of MBPO's refits: held-out NLL against held-out MSE (Hopper-v5 data)\n",
           f"Generated by `{command}` on {machine}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
           "One torch thread. Model and trainer: `agents/mbpo.toml` + `envs/hopper.toml` (E=7, 5 elites, 4x200, "
           "lr 1e-3, batch 256, max_epochs 50, patience 5, 1% relative improvement), only "
           "`model.early_stop_metric` differs; same initial weights and seed. Test metrics: the elites on "
           "transitions no fit saw (`model_metrics`: NLL per dim, next-state MSE, H-step open-loop RMSE).\n",
           "Fitted on, in order: " + "; ".join(data) + ". Test set: " + "; ".join(test) + ".\n",
           "| early_stop_metric | fit | rows | epochs | CPU s | test NLL/dim | test MSE | test rollout RMSE |",
           "|:---|:---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['metric']} | {r['fit']} | {r['rows']} | {r['epochs']} | {r['cpu_s']:.1f} | "
                   f"{r['test_nll']:.3f} | {r['test_mse']:.5f} | {r['test_rollout_rmse']:.4f} |")
    out.append("")
    out.append("| early_stop_metric | warm refits | epochs (mean) | CPU s per refit (mean) | test NLL/dim (mean) | "
               "test MSE (mean) | test rollout RMSE (mean) |")
    out.append("|:---|---:|---:|---:|---:|---:|---:|")
    for m in EARLY_STOP_METRICS:
        warm = [r for r in rows if r["metric"] == m and r["fit"] != "first"]
        if not warm:
            continue
        mean = {k: statistics.fmean(float(r[k]) for r in warm)
                for k in ("epochs", "cpu_s", "test_nll", "test_mse", "test_rollout_rmse")}
        out.append(f"| {m} | {len(warm)} | {mean['epochs']:.1f} | {mean['cpu_s']:.1f} | {mean['test_nll']:.3f} | "
                   f"{mean['test_mse']:.5f} | {mean['test_rollout_rmse']:.4f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", type=Path, required=True, help="training transitions (.npz), in order")
    p.add_argument("--test", nargs="+", type=Path, required=True, help="test transitions (.npz)")
    p.add_argument("--start", type=int, default=15000, help="rows of the first fit")
    p.add_argument("--refits", type=int, default=4, help="warm refits after it")
    p.add_argument("--every", type=int, default=250, help="rows added before each refit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon", type=int, default=10, help="H of the test rollout RMSE")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap per fit (default: the config's, 50)")
    p.add_argument("--metrics", nargs="+", default=list(EARLY_STOP_METRICS), choices=EARLY_STOP_METRICS)
    p.add_argument("--out", type=Path, default=Path("docs/results/early_stop"))
    p.add_argument("--machine", default="", help="the machine, for the summary's header")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data, _ = load_npz(a.data)
    test, test_ends = load_npz(a.test)
    need = a.start + a.refits * a.every
    if need > len(data):
        p.error(f"--start + --refits x --every = {need} rows, the data has {len(data)}")
    if a.start < 1 or a.refits < 0 or a.every < 1:
        p.error("--start and --every must be >= 1, --refits >= 0")
    rows = []
    for m in a.metrics:
        rows += replay(m, data, test, test_ends, a.start, a.refits, a.every, a.seed, a.horizon, a.max_epochs)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "refits.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    command = "python -m benchmarks.harness.early_stop " + shlex.join(sys.argv[1:] if argv is None else argv)
    (a.out / "summary.md").write_text(summary(rows, a.machine or "unnamed machine", command.strip(),
                                               provenance(a.data), provenance(a.test)))
    print(f"wrote {a.out / 'refits.csv'} and {a.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
