"""The library's hot paths against the plain oracles of ``tests/oracles.py``, on random inputs: same random
draws, same values.

The library has one code path per hot function (the cached elite weights, the in-place, row-blocked no-grad
forward, the in-place sampling tail, ``ModelEnv``'s one-gather propagation); every test here runs it and the
plain oracle from the same seed and compares the results. Also: the bf16 no-go rule and the speed bench's FLOP
counts and report (never timings).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from oracles import PlainModelEnv, plain_forward, plain_sample

from benchmarks.harness import speed
from mbrl_po.envs.rewards import REWARDS
from mbrl_po.envs.terminations import TERMINATIONS
from mbrl_po.models.ensemble import EnsembleLinear, GaussianEnsemble
from mbrl_po.models.model_env import ModelEnv
from mbrl_po.planning import MPCAgent, make_optimizer
from mbrl_po.planning.evaluator import TrajectoryEvaluator

RTOL, ATOL = 1e-5, 1e-5


def close(a: torch.Tensor | None, b: torch.Tensor | None) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True), (a - b).abs().max()


def random_model(obs_dim: int = 5, act_dim: int = 2, seed: int = 0, **kw) -> GaussianEnsemble:
    torch.manual_seed(seed)
    kw.setdefault("hidden_sizes", (16, 16, 16))
    model = GaussianEnsemble(obs_dim, act_dim, ensemble_size=7, num_elites=5, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    obs, act = torch.randn(64, obs_dim, generator=g), torch.randn(64, act_dim, generator=g)
    model.fit_normalizers(obs, act, obs + 0.3 * torch.randn(64, obs_dim, generator=g), torch.randn(64, generator=g))
    with torch.no_grad():  # wide log-variances, so sampling noise matters in every comparison
        model.min_logvar.fill_(-3.0)
    model.set_elites([6, 0, 3, 2, 5])
    return model


@pytest.fixture
def small_chunks(monkeypatch):
    """Blocks of 3 rows per member, so the chunked no-grad forward is exercised on small inputs."""
    monkeypatch.setattr(GaussianEnsemble, "nograd_chunk_rows", {"cpu": 3})


# ------------------------------------------------------------------------------------------ ensemble
def test_elite_weight_cache_hits_and_invalidates() -> None:
    layer = EnsembleLinear(4, 3, 2)
    members = torch.tensor([2, 0])
    with torch.no_grad():
        w1, b1 = layer._member_params(members)
        w2, b2 = layer._member_params(members)
        assert w1 is w2 and b1 is b2  # a hit: no new gather
        layer.weight.add_(1.0)  # in-place update (an optimizer step) bumps the version
        w3, _ = layer._member_params(members)
        assert w3 is not w1 and torch.equal(w3, layer.weight[members])
        members.copy_(torch.tensor([1, 3]))  # set_elites copies into the same tensor
        w4, _ = layer._member_params(members)
        assert torch.equal(w4, layer.weight[torch.tensor([1, 3])])
    with torch.enable_grad():  # under autograd the gather is never cached
        w5, _ = layer._member_params(members)
        assert w5.requires_grad


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "elu"])
@pytest.mark.parametrize("chunked", [False, True])
def test_forward_equals_plain_forward(activation: str, chunked: bool, monkeypatch) -> None:
    if chunked:
        monkeypatch.setattr(GaussianEnsemble, "nograd_chunk_rows", {"cpu": 3})
    model = random_model(activation=activation)
    g = torch.Generator().manual_seed(3)
    x3 = torch.randn(5, 11, model.config.input_dim, generator=g)
    x2 = torch.randn(11, model.config.input_dim, generator=g)
    for x, members in ((x3, model.elite_idx), (x2, None), (x2, model.elite_idx)):
        ref_mean, ref_lv = plain_forward(model, x, members)
        mean_g, lv_g = model(x, members)  # under autograd
        assert mean_g.requires_grad and lv_g.requires_grad
        with torch.no_grad():
            mean, lv = model(x, members)  # in place, cached elites, row blocks
        for got in ((mean, lv), (mean_g.detach(), lv_g.detach())):
            close(got[0], ref_mean.detach())
            close(got[1], ref_lv.detach())


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("flags", [{}, {"learn_delta": False}, {"learn_reward": False}])
def test_sample_equals_plain_sample(deterministic: bool, flags: dict, small_chunks) -> None:
    model = random_model(**flags)
    g = torch.Generator().manual_seed(4)
    obs3, act3 = torch.randn(5, 8, 5, generator=g), torch.randn(5, 8, 2, generator=g)
    obs2, act2 = obs3[0], act3[0]
    for obs, act, members in ((obs3, act3, model.elite_idx), (obs2, act2, None)):
        out = {}
        for name, fn in (("plain", lambda *a: plain_sample(model, *a)), ("lib", model.sample)):
            gen = torch.Generator().manual_seed(9)
            with torch.no_grad():
                nxt, rew = fn(obs, act, gen, members, deterministic)
            out[name] = (nxt, rew, gen.get_state())
        close(out["lib"][0], out["plain"][0])
        close(out["lib"][1], out["plain"][1])
        assert torch.equal(out["lib"][2], out["plain"][2])  # the same random numbers were drawn


def test_sample_under_autograd_equals_plain_and_has_its_gradient() -> None:
    """The in-place sampling tail is differentiable: same values and the same parameter gradients."""
    model = random_model()
    g = torch.Generator().manual_seed(7)
    obs, act = torch.randn(6, 5, generator=g), torch.randn(6, 2, generator=g)
    grads = {}
    for name, fn in (("plain", lambda *a: plain_sample(model, *a)), ("lib", model.sample)):
        model.zero_grad()
        nxt, rew = fn(obs, act, torch.Generator().manual_seed(2), model.elite_idx, False)
        (nxt.square().sum() + rew.sum()).backward()
        grads[name] = (nxt.detach(), rew.detach(), [p.grad.clone() for p in model.parameters()])
    close(grads["lib"][0], grads["plain"][0])
    close(grads["lib"][1], grads["plain"][1])
    for a, b in zip(grads["lib"][2], grads["plain"][2], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert any(bool(p.abs().sum() > 0) for p in grads["lib"][2])


# ------------------------------------------------------------------------------------------ ModelEnv
def _pair(propagation: str, use_elites: bool = True, with_fns: bool = False, **model_kw):
    """The same model rolled out by the plain oracle and by the library's ModelEnv."""
    envs = []
    for cls in (PlainModelEnv, ModelEnv):
        model = random_model(obs_dim=4, act_dim=1, learn_reward=not with_fns, **model_kw)
        term = TERMINATIONS["inverted_pendulum"] if with_fns else None
        rew = REWARDS["inverted_pendulum"] if with_fns else None
        gen = torch.Generator().manual_seed(11)
        envs.append(cls(model, term, rew, propagation, gen, use_elites=use_elites))
    return envs


