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
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mbrl_po.agents.common import build_model, build_trainer, model_metrics
from mbrl_po.config import load_agent_config
from mbrl_po.data.datasets import load_dataset
from mbrl_po.training.trainer import EARLY_STOP_METRICS
from mbrl_po.types import TransitionData

COLUMNS = ("metric", "seed", "fit", "rows", "epochs", "stopped_early", "cpu_s", "wall_s", "holdout_nll", "holdout_mse",
           "test_nll", "test_mse", "test_rollout_rmse")


def load(sources: list[str]) -> tuple[TransitionData, np.ndarray, list[str]]:
    """The transitions of ``sources`` in order (``.npz`` files of ``mbrl-po collect``, Minari folders or ids:
    :func:`~mbrl_po.data.datasets.load_dataset`), their (B,) episode ends, and a line per source for the summary
    (its name, rows, mean return and the command that made it, when its provenance says)."""
    parts, lines = [], []
    for src in sources:
        data, prov = load_dataset(src)
        parts.append(data)
        lines.append(f"`{Path(src).name}` ({len(data['obs'])} rows"
                     + (f", mean return {prov['mean_return']:.1f}" if "mean_return" in prov else "")
                     + (f"; `{prov['command']}`" if "command" in prov else "") + ")")
    cat = {k: np.concatenate([d[k] for d in parts])
           for k in ("obs", "actions", "next_obs", "rewards", "terminated", "truncated")}
    data = TransitionData(*(torch.as_tensor(cat[k], dtype=torch.float32)
                            for k in ("obs", "actions", "next_obs", "rewards")),
                          torch.as_tensor(cat["terminated"], dtype=torch.bool))
    return data, cat["terminated"] | cat["truncated"], lines


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
        rows.append({"metric": metric, "seed": seed, "fit": "first" if k == 0 else f"warm {k}", "rows": n,
                     "epochs": len(report.epochs), "stopped_early": int(report.stopped_early),
                     "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "holdout_nll": round(report.holdout_nll, 4),
                     "holdout_mse": round(report.holdout_mse, 6), "test_nll": round(q["model_nll"], 4),
                     "test_mse": round(q["model_mse"], 6), "test_rollout_rmse": round(q["rollout_error"], 4)})
        print(rows[-1], flush=True)
    return rows


WARM_KEYS = ("epochs", "cpu_s", "test_nll", "test_mse", "test_rollout_rmse")


def _warm_means(rows: list[dict], metric: str, seed: int | None = None) -> dict[str, float] | None:
    warm = [r for r in rows if r["metric"] == metric and r["fit"] != "first" and seed in (None, int(r["seed"]))]
    return {"n": len(warm), **{k: statistics.fmean(float(r[k]) for r in warm) for k in WARM_KEYS}} if warm else None


