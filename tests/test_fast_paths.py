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
    assert "| InvertedPendulum-v5 | 64x5x10x3 | float32 | 64 |" in text
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
    assert rows[speed.T1].startswith("not compared: other run")
    # measured in this run on this machine: the ratio is printed
    same = {**peer, "same_run": True, "machine": {"cpu_model": res["machine"]["cpu_model"]}}
    speed.write_report(res, out, gpu=res, peer=same)
    text = out.read_text()
    assert "in this run" in text and "| 5.00 load [2, 2, 2] | n/a | 2.00, – |" in text
    rows = dict((t, v) for t, v, _ in speed.targets_summary(res, same))
    assert rows[speed.T1].endswith("ratios printed")
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



# ------------------------------------------------------------------------------------------ issue 14 bench
def test_sac_flop_counter_known_answers() -> None:
    # tiny nets by hand: obs 2, act 1, one hidden layer of 3, batch 4, 2 critics
    b = 4
    actor_fwd = 2 * b * (2 * 3 + 3 * 1 + 3 * 1)  # obs->3, then the mu and log_std heads
    critic_fwd = 2 * b * (3 * 3 + 3 * 1)  # (obs, action) = 3 -> 3 -> 1
    critic_first = 2 * b * 3 * 3
    actor_first = 2 * b * 2 * 3
    lean = (
        2 * actor_fwd  # actor on obs and on next obs
        + 2 * critic_fwd  # target critics
        + 2 * critic_fwd  # critics on (obs, a)
        + 2 * critic_fwd + 2 * (critic_fwd - critic_first)  # their weight and input (not the first) gradients
        + 2 * critic_fwd + 2 * critic_fwd  # actor-loss critics: forward, input gradients of every layer
        + actor_fwd + (actor_fwd - actor_first)  # actor backward
    )
    assert lean == 1344
    assert speed.matmul_flops(speed.sac_matmuls(2, 1, (3,), b)) == lean
    sb3 = lean + 2 * critic_fwd  # SB3 also computes the critics' weight gradients of the actor loss
    assert speed.matmul_flops(speed.sac_matmuls(2, 1, (3,), b, actor_loss_critic_weight_grads=True)) == sb3 == 1536
    # Hopper at batch 256 with [256, 256] nets: about 570 MFLOP for the lean update, 640 for SB3's
    hopper_lean = speed.matmul_flops(speed.sac_matmuls(11, 3))
    hopper_sb3 = speed.matmul_flops(speed.sac_matmuls(11, 3, actor_loss_critic_weight_grads=True))
    assert hopper_lean == pytest.approx(564.26e6, rel=1e-4) and hopper_sb3 == pytest.approx(635.31e6, rel=1e-4)
    # identical shapes are merged; every kind is a Floor kind; three critics scale the critic terms
    mms = speed.sac_matmuls(11, 3, (256, 256), 256, 3)
    assert len({(r, i, o, k) for r, i, o, k, _ in mms}) == len(mms)
    assert {k for *_, k, _ in mms} == {"fwd", "dw", "dx"}
    assert dict(((i, o, k), c) for _, i, o, k, c in mms)[(14, 256, "fwd")] == 9  # 3 critic passes x 3 critics
    assert dict(((i, o, k), c) for _, i, o, k, c in mms)[(14, 256, "dx")] == 3  # the actor loss's only
    actor = speed.actor_forward_matmuls(11, 3, (256, 256), 400)
    assert speed.matmul_flops(actor) == 2 * 400 * (11 * 256 + 256 * 256 + 2 * 256 * 3)


def test_floor_measures_plain_and_batched_matmuls_in_its_dtype() -> None:
    fl = speed.Floor(torch.device("cpu"), torch.bfloat16, min_sample_s=1e-5)
    for kind in ("fwd", "dw", "dx"):
        assert 0 < fl.mm_s(4, 3, 2, kind, repeats=1) < 1  # seconds per matmul: measured, finite
        assert 0 < fl.bmm_s(2, 4, 3, 2, kind, repeats=1) < 1
    assert fl._op(0, 4, 3, 2, "dw")().dtype == torch.bfloat16
    assert fl._op(0, 4, 3, 2, "fwd")().shape == (4, 2) and fl._op(0, 4, 3, 2, "dx")().shape == (4, 3)
    assert fl._op(2, 4, 3, 2, "dw")().shape == (2, 3, 2)
    assert 0 < fl.matmuls_s([(4, 3, 2, "fwd", 2)], repeats=1) < 1
    with pytest.raises(ValueError, match="kind: got 'dy', allowed"):
        fl.mm_s(4, 3, 2, "dy")


