"""``mbrl-po bench online SUITE``: run a suite's trials (agent x task x objective x seed) and collect their
evaluation returns in ``docs/results/<SUITE>/runs.csv``.

* Each trial runs in its own run directory ``runs/suites/<SUITE>/<trial-id>/`` (config, metrics, checkpoints);
  a trial whose directory has a checkpoint resumes from it, so a sweep killed half-way continues its
  half-done trials and never re-runs a finished one (a trial is finished when its id is in runs.csv).
* When a trial ends, the driver appends its rows to runs.csv (one row per evaluation point, long format; see
  :data:`ROW_COLUMNS`) under a file lock, by writing a temporary file and renaming it over runs.csv.
* Long trials: ``--snapshot`` writes the rows that unfinished trials have logged so far to ``partial.csv``
  (commit it as a partial curve; the report shows it beside runs.csv, marked as running). The rows of an
  attempt whose checkpoints were lost (a replaced machine) move to ``lost.csv`` instead of vanishing.
  ``--plan COMMIT`` lists the unfinished trials in the order worth running them on this machine
  (:meth:`Sweep.run_order`; ``benchmarks/longrun/restart.sh`` deals it out to the cores).
* A trial that raises is reported on stderr and in ``failures.csv`` (one row per failed attempt, with the
  traceback's tail) and retried up to ``--retries`` times; a sweep with trials that still fail exits with 1.
* Execution: in this process (``--workers 1``), a process pool (``--workers k``), or Ray remote tasks of one
  CPU each (``--ray-address ADDR``, or ``local`` to start a local Ray instance; ``pip install 'mbrl-po[ray]'``).

Run ``mbrl-po bench online --help``; ``mbrl-po report SUITE`` turns runs.csv into tables and plots.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import io
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.suites import Suite, Trial, load_suite

ROW_COLUMNS = (
    "agent", "env_id", "task", "env_variant", "objective", "u_option", "seed", "env_step", "eval_return",
    "model_nll", "model_mse", "rollout_error", "wall_time", "machine", "commit", "config_hash", "trial_id",
)
"""Columns of runs.csv: one row per evaluation point of a finished trial. ``model_*``/``rollout_error`` are
those of the last model scoring at or before ``env_step`` (empty for SAC); ``wall_time`` is the run's seconds
up to that point (resumed segments included)."""

FAILURE_COLUMNS = ("time", "trial_id", "label", "attempt", "final", "error", "traceback_tail", "machine", "commit")
MODEL_COLUMNS = ("model_nll", "model_mse", "rollout_error")
ENVS_DIR_VAR = "MBRL_PO_ENVS_DIR"


# ---------------------------------------------------------------------------------------------- provenance
def machine_string() -> str:
    """``host=<hostname>; cpu=<model> (<n> cores); gpu=<name or none>`` of the machine running this."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = "none"
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return f"host={socket.gethostname()}; cpu={cpu} ({os.cpu_count()} cores); gpu={gpu}"


def git_commit(path: str | Path | None = None) -> str:
    """``git rev-parse --short HEAD`` of the repository holding the code (``+dirty`` when tracked files under
    mbrl_po/, agents/, envs/ or benchmarks/suites/ differ from it); ``unknown`` outside a repository."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no", "--", "mbrl_po", "agents",
             "envs", "benchmarks/suites"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else (head or "unknown")


# ---------------------------------------------------------------------------------------------- CSV files
@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on the folder of ``path`` (held by one process at a time, released on exit).

    The folder, not the file, is locked: the file is replaced by a rename, so its inode changes, and a lock
    file would be one more file in a results folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_rows(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Append ``rows`` to a CSV atomically: under :func:`file_lock`, the old content plus the new rows go to a
    temporary file that then replaces ``path`` (a reader never sees half a trial; a crash leaves the old file).

    Raises:
        ValueError: a row has a column outside ``columns``, or the existing header differs from ``columns``.
    """
    path = Path(path)
    for r in rows:
        extra = set(r) - set(columns)
        if extra:
            raise ValueError(f"row: unknown columns {sorted(extra)}, allowed {list(columns)}")
    with file_lock(path):
        old = read_csv(path)
        if path.exists() and path.stat().st_size:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != list(columns):
                raise ValueError(f"{path}: header got {header}, allowed {list(columns)}")
        write_csv_atomic(path, columns, [*old, *({c: _cell(r.get(c)) for c in columns} for r in rows)])


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    return str(v)


