"""mbrl-po: model-based RL with dynamics ensembles trained by maximum likelihood or by the bilevel
policy-gradient objective of arXiv 2510.07624."""

from mbrl_po.models import EnsembleConfig, GaussianEnsemble
from mbrl_po.objectives import MSEObjective, NLLObjective, PGObjective, RewardMatrix, make_objective
from mbrl_po.training import BilevelSolver, DynamicsTrainer, FitReport
from mbrl_po.types import ModelBatch, TransitionData

__version__ = "0.1.0"

__all__ = [
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
