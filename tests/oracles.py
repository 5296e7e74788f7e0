"""Plain reference implementations of the library's hot functions, used only as test oracles.

The library keeps one (fast) code path per hot function: :meth:`GaussianEnsemble._mlp` (cached elite weights,
in-place activations and row blocks outside autograd), :meth:`GaussianEnsemble.sample_joint` (the sampling tail
in place on the fresh noise) and :class:`ModelEnv`'s one-gather propagation, layout draw, step and rollout.
The functions here compute the same things the straightforward way, module by module and tensor by tensor, so
that ``tests/test_fast_paths.py`` can check, from the same seed, that the library draws the same random numbers
and returns the same values (within float tolerance).
"""

from __future__ import annotations

import torch

from mbrl_po.models.ensemble import GaussianEnsemble
from mbrl_po.models.model_env import ModelEnv


def plain_forward(
    model: GaussianEnsemble, inputs: torch.Tensor, members: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`GaussianEnsemble.forward` calling each layer's module, no cache, no row blocks, no in-place op.

    Args:
        model: the ensemble.
        inputs: (E', B, I) or (B, I) normalised inputs.
        members: optional (E',) member indices (default: all E).

    Returns:
        mean (E', B, T) and soft-bounded logvar (E', B, T), normalised units.
    """
    n_members = model.config.ensemble_size if members is None else members.shape[0]
    x = inputs.expand(n_members, *inputs.shape) if inputs.ndim == 2 else inputs
    for layer in model.hidden:
        w, b = (layer.weight, layer.bias) if members is None else (layer.weight[members], layer.bias[members])
        x = model.act(torch.baddbmm(b, x, w))
    head = model.head
    w, b = (head.weight, head.bias) if members is None else (head.weight[members], head.bias[members])
    mean, logvar = torch.baddbmm(b, x, w).chunk(2, dim=-1)
    logvar = model.max_logvar - torch.nn.functional.softplus(model.max_logvar - logvar)
    logvar = model.min_logvar + torch.nn.functional.softplus(logvar - model.min_logvar)
    return mean, logvar


def plain_sample(
    model: GaussianEnsemble,
    obs: torch.Tensor,
    actions: torch.Tensor,
    generator: torch.Generator | None = None,
    members: torch.Tensor | None = None,
    deterministic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:meth:`GaussianEnsemble.sample` written out: normalise, forward, add noise, unnormalise, split.

    Args:
        obs: (E', B, O) or (B, O); actions: (E', B, A) or (B, A); the rest as in ``sample``.

    Returns:
        next_obs (E', B, O) and reward (E', B), or None when the model does not learn the reward.
    """
    mean, logvar = plain_forward(model, model.make_inputs(obs, actions), members)
    if not deterministic:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        mean = mean + noise * torch.exp(0.5 * logvar)
    y = model.target_normalizer.inverse(mean)
    o = model.config.obs_dim
    obs_b = obs if obs.ndim == 3 else obs.expand(mean.shape[0], *obs.shape)
    next_obs = y[..., :o] + obs_b if model.config.learn_delta else y[..., :o]
    reward = y[..., o] if model.config.learn_reward else None
    return next_obs, reward


class PlainModelEnv(ModelEnv):
    """:class:`ModelEnv` with the plain layout draw, propagation, step and rollout (same arguments).

    Rows are gathered and un-permuted field by field and sampled by :func:`plain_sample`; ``rollout`` validates
    the actions at every step through the public :meth:`step`.
    """

    def _draw_layout(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.num_members
        bp = -(-b // e) * e
        perm = torch.randperm(bp, generator=self.generator, device=self.device)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(bp, device=self.device)
        return torch.remainder(perm, b), inv[:b]

    def _propagate(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        members = self._members()
        e = self.num_members
        if self.propagation == "expectation":
            nxt, rew = plain_sample(self.model, obs, actions, self.generator, members, deterministic=True)
            return nxt.mean(0), None if rew is None else rew.mean(0)
        if self.propagation == "ts1":
            self._src, self._inv = self._draw_layout(obs.shape[0])
        src, inv = self._src, self._inv
        assert src is not None and inv is not None
        bp = src.shape[0]
        o = obs[src].reshape(e, bp // e, obs.shape[1])
        a = actions[src].reshape(e, bp // e, actions.shape[1])
        deterministic = self.propagation == "mean"
        nxt, rew = plain_sample(self.model, o, a, self.generator, members, deterministic)
        nxt = nxt.reshape(bp, obs.shape[1])[inv]
        return nxt, None if rew is None else rew.reshape(bp)[inv]

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = self.obs
        done = self.terminated
        b = obs.shape[0]
        next_obs, reward = self._propagate(obs, actions)
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, actions, next_obs).reshape(b).to(self.dtype)
        assert reward is not None
        if self.termination_fn is not None:
            term = self.termination_fn(obs, actions, next_obs).reshape(b).to(torch.bool)
        else:
            term = torch.zeros_like(done)
        reward = torch.where(done, torch.zeros_like(reward), reward)
        next_obs = torch.where(done[:, None], obs, next_obs)
        terminated = done | term
        self._obs = next_obs
        self._terminated = terminated
        return next_obs, reward, terminated

    @torch.no_grad()
    def rollout(self, obs0: torch.Tensor, action_sequences: torch.Tensor, discount: float = 1.0) -> torch.Tensor:
        b, h, _ = action_sequences.shape
        self.reset(obs0)
        total = torch.zeros(b, device=self.device, dtype=self.dtype)
        for t in range(h):
            _, reward, _ = self.step(action_sequences[:, t])
            total = total + discount**t * reward
        return total
