"""``mbrl-po bench speed``: model training, planning and MBPO timed against the machine's matmul floor.

    mbrl-po bench speed [--quick] [--device cpu|cuda] [--threads 1] [--out docs/performance.md] [--json FILE]

Every figure is a median over repeats, and each workload's floor is measured in the same run, interleaved with
it (one floor measurement per repeat), so their ratio is meaningful on a shared, loaded machine. The floor of a
workload is its matmul FLOPs divided by the throughput this machine reaches on the ensemble's exact batched
matmul shapes (``torch.bmm``, measured here); everything else a workload does (activations, the optimizer,
sampling, Python) is overhead above it.

Sections (``--sections``, default all):

``floor``   batched-matmul throughput (GFLOP/s) per layer shape, at the training and the planning batch sizes,
            and whether bf16 is worth using on this device (:func:`bf16_fast`).
``train``   one NLL epoch over 100k HalfCheetah-v5-shaped transitions (E=7, 4x200, batch 256) with
            :class:`~mbrl_po.training.DynamicsTrainer`, the PG (G=5) epoch, and the bilevel outer step.
``plan``    CEM latency per action (E=7, 5 elites, TS-1) on a ladder of population x particles x horizon x
            iterations, on InvertedPendulum (4, 1) and HalfCheetah (17, 6) dims.
``mbpo``    one MBPO env step on Hopper-v5 dims, split into SAC updates, model rollouts, amortised retraining,
            env step and policy act.
``seeds``   wall time of 5 seeds (5 processes at once) over 1 seed for one planning workload.

mbrl-lib's figures are read from ``docs/results/peer_mbrl_lib_cpu.json`` (a separate run, see
``benchmarks/peers/README.md``) when it exists. A GPU run's ``--json`` can be merged with ``--gpu-json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (see mbrl_po/cli.py)

import numpy as np
import torch

SECTIONS = ("floor", "train", "plan", "mbpo", "seeds")
RUNGS = ((64, 5, 10, 3), (100, 10, 15, 5), (350, 20, 15, 5), (400, 20, 30, 5))
"""population x particles x horizon x iterations."""
PLAN_DIMS = {"ip": ("InvertedPendulum-v5", 4, 1), "hc": ("HalfCheetah-v5", 17, 6)}
HIDDEN = (200, 200, 200, 200)
ENSEMBLE, ELITES = 7, 5
HC_OBS, HC_ACT = 17, 6
HOPPER_OBS, HOPPER_ACT = 11, 3
PEER_JSON = Path("docs/results/peer_mbrl_lib_cpu.json")
DEMO_DIR = Path("docs/results/demo")  # `mbrl-po demo`'s committed PETS InvertedPendulum runs (target 4)
GPU_PENDING = "pending: no GPU lent to this task"
JSON_MARK = "<!-- speed-results (raw figures of this report, read back by --from-json) -->"

DEVICE_COMMAND = (
    "../shared/tools/device_wheels.sh cloudpickle   # once, on the dev machine: wheels into .whl/\n"
    '# then, on the GPU machine (carry [".whl"]), as one command:\n'
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
    ".whl/*.whl && export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=disable || exit 1; "
    "python3 -m mbrl_po.cli bench speed --device cuda --threads 0 --out $OUT/performance_cuda.md "
    "--json $OUT/speed_cuda.json\n"
    "# back here: fill the GPU column of this file from that run, without measuring the CPU again\n"
    "mbrl-po bench speed --from-json docs/performance.md --gpu-json <files_at>/speed_cuda.json"
)


# ============================================================================================== helpers
def log(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def busy_clock(device: torch.device) -> Callable[[], float]:
    """The clock that ratios are computed with: on a CPU this process's CPU time (with one torch thread, the time
    the work really ran; a loaded, shared machine inflates it far less than wall time), on a GPU wall time."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def stats(values: list[float] | np.ndarray, scale: float = 1.0, digits: int = 4) -> dict[str, Any]:
    """Median and spread of timings (scaled, e.g. by 1e3 for ms)."""
    a = np.asarray(values, dtype=float) * scale
    if a.size == 0:
        return {"n": 0}
    r = lambda x: round(float(x), digits)  # noqa: E731
    return {
        "n": int(a.size),
        "median": r(np.median(a)),
        "p25": r(np.percentile(a, 25)),
        "p75": r(np.percentile(a, 75)),
        "min": r(a.min()),
        "max": r(a.max()),
    }


def fmt(st: dict[str, Any] | None, digits: int = 3) -> str:
    """``median (p25-p75, n)`` of a :func:`stats` dict."""
    if not st or not st.get("n"):
        return "n/a"
    med = _num(st["median"], digits)
    if st["n"] == 1:
        return f"{med} (n=1)"
    return f"{med} ({_num(st['p25'], digits)}–{_num(st['p75'], digits)}, n={st['n']})"


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    return f"{x:.{max(0, digits - 1 - mag)}f}"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def bf16_fast(device: torch.device | str) -> tuple[bool, str]:
    """Whether bfloat16 matmuls are worth using on ``device``, and why.

    On CUDA: ``torch.cuda.is_bf16_supported()``. On a CPU: only with bf16 matrix instructions (the
    ``avx512_bf16`` or ``amx_bf16`` flags); without them torch emulates bf16 and a bf16 matmul is far slower
    than float32 (about 50-100x on an AVX2-only CPU), so the answer is no and float32 is used.
    """
    device = torch.device(device)
    if device.type == "cuda":
        ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return ok, "CUDA device supports bf16" if ok else "CUDA device without bf16 support"
    flags = cpu_flags()
    hw = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if hw:
        return True, f"CPU has {', '.join(hw)}"
    return False, "CPU has no avx512_bf16/amx_bf16: bf16 is emulated (far slower than float32); float32 is used"


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
        return rev.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(device: torch.device) -> dict[str, Any]:
    flags = cpu_flags()
    interesting = [
        "avx",
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_bf16",
        "avx_vnni",
    ]
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": {f: (f in flags) for f in interesting},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "commit": git_commit(),
        "bf16": dict(zip(("fast", "reason"), bf16_fast(device), strict=True)),
    }
    with contextlib.suppress(ImportError):
        import gymnasium

        info["gymnasium"] = gymnasium.__version__
    return info


# ============================================================================================== floor
def layer_dims(obs_dim: int, act_dim: int, learn_reward: bool = True, hidden: tuple[int, ...] = HIDDEN):
    """(in, out) of every matmul of one member: input layer, hidden layers, head (mean and logvar)."""
    target = obs_dim + int(learn_reward)
    sizes = [obs_dim + act_dim, *hidden, 2 * target]
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def forward_flops(members: int, rows: int, dims: list[tuple[int, int]]) -> float:
    """Matmul FLOPs of one forward pass of ``rows`` rows per member through ``members`` members."""
    return float(sum(2 * members * rows * i * o for i, o in dims))


def train_step_flops(members: int, rows: int, dims: list[tuple[int, int]]) -> float:
    """Forward + backward matmul FLOPs of one training step (no input gradient for the first layer)."""
    return float(sum(2 * members * rows * i * o * (2 if k == 0 else 3) for k, (i, o) in enumerate(dims)))


