"""The ``mbrl-po`` command line.

    mbrl-po demo                         the README's quick comparison of MLE and PG dynamics models
    mbrl-po train --agent pets --env inverted_pendulum --objective pg --reward-matrix learned --steps 2000
    mbrl-po train --resume runs/<run>    continue a killed run from its last checkpoint
    mbrl-po show-config --agent pets --env halfcheetah [--set planner.horizon=20]
    mbrl-po bench offline ...            offline comparison of objectives (see docs/offline.md); bench and report
                                         run the harness of a checkout (benchmarks/harness/), from the checkout
    mbrl-po bench u-landscape ...        PG's likelihood over a fixed scalar U, the learned U placed on it
    mbrl-po bench planner-sweep ...      return against CPU per action of planner settings, on one PETS model
    mbrl-po bench early-stop ...         MBPO's refits stopped on held-out NLL against held-out MSE
    mbrl-po bench online cpu             online suites: agents x tasks x objectives x seeds -> runs.csv
    mbrl-po report cpu                   tables and learning curves of a suite from its runs.csv alone
    mbrl-po collect --env halfcheetah --policy medium --steps 100000 --out data/datasets   (docs/datasets.md)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

# OpenMP threads that spin while waiting made small torch ops up to 20x slower on a shared 2-core CPU (a 25-epoch fit
# of a 3x200 ensemble on 200 rows: 25 s spinning vs 1.2 s passive, measured under load). libgomp reads the variable
# when torch loads, so it is set here, before anything imports torch (importing mbrl_po imports nothing); the
# library itself leaves the environment alone. An explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mbrl_po.agents import agent_class
from mbrl_po.config import AGENT_KINDS, load_agent_config, parse_set
from mbrl_po.errors import MbrlPoError


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over = parse_set(args.set or [])
    flat = {"steps": args.steps, "seed": args.seed, "device": args.device}
    for k, v in flat.items():
        if v is not None:
            over[k] = v
    obj = over.setdefault("objective", {})
    if args.objective is not None:
        obj["name"] = args.objective
    if args.reward_matrix is not None:
        obj["reward_matrix"] = args.reward_matrix
    if not obj:
        over.pop("objective")
    return over


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", default="pets", help=f"agent file in agents/ ({', '.join(AGENT_KINDS)}) or a path")
    p.add_argument("--env", default=None, help="task name in envs/ (e.g. halfcheetah) or a path")
    p.add_argument("--objective", default=None, help="dynamics objective: nll | mse | pg")
    p.add_argument("--reward-matrix", default=None, help="pg only: identity | scaled | inverse_cov | learned")
    p.add_argument("--steps", type=int, default=None, help="env steps, random initial steps included")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. planner.horizon=20")


def _resume_flags(args: argparse.Namespace) -> list[str]:
    """The config flags given with ``--resume`` (a resumed run keeps its ``config.toml``)."""
    flags = {"--steps": args.steps, "--seed": args.seed, "--device": args.device, "--env": args.env,
             "--objective": args.objective, "--reward-matrix": args.reward_matrix, "--set": args.set,
             "--name": args.name}
    given = [k for k, v in flags.items() if v is not None]
    return given + (["--agent"] if args.agent != "pets" else [])


def cmd_train(args: argparse.Namespace) -> int:
    from mbrl_po.agents.common import RunDir, check_run_name

    if args.resume:
        given = _resume_flags(args)
        if given:
            raise ValueError(f"--resume: a resumed run keeps the config in {args.resume}/config.toml; drop "
                             f"{', '.join(given)} (or start a new run with them)")
        run = RunDir(args.resume)
        if not (run.path / "config.toml").is_file():
            raise ValueError(f"--resume: {run.path} has no config.toml; is it a run directory?")
        run.acquire_lock()  # one writer per run directory, held until this process ends
        cfg = run.config()
        agent = agent_class(cfg.kind).resume(run)
        print(f"resuming {run.path} at env step {agent.step}", file=sys.stderr)
    else:
        cfg = load_agent_config(args.agent, args.env, _overrides(args))
        if args.name is not None:
            check_run_name(args.name)
        # the envs, buffers and networks first: a start that fails leaves nothing on disk
        agent = agent_class(cfg.kind)(cfg, None)
        run = RunDir.create(args.runs_dir, cfg, args.name, lock=True)
        agent.run = run
        print(f"run directory: {run.path}", file=sys.stderr)
    try:
        result = agent.train()
    except MbrlPoError:
        raise
    except ValueError as e:  # raised inside the run: a bug, not a bad setting; keep its traceback
        raise RuntimeError(f"the run in {run.path} failed at env step {agent.step} (not a configuration error: "
                           f"the traceback follows); after a fix, continue it with --resume {run.path}") from e
    print(" ".join(f"{k}={v:.4g}" for k, v in result.items()))
    print(f"metrics: {run.metrics_path}")
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    print(load_agent_config(args.agent, args.env, _overrides(args)).to_toml(), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mbrl_po.demo import run_demo

    run_demo(args.out, steps=args.steps, seed=args.seed)
    return 0


BENCHES = ("offline", "u-landscape", "speed", "online", "planner-sweep", "early-stop")
HARNESS = ("benchmarks", "harness")  # the benchmark harness: a package of a checkout, not installed with mbrl_po


class HarnessMissing(Exception):
    """The benchmark harness (``benchmarks/harness/``) is not in a checkout this process can see."""


def checkout_root() -> Path | None:
    """The checkout that holds the benchmark harness: the current folder or one above it, else the one this
    ``mbrl_po`` was imported from (an editable install); None when neither has ``benchmarks/harness/``."""
    cwd = Path.cwd().resolve()
    for root in (cwd, *cwd.parents, Path(__file__).resolve().parents[1]):
        if (root.joinpath(*HARNESS) / "__init__.py").is_file():
            return root
    return None


def harness(module: str) -> Any:
    """Import ``benchmarks.harness.<module>`` from the checkout (:func:`checkout_root`), put first on ``sys.path``.

    Raises:
        HarnessMissing: no checkout is found (e.g. mbrl-po installed from a wheel, run in another folder).
    """
    root = checkout_root()
    if root is None:
        raise HarnessMissing
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(".".join((*HARNESS, module)))


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.suite is None:
        print(f"usage: mbrl-po bench {{{','.join(BENCHES)}}} [options]   (mbrl-po bench <name> --help for each)")
        return 0 if {"-h", "--help"} & set(rest) else 2
    if args.suite not in BENCHES:
        raise ValueError(f"bench: got {args.suite!r}, allowed {list(BENCHES)}")
    result = harness(args.suite.replace("-", "_")).main(rest)
    return result if isinstance(result, int) else 0  # offline and u-landscape return their rows


def cmd_report(args: argparse.Namespace) -> int:
    return int(harness("report").main([args.suite, "--results-dir", args.results_dir]) or 0)


def cmd_collect(args: argparse.Namespace) -> int:
    from mbrl_po.data.datasets import collect_dataset

    path, prov = collect_dataset(
        args.env, args.policy, args.steps, seed=args.seed, out=args.out, fmt=args.format,
        deterministic=args.deterministic, dataset_id=args.dataset_id, policy_dir=args.policy_dir,
        overwrite=args.overwrite, command="mbrl-po " + " ".join(sys.argv[1:]),
    )
    print(f"{path}: {prov['num_steps']} steps, {prov['num_episodes']} episodes, mean return "
          f"{prov['mean_return']:.1f} ({prov['return_over']}), policy {prov['policy']} ({prov['policy_sampling']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbrl-po", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run an agent (pets | mbpo | sac) on a task")
    _add_config_args(p)
    p.add_argument("--runs-dir", default="runs", help="parent folder of run directories")
    p.add_argument("--name", default=None, help="run directory name (default: agent-env-objective-seed-time-suffix)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run from its checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("show-config", help="print the resolved config of an agent on a task")
    _add_config_args(p)
    p.set_defaults(func=cmd_show_config)

    p = sub.add_parser("demo", help="short MLE-vs-PG comparison on CPU with embedded defaults")
    p.add_argument("--out", default="mbrl_po_demo", help="output folder (table, plot, run directories)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: the demo's own)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("collect", help="build an offline dataset (Minari or .npz) with a random/medium/expert policy")
    p.add_argument("--env", required=True, help="task name in envs/ (halfcheetah, hopper, walker2d, ...)")
    p.add_argument("--policy", default="random", help="random | medium | expert | path to a .pt actor checkpoint")
    p.add_argument("--steps", type=int, required=True, help="number of transitions")
    p.add_argument("--seed", type=int, default=0, help="reset seed and policy-noise seed")
    p.add_argument("--out", default="data/datasets", help="Minari datasets root, or the folder of the .npz")
    p.add_argument("--format", choices=("minari", "npz"), default="minari")
    p.add_argument("--dataset-id", default=None, help="Minari id (default mbrl_po/<env>/<policy>-v0)")
    p.add_argument("--deterministic", action="store_true", help="mean actions (default: sample the SAC policy)")
    p.add_argument("--policy-dir", default=None, help="folder of <env>-<level>.pt (default benchmarks/policies)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(func=cmd_collect)

    # no -h here: `mbrl-po bench offline --help` must reach the benchmark's own parser
    p = sub.add_parser("bench", add_help=False,
                       help="benchmarks: offline | u-landscape | speed | online SUITE | planner-sweep | early-stop "
                            "(docs/results/README.md)")
    p.add_argument("suite", nargs="?", help="offline | u-landscape | speed | online | planner-sweep | early-stop")
    p.set_defaults(func=None)

    p = sub.add_parser("report", help="regenerate docs/results/SUITE/summary.md and plots from runs.csv")
    p.add_argument("suite", help="results folder name, e.g. cpu")
    p.add_argument("--results-dir", default="docs/results", help="parent of <SUITE>/runs.csv")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "disable")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "bench":
            return cmd_bench(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except HarnessMissing:
        print(f"mbrl-po {args.command}: the benchmark harness lives in a checkout of the repository "
              f"({'/'.join(HARNESS)}/); run it from there", file=sys.stderr)
        return 2
    except (ValueError, MbrlPoError) as e:  # expected failures: one line naming the file or field, no traceback
        print(f"mbrl-po: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
