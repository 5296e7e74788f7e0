"""``mbrl-po bench speed``: model training, planning, SAC and MBPO timed against the machine's matmul floor.

    mbrl-po bench speed [--quick] [--device cpu|cuda] [--threads 1[,2]] [--peer-python PY] [--out FILE] [--json FILE]

Every figure is a median over repeats, and each workload's floor is measured in the same run, interleaved with
it (one floor measurement per repeat), so their ratio is meaningful on a shared, loaded machine. The floor of a
workload is its matmul FLOPs divided by the throughput this machine reaches on the workload's exact matmul
shapes in the workload's dtype (``torch.bmm`` for the ensemble, ``torch.addmm``/``mm`` for SAC's layers,
measured here, :class:`Floor`); everything else a workload does (activations, the optimizer, sampling, Python)
is overhead above it. Where :func:`bf16_fast` (a CPU with bf16 matrix instructions, or CUDA), planning, SAC
and MBPO are also measured in bf16, each beside a floor measured in bf16.

Sections (``--sections``, default all):

``floor``   matmul throughput (GFLOP/s) per shape, at the training and planning batch sizes and for one SAC
            update, in float32 (and bf16 where fast), and whether bf16 is worth using (:func:`bf16_fast`).
``train``   one NLL epoch over 100k HalfCheetah-v5-shaped transitions (E=7, 4x200, batch 256) with
            :class:`~mbrl_po.training.DynamicsTrainer`, the PG (G=5) epoch, and the bilevel outer step.
``plan``    CEM latency per action (E=7, 5 elites, TS-1) on a ladder of population x particles x horizon x
            iterations (:data:`RUNGS`, with the locomotion suite's PETS planner 100x5x30x3), on InvertedPendulum
            (4, 1) and HalfCheetah (17, 6) dims, with ``ModelEnv(precision=...)`` float32 and bf16.
``sac``     ms per SAC update at Hopper dims: ``LeanSACUpdate`` (what the agents run), SB3's own ``SAC.train``
            and LeanSACUpdate under bf16 autocast, beside the update's matmul floor (:func:`sac_matmuls`).
``mbpo``    one MBPO env step on Hopper-v5 dims, split into SAC updates, model rollouts, amortised retraining,
            env step and policy act; variants with bf16 refits, rollouts and SAC; the step's floor and
            CPU-minutes per 1,000 env steps.
``seeds``   wall time of 5 seeds (5 processes at once) over 1 seed for one planning workload.

``--threads 1,2`` measures every section but ``seeds`` once per thread count in one invocation (mbrl-lib too)
and reports them side by side. ``--peer-python`` runs mbrl-lib's side of each section (``benchmarks/peers/
mbrl_lib.py``) right after ours, so ratios compare figures of one machine and one run; otherwise mbrl-lib's
figures are read from ``docs/results/peer_mbrl_lib_cpu.json`` (a separate run, shown but never compared). The
report's targets table is issue 14's (``targets_summary``). A GPU run's ``--json`` can be merged with
``--gpu-json``; ``--from-json`` rewrites a report from the figures embedded in an earlier one.
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

SECTIONS = ("floor", "train", "plan", "sac", "mbpo", "seeds")
PER_THREAD_SECTIONS = ("floor", "train", "plan", "sac", "mbpo")
"""Sections measured once per ``--threads`` count (``seeds`` runs once, with the first count)."""
RUNGS = ((64, 5, 10, 3), (100, 5, 30, 3), (100, 10, 15, 5), (350, 20, 15, 5), (400, 20, 30, 5))
"""population x particles x horizon x iterations; 100x5x30x3 is the locomotion suite's PETS planner (target 5)."""
PETS_RUNG, PETS_ENV = "100x5x30x3", "HalfCheetah-v5"
"""The locomotion suite's PETS setting (benchmarks/suites/locomotion.toml): CEM 100 x 5 particles x H30 x 3."""
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
    """Measures matmul time for exact shapes on a device in one dtype, with :func:`busy_clock`.

    Batched (``e`` members, :meth:`bmm_s`, ``torch.bmm``) or plain (:meth:`mm_s`, ``torch.addmm``/``torch.mm`` as
    ``nn.Linear`` and its backward run them). ``kind``: ``"fwd"`` the forward product (B, i) @ (i, o); ``"dw"``
    the weight gradient (i, B) @ (B, o), read through a transpose as autograd computes it; ``"dx"`` the input
    gradient (B, o) @ (o, i), likewise. ``dtype`` is the operands' dtype (``torch.bfloat16`` for the floor of a
    bf16 workload).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32, min_sample_s: float = 2e-3):
        self.device = device
        self.dtype = dtype
        self.min_sample_s = min_sample_s
        self._ops: dict[tuple, Callable[[], Any]] = {}
        self._inner: dict[tuple, int] = {}
        self.clock = busy_clock(device)

    def _op(self, e: int, rows: int, i: int, o: int, kind: str) -> Callable[[], Any]:
        """The matmul of that shape as a closure over its operands (``e == 0``: a plain 2-D product)."""
        key = (e, rows, i, o, kind)
        if key not in self._ops:
            if kind not in ("fwd", "dw", "dx"):
                raise ValueError(f"kind: got {kind!r}, allowed 'fwd', 'dw' or 'dx'")
            g = torch.Generator(device="cpu").manual_seed(0)
            mk = lambda *s: torch.randn(*s, generator=g).to(self.device, self.dtype)  # noqa: E731
            lead = (e,) if e else ()
            tr = (lambda x: x.transpose(1, 2)) if e else (lambda x: x.t())
            if kind == "fwd":
                a, b = mk(*lead, rows, i), mk(*lead, i, o)
                if not e:  # nn.Linear: x @ W.t() + bias, one addmm
                    w, bias = mk(o, i), mk(o)
                    self._ops[key] = lambda: torch.addmm(bias, a, w.t())
                    return self._ops[key]
            elif kind == "dw":
                a, b = tr(mk(*lead, rows, i)), mk(*lead, rows, o)
            else:
                a, b = mk(*lead, rows, o), tr(mk(*lead, i, o))
            mm = torch.bmm if e else torch.mm
            self._ops[key] = lambda: mm(a, b)
        return self._ops[key]

    def _time(self, e: int, rows: int, i: int, o: int, kind: str, repeats: int) -> float:
        """Median seconds of one matmul of that shape (several calls per timing sample for tiny shapes)."""
        key = (e, rows, i, o, kind)
        op = self._op(*key)
        if key not in self._inner:
            op()
            sync(self.device)
            t = time.perf_counter()
            op()
            sync(self.device)
            one = max(time.perf_counter() - t, 1e-7)
            self._inner[key] = int(min(1000, max(1, math.ceil(self.min_sample_s / one))))
        k = self._inner[key]
        samples = []
        for _ in range(repeats):
            sync(self.device)
            t = self.clock()
            for _ in range(k):
                op()
            sync(self.device)
            samples.append((self.clock() - t) / k)
        return float(np.median(samples))

    def bmm_s(self, e: int, rows: int, i: int, o: int, kind: str = "fwd", repeats: int = 3) -> float:
        """Median seconds of one ``torch.bmm`` (E=e, rows per member) of that shape."""
        return self._time(e, rows, i, o, kind, repeats)

    def mm_s(self, rows: int, i: int, o: int, kind: str = "fwd", repeats: int = 3) -> float:
        """Median seconds of one plain matmul (``addmm`` for ``fwd``, ``mm`` for the gradients) of that shape."""
        return self._time(0, rows, i, o, kind, repeats)

    def matmuls_s(self, mms: list[tuple[int, int, int, str, int]], repeats: int = 3) -> float:
        """Seconds of a list of plain matmuls ``(rows, in, out, kind, count)`` (e.g. :func:`sac_matmuls`)."""
        return sum(c * self.mm_s(r, i, o, k, repeats) for r, i, o, k, c in mms)

    def forward_s(self, e: int, rows: int, dims: list[tuple[int, int]], repeats: int = 3) -> float:
        return sum(self.bmm_s(e, rows, i, o, "fwd", repeats) for i, o in dims)

    def train_step_s(self, e: int, rows: int, dims: list[tuple[int, int]], repeats: int = 3) -> float:
        total = 0.0
        for k, (i, o) in enumerate(dims):
            total += self.bmm_s(e, rows, i, o, "fwd", repeats) + self.bmm_s(e, rows, i, o, "dw", repeats)
            if k > 0:
                total += self.bmm_s(e, rows, i, o, "dx", repeats)
        return total


def sac_matmuls(
    obs_dim: int,
    act_dim: int,
    net: tuple[int, ...] = (256, 256),
    batch: int = 256,
    n_critics: int = 2,
    actor_loss_critic_weight_grads: bool = False,
) -> list[tuple[int, int, int, str, int]]:
    """Every matmul of one SAC update of stable-baselines3's ``MlpPolicy`` (same for :class:`LeanSACUpdate`),
    as ``(rows, in, out, kind, count)`` with ``kind`` as in :class:`Floor`, identical shapes merged.

    The actor is ``obs -> net -> (mu, log_std)`` (two heads on the last hidden layer), each critic
    ``(obs, action) -> net -> 1``. One update computes: the actor forward on the observations and on the next
    observations; the target critics on the next observations; the critics on (obs, a) and their backward
    (weight gradients everywhere, input gradients everywhere but the first layer: the replay batch needs none);
    the critics on (obs, actor's action) for the actor loss, backpropagated to their input (every layer,
    including the first: the action needs a gradient) and, with ``actor_loss_critic_weight_grads`` (SB3's own
    ``train``), also to their weights, which SB3 then throws away; the actor backward (weight gradients
    everywhere, input gradients everywhere but the first layer). The entropy coefficient's loss has no matmul.
    """
    a_hidden = list(zip((obs_dim, *net[:-1]), net, strict=True))
    actor = [*a_hidden, (net[-1], act_dim), (net[-1], act_dim)]  # mu and log_std heads
    critic = list(zip((obs_dim + act_dim, *net), (*net, 1), strict=True))
    counts: dict[tuple[int, int, str], int] = {}

    def add(dims: list[tuple[int, int]], kind: str, n: int, skip_first: bool = False) -> None:
        for j, (i, o) in enumerate(dims):
            if skip_first and j == 0:
                continue
            counts[(i, o, kind)] = counts.get((i, o, kind), 0) + n

    add(actor, "fwd", 2)  # actor on obs (with grad) and on next obs (no grad)
    add(critic, "fwd", n_critics)  # target critics on next obs
    add(critic, "fwd", n_critics)  # critics on (obs, a)
    add(critic, "dw", n_critics)
    add(critic, "dx", n_critics, skip_first=True)
    add(critic, "fwd", n_critics)  # critics on (obs, actor's action), for the actor loss
    add(critic, "dx", n_critics)  # ... to the action: every layer's input gradient
    if actor_loss_critic_weight_grads:
        add(critic, "dw", n_critics)
    add(actor, "dw", 1)
    add(actor, "dx", 1, skip_first=True)
    return [(batch, i, o, kind, c) for (i, o, kind), c in counts.items()]


def actor_forward_matmuls(obs_dim: int, act_dim: int, net: tuple[int, ...], rows: int
                          ) -> list[tuple[int, int, int, str, int]]:
    """The matmuls of one forward pass of SB3's SAC actor (``obs -> net``, then the mu and log_std heads) on
    ``rows`` observations, as in :func:`sac_matmuls` (the policy's share of a model rollout step)."""
    hidden = [(rows, i, o, "fwd", 1) for i, o in zip((obs_dim, *net[:-1]), net, strict=True)]
    return [*hidden, (rows, net[-1], act_dim, "fwd", 2)]


def matmul_flops(mms: list[tuple[int, int, int, str, int]]) -> float:
    """Multiply-add FLOPs (2 per multiply-add) of a list of ``(rows, in, out, kind, count)`` matmuls."""
    return float(sum(2 * r * i * o * c for r, i, o, _k, c in mms))


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
    """Matmul throughput for the exact shapes of each workload (training, planning at every rung's rows per
    member, one SAC update's plain matmuls), in float32 and, where :func:`bf16_fast`, in bf16."""
    reps = 3 if quick else 7
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_fast(device)[0] else [])
    floors = {dt: Floor(device, dt) for dt in dtypes}
    rows_out = []
    shapes = [("train fwd/bwd, E=7, batch 256, HalfCheetah", ENSEMBLE, 256, layer_dims(HC_OBS, HC_ACT), True)]
    for pop, part, _h, _i in dict.fromkeys((p_, q_, 0, 0) for p_, q_, _h_, _i_ in RUNGS):
        rows = -(-pop * part // ELITES)
        shapes.append((f"plan {pop}x{part} HalfCheetah (E'=5, {rows} rows/member)", ELITES, rows,
                       layer_dims(HC_OBS, HC_ACT), False))
    sac_shapes = sac_matmuls(HOPPER_OBS, HOPPER_ACT, actor_loss_critic_weight_grads=True)
    for label, e, rows, dims, train in shapes:
        for i, o in dims:
            for kind in ("fwd", "dw", "dx") if train else ("fwd",):
                for dt in dtypes:
                    sec = floors[dt].bmm_s(e, rows, i, o, kind, reps)
                    rows_out.append({"workload": label, "E": e, "rows": rows, "in": i, "out": o, "kind": kind,
                                     "dtype": str(dt).replace("torch.", ""), "us": round(sec * 1e6, 2),
                                     "gflops": round(2 * e * rows * i * o / sec / 1e9, 2)})
    for rows, i, o, kind, _c in sac_shapes:
        for dt in dtypes:
            sec = floors[dt].mm_s(rows, i, o, kind, reps)
            rows_out.append({"workload": "SAC update, Hopper, batch 256, [256, 256] (mm)", "E": 0, "rows": rows,
                             "in": i, "out": o, "kind": kind, "dtype": str(dt).replace("torch.", ""),
                             "us": round(sec * 1e6, 2), "gflops": round(2 * rows * i * o / sec / 1e9, 2)})
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
    precision: str = "float32",
) -> Any:
    from mbrl_po.models.model_env import ModelEnv
    from mbrl_po.planning import MPCAgent, make_optimizer
    from mbrl_po.planning.evaluator import TrajectoryEvaluator

    pop, part, hor, iters = rung
    env = ModelEnv(model, term, rew, "ts1", torch.Generator(device=device).manual_seed(seed), precision=precision)
    low, high = -torch.ones(act_dim, device=device), torch.ones(act_dim, device=device)
    opt = make_optimizer("cem", hor, low, high, population=pop, iterations=iters, elite_fraction=0.1, alpha=0.1)
    return MPCAgent(opt, TrajectoryEvaluator(env, part), device=device, seed=seed)


