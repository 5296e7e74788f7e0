"""DynamicsTrainer: inputs, splitting, early stopping, elites, determinism and error messages."""

import numpy as np
import pytest
import torch

from mbrl_po import DynamicsTrainer, GaussianEnsemble


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    nxt = obs + 0.2 * np.tanh(obs) + 0.1 * act.sum(1, keepdims=True) + 0.05 * rng.normal(size=(n, 3))
    rew = -np.sum(obs**2, 1) + 0.1 * rng.normal(size=n)
    return obs, act, nxt.astype(np.float32), rew.astype(np.float32)


def _model(seed=0):
    torch.manual_seed(seed)
    return GaussianEnsemble(3, 2, ensemble_size=3, num_elites=2, hidden_sizes=(32, 32))


def _trainer(model, objective="nll", **kw):
    kw.setdefault("max_epochs", 20)
    return DynamicsTrainer(model, objective, progress=False, batch_size=64, **kw)


@pytest.mark.parametrize("objective", ["nll", "mse", "pg"])
def test_fit_learns_and_reports(objective):
    obs, act, nxt, rew = _data()
    model = _model()
    report = _trainer(model, objective, patience=None, lr=5e-3).fit(obs, act, nxt, rew)
    first, last = report.epochs[0], report.epochs[-1]
    assert len(report.epochs) == 20
    assert last["holdout_mse"] < 0.3 * first["holdout_mse"], (first, last)
    assert {"train_loss", "holdout_nll", "holdout_mse"} <= set(last)
    assert len(report.holdout_nll_per_dim) == 4
    assert report.train_size + report.holdout_size == 600 and report.holdout_size == 60
    assert sorted(report.elites) == sorted(model.elite_idx.tolist()) and len(report.elites) == 2
    if objective == "pg":
        assert "u" in last  # the current U is logged every epoch


def test_nll_beats_untrained_and_elites_are_the_best_members():
    obs, act, nxt, rew = _data()
    model = _model()
    trainer = _trainer(model)
    scores = []
    evaluate = trainer.evaluate
    trainer.evaluate = lambda *a, **kw: scores.append(evaluate(*a, **kw)) or scores[-1]
    report = trainer.fit(obs, act, nxt, rew)
    untrained, kept = scores[0], scores[-1]  # the held-out rows before the first epoch and with the kept weights
    assert report.holdout_nll < 0.0 and report.holdout_nll == pytest.approx(kept["nll"])
    assert bool((kept["nll_member"] < untrained["nll_member"]).all())
    assert report.elites == torch.argsort(kept["nll_member"])[:2].tolist() == model.elite_idx.tolist()


def test_early_stopping_stops_and_keeps_best_weights():
    obs, act, nxt, rew = _data(n=200)
    model = _model()
    report = _trainer(model, lr=3e-3, max_epochs=400, patience=3).fit(obs, act, nxt, rew)
    assert report.stopped_early and len(report.epochs) < 400
    best = min(e["holdout_nll"] for e in report.epochs)
    assert report.holdout_nll <= report.epochs[-1]["holdout_nll"] + 1e-6
    assert report.holdout_nll <= best + 0.5  # per-member best snapshot, not the last epoch


def test_same_seed_same_weights_and_different_seed_differs():
    data = _data()
    w = []
    for model_seed, trainer_seed in ((0, 0), (0, 0), (0, 1)):
        model = _model(model_seed)
        _trainer(model, "pg", seed=trainer_seed, max_epochs=3).fit(*data)
        w.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


def test_accepts_tensors_and_sb3_replay_buffer():
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    obs, act, nxt, rew = _data(n=300)
    buf = ReplayBuffer(300, spaces.Box(-10, 10, (3,)), spaces.Box(-1, 1, (2,)), device="cpu")
    for i in range(300):
        buf.add(obs[i : i + 1], nxt[i : i + 1], act[i : i + 1], rew[i : i + 1], np.array([False]), [{}])
    model_a, model_b = _model(), _model()
    rep_a = _trainer(model_a, max_epochs=2).fit(buf)
    rep_b = _trainer(model_b, max_epochs=2).fit(*(torch.as_tensor(a) for a in (obs, act, nxt, rew)))
    assert rep_a.train_size == rep_b.train_size == 270
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: (d[0].copy() * np.nan, *d[1:]), "obs: contains .* NaN or inf"),
        (lambda d: (d[0], d[1], d[2], np.where(np.arange(len(d[3])) == 3, np.inf, d[3])), "rewards: contains"),
        (lambda d: (d[0], d[1][:-1], d[2], d[3]), "actions: has 599 rows but obs has 600"),
        (lambda d: (d[0], d[1], d[2][:, :2], d[3]), "next_obs: has dim 2 but obs has dim 3"),
        (lambda d: (d[0][:, :2], d[1], d[2][:, :2], d[3]), "obs: has dim 2 but the model expects obs_dim=3"),
        (lambda d: (d[0], d[1][:, :1], d[2], d[3]), "actions: has dim 1 but the model expects action_dim=2"),
        (lambda d: tuple(a[:0] for a in d), "empty data"),
        (lambda d: (d[0], d[1], d[2], d[3][:, None, None]), "rewards: expected shape"),
    ],
)
def test_bad_data_raises_value_error_naming_the_field(mutate, match):
    with pytest.raises(ValueError, match=match):
        _trainer(_model()).fit(*mutate(_data()))