def read_csv(path: str | Path, whole_lines: bool = True) -> list[dict[str, str]]:
    """Rows of a CSV (empty when the file does not exist), safe on a file that a running trial is appending to.

    The file is read in one go and then parsed, so a writer appending between two reads cannot hand the parser
    rows after it saw an empty header (``csv.DictReader`` then fails with ``TypeError``). With ``whole_lines``
    (for the files the harness writes: metrics, runs, partial, lost), a last line without its newline (a row or
    header being written) is left out, as it may be cut short; every file written through :mod:`csv` ends its
    lines with a newline, so a finished one loses nothing. Pass ``whole_lines=False`` for a file edited by hand,
    whose last line may lack its newline.
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    if whole_lines and text and not text.endswith(("\n", "\r")):
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def prune_superseded(runs_csv: str | Path, keep: set[str]) -> list[str]:
    """Move the rows of trials not in ``keep`` (trials of an earlier version of the suite: a changed task or
    agent config gives new trial ids) from runs.csv to ``superseded.csv`` beside it, under :func:`file_lock`.

    Nothing is deleted: the superseded rows are appended to superseded.csv (same columns). Returns the ids of
    the trials moved.
    """
    runs_csv = Path(runs_csv)
    with file_lock(runs_csv):
        rows = read_csv(runs_csv)
        if not rows:
            return []
        old = [r for r in rows if r["trial_id"] not in keep]
        if not old:
            return []
        columns = list(rows[0].keys())
        target = runs_csv.with_name("superseded.csv")
        for path, part, append in ((target, old, True), (runs_csv, [r for r in rows if r["trial_id"] in keep], False)):
            write_csv_atomic(path, columns, [*(read_csv(path) if append else []), *part])
    return sorted({r["trial_id"] for r in old})


def write_csv_atomic(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` through a temporary file in its folder, fsynced and renamed over it (a reader
    sees the old file or the new one, never half of it). The caller holds :func:`file_lock` when it must."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


LOST_COLUMNS = (*ROW_COLUMNS, "lost_attempt")
"""Columns of lost.csv: runs.csv's, plus the attempt's number among the trial's lost attempts (1, 2, ...)."""


def attempt_lost(before: Sequence[dict[str, str]], now: Sequence[dict[str, Any]], has_checkpoint: bool) -> bool:
    """Whether the rows ``before`` (a trial's rows in the previous partial.csv) belong to an attempt that is gone.

    A resumed attempt keeps its metrics.csv up to its checkpoint, wall times included, so each earlier row at a
    step it has reached again is still there, and the rows past its checkpoint come back as it runs on. The
    attempt is gone when an earlier row at a reached step differs (a restart from step 0: other wall times), or
    when no checkpoint is left to bring back the steps it has not reached.

    Args:
        before: the trial's rows in the previous partial.csv (empty: nothing to lose).
        now: its rows from its run directory now (empty when the directory or its metrics.csv is gone).
        has_checkpoint: whether its run directory holds ``checkpoints/latest.pt``.
    """
    if not before:
        return False
    key = ("env_step", "eval_return", "wall_time")
    seen = {tuple(str(r[k]) for k in key) for r in now}
    reached = max((int(r["env_step"]) for r in now), default=-1)
    if any(int(r["env_step"]) <= reached and tuple(str(r[k]) for k in key) not in seen for r in before):
        return True
    return not has_checkpoint and reached < max(int(r["env_step"]) for r in before)


