"""stable-baselines3's SAC gradient step with less work (what MBPO spends most of its time on).

:class:`LeanSACUpdate` replaces ``SB3SAC.train`` for the MLP policies the agents build. It computes what SB3's
``SAC.train`` computes, in the same order and with the same random draws, on the same SB3 modules, optimizers and
hyperparameters (so checkpoints, ``predict`` and the optimizers' state are SB3's own), but:

* the actor loss backpropagates through the critics with their weights detached, so it computes no critic
  weight gradients (SB3 computes them and throws them away at the next ``zero_grad``): about 11% of the FLOPs;
* the Polyak update of the targets is two ``torch._foreach_*`` calls instead of two ops per tensor;
* the losses are read back once per ``train`` call, not four ``.item()`` per gradient step;
* Adam runs fused (``torch.optim.Adam(fused=True)``, CPU and CUDA) when ``fused_adam`` is set: the same
  algorithm in one kernel per optimizer, equal to the loop implementation up to float rounding.

Equality with SB3 is a test (``tests/test_sac_update.py``): from the same state and batches, the losses and
every parameter after several steps match SB3's ``train`` within float32 tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import polyak_update
from torch import nn

__all__ = ["LeanSACUpdate", "use_fused_adam"]


def use_fused_adam(optimizer: torch.optim.Optimizer) -> None:
    """Switch a ``torch.optim.Adam`` to its fused implementation in place (state and hyperparameters kept).

    Needed after ``load_state_dict`` too, which restores the saved groups' ``fused``/``foreach`` flags.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(f"optimizer: got {type(optimizer).__name__}, allowed torch.optim.Adam")
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, False
    for state in optimizer.state.values():  # fused Adam keeps its step count as a float tensor
        if "step" in state and torch.is_tensor(state["step"]):
            state["step"] = state["step"].to(torch.float32)


def _mlp_layers(net: nn.Sequential, where: str) -> tuple[list[nn.Linear], type[nn.Module]]:
    """The Linear layers of an SB3 MLP ``Linear, act, Linear, act, ..., Linear`` and the activation's class."""
    mods = list(net)
    linears = [m for m in mods[0::2] if isinstance(m, nn.Linear)]
    acts = {type(m) for m in mods[1::2]}
    if len(linears) != (len(mods) + 1) // 2 or len(mods) % 2 == 0 or len(acts) > 1 \
            or any(isinstance(m, nn.Linear) for m in mods[1::2]):
        raise ValueError(f"{where}: got {net}, allowed an MLP of Linear layers with one activation between them")
    return linears, (acts.pop() if acts else nn.Identity)