@pytest.mark.parametrize("propagation", ["ts1", "ts_inf", "mean", "expectation"])
@pytest.mark.parametrize("batch", [20, 23])  # 23: padded layout
@pytest.mark.parametrize("with_fns", [False, True])
def test_rollout_equals_plain_rollout(propagation: str, batch: int, with_fns: bool, small_chunks) -> None:
    plain, fast = _pair(propagation, with_fns=with_fns)
    g = torch.Generator().manual_seed(5)
    obs0 = 0.1 * torch.randn(batch, 4, generator=g)
    plans = torch.randn(batch, 6, 1, generator=g)
    r_plain = plain.rollout(obs0, plans, discount=0.9)
    r_fast = fast.rollout(obs0, plans, discount=0.9)
    close(r_fast, r_plain)
    close(fast.obs, plain.obs)
    assert torch.equal(fast.terminated, plain.terminated)
    if propagation != "expectation":
        assert torch.equal(fast.row_members, plain.row_members)
    assert torch.equal(fast.generator.get_state(), plain.generator.get_state())


def test_step_and_policy_rollout_equal_plain() -> None:
    plain, fast = _pair("ts1", use_elites=False, with_fns=True)
    obs0 = 0.05 * torch.randn(14, 4, generator=torch.Generator().manual_seed(6))
    for env in (plain, fast):
        env.reset(obs0)
    for t in range(4):
        a = torch.full((14, 1), 0.3 * t - 0.5)
        for x, y in zip(fast.step(a), plain.step(a), strict=True):
            close(x, y)

    def policy(o: torch.Tensor) -> torch.Tensor:
        return torch.tanh(o[:, :1])

    ro_p, ro_f = plain.rollout_policy(obs0, policy, 5), fast.rollout_policy(obs0, policy, 5)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "valid"):
        close(getattr(ro_f, name), getattr(ro_p, name))