def test_bad_trainer_arguments():
    with pytest.raises(ValueError, match="objective.*allowed"):
        _trainer(_model(), "maximum_likelihood")
    with pytest.raises(ValueError, match="entropy_weight"):
        DynamicsTrainer(_model(), "pg", objective_options={"entropy_weight": 0.0})
    with pytest.raises(ValueError, match="holdout_fraction"):
        _trainer(_model(), holdout_fraction=1.0)
    with pytest.raises(ValueError, match="precision"):
        _trainer(_model(), precision="fp8")
    with pytest.raises(ValueError, match="missing"):
        _trainer(_model()).fit(np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown argument"):
        _trainer(_model()).fit(*_data(), dones=np.zeros(600))


def test_bf16_precision_trains_close_to_float32():
    data = _data()
    r32 = _trainer(_model(), max_epochs=10, patience=None).fit(*data)
    r16 = _trainer(_model(), max_epochs=10, patience=None, precision="bf16").fit(*data)
    assert abs(r16.holdout_nll - r32.holdout_nll) < 0.1 * abs(r32.holdout_nll) + 0.05


def test_fused_adam_matches_the_unfused_update():
    """The trainer's fused Adam (a fast path on CPU/CUDA) gives the weights of torch's plain Adam."""
    data = _data()
    weights = []
    for fused in (True, False):
        model = _model(0)
        trainer = _trainer(model, "nll", seed=0, max_epochs=3)
        assert trainer.optimizer.defaults["fused"] is True
        if not fused:
            groups = [{k: v for k, v in g.items() if k != "fused"} for g in trainer.optimizer.param_groups]
            for g in groups:
                g["fused"] = None
            trainer.optimizer = torch.optim.Adam(groups)
        trainer.fit(*data)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], rtol=1e-4, atol=1e-5)
    assert not torch.equal(weights[0], torch.cat([p.detach().flatten() for p in _model(0).parameters()]))


# ---------------------------------------------------------------------------------------------- non-finite
def _first_hidden(model):
    return next(p for n, p in model.named_parameters() if "hidden" in n and p.ndim == 3)


def test_a_nan_weight_before_a_fit_is_restored_from_the_last_finite_fit():
    obs, act, nxt, rew = _data(n=200)
    model = _model()
    trainer = _trainer(model, max_epochs=3)
    assert not trainer.fit(obs, act, nxt, rew).rolled_back
    with torch.no_grad():
        _first_hidden(model)[0, 0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN/inf before the fit; restored"):
        report = trainer.fit(obs, act, nxt, rew)
    assert report.rolled_back and report.nonfinite == "weights before the fit"
    assert np.isfinite(report.holdout_nll)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_weights_gone_nan_during_a_fit_are_rolled_back_to_those_before_it():
    obs, act, nxt, rew = _data(n=200)
    model = _model()
    trainer = _trainer(model, max_epochs=3)
    trainer.fit(obs, act, nxt, rew)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = trainer.objective.loss
    trainer.objective.loss = lambda m, b: (loss(m, b)[0] * float("nan"), {})  # every gradient becomes NaN
    with pytest.warns(RuntimeWarning, match="became NaN/inf during this fit; rolled back"):
        report = trainer.fit(obs, act, nxt, rew)
    assert report.rolled_back and report.nonfinite in ("weights", "optimizer state")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # exactly the weights before the fit
    assert np.isfinite(report.holdout_nll) and report.elites == model.elite_idx.tolist()
    trainer.objective.loss = loss  # a later healthy fit starts from finite weights and optimizer state
    assert not trainer.fit(obs, act, nxt, rew).rolled_back


def test_a_learned_u_gone_nan_is_rolled_back_with_the_model():
    obs, act, nxt, rew = _data(n=200)
    model = _model()
    trainer = _trainer(model, "pg", objective_options={"reward_matrix": "learned"}, max_epochs=3)
    trainer.fit(obs, act, nxt, rew)
    u = trainer.bilevel.reward_matrix.parameter.detach().clone()
    history = len(trainer.bilevel.history)
    with torch.no_grad():
        trainer.bilevel.reward_matrix.parameter.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match="NaN/inf before the fit; restored"):
        report = trainer.fit(obs, act, nxt, rew)
    assert report.rolled_back and report.nonfinite == "weights before the fit"
    phi = trainer.bilevel.reward_matrix.parameter.detach()
    assert bool(torch.isfinite(phi).all()) and len(trainer.bilevel.history) > history  # it learned on from there
    assert not torch.equal(phi, torch.full_like(u, float("nan")))


