"""``mbrl-po report SUITE``: ``docs/results/<SUITE>/summary.md`` and one learning-curve PNG per task, from
``runs.csv`` alone (written by ``mbrl-po bench online``), plus ``partial.csv`` while long trials still run
(``mbrl-po bench online SUITE --snapshot``; their rows are marked as running) and the published reference
curves of ``benchmarks/anchors/published.csv`` for the tasks they cover.

Per task, the tables give the evaluation return at fixed env-step budgets: each trial contributes its last
evaluation at or before the budget, and only trials that reached the budget count. Cells are mean ± the 95%
Student-t interval over seeds, with n seeds. A group is agent x objective (x config hash, when one label was
run with several configs). Budgets of a task: the final env step of each group on it, plus half the largest.
Besides the returns: every seed's own curve summary (last evaluation, mean over the last 10% of its steps,
best, wall minutes per 1,000 env steps of its one-core run), the model metrics at the final budget, and for
every PG variant its seed-paired difference to the same agent's ``nll`` (positive: PG is better) with a 95%
interval. Where an agent ran NLL and another model objective, every seed's mean return per window of env steps
(:func:`equal_step_table`), lost attempts beside the trial of the same seed: the early curves, side by side.
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

import numpy as np

from benchmarks.harness.online import ROW_COLUMNS, read_csv
from benchmarks.harness.stats import format_mean_ci, markdown_table, mean_ci

ANCHORS_CSV = Path(__file__).resolve().parents[2] / "benchmarks" / "anchors" / "published.csv"
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


def load_rows(path: str | Path, keep: set[str] | None = None) -> list[dict[str, str]]:
    """runs.csv rows, checked for the required columns, deduplicated on (trial_id, env_step) (last wins);
    only the trials in ``keep`` when given."""
    rows = [r for r in read_csv(path) if keep is None or r["trial_id"] in keep]
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


#: budgets that published curves are read at, shown wherever a group reached them
ROUND_BUDGETS = (10_000, 20_000, 50_000, 100_000, 125_000, 200_000, 300_000)


def budgets(groups: Sequence[Group]) -> list[int]:
    """The final env step of each group, half the largest (snapped to an evaluated step), and the
    :data:`ROUND_BUDGETS` that some group has evaluated."""
    finals = sorted({g.final_step for g in groups})
    steps = sorted({s for g in groups for c in g.curves.values() for s in c})
    half = finals[-1] / 2
    below = [s for s in steps if s <= half]
    out = set(finals) | ({below[-1]} if below else set()) | (set(ROUND_BUDGETS) & set(steps))
    return sorted(out)


@dataclass(frozen=True)
class Anchor:
    """A published reference curve (or single point) of one agent on one env family (``Hopper``, ...)."""

    env: str
    agent: str
    source: str
    points: tuple[tuple[int, float, str], ...]  # (env step, mean return, "n=<seeds>" or "")

    def at(self, budget: int) -> float | None:
        """The mean return at ``budget``: interpolated linearly between the two points around it when they are
        at most a quarter of ``budget`` apart, else a point within 10% below it; None when the curve has no
        data near ``budget``."""
        below = [p for p in self.points if p[0] <= budget]
        above = [p for p in self.points if p[0] >= budget]
        if below and above:
            (s0, r0, _), (s1, r1, _) = below[-1], above[0]
            if s1 == s0:
                return r0
            if s1 - s0 <= 0.25 * budget:
                return float(np.interp(budget, [s0, s1], [r0, r1]))
        if below and below[-1][0] >= 0.9 * budget:
            return below[-1][1]
        return None


def env_family(env_id: str) -> str:
    """``Hopper-v5`` -> ``Hopper`` (anchors are matched on the family: they were run on older versions)."""
    return re.sub(r"-v\d+$", "", env_id)


def load_anchors(path: str | Path | None = None) -> list[Anchor]:
    """The curves of ``benchmarks/anchors/published.csv`` (columns env, agent, source, step, return_mean,
    return_min, return_max, n_seeds); none when the file is absent (an installed package without a checkout)."""
    rows = read_csv(ANCHORS_CSV if path is None else path, whole_lines=False)
    curves: dict[tuple[str, str, str], list[tuple[int, float, str]]] = defaultdict(list)
    for r in rows:
        n = f"n={r['n_seeds']}" if r.get("n_seeds") else ""
        curves[(r["env"], r["agent"], r["source"])].append((int(float(r["step"])), float(r["return_mean"]), n))
    return [Anchor(e, a, src, tuple(sorted(pts))) for (e, a, src), pts in curves.items()]


def lost_attempts(lost: Sequence[dict[str, str]]) -> dict[str, list[tuple[tuple[str, int, int], Group]]]:
    """task -> ((group label, seed, attempt), a one-seed Group holding that attempt's curve) for lost.csv rows,
    labelled as :func:`build_groups` labels the finished and running trials."""
    out: dict[str, list[tuple[tuple[str, int, int], Group]]] = defaultdict(list)
    by_attempt: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in lost:
        by_attempt[(r["trial_id"], r["lost_attempt"])].append(r)
    for (_, att), rs in sorted(by_attempt.items()):
        g = build_groups(rs)[rs[0]["task"]][0]
        out[g.task].append(((g.label, int(rs[0]["seed"]), int(att)), g))
    return dict(out)


def seed_rows(g: Group, running: set[str]) -> list[list[str]]:
    """One row per seed of ``g``: last step, its return, the mean over the last 10% of its steps, the best
    evaluation, and wall minutes per 1,000 env steps (the run's wall time; one torch thread, so on a machine
    with a core per run it is close to the CPU time)."""
    out = []
    for seed in sorted(g.curves):
        curve = g.curves[seed]
        last = max(curve)
        window = [float(r["eval_return"]) for st, r in curve.items() if st >= 0.9 * last]
        wall = curve[last].get("wall_time", "")
        rate = f"{float(wall) / last * 1000 / 60:.1f}" if wall not in ("", None) and last else "—"
        state = "running" if curve[last]["trial_id"] in running else "done"
        out.append([g.label, str(seed), state, str(last), f"{float(curve[last]['eval_return']):.1f}",
                    f"{sum(window) / len(window):.1f} (n={len(window)})",
                    f"{max(float(r['eval_return']) for r in curve.values()):.1f}", rate])
    return out


#: window widths (env steps) that :func:`equal_step_table` picks from: the smallest giving at most 10 windows
WINDOW_WIDTHS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


def window_width(last_step: int, max_windows: int = 10) -> int:
    """The smallest of :data:`WINDOW_WIDTHS` that splits ``[0, last_step]`` into at most ``max_windows`` windows."""
    return next((w for w in WINDOW_WIDTHS if last_step <= w * max_windows), WINDOW_WIDTHS[-1])


def window_means(curve: dict[int, dict[str, str]], width: int, n_windows: int) -> list[float | None]:
    """Mean eval return over each window ``(k*width, (k+1)*width]``, k < ``n_windows``, of one seed's curve;
    None where the curve has no evaluation in the window or stops before the window's end (a window is
    compared only when the attempt covered all of it)."""
    last = max(curve)
    out: list[float | None] = []
    for k in range(n_windows):
        lo, hi = k * width, (k + 1) * width
        vals = [float(r["eval_return"]) for st, r in curve.items()
                if lo < st <= hi and r.get("eval_return") not in ("", None)]
        out.append(sum(vals) / len(vals) if vals and last >= hi else None)
    return out


def equal_step_table(groups: Sequence[Group], lost: Sequence[tuple[tuple[str, int, int], Group]] = (),
                     running: set[str] | None = None) -> str:
    """Markdown: for each agent run with NLL and at least one other model objective, every seed's mean eval
    return per window of env steps, side by side, lost attempts included (they are evidence of the early
    curve, and count in no other table). '' when no agent has two model objectives."""
    running = running or set()
    agents = sorted({g.agent for g in groups if g.agent != "sac"})
    pairs = [a for a in agents if any(g.objective == "nll" for g in groups if g.agent == a)
             and any(g.objective != "nll" for g in groups if g.agent == a)]
    if not pairs:
        return ""
    parts = []
    for agent in pairs:
        mine = [g for g in groups if g.agent == agent]
        lost_mine = [(key, g) for key, g in lost if g.agent == agent]
        last = max([g.final_step for g in mine] + [g.final_step for _, g in lost_mine])
        width = window_width(last)
        n_windows = max(1, last // width)  # windows that some attempt covered in full
        rows = []
        for g in mine:
            for seed in sorted(g.curves):
                c = g.curves[seed]
                state = "running" if c[max(c)]["trial_id"] in running else "done"
                rows.append((g.objective != "nll", seed, 0, [g.label, str(seed), state, str(max(c))], c))
        for (lbl, seed, att), g in lost_mine:
            c = g.curves[seed]
            rows.append((g.objective != "nll", seed, att, [lbl, str(seed), f"lost attempt {att}", str(max(c))], c))
        rows.sort(key=lambda r: (r[1], r[0], r[3][0], r[2]))
        body = [[*head, *("—" if v is None else f"{v:.0f}" for v in window_means(c, width, n_windows))]
                for *_, head, c in rows]
        parts.append(f"Every {agent} seed at equal env steps: its mean eval return over each {width}-step window "
                     "(evaluations after the window's start, up to and including its end; '—': the attempt did not "
                     "cover the window)." + (" Lost attempts are listed beside the trial of the same seed, which "
                                             "restarted from step 0 with the same config, possibly on another "
                                             "machine." if lost_mine else "") + "\n")
        parts.append(markdown_table(["agent objective", "seed", "state", "last step",
                                     *(f"{k * width / 1000:g}–{(k + 1) * width / 1000:g}k" for k in range(n_windows))],
                                    body))
    return "\n".join(parts)


def _cell(values: dict[int, float], digits: int = 1) -> str:
    if not values:
        return "—"
    m, h, n = mean_ci(values.values())
    return f"{format_mean_ci(m, h, digits)} (n={n})"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """Mean and 95% half-width of ``a[s] - b[s]`` over the seeds s in both."""
    seeds = sorted(set(a) & set(b))
    return mean_ci([a[s] - b[s] for s in seeds])


def _verdict(m: float, h: float, n: int, lower_is_better: bool = False, who: str = "PG") -> str:
    """``who`` better / worse than the baseline, or why there is no verdict, for a paired difference m ± h."""
    if math.isnan(m):
        return "n/a"
    if n < 2 or math.isnan(h):
        return "too few seeds"
    if m == 0 and h == 0:  # every pair equal, e.g. MBPO before its first model rollout: no interval to be inside
        return "equal in every pair"
    if abs(m) <= h:
        return "inside the CI"
    better = m < 0 if lower_is_better else m > 0
    return f"{who} better" if better else f"{who} worse"


def summarize(rows: Sequence[dict[str, str]], suite: str, source: str, running: set[str] | None = None,
              anchors: Sequence[Anchor] = (), lost: Sequence[dict[str, str]] = ()) -> str:
    """The markdown of summary.md.

    Args:
        rows: runs.csv rows (and partial.csv rows of running trials).
        suite: the suite's name.
        source: what the rows were read from (named in the header).
        running: ids of the trials whose rows are partial (still running).
        anchors: published curves, shown for the tasks whose env family they cover.
        lost: lost.csv rows (attempts whose checkpoints were lost; listed per task, counted nowhere else).
    """
    running = running or set()
    lost_by_task = lost_attempts(lost)
    by_task = build_groups(rows)
    commits = defaultdict(set)
    machines = defaultdict(set)
    for r in rows:
        commits[r.get("commit", "") or "unknown"].add(r["trial_id"])
        machines[r.get("machine", "") or "unknown"].add(r["trial_id"])
    n_trials = len({r["trial_id"] for r in rows} - running)
    n_running = len({r["trial_id"] for r in rows} & running)
    out = [
        f"# Suite `{suite}`: online results\n",
        f"Generated by `mbrl-po report {suite}` from `{source}` alone ({len(rows)} rows, {n_trials} finished "
        f"trials" + (f", {n_running} still running: their rows so far" if n_running else "")
        + f") on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; do not edit by hand.\n",
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
        fam = {env_family(e) for e in env_ids}
        mine = [a for a in anchors if a.env in fam and any(a.at(b) is not None for b in bs)]
        for a in mine:
            n = next((p[2] for p in a.points if p[2]), "")
            table.append([f"*published: {a.agent} ({a.source}{', ' + n if n else ''})*",
                          *("—" if a.at(b) is None else f"*{a.at(b):.0f}*" for b in bs)])
        out.append(markdown_table(["agent objective", *(f"return @ {b} steps" for b in bs)], table))
        if mine:
            out.append(f"Published rows (italic) are other systems on `{'`, `'.join(sorted(fam))}` of older "
                       "Gymnasium/Gym versions (v2/v4; ours are on the version above): references, not paired "
                       "comparisons; each is its mean over seeds at the budget (interpolated between close points; "
                       "'—': no published point near it).\n")
        out.append("<details><summary>Every seed (long runs are peaky: read each seed, not only the mean)"
                   "</summary>\n\n'last 10%': mean eval return over the seed's evaluations in the last 10% of its "
                   "steps (inclusive); wall min / 1k steps: its run's wall time per 1,000 env steps (one torch thread; "
                   "close to CPU time when each run has a core).\n")
        out.append(markdown_table(["agent objective", "seed", "state", "last step", "return there",
                                   "last 10%", "best", "wall min / 1k steps"],
                                  [r for g in groups for r in seed_rows(g, running)]))
        out.append("</details>\n")
        if lost_by_task.get(task):
            out.append("Lost attempts: trials whose checkpoints went with a replaced machine, so they restarted "
                       "from step 0. Their committed rows stay as partial curves (`lost.csv`, dash-dotted in the plot) "
                       "and count in no table above.\n")
            out.append(markdown_table(
                ["agent objective", "seed", "attempt", "last step", "return there", "last 10%", "best",
                 "wall min / 1k steps", "commit"],
                [[lbl, str(seed), str(att), *seed_rows(g, set())[0][3:], g.curves[seed][max(g.curves[seed])]["commit"]]
                 for (lbl, seed, att), g in lost_by_task[task]]))
        eq = equal_step_table(groups, lost_by_task.get(task, ()), running)
        if eq:
            out.append(eq)
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
        for g in groups:  # every model objective against NLL (PG variants, beta_nll, mse)
            if g.agent == "sac" or g.objective == "nll":
                continue
            base = [b for b in groups if b.agent == g.agent and b.objective == "nll"]
            if len(base) != 1:
                continue
            final = finals[g.agent]
            who = "PG" if g.objective.startswith("pg") else g.objective
            for col, lower in (("eval_return", False), ("model_nll", True), ("rollout_error", True)):
                m, h, n = paired_difference(g.at(final, col), base[0].at(final, col))
                if n:
                    drows.append([f"{g.label} − {base[0].label}", str(final), col, f"{format_mean_ci(m, h, 3)}", n,
                                  _verdict(m, h, n, lower, who)])
        if drows:
            out.append("Each model objective minus NLL at each agent's final budget, paired by seed (return: "
                       "positive is better than NLL; model NLL and rollout RMSE on fresh real data: negative is "
                       "better than NLL).\n")
            out.append(markdown_table(["comparison", "at step", "metric", "mean difference ± 95% CI", "n pairs",
                                       "verdict"], drows))
    return "\n".join(out)


def plot_name(task: str) -> str:
    return f"curve_{re.sub(r'[^A-Za-z0-9_.-]+', '_', task)}.png"


#: the fewest seeds whose 95% band is drawn: at n = 2 the Student-t half-width is 12.7 / sqrt(2) = 9 standard
#: deviations of the two seeds, a band that says nothing and sets the plot's scale; the two seed lines stand in
MIN_BAND_SEEDS = 3


def band(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of a curve's band at one step: the mean ± its 95% Student-t half-width when there are
    at least :data:`MIN_BAND_SEEDS` values, else no band (low = high = mean)."""
    m, h, n = mean_ci(values)
    if n < MIN_BAND_SEEDS:
        return m, m, m
    return m, m - h, m + h