def test_threads_parse_and_bad_values_name_the_flag(tmp_path) -> None:
    assert speed.parse_threads("1,2") == (1, 2)
    assert speed.parse_threads(" 2 ") == (2,) and speed.parse_threads("0") == (0,) and speed.parse_threads(1) == (1,)
    for bad in ("a", "1,-2", "1,,2", "", "1.5"):
        with pytest.raises(ValueError, match="--threads: got .* allowed a comma list"):
            speed.parse_threads(bad)
    with pytest.raises(ValueError, match="--threads: got '1,1' with a repeated count"):
        speed.parse_threads("1,1")
    with pytest.raises(ValueError, match="--threads"):  # the CLI refuses before measuring anything
        speed.main(["--threads", "1,x", "--sections", "plan", "--out", str(tmp_path / "p.md")])


CPU = "Test CPU 9000"


def _st(x: float) -> dict:
    return speed.stats([x])


def _plan_row(rung: str, prec: str, rows: int, wall: float, cpu: float, floor: float, dims: str = "hc") -> dict:
    env = speed.PLAN_DIMS[dims][0]
    return {"dims": dims, "env": env, "rung": rung, "precision": prec, "rows_per_member": rows,
            "flops_per_action": 1e9, "ms_per_action": _st(wall), "busy_ms_per_action": _st(cpu),
            "floor_ms": _st(floor), "over_floor": _st(cpu / floor), "load_before": [1, 1, 1]}


def _mbpo(over: float, share: float, floor_share: float) -> dict:
    """An MBPO section with one float32 variant: SAC 500 ms CPU per step, the given model share."""
    sac, model = 500.0, share * 500.0
    cpu_step = sac + model + 2.0
    part = {"step_cpu_ms": cpu_step, "step_ms": cpu_step, "floor_ms": cpu_step / over,
            "floor_parts_ms": {"sac_updates": 300.0, "model_rollouts": 10.0, "retrain": floor_share * sac - 10.0},
            "parts_cpu_ms": {"sac_updates": sac, "model_rollouts": 0.2 * model, "retrain": 0.8 * model},
            "over_floor": over, "model_share": share, "model_floor_share": floor_share,
            "cpu_min_per_1k_steps": round(cpu_step / 60, 3)}
    ms = {k: _st(v) for k, v in (("sac_updates", sac), ("sac_updates_sb3", 560.0), ("model_rollouts_k1", 0.2 * model),
                                 ("model_rollouts_k15", 0.2 * model), ("retrain_amortised", 0.8 * model),
                                 ("retrain_schedule_amortised", 0.8 * model), ("env_step", 1.0),
                                 ("policy_act_and_buffer_add", 1.0))}
    return {
        "settings": {"sac_updates_per_step": 20, "sac_batch": 256, "sac_net_arch": [256, 256],
                     "rollouts_per_step": 400, "train_every": 250, "model": "E=7 (5 elites) 200x200x200x200",
                     "model_fit": "lr 0.001, wd 5e-05, batch 256, max_epochs 50, patience 5", "real_ratio": 0.05},
        "data": "5250 real Hopper-v5 random-policy transitions", "retrain_epochs": [50],
        "retrain_warm_s": _st(20.0), "retrain_warm_epochs": [50, 41], "schedule": {"steps": 125000, "fits": 480},
        "ms": ms, "cpu_ms": ms, "floor_ms": {"sac_updates": _st(300.0), "rollout_step": _st(10.0)},
        "step_ms_k1": cpu_step, "step_ms_k15": cpu_step, "step_cpu_ms_k1": cpu_step, "step_cpu_ms_k15": cpu_step,
        "model_share_of_sac_k1": share, "model_share_of_sac_k15": share, "ms_per_sac_update": 25.0,
        "load_before": [1, 1, 1], "load_after": [1, 1, 1],
        "variants": {"float32": {"label": "float32 (what the agents run)", "sac": "float32", "rollouts": "float32",
                                 "refits": "float32", "k1": part, "k15": part, "k1_first_fit": part,
                                 "k15_first_fit": part}},
    }


