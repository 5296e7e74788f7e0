"""mbrl-po: model-based RL with dynamics ensembles trained by maximum likelihood or by the bilevel
policy-gradient objective of arXiv 2510.07624.

Importing the package changes nothing global (no environment variable, no torch setting) and imports no
submodule: the names below load on first use, so ``import mbrl_po.cli`` can still set ``OMP_WAIT_POLICY``
before torch is imported (see ``mbrl_po/cli.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BilevelSolver": "mbrl_po.training",
    "DynamicsTrainer": "mbrl_po.training",
    "EnsembleConfig": "mbrl_po.models",
    "FitReport": "mbrl_po.training",
    "GaussianEnsemble": "mbrl_po.models",
    "MSEObjective": "mbrl_po.objectives",
    "ModelBatch": "mbrl_po.types",
    "NLLObjective": "mbrl_po.objectives",
    "PGObjective": "mbrl_po.objectives",
    "RewardMatrix": "mbrl_po.objectives",
    "TransitionData": "mbrl_po.types",
    "make_objective": "mbrl_po.objectives",
}

__all__ = [  # the keys of _EXPORTS
    "BilevelSolver",
    "DynamicsTrainer",
    "EnsembleConfig",
    "FitReport",
    "GaussianEnsemble",
    "MSEObjective",
    "ModelBatch",
    "NLLObjective",
    "PGObjective",
    "RewardMatrix",
    "TransitionData",
    "make_objective",
]

if TYPE_CHECKING:
    from mbrl_po.models import EnsembleConfig, GaussianEnsemble
    from mbrl_po.objectives import MSEObjective, NLLObjective, PGObjective, RewardMatrix, make_objective
    from mbrl_po.training import BilevelSolver, DynamicsTrainer, FitReport
    from mbrl_po.types import ModelBatch, TransitionData


def __getattr__(name: str) -> Any:
    """Import an exported name on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mbrl_po' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