# ------------------------------------------------------------------------------------------ planners
@pytest.mark.parametrize("optimizer", ["cem", "icem", "mppi"])
def test_same_plan_for_the_same_seed(optimizer: str, small_chunks) -> None:
    """The whole planner (optimizer + evaluator + ModelEnv + ensemble): library and oracle agree."""
    plans = []
    for env in _pair("ts1", with_fns=True):
        kw = {"population": 24, "iterations": 3}
        if optimizer != "mppi":
            kw["elite_fraction"] = 0.25
        opt = make_optimizer(optimizer, 5, -torch.ones(1), torch.ones(1), **kw)
        agent = MPCAgent(opt, TrajectoryEvaluator(env, num_particles=5), seed=3)
        obs = np.array([0.01, -0.02, 0.03, 0.0], dtype=np.float32)
        acts = [agent.act(obs) for _ in range(3)]
        plans.append((torch.as_tensor(np.stack(acts)), agent.last_plan))
    close(plans[1][0], plans[0][0])
    close(plans[1][1], plans[0][1])


# ------------------------------------------------------------------------------------------ bf16 inference
def _bf16_oracle(model: GaussianEnsemble, x: torch.Tensor, members: torch.Tensor | None):
    """The plain forward with bf16 rounding where the fast path rounds: inputs and weights once, every
    layer's output (matmul accumulated in float32); the head's output comes back in float32."""
    def rnd(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.bfloat16).float()

    layers = [*model.hidden, model.head]
    idx = torch.arange(model.ensemble_size) if members is None else members
    h = rnd(x.expand(idx.shape[0], *x.shape) if x.ndim == 2 else x)
    for i, layer in enumerate(layers):
        h = rnd(torch.baddbmm(rnd(layer.bias[idx]), h, rnd(layer.weight[idx])))
        if i < len(layers) - 1:
            h = rnd(model.act(h))
    mean, logvar = h.chunk(2, dim=-1)
    logvar = model.max_logvar - torch.nn.functional.softplus(model.max_logvar - logvar)
    logvar = model.min_logvar + torch.nn.functional.softplus(logvar - model.min_logvar)
    return mean, logvar


@pytest.mark.parametrize("chunked", [False, True])
def test_bf16_forward_rounds_like_its_oracle_and_returns_float32(chunked: bool, monkeypatch) -> None:
    if chunked:
        monkeypatch.setattr(GaussianEnsemble, "nograd_chunk_rows", {"cpu": 3})
    model = random_model()
    g = torch.Generator().manual_seed(3)
    x3 = torch.randn(5, 11, model.config.input_dim, generator=g)
    x2 = torch.randn(11, model.config.input_dim, generator=g)
    for x, members in ((x3, model.elite_idx), (x2, None)):
        with torch.no_grad():
            mean, lv = model(x, members, torch.bfloat16)
            ref32 = model(x, members)
            oracle = _bf16_oracle(model, x, members)
        assert mean.dtype == lv.dtype == torch.float32
        # within bf16 rounding (8-bit mantissa) of the oracle that rounds at the same places ...
        for got, want in zip((mean, lv), oracle, strict=True):
            assert torch.allclose(got, want, rtol=2e-2, atol=2e-2), (got - want).abs().max()
        # ... and really computed in bf16: not the float32 result
        assert not torch.allclose(mean, ref32[0], rtol=1e-5, atol=1e-6)
        assert torch.allclose(mean, ref32[0], rtol=5e-2, atol=5e-2)


