"""Dynamics models."""

from mbrl_po.models.ensemble import EnsembleConfig, EnsembleLinear, GaussianEnsemble, Prediction
from mbrl_po.models.normalizer import Normalizer

__all__ = ["EnsembleConfig", "EnsembleLinear", "GaussianEnsemble", "Normalizer", "Prediction"]