def keep_lost_attempts(lost_csv: str | Path, rows: Sequence[dict[str, str]]) -> int:
    """Append the rows of lost attempts to ``lost.csv``, numbering each trial's attempts; rows already there
    (same trial, step and wall time) are skipped, so a repeated snapshot adds nothing. Returns the rows added."""
    lost_csv = Path(lost_csv)
    with file_lock(lost_csv):
        have = read_csv(lost_csv)
        known = {(r["trial_id"], r["env_step"], r["wall_time"]) for r in have}
        attempts = Counter()
        for tid in {r["trial_id"] for r in have}:
            attempts[tid] = max(int(r["lost_attempt"]) for r in have if r["trial_id"] == tid)
        new = [r for r in rows if (r["trial_id"], str(r["env_step"]), str(r["wall_time"])) not in known]
        for tid in sorted({r["trial_id"] for r in new}):
            attempts[tid] += 1
        out = [{**{k: r.get(k, "") for k in ROW_COLUMNS}, "lost_attempt": attempts[r["trial_id"]]} for r in new]
        if out:
            write_csv_atomic(lost_csv, LOST_COLUMNS, [*have, *out])
    return len(out)


def finished_trials(runs_csv: str | Path) -> set[str]:
    """Ids of the trials that have rows in runs.csv."""
    return {r["trial_id"] for r in read_csv(runs_csv)}


# ---------------------------------------------------------------------------------------------- a trial
@contextlib.contextmanager
def _derived_tasks(files: dict[str, str], where: Path) -> Iterator[None]:
    """Write a trial's derived task TOMLs to ``where`` and put it first on ``$MBRL_PO_ENVS_DIR`` meanwhile."""
    if not files:
        yield
        return
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = where / f"{name}.toml"
        if not target.exists() or target.read_text() != text:
            fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)
    old = os.environ.get(ENVS_DIR_VAR)
    os.environ[ENVS_DIR_VAR] = str(where)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENVS_DIR_VAR, None)
        else:
            os.environ[ENVS_DIR_VAR] = old


def eval_rows(metrics: Sequence[dict[str, str]], payload: dict[str, Any], machine: str,
              commit: str) -> list[dict[str, Any]]:
    """runs.csv rows of a trial from its metrics.csv: one per evaluation, with the latest model metrics."""
    last: dict[str, str] = {}
    rows = []
    for r in sorted(metrics, key=lambda r: int(r["env_step"])):  # stable: a retrain row precedes its eval row
        for k in MODEL_COLUMNS:
            if r.get(k, "") not in ("", "nan"):  # a NaN metric (no valid segment) keeps the last value
                last[k] = r[k]
        if r.get("eval_return", "") == "":
            continue
        rows.append({
            **{k: payload[k] for k in ("agent", "env_id", "task", "env_variant", "objective", "u_option", "seed",
                                       "config_hash", "trial_id")},
            "env_step": int(r["env_step"]), "eval_return": r["eval_return"],
            **{k: last.get(k, "") for k in MODEL_COLUMNS},
            "wall_time": r["wall_time"], "machine": machine, "commit": commit,
        })
    return rows


def _note_commit(run_dir: Path, commit: str) -> None:
    """Append ``commit`` to ``<run_dir>/commits.txt`` unless it is the last one there (what ran this trial)."""
    f = run_dir / "commits.txt"
    seen = f.read_text().split() if f.exists() else []
    if not seen or seen[-1] != commit:
        with open(f, "a") as fh:
            fh.write(commit + "\n")


