"""Per-dimension affine normaliser fitted from data, stored as module buffers (saved with the model)."""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """``(x - mean) / std`` per feature.

    Args:
        dim: feature dimension D.
        enabled: when False the normaliser is the identity (``fit`` is a no-op).
        eps: floor on the std, so constant features do not blow up.
    """

    def __init__(self, dim: int, enabled: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.enabled = enabled
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Fit mean and std on ``x`` of shape (B, D)."""
        if not self.enabled:
            return
        x = x.to(self.mean.device, torch.float64)
        self.mean.copy_(x.mean(0).float())
        std = x.std(0, unbiased=False).float() if x.shape[0] > 1 else torch.ones_like(self.std)
        # constant features: leave them centred but unscaled
        self.std.copy_(torch.where(std < self.eps, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) raw -> (..., D) normalised."""
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) normalised -> (..., D) raw."""
        return x * self.std + self.mean
