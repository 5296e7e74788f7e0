"""Fitting dynamics models: the drop-in trainer and the bilevel solver for a learned reward matrix."""

from mbrl_po.training.bilevel import BilevelSolver
from mbrl_po.training.trainer import DynamicsTrainer, FitReport

__all__ = ["BilevelSolver", "DynamicsTrainer", "FitReport"]