def run_trial(payload: dict[str, Any], runs_root: str, commit: str, threads: int = 1) -> dict[str, Any]:
    """Run (or resume) one trial in ``<runs_root>/<trial_id>`` and return its runs.csv rows.

    Args:
        payload: :meth:`~benchmarks.harness.suites.Trial.payload`.
        runs_root: absolute folder of the suite's run directories.
        commit: code version written into the rows.
        threads: ``torch.set_num_threads`` for this trial.

    Returns:
        ``{"trial_id", "rows", "wall_s", "resumed_from", "machine"}``.
    """
    import torch

    from mbrl_po.agents import agent_class
    from mbrl_po.agents.common import RunDir
    from mbrl_po.config import load_run_config

    torch.set_num_threads(max(1, int(threads)))
    t0 = time.perf_counter()
    root = Path(runs_root)
    path = root / payload["trial_id"]
    machine = machine_string()
    with _derived_tasks(payload["task_files"], root / "_tasks"):
        cls = agent_class(payload["agent"])
        resumed_from = 0
        config_file = path / "config.toml"
        if config_file.exists() and config_file.read_text() != payload["config_toml"]:
            stale = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
            print(f"{payload['label']}: {path} holds another config; moved to {stale}", file=sys.stderr)
            path.rename(stale)
        elif path.exists() and not config_file.exists() and any(path.iterdir()):
            path.rename(path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))
        if config_file.exists():
            run = RunDir(path)
            run.acquire_lock()  # one writer per trial: another sweep running this trial is refused, not joined
            agent = cls.resume(run, progress=False)
            resumed_from = int(agent.step)
            _note_commit(path, commit)
        else:
            root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=root, prefix=".config-", suffix=".toml")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(payload["config_toml"])
                cfg = load_run_config(tmp)
            finally:
                os.unlink(tmp)
            run = RunDir.create(root, cfg, payload["trial_id"], lock=True)
            _note_commit(path, commit)
            agent = cls(cfg, run, progress=False)
        agent.train()
    rows = eval_rows(run.read_metrics(), payload, machine, commit)
    if not rows:
        raise RuntimeError(f"{payload['label']}: the run logged no evaluation (metrics.csv: {run.metrics_path})")
    return {"trial_id": payload["trial_id"], "rows": rows, "wall_s": time.perf_counter() - t0,
            "resumed_from": resumed_from, "machine": machine}