class Floor:
    """Measures ``torch.bmm`` time for exact shapes on a device (float32), with :func:`busy_clock`.

    ``kind``: ``"fwd"`` (E, B, i) @ (E, i, o); ``"dw"`` the weight gradient (E, i, B) @ (E, B, o) read through
    a transpose, as autograd computes it; ``"dx"`` the input gradient (E, B, o) @ (E, o, i), likewise.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32, min_sample_s: float = 2e-3):
        self.device = device
        self.dtype = dtype
        self.min_sample_s = min_sample_s
        self._tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._inner: dict[tuple, int] = {}
        self.clock = busy_clock(device)

    def _operands(self, e: int, rows: int, i: int, o: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (e, rows, i, o, kind)
        if key not in self._tensors:
            g = torch.Generator(device="cpu").manual_seed(0)
            mk = lambda *s: torch.randn(*s, generator=g).to(self.device, self.dtype)  # noqa: E731
            if kind == "fwd":
                ops = (mk(e, rows, i), mk(e, i, o))
            elif kind == "dw":
                ops = (mk(e, rows, i).transpose(1, 2), mk(e, rows, o))
            else:
                ops = (mk(e, rows, o), mk(e, i, o).transpose(1, 2))
            self._tensors[key] = ops
        return self._tensors[key]

    def bmm_s(self, e: int, rows: int, i: int, o: int, kind: str = "fwd", repeats: int = 3) -> float:
        """Median seconds of one bmm of that shape (several calls per timing sample for tiny shapes)."""
        a, b = self._operands(e, rows, i, o, kind)
        key = (e, rows, i, o, kind)
        if key not in self._inner:
            torch.bmm(a, b)
            sync(self.device)
            t = time.perf_counter()
            torch.bmm(a, b)
            sync(self.device)
            one = max(time.perf_counter() - t, 1e-7)
            self._inner[key] = int(min(1000, max(1, math.ceil(self.min_sample_s / one))))
        k = self._inner[key]
        samples = []
        for _ in range(repeats):
            sync(self.device)
            t = self.clock()
            for _ in range(k):
                torch.bmm(a, b)
            sync(self.device)
            samples.append((self.clock() - t) / k)
        return float(np.median(samples))

    def forward_s(self, e: int, rows: int, dims: list[tuple[int, int]], repeats: int = 3) -> float:
        return sum(self.bmm_s(e, rows, i, o, "fwd", repeats) for i, o in dims)

    def train_step_s(self, e: int, rows: int, dims: list[tuple[int, int]], repeats: int = 3) -> float:
        total = 0.0
        for k, (i, o) in enumerate(dims):
            total += self.bmm_s(e, rows, i, o, "fwd", repeats) + self.bmm_s(e, rows, i, o, "dw", repeats)
            if k > 0:
                total += self.bmm_s(e, rows, i, o, "dx", repeats)
        return total


def bf16_probe(device: torch.device) -> dict[str, Any]:
    """One small bf16 vs float32 bmm comparison, for the record (a few tenths of a second at most)."""
    e, rows, i, o = ELITES, 200, 200, 200
    out: dict[str, Any] = {"shape": [e, rows, i, o]}
    for dt in (torch.float32, torch.bfloat16):
        try:
            a = torch.randn(e, rows, i, device=device).to(dt)
            b = torch.randn(e, i, o, device=device).to(dt)
            torch.bmm(a, b)
            sync(device)
            t = time.perf_counter()
            torch.bmm(a, b)
            sync(device)
            dt_s = time.perf_counter() - t
            out[str(dt).replace("torch.", "")] = round(2 * e * rows * i * o / dt_s / 1e9, 2)
        except RuntimeError as exc:  # a device without that dtype
            out[str(dt).replace("torch.", "")] = f"unavailable ({exc})"
    return out


def run_floor(device: torch.device, quick: bool) -> dict[str, Any]:
    fl = Floor(device)
    reps = 3 if quick else 7
    rows_out = []
    shapes = [("train fwd/bwd, E=7, batch 256, HalfCheetah", ENSEMBLE, 256, layer_dims(HC_OBS, HC_ACT), True)]
    for pop, part, _h, _i in RUNGS:
        rows = -(-pop * part // ELITES)
        shapes.append(
            (
                f"plan {pop}x{part} HalfCheetah (E'=5, {rows} rows/member)",
                ELITES,
                rows,
                layer_dims(HC_OBS, HC_ACT),
                False,
            )
        )
    for label, e, rows, dims, train in shapes:
        for i, o in dims:
            kinds = ("fwd", "dw", "dx") if train else ("fwd",)
            for kind in kinds:
                s = fl.bmm_s(e, rows, i, o, kind, reps)
                rows_out.append(
                    {
                        "workload": label,
                        "E": e,
                        "rows": rows,
                        "in": i,
                        "out": o,
                        "kind": kind,
                        "us": round(s * 1e6, 2),
                        "gflops": round(2 * e * rows * i * o / s / 1e9, 2),
                    }
                )
    log("floor: done")
    return {"shapes": rows_out, "bf16_probe": bf16_probe(device), "load": loadavg()}


# ============================================================================================== train
def _hc_data(n: int, quick: bool) -> tuple[dict[str, np.ndarray], str]:
    """100k HalfCheetah-v5 random-policy transitions if collecting them is projected to take < 2 min."""
    try:
        from mbrl_po.data.collect import collect

        t = time.perf_counter()
        probe = collect("halfcheetah", 2000, seed=0, progress=False)
        est = (time.perf_counter() - t) * n / 2000
        if est < 120:
            t = time.perf_counter()
            data = collect("halfcheetah", n, seed=0, progress=False)
            return data, f"real HalfCheetah-v5 random-policy transitions ({time.perf_counter() - t:.0f} s to collect)"
        reason = f"collecting {n} steps was projected at {est:.0f} s (> 120 s)"
        del probe
    except Exception as exc:  # noqa: BLE001 - no gymnasium/mujoco: random data of the right dims
        reason = f"no simulator ({type(exc).__name__}: {exc})"
    g = np.random.default_rng(0)
    obs = g.standard_normal((n, HC_OBS)).astype(np.float32)
    act = g.uniform(-1, 1, (n, HC_ACT)).astype(np.float32)
    nxt = (obs + 0.1 * g.standard_normal((n, HC_OBS))).astype(np.float32)
    rew = g.standard_normal(n).astype(np.float32)
    return {"obs": obs, "actions": act, "next_obs": nxt, "rewards": rew}, f"random data of HalfCheetah dims ({reason})"


class _EpochClock:
    """Per-epoch wall times of ``DynamicsTrainer.fit``, from the held-out evaluation that ends every epoch."""

    def __init__(self, trainer: Any, device: torch.device) -> None:
        self.device = device
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []
        self.eval_s: list[float] = []
        self.eval_cpu_s: list[float] = []
        self.outer_s: list[float] = []
        self.outer_cpu_s: list[float] = []
        evaluate = trainer.evaluate

        def timed_evaluate(*a: Any, **k: Any) -> Any:
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            out = evaluate(*a, **k)
            sync(device)
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())
            self.eval_s.append(self.ends[-1] - t)
            self.eval_cpu_s.append(self.cpu_ends[-1] - c)
            return out

        trainer.evaluate = timed_evaluate
        if trainer.bilevel is not None:
            step = trainer.bilevel.step

            def timed_step(*a: Any, **k: Any) -> Any:
                sync(device)
                t, c = time.perf_counter(), time.process_time()
                out = step(*a, **k)
                sync(device)
                self.outer_s.append(time.perf_counter() - t)
                self.outer_cpu_s.append(time.process_time() - c)
                return out

            trainer.bilevel.step = timed_step

    def reset(self) -> None:
        self.ends.clear()
        self.cpu_ends.clear()
        self.eval_s.clear()
        self.eval_cpu_s.clear()
        self.outer_s.clear()
        self.outer_cpu_s.clear()

    def epochs(self, k: int) -> list[float]:
        """Durations of the k epochs of the last fit (evaluate calls: initial, one per epoch, final)."""
        return [float(x) for x in np.diff(self.ends[: k + 1])]

    def cpu_epochs(self, k: int) -> list[float]:
        """Process CPU time of the same epochs."""
        return [float(x) for x in np.diff(self.cpu_ends[: k + 1])]


def run_train(device: torch.device, quick: bool) -> dict[str, Any]:
    from mbrl_po import DynamicsTrainer, GaussianEnsemble

    n = 100_000
    data, data_note = _hc_data(n, quick)
    log(f"train: data: {data_note}")
    tensors = {k: torch.as_tensor(data[k], device=device) for k in ("obs", "actions", "next_obs", "rewards")}
    repeats, epochs = (2, 1) if quick else (3, 2)
    variants: dict[str, dict[str, Any]] = {
        "nll": {"objective": "nll", "options": None},
        "pg": {"objective": "pg", "options": {"num_samples": 5, "reward_matrix": "learned"}},
    }
    fast_bf16, bf16_reason = bf16_fast(device)
    if fast_bf16:
        variants["nll_bf16"] = {"objective": "nll", "options": None, "precision": "bf16"}
    dims = layer_dims(HC_OBS, HC_ACT)
    fl = Floor(device)
    runs: dict[str, dict[str, Any]] = {}
    for name, v in variants.items():
        torch.manual_seed(0)
        model = GaussianEnsemble(
            HC_OBS, HC_ACT, ensemble_size=ENSEMBLE, num_elites=ELITES, hidden_sizes=HIDDEN, device=device
        )
        trainer = DynamicsTrainer(
            model,
            v["objective"],
            objective_options=v["options"],
            patience=None,
            precision=v.get("precision", "float32"),
            progress=False,
            seed=0,
        )
        runs[name] = {
            "trainer": trainer,
            "clock": _EpochClock(trainer, device),
            "epoch_s": [],
            "epoch_cpu_s": [],
            "eval_s": [],
            "eval_cpu_s": [],
            "outer_s": [],
            "outer_cpu_s": [],
            "holdout_nll": [],
        }
    n_train = n_hold = steps = 0
    floor_epoch: list[float] = []
    floor_eval: list[float] = []
    load0 = loadavg()
    for r in range(repeats):
        for name, run in runs.items():
            clock = run["clock"]
            clock.reset()
            report = run["trainer"].fit(
                tensors["obs"], tensors["actions"], tensors["next_obs"], tensors["rewards"], max_epochs=epochs
            )
            ep = clock.epochs(epochs)
            run["epoch_s"] += ep
            run["epoch_cpu_s"] += clock.cpu_epochs(epochs)
            run["eval_s"] += clock.eval_s[1 : epochs + 1]
            run["eval_cpu_s"] += clock.eval_cpu_s[1 : epochs + 1]
            run["outer_s"] += clock.outer_s
            run["outer_cpu_s"] += clock.outer_cpu_s
            run["holdout_nll"].append(report.holdout_nll)
            n_train, n_hold = report.train_size, report.holdout_size
            steps = math.ceil(n_train / run["trainer"].batch_size)
            log(
                f"train: repeat {r} {name}: epochs {[round(x, 2) for x in ep]} s (CPU "
                f"{[round(x, 2) for x in clock.cpu_epochs(epochs)]}), outer {[round(x, 2) for x in clock.outer_s]}"
            )
        step_s = fl.train_step_s(ENSEMBLE, 256, dims)
        eval_s = fl.forward_s(ENSEMBLE, n_hold, dims)
        floor_epoch.append(steps * step_s + eval_s)
        floor_eval.append(eval_s)
    out: dict[str, Any] = {
        "data": data_note,
        "transitions": n,
        "train_rows": n_train,
        "holdout_rows": n_hold,
        "steps_per_epoch": steps,
        "epochs_per_fit": epochs,
        "repeats": repeats,
        "bf16": bf16_reason,
        "flops_per_epoch": steps * train_step_flops(ENSEMBLE, 256, dims) + forward_flops(ENSEMBLE, n_hold, dims),
        "floor_epoch_s": stats(floor_epoch),
        "floor_holdout_pass_s": stats(floor_eval),
        "load_before": load0,
        "load_after": loadavg(),
    }
    for name, run in runs.items():
        out[name] = {
            "epoch_s": stats(run["epoch_s"]),
            "epoch_cpu_s": stats(run["epoch_cpu_s"]),
            "holdout_pass_s": stats(run["eval_s"]),
            "holdout_pass_cpu_s": stats(run["eval_cpu_s"]),
            "outer_step_s": stats(run["outer_s"]) if run["outer_s"] else None,
            "outer_step_cpu_s": stats(run["outer_cpu_s"]) if run["outer_cpu_s"] else None,
            "holdout_nll": [round(x, 4) for x in run["holdout_nll"]],
        }
        if run["outer_s"]:  # the epoch without its outer step, and the outer step as a fraction of that epoch
            inner = [e - o for e, o in zip(run["epoch_s"], run["outer_s"], strict=False)]
            inner_cpu = [e - o for e, o in zip(run["epoch_cpu_s"], run["outer_cpu_s"], strict=False)]
            out[name]["epoch_without_outer_s"] = stats(inner)
            out[name]["epoch_without_outer_cpu_s"] = stats(inner_cpu)
            out[name]["outer_fraction"] = round(float(np.median(run["outer_cpu_s"]) / np.median(inner_cpu)), 3)
    # ratios in process CPU time: NLL and PG fits ran minutes apart, at whatever load the machine had then
    nll = float(np.median(runs["nll"]["epoch_cpu_s"]))
    pg_inner = out["pg"].get("epoch_without_outer_cpu_s", out["pg"]["epoch_cpu_s"])["median"]
    out["pg_over_nll"] = round(pg_inner / nll, 3)
    out["nll_over_floor"] = round(float(np.median(runs["nll"]["epoch_cpu_s"])) / float(np.median(floor_epoch)), 3)
    out["floor_clock"] = "process CPU time" if device.type == "cpu" else "wall"
    return out


# ============================================================================================== plan
def _plan_model(dims_key: str, device: torch.device) -> tuple[Any, Any, Any, int, int]:
    """(model, termination_fn, reward_fn, obs_dim, act_dim) for one set of planning dims."""
    from mbrl_po.models.ensemble import GaussianEnsemble

    _, o, a = PLAN_DIMS[dims_key]
    term = rew = None
    if dims_key == "ip":  # known exact reward and termination, as mbrl-lib's runner uses
        from mbrl_po.envs.rewards import REWARDS
        from mbrl_po.envs.terminations import TERMINATIONS

        term, rew = TERMINATIONS["inverted_pendulum"], REWARDS["inverted_pendulum"]
    torch.manual_seed(0)
    model = GaussianEnsemble(
        o, a, ensemble_size=ENSEMBLE, num_elites=ELITES, hidden_sizes=HIDDEN, learn_reward=rew is None, device=device
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, o, generator=g)
    u = torch.rand(1000, a, generator=g) * 2 - 1
    model.fit_normalizers(
        x.to(device),
        u.to(device),
        (x + 0.05 * torch.randn(1000, o, generator=g)).to(device),
        torch.randn(1000, generator=g).to(device),
    )
    model.set_elites([0, 2, 3, 5, 6])
    model.eval()
    return model, term, rew, o, a


def _make_agent(
    model: Any,
    term: Any,
    rew: Any,
    act_dim: int,
    rung: tuple[int, int, int, int],
    device: torch.device,
    seed: int = 0,
) -> Any:
    from mbrl_po.models.model_env import ModelEnv
    from mbrl_po.planning import MPCAgent, make_optimizer
    from mbrl_po.planning.evaluator import TrajectoryEvaluator

    pop, part, hor, iters = rung
    env = ModelEnv(model, term, rew, "ts1", torch.Generator(device=device).manual_seed(seed))
    low, high = -torch.ones(act_dim, device=device), torch.ones(act_dim, device=device)
    opt = make_optimizer("cem", hor, low, high, population=pop, iterations=iters, elite_fraction=0.1, alpha=0.1)
    return MPCAgent(opt, TrajectoryEvaluator(env, part), device=device, seed=seed)


def run_plan(device: torch.device, quick: bool, budget_s: float,
             rungs: tuple[tuple[int, int, int, int], ...] | None = None,
             dims_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """ms per planned action at each rung (default :data:`RUNGS`, the largest skipped with ``quick``) on each
    of ``dims_keys`` (default every :data:`PLAN_DIMS`), beside the matmul floor."""
    rungs = rungs or (RUNGS[:-1] if quick else RUNGS)
    max_reps = 3 if quick else 7
    fl = Floor(device)
    results = []
    for dims_key in dims_keys or tuple(PLAN_DIMS):
        model, term, rew, o, a = _plan_model(dims_key, device)
        dims = layer_dims(o, a, learn_reward=rew is None)
        for rung in rungs:
            pop, part, hor, iters = rung
            rows = -(-pop * part // ELITES)
            agent = _make_agent(model, term, rew, a, rung, device)
            obs = np.zeros(o, dtype=np.float32)
            load0 = loadavg()
            sync(device)
            t = time.perf_counter()
            agent.act(obs)  # warm-up (lazy initialisation, caches)
            sync(device)
            warm = time.perf_counter() - t
            reps = int(max(2, min(max_reps, budget_s // max(2 * warm, 1e-9))))
            ours, ours_busy, floor = [], [], []
            for _ in range(reps):
                sync(device)
                t, c = time.perf_counter(), fl.clock()
                agent.act(obs)
                sync(device)
                ours.append(time.perf_counter() - t)
                ours_busy.append(fl.clock() - c)
                floor.append(iters * hor * fl.forward_s(ELITES, rows, dims))
            ratio = [x / f for x, f in zip(ours_busy, floor, strict=True)]
            name = "x".join(map(str, rung))
            log(
                f"plan {dims_key} {name}: {np.median(ours) * 1e3:.1f} ms/action (CPU "
                f"{np.median(ours_busy) * 1e3:.1f}), floor "
                f"{np.median(floor) * 1e3:.1f} ms, ratio {np.median(ratio):.2f}"
            )
            results.append(
                {
                    "dims": dims_key,
                    "env": PLAN_DIMS[dims_key][0],
                    "rung": name,
                    "population": pop,
                    "particles": part,
                    "horizon": hor,
                    "iterations": iters,
                    "rows_per_member": rows,
                    "reward": "learned head" if rew is None else "known fn (inverted_pendulum)",
                    "flops_per_action": iters * hor * forward_flops(ELITES, rows, dims),
                    "ms_per_action": stats(ours, 1e3),
                    "busy_ms_per_action": stats(ours_busy, 1e3),
                    "floor_ms": stats(floor, 1e3),
                    "over_floor": stats(ratio),
                    "warmup_ms": round(warm * 1e3, 1),
                    "load_before": load0,
                    "load_after": loadavg(),
                }
            )
    return {"results": results, "skipped": [] if not quick else ["x".join(map(str, RUNGS[-1])) + " (--quick)"]}


# ============================================================================================== mbpo
def run_mbpo(device: torch.device, quick: bool) -> dict[str, Any]:
    """Where one MBPO env step's time goes on Hopper-v5 dims, each part timed separately (see the doc)."""
    from mbrl_po import DynamicsTrainer, GaussianEnsemble
    from mbrl_po.config import load_agent_config
    from mbrl_po.data.replay_buffer import ReplayBuffer
    from mbrl_po.models.model_env import ModelEnv

    cfg = load_agent_config("mbpo", "hopper")
    m, s = cfg.model, cfg.sac
    o, a = HOPPER_OBS, HOPPER_ACT
    out: dict[str, Any] = {
        "settings": {
            "sac_updates_per_step": cfg.mbpo.updates_per_step,
            "sac_batch": s.batch_size,
            "sac_net_arch": list(s.net_arch),
            "rollouts_per_step": cfg.mbpo.rollouts_per_step,
            "train_every": cfg.loop.train_every,
            "model": f"E={m.ensemble_size} ({m.num_elites} elites) {'x'.join(map(str, m.hidden_sizes))}",
            "model_fit": f"lr {m.lr}, wd {m.weight_decay}, batch {m.batch_size}, max_epochs {m.max_epochs}, "
            f"patience {m.patience}",
            "real_ratio": cfg.mbpo.real_ratio,
        },
        "load_before": loadavg(),
    }
    # --- real data: the first retrain sees init_steps + train_every transitions; each warm-started retrain
    # after it sees train_every more (the agent keeps its model and optimizer between retrains)
    n_real = cfg.loop.init_steps + cfg.loop.train_every
    n_warm = 2 if quick else 4
    n_collect = n_real + n_warm * cfg.loop.train_every
    env = None
    try:
        from mbrl_po.data.collect import collect
        from mbrl_po.envs.task import load_task, make_env

        task = load_task("hopper")
        data = collect(task, n_collect, seed=0, progress=False)
        env = make_env(task, seed=0)
        term_fn = task.termination_fn()
        out["data"] = f"{n_real} real Hopper-v5 random-policy transitions"
    except Exception as exc:  # noqa: BLE001
        from mbrl_po.envs.terminations import never

        g = np.random.default_rng(0)
        data = {
            "obs": g.standard_normal((n_collect, o)).astype(np.float32),
            "actions": g.uniform(-1, 1, (n_collect, a)).astype(np.float32),
            "rewards": g.standard_normal(n_collect),
        }
        data["next_obs"] = data["obs"] + 0.1 * g.standard_normal((n_collect, o)).astype(np.float32)
        data["terminated"] = np.zeros(n_collect, dtype=bool)
        term_fn = never
        out["data"] = f"random data of Hopper dims ({type(exc).__name__}: {exc})"
    real = ReplayBuffer(n_collect + 1000, o, a, rng=np.random.default_rng(0))

    def add_real(lo: int, hi: int) -> None:
        real.add_batch(*(data[k][lo:hi] for k in ("obs", "actions", "rewards", "next_obs", "terminated")))

    add_real(0, n_real)
    # --- model retraining (first fit, from scratch, with the agent's settings), amortised over train_every
    torch.manual_seed(0)
    model = GaussianEnsemble(
        o, a, ensemble_size=m.ensemble_size, num_elites=m.num_elites, hidden_sizes=m.hidden_sizes, device=device
    )
    trainer = DynamicsTrainer(
        model,
        "nll",
        lr=m.lr,
        weight_decay=m.weight_decay,
        batch_size=m.batch_size,
        max_epochs=m.max_epochs,
        patience=m.patience,
        progress=False,
        seed=0,
    )
    def timed_fit(wall: list[float], cpu_s: list[float], n_epochs: list[int]) -> None:
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        rep = trainer.fit(real.transitions(device=device))
        sync(device)
        wall.append(time.perf_counter() - t)
        cpu_s.append(time.process_time() - c)
        n_epochs.append(len(rep.epochs))

    fits: list[float] = []
    fit_cpu: list[float] = []
    epochs: list[int] = []
    for _ in range(1 if quick else 2):
        model.load_state_dict(
            GaussianEnsemble(
                o, a, ensemble_size=m.ensemble_size, num_elites=m.num_elites, hidden_sizes=m.hidden_sizes, device=device
            ).state_dict()
        )
        timed_fit(fits, fit_cpu, epochs)
    out["retrain_s"] = stats(fits)
    out["retrain_epochs"] = epochs
    log(f"mbpo: retrain {fits} s, epochs {epochs}")
    # --- warm-started retrains, as in the agent: same model, optimizer and trainer, train_every more rows each
    warm: list[float] = []
    warm_cpu: list[float] = []
    warm_epochs: list[int] = []
    for i in range(n_warm):
        add_real(n_real + i * cfg.loop.train_every, n_real + (i + 1) * cfg.loop.train_every)
        timed_fit(warm, warm_cpu, warm_epochs)
    out["retrain_warm_s"] = stats(warm)
    out["retrain_warm_epochs"] = warm_epochs
    # a run of cfg.steps env steps retrains F times: once from scratch, then warm-started
    n_fits = max(1, (cfg.steps - cfg.loop.init_steps) // cfg.loop.train_every)
    out["schedule"] = {"steps": cfg.steps, "fits": n_fits}

    def schedule_mean(first: float, warm_values: list[float]) -> float:
        return (first + (n_fits - 1) * float(np.median(warm_values))) / n_fits

    log(f"mbpo: warm retrains {warm} s, epochs {warm_epochs}")
    # --- SAC (stable-baselines3) on Hopper spaces, sampling through the agent's MixedSampler
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC  # noqa: N811
    from stable_baselines3.common.logger import Logger as SB3Logger

    from mbrl_po.agents.mbpo import MixedSampler, SpacesOnlyEnv

    obs_space = gym.spaces.Box(-np.inf, np.inf, (o,), np.float64)
    act_space = gym.spaces.Box(-1.0, 1.0, (a,), np.float32)
    sac = SB3SAC(
        "MlpPolicy",
        SpacesOnlyEnv(obs_space, act_space),
        learning_rate=s.learning_rate,
        buffer_size=1,
        batch_size=s.batch_size,
        tau=s.tau,
        gamma=s.gamma,
        target_entropy=s.target_entropy,
        policy_kwargs={"net_arch": list(s.net_arch)},
        seed=0,
        device=device,
    )
    sac.set_logger(SB3Logger(folder=None, output_formats=[]))  # in memory: no /tmp/SB3-<date> folder
    model_buf = ReplayBuffer(cfg.mbpo.rollouts_per_step * cfg.mbpo.epoch_length, o, a, rng=np.random.default_rng(1))
    model_buf.add_batch(data["obs"], data["actions"], data["rewards"], data["next_obs"], data["terminated"])
    sac.replay_buffer = MixedSampler(real, model_buf, cfg.mbpo.real_ratio, act_space.low, act_space.high, sac.device)  # type: ignore[assignment]
    low = torch.as_tensor(act_space.low, device=device)
    high = torch.as_tensor(act_space.high, device=device)

    def policy(x: torch.Tensor) -> torch.Tensor:
        scaled = sac.actor(x.to(sac.device, torch.float32), deterministic=False)
        return low + 0.5 * (scaled.to(device) + 1.0) * (high - low)

    menv = ModelEnv(model, term_fn, None, "ts1", torch.Generator(device=device).manual_seed(7))

    def rollouts(k: int) -> None:
        start = real.sample(cfg.mbpo.rollouts_per_step, device).obs
        ro = menv.rollout_policy(start, policy, k)
        d = ro.to_transitions()
        model_buf.add_batch(d.obs, d.actions, d.rewards, d.next_obs, d.terminated)

    from mbrl_po.agents.sac_update import LeanSACUpdate

    lean = LeanSACUpdate(sac, fused_adam=True)  # what the agents run

    def sac_updates() -> None:
        lean.train(gradient_steps=cfg.mbpo.updates_per_step, batch_size=s.batch_size)

    def sac_updates_sb3() -> None:  # stable-baselines3's own SAC.train, for comparison (not in the step total)
        sac.train(gradient_steps=cfg.mbpo.updates_per_step, batch_size=s.batch_size)

    obs_np = data["obs"][0]

    def act_and_add() -> None:
        act = sac.predict(obs_np, deterministic=False)[0]
        real.add(obs_np, act, 0.0, obs_np, False, False)

    env_obs = [None]

    def env_step() -> None:
        if env_obs[0] is None:
            env_obs[0] = env.reset(seed=0)[0]
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env_obs[0] = env.reset()[0]

    parts: dict[str, Callable[[], None]] = {
        "sac_updates": sac_updates,
        "sac_updates_sb3": sac_updates_sb3,
        "model_rollouts_k1": lambda: rollouts(1),
        "model_rollouts_k15": lambda: rollouts(15),
        "policy_act_and_buffer_add": act_and_add,
    }
    if env is not None:
        parts["env_step"] = env_step
    reps = 5 if quick else 15
    times: dict[str, list[float]] = {k: [] for k in parts}
    cpu: dict[str, list[float]] = {k: [] for k in parts}
    for f in parts.values():  # warm-up
        f()
    for _ in range(reps):
        for k, f in parts.items():
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            f()
            sync(device)
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    ms = {k: stats(v, 1e3) for k, v in times.items()}
    out["cpu_ms"] = {k: stats(v, 1e3) for k, v in cpu.items()}
    # amortised retraining: "first" = the from-scratch fit alone (an upper bound, comparable with mbrl-lib's
    # figure, which is also its first fit); "schedule" = averaged over a run's retrains (one from scratch,
    # the rest warm-started), which is what the agent pays per env step over a run
    every = cfg.loop.train_every
    out["cpu_ms"]["retrain_amortised"] = stats([x / every for x in fit_cpu], 1e3)
    ms["retrain_amortised"] = stats([x / every for x in fits], 1e3)
    out["cpu_ms"]["retrain_warm_amortised"] = stats([x / every for x in warm_cpu], 1e3)
    ms["retrain_warm_amortised"] = stats([x / every for x in warm], 1e3)
    out["cpu_ms"]["retrain_schedule_amortised"] = stats([schedule_mean(x, warm_cpu) / every for x in fit_cpu], 1e3)
    ms["retrain_schedule_amortised"] = stats([schedule_mean(x, warm) / every for x in fits], 1e3)
    out["ms"] = ms
    med_cpu = {k: v["median"] for k, v in out["cpu_ms"].items()}
    # alternatives to the first fit, and SB3's own SAC.train beside the lean one the agents run
    retrain_keys = ("retrain_warm_amortised", "retrain_schedule_amortised", "sac_updates_sb3")
    out["step_cpu_ms_k1"] = round(
        sum(med_cpu[k] for k in med_cpu if k != "model_rollouts_k15" and k not in retrain_keys), 2
    )
    out["step_cpu_ms_k15"] = round(
        sum(med_cpu[k] for k in med_cpu if k != "model_rollouts_k1" and k not in retrain_keys), 2
    )
    med = {k: v["median"] for k, v in ms.items()}
    step_k1 = sum(
        med[k] for k in ("sac_updates", "model_rollouts_k1", "retrain_amortised", "policy_act_and_buffer_add")
    ) + med.get("env_step", 0.0)
    out["step_ms_k1"] = round(step_k1, 2)
    out["step_ms_k15"] = round(step_k1 - med["model_rollouts_k1"] + med["model_rollouts_k15"], 2)
    out["step_ms_k1_schedule"] = round(step_k1 - med["retrain_amortised"] + med["retrain_schedule_amortised"], 2)
    # shares in process CPU time (the parts ran at different moments of a loaded machine)
    for tag, key in (("", "retrain_schedule_amortised"), ("_first_fit", "retrain_amortised")):
        for k in ("k1", "k15"):
            out[f"model_share_of_sac_{k}{tag}"] = round(
                (med_cpu[f"model_rollouts_{k}"] + med_cpu[key]) / med_cpu["sac_updates"], 3
            )
    out["ms_per_sac_update"] = round(med["sac_updates"] / cfg.mbpo.updates_per_step, 3)
    out["ms_per_sac_update_sb3"] = round(med["sac_updates_sb3"] / cfg.mbpo.updates_per_step, 3)
    out["load_after"] = loadavg()
    log(f"mbpo: step {out['step_ms_k1']} ms (k=1), model share of SAC {out['model_share_of_sac_k1']}")
    return out


# ============================================================================================== seeds
def _worker_plan(rung: str, dims_key: str, actions: int, seed: int, threads: int, device: str) -> dict[str, Any]:
    if threads > 0:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    model, term, rew, o, a = _plan_model(dims_key, dev)
    agent = _make_agent(model, term, rew, a, tuple(int(x) for x in rung.split("x")), dev, seed=seed)
    obs = np.zeros(o, dtype=np.float32)
    t = time.perf_counter()
    for _ in range(actions):
        agent.act(obs)
    sync(dev)
    return {"work_s": time.perf_counter() - t}


def run_seeds(device: torch.device, quick: bool, threads: int) -> dict[str, Any]:
    rung, dims_key, actions = ("64x5x10x3", "ip", 15) if quick else ("100x10x15x5", "ip", 20)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness.speed",
        "--worker-plan",
        rung,
        "--worker-dims",
        dims_key,
        "--worker-actions",
        str(actions),
        "--threads",
        str(threads),
        "--device",
        str(device),
    ]

    # the workers import this module from the checkout: put its root first on their PYTHONPATH
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}

    def launch(n: int) -> tuple[float, list[float]]:
        t = time.perf_counter()
        procs = [subprocess.Popen([*cmd, "--seed", str(k)], stdout=subprocess.PIPE, text=True, env=env)
                 for k in range(n)]
        outs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t
        work = [json.loads(x.strip().splitlines()[-1])["work_s"] for x in outs]
        return wall, work

    load0 = loadavg()
    w1, k1 = launch(1)
    w5, k5 = launch(5)
    log(f"seeds: 1 seed {w1:.1f} s wall, 5 seeds {w5:.1f} s wall")
    return {
        "workload": f"{actions} CEM actions, rung {rung}, {PLAN_DIMS[dims_key][0]} dims, one process per seed "
        f"({threads or 'default'} torch thread(s) each), all 5 started at once",
        "one_seed_wall_s": round(w1, 2),
        "five_seeds_wall_s": round(w5, 2),
        "ratio_wall": round(w5 / w1, 2),
        "one_seed_work_s": round(k1[0], 2),
        "five_seeds_work_s": [round(x, 2) for x in k5],
        "ratio_work": round(max(k5) / k1[0], 2),
        "cpu_count": os.cpu_count(),
        "load_before": load0,
        "load_after": loadavg(),
    }


