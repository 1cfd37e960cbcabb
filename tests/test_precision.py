"""train.precision: bf16 or fp16 autocast of the networks' passes, fp32 everywhere else."""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch

from plastic import runtime
from plastic.agents import rainbow
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import build_config
from plastic.nn.layers import FACTORISED_MAX_ROWS, NoisyLinear
from reference_learner import SUITE_SHAPES, make_config, synthetic_batch

# The mixed-precision comparisons also run on a CUDA GPU where there is one (scripts/device_checks.sh).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def agents(suite: str, preset: str, batch_size: int, device: str) -> tuple[RainbowAgent, RainbowAgent]:
    shapes = SUITE_SHAPES[suite]
    made = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        config = make_config(suite, preset, batch_size, device, {"train.precision": precision})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on this CPU
            made.append(RainbowAgent(config, shapes["obs_shape"], 5, torch.device(device)))
    return made[0], made[1]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("suite", "preset"), [("minatar", "plastic"), ("atari", "drq")])
def test_a_bf16_update_stays_close_to_the_fp32_update(suite, preset, device):
    """Same weights, batch and draws: the loss within 1%, every parameter's step pointing the same
    way (cosine > 0.9 per tensor), and fp32 parameters, gradients and optimizer state throughout."""
    shapes = SUITE_SHAPES[suite]
    batch_size = 8 if suite == "atari" else 32
    fp32, bf16 = agents(suite, preset, batch_size, device)
    before = {n: p.detach().clone() for n, p in fp32.online.named_parameters()}
    batch = synthetic_batch(shapes["obs_shape"], 5, batch_size, shapes["high"])
    draws = fp32.draw_randomness(batch_size)
    a = fp32.update(batch, copy.deepcopy(draws))
    b = bf16.update(batch, copy.deepcopy(draws))
    assert b["loss"].dtype == torch.float32 and b["priority"].dtype == torch.float32
    assert b["loss"].item() == pytest.approx(a["loss"].item(), rel=1e-2)
    assert torch.allclose(b["priority"], a["priority"], rtol=5e-2)
    params_b = dict(bf16.online.named_parameters())
    for name, p in fp32.online.named_parameters():
        q = params_b[name]
        assert q.dtype == torch.float32 and q.grad.dtype == torch.float32
        assert bf16.optimizer.state[q]["exp_avg"].dtype == torch.float32
        assert cosine(p.grad, q.grad) > 0.9, name
        assert cosine(p.detach() - before[name], q.detach() - before[name]) > 0.9, name
    # ... and bf16 did change the arithmetic: the two are not equal.
    assert a["loss"].item() != b["loss"].item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("preset", "overrides"), [("drq", {}), ("plastic", {}),
                                                   ("plastic", {"fidelity": "intent"})])
def test_inputs_and_noisy_weights_made_in_bf16_change_no_value(preset, overrides, device):
    """The bf16 update casts its inputs once and builds its noisy weights in bf16; with fp32
    inputs and weights left to autocast's casts at every pass instead, the same bits result
    (batches of more than FACTORISED_MAX_ROWS, where the target network's own forward, the
    path before, builds its weights too)."""
    shapes, batch_size = SUITE_SHAPES["atari"], FACTORISED_MAX_ROWS + 4
    made = []
    for _ in range(2):
        torch.manual_seed(0)
        config = make_config("atari", preset, batch_size, device, {"train.precision": "bf16", **overrides})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on this CPU
            made.append(RainbowAgent(config, shapes["obs_shape"], 5, torch.device(device)))
    made_in_bf16, cast_by_autocast = made

    def fp32_parameters(layer: NoisyLinear, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
        return NoisyLinear.effective_parameters(layer)

    inputs = cast_by_autocast._inputs
    cast_by_autocast._inputs = lambda batch, r: tuple(x.float() for x in inputs(batch, r))
    cast_by_autocast.target.head.linear_parameters = lambda dtype=None: None  # its own forward
    for network in cast_by_autocast.networks().values():
        for layer in network.modules():
            if isinstance(layer, NoisyLinear):  # the fp32 weight, whatever type is asked for
                layer.effective_parameters = functools.partial(fp32_parameters, layer)
    assert made_in_bf16.online.head.linear_parameters(torch.bfloat16)[0][0].dtype == torch.bfloat16
    assert cast_by_autocast.online.head.linear_parameters(torch.bfloat16)[0][0].dtype == torch.float32
    for step in range(2):
        batch = synthetic_batch(shapes["obs_shape"], 5, batch_size, shapes["high"], seed=step)
        draws = made_in_bf16.draw_randomness(batch_size)
        a = made_in_bf16.update(batch, copy.deepcopy(draws))
        b = cast_by_autocast.update(batch, copy.deepcopy(draws))
        for key in ("loss", "priority", "grad_norm"):
            assert torch.equal(a[key], b[key]), (step, key)
        params = dict(cast_by_autocast.online.named_parameters())
        for name, p in made_in_bf16.online.named_parameters():
            assert torch.equal(p.grad, params[name].grad) and torch.equal(p, params[name]), (step, name)
        for p, q in zip(made_in_bf16.target.parameters(), cast_by_autocast.target.parameters()):
            assert torch.equal(p, q), step


def test_unknown_precision_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="train.precision.*fp32, bf16, fp16"):
        build_config("minatar", "breakout", "drq", overrides={"train.precision": "fp8"})