def test_bf16_weight_cache_follows_the_weights() -> None:
    layer = EnsembleLinear(4, 3, 2)
    members = torch.tensor([2, 0])
    with torch.no_grad():
        w1, b1 = layer._member_params(None, torch.bfloat16)
        assert w1.dtype == b1.dtype == torch.bfloat16 and torch.equal(w1.float(), layer.weight.bfloat16().float())
        assert layer._member_params(None, torch.bfloat16)[0] is w1  # a hit
        assert layer._member_params(None)[0] is layer.weight  # float32, all members: the parameter itself
        layer.weight.add_(1.0)  # an optimizer step
        w2, _ = layer._member_params(None, torch.bfloat16)
        assert torch.equal(w2.float(), layer.weight.bfloat16().float())
        w3, _ = layer._member_params(members, torch.bfloat16)
        assert torch.equal(w3.float(), layer.weight[members].bfloat16().float())
    with pytest.raises(ValueError, match="dtype"):
        layer._member_params(members, torch.bfloat16)  # under autograd: training has its own precision


@pytest.mark.parametrize("propagation", ["ts1", "expectation"])
def test_bf16_rollout_draws_the_same_randoms_and_stays_close(propagation: str) -> None:
    model = random_model(obs_dim=4, act_dim=1, hidden_sizes=(32, 32))
    g = torch.Generator().manual_seed(5)
    obs0 = 0.1 * torch.randn(20, 4, generator=g)
    plans = 0.5 * torch.randn(20, 4, 1, generator=g)
    out = {}
    for precision in ("float32", "bf16"):
        env = ModelEnv(model, None, REWARDS["inverted_pendulum"], propagation,
                       torch.Generator().manual_seed(11), precision=precision)
        out[precision] = (env.rollout(obs0, plans), env.obs, env.generator.get_state())
    assert torch.equal(out["bf16"][2], out["float32"][2])  # same member draws and noise
    assert out["bf16"][1].dtype == torch.float32
    assert torch.allclose(out["bf16"][1], out["float32"][1], rtol=0.1, atol=0.1)
    assert not torch.equal(out["bf16"][1], out["float32"][1])
    with pytest.raises(ValueError, match=r"precision: got 'fp16', allowed \['float32', 'bf16'\]"):
        ModelEnv(model, None, REWARDS["inverted_pendulum"], precision="fp16")