def _sac(lean_over: float) -> dict:
    def var(label: str, dtype: str, cpu: float, floor: float) -> dict:
        return {"label": label, "dtype": dtype, "flops": 564e6, "ms_per_update": _st(cpu),
                "cpu_ms_per_update": _st(cpu), "floor_ms": _st(floor), "over_floor": _st(cpu / floor)}

    return {"settings": {"obs": 11, "act": 3, "batch": 256, "net_arch": [256, 256], "critics": 2,
                         "ent_coef": "learned", "lr": 3e-4, "tau": 0.005, "gamma": 0.99, "updates_per_sample": 20,
                         "repeats": 3},
            "bf16": "test", "floor_clock": "process CPU time", "flops": {"lean": 564e6, "sb3": 635e6},
            "variants": {"lean": var("LeanSACUpdate, float32", "float32", 7.0 * lean_over, 7.0),
                         "sb3": var("SB3's own SAC.train, float32", "float32", 14.0, 7.0)},
            "load_before": [1, 1, 1], "load_after": [1, 1, 1]}


def _synthetic(bf16: bool, plan: list[dict], sac_over: float = 1.4, mbpo: dict | None = None) -> dict:
    reason = "CPU has avx512_bf16" if bf16 else "CPU has no avx512_bf16/amx_bf16"
    return {
        "machine": {"date_utc": "2030-01-01T00:00:00+00:00", "commit": "abc", "cpu_model": CPU, "cpu_count": 2,
                    "cpu_flags": {"avx2": True, "avx512_bf16": bf16}, "torch": "2.x", "torch_threads": 1,
                    "omp_wait_policy": "PASSIVE", "device": "cpu", "gpu": None,
                    "bf16": {"fast": bf16, "reason": reason}},
        "quick": True, "load_start": [1, 1, 1], "load_end": [1, 1, 1], "wall_s": 1.0, "threads": [1],
        "plan": {"results": plan, "skipped": []}, "sac": _sac(sac_over),
        "mbpo": mbpo or _mbpo(1.4, 0.2, 0.1),
    }


def _peer(plan_ms: dict[tuple[str, str], tuple[float, float]], same_run: bool = True) -> dict:
    return {"peer": "mbrl-lib", "same_run": same_run, "machine": {"cpu_model": CPU, "torch_threads": 1},
            "workloads": {
                "plan": {"results": [{"env_dims": env, "rung": rung, "ms_per_action": {"median": w},
                                      "process_cpu_ms_per_action": {"median": c}, "load_before": {"loadavg": [1, 1, 1]}}
                                     for (env, rung), (w, c) in plan_ms.items()]},
                "mbpo-step": {"amortised_ms_per_env_step": 2400.0, "ms_per_sac_update": 90.0,
                              "window_process_cpu_ms_per_env_step": 2300.0, "settings": {"sac": "pranz24 SAC, 512"},
                              "amortised_breakdown_ms_per_env_step": {"sac_updates": 1800.0, "model_rollouts": 17.0,
                                                                       "model_retrain": 580.0, "env_step": 1.0,
                                                                       "policy_act_and_buffer_add": 2.0,
                                                                       "other_loop_overhead": 10.0}}}}


HC = "HalfCheetah-v5"