# ============================================================================================== peer
def load_peer(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


#: each of our sections and the peer runner's workload that measures the same thing
PEER_WORKLOADS = {"train": ["train-epoch", "--repeats", "3"], "plan": ["plan", "--repeats", "5"],
                  "mbpo": ["mbpo-step"]}


def parse_rungs(text: str) -> tuple[tuple[int, int, int, int], ...]:
    """``"100x5x30x3,64x5x10x3"`` -> ((100, 5, 30, 3), (64, 5, 10, 3)); a ValueError naming the form otherwise."""
    out = []
    for part in text.split(","):
        bits = part.strip().lower().split("x")
        if len(bits) != 4 or not all(b.isdigit() and int(b) > 0 for b in bits):
            raise ValueError(f"rungs: got {part!r}, allowed POPxPARTICLESxHORIZONxITERS with positive integers")
        out.append(tuple(int(b) for b in bits))
    return tuple(out)  # type: ignore[return-value]


def run_peer_workload(python: str, section: str, threads: int, device: str,
                      extra: list[str] | None = None) -> dict[str, Any]:
    """Run mbrl-lib's side of ``section`` now (``benchmarks/peers/mbrl_lib.py`` with the peer venv's
    ``python``) and return its result in the form of a ``workloads`` entry of the peer JSON."""
    import subprocess

    runner = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "mbrl_lib.py"
    if not runner.exists():
        raise ValueError(f"peer-python: the peer runner {runner} is not there (run from a checkout)")
    cmd = [python, str(runner), *PEER_WORKLOADS[section], *(extra or []), "--threads", str(max(threads, 0)),
           "--device", device]
    log(f"peer: {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"peer {section}: exit {proc.returncode}: {' | '.join(tail)}")
    res = json.loads(lines[-1])
    return {"command": res.get("command"), "machine": res.get("machine"), **res["result"]}


def peer_comparable(peer: dict[str, Any] | None, machine: dict[str, Any]) -> tuple[bool, str]:
    """Whether a ratio to mbrl-lib may be printed: only for figures measured in this very invocation
    (``peer["same_run"]``) on this machine (CPU model). Returns (ok, the reason when not)."""
    if peer is None:
        return False, "mbrl-lib pending"
    theirs = (peer.get("machine") or {}).get("cpu_model")
    if theirs and theirs != machine.get("cpu_model"):
        return False, f"not compared: other machine (mbrl-lib measured on {theirs})"
    if not peer.get("same_run"):
        return False, "not compared: other run (pass --peer-python to measure mbrl-lib in this one)"
    return True, ""


def _peer_work(peer: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return None if peer is None else peer.get("workloads", {}).get(name)


def _median(st: Any) -> float | None:
    return st.get("median") if isinstance(st, dict) else None


def peer_train_epoch_s(peer: dict[str, Any] | None, cpu: bool = False) -> tuple[float | None, str]:
    """mbrl-lib's epoch as its ModelTrainer runs it (train pass + validation pass): wall or process CPU seconds."""
    w = _peer_work(peer, "train-epoch")
    if not w:
        return None, "pending"
    key = "epoch_with_validation_process_cpu_s" if cpu else "epoch_with_validation_s"
    return _median(w.get(key)), _peer_note(w)


def peer_plan_ms(peer: dict[str, Any] | None, env: str, rung: str, cpu: bool = False) -> tuple[float | None, str]:
    """mbrl-lib's ms per action for one rung: wall or process CPU time."""
    w = _peer_work(peer, "plan")
    if not w:
        return None, "pending"
    for r in w.get("results", []):
        if r.get("env_dims") == env and r.get("rung") == rung:
            return _median(r.get("process_cpu_ms_per_action" if cpu else "ms_per_action")), _peer_note(r)
    return None, "not run"


def _peer_note(w: dict[str, Any]) -> str:
    load = w.get("load_before")
    if isinstance(load, dict):
        load = load.get("loadavg") or load.get("load")
    return f"load {load}" if load is not None else ""


def peer_header(peer: dict[str, Any] | None) -> str:
    if peer is None:
        return f"mbrl-lib: pending (`{PEER_JSON}` not found when this file was written)."
    machine = peer.get("machine") or {}
    date = machine.get("date_utc", "unknown date")
    threads = machine.get("torch_threads")
    if peer.get("same_run"):
        return (f"mbrl-lib 0.2.0 figures were measured **in this run**, each right after ours on the same machine "
                f"({machine.get('cpu_model')}, torch threads {threads}): the ratios compare like with like.")
    return (
        f"mbrl-lib 0.2.0 figures come from a **separate run** (`{PEER_JSON}`, {date}, torch threads {threads}); "
        "its load averages are given beside each figure. They are shown for reference; no ratio is computed from "
        "them ('not compared'): run `mbrl-po bench speed --peer-python <mbrl-lib venv>/bin/python` for ratios."
    )


# ============================================================================================== report
def _gpu(gpu: dict[str, Any] | None, getter: Callable[[dict[str, Any]], str]) -> str:
    if gpu is None:
        return GPU_PENDING
    try:
        return getter(gpu)
    except (KeyError, TypeError, IndexError):
        return "n/a"


def _gpu_plan_cell(gpu: dict[str, Any], row: dict[str, Any]) -> str:
    """The GPU run's ms per action for the same dims and rung."""
    for x in gpu["plan"]["results"]:
        if x["env"] == row["env"] and x["rung"] == row["rung"]:
            return fmt(x["ms_per_action"])
    return "n/a"


def _yes(ok: bool | None) -> str:
    return "pending" if ok is None else ("yes" if ok else "**no**")


def first_wall_time_at(metrics_csv: Path, target: float) -> tuple[float | None, int | None, float]:
    """(wall time, env step) of the first evaluation return >= target in a run's metrics.csv, and the best
    evaluation return; (None, None, best) when the target was never reached."""
    import csv

    best = float("-inf")
    with open(metrics_csv, newline="") as f:
        for r in csv.DictReader(f):
            if not r.get("eval_return"):
                continue
            ret = float(r["eval_return"])
            best = max(best, ret)
            if ret >= target:
                return float(r["wall_time"]), int(r["env_step"]), best
    return None, None, best


def return_per_second(peer: dict[str, Any] | None, demo_dir: Path = DEMO_DIR,
                      target: float = 900.0) -> tuple[str, str, str] | None:
    """Target 4 from committed runs: wall time to the first evaluation return >= 900 on InvertedPendulum-v5,
    ours (`mbrl-po demo`, each objective) against mbrl-lib's PETS (the peer's ``pets-ip`` workload).
    None when our demo runs are not there."""
    ours = {}
    for name in ("nll", "pg_learned"):
        path = demo_dir / f"metrics_{name}.csv"
        if path.is_file():
            ours[name] = first_wall_time_at(path, target)
    if not ours:
        return None
    parts = [
        f"ours {k}: {f'{w:.0f} s (step {st})' if w is not None else f'not reached (best {b:.0f})'}"
        for k, (w, st, b) in ours.items()
    ]
    pw = _peer_work(peer, "pets-ip")
    met: bool | None = None
    if pw:
        st_p = pw.get("settings") or {}
        rung = "x".join(str(st_p.get(k, "?")) for k in ("population", "particles", "horizon", "iterations"))
        if pw.get("reached"):
            peer_s = float(pw["time_to_target_s"])
            parts.append(f"mbrl-lib PETS {rung}: {peer_s:.0f} s")
        else:
            peer_s = float(pw.get("wall_s") or pw.get("max_seconds") or 0.0)
            parts.append(f"mbrl-lib PETS {rung}: not reached in {peer_s:.0f} s (best {pw.get('best_return')})")
        reached = [w for w, _, _ in ours.values() if w is not None]
        met = len(reached) == len(ours) and all(w < peer_s for w in reached)
        big, _ = peer_plan_ms(peer, "InvertedPendulum-v5", "400x20x30x5")
        parts.append(
            "mbrl-lib at its shipped settings (pets_inv_pendulum: 480×20×45×5, learned reward): not run"
            + (f"; its smaller 400×20×30×5 rung took {big / 1e3:.1f} s per action here, so a run to 900 would "
               "take many hours" if big else "")
        )
    else:
        parts.append("mbrl-lib pending")
    return (
        "PETS InvertedPendulum-v5: wall time to the first eval return ≥ 900 (separate runs; ours plans on a "
        "shaped reward, mbrl-lib on the env's)",
        "; ".join(parts),
        "partly: small settings only" if met else _yes(met),
    )


def _mbpo_share_text(b: dict[str, Any]) -> str:
    """The MBPO model share at both rollout lengths, with the first-fit-only figure where it was measured."""
    text = f"**{b['model_share_of_sac_k1']:.0%}** (k=1), **{b['model_share_of_sac_k15']:.0%}** (k=15)"
    if "model_share_of_sac_k1_first_fit" in b:
        text = (
            f"{text} with retraining averaged over a run's schedule; counting every retrain as the first, "
            f"from-scratch fit: {b['model_share_of_sac_k1_first_fit']:.0%} (k=1), "
            f"{b['model_share_of_sac_k15_first_fit']:.0%} (k=15)"
        )
    return text


def targets_summary(res: dict[str, Any], peer: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(target, measured value, met) rows for the targets this run measured."""
    rows: list[tuple[str, str, str]] = []
    ok, why = peer_comparable(peer, res["machine"])
    if not ok:
        peer = None  # no ratio from figures of another machine or run
    if "train" in res:
        t = res["train"]
        pe, _ = peer_train_epoch_s(peer)
        pe_cpu, _ = peer_train_epoch_s(peer, cpu=True)
        nll = t["nll"]["epoch_s"]["median"]
        nll_cpu = t["nll"].get("epoch_cpu_s", t["nll"]["epoch_s"])["median"]
        value = why or "mbrl-lib pending"
        if pe:
            value = f"mbrl-lib / ours = {pe / nll:.2f}× wall ({_num(pe)} s vs {_num(nll)} s)"
            if pe_cpu:
                value += f", {pe_cpu / nll_cpu:.2f}× CPU time ({_num(pe_cpu)} s vs {_num(nll_cpu)} s)"
            value += "; same run, interleaved"
            floor_cpu = t.get("floor_epoch_s", {}).get("median")
            if pe_cpu and floor_cpu:
                bound = pe_cpu / floor_cpu
                value += (
                    f". Bound: mbrl-lib / floor = {bound:.2f}× (CPU time), the most that code running at the "
                    f"{res['machine'].get('bf16', {}).get('fast') and 'bf16' or 'float32'} matmul floor could gain"
                    + (", so 2× is out of reach with this dtype on this CPU" if bound < 2 else "")
                )
        best = max(x for x in (pe and pe / nll, pe_cpu and pe_cpu / nll_cpu, 0) if x is not None)
        rows.append(
            ("NLL epoch ≥ 2× faster than mbrl-lib's ModelTrainer (CPU)", value, _yes(None if not pe else best >= 2))
        )
        rows.append(("PG (G=5) epoch ≤ 1.3× NLL epoch", f"{t['pg_over_nll']:.2f}×", _yes(t["pg_over_nll"] <= 1.3)))
        frac = t["pg"].get("outer_fraction")
        if frac is not None:
            rows.append(("bilevel outer step, as a fraction of an epoch (report)", f"{frac:.0%}", "reported"))
    if "plan" in res:
        rs = res["plan"]["results"]
        over = [r["over_floor"]["median"] for r in rs]
        rows.append(
            (
                "planning within 1.3× of the floor at every rung",
                f"ours / floor {min(over):.2f}–{max(over):.2f}×",
                _yes(max(over) <= 1.3),
            )
        )
        speedups, cpu_speedups = [], []
        for r in rs:
            pm, _ = peer_plan_ms(peer, r["env"], r["rung"])
            pc, _ = peer_plan_ms(peer, r["env"], r["rung"], cpu=True)
            if pm:
                speedups.append(pm / r["ms_per_action"]["median"])
            if pc and "busy_ms_per_action" in r:
                cpu_speedups.append(pc / r["busy_ms_per_action"]["median"])
        value = why or "mbrl-lib pending"
        if speedups:
            value = f"mbrl-lib / ours {min(speedups):.2f}–{max(speedups):.2f}× wall"
            if cpu_speedups:
                value += f", {min(cpu_speedups):.2f}–{max(cpu_speedups):.2f}× CPU time"
            value += f" over {len(speedups)} rungs (same run)"
            bounds = [
                pc / r["floor_ms"]["median"]
                for r in rs
                for pc in [peer_plan_ms(peer, r["env"], r["rung"], cpu=True)[0]]
                if pc and r.get("floor_ms")
            ]
            if bounds:
                value += (
                    f". Bound: mbrl-lib / floor = {min(bounds):.2f}–{max(bounds):.2f}× (CPU time), the most that "
                    "code at the matmul floor could gain"
                    + (f"; 3× is out of reach at {sum(b < 3 for b in bounds)} of {len(bounds)} rungs with this "
                       "dtype on this CPU" if min(bounds) < 3 else "")
                )
        rows.append(
            (
                "planning ≥ 3× faster than mbrl-lib at every rung",
                value,
                _yes(None if not speedups else min(speedups) >= 3),
            )
        )
    if "mbpo" in res:
        b = res["mbpo"]
        rows.append(
            (
                "MBPO: model share ≤ 25% of the SAC updates' time",
                _mbpo_share_text(b),
                _yes(b["model_share_of_sac_k1"] <= 0.25 and b["model_share_of_sac_k15"] <= 0.25),
            )
        )
        pw = _peer_work(peer, "mbpo-step")
        pm = pw.get("amortised_ms_per_env_step") if pw else None
        rows.append(
            (
                "MBPO: whole step faster than mbrl-lib's",
                f"{b['step_ms_k1']:.0f} ms vs mbrl-lib {pm:.0f} ms (same run; SAC nets differ, see §4)"
                if pm
                else why or "mbrl-lib pending",
                _yes(None if not pm else b["step_ms_k1"] < pm),
            )
        )
    t4 = return_per_second(peer)
    if t4 is not None:
        rows.append(t4)
    if "seeds" in res:
        rows.append(
            ("several seeds on CPU: 5 seeds / 1 seed wall time (report)", f"{res['seeds']['ratio_wall']}×", "reported")
        )
    m = res["machine"]
    rows.append(
        (
            "fallbacks: bf16 only where it is fast; torch.compile off by default on CPU",
            ("bf16 used" if m["bf16"]["fast"] else "bf16 off (no bf16 matrix instructions)")
            + "; compile: `MPCAgent(compile=True)` falls back to eager with a warning",
            "yes",
        )
    )
    return rows


def write_report(res: dict[str, Any], out: Path, gpu: dict[str, Any] | None, peer: dict[str, Any] | None) -> None:
    m = res["machine"]
    comparable, not_compared = peer_comparable(peer, m)  # ratios only for figures of this run and machine
    L: list[str] = []
    add = L.append
    add("# Performance: model training, planning and MBPO against the matmul floor and mbrl-lib\n")
    add(
        "Written by `mbrl-po bench speed` (`benchmarks/harness/speed.py`); do not edit by hand. Every figure is a "
        "median over repeats with its interquartile range and count as `median (p25–p75, n)`. The **floor** of a "
        "workload is its matmul FLOPs divided by the throughput `torch.bmm` reaches on this machine for the "
        "ensemble's exact layer shapes, measured in the same run, interleaved with the workload (one floor "
        "measurement per repeat), so `ours / floor` compares like with like on a loaded machine. "
        "Optimisations and their measured effect: `docs/perf_notes.md`.\n"
    )
    add("## Machine\n")
    flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    add("| | |\n| --- | --- |")
    for k, v in (
        ("date (UTC)", m["date_utc"]),
        ("commit", m["commit"]),
        ("CPU", f"{m['cpu_model']}, {m['cpu_count']} logical cores"),
        ("CPU flags", flags),
        ("torch", f"{m['torch']}, {m['torch_threads']} thread(s), OMP_WAIT_POLICY={m['omp_wait_policy']}"),
        ("device", m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")),
        ("bf16", ("used where it helps: " if m["bf16"]["fast"] else "not used: ") + m["bf16"]["reason"]),
        ("load average (1, 5, 15 min)", f"start {res['load_start']}, end {res['load_end']}"),
        ("mode", "--quick" if res["quick"] else "full"),
        ("bench wall time", f"{res['wall_s']:.0f} s"),
    ):
        add(f"| {k} | {v} |")
    add("")
    if res.get("notes"):
        add(f"Note: {res['notes']}.\n")
    add(peer_header(peer) + "\n")
    summary = targets_summary(res, peer)
    if summary:
        add("## Targets (issue 8) on this machine\n")
        add("| target | measured here | met |\n| --- | --- | --- |")
        for target, value, met in summary:
            add(f"| {target} | {value} | {met} |")
        add("")
    if "floor" in res:
        f = res["floor"]
        add("## 1. Floor: batched-matmul throughput for the ensemble's shapes\n")
        add(
            f"Load average {f['load']}. `fwd` is (E, rows, in) @ (E, in, out); `dw` and `dx` are the weight- and "
            "input-gradient matmuls of the backward pass, read through transposes as autograd does.\n"
        )
        add(
            "| workload | E | rows/member | in → out | kind | µs | GFLOP/s |\n"
            "| --- | --- | --- | --- | --- | --- | --- |"
        )
        for r in f["shapes"]:
            add(
                f"| {r['workload']} | {r['E']} | {r['rows']} | {r['in']} → {r['out']} | {r['kind']} | {r['us']} | "
                f"{r['gflops']} |"
            )
        add(
            f"\nbf16 probe ({f['bf16_probe']['shape']}, GFLOP/s): float32 {f['bf16_probe'].get('float32')}, bfloat16 "
            f"{f['bf16_probe'].get('bfloat16')}. {m['bf16']['reason']}.\n"
        )
    if "train" in res:
        t = res["train"]
        add("## 2. Model training: one epoch over 100k HalfCheetah-v5 transitions\n")
        add(
            f"Data: {t['data']}. E=7, 4×200 SiLU, batch 256, `DynamicsTrainer` with its defaults (10% held out, "
            f"capped at 5000 rows): {t['train_rows']} training rows, {t['steps_per_epoch']} Adam steps, then the "
            f"held-out pass over {t['holdout_rows']} rows; {t['epochs_per_fit']} epoch(s) per fit × {t['repeats']} "
            f"fits, NLL and PG fits alternating. Matmul FLOPs per epoch {t['flops_per_epoch'] / 1e9:.0f} GFLOP. "
            f"Load average {t['load_before']} → {t['load_after']}. bf16: {t['bf16']}.\n"
        )
        pe, pnote = peer_train_epoch_s(peer)
        pe_cpu, _ = peer_train_epoch_s(peer, cpu=True)
        add(
            f"Wall time and, for the ratios, process CPU time (one torch thread; the floor is measured in CPU time "
            f"too: {t.get('floor_clock', 'wall')}).\n"
        )
        add(
            "| | ours, wall (s/epoch) | ours, CPU (s/epoch) | floor (s) | ours / floor | mbrl-lib, wall | "
            "mbrl-lib, CPU | GPU |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
        )
        fl_med = t["floor_epoch_s"]["median"]
        nll = t["nll"]["epoch_s"]
        nll_cpu = t["nll"].get("epoch_cpu_s", nll)
        add(
            f"| NLL epoch (train pass + held-out pass) | {fmt(nll)} | {fmt(nll_cpu)} | {fmt(t['floor_epoch_s'])} | "
            f"{nll_cpu['median'] / fl_med:.2f} | {_num(pe) if pe else 'pending'} {pnote} | {_num(pe_cpu)} | "
            f"{_gpu(gpu, lambda g: fmt(g['train']['nll']['epoch_s']))} |"
        )
        pg = t["pg"]
        add(
            f"| PG epoch, G=5, with its outer step | {fmt(pg['epoch_s'])} | {fmt(pg.get('epoch_cpu_s'))} | – | – | – | "
            f"– | {_gpu(gpu, lambda g: fmt(g['train']['pg']['epoch_s']))} |"
        )
        pg_in = pg.get("epoch_without_outer_cpu_s")
        add(
            f"| PG epoch, G=5, without the outer step | {fmt(pg.get('epoch_without_outer_s', pg['epoch_s']))} | "
            f"{fmt(pg_in)} | {fmt(t['floor_epoch_s'])} | "
            f"{_num(pg_in['median'] / fl_med, 3) if pg_in else '–'} | – | – | "
            f"{_gpu(gpu, lambda g: fmt(g['train']['pg']['epoch_without_outer_s']))} |"
        )
        ho_cpu = t["nll"].get("holdout_pass_cpu_s")
        peer_val = _median((_peer_work(peer, "train-epoch") or {}).get("validation_pass_s"))
        add(
            f"| held-out pass alone (NLL run) | {fmt(t['nll']['holdout_pass_s'])} | {fmt(ho_cpu)} | "
            f"{fmt(t['floor_holdout_pass_s'])} | "
            f"{_num(ho_cpu['median'] / t['floor_holdout_pass_s']['median'], 3) if ho_cpu else '–'} | "
            f"{_num(peer_val) + ' (20k rows)' if peer_val else '–'} | – | – |"
        )
        if pg.get("outer_step_s"):
            add(
                f"| bilevel outer step (implicit, once per epoch) | {fmt(pg['outer_step_s'])} | "
                f"{fmt(pg.get('outer_step_cpu_s'))} | – | – | – | – | – |"
            )
        if "nll_bf16" in t:
            add(f"| NLL epoch, bf16 autocast | {fmt(t['nll_bf16']['epoch_s'])} | – | – | – | – | – | – |")
        add("")
        add(f"- **PG / NLL per epoch: {t['pg_over_nll']:.2f}** in CPU time, without the outer step (target ≤ 1.3).")
        if pg.get("outer_fraction") is not None:
            add(
                f"- **Bilevel outer step: {pg['outer_fraction']:.1%} of a PG epoch** (CPU time; one outer step per "
                "epoch, `BilevelSolver` defaults: implicit, 10 CG iterations on 2048 rows)."
            )
        add(
            f"- NLL epoch over the floor (CPU time): {t['nll_over_floor']:.2f}×. Held-out NLL after the fits: NLL "
            f"{t['nll']['holdout_nll']}, PG {t['pg']['holdout_nll']}."
        )
        if pe and not comparable:
            add(f"- Ours vs mbrl-lib: {not_compared}.")
        elif pe:
            add(
                f"- Ours vs mbrl-lib (same run; mbrl-lib: 80k train + 20k validation rows, ours 95k + 5k): "
                f"mbrl-lib / ours = {pe / nll['median']:.2f}× in wall time"
                + (f", {pe_cpu / nll_cpu['median']:.2f}× in CPU time" if pe_cpu else "")
                + " (target ≥ 2×)."
            )
        add("")
    if "plan" in res:
        p = res["plan"]
        add("## 3. Planning latency per action (CEM, E=7 with 5 elites, TS-1)\n")
        add(
            "Random (untrained) weights: the cost does not depend on them. InvertedPendulum dims use the known reward "
            "and termination functions, HalfCheetah dims the learned reward head (as mbrl-lib's runner does). "
            "Each rung: one warm-up action, then timed actions with warm start, each followed by one floor "
            "measurement (iterations × horizon × the forward matmuls at rows/member). "
            + (f"Skipped: {', '.join(p['skipped'])}. " if p["skipped"] else "")
            + "\n"
        )
        add(
            "Ours and mbrl-lib in wall time and in process CPU time (both with one torch thread); the floor is in CPU "
            "time and `ours / floor` compares CPU times, `mbrl-lib / ours` is given for both clocks.\n"
        )
        add(
            "| dims | pop × particles × H × iters | rows/member | GFLOP/action | ours, wall (ms) | ours, CPU (ms) | "
            "floor (ms) | ours / floor | mbrl-lib, wall (ms) | mbrl-lib, CPU (ms) | mbrl-lib / ours (wall, CPU) | "
            "load | GPU (ms) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )
        for r in p["results"]:
            pm, pnote = peer_plan_ms(peer, r["env"], r["rung"])
            pc, _ = peer_plan_ms(peer, r["env"], r["rung"], cpu=True)
            ours = r["ms_per_action"]["median"]
            busy = r.get("busy_ms_per_action", r["ms_per_action"])
            sp = (f"{pm / ours:.2f}" if pm else "–") + ", " + (f"{pc / busy['median']:.2f}" if pc else "–")
            if not comparable:
                sp = "not compared"
            add(
                f"| {r['env']} | {r['rung']} | {r['rows_per_member']} | {r['flops_per_action'] / 1e9:.1f} | "
                f"{fmt(r['ms_per_action'])} | {fmt(busy)} | {fmt(r['floor_ms'])} | {r['over_floor']['median']:.2f} | "
                f"{_num(pm) + ' ' + pnote if pm else pnote} | {_num(pc)} | {sp} | "
                f"{r['load_before']} | "
                f"{_gpu(gpu, lambda g, r=r: _gpu_plan_cell(g, r))} |"
            )
        add("")
    if "mbpo" in res:
        b = res["mbpo"]
        st = b["settings"]
        add("## 4. MBPO: one env step on Hopper-v5 dims\n")
        add(
            f"Settings from `agents/mbpo.toml`: {st['sac_updates_per_step']} SAC updates per env step at batch "
            f"{st['sac_batch']} (stable-baselines3 SAC, net {st['sac_net_arch']}, batches through the agent's "
            f"`MixedSampler`, real ratio {st['real_ratio']}), {st['rollouts_per_step']} model rollouts per env step "
            f"(`ModelEnv.rollout_policy` with the SAC actor, TS-1, then `to_transitions` and the model-buffer add), "
            f"model {st['model']} retrained every {st['train_every']} steps ({st['model_fit']}). Each part is timed "
            f"on its own, interleaved over repeats; the step is their sum. Retraining: the first fit, from scratch, on "
            f"{b['data']} ({b['retrain_epochs']} epochs until early stopping), divided by {st['train_every']}"
            + (
                f"; then {len(b['retrain_warm_epochs'])} warm-started refits as the agent does them (same model, "
                f"optimizer and trainer; {st['train_every']} more real rows each; {b['retrain_warm_epochs']} epochs). "
                f"Over a {b['schedule']['steps']}-step run the agent refits {b['schedule']['fits']} times, once from "
                f"scratch: the schedule average weighs the two accordingly"
                if "retrain_warm_s" in b else ""
            )
            + f". Load average {b['load_before']} → {b['load_after']}.\n"
        )
        add("| part | ms per env step, wall | ms, process CPU | GPU |\n| --- | --- | --- | --- |")
        labels = {
            "sac_updates": f"{st['sac_updates_per_step']} SAC updates (LeanSACUpdate, what the agents run)",
            "sac_updates_sb3": f"{st['sac_updates_per_step']} SAC updates by SB3's own `SAC.train` (not in the step)",
            "model_rollouts_k1": "model rollouts, length k=1 (first epochs)",
            "model_rollouts_k15": "model rollouts, length k=15 (Hopper schedule end)",
            "retrain_amortised": "model retraining, amortised: first fit (from scratch)",
            "retrain_warm_amortised": "model retraining, amortised: a warm-started refit",
            "retrain_schedule_amortised": "model retraining, amortised: schedule average",
            "env_step": "env step (MuJoCo)",
            "policy_act_and_buffer_add": "policy act + buffer add",
        }
        for k, label in labels.items():
            if k in b["ms"]:
                add(
                    f"| {label} | {fmt(b['ms'][k])} | {fmt(b.get('cpu_ms', {}).get(k))} | "
                    f"{_gpu(gpu, lambda g, k=k: fmt(g['mbpo']['ms'][k]))} |"
                )
        if "step_ms_k1_schedule" in b:
            add(f"| whole step (k=1), schedule-average retraining | {b['step_ms_k1_schedule']} | – | – |")
        add(
            f"| **whole step (k=1), first-fit retraining** | **{b['step_ms_k1']}** | {b.get('step_cpu_ms_k1', '–')} | "
            f"{_gpu(gpu, lambda g: g['mbpo']['step_ms_k1'])} |"
        )
        add(
            f"| whole step (k=15) | {b['step_ms_k15']} | {b.get('step_cpu_ms_k15', '–')} | "
            f"{_gpu(gpu, lambda g: g['mbpo']['step_ms_k15'])} |"
        )
        add("")
        add(
            "- Model share (rollouts + amortised retraining) over the SAC updates' time (target ≤ 25%; process "
            f"CPU time): {_mbpo_share_text(b)}. One SAC update: {b['ms_per_sac_update']} ms wall."
        )
        pw = _peer_work(peer, "mbpo-step")
        if pw:
            st_p = pw.get("settings") or {}
            add(
                f"- mbrl-lib (separate run, {_peer_note(pw)}): {pw.get('amortised_ms_per_env_step')} ms "
                f"per env step amortised, breakdown {pw.get('amortised_breakdown_ms_per_env_step')}; its SAC: "
                f"{st_p.get('sac', '?')}; its first retrain ran {pw.get('model_retrain_epochs_each')} epochs "
                f"({pw.get('model_retrain_s_each')} s; no epoch cap), ours is capped at the config's max_epochs."
            )
        else:
            add("- mbrl-lib: pending.")
        add("")
    if "seeds" in res:
        s = res["seeds"]
        add("## 5. Several seeds\n")
        add(f"{s['workload']}. Load average {s['load_before']} → {s['load_after']}; {s['cpu_count']} logical cores.\n")
        add("| | 1 seed | 5 seeds | 5 / 1 |\n| --- | --- | --- | --- |")
        add(
            f"| wall time, process start to end (s) | {s['one_seed_wall_s']} | {s['five_seeds_wall_s']} | "
            f"**{s['ratio_wall']}** |"
        )
        add(
            f"| planning work inside the slowest process (s) | {s['one_seed_work_s']} | {max(s['five_seeds_work_s'])} "
            f"| {s['ratio_work']} |"
        )
        add(f"\nGPU: {_gpu(gpu, lambda g: str(g['seeds']['ratio_wall']))}.\n")
    add("## GPU run\n")
    add(
        "The GPU machine has torch but not gymnasium, MuJoCo or stable-baselines3 (see the header of "
        "`../shared/tools/device_wheels.sh`). Fetch the wheels once, then run the bench there and merge its JSON:\n"
    )
    add("```bash\n" + DEVICE_COMMAND + "\n```\n")
    add("Status: " + ("GPU column filled from " + str(res.get("gpu_json")) if gpu else GPU_PENDING) + ".\n")
    add(f"{JSON_MARK}\n{json.dumps(res, indent=0, default=str)}\n-->\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L))


def read_results(path: Path) -> dict[str, Any]:
    """Results from a ``--json`` file or from a report written by this module (which embeds them)."""
    text = path.read_text()
    if JSON_MARK in text:
        text = text.split(JSON_MARK, 1)[1].rsplit("-->", 1)[0]
    return json.loads(text)


# ============================================================================================== main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mbrl-po bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats; skip the biggest planning rung")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, as mbrl-lib's recorded figures; 0 keeps torch's default)",
    )
    p.add_argument("--out", default="docs/performance.md", help="the markdown report")
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {list(SECTIONS)}",
    )
    p.add_argument("--peer-json", default=str(PEER_JSON),
                   help="mbrl-lib's results of an earlier run (shown beside ours; no ratio: another run)")
    p.add_argument("--peer-python", default=None,
                   help="the mbrl-lib venv's python (benchmarks/peers/setup_mbrl_lib.sh): run mbrl-lib's side of "
                        "each section right after ours, so the ratios compare figures of one run")
    p.add_argument("--gpu-json", default=None, help="a GPU run's --json, to fill the GPU column")
    p.add_argument("--rung-budget", type=float, default=None, help="seconds per planning rung (default 10/30)")
    p.add_argument("--rungs", default=None, metavar="NxPxHxI,...",
                   help="planning rungs (population x particles x horizon x iterations) instead of the ladder, e.g. "
                        "the locomotion suite's PETS setting 100x5x30x3; mbrl-lib (--peer-python) runs the same")
    p.add_argument("--dims", default=None, help="planning dims: ip, hc or ip,hc (default both)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--from-json", default=None, help="re-write the report from an earlier --json or report (no measuring)"
    )
    # internal: one seed's workload for the 'seeds' section
    p.add_argument("--worker-plan", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-dims", default="ip", help=argparse.SUPPRESS)
    p.add_argument("--worker-actions", type=int, default=10, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.worker_plan:
        print(
            json.dumps(
                _worker_plan(
                    args.worker_plan, args.worker_dims, args.worker_actions, args.seed, args.threads, args.device
                )
            )
        )
        return 0
    if args.from_json:
        res = read_results(Path(args.from_json))
        gpu = read_results(Path(args.gpu_json)) if args.gpu_json else None
        if gpu is not None:
            res["gpu_json"] = args.gpu_json
        write_report(res, Path(args.out), gpu, res.get("peer") or load_peer(Path(args.peer_json)))
        log(f"wrote {args.out} from {args.from_json}")
        return 0
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"sections: unknown {unknown}, allowed {list(SECTIONS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    budget = args.rung_budget if args.rung_budget is not None else (10.0 if args.quick else 30.0)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "machine": machine_info(device),
        "quick": args.quick,
        "load_start": loadavg(),
        "sections": sections,
    }
    log(f"machine: {res['machine']['cpu_model']}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    if "floor" in sections:
        res["floor"] = run_floor(device, args.quick)
    if "train" in sections:
        res["train"] = run_train(device, args.quick)
    rungs = parse_rungs(args.rungs) if args.rungs else None
    dims_keys = tuple(d.strip() for d in args.dims.split(",")) if args.dims else None
    if dims_keys and set(dims_keys) - set(PLAN_DIMS):
        raise ValueError(f"dims: got {args.dims!r}, allowed a comma list of {list(PLAN_DIMS)}")
    if "plan" in sections:
        res["plan"] = run_plan(device, args.quick, budget, rungs, dims_keys)
    if "mbpo" in sections:
        res["mbpo"] = run_mbpo(device, args.quick)
    peer = load_peer(Path(args.peer_json))
    if args.peer_python:  # mbrl-lib measured now, after ours, on the same machine and thread count
        peer = {"peer": "mbrl-lib", "same_run": True, "machine": None, "workloads": {}}
        for sec in (x for x in ("train", "plan", "mbpo") if x in sections):
            extra = []
            if sec == "plan":
                extra = (["--rungs", args.rungs] if args.rungs else []) + (["--dims", args.dims] if args.dims else [])
            w = run_peer_workload(args.peer_python, sec, args.threads, args.device, extra)
            peer["workloads"][w["workload"]] = w
            peer["machine"] = peer["machine"] or w.get("machine")
        res["peer"] = peer
    if "seeds" in sections:
        res["seeds"] = run_seeds(device, args.quick, args.threads)
    res["load_end"] = loadavg()
    res["wall_s"] = time.perf_counter() - t0
    gpu = None
    if args.gpu_json:
        gpu = read_results(Path(args.gpu_json))
        res["gpu_json"] = args.gpu_json
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    write_report(res, Path(args.out), gpu, peer)
    log(f"wrote {args.out} in {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