def run_trial_safe(payload: dict[str, Any], runs_root: str, commit: str, threads: int = 1) -> dict[str, Any]:
    """:func:`run_trial` that returns ``{"trial_id", "error", "traceback", "machine"}`` instead of raising, so
    that every backend reports a failure the same way."""
    try:
        return run_trial(payload, runs_root, commit, threads)
    except Exception as e:  # noqa: BLE001 - reported and retried by the driver
        return {"trial_id": payload["trial_id"], "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(), "machine": machine_string()}


# ---------------------------------------------------------------------------------------------- the sweep
def output_name(suite: str, budget_scale: float, overrides: bool) -> str:
    """Results folder name: the suite, ``-x<scale>`` when scaled, ``-custom`` with ``--set`` overrides."""
    name = suite if budget_scale == 1.0 else f"{suite}-x{budget_scale:g}"
    return f"{name}-custom" if overrides else name


class Sweep:
    """Runs a list of trials, writes runs.csv / failures.csv, retries failures.

    Args:
        trials: what to run (finished ones are skipped).
        results_dir: folder of runs.csv and failures.csv.
        runs_root: folder of the trials' run directories.
        workers: parallel trials (1: in this process).
        retries: extra attempts of a failing trial.
        ray_address: None (local), ``"local"`` (start a local Ray instance) or a cluster address.
        threads: torch threads per trial (default: cores // workers, at least 1).
        commit: code version for the rows (default: :func:`git_commit`).
        log: where progress lines go.
    """

    def __init__(self, trials: Sequence[Trial], results_dir: str | Path, runs_root: str | Path, workers: int = 1,
                 retries: int = 2, ray_address: str | None = None, threads: int | None = None,
                 commit: str | None = None, log: Callable[[str], None] | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: got {workers!r}, allowed an integer >= 1")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: got {retries!r}, allowed an integer >= 0")
        self.trials = list(trials)
        self.results_dir = Path(results_dir)
        self.runs_root = Path(runs_root).resolve()
        self.workers = workers
        self.retries = retries
        self.ray_address = ray_address
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.commit = commit or git_commit()
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.runs_csv = self.results_dir / "runs.csv"
        self.failures_csv = self.results_dir / "failures.csv"
        self.partial_csv = self.results_dir / "partial.csv"
        self.lost_csv = self.results_dir / "lost.csv"
        self.attempts: Counter[str] = Counter()
        self.failed: set[str] = set()
        self.done: list[str] = []
        self._t0 = 0.0
        self._walls: list[float] = []
        self._n_pending = 0

    # -------------------------------------------------------------- status
    def status(self) -> list[tuple[Trial, str]]:
        """(trial, ``done`` | ``resume@<step>`` | ``started`` | ``new``) for every trial."""
        done = finished_trials(self.runs_csv)
        out = []
        for t in self.trials:
            if t.trial_id in done:
                out.append((t, "done"))
                continue
            ckpt = self.runs_root / t.trial_id / "checkpoints" / "latest.pt"
            metrics = read_csv(self.runs_root / t.trial_id / "metrics.csv")
            if ckpt.exists():
                out.append((t, f"resume@~{max((int(r['env_step']) for r in metrics), default=0)}"))
            elif metrics or (self.runs_root / t.trial_id).exists():
                out.append((t, "started"))
            else:
                out.append((t, "new"))
        return out

    def run_order(self, machine: str, commit: str) -> list[tuple[Trial, int, int]]:
        """The unfinished trials in the order worth running them on this machine: (trial, start, redundant).

        ``start`` is the step a trial resumes from (its checkpoint's; 0 without one). ``redundant`` is how many of
        the steps it would run next only rewrite rows already committed (partial.csv or lost.csv) by an attempt on
        a machine of this kind (``machine``, as :func:`machine_string` names it) at exactly this ``commit``: a
        trial rerun there reproduces them to every digit (MBPO-nll seed 1 in session 11, PETS-pg seed 1 in
        session 9), so they say nothing new. Sorted by ``redundant``, then the furthest ``start``, then the
        suite's order: on a kept machine the trials resume where they stopped; on a new one those whose known
        rows came from another machine kind or commit go first.
        """
        done = finished_trials(self.runs_csv)
        known: dict[str, int] = defaultdict(int)
        for r in [*read_csv(self.partial_csv), *read_csv(self.lost_csv)]:
            if r.get("machine") == machine and r.get("commit") == commit:
                known[r["trial_id"]] = max(known[r["trial_id"]], int(r["env_step"]))
        order = []
        for i, t in enumerate(self.trials):
            if t.trial_id in done:
                continue
            run = self.runs_root / t.trial_id
            start = 0
            if (run / "checkpoints" / "latest.pt").exists():
                start = max((int(r["env_step"]) for r in read_csv(run / "metrics.csv")), default=0)
            order.append((max(0, known[t.trial_id] - start), -start, i, t))
        return [(t, -neg_start, redundant) for redundant, neg_start, _, t in sorted(order, key=lambda o: o[:3])]

    def snapshot(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Rewrite ``partial.csv``: the runs.csv rows that the unfinished trials' metrics.csv hold so far.

        Rows that the previous partial.csv held for an attempt that is gone (its run directory was lost with a
        replaced machine, or the trial was restarted from step 0; see :func:`attempt_lost`) are first moved to
        ``lost.csv`` beside it (:func:`keep_lost_attempts`), so that a partial curve once committed stays.

        A trial's rows carry the commit(s) it has run at (``commits.txt`` of its run directory, written by
        :func:`run_trial`; ``unknown`` before that file existed). Finished trials are left out: their rows are
        in runs.csv. The file is replaced atomically, so a report never reads half of it.

        Returns:
            (the rows written, ``label@last step`` of each trial that has some).
        """
        done = finished_trials(self.runs_csv)
        rows: list[dict[str, Any]] = []
        labels: list[str] = []
        machine = machine_string()
        before = defaultdict(list)
        for r in read_csv(self.partial_csv):
            before[r["trial_id"]].append(r)
        lost: list[dict[str, Any]] = []
        for t in self.trials:
            run = self.runs_root / t.trial_id
            got: list[dict[str, Any]] = []
            if t.trial_id not in done and (run / "metrics.csv").exists():
                commits = (run / "commits.txt").read_text().split() if (run / "commits.txt").exists() else []
                got = eval_rows(read_csv(run / "metrics.csv"), t.payload(), machine, "+".join(commits) or "unknown")
            if got:
                rows += got
                labels.append(f"{t.label}@{got[-1]['env_step']}")
            if t.trial_id not in done and attempt_lost(before.get(t.trial_id, []), got,
                                                       (run / "checkpoints" / "latest.pt").exists()):
                lost += before[t.trial_id]
        if lost:
            keep_lost_attempts(self.lost_csv, lost)
        self.partial_csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.partial_csv.with_name(f".{self.partial_csv.name}.tmp")
        if tmp.exists():
            tmp.unlink()
        if rows:
            append_rows(tmp, rows, ROW_COLUMNS)
        else:
            tmp.write_text(",".join(ROW_COLUMNS) + "\n")
        os.replace(tmp, self.partial_csv)
        return rows, labels

    def pending(self) -> list[Trial]:
        done = finished_trials(self.runs_csv)
        return [t for t in self.trials if t.trial_id not in done]

    # -------------------------------------------------------------- results
    def _on_result(self, trial: Trial, res: dict[str, Any]) -> bool:
        """Record one attempt's outcome; True when the trial should run again."""
        self.attempts[trial.trial_id] += 1
        attempt = self.attempts[trial.trial_id]
        if "error" not in res:
            append_rows(self.runs_csv, res["rows"], ROW_COLUMNS)
            self.done.append(trial.trial_id)
            self._walls.append(float(res["wall_s"]))
            final = res["rows"][-1]
            left = self._n_pending - len(self.done) - len(self.failed)
            eta = sum(self._walls) / len(self._walls) * left / self.workers
            resumed = f", resumed at step {res['resumed_from']}" if res.get("resumed_from") else ""
            self.log(f"[{len(self.done) + len(self.failed)}/{self._n_pending}] done {trial.label} ({trial.trial_id}):"
                     f" eval_return={float(final['eval_return']):.1f} at step {final['env_step']} in "
                     f"{res['wall_s']:.0f}s{resumed}; {left} left, ETA ~{eta / 60:.0f} min")
            return False
        final = attempt > self.retries
        tb = [ln for ln in str(res.get("traceback", "")).strip().splitlines() if ln.strip()]
        append_rows(self.failures_csv, [{
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "trial_id": trial.trial_id, "label": trial.label,
            "attempt": attempt, "final": final, "error": res["error"], "traceback_tail": " | ".join(tb[-6:]),
            "machine": res.get("machine", ""), "commit": self.commit,
        }], FAILURE_COLUMNS)
        what = "giving up (recorded in failures.csv)" if final else f"retrying ({attempt}/{self.retries})"
        self.log(f"FAILED {trial.label} ({trial.trial_id}) attempt {attempt}: {res['error']}; {what}\n"
                 + "\n".join("    " + ln for ln in tb[-12:]))
        if final:
            self.failed.add(trial.trial_id)
        return not final

    def _args(self, t: Trial) -> tuple[dict[str, Any], str, str, int]:
        return t.payload(), str(self.runs_root), self.commit, self.threads

    # -------------------------------------------------------------- backends
    def run(self) -> int:
        """Run the pending trials; returns the number of trials that failed every attempt."""
        todo = self.pending()
        self._n_pending = len(todo)
        self._t0 = time.perf_counter()
        skipped = len(self.trials) - len(todo)
        backend = (f"ray ({self.ray_address})" if self.ray_address else
                   "this process" if self.workers == 1 else f"{self.workers} worker processes")
        self.log(f"{len(todo)} trial(s) to run, {skipped} already finished; on {backend}, {self.threads} torch "
                 f"thread(s) each; rows -> {self.runs_csv}; run dirs -> {self.runs_root}")
        if not todo:
            return 0
        self.runs_root.mkdir(parents=True, exist_ok=True)
        if self.ray_address:
            self._run_ray(todo)
        elif self.workers == 1:
            self._run_serial(todo)
        else:
            self._run_pool(todo)
        self.log(f"sweep finished in {(time.perf_counter() - self._t0) / 60:.1f} min: {len(self.done)} done, "
                 f"{len(self.failed)} failed" + (f" (see {self.failures_csv})" if self.failed else ""))
        return len(self.failed)

    def _run_serial(self, todo: list[Trial]) -> None:
        queue = deque(todo)
        while queue:
            t = queue.popleft()
            self.log(f"start {t.label} ({t.trial_id}), {t.steps} steps")
            if self._on_result(t, run_trial_safe(*self._args(t))):
                queue.append(t)

    def _run_pool(self, todo: list[Trial]) -> None:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        queue = deque(todo)
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        running: dict[Any, Trial] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    t = queue.popleft()
                    self.log(f"start {t.label} ({t.trial_id}), {t.steps} steps")
                    running[pool.submit(run_trial_safe, *self._args(t))] = t
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                broken = False
                for fut in finished:
                    t = running.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as e:  # noqa: BLE001 - a worker died (killed, out of memory, ...)
                        broken = broken or isinstance(e, BrokenProcessPool)
                        res = {"trial_id": t.trial_id, "error": f"{type(e).__name__}: {e}",
                               "traceback": "".join(traceback.format_exception(e))}
                    if self._on_result(t, res):
                        queue.append(t)
                if broken:
                    for fut, t in list(running.items()):
                        running.pop(fut)
                        queue.appendleft(t)  # lost with the pool, not failed: run again
                    pool.shutdown(cancel_futures=True)
                    pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        finally:
            pool.shutdown(cancel_futures=True)

    def _run_ray(self, todo: list[Trial]) -> None:
        try:
            import ray
        except ImportError as e:
            raise ValueError(f"ray-address: got {self.ray_address!r} but ray is not importable ({e}); "
                             "allowed only with `pip install 'mbrl-po[ray]'`") from None
        started = False
        if not ray.is_initialized():
            if self.ray_address == "local":
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=self.ray_address, log_to_driver=False, configure_logging=False)
            started = True
        remote = ray.remote(num_cpus=1, max_retries=0)(run_trial_safe)
        queue = deque(todo)
        running: dict[Any, Trial] = {}
        try:
            while queue or running:
                while queue:  # Ray schedules them onto free CPUs
                    t = queue.popleft()
                    self.log(f"submit {t.label} ({t.trial_id}), {t.steps} steps")
                    running[remote.remote(*self._args(t))] = t
                ready, _ = ray.wait(list(running), num_returns=1)
                t = running.pop(ready[0])
                try:
                    res = ray.get(ready[0])
                except Exception as e:  # noqa: BLE001 - the worker died or the task could not run
                    res = {"trial_id": t.trial_id, "error": f"{type(e).__name__}: {e}",
                           "traceback": "".join(traceback.format_exception(e))}
                if self._on_result(t, res):
                    queue.append(t)
        finally:
            if started:
                ray.shutdown()