def plot_task(task: str, groups: Sequence[Group], path: Path, anchors: Sequence[Anchor] = (),
              running: set[str] | None = None,
              lost: Sequence[tuple[tuple[str, int, int], Group]] = ()) -> Path:
    """Eval return vs env steps: per group the mean over seeds with its 95% band (:func:`band`), every seed
    as a thin line, lost attempts (:func:`lost_attempts`) dash-dotted in their group's colour, and the
    published anchors of the task's env family (dotted, grey tones)."""
    running = running or set()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours: dict[str, str] = {}
    for g in groups:
        steps = sorted({s for c in g.curves.values() for s in c})
        xs, ms, lo, hi, ns = [], [], [], [], []
        for s in steps:
            vals = [float(c[s]["eval_return"]) for c in g.curves.values() if s in c]
            m, low, high = band(vals)
            xs.append(s)
            ms.append(m)
            ns.append(len(vals))
            lo.append(low)
            hi.append(high)
        style = "--" if g.agent == "sac" else "-"
        live = any(r["trial_id"] in running for c in g.curves.values() for r in c.values())
        (line,) = ax.plot(xs, ms, style, marker="o", ms=3,
                          label=f"{g.label} (n={max(ns)}{', running' if live else ''})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        colours[g.label] = line.get_color()
        if len(g.curves) > 1:
            for c in g.curves.values():
                st = sorted(c)
                ax.plot(st, [float(c[x]["eval_return"]) for x in st], style, color=line.get_color(), lw=0.6,
                        alpha=0.45)
    for (lbl, seed, att), g in lost:
        c = g.curves[seed]
        st = sorted(c)
        ax.plot(st, [float(c[x]["eval_return"]) for x in st], "-.", lw=0.9, alpha=0.7, color=colours.get(lbl),
                label=f"{lbl} s{seed}: lost attempt {att} (to {st[-1] // 1000}k)")
    env_ids = sorted({r["env_id"] for g in groups for c in g.curves.values() for r in c.values()})
    fam = {env_family(e) for e in env_ids}
    top = max((s for g in groups for c in g.curves.values() for s in c), default=0)
    greys = ["0.15", "0.45", "0.65"]
    for i, a in enumerate(x for x in anchors if x.env in fam):
        pts = [p for p in a.points if p[0] <= max(top, 1) * 1.3]
        if not pts:
            continue
        n = next((p[2] for p in a.points if p[2]), "")
        label = f"published {a.agent}: {a.source}" + (f", {n}" if n else "")
        if len(pts) == 1:
            ax.plot([pts[0][0]], [pts[0][1]], "*", color=greys[i % 3], ms=9, label=label)
        else:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ":", color=greys[i % 3], lw=1.5, label=label)
    ax.set_title(f"{task} ({', '.join(env_ids)}): eval return, mean ± 95% CI (n ≥ {MIN_BAND_SEEDS})", fontsize=9)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results_dir: str | Path, suite: str,
                 anchors_csv: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Regenerate ``<results_dir>/<suite>/summary.md`` and its PNGs from runs.csv (and partial.csv).

    Args:
        results_dir: parent of ``<suite>/runs.csv``.
        suite: the results folder's name.
        anchors_csv: published curves (default: ``benchmarks/anchors/published.csv`` of the checkout).

    Returns:
        (summary.md, the PNG paths).
    """
    folder = Path(results_dir) / suite
    runs_csv = folder / "runs.csv"
    partial_csv = folder / "partial.csv"
    partial = read_csv(partial_csv)
    rows = load_rows(runs_csv) if runs_csv.exists() or not partial else []
    finished = {r["trial_id"] for r in rows}
    extra = [r for r in partial if r["trial_id"] not in finished]
    running = {r["trial_id"] for r in extra}
    if extra:
        rows = rows + load_rows(partial_csv, keep=running)
    source = str(runs_csv) + (f" + {partial_csv.name} ({len(running)} running)" if running else "")
    anchors = load_anchors(anchors_csv)
    by_task = build_groups(rows)
    lost = read_csv(folder / "lost.csv")
    lost_by_task = lost_attempts(lost)
    pngs = [plot_task(task, gs, folder / plot_name(task), anchors, running, lost_by_task.get(task, ()))
            for task, gs in by_task.items()]
    summary = folder / "summary.md"
    summary.write_text(summarize(rows, suite, source, running, anchors, lost))
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
