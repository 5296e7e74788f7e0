"""Rebuild published.csv from 4kubo/erl_lib's published result CSVs (results/main/gym/{mbpo,sac}/<Env>.csv).

    python benchmarks/anchors/derive_erl_lib.py <erl_lib checkout>   # rewrites benchmarks/anchors/published.csv

Each of those CSVs holds (step, time, reward, seed) rows of one algorithm on one gym-v4 task. The anchor at a
grid step is the mean (and min, max) over seeds of each seed's evaluation nearest to it: within 100 steps up to
20k (grid every 1,000 steps), within 1,100 steps after (grid every 5,000); a grid step is kept only when every
seed has a point there. The MBPO paper's Hopper point (gym v2, read off its Fig. 2) is appended by hand.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

SOURCE = "4kubo/erl_lib results/main/gym (gym v4)"
CURVES = {("Hopper", "mbpo"): 125_000, ("Hopper", "sac"): 125_000,
          ("HalfCheetah", "mbpo"): 30_000, ("HalfCheetah", "sac"): 30_000}
PAPER = {"env": "Hopper", "agent": "mbpo", "source": "MBPO paper Fig. 2 (gym v2; read off the plot)",
         "step": 125_000, "return_mean": 3300, "return_min": "", "return_max": "", "n_seeds": ""}


def derive(root: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for (env, agent), top in CURVES.items():
        per: dict[str, list[tuple[float, float]]] = defaultdict(list)
        with open(root / "results" / "main" / "gym" / agent / f"{env}.csv") as f:
            for r in csv.DictReader(f):
                per[r["seed"]].append((float(r["step"]), float(r["reward"])))
        for b in sorted(set(range(0, 20_001, 1000)) | set(range(0, top + 1, 5000))):
            tol = 100 if b <= 20_000 else 1100
            vals = [rw for pts in per.values() for st, rw in [min(pts, key=lambda p: abs(p[0] - b))]
                    if abs(st - b) <= tol]
            if len(vals) == len(per):
                out.append({"env": env, "agent": agent, "source": SOURCE, "step": b,
                            "return_mean": round(float(np.mean(vals)), 1), "return_min": round(min(vals), 1),
                            "return_max": round(max(vals), 1), "n_seeds": len(vals)})
    return [*out, PAPER]


if __name__ == "__main__":
    rows = derive(Path(sys.argv[1]))
    with open(Path(__file__).with_name("published.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} anchor points")
