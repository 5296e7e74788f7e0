"""Expected failures: what a user can fix (a broken file, a busy run directory, a model gone non-finite).

The command line prints their message as one line, without a traceback (``mbrl-po: error: ...``, exit 2);
anything else is a bug and keeps its traceback. Configuration errors are plain ``ValueError`` (see
``mbrl_po.config``) and are printed the same way.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "MbrlPoError", "NonFiniteModelError", "RunDirLockedError"]


class MbrlPoError(Exception):
    """Base of the expected failures; the message names the file or field and what to do."""


class NonFiniteModelError(MbrlPoError, RuntimeError):
    """The dynamics model's weights or predictions are NaN/inf and there is nothing finite to fall back to."""


class RunDirLockedError(MbrlPoError, RuntimeError):
    """Another live process holds the run directory's lock (one writer per run directory)."""


class CheckpointError(MbrlPoError, ValueError):
    """A checkpoint file (``latest.pt``, a buffer ``.npz``, ``metrics.csv``) is missing, truncated or not ours."""