# ---------------------------------------------------------------------------------------------- CLI
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mbrl-po bench online", description=__doc__.split("\n\n")[0])
    p.add_argument("suite", help="suite name (benchmarks/suites/<name>.toml) or path to a suite TOML")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 instead of the suite's")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply every trial's env steps and loop intervals (results go to SUITE-x<scale>)")
    p.add_argument("--workers", type=int, default=1, help="parallel trials (1: in this process)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per trial (default cores//workers)")
    p.add_argument("--ray-address", default=None,
                   help="run trials as Ray tasks (1 CPU each) on this cluster; 'local' starts a local instance")
    p.add_argument("--only", default=None, metavar="PATTERN",
                   help="comma-separated fnmatch patterns on agent/task/objective/s<seed> or trial-id prefixes")
    p.add_argument("--retries", type=int, default=2, help="extra attempts of a failing trial (default 2)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every trial")
    p.add_argument("--max-episode-steps", type=int, default=None,
                   help="cut every episode at N steps (smoke tests of long-episode tasks; results: SUITE-...-custom)")
    p.add_argument("--results-dir", default="docs/results", help="parent of <SUITE>/runs.csv")
    p.add_argument("--runs-dir", default="runs/suites", help="parent of <SUITE>/<trial-id>/ run directories")
    p.add_argument("--name", default=None, help="results/runs folder name (default: the suite's, see above)")
    p.add_argument("--dry-run", action="store_true", help="list the trials and their status; run nothing")
    p.add_argument("--snapshot", action="store_true",
                   help="write the eval rows that unfinished trials have logged so far to <SUITE>/partial.csv "
                        "(a partial curve; `mbrl-po report` shows it beside runs.csv); run nothing")
    p.add_argument("--plan", default=None, metavar="COMMIT",
                   help="print the unfinished trials' labels, one per line, in the order worth running them at "
                        "COMMIT on this machine (Sweep.run_order; a table of why on stderr); run nothing")
    p.add_argument("--prune-superseded", action="store_true",
                   help="move rows of trials that are no longer in the suite (its config changed) to "
                        "superseded.csv; run nothing")
    return p.parse_args(argv)