# ------------------------------------------------------------------------------------------ bf16 rule
def test_bf16_is_a_no_go_without_bf16_matrix_instructions(monkeypatch) -> None:
    monkeypatch.setattr(speed, "cpu_flags", lambda: {"avx", "avx2", "fma"})
    ok, reason = speed.bf16_fast("cpu")
    assert not ok and "float32" in reason
    monkeypatch.setattr(speed, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    ok, reason = speed.bf16_fast("cpu")
    assert ok and "avx512_bf16" in reason


# ------------------------------------------------------------------------------------------ bench helpers
def test_flop_counts_known_answers() -> None:
    dims = speed.layer_dims(17, 6)  # HalfCheetah: 23 -> 200 x4 -> 2 * 18
    assert dims == [(23, 200), (200, 200), (200, 200), (200, 200), (200, 36)]
    per_row = 23 * 200 + 3 * 200 * 200 + 200 * 36
    assert speed.forward_flops(7, 256, dims) == 2 * 7 * 256 * per_row
    # backward: weight gradient everywhere, input gradient everywhere but the first layer
    assert speed.train_step_flops(7, 256, dims) == 2 * 7 * 256 * (3 * per_row - 23 * 200)


def test_report_marks_missing_peer_and_gpu_as_pending(tmp_path) -> None:
    res = {
        "machine": speed.machine_info(torch.device("cpu")),
        "quick": True,
        "load_start": [1.0, 1.0, 1.0],
        "load_end": [1.0, 1.0, 1.0],
        "wall_s": 1.0,
        "plan": {
            "skipped": [],
            "results": [
                {
                    "dims": "ip",
                    "env": "InvertedPendulum-v5",
                    "rung": "64x5x10x3",
                    "rows_per_member": 64,
                    "flops_per_action": 1e9,
                    "ms_per_action": speed.stats([2.0, 3.0]),
                    "floor_ms": speed.stats([1.0, 1.5]),
                    "over_floor": speed.stats([2.0, 2.0]),
                    "load_before": [1, 1, 1],
                }
            ],
        },
    }
    out = tmp_path / "perf.md"
    speed.write_report(res, out, gpu=None, peer=None)
    text = out.read_text()
    assert speed.GPU_PENDING in text and "mbrl-lib: pending" in text
    assert "| InvertedPendulum-v5 | 64x5x10x3 | 64 |" in text
    assert speed.read_results(out)["plan"] == json.loads(json.dumps(res["plan"]))  # the report embeds its figures
    peer = {
        "machine": {"date_utc": "2030-01-01"},
        "workloads": {
            "plan": {
                "results": [
                    {
                        "env_dims": "InvertedPendulum-v5",
                        "rung": "64x5x10x3",
                        "ms_per_action": {"median": 5.0},
                        "load_before": {"loadavg": [2, 2, 2]},
                    }
                ]
            }
        },
    }
    (tmp_path / "peer.json").write_text(json.dumps(peer))
    speed.write_report(res, out, gpu=res, peer=speed.load_peer(tmp_path / "peer.json"))
    text = out.read_text()
    # a peer of another run: its figure is shown, but no ratio is computed from it
    assert "separate run" in text and "2030-01-01" in text
    assert "| 5.00 load [2, 2, 2] | n/a | not compared |" in text
    rows = dict((t, v) for t, v, _ in speed.targets_summary(res, speed.load_peer(tmp_path / "peer.json")))
    assert rows["planning ≥ 3× faster than mbrl-lib at every rung"].startswith("not compared: other run")
    # measured in this run on this machine: the ratio is printed
    same = {**peer, "same_run": True, "machine": {"cpu_model": res["machine"]["cpu_model"]}}
    speed.write_report(res, out, gpu=res, peer=same)
    text = out.read_text()
    assert "in this run" in text and "| 5.00 load [2, 2, 2] | n/a | 2.00, – |" in text
    rows = dict((t, v) for t, v, _ in speed.targets_summary(res, same))
    assert rows["planning ≥ 3× faster than mbrl-lib at every rung"].startswith("mbrl-lib / ours 2.00–2.00× wall")
    # another machine is named, whatever the run
    other = {**same, "machine": {"cpu_model": "Some Other CPU"}}
    ok, why = speed.peer_comparable(other, res["machine"])
    assert not ok and why == "not compared: other machine (mbrl-lib measured on Some Other CPU)"


def test_return_per_second_reads_the_first_eval_at_the_target(tmp_path) -> None:
    from benchmarks.harness.speed import first_wall_time_at, return_per_second

    head = "env_step,eval_return,wall_time\n"
    (tmp_path / "metrics_nll.csv").write_text(head + "5,,1.0\n500,120,50.5\n1000,950,99.0\n1500,1000,150\n")
    (tmp_path / "metrics_pg_learned.csv").write_text(head + "500,300,70\n1000,899,140\n")
    assert first_wall_time_at(tmp_path / "metrics_nll.csv", 900) == (99.0, 1000, 950.0)
    assert first_wall_time_at(tmp_path / "metrics_pg_learned.csv", 900) == (None, None, 899.0)
    peer = {"workloads": {"pets-ip": {"reached": False, "wall_s": 900.0, "best_return": 673.0,
                                      "settings": {"population": 64, "particles": 5, "horizon": 10, "iterations": 3}}}}
    target, value, met = return_per_second(peer, tmp_path)
    assert "ours nll: 99 s (step 1000)" in value and "not reached (best 899)" in value
    assert "not reached in 900 s" in value and "no" in met  # one objective never reached 900
    (tmp_path / "metrics_pg_learned.csv").write_text(head + "1000,901,140\n")
    assert return_per_second(peer, tmp_path)[2].startswith("partly")
    assert return_per_second(peer, tmp_path / "missing") is None


def test_planning_rungs_parse_and_bad_ones_name_the_form() -> None:
    assert speed.parse_rungs("100x5x30x3, 64x5x10x3") == ((100, 5, 30, 3), (64, 5, 10, 3))
    for bad in ("1x2x3", "0x5x30x3", "axbxcxd"):
        with pytest.raises(ValueError, match="allowed POPxPARTICLESxHORIZONxITERS"):
            speed.parse_rungs(bad)