class LeanSACUpdate:
    """``sac.train(gradient_steps, batch_size)`` with fewer FLOPs and ops (see the module docstring).

    Args:
        sac: an ``stable_baselines3.SAC`` with an MLP policy (``MlpPolicy``), no gSDE and no features extractor
            shared between actor and critics; its ``replay_buffer`` is sampled as in SB3.
        fused_adam: run the actor, critic and entropy optimizers fused.

    Raises:
        ValueError: for a SAC this update does not cover (the message names what).
    """

    def __init__(self, sac: SB3SAC, fused_adam: bool = False) -> None:
        if sac.use_sde:
            raise ValueError("sac.use_sde: got True, allowed False (gSDE is not covered by the lean update)")
        critic, target = sac.critic, sac.critic_target
        if critic.share_features_extractor or not isinstance(critic.features_extractor, FlattenExtractor):
            raise ValueError("sac.critic: the lean update needs its own FlattenExtractor (MlpPolicy defaults)")
        if sac.batch_norm_stats:
            raise ValueError("sac.critic: batch norm is not covered by the lean update")
        self.sac = sac
        layers = [_mlp_layers(q, f"sac.critic.q_networks[{i}]") for i, q in enumerate(critic.q_networks)]
        self.critic_layers = [lin for lin, _ in layers]
        self.target_layers = [_mlp_layers(q, "sac.critic_target")[0] for q in target.q_networks]
        acts = {a for _, a in layers}
        if len(acts) != 1 or len({len(x) for x in self.critic_layers}) != 1:
            raise ValueError("sac.critic: the critics differ in depth or activation")
        self.activation = acts.pop()()
        self.critic_params = list(critic.parameters())
        self.target_params = list(target.parameters())
        self.fused_adam = bool(fused_adam)

    # ------------------------------------------------------------------ the critics
    def q_values(self, layers: list[list[nn.Linear]], obs: torch.Tensor, actions: torch.Tensor,
                 detach_weights: bool = False) -> torch.Tensor:
        """Every critic's Q(obs, actions).

        Args:
            layers: ``self.critic_layers`` or ``self.target_layers`` (n critics x L Linear layers).
            obs: (B, O) observations.
            actions: (B, A) actions in [-1, 1].
            detach_weights: compute no gradient for the critics' weights (inputs still get one).

        Returns:
            (n, B, 1) Q-values, critic ``i`` in row ``i`` (SB3's ``critic(obs, actions)[i]``).
        """
        x = torch.cat([obs, actions], dim=1)
        out = []
        for lay in layers:
            h = x
            for j, lin in enumerate(lay):
                if j:
                    h = self.activation(h)
                w, b = (lin.weight.detach(), lin.bias.detach()) if detach_weights else (lin.weight, lin.bias)
                h = F.linear(h, w, b)
            out.append(h)
        return torch.stack(out)

    # ------------------------------------------------------------------ SB3's SAC.train
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` SAC updates on batches of ``batch_size`` from ``sac.replay_buffer``; records
        SB3's ``train/*`` logger keys and advances ``sac._n_updates`` as SB3 does."""
        sac = self.sac
        sac.policy.set_training_mode(True)
        optimizers = [sac.actor.optimizer, sac.critic.optimizer]
        if sac.ent_coef_optimizer is not None:
            optimizers.append(sac.ent_coef_optimizer)
        if self.fused_adam:
            for opt in optimizers:
                if not opt.param_groups[0].get("fused"):
                    use_fused_adam(opt)
        sac._update_learning_rate(optimizers)
        learn_alpha = sac.ent_coef_optimizer is not None and sac.log_ent_coef is not None
        target_entropy = float(sac.target_entropy) if learn_alpha else 0.0
        ent_coef_losses, ent_coefs, actor_losses, critic_losses = [], [], [], []
        for gradient_step in range(gradient_steps):
            data = sac.replay_buffer.sample(batch_size, env=sac._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else sac.gamma
            actions_pi, log_prob = sac.actor.action_log_prob(data.observations)
            log_prob = log_prob.reshape(-1, 1)
            if learn_alpha:
                ent_coef = torch.exp(sac.log_ent_coef.detach())
                ent_coef_loss = -(sac.log_ent_coef * (log_prob + target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.detach())
                sac.ent_coef_optimizer.zero_grad()  # type: ignore[union-attr]
                ent_coef_loss.backward()
                sac.ent_coef_optimizer.step()  # type: ignore[union-attr]
            else:
                ent_coef = sac.ent_coef_tensor
            ent_coefs.append(ent_coef.detach().reshape(()))

            with torch.no_grad():
                next_actions, next_log_prob = sac.actor.action_log_prob(data.next_observations)
                next_q = self.q_values(self.target_layers, data.next_observations, next_actions).amin(dim=0)
                next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q

            current_q = self.q_values(self.critic_layers, data.observations, data.actions)  # (n, B, 1)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q.unbind(0))
            critic_losses.append(critic_loss.detach())
            sac.critic.optimizer.zero_grad()
            critic_loss.backward()
            sac.critic.optimizer.step()

            q_pi = self.q_values(self.critic_layers, data.observations, actions_pi, detach_weights=True)
            actor_loss = (ent_coef * log_prob - q_pi.amin(dim=0)).mean()
            actor_losses.append(actor_loss.detach())
            sac.actor.optimizer.zero_grad()
            actor_loss.backward()
            sac.actor.optimizer.step()

            if gradient_step % sac.target_update_interval == 0:
                with torch.no_grad():
                    torch._foreach_mul_(self.target_params, 1 - sac.tau)
                    torch._foreach_add_(self.target_params, self.critic_params, alpha=sac.tau)
                polyak_update(sac.batch_norm_stats, sac.batch_norm_stats_target, 1.0)

        sac._n_updates += gradient_steps
        sac.logger.record("train/n_updates", sac._n_updates, exclude="tensorboard")
        if gradient_steps:
            means = _means(ent_coefs, actor_losses, critic_losses, ent_coef_losses)
            sac.logger.record("train/ent_coef", means[0])
            sac.logger.record("train/actor_loss", means[1])
            sac.logger.record("train/critic_loss", means[2])
            if ent_coef_losses:
                sac.logger.record("train/ent_coef_loss", means[3])


def _means(*lists: list[torch.Tensor]) -> list[Any]:
    """The float64 mean of each list of scalar tensors, read back in one transfer (nan for an empty list)."""
    flat = torch.stack([t.reshape(()) for lst in lists for t in lst]).double().cpu().numpy()
    out, i = [], 0
    for lst in lists:
        out.append(float(np.mean(flat[i:i + len(lst)])) if lst else float("nan"))
        i += len(lst)
    return out
