"""Dynamics models."""

from mbrl_po.models.ensemble import (
    PRECISIONS,
    EnsembleConfig,
    EnsembleLinear,
    GaussianEnsemble,
    Prediction,
    precision_dtype,
)
from mbrl_po.models.normalizer import Normalizer

__all__ = ["PRECISIONS", "EnsembleConfig", "EnsembleLinear", "GaussianEnsemble", "Normalizer", "Prediction",
           "precision_dtype"]
