"""Probabilistic ensemble dynamics model: E diagonal-Gaussian MLPs evaluated as one batched computation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mbrl_po.models.normalizer import Normalizer

DEFAULT_NUM_ELITES = 5
"""Elites of a 7-member ensemble in PETS and MBPO; smaller ensembles keep every member (see EnsembleConfig)."""

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}

_INPLACE_ACTIVATIONS = {
    "silu": lambda x: F.silu(x, inplace=True),
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "elu": lambda x: F.elu(x, inplace=True),
}
"""In-place versions of ``ACTIVATIONS``, used outside autograd (no activation is kept for a backward pass)."""

PRECISIONS = ("float32", "bf16")
"""Arithmetic precisions of the network's matmuls: training (the trainer's autocast) and inference (rollouts and
planning, :meth:`GaussianEnsemble.forward`'s ``compute_dtype``). bf16 is fast only on CPUs with bf16 matrix
instructions (avx512_bf16 / AMX) and on CUDA; elsewhere it is emulated and far slower than float32."""


def precision_dtype(precision: str) -> torch.dtype | None:
    """``"float32"`` -> None (the parameters' own dtype), ``"bf16"`` -> ``torch.bfloat16``; a ValueError
    naming the allowed values otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: got {precision!r}, allowed {list(PRECISIONS)}")
    return torch.bfloat16 if precision == "bf16" else None


@dataclass(frozen=True)
class EnsembleConfig:
    """Architecture of a :class:`GaussianEnsemble`.

    Attributes:
        obs_dim: O, observation size.
        action_dim: A, action size.
        ensemble_size: E, number of members.
        num_elites: members kept for prediction after training (best held-out NLL); default
            ``min(DEFAULT_NUM_ELITES, ensemble_size)``, i.e. 5 of 7 (PETS, MBPO) and every member of a smaller
            ensemble.
        hidden_sizes: widths of the hidden layers of each member.
        activation: one of ``ACTIVATIONS``.
        learn_reward: predict the reward as an extra target column.
        learn_delta: predict ``next_obs - obs`` (PETS) instead of ``next_obs`` (the paper's setting).
        normalize_inputs: standardise (obs, action) inputs with statistics fitted from data.
        normalize_targets: standardise targets likewise (objectives then work in normalised units).
        init_max_logvar: initial learnable upper soft bound of the log-variance (normalised units).
        init_min_logvar: initial learnable lower soft bound.
        logvar_bound_penalty: weight of the PETS penalty ``c * (sum max_logvar - sum min_logvar)``.
    """

    obs_dim: int
    action_dim: int
    ensemble_size: int = 7
    num_elites: int | None = None
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    activation: str = "silu"
    learn_reward: bool = True
    learn_delta: bool = True
    normalize_inputs: bool = True
    normalize_targets: bool = True
    init_max_logvar: float = 0.5
    init_min_logvar: float = -10.0
    logvar_bound_penalty: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        for name in ("obs_dim", "action_dim", "ensemble_size", "num_elites"):
            if name == "num_elites" and self.num_elites is None:
                object.__setattr__(self, "num_elites", min(DEFAULT_NUM_ELITES, self.ensemble_size))
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if self.num_elites > self.ensemble_size:
            raise ValueError(
                f"num_elites: must be <= ensemble_size ({self.ensemble_size}), got {self.num_elites}"
            )
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes: every width must be >= 1, got {self.hidden_sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: got {self.activation!r}, allowed {sorted(ACTIVATIONS)}")
        if not self.init_min_logvar < self.init_max_logvar:
            raise ValueError(
                f"init_min_logvar: must be < init_max_logvar ({self.init_max_logvar}), got {self.init_min_logvar}"
            )
        if self.logvar_bound_penalty < 0:
            raise ValueError(f"logvar_bound_penalty: must be >= 0, got {self.logvar_bound_penalty}")

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.action_dim

    @property
    def target_dim(self) -> int:
        return self.obs_dim + int(self.learn_reward)


class EnsembleLinear(nn.Module):
    """E independent linear layers as one batched matmul: (E, B, i) -> (E, B, o)."""

    def __init__(self, ensemble_size: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features).uniform_(-bound, bound))

        self._cache: tuple | None = None

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        weight, bias = self._member_params(members)
        return torch.baddbmm(bias, x, weight)

    def _member_params(
        self, members: torch.Tensor | None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights of a subset of members (``members=None``: all), in ``dtype`` (None: the parameters' own).

        Outside autograd the gathered (or cast) copy is cached until the weights, the index tensor or the dtype
        change (planning calls the elites thousands of times between two trainings)."""
        if torch.is_grad_enabled():
            if dtype is not None:
                raise ValueError("dtype: a compute dtype is for inference (no autograd); training casts with "
                                 "the trainer's precision")
            if members is None:
                return self.weight, self.bias
            return self.weight[members], self.bias[members]
        if members is None and dtype is None:
            return self.weight, self.bias
        key = (None if members is None else members._version, self.weight._version, self.bias._version,
               self.weight.device, dtype)
        c = self._cache
        if c is None or c[0] is not members or c[1] != key:
            w = self.weight if members is None else self.weight[members]
            b = self.bias if members is None else self.bias[members]
            if dtype is not None:
                w, b = w.to(dtype), b.to(dtype)
            self._cache = (members, key, w, b)
            c = self._cache
        return c[2], c[3]


class Prediction(NamedTuple):
    """Per-member Gaussian prediction in raw (unnormalised) units.

    Attributes:
        next_obs_mean: (E, B, O).
        next_obs_std: (E, B, O).
        reward_mean: (E, B), or None when the reward is not learned.
        reward_std: (E, B), or None.
    """

    next_obs_mean: torch.Tensor
    next_obs_std: torch.Tensor
    reward_mean: torch.Tensor | None
    reward_std: torch.Tensor | None


class GaussianEnsemble(nn.Module):
    """E members, each ``(obs, action) -> N(mean, diag(var))`` over ``[delta obs (or next obs), reward]``.

    The members share nothing; all E are evaluated by one batched matmul per layer. Inputs and targets are
    standardised with statistics fitted from data (``fit_normalizers``). The log-variance is soft-bounded by
    learnable ``min_logvar``/``max_logvar`` (PETS), whose penalty :meth:`logvar_bound_loss` a trainer adds.

    Args:
        obs_dim, action_dim, ...: see :class:`EnsembleConfig`; or pass ``config=``.
        device: where the parameters live (``"cpu"``, ``"cuda"``...).
    """

    nograd_chunk_rows: dict[str, int] = {"cpu": 256}  # noqa: RUF012 - a class-level setting, read-only
    """Per device type, rows per member of one block of the no-grad forward (absent: one block)."""

    def __init__(
        self,
        obs_dim: int | None = None,
        action_dim: int | None = None,
        *,
        config: EnsembleConfig | None = None,
        device: torch.device | str = "cpu",
        **kwargs: object,
    ) -> None:
        super().__init__()
        if config is None:
            if obs_dim is None or action_dim is None:
                raise ValueError("obs_dim and action_dim: both are required when no config is given")
            config = EnsembleConfig(obs_dim=obs_dim, action_dim=action_dim, **kwargs)  # type: ignore[arg-type]
        elif kwargs or obs_dim is not None or action_dim is not None:
            raise ValueError("config: pass either config= or the individual arguments, not both")
        self.config = config
        c = config
        self.input_normalizer = Normalizer(c.input_dim, enabled=c.normalize_inputs)
        self.target_normalizer = Normalizer(c.target_dim, enabled=c.normalize_targets)
        sizes = [c.input_dim, *c.hidden_sizes]
        self.hidden = nn.ModuleList(
            EnsembleLinear(c.ensemble_size, i, o) for i, o in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.act = ACTIVATIONS[c.activation]()
        self._act_inplace = _INPLACE_ACTIVATIONS[c.activation]
        # one head producing [mean, logvar]
        self.head = EnsembleLinear(c.ensemble_size, sizes[-1], 2 * c.target_dim)
        self.max_logvar = nn.Parameter(torch.full((1, c.target_dim), c.init_max_logvar))
        self.min_logvar = nn.Parameter(torch.full((1, c.target_dim), c.init_min_logvar))
        self.register_buffer("elite_idx", torch.arange(self.num_elites))
        self.to(device)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.max_logvar.device

    @property
    def ensemble_size(self) -> int:
        return self.config.ensemble_size

    @property
    def num_elites(self) -> int:
        assert self.config.num_elites is not None  # resolved by EnsembleConfig
        return self.config.num_elites

    # ------------------------------------------------------------------ data transforms
    def make_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(..., O), (..., A) -> (..., I) normalised inputs."""
        return self.input_normalizer(torch.cat([obs, actions], dim=-1))

    def make_targets(self, obs: torch.Tensor, next_obs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """(..., O), (..., O), (...) -> (..., T) normalised targets."""
        y = next_obs - obs if self.config.learn_delta else next_obs
        if self.config.learn_reward:
            y = torch.cat([y, rewards.unsqueeze(-1)], dim=-1)
        return self.target_normalizer(y)

    @torch.no_grad()
    def fit_normalizers(
        self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, rewards: torch.Tensor
    ) -> None:
        """Fit input and target statistics on (B, ·) training data."""
        self.input_normalizer.fit(torch.cat([obs, actions], dim=-1))
        y = next_obs - obs if self.config.learn_delta else next_obs
        if self.config.learn_reward:
            y = torch.cat([y, rewards.unsqueeze(-1)], dim=-1)
        self.target_normalizer.fit(y)

    # ------------------------------------------------------------------ network
    def forward(
        self, inputs: torch.Tensor, members: torch.Tensor | None = None, compute_dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and soft-bounded log-variance in normalised target units.

        Args:
            inputs: (E', B, I) normalised inputs, one slice per evaluated member, or (B, I) to evaluate
                every one of the E' members on the same rows.
            members: optional (E',) long indices of the members to evaluate (default: all E).
            compute_dtype: outside autograd only, the dtype of the network's matmuls and activations (e.g.
                ``torch.bfloat16`` on CPUs with bf16 matrix instructions, see :data:`PRECISIONS`); the inputs
                and the weights (cast once, cached) are cast to it and the head's outputs back to the
                parameters' dtype, so the log-variance bounds and everything after run in float32. None: the
                parameters' dtype. Training casts with the trainer's own ``precision`` instead.

        Returns:
            mean (E', B, T) and logvar (E', B, T).
        """
        n_members = self.config.ensemble_size if members is None else members.shape[0]
        x = inputs.expand(n_members, *inputs.shape) if inputs.ndim == 2 else inputs
        mean, logvar = self._mlp(x, members, compute_dtype).chunk(2, dim=-1)
        logvar = self.max_logvar - nn.functional.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + nn.functional.softplus(logvar - self.min_logvar)
        return mean, logvar

    def _layer_params(
        self, members: torch.Tensor | None, dtype: torch.dtype | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of every layer (hidden layers, then the head) for ``members`` in ``dtype`` (cached
        gathers and casts)."""
        return [layer._member_params(members, dtype) for layer in (*self.hidden, self.head)]

    def _mlp(self, x: torch.Tensor, members: torch.Tensor | None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The network: (E', B, I) normalised inputs -> (E', B, 2T) raw head outputs ``[mean, logvar]``.

        One code path with and without autograd. The layers' parameters are read directly (no module call per
        layer; outside autograd the elites' gathered weights are cached). Outside autograd only, the activation
        runs in place (nothing is kept for a backward pass) and, on devices where :attr:`nograd_chunk_rows` is
        set, large batches go through the network in blocks of that many rows per member so the activations of
        a block stay in the CPU cache between layers. None of this changes a value (``tests/oracles.py`` holds
        the module-by-module reference the tests compare against). With ``dtype`` (no autograd) the blocks run
        in that dtype and come back in the parameters' dtype.
        """
        if dtype == self.max_logvar.dtype:
            dtype = None
        params = self._layer_params(members, dtype)
        grad = torch.is_grad_enabled()
        act = self.act if grad else self._act_inplace
        chunk = None if grad else self.nograd_chunk_rows.get(x.device.type)
        rows = x.shape[1]

        out_dtype = x.dtype

        def mlp(h: torch.Tensor) -> torch.Tensor:
            if dtype is not None:
                h = h.to(dtype)
            for w, b in params[:-1]:
                h = act(torch.baddbmm(b, h, w))
            w, b = params[-1]
            h = torch.baddbmm(b, h, w)
            return h if dtype is None else h.to(out_dtype)

        if chunk is None or rows <= chunk:
            return mlp(x)
        return torch.cat([mlp(x[:, s : s + chunk]) for s in range(0, rows, chunk)], dim=1)

    def logvar_bound_loss(self) -> torch.Tensor:
        """PETS' penalty keeping the learnable log-variance bounds tight: c * (sum max - sum min)."""
        return self.config.logvar_bound_penalty * (self.max_logvar.sum() - self.min_logvar.sum())

    # ------------------------------------------------------------------ raw-space prediction
    def _raw(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (E', B, T) mean and logvar -> raw-unit mean and std of the targets."""
        std_n = torch.exp(0.5 * logvar)
        mean_raw = self.target_normalizer.inverse(mean)
        std_raw = std_n * self.target_normalizer.std
        return mean_raw, std_raw

    def _split(self, obs: torch.Tensor, mean_raw: torch.Tensor, std_raw: torch.Tensor) -> Prediction:
        o = self.config.obs_dim
        next_mean = mean_raw[..., :o] + obs if self.config.learn_delta else mean_raw[..., :o]
        if self.config.learn_reward:
            return Prediction(next_mean, std_raw[..., :o], mean_raw[..., o], std_raw[..., o])
        return Prediction(next_mean, std_raw[..., :o], None, None)

    def _as_input(self, name: str, value: Any, dim: int) -> torch.Tensor:
        """``value`` as a tensor on the model's device and dtype, of shape (B, dim) or (E', B, dim).

        Accepts numpy arrays, (nested) lists and tuples, and tensors of any numeric dtype on any device; a
        tensor already on the model's device and dtype is returned as is (no copy, gradients kept).
        """
        if isinstance(value, torch.Tensor):
            t = value
        elif isinstance(value, np.ndarray | list | tuple):
            t = torch.as_tensor(np.asarray(value))
        else:
            raise ValueError(f"{name}: expected a numpy array, a list or a torch tensor, got {type(value).__name__}")
        if not (t.is_floating_point() or t.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32,
                                                     torch.int64)):
            raise ValueError(f"{name}: expected a numeric array, got dtype {t.dtype}")
        if t.ndim == 1 and dim == 1 and name == "actions":
            t = t[:, None]  # (B,) actions of a 1-D action space, as in DynamicsTrainer.fit
        if t.ndim not in (2, 3) or t.shape[-1] != dim:
            raise ValueError(f"{name}: expected shape (B, {dim}) or (E', B, {dim}), got {tuple(t.shape)}")
        return t.to(device=self.device, dtype=self.max_logvar.dtype)

    def predict(self, obs: Any, actions: Any, members: torch.Tensor | list[int] | None = None) -> Prediction:
        """Gaussian next-state (and reward) prediction of each member, in raw units.

        Args:
            obs: (B, O) or (E', B, O) observations; with a leading member axis, row slice e goes to member e.
                Numpy arrays, lists and tensors of any numeric dtype on any device are accepted (as in
                :meth:`mbrl_po.DynamicsTrainer.fit`) and moved to the model's device and dtype.
            actions: (B, A) or (E', B, A), likewise; (B,) when A = 1.
            members: optional (E',) indices (default: all members).

        Returns:
            A :class:`Prediction` with (E', B, ·) tensor fields on the model's device.

        Raises:
            ValueError: naming the argument and the expected shape, when a shape does not fit the model.
        """
        o = self._as_input("obs", obs, self.config.obs_dim)
        a = self._as_input("actions", actions, self.config.action_dim)
        if o.shape[:-1] != a.shape[:-1]:
            raise ValueError(
                f"actions: expected shape {(*o.shape[:-1], self.config.action_dim)} to match obs "
                f"{tuple(o.shape)}, got {tuple(a.shape)}"
            )
        if members is not None:
            members = torch.as_tensor(members, dtype=torch.long, device=self.device).reshape(-1)
        n_members = self.ensemble_size if members is None else members.shape[0]
        if o.ndim == 3 and o.shape[0] != n_members:
            raise ValueError(
                f"obs: expected shape ({n_members}, B, {self.config.obs_dim}) with one slice per evaluated member, "
                f"got {tuple(o.shape)}"
            )
        mean, logvar = self(self.make_inputs(o, a), members)
        obs_b = o if o.ndim == 3 else o.expand(mean.shape[0], *o.shape)
        return self._split(obs_b, *self._raw(mean, logvar))

    def sample(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        members: torch.Tensor | None = None,
        deterministic: bool = False,
        compute_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw one next state (and reward) per row from each member's Gaussian.

        Args:
            obs: (E', B, O) or (B, O).
            actions: (E', B, A) or (B, A).
            generator: torch.Generator on the model's device, for reproducible draws.
            members: optional (E',) indices.
            deterministic: return the means instead of samples.
            compute_dtype: the network's matmul dtype outside autograd (see :meth:`forward`).

        Returns:
            next_obs (E', B, O) and rewards (E', B) (None when the reward is not learned).
        """
        y = self.sample_joint(torch.cat([obs, actions], dim=-1), generator, members, deterministic, compute_dtype)
        o = self.config.obs_dim
        return y[..., :o], (y[..., o] if self.config.learn_reward else None)

    def sample_joint(
        self,
        inputs_raw: torch.Tensor,
        generator: torch.Generator | None = None,
        members: torch.Tensor | None = None,
        deterministic: bool = False,
        compute_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """:meth:`sample` on raw ``[obs, action]`` rows, returning ``[next_obs, reward]`` as one tensor.

        The sampling itself (:meth:`sample` splits its result): ``(mean + noise * std) * s + m`` of each
        member's Gaussian in normalised units (``s``, ``m`` the target normaliser's), computed in place on the
        freshly drawn noise, one ``randn`` of shape (E', B, T) per call. Callers that move rows around
        (``ModelEnv``) move one tensor.

        Args:
            inputs_raw: (E', B, O + A) or (B, O + A) unnormalised observations and actions.
            generator, members, deterministic, compute_dtype: as in :meth:`sample`.

        Returns:
            (E', B, T) raw targets: next observation (the observation added back for delta models) and, when
            learned, the reward in the last column.
        """
        mean, logvar = self(self.input_normalizer(inputs_raw), members, compute_dtype)
        tn = self.target_normalizer
        if deterministic:
            y = tn.inverse(mean)
        else:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            # (mean + noise * std) * s + m, in place on the fresh noise
            y = noise.mul_(torch.exp(0.5 * logvar)).add_(mean).mul_(tn.std).add_(tn.mean)
        if self.config.learn_delta:
            o = self.config.obs_dim
            y[..., :o] += inputs_raw[..., :o]
        return y

    # ------------------------------------------------------------------ elites, persistence
    def set_elites(self, elite_idx: torch.Tensor | list[int]) -> None:
        """Set the elite members (``num_elites`` distinct indices in [0, E))."""
        idx = torch.as_tensor(elite_idx, dtype=torch.long, device=self.device).reshape(-1)
        if idx.numel() != self.num_elites or len(set(idx.tolist())) != idx.numel():
            raise ValueError(f"elite_idx: need {self.num_elites} distinct indices, got {idx.tolist()}")
        if idx.min() < 0 or idx.max() >= self.ensemble_size:
            raise ValueError(f"elite_idx: indices must lie in [0, {self.ensemble_size}), got {idx.tolist()}")
        self.elite_idx.copy_(idx)

    def save(self, path: str | Path) -> None:
        """Write the config and weights (normalisers, bounds, elites included) to ``path``."""
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> GaussianEnsemble:
        """Rebuild a model written by :meth:`save`."""
        blob = torch.load(path, map_location=device, weights_only=True)
        model = cls(config=EnsembleConfig(**blob["config"]), device=device)
        model.load_state_dict(blob["state_dict"])
        return model
