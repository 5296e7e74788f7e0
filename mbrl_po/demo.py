"""``mbrl-po demo``: a short MBRL comparison of MLE and PG dynamics models, on CPU, with embedded defaults.

PETS on InvertedPendulum-v5 twice, once with the model trained by Gaussian NLL and once by the bilevel PG
objective (learned U), same seed and budget. Prints a table and writes a learning-curve plot.
"""

from __future__ import annotations

import time
from pathlib import Path

from mbrl_po.agents.common import RunDir
from mbrl_po.agents.pets import PETS
from mbrl_po.config import load_agent_config

DEMO_VARIANTS = (("nll", {"name": "nll"}), ("pg-learned", {"name": "pg", "reward_matrix": "learned"}))
DEMO_STEPS = 1000


def run_demo(out: str | Path, steps: int | None = None, seed: int = 0) -> list[dict[str, float | str]]:
    """Run the comparison into ``out`` and return one row per objective."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float | str]] = []
    runs: list[tuple[str, RunDir]] = []
    for label, objective in DEMO_VARIANTS:
        cfg = load_agent_config(
            "pets", "inverted_pendulum",
            {"steps": steps or DEMO_STEPS, "seed": seed, "device": "cpu", "objective": objective},
        )
        run = RunDir.create(out, cfg, name=f"pets-inverted_pendulum-{label}-s{seed}-{time.strftime('%H%M%S')}")
        print(f"[demo] PETS on {cfg.env} with objective {label}: {cfg.steps} env steps -> {run.path}", flush=True)
        result = PETS(cfg, run).train()
        metrics = run.read_metrics()
        episodes = [float(r["episode_return"]) for r in metrics if r["episode_return"]]
        nll = [float(r["model_nll"]) for r in metrics if r["model_nll"]]
        evals = [float(r["eval_return"]) for r in metrics if r["eval_return"]]
        rows.append({
            "objective": label,
            "final_eval_return": evals[-1] if evals else float("nan"),
            "best_eval_return": max(evals) if evals else float("nan"),
            "best_episode_return": max(episodes) if episodes else float("nan"),
            "last_model_nll": nll[-1] if nll else float("nan"),
            "wall_s": result["wall_time"],
        })
        runs.append((label, run))
    _print_table(rows)
    plot = _plot(runs, out / "demo_learning_curves.png")
    print(f"[demo] plot: {plot}")
    return rows


def _print_table(rows: list[dict[str, float | str]]) -> None:
    cols = list(rows[0])
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    print()


def _plot(runs: list[tuple[str, RunDir]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, run in runs:
        rows = run.read_metrics()
        ep = [(int(r["env_step"]), float(r["episode_return"])) for r in rows if r["episode_return"]]
        ev = [(int(r["env_step"]), float(r["eval_return"])) for r in rows if r["eval_return"]]
        line = ax.plot(*zip(*ep, strict=True), ".", alpha=0.5, label=f"{label}: episodes")[0] if ep else None
        if ev:
            ax.plot(*zip(*ev, strict=True), "o-", color=None if line is None else line.get_color(),
                    label=f"{label}: eval")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title("PETS on InvertedPendulum-v5: MLE vs PG dynamics model", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