def test_targets_bf16_cpu_are_judged_on_the_bf16_rows_and_against_mbrl_lib() -> None:
    plan = [_plan_row("64x5x10x3", "float32", 64, 100, 100, 40), _plan_row("64x5x10x3", "bf16", 64, 40, 40, 34),
            _plan_row("100x5x30x3", "float32", 100, 240, 240, 150), _plan_row("100x5x30x3", "bf16", 100, 60, 60, 50)]
    res = _synthetic(True, plan)
    fast = _peer({(HC, "64x5x10x3"): (150.0, 150.0), (HC, "100x5x30x3"): (300.0, 300.0)})
    rows = {t: (v, m) for t, v, m in speed.targets_summary(res, fast)}
    value, met = rows[speed.T2]
    assert met == "yes" and value.startswith("bf16 (the dtype used on this bf16 CPU), 2 rungs: ours / bf16 floor")
    assert "mbrl-lib / ours 3.75–5.00× wall" in value and "float32 for reference" in value
    assert "whether bf16 plans as well as float32" in value and "Bound" not in value
    assert rows[speed.T1] == (f"mbrl-lib 0.2.0 measured in this invocation on this machine ({CPU}, 1 torch thread), "
                              "right after ours: ratios printed", "yes")
    # target 5: ms per action and CPU-minutes per 1,000 env steps (ms x 1000 / 60000), ours beside mbrl-lib's
    v5, m5 = rows[speed.T5]
    assert "ours float32: 240 ms wall, 240 ms CPU per action = **4.00 CPU-min per 1,000 env steps**" in v5
    assert "ours bf16: 60.0 ms wall" in v5 and "**1.00 CPU-min" in v5
    assert "mbrl-lib (float32): 300 ms wall, 300 ms CPU = 5.00 CPU-min per 1,000 env steps" in v5 and m5 == "reported"
    # under 3x mbrl-lib at one rung: missed, with the bound that stops it (mbrl-lib over the bf16 floor)
    slow = _peer({(HC, "64x5x10x3"): (80.0, 80.0), (HC, "100x5x30x3"): (300.0, 300.0)})
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(res, slow))[speed.T2]
    assert met == "**no**" and "hc 64x5x10x3: mbrl-lib / bf16 floor = 2.35×: 3× is out of reach in this dtype" in value
    # at 3x mbrl-lib but above 1.3x the bf16 floor: missed, and the non-matmul share is named
    plan[1] = _plan_row("64x5x10x3", "bf16", 64, 40, 40, 20)
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(res, fast))[speed.T2]
    assert met == "**no**" and "**Bound:** above 1.3× the bf16 floor at hc 64x5x10x3" in value
    assert "50% of an action is not the network's matmuls" in value
    # without mbrl-lib: the speed half is pending, never a ratio
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(_synthetic(True, plan[2:]), None))[speed.T2]
    assert "mbrl-lib: mbrl-lib pending" in value and met == "pending"


def test_targets_avx2_cpu_are_judged_on_float32_rows_with_200_rows_per_member() -> None:
    plan = [_plan_row("64x5x10x3", "float32", 64, 100, 100, 40),  # 2.5x: outside the AVX2 target
            _plan_row("100x10x15x5", "float32", 200, 500, 500, 400), _plan_row("350x20x15x5", "float32", 1400,
                                                                              2400, 2400, 2000)]
    res = _synthetic(False, plan)
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(res, None))[speed.T2]
    assert met == "yes"
    assert value.startswith("float32 (no bf16 matrix instructions), 2 rungs with ≥ 200 rows/member: ours / float32 "
                            "floor 1.20–1.25×")
    assert "below 200 rows/member (outside this target): 2.50×" in value and "plans as well" not in value
    plan[1] = _plan_row("100x10x15x5", "float32", 200, 800, 800, 400)
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(res, None))[speed.T2]
    assert met == "**no**" and "**Bound:** above 1.3× the float32 floor at hc 100x10x15x5" in value
    # no rung with >= 200 rows per member: pending, not met
    value, met = dict((t, (v, m)) for t, v, m in speed.targets_summary(_synthetic(False, plan[:1]), None))[speed.T2]
    assert met == "pending" and "none measured" in value