def summary(rows: list[dict], runs: list[str], data: list[str] = (), test: list[str] = ()) -> str:
    """Markdown: every fit, the means over the warm refits per criterion and per seed, and MSE − NLL per seed.

    Args:
        rows: refits.csv rows (each: metric, seed, fit, ...).
        runs: one line per run that wrote rows (its command, machine and time).
        data, test: the sources fitted on and tested on (:func:`load`'s lines).
    """
    out = ["# Early stopping of MBPO's refits: held-out NLL against held-out MSE (Hopper-v5 data)\n",
           "![every fit](refits.png)\n",
           "Generated from `refits.csv`, whose rows these runs wrote (each appends the seeds it ran):\n",
           *(f"- {r}" for r in runs), "",
           "One torch thread. Model and trainer: `agents/mbpo.toml` + `envs/hopper.toml` (E=7, 5 elites, 4x200, "
           "lr 1e-3, batch 256, max_epochs 50, patience 5, 1% relative improvement), only "
           "`model.early_stop_metric` differs; per seed, both start from the same weights. Test metrics: the elites on "
           "transitions no fit saw (`model_metrics`: NLL per dim, next-state MSE, H-step open-loop RMSE).\n",
           "Fitted on, in order: " + "; ".join(data) + ". Test set: " + "; ".join(test) + ".\n",
           "| early_stop_metric | seed | fit | rows | epochs | CPU s | test NLL/dim | test MSE | test rollout RMSE |",
           "|:---|---:|:---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['metric']} | {r['seed']} | {r['fit']} | {r['rows']} | {r['epochs']} | "
                   f"{float(r['cpu_s']):.1f} | {float(r['test_nll']):.3f} | {float(r['test_mse']):.5f} | "
                   f"{float(r['test_rollout_rmse']):.4f} |")
    out.append("")
    out.append("| early_stop_metric | warm refits | epochs (mean) | CPU s per refit (mean) | test NLL/dim (mean) | "
               "test MSE (mean) | test rollout RMSE (mean) |")
    out.append("|:---|---:|---:|---:|---:|---:|---:|")
    for m in EARLY_STOP_METRICS:
        mean = _warm_means(rows, m)
        if mean is not None:
            out.append(f"| {m} | {mean['n']} | {mean['epochs']:.1f} | {mean['cpu_s']:.1f} | {mean['test_nll']:.3f} | "
                       f"{mean['test_mse']:.5f} | {mean['test_rollout_rmse']:.4f} |")
    seeds = sorted({int(r["seed"]) for r in rows})
    paired = [(s, _warm_means(rows, "mse", s), _warm_means(rows, "nll", s)) for s in seeds]
    paired = [(s, a, b) for s, a, b in paired if a is not None and b is not None]
    if paired:
        out += ["", "Per seed, MSE criterion minus NLL criterion (means over the warm refits; test metrics: negative "
                "is better for MSE):", "",
                "| seed | Δ epochs | Δ CPU s per refit | Δ test NLL/dim | Δ test MSE | Δ test rollout RMSE |",
                "|---:|---:|---:|---:|---:|---:|"]
        for s, a, b in paired:
            out.append(f"| {s} | {a['epochs'] - b['epochs']:+.1f} | {a['cpu_s'] - b['cpu_s']:+.1f} | "
                       f"{a['test_nll'] - b['test_nll']:+.3f} | {a['test_mse'] - b['test_mse']:+.5f} | "
                       f"{a['test_rollout_rmse'] - b['test_rollout_rmse']:+.4f} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Epochs, CPU seconds and test MSE / rollout RMSE of every fit, per criterion and seed, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("epochs", "epochs"), ("cpu_s", "CPU s"), ("test_mse", "test MSE"),
              ("test_rollout_rmse", "test H-step rollout RMSE"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0))
    colors = {"nll": "tab:blue", "mse": "tab:orange"}
    for (key, label), ax in zip(panels, axes, strict=True):
        for m in EARLY_STOP_METRICS:
            for seed in sorted({int(r["seed"]) for r in rows if r["metric"] == m}):
                pts = [(int(r["rows"]), float(r[key])) for r in rows if r["metric"] == m and int(r["seed"]) == seed]
                ax.plot(*zip(*pts, strict=True), marker="o", color=colors[m], alpha=0.5 + 0.5 * (seed == 0),
                        label=f"{m} s{seed}")
        ax.set_xlabel("rows fitted on")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="early_stop_metric", title_fontsize=7)
    fig.suptitle("MBPO refits on Hopper-v5 data: early stopping on held-out NLL vs MSE", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True,
                   help="training transitions, in order (.npz of `mbrl-po collect`, or Minari folders or ids)")
    p.add_argument("--test", nargs="+", required=True, help="test transitions (the same kinds)")
    p.add_argument("--start", type=int, default=15000, help="rows of the first fit")
    p.add_argument("--refits", type=int, default=4, help="warm refits after it")
    p.add_argument("--every", type=int, default=250, help="rows added before each refit")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="model/trainer seeds (each criterion each)")
    p.add_argument("--append", action="store_true",
                   help="keep the rows of --out's refits.csv and run only the (metric, seed) pairs it lacks")
    p.add_argument("--horizon", type=int, default=10, help="H of the test rollout RMSE")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap per fit (default: the config's, 50)")
    p.add_argument("--metrics", nargs="+", default=list(EARLY_STOP_METRICS), choices=EARLY_STOP_METRICS)
    p.add_argument("--out", type=Path, default=Path("docs/results/early_stop"))
    p.add_argument("--machine", default="", help="the machine, for the summary's header")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data, _, data_lines = load(a.data)
    test, test_ends, test_lines = load(a.test)
    need = a.start + a.refits * a.every
    if need > len(data):
        p.error(f"--start + --refits x --every = {need} rows, the data has {len(data)}")
    if a.start < 1 or a.refits < 0 or a.every < 1:
        p.error("--start and --every must be >= 1, --refits >= 0")
    table, log = a.out / "refits.csv", a.out / "runs.txt"
    rows, runs = [], []
    if a.append and table.exists():
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        runs = log.read_text().splitlines() if log.exists() else []
    schedule = sorted({int(r["rows"]) for r in rows})
    if rows and schedule != [a.start + k * a.every for k in range(a.refits + 1)]:
        p.error(f"--append: {table} holds fits on {schedule} rows, this schedule is another; use a new --out")
    done = {(r["metric"], int(r["seed"])) for r in rows}
    for seed in a.seeds:
        for m in a.metrics:
            if (m, seed) not in done:
                rows += replay(m, data, test, test_ends, a.start, a.refits, a.every, seed, a.horizon, a.max_epochs)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    command = "mbrl-po bench early-stop " + shlex.join(sys.argv[1:] if argv is None else argv)
    runs.append(f"`{command}` on {a.machine or 'an unnamed machine'}, "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    log.write_text("\n".join(runs) + "\n")
    (a.out / "summary.md").write_text(summary(rows, runs, data_lines, test_lines))
    plot(rows, a.out / "refits.png")
    print(f"wrote {a.out / 'refits.csv'}, {a.out / 'summary.md'} and {a.out / 'refits.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