def plan_precisions(device: torch.device) -> list[str]:
    """The model precisions the planning section measures: float32, and bf16 where :func:`bf16_fast`."""
    return ["float32"] + (["bf16"] if bf16_fast(device)[0] else [])


def run_plan(device: torch.device, quick: bool, budget_s: float,
             rungs: tuple[tuple[int, int, int, int], ...] | None = None,
             dims_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """ms per planned action at each rung (default :data:`RUNGS`, the largest skipped with ``quick``) on each
    of ``dims_keys`` (default every :data:`PLAN_DIMS`), in each of :func:`plan_precisions` (``ModelEnv``'s
    precision), beside the matmul floor measured in the same dtype; the precisions interleaved per repeat."""
    from mbrl_po.models import precision_dtype

    rungs = rungs or (RUNGS[:-1] if quick else RUNGS)
    max_reps = 3 if quick else 7
    precisions = plan_precisions(device)
    floors = {p: Floor(device, precision_dtype(p) or torch.float32) for p in precisions}
    clock = busy_clock(device)
    results = []
    for dims_key in dims_keys or tuple(PLAN_DIMS):
        model, term, rew, o, a = _plan_model(dims_key, device)
        dims = layer_dims(o, a, learn_reward=rew is None)
        for rung in rungs:
            pop, part, hor, iters = rung
            rows = -(-pop * part // ELITES)
            agents = {p: _make_agent(model, term, rew, a, rung, device, precision=p) for p in precisions}
            obs = np.zeros(o, dtype=np.float32)
            load0 = loadavg()
            warm = {}
            for p, agent in agents.items():
                sync(device)
                t = time.perf_counter()
                agent.act(obs)  # warm-up (lazy initialisation, caches, the bf16 weight copy)
                sync(device)
                warm[p] = time.perf_counter() - t
            reps = int(max(2, min(max_reps, budget_s // max(2 * max(warm.values()), 1e-9))))
            ours = {p: [] for p in precisions}
            ours_busy = {p: [] for p in precisions}
            floor = {p: [] for p in precisions}
            for _ in range(reps):
                for p, agent in agents.items():
                    sync(device)
                    t, c = time.perf_counter(), clock()
                    agent.act(obs)
                    sync(device)
                    ours[p].append(time.perf_counter() - t)
                    ours_busy[p].append(clock() - c)
                    floor[p].append(iters * hor * floors[p].forward_s(ELITES, rows, dims))
            name = "x".join(map(str, rung))
            for p in precisions:
                ratio = [x / f for x, f in zip(ours_busy[p], floor[p], strict=True)]
                log(
                    f"plan {dims_key} {name} {p}: {np.median(ours[p]) * 1e3:.1f} ms/action (CPU "
                    f"{np.median(ours_busy[p]) * 1e3:.1f}), floor "
                    f"{np.median(floor[p]) * 1e3:.1f} ms, ratio {np.median(ratio):.2f}"
                )
                results.append(
                    {
                        "dims": dims_key,
                        "env": PLAN_DIMS[dims_key][0],
                        "rung": name,
                        "precision": p,
                        "population": pop,
                        "particles": part,
                        "horizon": hor,
                        "iterations": iters,
                        "rows_per_member": rows,
                        "reward": "learned head" if rew is None else "known fn (inverted_pendulum)",
                        "flops_per_action": iters * hor * forward_flops(ELITES, rows, dims),
                        "ms_per_action": stats(ours[p], 1e3),
                        "busy_ms_per_action": stats(ours_busy[p], 1e3),
                        "floor_ms": stats(floor[p], 1e3),
                        "over_floor": stats(ratio),
                        "warmup_ms": round(warm[p] * 1e3, 1),
                        "load_before": load0,
                        "load_after": loadavg(),
                    }
                )
    skipped = [] if not quick or rungs != RUNGS[:-1] else ["x".join(map(str, RUNGS[-1])) + " (--quick)"]
    return {"results": results, "precisions": precisions, "skipped": skipped}


# ============================================================================================== sac
def bf16_autocast(device: torch.device) -> Any:
    """bf16 autocast for a whole multi-update ``train`` call. Its weight-cast cache is off: autocast caches the
    bf16 copy of a leaf weight until the outermost autocast region ends and does not notice the optimizer's
    in-place updates, so with the cache on, every update after the first would run on stale weights."""
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def hopper_sac(device: torch.device, seed: int = 0, n_rows: int = 10_000) -> tuple[Any, Any]:
    """stable-baselines3's SAC on Hopper-v5 spaces with the MBPO agent's settings (``agents/mbpo.toml``), its
    replay buffer replaced, as the agents do, by a :class:`~mbrl_po.agents.mbpo.MixedSampler` over ``n_rows``
    random transitions. Returns (sac, the SAC settings)."""
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC  # noqa: N811
    from stable_baselines3.common.logger import Logger as SB3Logger

    from mbrl_po.agents.mbpo import MixedSampler, SpacesOnlyEnv
    from mbrl_po.config import load_agent_config
    from mbrl_po.data.replay_buffer import ReplayBuffer

    s = load_agent_config("mbpo", "hopper").sac
    o, a = HOPPER_OBS, HOPPER_ACT
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
        seed=seed,
        device=device,
    )
    sac.set_logger(SB3Logger(folder=None, output_formats=[]))  # in memory: no /tmp/SB3-<date> folder
    g = np.random.default_rng(seed)
    buf = ReplayBuffer(n_rows, o, a, rng=np.random.default_rng(seed + 1))
    obs = g.standard_normal((n_rows, o)).astype(np.float32)
    buf.add_batch(obs, g.uniform(-1, 1, (n_rows, a)).astype(np.float32), g.standard_normal(n_rows),
                  obs + 0.1 * g.standard_normal((n_rows, o)).astype(np.float32), np.zeros(n_rows, dtype=bool))
    sac.replay_buffer = MixedSampler(buf, None, 1.0, act_space.low, act_space.high, sac.device)  # type: ignore[assignment]
    return sac, s


SAC_VARIANTS = {
    "lean": "LeanSACUpdate, float32 (what the agents run)",
    "sb3": "SB3's own `SAC.train`, float32 (the reference)",
    "lean_bf16": "LeanSACUpdate under bf16 autocast",
}


def run_sac(device: torch.device, quick: bool) -> dict[str, Any]:
    """ms per SAC update at Hopper dims (obs 11, act 3, batch 256, [256, 256], 2 critics, learned entropy
    coefficient): :class:`~mbrl_po.agents.sac_update.LeanSACUpdate`, SB3's own ``SAC.train`` and, where
    :func:`bf16_fast`, LeanSACUpdate under bf16 autocast, interleaved over repeats, each beside its matmul floor
    (the update's matmuls of :func:`sac_matmuls`, timed in the variant's dtype after every repeat)."""
    from mbrl_po.agents.sac_update import LeanSACUpdate

    fast_bf16, bf16_reason = bf16_fast(device)
    names = ["lean", "sb3"] + (["lean_bf16"] if fast_bf16 else [])
    sacs = {n: hopper_sac(device, seed=0) for n in names}
    s = sacs["lean"][1]
    o, a, batch, net = HOPPER_OBS, HOPPER_ACT, s.batch_size, tuple(s.net_arch)
    n_critics = sacs["lean"][0].critic.n_critics
    mms = {
        "lean": sac_matmuls(o, a, net, batch, n_critics),
        "sb3": sac_matmuls(o, a, net, batch, n_critics, actor_loss_critic_weight_grads=True),
    }
    mms["lean_bf16"] = mms["lean"]
    dtypes = {"lean": torch.float32, "sb3": torch.float32, "lean_bf16": torch.bfloat16}
    floors = {dt: Floor(device, dt) for dt in {dtypes[n] for n in names}}
    lean = {n: LeanSACUpdate(sacs[n][0], fused_adam=True) for n in names if n.startswith("lean")}
    calls: dict[str, Callable[[int], None]] = {
        "lean": lambda k: lean["lean"].train(gradient_steps=k, batch_size=batch),
        "sb3": lambda k: sacs["sb3"][0].train(gradient_steps=k, batch_size=batch),
    }
    if fast_bf16:
        def lean_bf16(k: int) -> None:
            with bf16_autocast(device):
                lean["lean_bf16"].train(gradient_steps=k, batch_size=batch)

        calls["lean_bf16"] = lean_bf16
    per_sample = 20  # updates per timing sample: one MBPO env step's worth
    reps = 5 if quick else 15
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    floor: dict[str, list[float]] = {n: [] for n in names}
    load0 = loadavg()
    for n in names:  # warm-up: lazy optimizer state, fused-Adam switch, allocator
        calls[n](3)
    for _ in range(reps):
        for n in names:
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            calls[n](per_sample)
            sync(device)
            wall[n].append((time.perf_counter() - t) / per_sample)
            cpu[n].append((time.process_time() - c) / per_sample)
            floor[n].append(floors[dtypes[n]].matmuls_s(mms[n]))
    clock_cpu = device.type == "cpu"
    out: dict[str, Any] = {
        "settings": {
            "obs": o, "act": a, "batch": batch, "net_arch": list(net), "critics": n_critics,
            "ent_coef": "learned (SB3 'auto')", "lr": s.learning_rate, "tau": s.tau, "gamma": s.gamma,
            "updates_per_sample": per_sample, "repeats": reps,
        },
        "bf16": bf16_reason,
        "floor_clock": "process CPU time" if clock_cpu else "wall",
        "flops": {n: matmul_flops(mms[n]) for n in ("lean", "sb3")},
        "variants": {},
        "load_before": load0,
        "load_after": loadavg(),
    }
    for n in names:
        busy = cpu[n] if clock_cpu else wall[n]
        out["variants"][n] = {
            "label": SAC_VARIANTS[n],
            "dtype": "bf16" if dtypes[n] == torch.bfloat16 else "float32",
            "flops": matmul_flops(mms[n]),
            "ms_per_update": stats(wall[n], 1e3),
            "cpu_ms_per_update": stats(cpu[n], 1e3),
            "floor_ms": stats(floor[n], 1e3),
            "over_floor": stats([x / f for x, f in zip(busy, floor[n], strict=True)]),
        }
        log(f"sac {n}: {np.median(wall[n]) * 1e3:.2f} ms/update (CPU {np.median(cpu[n]) * 1e3:.2f}), floor "
            f"{np.median(floor[n]) * 1e3:.2f} ms")
    return out


# ============================================================================================== mbpo
MBPO_VARIANTS = {
    "float32": ("float32 (what the agents run)", "float32", "float32", "float32"),
    "bf16_model": ("bf16 model: refits under bf16 autocast, rollouts in bf16; SAC float32", "float32", "bf16", "bf16"),
    "bf16_all": ("bf16 model and SAC under bf16 autocast", "bf16", "bf16", "bf16"),
}
"""name: (label, SAC dtype, rollout precision, refit precision)."""
GPU_ANCHOR = "2.0–4.5 min per 1,000 env steps (MBPO on an RTX A4000, 4kubo/erl_lib's published CSVs)"


def cpu_min_per_1k(ms_per_step: float | None) -> float | None:
    """CPU-minutes per 1,000 env steps (or actions) from CPU ms per step: ms × 1000 / 60000."""
    return None if ms_per_step is None else ms_per_step * 1000 / 60_000


def run_mbpo(device: torch.device, quick: bool) -> dict[str, Any]:
    """Where one MBPO env step's time goes on Hopper-v5 dims, each part timed separately (see the doc), beside
    the floor of each part (SAC updates: :func:`sac_matmuls`; rollouts: the model's forward and the actor's at
    the rollout batch; refits: the epochs each fit ran at the training step's and held-out pass's floors); where
    :func:`bf16_fast`, also refits under bf16 autocast, rollouts in bf16 and SAC under bf16 autocast."""
    from mbrl_po import DynamicsTrainer, GaussianEnsemble
    from mbrl_po.agents.sac_update import LeanSACUpdate
    from mbrl_po.config import load_agent_config
    from mbrl_po.data.replay_buffer import ReplayBuffer
    from mbrl_po.models import precision_dtype
    from mbrl_po.models.model_env import ModelEnv

    cfg = load_agent_config("mbpo", "hopper")
    m, s = cfg.model, cfg.sac
    o, a = HOPPER_OBS, HOPPER_ACT
    fast_bf16, bf16_reason = bf16_fast(device)
    precisions = ["float32"] + (["bf16"] if fast_bf16 else [])
    floors = {p: Floor(device, precision_dtype(p) or torch.float32) for p in precisions}
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
        "bf16": bf16_reason,
        "precisions": precisions,
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
    mdims = layer_dims(o, a, learn_reward=True, hidden=tuple(m.hidden_sizes))

    def new_model() -> GaussianEnsemble:
        return GaussianEnsemble(
            o, a, ensemble_size=m.ensemble_size, num_elites=m.num_elites, hidden_sizes=m.hidden_sizes, device=device
        )

    # --- model retraining with the agent's settings, in each precision, the precisions interleaved: first
    # fit(s) from scratch, then warm-started refits as the agent does them (same model, optimizer and trainer,
    # train_every more real rows each); each fit's floor is its epochs at the training step's floor
    torch.manual_seed(0)
    fitters = {}
    for p in precisions:
        mod = new_model()
        fitters[p] = (mod, DynamicsTrainer(mod, "nll", lr=m.lr, weight_decay=m.weight_decay, batch_size=m.batch_size,
                                           max_epochs=m.max_epochs, patience=m.patience, precision=p, progress=False,
                                           seed=0))
    model = fitters["float32"][0]  # the rollouts' model (their cost does not depend on the weights)
    fit_log: dict[str, dict[str, list]] = {
        p: {k: [] for k in ("first_s", "first_cpu_s", "first_epochs", "first_floor_s",
                            "warm_s", "warm_cpu_s", "warm_epochs", "warm_floor_s")}
        for p in precisions
    }

    def timed_fit(p: str, tag: str) -> None:
        mod, trainer = fitters[p]
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        rep = trainer.fit(real.transitions(device=device))
        sync(device)
        lg = fit_log[p]
        lg[f"{tag}_s"].append(time.perf_counter() - t)
        lg[f"{tag}_cpu_s"].append(time.process_time() - c)
        n_ep = len(rep.epochs)
        lg[f"{tag}_epochs"].append(n_ep)
        steps = math.ceil(rep.train_size / m.batch_size)
        fl = floors[p]
        # epochs x steps training steps, and the held-out pass once before, after every epoch and at the end
        lg[f"{tag}_floor_s"].append(
            n_ep * steps * fl.train_step_s(m.ensemble_size, m.batch_size, mdims)
            + (n_ep + 2) * fl.forward_s(m.ensemble_size, rep.holdout_size, mdims)
        )

    for _ in range(1 if quick else 2):
        for p in precisions:
            fitters[p][0].load_state_dict(new_model().state_dict())
            timed_fit(p, "first")
    for i in range(n_warm):
        add_real(n_real + i * cfg.loop.train_every, n_real + (i + 1) * cfg.loop.train_every)
        for p in precisions:
            timed_fit(p, "warm")
    f32 = fit_log["float32"]
    out["retrain_s"] = stats(f32["first_s"])
    out["retrain_epochs"] = f32["first_epochs"]
    out["retrain_warm_s"] = stats(f32["warm_s"])
    out["retrain_warm_epochs"] = f32["warm_epochs"]
    out["fits"] = {p: {k: [round(x, 4) for x in v] for k, v in lg.items()} for p, lg in fit_log.items()}
    log(f"mbpo: fits {out['fits']}")
    # a run of cfg.steps env steps retrains F times: once from scratch, then warm-started
    n_fits = max(1, (cfg.steps - cfg.loop.init_steps) // cfg.loop.train_every)
    out["schedule"] = {"steps": cfg.steps, "fits": n_fits}

    def schedule_mean(first: float, warm_values: list[float]) -> float:
        return (first + (n_fits - 1) * float(np.median(warm_values))) / n_fits

    # --- SAC (stable-baselines3) on Hopper spaces, sampling through the agent's MixedSampler; one SAC per
    # variant (LeanSACUpdate switches its optimizers to fused Adam, SB3's own train keeps SB3's)
    from mbrl_po.agents.mbpo import MixedSampler

    model_buf = ReplayBuffer(cfg.mbpo.rollouts_per_step * cfg.mbpo.epoch_length, o, a, rng=np.random.default_rng(1))
    model_buf.add_batch(data["obs"], data["actions"], data["rewards"], data["next_obs"], data["terminated"])
    sacs = {v: hopper_sac(device, seed=0)[0] for v in ["lean", "sb3"] + (["lean_bf16"] if fast_bf16 else [])}
    for sac_v in sacs.values():
        sac_v.replay_buffer = MixedSampler(real, model_buf, cfg.mbpo.real_ratio, -np.ones(a), np.ones(a),
                                           sac_v.device)  # type: ignore[assignment]
    sac = sacs["lean"]
    low, high = -torch.ones(a, device=device), torch.ones(a, device=device)

    def policy(x: torch.Tensor) -> torch.Tensor:
        scaled = sac.actor(x.to(sac.device, torch.float32), deterministic=False)
        return low + 0.5 * (scaled.to(device) + 1.0) * (high - low)

    menvs = {p: ModelEnv(model, term_fn, None, "ts1", torch.Generator(device=device).manual_seed(7), precision=p)
             for p in precisions}

    def rollouts(k: int, p: str) -> None:
        start = real.sample(cfg.mbpo.rollouts_per_step, device).obs
        ro = menvs[p].rollout_policy(start, policy, k)
        d = ro.to_transitions()
        model_buf.add_batch(d.obs, d.actions, d.rewards, d.next_obs, d.terminated)

    leans = {v: LeanSACUpdate(sacs[v], fused_adam=True) for v in sacs if v.startswith("lean")}
    ups = cfg.mbpo.updates_per_step

    def sac_updates() -> None:
        leans["lean"].train(gradient_steps=ups, batch_size=s.batch_size)

    def sac_updates_sb3() -> None:  # stable-baselines3's own SAC.train, for comparison (not in the step total)
        sacs["sb3"].train(gradient_steps=ups, batch_size=s.batch_size)

    def sac_updates_bf16() -> None:
        with bf16_autocast(device):
            leans["lean_bf16"].train(gradient_steps=ups, batch_size=s.batch_size)

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
        "model_rollouts_k1": lambda: rollouts(1, "float32"),
        "model_rollouts_k15": lambda: rollouts(15, "float32"),
        "policy_act_and_buffer_add": act_and_add,
    }
    if fast_bf16:
        parts["sac_updates_bf16"] = sac_updates_bf16
        parts["model_rollouts_bf16_k1"] = lambda: rollouts(1, "bf16")
        parts["model_rollouts_bf16_k15"] = lambda: rollouts(15, "bf16")
    if env is not None:
        parts["env_step"] = env_step
    # floors, one measurement per repeat: the SAC updates (the lean update's matmuls), and a rollout of length
    # k: k model steps of rollouts_per_step rows over the elites (TS-1) plus k actor forwards (float32)
    sac_mms = sac_matmuls(o, a, tuple(s.net_arch), s.batch_size, sac.critic.n_critics)
    actor_mms = actor_forward_matmuls(o, a, tuple(s.net_arch), cfg.mbpo.rollouts_per_step)
    roll_rows = -(-cfg.mbpo.rollouts_per_step // m.num_elites)
    floor_fns: dict[str, Callable[[], float]] = {
        "sac_updates": lambda: ups * floors["float32"].matmuls_s(sac_mms),
        "rollout_step": lambda: floors["float32"].forward_s(m.num_elites, roll_rows, mdims)
        + floors["float32"].matmuls_s(actor_mms),
    }
    if fast_bf16:
        floor_fns["sac_updates_bf16"] = lambda: ups * floors["bf16"].matmuls_s(sac_mms)
        floor_fns["rollout_step_bf16"] = lambda: floors["bf16"].forward_s(m.num_elites, roll_rows, mdims) \
            + floors["float32"].matmuls_s(actor_mms)
    reps = 5 if quick else 15
    times: dict[str, list[float]] = {k: [] for k in parts}
    cpu: dict[str, list[float]] = {k: [] for k in parts}
    floor_s: dict[str, list[float]] = {k: [] for k in floor_fns}
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
        for k, ff in floor_fns.items():
            floor_s[k].append(ff())
    ms = {k: stats(v, 1e3) for k, v in times.items()}
    out["cpu_ms"] = {k: stats(v, 1e3) for k, v in cpu.items()}
    # amortised retraining: "first" = the from-scratch fit alone (an upper bound, comparable with mbrl-lib's
    # figure, which is also its first fit); "schedule" = averaged over a run's retrains (one from scratch,
    # the rest warm-started), which is what the agent pays per env step over a run
    every = cfg.loop.train_every
    for p in precisions:
        lg, tag = fit_log[p], "" if p == "float32" else "_bf16"
        for src, clock_ms in (("", ms), ("cpu_", out["cpu_ms"])):
            first, wv = lg[f"first_{src}s"], lg[f"warm_{src}s"]
            clock_ms[f"retrain{tag}_amortised"] = stats([x / every for x in first], 1e3)
            clock_ms[f"retrain{tag}_warm_amortised"] = stats([x / every for x in wv], 1e3)
            clock_ms[f"retrain{tag}_schedule_amortised"] = stats([schedule_mean(x, wv) / every for x in first], 1e3)
    out["ms"] = ms
    out["floor_ms"] = {k: stats(v, 1e3) for k, v in floor_s.items()}
    for p in precisions:
        lg, tag = fit_log[p], "" if p == "float32" else "_bf16"
        first_f = float(np.median(lg["first_floor_s"]))
        out["floor_ms"][f"retrain{tag}_amortised"] = round(first_f / every * 1e3, 4)
        out["floor_ms"][f"retrain{tag}_schedule_amortised"] = round(
            schedule_mean(first_f, lg["warm_floor_s"]) / every * 1e3, 4)
    med_cpu = {k: v["median"] for k, v in out["cpu_ms"].items()}
    # alternatives to the first fit, and SB3's own SAC.train beside the lean one the agents run
    rest = ("policy_act_and_buffer_add", "env_step")
    out["step_cpu_ms_k1"] = round(sum(med_cpu[k] for k in ("sac_updates", "model_rollouts_k1", "retrain_amortised",
                                                           *rest) if k in med_cpu), 2)
    out["step_cpu_ms_k15"] = round(out["step_cpu_ms_k1"] - med_cpu["model_rollouts_k1"]
                                   + med_cpu["model_rollouts_k15"], 2)
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
    out["ms_per_sac_update"] = round(med["sac_updates"] / ups, 3)
    out["ms_per_sac_update_sb3"] = round(med["sac_updates_sb3"] / ups, 3)
    # --- the variants' whole steps: process CPU (the ratios' clock), wall, floor, model share, CPU-minutes
    fl_med = {k: (v["median"] if isinstance(v, dict) else v) for k, v in out["floor_ms"].items()}
    out["variants"] = {}
    for name, (label, sac_dt, roll_p, fit_p) in MBPO_VARIANTS.items():
        if "bf16" in (sac_dt, roll_p, fit_p) and not fast_bf16:
            continue
        st, rt, ft = ("_bf16" if x == "bf16" else "" for x in (sac_dt, roll_p, fit_p))
        var: dict[str, Any] = {"label": label, "sac": sac_dt, "rollouts": roll_p, "refits": fit_p}
        for k, n_steps in (("k1", 1), ("k15", 15)):
            sac_k, roll_k = f"sac_updates{st}", f"model_rollouts{rt}_{k}"
            for tag, fit_k in (("", f"retrain{ft}_schedule_amortised"), ("_first_fit", f"retrain{ft}_amortised")):
                cpu_step = med_cpu[sac_k] + med_cpu[roll_k] + med_cpu[fit_k] + sum(med_cpu.get(x, 0.0) for x in rest)
                wall_step = med[sac_k] + med[roll_k] + med[fit_k] + sum(med.get(x, 0.0) for x in rest)
                floor_parts = {"sac_updates": fl_med[sac_k], "model_rollouts": n_steps * fl_med[f"rollout_step{rt}"],
                               "retrain": fl_med[fit_k]}
                floor_step = sum(floor_parts.values())
                var[f"{k}{tag}"] = {
                    "step_cpu_ms": round(cpu_step, 2),
                    "step_ms": round(wall_step, 2),
                    "floor_ms": round(floor_step, 2),
                    "floor_parts_ms": {x: round(v, 3) for x, v in floor_parts.items()},
                    "parts_cpu_ms": {"sac_updates": med_cpu[sac_k], "model_rollouts": med_cpu[roll_k],
                                     "retrain": med_cpu[fit_k]},
                    "over_floor": round(cpu_step / floor_step, 3),
                    "model_share": round((med_cpu[roll_k] + med_cpu[fit_k]) / med_cpu[sac_k], 3),
                    "model_floor_share": round((floor_parts["model_rollouts"] + floor_parts["retrain"])
                                               / med_cpu[sac_k], 3),
                    "cpu_min_per_1k_steps": round(cpu_min_per_1k(cpu_step), 3),
                }
        out["variants"][name] = var
    out["load_after"] = loadavg()
    log(f"mbpo: step {out['step_ms_k1']} ms (k=1), model share of SAC {out['model_share_of_sac_k1']}; variants "
        + ", ".join(f"{n}: {v['k1']['step_cpu_ms']} ms CPU = {v['k1']['over_floor']}x floor"
                    for n, v in out["variants"].items()))
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
"""(mbrl-lib's SAC is a different one, pranz24's at 512 wide: its per-update time comes from ``mbpo-step``.)"""


def parse_rungs(text: str) -> tuple[tuple[int, int, int, int], ...]:
    """``"100x5x30x3,64x5x10x3"`` -> ((100, 5, 30, 3), (64, 5, 10, 3)); a ValueError naming the form otherwise."""
    out = []
    for part in text.split(","):
        bits = part.strip().lower().split("x")
        if len(bits) != 4 or not all(b.isdigit() and int(b) > 0 for b in bits):
            raise ValueError(f"rungs: got {part!r}, allowed POPxPARTICLESxHORIZONxITERS with positive integers")
        out.append(tuple(int(b) for b in bits))
    return tuple(out)  # type: ignore[return-value]


def parse_threads(text: str | int) -> tuple[int, ...]:
    """``"1,2"`` -> (1, 2): torch thread counts, each run in turn in one invocation (0 keeps torch's default);
    a ValueError naming ``--threads`` and the allowed form otherwise."""
    parts = [x.strip() for x in str(text).split(",")]
    if not parts or not all(x.isdigit() for x in parts):
        raise ValueError(f"--threads: got {text!r}, allowed a comma list of torch thread counts >= 0 (0: torch's "
                         "default), e.g. 1 or 1,2")
    out = tuple(int(x) for x in parts)
    if len(set(out)) != len(out):
        raise ValueError(f"--threads: got {text!r} with a repeated count, allowed distinct counts, e.g. 1,2")
    return out


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
                f"({machine.get('cpu_model')}) at the same torch thread count ({threads} for the first): the ratios "
                "compare like with like.")
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
    """The GPU run's ms per action for the same dims, rung and precision."""
    for x in gpu["plan"]["results"]:
        if x["env"] == row["env"] and x["rung"] == row["rung"] and _prec(x) == _prec(row):
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
    """Issue 8's target 4 from committed runs: wall time to the first evaluation return >= 900 on
    InvertedPendulum-v5, ours (`mbrl-po demo`, each objective) against mbrl-lib's PETS (the peer's ``pets-ip``
    workload). None when our demo runs are not there."""
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


# ---------------------------------------------------------------------------------------------- targets
NOT_MEASURED = "not measured in this run"
BF16_PLAN_EVIDENCE = Path("docs/results/planning/halfcheetah_bf16")
"""Where ``mbrl-po bench planner-sweep`` with ``@bf16`` settings writes whether bf16 plans as well as float32."""
T1 = "1. honest comparisons: a ratio to mbrl-lib only for figures of this machine and this invocation"
T2 = ("2. planning: on a bf16 CPU ≥ 3× faster than mbrl-lib at every rung and ≤ 1.3× the floor of the dtype "
      "used; on an AVX2-only CPU ≤ 1.3× the float32 floor at rungs with ≥ 200 rows per member")
T3 = "3. SAC updates (SB3's SAC, same algorithm) ≤ 1.5× their matmul floor"
T4_FLOOR = "4. MBPO Hopper-v5 (paper settings): the whole env step ≤ 1.5× its floor"
T4_SHARE = "4. MBPO: the model's share (rollouts + refits) ≤ 25% of the SAC updates' time"
T4_MIN = "4. MBPO: CPU-minutes per 1,000 env steps beside the GPU anchor, and mbrl-lib's step"
T5 = "5. PETS HalfCheetah-v5 at the locomotion suite's planner (CEM 100 × 5 × H30 × 3, E=7, TS-1)"
T6 = "6. two threads: the same figures with 2 torch threads"
T7 = "7. GPU"


def _span(xs: list[float]) -> str:
    """``1.20×`` for one value, ``1.20–1.90×`` for several (min–max)."""
    lo, hi = min(xs), max(xs)
    return f"{lo:.2f}×" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}×"


def _n_rungs(n: int) -> str:
    return f"{n} rung{'s' if n != 1 else ''}"


def _prec(row: dict[str, Any]) -> str:
    return row.get("precision", "float32")


def _threads_label(t: int) -> str:
    return f"{t} torch thread{'s' if t != 1 else ''}" if t else "torch's default threads"


def thread_views(res: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(torch threads, results) for every thread count of a run: the top level holds the first count's
    sections, ``by_threads`` the others' (older reports: one view)."""
    m = res.get("machine", {})
    first = int((res.get("threads") or [m.get("torch_threads", 1)])[0] or m.get("torch_threads", 0) or 0)
    views = [(first, res)]
    shared = {k: v for k, v in res.items() if k not in (*PER_THREAD_SECTIONS, "peer", "by_threads", "seeds")}
    for t, run in (res.get("by_threads") or {}).items():
        machine = {**m, "torch_threads": run.get("torch_threads", int(t))}
        views.append((int(t), {**shared, **run, "machine": machine}))
    return views


def _peer_of(view: dict[str, Any], res: dict[str, Any], peer: dict[str, Any] | None) -> dict[str, Any] | None:
    """mbrl-lib's figures for one thread view: the run's own for an extra count, ``peer`` for the first."""
    return peer if view is res else view.get("peer")


def _rung_name(r: dict[str, Any]) -> str:
    return f"{r.get('dims', r['env'])} {r['rung']}"


def _floor_bound_text(bad: list[dict[str, Any]], dtype: str) -> str:
    """What keeps planning rungs above 1.3× their floor: the share of an action that is not matmul work."""
    worst = max(bad, key=lambda r: r["over_floor"]["median"])
    share = 1 - 1 / worst["over_floor"]["median"]
    return (
        f"above 1.3× the {dtype} floor at {', '.join(_rung_name(r) for r in bad)}; worst {_rung_name(worst)} "
        f"({worst['rows_per_member']} rows/member): {worst['over_floor']['median']:.2f}×, i.e. {share:.0%} of an "
        "action is not the network's matmuls (activations, sampling, CEM, per-op cost; docs/perf_notes.md §8)"
    )


def _bf16_plan_evidence() -> str:
    md = BF16_PLAN_EVIDENCE / "sweep.md"
    if md.is_file():
        return f"whether bf16 plans as well as float32: [{md}]({Path('..') / md}) (`mbrl-po bench planner-sweep`)"
    return (f"whether bf16 plans as well as float32: pending (`mbrl-po bench planner-sweep` with `@bf16` settings "
            f"writes it to `{BF16_PLAN_EVIDENCE}/`)")


def _target_plan(view: dict[str, Any], peer: dict[str, Any] | None, why: str) -> tuple[str, str, str]:
    if "plan" not in view:
        return T2, NOT_MEASURED, "pending"
    rows = view["plan"]["results"]
    bf16_cpu = bool(view["machine"].get("bf16", {}).get("fast"))
    if bf16_cpu:
        rel = [r for r in rows if _prec(r) == "bf16"]
        dtype, scope = "bf16", f"bf16 (the dtype used on this bf16 CPU), {_n_rungs(len(rel))}"
    else:
        rel = [r for r in rows if _prec(r) == "float32" and r["rows_per_member"] >= 200]
        dtype, scope = "float32", (f"float32 (no bf16 matrix instructions), {_n_rungs(len(rel))} with ≥ 200 "
                                   "rows/member")
    if not rel:
        return T2, f"{scope}: none measured in this run", "pending"
    over = [r["over_floor"]["median"] for r in rel]
    parts = [f"{scope}: ours / {dtype} floor {_span(over)}"]
    floor_ok = max(over) <= 1.3
    bounds = []
    if not floor_ok:
        bounds.append(_floor_bound_text([r for r in rel if r["over_floor"]["median"] > 1.3], dtype))
    sp_wall, sp_cpu, speed_bad = [], [], []
    for r in rel:
        pm, _ = peer_plan_ms(peer, r["env"], r["rung"])
        pc, _ = peer_plan_ms(peer, r["env"], r["rung"], cpu=True)
        if pm:
            sp_wall.append(pm / r["ms_per_action"]["median"])
            if sp_wall[-1] < 3:
                speed_bad.append((r, pc))
        if pc and "busy_ms_per_action" in r:
            sp_cpu.append(pc / r["busy_ms_per_action"]["median"])
    if peer is None:
        speed_ok = None
        parts.append(f"mbrl-lib: {why or 'pending'}")
    elif not sp_wall:
        speed_ok = None
        parts.append("mbrl-lib: not run at these rungs")
    else:
        speed_ok = len(sp_wall) == len(rel) and min(sp_wall) >= 3
        parts.append(f"mbrl-lib / ours {_span(sp_wall)} wall" + (f", {_span(sp_cpu)} CPU time" if sp_cpu else "")
                     + f" over {_n_rungs(len(sp_wall))} (same run)")
        if bf16_cpu and speed_bad:
            for r, pc in speed_bad:
                bound = pc / r["floor_ms"]["median"] if pc else None
                if bound is None:
                    bounds.append(f"{_rung_name(r)}: below 3× (mbrl-lib's CPU time not recorded)")
                elif bound < 3:
                    bounds.append(f"{_rung_name(r)}: mbrl-lib / {dtype} floor = {bound:.2f}×: 3× is out of reach in "
                                  "this dtype there")
                else:
                    bounds.append(f"{_rung_name(r)}: mbrl-lib / {dtype} floor = {bound:.2f}×, so 3× needs ours ≤ "
                                  f"{bound / 3:.2f}× the floor (now {r['over_floor']['median']:.2f}×)")
    if bf16_cpu:
        f32 = [r["over_floor"]["median"] for r in rows if _prec(r) == "float32"]
        if f32:
            parts.append(f"float32 for reference: ours / float32 floor {_span(f32)}")
        parts.append(_bf16_plan_evidence())
        met = _yes(None if speed_ok is None and floor_ok else (floor_ok and bool(speed_ok)))
    else:
        small = [r["over_floor"]["median"] for r in rows if _prec(r) == "float32" and r["rows_per_member"] < 200]
        if small:
            parts.append(f"below 200 rows/member (outside this target): {_span(small)}")
        met = _yes(floor_ok)
    value = "; ".join(parts) + (". **Bound:** " + "; ".join(bounds) if bounds else "")
    return T2, value, met


def _target_sac(view: dict[str, Any], peer: dict[str, Any] | None, why: str) -> tuple[str, str, str]:
    if "sac" not in view:
        return T3, NOT_MEASURED, "pending"
    v = view["sac"]["variants"]
    short = {"lean": "LeanSACUpdate float32", "sb3": "SB3's own train float32", "lean_bf16": "LeanSACUpdate bf16"}
    parts, verdicts = [], []
    for n, x in v.items():
        r = x["over_floor"]["median"]
        parts.append(f"{short.get(n, n)}: {_num(x['cpu_ms_per_update']['median'])} ms CPU "
                     f"({_num(x['ms_per_update']['median'])} wall) per update = **{r:.2f}×** its {x['dtype']} floor "
                     f"({_num(x['floor_ms']['median'])} ms for {x['flops'] / 1e6:.0f} MFLOP)")
        verdicts.append(f"{short.get(n, n)}: {_yes(r <= 1.5)}")
    lean = v.get("lean")
    bounds = []
    if lean and lean["over_floor"]["median"] > 1.5:
        gap = lean["cpu_ms_per_update"]["median"] - lean["floor_ms"]["median"]
        need = lean["cpu_ms_per_update"]["median"] / 1.5 - lean["floor_ms"]["median"]
        bounds.append(
            f"LeanSACUpdate float32 spends {_num(gap)} ms per update outside the matmuls (activations, Adam, the "
            f"batch draw, the per-op cost of the small ops); 1.5× allows {_num(max(need, 0.0))} ms"
        )
    pw = _peer_work(peer, "mbpo-step")
    if pw and pw.get("ms_per_sac_update"):
        parts.append(f"mbrl-lib's SAC (pranz24, {((pw.get('settings') or {}).get('sac') or '512 wide')[:60]}…: a "
                     f"different SAC, no ratio): {_num(pw['ms_per_sac_update'])} ms wall per update in its MBPO step")
    elif peer is None:
        parts.append(f"mbrl-lib's SAC (a different one): {why or 'pending'}")
    else:
        parts.append("mbrl-lib's SAC (a different one): its per-update time comes with the mbpo section")
    value = "; ".join(parts) + (". **Bound:** " + "; ".join(bounds) if bounds else "")
    return T3, value, "; ".join(verdicts)


def _targets_mbpo(view: dict[str, Any], peer: dict[str, Any] | None, why: str) -> list[tuple[str, str, str]]:
    if "mbpo" not in view:
        return [(t, NOT_MEASURED, "pending") for t in (T4_FLOOR, T4_SHARE, T4_MIN)]
    b = view["mbpo"]
    variants = b.get("variants")
    pw = _peer_work(peer, "mbpo-step")
    pm = pw.get("amortised_ms_per_env_step") if pw else None
    peer_text = (
        f"mbrl-lib: {_num(pm)} ms wall per env step amortised (its first refit, SAC 512 wide) = "
        f"{cpu_min_per_1k(pm):.1f} min per 1,000 steps (wall); mbrl-lib / ours (wall, first-fit retraining, like for "
        f"like) {pm / b['step_ms_k1']:.2f}×" if pm else f"mbrl-lib: {why or 'pending'}"
    )
    if not variants:  # a report from before issue 14: no floors
        share_ok = b["model_share_of_sac_k1"] <= 0.25 and b["model_share_of_sac_k15"] <= 0.25
        cpu_k1 = b.get("step_cpu_ms_k1")
        mins = f"{cpu_min_per_1k(cpu_k1):.1f} CPU-min per 1,000 env steps (k=1)" if cpu_k1 else "CPU time not recorded"
        return [(T4_FLOOR, f"{NOT_MEASURED} (a report from before the step floor was measured)", "pending"),
                (T4_SHARE, _mbpo_share_text(b), _yes(share_ok)),
                (T4_MIN, f"{mins}; GPU anchor {GPU_ANCHOR}; {peer_text}", "reported")]
    names = {"float32": "float32", "bf16_model": "bf16 model", "bf16_all": "bf16 model + SAC"}
    f_parts, f_verdicts, f_bounds = [], [], []
    s_parts, s_verdicts, s_bounds = [], [], []
    m_parts = []
    for n, var in variants.items():
        k1, k15 = var["k1"], var["k15"]
        nm = names.get(n, n)
        f_parts.append(f"{nm}: **{k1['over_floor']:.2f}×** (k=1: {_num(k1['step_cpu_ms'])} ms CPU vs floor "
                       f"{_num(k1['floor_ms'])} ms), **{k15['over_floor']:.2f}×** (k=15)")
        ok = max(k1["over_floor"], k15["over_floor"]) <= 1.5
        f_verdicts.append(f"{nm}: {_yes(ok)}")
        if not ok:
            pc, pf = k15["parts_cpu_ms"], k15["floor_parts_ms"]
            worst = max(pc, key=lambda x: pc[x] - pf[x])
            f_bounds.append(
                f"{nm}: {worst.replace('_', ' ')} at {pc[worst] / max(pf[worst], 1e-9):.1f}× their floor "
                f"({_num(pc[worst] - pf[worst])} ms above it at k=15), the largest excess; each part over its floor: "
                + ", ".join(f"{x.replace('_', ' ')} {pc[x] / max(pf[x], 1e-9):.1f}×" for x in pc)
                + "; the env step and the policy act have no floor"
            )
        s_parts.append(f"{nm}: **{k1['model_share']:.0%}** (k=1), **{k15['model_share']:.0%}** (k=15) with "
                       f"schedule-average retraining; first-fit: {var['k1_first_fit']['model_share']:.0%}, "
                       f"{var['k15_first_fit']['model_share']:.0%}")
        ok = max(k1["model_share"], k15["model_share"]) <= 0.25
        s_verdicts.append(f"{nm}: {_yes(ok)}")
        if not ok:
            fs = max(k1["model_floor_share"], k15["model_floor_share"])
            fits = (b.get("fits") or {}).get(var.get("refits", "float32"))
            epochs = (f"first fit {fits['first_epochs']} epochs, warm refits {fits['warm_epochs']}" if fits else
                      f"first fit {b['retrain_epochs']} epochs, warm refits {b.get('retrain_warm_epochs')}")
            s_bounds.append(
                f"{nm}: at their floors the rollouts and refits alone would be {k1['model_floor_share']:.0%} (k=1), "
                f"{k15['model_floor_share']:.0%} (k=15) of the SAC time measured here"
                + (", so with these refit epochs ≤ 25% is out of reach even at the floor" if fs > 0.25 else
                   "; the rest is their overhead above the floor")
                + f"; the share is bounded by refit epochs on early data ({epochs}; {b['settings']['model_fit']})"
            )
        m_parts.append(f"{nm}: **{k1['cpu_min_per_1k_steps']:.1f}** (k=1), **{k15['cpu_min_per_1k_steps']:.1f}** "
                       "(k=15)")
    rows = [
        (T4_FLOOR, "; ".join(f_parts) + (". **Bound:** " + "; ".join(f_bounds) if f_bounds else ""),
         "; ".join(f_verdicts)),
        (T4_SHARE, "; ".join(s_parts) + (". **Bound:** " + "; ".join(s_bounds) if s_bounds else ""),
         "; ".join(s_verdicts)),
        (T4_MIN, "CPU-minutes per 1,000 env steps (schedule-average retraining): " + "; ".join(m_parts)
         + f"; GPU anchor {GPU_ANCHOR}; {peer_text}", "reported"),
    ]
    return rows


def _target_pets(view: dict[str, Any], peer: dict[str, Any] | None, why: str) -> tuple[str, str, str]:
    rows = [r for r in (view.get("plan") or {}).get("results", []) if r["env"] == PETS_ENV and r["rung"] == PETS_RUNG]
    if not rows:
        return T5, NOT_MEASURED + (" (the rung is in the default ladder; --rungs or --dims left it out)"
                                   if "plan" in view else ""), "pending"
    parts = []
    for r in rows:
        busy = r.get("busy_ms_per_action", r["ms_per_action"])["median"]
        parts.append(f"ours {_prec(r)}: {_num(r['ms_per_action']['median'])} ms wall, {_num(busy)} ms CPU per action "
                     f"= **{cpu_min_per_1k(busy):.2f} CPU-min per 1,000 env steps**, "
                     f"{r['over_floor']['median']:.2f}× its {_prec(r)} floor")
    pm, _ = peer_plan_ms(peer, PETS_ENV, PETS_RUNG)
    pc, _ = peer_plan_ms(peer, PETS_ENV, PETS_RUNG, cpu=True)
    if pm:
        parts.append(f"mbrl-lib (float32): {_num(pm)} ms wall" + (
            f", {_num(pc)} ms CPU = {cpu_min_per_1k(pc):.2f} CPU-min per 1,000 env steps" if pc else ""))
        for r in rows:
            busy = r.get("busy_ms_per_action", r["ms_per_action"])["median"]
            parts.append(f"mbrl-lib / ours {_prec(r)}: {pm / r['ms_per_action']['median']:.2f}× wall"
                         + (f", {pc / busy:.2f}× CPU time" if pc else ""))
    else:
        parts.append(f"mbrl-lib: {why or 'not run at this rung'}")
    return T5, "; ".join(parts), "reported"


def targets_summary(res: dict[str, Any], peer: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(target, measured value, met) rows of issue 14's targets 1-5 for one thread count's results; a missed
    target's value ends with the bound that stops it. Targets 6 and 7 span runs: :func:`write_report`."""
    ok, why = peer_comparable(peer, res["machine"])
    m = res["machine"]
    if peer is None:
        t1 = ("mbrl-lib not measured (pass --peer-python <mbrl-lib venv>/bin/python): no ratio printed", "yes")
    elif ok:
        t1 = (f"mbrl-lib 0.2.0 measured in this invocation on this machine ({m.get('cpu_model')}, "
              f"{_threads_label(m.get('torch_threads', 0))}), right after ours: ratios printed", "yes")
    else:
        t1 = (f"{why}: its figures are shown, no ratio printed", "yes")
    rows: list[tuple[str, str, str]] = [(T1, *t1)]
    if not ok:
        peer = None  # no ratio from figures of another machine or run
    rows.append(_target_plan(res, peer, why))
    rows.append(_target_sac(res, peer, why))
    rows += _targets_mbpo(res, peer, why)
    rows.append(_target_pets(res, peer, why))
    return rows


def earlier_targets(res: dict[str, Any], peer: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(target, measured value, met) rows of issue 8's targets that issue 14 did not replace."""
    rows: list[tuple[str, str, str]] = []
    ok, why = peer_comparable(peer, res["machine"])
    if not ok:
        peer = None
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
                    f". Bound: mbrl-lib / float32 floor = {bound:.2f}× (CPU time), the most that code running at the "
                    "float32 matmul floor could gain"
                    + (", so 2× is out of reach in float32 on this CPU" if bound < 2 else "")
                )
        best = max(x for x in (pe and pe / nll, pe_cpu and pe_cpu / nll_cpu, 0) if x is not None)
        rows.append(
            ("NLL epoch ≥ 2× faster than mbrl-lib's ModelTrainer (CPU)", value, _yes(None if not pe else best >= 2))
        )
        rows.append(("PG (G=5) epoch ≤ 1.3× NLL epoch", f"{t['pg_over_nll']:.2f}×", _yes(t["pg_over_nll"] <= 1.3)))
        frac = t["pg"].get("outer_fraction")
        if frac is not None:
            rows.append(("bilevel outer step, as a fraction of an epoch (report)", f"{frac:.0%}", "reported"))
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
            ("bf16 measured beside float32 (bf16 matrix instructions)" if m["bf16"]["fast"]
             else "bf16 off (no bf16 matrix instructions)")
            + "; compile: `MPCAgent(compile=True)` falls back to eager with a warning",
            "yes",
        )
    )
    return rows


def _thread_speedup(base: dict[str, Any], view: dict[str, Any]) -> str:
    """Wall time of the same figures at another thread count, over the first count's."""
    out = []

    def pets_ms(v: dict[str, Any]) -> float | None:
        for r in (v.get("plan") or {}).get("results", []):
            if r["env"] == PETS_ENV and r["rung"] == PETS_RUNG and _prec(r) == "float32":
                return r["ms_per_action"]["median"]
        return None

    def sac_ms(v: dict[str, Any]) -> float | None:
        x = ((v.get("sac") or {}).get("variants") or {}).get("lean")
        return x["ms_per_update"]["median"] if x else None

    def mbpo_ms(v: dict[str, Any]) -> float | None:
        x = ((v.get("mbpo") or {}).get("variants") or {}).get("float32")
        return x["k1"]["step_ms"] if x else (v.get("mbpo") or {}).get("step_ms_k1")

    for label, get in (("PETS rung float32 per action", pets_ms), ("SAC update (lean float32)", sac_ms),
                       ("MBPO step (float32, k=1)", mbpo_ms)):
        a, b = get(base), get(view)
        if a and b:
            out.append(f"{label} {b / a:.2f}×")
    return ", ".join(out) if out else "no common figure"


def _merged_targets(views: list[tuple[int, dict[str, Any]]], res: dict[str, Any], peer: dict[str, Any] | None,
                    gpu: dict[str, Any] | None) -> list[tuple[str, list[str], list[str]]]:
    """(target, value per thread view, met per thread view) for targets 1-7."""
    per_view = [targets_summary(v, _peer_of(v, res, peer)) for _, v in views]
    out = [(rows[0], [r[i][1] for r in per_view], [r[i][2] for r in per_view])
           for i, rows in enumerate(per_view[0])]
    t0 = views[0][0]
    if len(views) == 1:
        out.append((T6, [f"{NOT_MEASURED} (pass --threads 1,2)"], ["pending"]))
    else:
        vals = [f"baseline of the ratios ({_threads_label(t0)})"]
        vals += [f"wall time here / at {_threads_label(t0)}: {_thread_speedup(views[0][1], v)}"
                 for _, v in views[1:]]
        out.append((T6, vals, ["measured"] * len(views)))
    g = (f"GPU figures from `{res.get('gpu_json')}` in the GPU columns" if gpu else
         f"{GPU_PENDING}; the command is written below (GPU run)")
    out.append((T7, [g] * len(views), ["reported" if gpu else "pending"] * len(views)))
    return out


# ---------------------------------------------------------------------------------------------- sections
def _sub(add: Callable[[str], None], views: list[tuple[int, dict[str, Any]]], t: int) -> None:
    if len(views) > 1:
        add(f"### {_threads_label(t)}\n")


def _report_floor(add: Callable[[str], None], f: dict[str, Any], m: dict[str, Any]) -> None:
    add(
        f"Load average {f['load']}. `fwd` is (E, rows, in) @ (E, in, out) (`bmm`; for the SAC update's plain "
        "matmuls, E = –, an `addmm` as `nn.Linear` runs it); `dw` and `dx` are the weight- and input-gradient "
        "matmuls of the backward pass, read through transposes as autograd does.\n"
    )
    add(
        "| workload | E | rows/member | in → out | kind | dtype | µs | GFLOP/s |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in f["shapes"]:
        add(
            f"| {r['workload']} | {r['E'] or '–'} | {r['rows']} | {r['in']} → {r['out']} | {r['kind']} | "
            f"{r.get('dtype', 'float32')} | {r['us']} | {r['gflops']} |"
        )
    add(
        f"\nbf16 probe ({f['bf16_probe']['shape']}, GFLOP/s): float32 {f['bf16_probe'].get('float32')}, bfloat16 "
        f"{f['bf16_probe'].get('bfloat16')}. {m['bf16']['reason']}.\n"
    )


def _report_train(add: Callable[[str], None], t: dict[str, Any], gpu: dict[str, Any] | None,
                  peer: dict[str, Any] | None, comparable: bool, not_compared: str) -> None:
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
        f"Wall time and, for the ratios, process CPU time (the floor is measured in CPU time too: "
        f"{t.get('floor_clock', 'wall')}).\n"
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
        add(f"| NLL epoch, bf16 autocast | {fmt(t['nll_bf16']['epoch_s'])} | {fmt(t['nll_bf16'].get('epoch_cpu_s'))} "
            "| – | – | – | – | – |")
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


def _report_plan(add: Callable[[str], None], p: dict[str, Any], gpu: dict[str, Any] | None,
                 peer: dict[str, Any] | None, comparable: bool) -> None:
    if p["skipped"]:
        add(f"Skipped: {', '.join(p['skipped'])}.\n")
    add(
        "| dims | pop × particles × H × iters | precision | rows/member | GFLOP/action | ours, wall (ms) | "
        "ours, CPU (ms) | floor (ms) | ours / floor | CPU-min per 1k actions | mbrl-lib, wall (ms) | "
        "mbrl-lib, CPU (ms) | mbrl-lib / ours (wall, CPU) | load | GPU (ms) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
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
            f"| {r['env']} | {r['rung']} | {_prec(r)} | {r['rows_per_member']} | {r['flops_per_action'] / 1e9:.1f} | "
            f"{fmt(r['ms_per_action'])} | {fmt(busy)} | {fmt(r['floor_ms'])} | {r['over_floor']['median']:.2f} | "
            f"{cpu_min_per_1k(busy['median']):.2f} | {_num(pm) + ' ' + pnote if pm else pnote} | {_num(pc)} | {sp} | "
            f"{r['load_before']} | {_gpu(gpu, lambda g, r=r: _gpu_plan_cell(g, r))} |"
        )
    add("")


def _report_sac(add: Callable[[str], None], sc: dict[str, Any], peer: dict[str, Any] | None, why: str) -> None:
    st = sc["settings"]
    add(
        f"Hopper-v5 dims: obs {st['obs']}, act {st['act']}, batch {st['batch']}, nets {st['net_arch']}, "
        f"{st['critics']} critics, entropy coefficient {st['ent_coef']}, lr {st['lr']}, tau {st['tau']}, gamma "
        f"{st['gamma']} (the MBPO agent's SAC settings). Each sample: {st['updates_per_sample']} updates of one "
        f"variant (one MBPO env step's worth), the variants interleaved over {st['repeats']} repeats, each followed "
        "by its floor: the update's matmuls (`sac_matmuls`: actor forward on obs and next obs, target critics on "
        "next obs, critics on (obs, a) and their backward, the actor loss's critics forward and input-gradient "
        "backward, the actor backward) timed as `addmm`/`mm` in the variant's dtype, in "
        f"{sc.get('floor_clock', 'wall')}. Matmul FLOPs per update: LeanSACUpdate {sc['flops']['lean'] / 1e6:.0f} "
        f"MFLOP, SB3's own train {sc['flops']['sb3'] / 1e6:.0f} MFLOP (it also computes the critics' weight "
        f"gradients of the actor loss). bf16: {sc['bf16']}; bf16 runs under `torch.autocast` with its weight-cast "
        f"cache off (the cache does not see the optimizer's in-place updates). Load average {sc['load_before']} → "
        f"{sc['load_after']}.\n"
    )
    add("| variant | dtype | ms per update, wall | ms, process CPU | floor (ms) | ours / floor |\n"
        "| --- | --- | --- | --- | --- | --- |")
    for x in sc["variants"].values():
        add(f"| {x['label']} | {x['dtype']} | {fmt(x['ms_per_update'])} | {fmt(x['cpu_ms_per_update'])} | "
            f"{fmt(x['floor_ms'])} | **{x['over_floor']['median']:.2f}** |")
    pw = _peer_work(peer, "mbpo-step")
    if pw and pw.get("ms_per_sac_update"):
        add(f"| mbrl-lib's SAC in its MBPO step: {(pw.get('settings') or {}).get('sac')} — a different SAC | "
            f"float32 | {_num(pw['ms_per_sac_update'])} | – | – | – |")
    else:
        add(f"\nmbrl-lib's SAC (pranz24, 512 wide: a different SAC): "
            f"{why or 'its per-update time comes with the mbpo section'}.")
    add("")


def _report_mbpo(add: Callable[[str], None], b: dict[str, Any], gpu: dict[str, Any] | None,
                 peer: dict[str, Any] | None, comparable: bool, not_compared: str) -> None:
    st = b["settings"]
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
    if "fits" in b and "bf16" in b["fits"]:
        fb = b["fits"]["bf16"]
        add(f"bf16 refits (same data, interleaved with the float32 ones): first fit {fb['first_epochs']} epochs, "
            f"warm refits {fb['warm_epochs']} epochs.\n")
    add("| part | ms per env step, wall | ms, process CPU | floor (ms) | GPU |\n| --- | --- | --- | --- | --- |")
    ups = st["sac_updates_per_step"]
    labels = {
        "sac_updates": (f"{ups} SAC updates (LeanSACUpdate, what the agents run)", "sac_updates"),
        "sac_updates_sb3": (f"{ups} SAC updates by SB3's own `SAC.train` (not in the step)", None),
        "sac_updates_bf16": (f"{ups} SAC updates, LeanSACUpdate under bf16 autocast", "sac_updates_bf16"),
        "model_rollouts_k1": ("model rollouts, length k=1 (first epochs)", "rollout_step"),
        "model_rollouts_k15": ("model rollouts, length k=15 (Hopper schedule end)", "rollout_step"),
        "model_rollouts_bf16_k1": ("model rollouts in bf16, k=1", "rollout_step_bf16"),
        "model_rollouts_bf16_k15": ("model rollouts in bf16, k=15", "rollout_step_bf16"),
        "retrain_amortised": ("model retraining, amortised: first fit (from scratch)", "retrain_amortised"),
        "retrain_warm_amortised": ("model retraining, amortised: a warm-started refit", None),
        "retrain_schedule_amortised": ("model retraining, amortised: schedule average", "retrain_schedule_amortised"),
        "retrain_bf16_amortised": ("model retraining in bf16, amortised: first fit", "retrain_bf16_amortised"),
        "retrain_bf16_schedule_amortised": ("model retraining in bf16, amortised: schedule average",
                                            "retrain_bf16_schedule_amortised"),
        "env_step": ("env step (MuJoCo)", None),
        "policy_act_and_buffer_add": ("policy act + buffer add", None),
    }
    fl = b.get("floor_ms", {})

    def floor_cell(k: str, key: str | None) -> str:
        if key is None or key not in fl:
            return "–"
        v = fl[key]
        v = v["median"] if isinstance(v, dict) else v
        return _num(v * (15 if k.endswith("_k15") else 1))

    for k, (label, fkey) in labels.items():
        if k in b["ms"]:
            add(
                f"| {label} | {fmt(b['ms'][k])} | {fmt(b.get('cpu_ms', {}).get(k))} | {floor_cell(k, fkey)} | "
                f"{_gpu(gpu, lambda g, k=k: fmt(g['mbpo']['ms'][k]))} |"
            )
    if "step_ms_k1_schedule" in b:
        add(f"| whole step (k=1), schedule-average retraining | {b['step_ms_k1_schedule']} | – | – | – |")
    add(
        f"| **whole step (k=1), first-fit retraining** | **{b['step_ms_k1']}** | {b.get('step_cpu_ms_k1', '–')} | – | "
        f"{_gpu(gpu, lambda g: g['mbpo']['step_ms_k1'])} |"
    )
    add(
        f"| whole step (k=15) | {b['step_ms_k15']} | {b.get('step_cpu_ms_k15', '–')} | – | "
        f"{_gpu(gpu, lambda g: g['mbpo']['step_ms_k15'])} |"
    )
    add("")
    variants = b.get("variants")
    if variants:
        add("Whole step per variant (process CPU time; retraining averaged over the run's schedule unless marked "
            "first fit). Floor = the SAC updates' floor + the rollouts' floor (model and actor matmuls) + the refits' "
            "floor (their epochs at the training step's floor); the env step and the policy act have none. "
            f"CPU-minutes per 1,000 env steps = CPU ms × 1000 / 60000; GPU anchor: {GPU_ANCHOR}.\n")
        add("| variant | k | step, CPU (ms) | step, wall (ms) | floor (ms) | ours / floor | model share of SAC | "
            "model share at the floor | step, CPU, first-fit retraining (ms) | model share, first fit | "
            "CPU-min per 1k env steps |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for v in variants.values():
            for k in ("k1", "k15"):
                x, xf = v[k], v[f"{k}_first_fit"]
                add(f"| {v['label']} | {k[1:]} | {_num(x['step_cpu_ms'])} | {_num(x['step_ms'])} | "
                    f"{_num(x['floor_ms'])} | **{x['over_floor']:.2f}** | {x['model_share']:.0%} | "
                    f"{x['model_floor_share']:.0%} | {_num(xf['step_cpu_ms'])} | {xf['model_share']:.0%} | "
                    f"**{x['cpu_min_per_1k_steps']:.2f}** |")
        add("")
    # where the time goes, beside mbrl-lib's amortised breakdown
    pw = _peer_work(peer, "mbpo-step")
    pb = (pw or {}).get("amortised_breakdown_ms_per_env_step") or {}
    cols = [(n, v) for n, v in (variants or {}).items()]
    head = ["ours float32 (CPU ms)"] + [f"ours {n} (CPU ms)" for n, _ in cols[1:]] + ["mbrl-lib (wall ms)"]
    add("Where the time goes, k=1, first-fit retraining (like mbrl-lib's figure, its first refit):\n")
    add("| part | " + " | ".join(head) + " |\n| --- |" + " --- |" * len(head))
    cpu = b.get("cpu_ms", {})
    med = lambda k: _num((cpu.get(k) or {}).get("median")) if cpu.get(k) else "–"  # noqa: E731
    tags = {"float32": ("", "", ""), "bf16_model": ("", "_bf16", "_bf16"), "bf16_all": ("_bf16", "_bf16", "_bf16")}
    for part, (ours_key, peer_key) in {
        "SAC updates": ("sac_updates{s}", "sac_updates"),
        "model rollouts": ("model_rollouts{r}_k1", "model_rollouts"),
        "model retraining (amortised)": ("retrain{f}_amortised", "model_retrain"),
        "env step": ("env_step", "env_step"),
        "policy act + buffer add": ("policy_act_and_buffer_add", "policy_act_and_buffer_add"),
        "other loop overhead": (None, "other_loop_overhead"),
    }.items():
        cells = []
        for n, _ in (cols or [("float32", None)]):
            s_, r_, f_ = tags.get(n, ("", "", ""))
            cells.append(med(ours_key.format(s=s_, r=r_, f=f_)) if ours_key else "–")
        pv = pb.get(peer_key)
        cells.append(_num(pv) if pv is not None and comparable else ("–" if pv is None else f"{_num(pv)} (other run)"))
        add(f"| {part} | " + " | ".join(cells) + " |")
    tot = [_num(v["k1_first_fit"]["step_cpu_ms"]) for _, v in cols] or [str(b.get("step_cpu_ms_k1", "–"))]
    pm = (pw or {}).get("amortised_ms_per_env_step")
    pm_cell = "–" if not pm else f"**{_num(pm)}**" + ("" if comparable else " (other run)")
    add("| **whole step** | " + " | ".join(f"**{x}**" for x in tot) + f" | {pm_cell} |")
    add("")
    add(
        "- Model share (rollouts + amortised retraining) over the SAC updates' time (target ≤ 25%; process "
        f"CPU time, float32): {_mbpo_share_text(b)}. One SAC update: {b['ms_per_sac_update']} ms wall."
    )
    if pw:
        st_p = pw.get("settings") or {}
        add(
            f"- mbrl-lib ({'this run' if comparable else not_compared}, {_peer_note(pw)}): "
            f"{pw.get('amortised_ms_per_env_step')} ms per env step amortised (wall), its process CPU over the "
            f"measured window {pw.get('window_process_cpu_ms_per_env_step')} ms per step; its SAC: "
            f"{st_p.get('sac', '?')}, {pw.get('ms_per_sac_update')} ms per update; its first retrain ran "
            f"{pw.get('model_retrain_epochs_each')} epochs ({pw.get('model_retrain_s_each')} s; no epoch cap), ours "
            "is capped at the config's max_epochs."
        )
    else:
        add("- mbrl-lib: pending.")
    add("")


def _report_seeds(add: Callable[[str], None], s: dict[str, Any], gpu: dict[str, Any] | None) -> None:
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


def write_report(res: dict[str, Any], out: Path, gpu: dict[str, Any] | None, peer: dict[str, Any] | None) -> None:
    m = res["machine"]
    views = thread_views(res)
    L: list[str] = []
    add = L.append
    add("# Performance: model training, planning, SAC and MBPO against the matmul floor and mbrl-lib\n")
    add(
        "Written by `mbrl-po bench speed` (`benchmarks/harness/speed.py`); do not edit by hand. Every figure is a "
        "median over repeats with its interquartile range and count as `median (p25–p75, n)`. The **floor** of a "
        "workload is its matmul FLOPs divided by the throughput `torch.bmm` (`torch.addmm`/`mm` for SAC's plain "
        "layers) reaches on this machine for the workload's exact shapes, in the workload's dtype, measured in the "
        "same run, interleaved with the workload (one floor measurement per repeat), so `ours / floor` compares "
        "like with like on a loaded machine. Optimisations and their measured effect: `docs/perf_notes.md`.\n"
    )
    add("## Machine\n")
    flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    add("| | |\n| --- | --- |")
    for k, v in (
        ("date (UTC)", m["date_utc"]),
        ("commit", m["commit"]),
        ("CPU", f"{m['cpu_model']}, {m['cpu_count']} logical cores"),
        ("CPU flags", flags),
        ("torch", f"{m['torch']}, thread counts measured: {', '.join(_threads_label(t) for t, _ in views)}; "
                  f"OMP_WAIT_POLICY={m['omp_wait_policy']}"),
        ("device", m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")),
        ("bf16", ("measured beside float32: " if m["bf16"]["fast"] else "not used: ") + m["bf16"]["reason"]),
        ("load average (1, 5, 15 min)", f"start {res['load_start']}, end {res['load_end']}"),
        ("mode", "--quick" if res["quick"] else "full"),
        ("bench wall time", f"{res['wall_s']:.0f} s"),
    ):
        add(f"| {k} | {v} |")
    add("")
    if res.get("notes"):
        add(f"Note: {res['notes']}.\n")
    add(peer_header(peer) + "\n")
    # ---- targets
    bf = "bf16 matrix instructions" if m["bf16"]["fast"] else "no bf16 matrix instructions"
    add(f"## Targets (issue 14) on this machine: {m['cpu_model']}, {m['cpu_count']} logical cores, {bf}\n")
    add("Each figure beside its floor and beside mbrl-lib's from the same run where there is one; a missed target "
        "ends with the bound that stops it. CPU time is process CPU time (all threads).\n")
    merged = _merged_targets(views, res, peer, gpu)
    if len(views) == 1:
        add(f"| target | measured ({_threads_label(views[0][0])}) | met |\n| --- | --- | --- |")
        for target, vals, mets in merged:
            add(f"| {target} | {vals[0]} | {mets[0]} |")
    else:
        add("| target | " + " | ".join(f"measured, {_threads_label(t)}" for t, _ in views) + " | met |\n"
            "| --- |" + " --- |" * len(views) + " --- |")
        for target, vals, mets in merged:
            met = mets[0] if len(set(mets)) == 1 else "; ".join(
                f"{_threads_label(t)}: {x}" for (t, _), x in zip(views, mets, strict=True))
            add(f"| {target} | " + " | ".join(vals) + f" | {met} |")
    add("")
    earlier = earlier_targets(res, peer)
    if earlier:
        add(f"## Earlier targets (issue 8) still measured ({_threads_label(views[0][0])})\n")
        add("| target | measured here | met |\n| --- | --- | --- |")
        for target, value, met in earlier:
            add(f"| {target} | {value} | {met} |")
        add("")
    titles = {
        "floor": "1. Floor: matmul throughput for the workloads' shapes",
        "train": "2. Model training: one epoch over 100k HalfCheetah-v5 transitions",
        "plan": "3. Planning latency per action (CEM, E=7 with 5 elites, TS-1)",
        "sac": "4. SAC updates at Hopper-v5 dims",
        "mbpo": "5. MBPO: one env step on Hopper-v5 dims",
    }
    missing = [titles[s].split(": ")[0].split(". ", 1)[1] for s in titles if not any(s in v for _, v in views)]
    if missing:
        add(f"Sections not measured in this run: {', '.join(missing)}.\n")
    # ---- sections, each with one table per thread count
    for sec, title in titles.items():
        have = [(t, v) for t, v in views if sec in v]
        if not have:
            continue
        add(f"## {title}\n")
        if sec == "plan":
            add(
                "Random (untrained) weights: the cost does not depend on them. InvertedPendulum dims use the known "
                "reward and termination functions, HalfCheetah dims the learned reward head (as mbrl-lib's runner "
                "does). Each rung: one warm-up action per precision, then timed actions with warm start, the "
                "precisions interleaved, each action followed by one floor measurement in its dtype (iterations × "
                "horizon × the forward matmuls at rows/member). `ModelEnv(precision='bf16')` runs the network's "
                "matmuls in bf16 (everything after it in float32); mbrl-lib runs float32. The floor is in process "
                "CPU time and `ours / floor` compares CPU times; `mbrl-lib / ours` is given for both clocks. "
                "100x5x30x3 is the locomotion suite's PETS planner (target 5). "
                + _bf16_plan_evidence() + ".\n"
            )
        for t, v in have:
            _sub(add, views, t)
            pv = _peer_of(v, res, peer)
            comparable, not_compared = peer_comparable(pv, v["machine"])
            g = gpu if v is res else None
            if sec == "floor":
                _report_floor(add, v["floor"], v["machine"])
            elif sec == "train":
                _report_train(add, v["train"], g, pv, comparable, not_compared)
            elif sec == "plan":
                _report_plan(add, v["plan"], g, pv, comparable)
            elif sec == "sac":
                _report_sac(add, v["sac"], pv if comparable else None, not_compared)
            else:
                _report_mbpo(add, v["mbpo"], g, pv, comparable, not_compared)
    if "seeds" in res:
        add("## 6. Several seeds\n")
        _report_seeds(add, res["seeds"], gpu)
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
        default="1",
        help="torch threads, or a comma list such as 1,2: every section but seeds runs once per count, in this "
        "invocation, and mbrl-lib (--peer-python) likewise (default 1, as mbrl-lib's recorded figures; 0 keeps "
        "torch's default)",
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


def measure(sections: list[str], device: torch.device, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """Our sections of :data:`PER_THREAD_SECTIONS` at one torch thread count, then mbrl-lib's side of them when
    ``--peer-python`` is given (same machine, same thread count, right after ours)."""
    if threads > 0:
        torch.set_num_threads(threads)
    run: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    log(f"threads {threads}: torch uses {run['torch_threads']}")
    budget = args.rung_budget if args.rung_budget is not None else (10.0 if args.quick else 30.0)
    rungs = parse_rungs(args.rungs) if args.rungs else None
    dims_keys = tuple(d.strip() for d in args.dims.split(",")) if args.dims else None
    if "floor" in sections:
        run["floor"] = run_floor(device, args.quick)
    if "train" in sections:
        run["train"] = run_train(device, args.quick)
    if "plan" in sections:
        run["plan"] = run_plan(device, args.quick, budget, rungs, dims_keys)
    if "sac" in sections:
        run["sac"] = run_sac(device, args.quick)
    if "mbpo" in sections:
        run["mbpo"] = run_mbpo(device, args.quick)
    if args.peer_python:  # mbrl-lib measured now, after ours, on the same machine and thread count
        peer: dict[str, Any] = {"peer": "mbrl-lib", "same_run": True, "machine": None, "workloads": {}}
        for sec in (x for x in ("train", "plan", "mbpo") if x in sections):
            extra = []
            if sec == "plan":  # exactly the rungs and dims we ran, with our budget per rung
                ran = run["plan"]["results"]
                extra = ["--rungs", ",".join(dict.fromkeys(r["rung"] for r in ran)),
                         "--dims", ",".join(dict.fromkeys(r["dims"] for r in ran)), "--rung-budget", str(budget)]
            w = run_peer_workload(args.peer_python, sec, threads, args.device, extra)
            peer["workloads"][w["workload"]] = w
            peer["machine"] = peer["machine"] or w.get("machine")
        run["peer"] = peer
    return run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads = parse_threads(args.threads)
    if args.worker_plan:
        if threads[0] > 0:
            torch.set_num_threads(threads[0])
        print(
            json.dumps(
                _worker_plan(
                    args.worker_plan, args.worker_dims, args.worker_actions, args.seed, threads[0], args.device
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
    if args.rungs:
        parse_rungs(args.rungs)  # fail before measuring anything
    if args.dims and set(d.strip() for d in args.dims.split(",")) - set(PLAN_DIMS):
        raise ValueError(f"dims: got {args.dims!r}, allowed a comma list of {list(PLAN_DIMS)}")
    t0 = time.perf_counter()
    if threads[0] > 0:
        torch.set_num_threads(threads[0])
    res: dict[str, Any] = {
        "machine": machine_info(device),
        "quick": args.quick,
        "load_start": loadavg(),
        "sections": sections,
        "threads": list(threads),
    }
    log(f"machine: {res['machine']['cpu_model']}, torch {torch.__version__}, threads {list(threads)}")
    runs = [measure(sections, device, args, t) for t in threads]
    # the first thread count's figures at the top level (the layout of single-count reports), the others by count
    res.update(runs[0])
    res["machine"]["torch_threads"] = runs[0]["torch_threads"]
    if len(runs) > 1:
        res["by_threads"] = {str(t): r for t, r in zip(threads[1:], runs[1:], strict=True)}
    peer = res.get("peer") or load_peer(Path(args.peer_json))
    if threads[0] > 0:
        torch.set_num_threads(threads[0])
    if "seeds" in sections:
        res["seeds"] = run_seeds(device, args.quick, threads[0])
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