def test_targets_of_another_run_are_not_compared_and_sac_mbpo_bounds_are_printed() -> None:
    plan = [_plan_row("100x5x30x3", "float32", 100, 240, 240, 150)]
    res = _synthetic(False, plan, sac_over=1.8, mbpo=_mbpo(1.6, 0.3, 0.1))
    other = _peer({(HC, "100x5x30x3"): (300.0, 300.0)}, same_run=False)
    rows = {t: (v, m) for t, v, m in speed.targets_summary(res, other)}
    assert rows[speed.T1][0].startswith("not compared: other run") and rows[speed.T1][1] == "yes"
    assert "mbrl-lib: not compared: other run" in rows[speed.T5][0] and "mbrl-lib / ours" not in rows[speed.T5][0]
    assert "3.0" not in rows[speed.T4_MIN][0].split("mbrl-lib")[-1]  # no mbrl-lib step or ratio from another run
    v3, m3 = rows[speed.T3]
    assert "LeanSACUpdate float32: 12.6 ms CPU (12.6 wall) per update = **1.80×** its float32 floor" in v3
    assert "**Bound:** LeanSACUpdate float32 spends 5.60 ms per update outside the matmuls" in v3
    assert m3 == "LeanSACUpdate float32: **no**; SB3's own train float32: **no**"
    v4, m4 = rows[speed.T4_FLOOR]
    assert "float32: **1.60×** (k=1" in v4
    assert "**Bound:** float32: sac updates at 1.7× their floor (200 ms above it" in v4
    assert m4 == "float32: **no**"
    v4, m4 = rows[speed.T4_SHARE]
    assert m4 == "float32: **no**"
    assert "bounded by refit epochs on early data (first fit [50] epochs, warm refits [50, 41]" in v4
    v4, _ = rows[speed.T4_MIN]
    assert "float32: **10.9** (k=1)" in v4 and speed.GPU_ANCHOR in v4
    # the model alone at its floor above 25%: out of reach at this SAC speed
    res["mbpo"] = _mbpo(1.4, 0.4, 0.3)
    rows = {t: (v, m) for t, v, m in speed.targets_summary(res, None)}
    assert "so with these refit epochs ≤ 25% is out of reach even at the floor" in rows[speed.T4_SHARE][0]
    assert rows[speed.T4_FLOOR][1] == "float32: yes"
    # the same run and machine: mbrl-lib's step and SAC (a different one) are shown beside ours
    same = _peer({(HC, "100x5x30x3"): (300.0, 300.0)})
    rows = {t: (v, m) for t, v, m in speed.targets_summary(res, same)}
    assert "mbrl-lib: 2400 ms wall per env step amortised" in rows[speed.T4_MIN][0]
    assert "different SAC, no ratio): 90.0 ms wall per update" in rows[speed.T3][0]


def test_report_from_synthetic_results_round_trips_through_from_json(tmp_path) -> None:
    plan = [_plan_row("100x5x30x3", "float32", 100, 240, 240, 150), _plan_row("100x5x30x3", "bf16", 100, 60, 60, 50)]
    res = _synthetic(True, plan)
    res["threads"] = [1, 2]
    res["peer"] = _peer({(HC, "100x5x30x3"): (300.0, 300.0)})
    two = {"torch_threads": 2, "plan": {"results": [_plan_row("100x5x30x3", "float32", 100, 160, 300, 150)],
                                        "skipped": []},
           "sac": _sac(1.6), "peer": _peer({(HC, "100x5x30x3"): (200.0, 380.0)})}
    res["by_threads"] = {"2": two}
    out = tmp_path / "perf.md"
    speed.write_report(res, out, gpu=None, peer=res["peer"])
    text = out.read_text()
    assert speed.read_results(out) == json.loads(json.dumps(res))
    assert f"## Targets (issue 14) on this machine: {CPU}, 2 logical cores, bf16 matrix instructions" in text
    assert "| target | measured, 1 torch thread | measured, 2 torch threads | met |" in text
    assert "### 2 torch threads" in text and "PETS rung float32 per action 0.67×" in text
    assert "SAC update (lean float32) 1.14×" in text
    assert "| 7. GPU | pending: no GPU lent to this task" in text
    out2 = tmp_path / "again.md"
    assert speed.main(["--from-json", str(out), "--out", str(out2)]) == 0
    assert out2.read_text() == text
    # a report of an older run (no sac, no precisions, no MBPO floors, no threads list) still renders
    old = _synthetic(False, [{k: v for k, v in plan[0].items() if k != "precision"}])
    del old["sac"], old["threads"], old["mbpo"]["variants"], old["mbpo"]["floor_ms"]
    speed.write_report(old, out, gpu=None, peer=None)
    text = out.read_text()
    assert f"| {speed.T3} | not measured in this run | pending |" in text
    assert "not measured in this run (a report from before the step floor was measured)" in text
    assert "Sections not measured in this run: Floor, Model training, SAC updates at Hopper-v5 dims." in text
    assert "| HalfCheetah-v5 | 100x5x30x3 | float32 | 100 |" in text