def test_bf16_on_a_cpu_without_native_bf16_says_it_is_emulated(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        assert rainbow.autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rainbow.autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
        assert rainbow.autocast_dtype("fp32", torch.device("cpu")) is None


@pytest.mark.parametrize("device", DEVICES)
def test_an_fp16_update_stays_close_to_the_fp32_update(device):
    shapes = SUITE_SHAPES["minatar"]
    torch.manual_seed(0)
    fp32 = RainbowAgent(make_config("minatar", "plastic", 32, device), shapes["obs_shape"], 5,
                        torch.device(device))
    torch.manual_seed(0)
    fp16 = RainbowAgent(make_config("minatar", "plastic", 32, device, {"train.precision": "fp16"}),
                        shapes["obs_shape"], 5, torch.device(device))
    batch = synthetic_batch(shapes["obs_shape"], 5, 32, shapes["high"])
    draws = fp32.draw_randomness(32)
    a, b = fp32.update(batch, copy.deepcopy(draws)), fp16.update(batch, copy.deepcopy(draws))
    assert b["loss"].item() == pytest.approx(a["loss"].item(), rel=1e-2)
    params = dict(fp16.online.named_parameters())
    for name, p in fp32.online.named_parameters():
        assert params[name].dtype == torch.float32
        assert cosine(p.grad, params[name].grad) > 0.9, name  # unscaled: the same magnitude
        assert params[name].grad.norm().item() == pytest.approx(p.grad.norm().item(), rel=5e-2), name
    assert fp16.loss_scale.scale == 2.0**16 and fp16.loss_scale.skipped == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("preset", ["drq", "plastic"])
def test_an_fp16_overflow_skips_the_step_and_backs_off(preset, device):
    """A loss scale too large for fp16's range gives infinite gradients: the parameters stay as
    they were (SAM restores its perturbation), the scale halves, and the next update steps."""
    shapes = SUITE_SHAPES["minatar"]
    torch.manual_seed(0)
    agent = RainbowAgent(make_config("minatar", preset, 16, device, {"train.precision": "fp16"}),
                         shapes["obs_shape"], 5, torch.device(device))
    agent.loss_scale.scale = 1e38  # the scaled loss is inf in fp32 already
    before = {n: p.detach().clone() for n, p in agent.online.named_parameters()}
    batch = synthetic_batch(shapes["obs_shape"], 5, 16, shapes["high"])
    stats = agent.update(batch)
    assert all(torch.equal(p, before[n]) for n, p in agent.online.named_parameters())
    assert torch.isfinite(stats["priority"]).all() and "grad_norm" not in stats
    assert agent.loss_scale.skipped == 1 and agent.loss_scale.scale == 5e37
    agent.loss_scale.scale = 2.0**10
    agent.update(batch)
    assert not all(torch.equal(p, before[n]) for n, p in agent.online.named_parameters())
    assert agent.loss_scale.skipped == 1


def test_dmc_refuses_mixed_precision():
    with pytest.raises(ValueError, match="only the Rainbow agent"):
        build_config("dmc", "cartpole-swingup", "drq", overrides={"train.precision": "bf16"})