def parse_set_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--set`` overrides of the command line as a nested dict."""
    from mbrl_po.config import parse_set

    return parse_set(args.set or [])


def build_sweep(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> tuple[Suite, Sweep]:
    suite = load_suite(args.suite)
    overrides = parse_set_overrides(args)
    trials = suite.trials(seeds=args.seeds, budget_scale=args.budget_scale, overrides=overrides, only=args.only,
                          max_episode_steps=args.max_episode_steps)
    if not trials:
        raise ValueError(f"only: got {args.only!r}, which matches none of the suite's trials "
                         "(labels are agent/task/objective/s<seed>)")
    name = args.name or output_name(suite.name, args.budget_scale, bool(overrides or args.max_episode_steps))
    sweep = Sweep(trials, Path(args.results_dir) / name, Path(args.runs_dir) / name, workers=args.workers,
                  retries=args.retries, ray_address=args.ray_address, threads=args.threads, log=log)
    return suite, sweep


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mbrl-po bench online``; returns the exit status (1 when some trial failed)."""
    args = _parse_args(argv)
    suite, sweep = build_sweep(args)
    if args.prune_superseded:
        keep = {t.trial_id for t in suite.trials(seeds=args.seeds, budget_scale=args.budget_scale,
                                                  overrides=parse_set_overrides(args),
                                                  max_episode_steps=args.max_episode_steps)}
        moved = prune_superseded(sweep.runs_csv, keep)
        print(f"moved the rows of {len(moved)} superseded trial(s) to {sweep.runs_csv.with_name('superseded.csv')}"
              + (f": {', '.join(moved)}" if moved else ""))
        return 0
    if args.plan is not None:
        order = sweep.run_order(machine_string(), args.plan)
        print(f"{'trial':<45} {'resumes at':>10} {'redundant steps':>15}  (rows known on this machine kind at "
              f"{args.plan})", file=sys.stderr)
        for t, start, redundant in order:
            print(f"{t.label:<45} {start:>10} {redundant:>15}", file=sys.stderr)
            print(t.label)
        return 0
    if args.snapshot:
        rows, labels = sweep.snapshot()
        print(f"wrote {len(rows)} rows of {len(labels)} unfinished trial(s) to {sweep.partial_csv}"
              + (f": {', '.join(labels)}" if labels else ""))
        return 0
    if args.dry_run:
        status = sweep.status()
        counts = Counter(s.split("@")[0] for _, s in status)
        print(f"suite {suite.name}: {len(status)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
              f"rows -> {sweep.runs_csv}")
        for t, s in status:
            print(f"  {t.trial_id}  {t.label:<55} {t.steps:>7} steps  {s}")
        return 0
    return 1 if sweep.run() else 0


if __name__ == "__main__":
    raise SystemExit(main())
