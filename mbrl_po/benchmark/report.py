"""``mbrl-po report SUITE``: ``docs/results/<SUITE>/summary.md`` and one learning-curve PNG per task, from
``runs.csv`` alone (written by ``mbrl-po bench online``; nothing else is read).

Per task, the tables give the evaluation return at fixed env-step budgets: each trial contributes its last
evaluation at or before the budget, and only trials that reached the budget count. Cells are mean ± the 95%
Student-t interval over seeds, with n seeds. A group is agent x objective (x config hash, when one label was
run with several configs). Budgets of a task: the final env step of each group on it, plus half the largest.
Besides the returns: the model metrics at the final budget, and for every PG variant its seed-paired
difference to the same agent's ``nll`` (positive: PG is better) with a 95% interval.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mbrl_po.benchmark.online import ROW_COLUMNS, read_csv
from mbrl_po.benchmark.stats import format_mean_ci, markdown_table, mean_ci

REQUIRED = ("agent", "env_id", "task", "objective", "u_option", "seed", "env_step", "eval_return", "trial_id",
            "config_hash")


@dataclass
class Group:
    """The trials of one agent x objective (x config) on one task."""

    task: str
    agent: str
    objective: str
    config_hash: str
    label: str = ""
    curves: dict[int, dict[int, dict[str, str]]] = field(default_factory=dict)  # seed -> env_step -> row

    @property
    def final_step(self) -> int:
        return max((max(c) for c in self.curves.values()), default=0)

    def at(self, budget: int, column: str = "eval_return") -> dict[int, float]:
        """seed -> ``column`` at the last evaluation <= budget, for seeds whose run reached ``budget``."""
        out = {}
        for seed, curve in self.curves.items():
            if max(curve) < budget:
                continue
            step = max(s for s in curve if s <= budget)
            v = curve[step].get(column, "")
            if v not in ("", None):
                out[seed] = float(v)
        return out


def objective_label(row: dict[str, str]) -> str:
    if row["objective"] in ("none", ""):
        return "model-free"
    return row["objective"] if not row.get("u_option") else f"{row['objective']}-{row['u_option']}"


def load_rows(path: str | Path) -> list[dict[str, str]]:
    """runs.csv rows, checked for the required columns, deduplicated on (trial_id, env_step) (last wins)."""
    rows = read_csv(path)
    if not rows:
        raise ValueError(f"runs.csv: {path} is missing or empty; run `mbrl-po bench online SUITE` first")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ValueError(f"runs.csv: {path} lacks columns {missing}; allowed header {list(ROW_COLUMNS)}")
    dedup: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        dedup[(r["trial_id"], r["env_step"])] = r
    return list(dedup.values())


def build_groups(rows: Sequence[dict[str, str]]) -> dict[str, list[Group]]:
    """task -> its groups (ordered: agent, then nll before PG variants, model-free last)."""
    groups: dict[tuple[str, str, str, str], Group] = {}
    for r in rows:
        key = (r["task"], r["agent"], objective_label(r), r["config_hash"])
        g = groups.setdefault(key, Group(*key))
        g.curves.setdefault(int(r["seed"]), {})[int(r["env_step"])] = r
    by_task: dict[str, list[Group]] = defaultdict(list)
    for g in groups.values():
        by_task[g.task].append(g)
    order = {"pets": 0, "mbpo": 1, "sac": 2}
    for gs in by_task.values():
        names = defaultdict(list)
        for g in gs:
            names[(g.agent, g.objective)].append(g)
        for (agent, obj), same in names.items():
            for g in same:
                g.label = f"{agent} {obj}" + (f" [{g.config_hash}]" if len(same) > 1 else "")
        gs.sort(key=lambda g: (order.get(g.agent, 9), g.agent, g.objective != "nll", g.objective, g.config_hash))
    return dict(sorted(by_task.items()))


def budgets(groups: Sequence[Group]) -> list[int]:
    """The final env step of each group, plus half the largest (snapped to an evaluated step)."""
    finals = sorted({g.final_step for g in groups})
    steps = sorted({s for g in groups for c in g.curves.values() for s in c})
    half = finals[-1] / 2
    below = [s for s in steps if s <= half]
    out = set(finals) | ({below[-1]} if below else set())
    return sorted(out)


def _cell(values: dict[int, float], digits: int = 1) -> str:
    if not values:
        return "—"
    m, h, n = mean_ci(values.values())
    return f"{format_mean_ci(m, h, digits)} (n={n})"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """Mean and 95% half-width of ``a[s] - b[s]`` over the seeds s in both."""
    seeds = sorted(set(a) & set(b))
    return mean_ci([a[s] - b[s] for s in seeds])


def _verdict(m: float, h: float, n: int, lower_is_better: bool = False) -> str:
    if math.isnan(m):
        return "n/a"
    if n < 2 or math.isnan(h):
        return "too few seeds"
    if abs(m) <= h:
        return "inside the CI"
    better = m < 0 if lower_is_better else m > 0
    return "PG better" if better else "PG worse"


def summarize(rows: Sequence[dict[str, str]], suite: str, source: str) -> str:
    """The markdown of summary.md."""
    by_task = build_groups(rows)
    commits = defaultdict(set)
    machines = defaultdict(set)
    for r in rows:
        commits[r.get("commit", "") or "unknown"].add(r["trial_id"])
        machines[r.get("machine", "") or "unknown"].add(r["trial_id"])
    n_trials = len({r["trial_id"] for r in rows})
    out = [
        f"# Suite `{suite}`: online results\n",
        f"Generated by `mbrl-po report {suite}` from `{source}` alone ({len(rows)} rows, {n_trials} finished "
        f"trials) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; do not edit by hand.\n",
        "Eval return at fixed env-step budgets: each trial's last evaluation at or before the budget (trials that"
        " stopped earlier are not counted); mean ± 95% Student-t interval over seeds, n = seeds. "
        "'—': no trial reached that budget.\n",
        "Commits: " + ", ".join(f"`{c}` ({len(t)} trials)" for c, t in sorted(commits.items())) + "  ",
        "Machines: " + "; ".join(f"`{m}` ({len(t)} trials)" for m, t in sorted(machines.items())) + "\n",
    ]
    for task, groups in by_task.items():
        env_ids = sorted({r["env_id"] for g in groups for c in g.curves.values() for r in c.values()})
        variants = sorted({r.get("env_variant", "") for g in groups for c in g.curves.values() for r in c.values()}
                          - {""})
        bs = budgets(groups)
        out.append(f"## {task}: `{'`, `'.join(env_ids)}`" + (f" with {'; '.join(variants)}" if variants else ""))
        out.append("")
        out.append(f"![learning curves]({plot_name(task)})\n")
        table = [[g.label, *(_cell(g.at(b)) for b in bs)] for g in groups]
        out.append(markdown_table(["agent objective", *(f"return @ {b} steps" for b in bs)], table))
        # model quality and PG-vs-NLL at each agent's own final budget (agents of one task may run for
        # different numbers of steps, e.g. PETS 1000 and MBPO 2000 on InvertedPendulum)
        finals = {g.agent: max(x.final_step for x in groups if x.agent == g.agent) for g in groups}
        mrows = []
        for g in groups:
            if g.agent == "sac":
                continue
            mrows.append([g.label, str(finals[g.agent]),
                          *(_cell(g.at(finals[g.agent], c), 4) for c in ("model_nll", "model_mse", "rollout_error"))])
        if mrows:
            out.append("Model quality at each agent's final budget (last scoring on fresh real data before then; "
                       "lower is better): NLL per dim (nats), one-step MSE, H-step open-loop RMSE.\n")
            out.append(markdown_table(["agent objective", "at step", "model NLL", "model MSE", "rollout RMSE"],
                                      mrows))
        drows = []
        for g in groups:
            if not g.objective.startswith("pg"):
                continue
            base = [b for b in groups if b.agent == g.agent and b.objective == "nll"]
            if len(base) != 1:
                continue
            final = finals[g.agent]
            for col, lower in (("eval_return", False), ("rollout_error", True)):
                m, h, n = paired_difference(g.at(final, col), base[0].at(final, col))
                if n:
                    drows.append([f"{g.label} − {base[0].label}", str(final), col, f"{format_mean_ci(m, h, 3)}", n,
                                  _verdict(m, h, n, lower)])
        if drows:
            out.append("PG minus NLL at each agent's final budget, paired by seed (return: positive is better for "
                       "PG; rollout RMSE: negative is better for PG).\n")
            out.append(markdown_table(["comparison", "at step", "metric", "mean difference ± 95% CI", "n pairs",
                                       "verdict"], drows))
    return "\n".join(out)


def plot_name(task: str) -> str:
    return f"curve_{re.sub(r'[^A-Za-z0-9_.-]+', '_', task)}.png"


def plot_task(task: str, groups: Sequence[Group], path: Path) -> Path:
    """Eval return vs env steps: per group the mean over seeds with its 95% band (where n >= 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for g in groups:
        steps = sorted({s for c in g.curves.values() for s in c})
        xs, ms, lo, hi, ns = [], [], [], [], []
        for s in steps:
            vals = [float(c[s]["eval_return"]) for c in g.curves.values() if s in c]
            m, h, n = mean_ci(vals)
            xs.append(s)
            ms.append(m)
            ns.append(n)
            lo.append(m - h if n > 1 else m)
            hi.append(m + h if n > 1 else m)
        style = "--" if g.agent == "sac" else "-"
        (line,) = ax.plot(xs, ms, style, marker="o", ms=3, label=f"{g.label} (n={max(ns)})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    env_ids = sorted({r["env_id"] for g in groups for c in g.curves.values() for r in c.values()})
    ax.set_title(f"{task} ({', '.join(env_ids)}): eval return, mean ± 95% CI", fontsize=9)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results_dir: str | Path, suite: str) -> tuple[Path, list[Path]]:
    """Regenerate ``<results_dir>/<suite>/summary.md`` and its PNGs from runs.csv.

    Returns:
        (summary.md, the PNG paths).
    """
    folder = Path(results_dir) / suite
    runs_csv = folder / "runs.csv"
    rows = load_rows(runs_csv)
    by_task = build_groups(rows)
    pngs = [plot_task(task, gs, folder / plot_name(task)) for task, gs in by_task.items()]
    summary = folder / "summary.md"
    summary.write_text(summarize(rows, suite, str(runs_csv)))
    return summary, pngs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mbrl-po report", description=__doc__.split("\n\n")[0])
    p.add_argument("suite", help="results folder name (docs/results/<suite>/runs.csv)")
    p.add_argument("--results-dir", default="docs/results", help="parent of <suite>/runs.csv")
    args = p.parse_args(argv)
    summary, pngs = write_report(args.results_dir, args.suite)
    print(f"wrote {summary} and {len(pngs)} plot(s): {', '.join(p.name for p in pngs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