def test_a_nan_model_with_nothing_to_restore_stops_with_a_clear_error():
    from mbrl_po.errors import NonFiniteModelError

    obs, act, nxt, rew = _data(n=100)
    model = _model()
    with torch.no_grad():
        _first_hidden(model)[0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteModelError, match="NaN/inf before the fit and this trainer has no earlier finite"):
        _trainer(model, max_epochs=1).fit(obs, act, nxt, rew)


def test_fit_on_transition_data_refuses_nan():
    from mbrl_po.types import TransitionData

    obs, act, nxt, rew = (torch.as_tensor(x) for x in _data(n=50))
    nxt[3, 1] = float("nan")
    data = TransitionData(obs, act, nxt, rew, torch.zeros(50, dtype=torch.bool))
    with pytest.raises(ValueError, match="next_obs: contains 1 NaN or inf values"):
        _trainer(_model(), max_epochs=1).fit(data)


def test_string_arrays_and_a_fit_without_holdout_are_reported():
    obs, act, nxt, rew = _data(n=20)
    with pytest.raises(ValueError, match="obs: expected a numeric array, got dtype <U"):
        _trainer(_model(), max_epochs=1).fit(obs.astype(str), act, nxt, rew)
    with pytest.warns(RuntimeWarning, match="1 transition\\(s\\) leave no held-out row"):
        report = _trainer(_model(), max_epochs=1).fit(obs[:1], act[:1], nxt[:1], rew[:1])
    assert report.holdout_size == 0 and report.train_size == 1


def _replay_early_stopping(scores, patience, min_delta=0.01):
    """Oracle: the epoch at which the rule 'stop after `patience` epochs in which no member improves its score by
    more than `min_delta` (relative)' stops, replayed on the (E,) scores of the start and of each epoch; None if
    it would not have stopped by the last one."""
    best = scores[0].clone()
    bad = 0
    for epoch, s in enumerate(scores[1:], start=1):
        improved = (best - s) / best.abs() > min_delta
        best = torch.where(improved, s, best)
        bad = 0 if bool(improved.any()) else bad + 1
        if bad >= patience:
            return epoch
    return None


@pytest.mark.parametrize("metric", ["nll", "mse"])
def test_early_stop_metric_drives_stopping_and_elites(metric):
    obs, act, nxt, rew = _data(n=300)
    model = _model()
    trainer = _trainer(model, lr=3e-3, max_epochs=300, patience=3, early_stop_metric=metric)
    seen = []
    evaluate = trainer.evaluate

    def recording(*a, **kw):
        ev = evaluate(*a, **kw)
        seen.append({k: ev[k].clone() for k in ("nll_member", "mse_member")})
        return ev

    trainer.evaluate = recording
    report = trainer.fit(obs, act, nxt, rew)
    key = f"{metric}_member"
    other = "mse_member" if metric == "nll" else "nll_member"
    per_epoch = [s[key] for s in seen[:-1]]  # the start, then one per epoch; the last call scores the kept weights
    assert report.stopped_early
    assert len(report.epochs) == _replay_early_stopping(per_epoch, patience=3)
    # the rule on the other score would have stopped elsewhere (or not yet): the option is what decides
    assert _replay_early_stopping([s[other] for s in seen[:-1]], patience=3) != len(report.epochs)
    assert report.elites == torch.argsort(seen[-1][key])[:2].tolist()


def test_early_stop_metric_is_checked():
    with pytest.raises(ValueError, match=r"early_stop_metric: got 'loss', allowed \['nll', 'mse'\]"):
        _trainer(_model(), early_stop_metric="loss")
