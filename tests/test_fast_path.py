"""The fast learner update computes what the straightforward reference computes.

Both start from the same weights and get the same batch and the same random draws (noise,
shifts, intensities); after each of two updates (the second with Adam state) they must agree on
the losses, the statistics, the priorities, every parameter's final gradient and every online
and target parameter.
"""

from __future__ import annotations

import json

import pytest
import torch

from plastic import cli
from plastic.agents.distributional import project_distribution
from plastic.agents.rainbow import RainbowAgent, build_q_network
from plastic.nn.layers import FACTORISED_MAX_ROWS, NoisyLinear
from reference_learner import (
    SUITE_SHAPES,
    ReferenceLearner,
    layer_macs,
    make_config,
    project_per_sample,
    synthetic_batch,
    update_flops,
)

CASES = [  # build_config's default fidelity profile is "authors"
    ("atari", "drq", {}),
    ("atari", "plastic", {}),
    ("atari", "plastic", {"fidelity": "intent"}),
    ("minatar", "plastic", {"fidelity": "intent"}),
    ("minatar", "drq+sam", {"fidelity": "intent", "sam.perturbed_pass": "fresh"}),
    ("minatar", "plastic", {}),
    ("minatar", "plastic", {"agent.max_grad_norm": 0.05}),  # clipping active
    ("minatar", "drq+sam", {"sam.exclusion": "authors", "sam.resample_noise": True}),
    ("minatar", "drq+sam", {"sam.exclusion": "authors-dmc"}),
    ("minatar", "drq+sam+ln", {"sam.scope": "all", "sam.adaptive": True}),
    ("minatar", "drq+crelu", {"agent.double_q": False, "network.dueling": False}),
    # LN and CReLU placement: LayerNorm in the head streams, CReLU after the convs
    ("minatar", "plastic", {"network.layer_norm_scope": "all", "network.crelu_scope": "all"}),
    ("minatar", "drq+ln+sam", {"network.layer_norm_scope": "head", "sam.scope": "head"}),
    ("atari", "drq+ln+crelu", {"network.layer_norm_scope": "all", "network.crelu_scope": "encoder"}),
]


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 2e-4) -> bool:
    """Equal to float tolerance, relative to the tensor's own scale."""
    scale = max(b.abs().max().item(), 1e-12)
    return torch.allclose(a, b, rtol=rtol, atol=rtol * scale)


def same_parameters(a: torch.Tensor, b: torch.Tensor, lr: float) -> bool:
    """Parameters agree to 0.1% of one Adam step (Adam divides tiny gradients by tiny norms)."""
    return torch.allclose(a, b, rtol=1e-5, atol=1e-3 * lr)


@pytest.mark.parametrize(("suite", "preset", "overrides"), CASES)
def test_fast_update_equals_reference(suite, preset, overrides):
    shapes = SUITE_SHAPES[suite]
    batch_size = 4 if suite == "atari" else 16
    config = make_config(suite, preset, batch_size, "cpu", overrides)
    torch.manual_seed(0)
    agent = RainbowAgent(config, shapes["obs_shape"], 5, torch.device("cpu"))
    reference = ReferenceLearner.from_agent(agent)
    lr = config.agent.lr
    for step in range(2):
        batch = synthetic_batch(shapes["obs_shape"], 5, batch_size, shapes["high"], seed=step)
        draws = agent.draw_randomness(batch_size)
        fast = agent.update(batch, draws)
        slow = reference.update(batch, draws)
        assert fast.keys() - {"reset"} == slow.keys()
        for key in slow:
            assert close(fast[key], slow[key]), (step, key, fast[key], slow[key])
        if "agent.max_grad_norm" in overrides:
            assert slow["grad_norm"] > config.agent.max_grad_norm  # the case exercises clipping
        for name, p in agent.online.named_parameters():
            assert p.grad is not None, name
            assert close(p.grad, reference.grads[name]), (step, name)
            assert same_parameters(p.detach(), reference.online[name], lr), (step, name)
        for name, p in agent.target.named_parameters():
            assert same_parameters(p, reference.target[name], lr), (step, name)


def test_reference_is_fed_the_draws_it_is_given():
    """Different draws give different results: the comparison above is not vacuous."""
    config = make_config("minatar", "plastic", 8, "cpu")
    torch.manual_seed(0)
    agent = RainbowAgent(config, (4, 10, 10), 5, torch.device("cpu"))
    batch = synthetic_batch((4, 10, 10), 5, 8, 2)
    first = ReferenceLearner.from_agent(agent).update(batch, agent.draw_randomness(8))
    second = ReferenceLearner.from_agent(agent).update(batch, agent.draw_randomness(8))
    assert not torch.allclose(first["loss"], second["loss"])


def test_reference_projection_equals_vectorised_projection():
    torch.manual_seed(0)
    support = torch.linspace(-10, 10, 51)
    probs = torch.softmax(torch.randn(7, 51), -1)
    reward = torch.tensor([0.0, 0.4, 3.3, -25.0, 25.0, 9.9, -1.0])
    discount = torch.tensor([1.0, 1.0, 0.9, 0.9, 0.5, 0.0, 0.0])
    assert torch.allclose(project_per_sample(probs, reward, discount, support),
                          project_distribution(probs, reward, discount, support), atol=1e-6)


def test_flop_count_of_the_nature_encoder_by_hand():
    config = make_config("atari", "drq", 32, "cpu")
    macs = dict(layer_macs(build_q_network(config, (4, 84, 84), 18), (4, 84, 84)))
    assert macs["encoder.0"] == 20 * 20 * 32 * (4 * 8 * 8)
    assert macs["encoder.2"] == 9 * 9 * 64 * (32 * 4 * 4)
    assert macs["encoder.4"] == 7 * 7 * 64 * (64 * 3 * 3)
    assert macs["head.advantage.0"] == 3136 * 512 and macs["head.advantage.2"] == 512 * 18 * 51
    forward, first = sum(macs.values()), macs["encoder.0"]
    # target and online forwards at s', forward + weight grads + input grads (not the first layer's)
    assert update_flops(config, (4, 84, 84), 18) == 2 * 32 * (2 * forward + 2 * forward + forward - first)


def test_flop_count_follows_ln_and_crelu_placement():
    """CReLU in the encoder halves each conv's own outputs; LN shifts the layer indices."""
    scopes = {"network.layer_norm_scope": "all", "network.crelu_scope": "all"}
    config = make_config("atari", "drq+ln+crelu", 32, "cpu", scopes)
    macs = dict(layer_macs(build_q_network(config, (4, 84, 84), 18), (4, 84, 84)))
    assert macs["encoder.0"] == 20 * 20 * 16 * (4 * 8 * 8)
    assert macs["encoder.3"] == 9 * 9 * 32 * (32 * 4 * 4)
    assert macs["encoder.6"] == 7 * 7 * 32 * (64 * 3 * 3)
    assert macs["head.advantage.0"] == 3136 * 256 and macs["head.advantage.3"] == 512 * 18 * 51
    assert update_flops(config, (4, 84, 84), 18) > 0


@pytest.mark.parametrize("what", ["learner", "acting"])
def test_bench_cli_prints_one_json_line(capsys, what):
    args = [what, "--suite", "minatar", "--preset", "plastic", "--rounds", "1"]
    args += ["--per-round", "1", "--batch-size", "4"] if what == "learner" else ["--steps", "3"]
    assert cli.main(["bench", *args]) == 0
    result = json.loads(capsys.readouterr().out)
    key = "ms_per_update" if what == "learner" else "steps_per_s"
    assert result[key] > 0 and result["speedup"] > 0 and result["threads"] == 1
    if what == "learner":
        assert result["reference_ms_per_update"] > 0 and result["gflops"] > 0


def test_bench_cli_rejects_bad_threads(capsys):
    assert cli.main(["bench", "learner", "--threads", "-2"]) == 2
    assert "threads must be" in capsys.readouterr().err


def test_bench_without_a_source_checkout_says_so(capsys, monkeypatch, tmp_path):
    """A wheel install has no benchmarks/ beside src/: one line, exit code 2, no traceback."""
    monkeypatch.setattr(cli, "benchmarks_dir", lambda: tmp_path / "missing")
    assert cli.main(["bench", "learner", "--suite", "minatar"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plastic: error: plastic bench needs a source checkout") and err.count("\n") == 1


@pytest.mark.parametrize("rows", [1, FACTORISED_MAX_ROWS, FACTORISED_MAX_ROWS + 1, 32])
def test_noisy_linear_factorised_and_built_forms_agree(rows):
    torch.manual_seed(0)
    layer = NoisyLinear(37, 11)
    x = torch.randn(rows, 37)
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(layer.eps_out, layer.eps_in)
    expected = x @ weight.T + layer.bias_mu + layer.bias_sigma * layer.eps_out
    out = layer(x)
    assert torch.allclose(out, expected, atol=1e-5)
    out.square().sum().backward()
    grads = {k: p.grad.clone() for k, p in layer.named_parameters()}
    layer.zero_grad()
    w, b = layer.effective_parameters()
    torch.nn.functional.linear(x, w, b).square().sum().backward()
    for k, p in layer.named_parameters():
        assert torch.allclose(grads[k], p.grad, atol=1e-4), k


@pytest.mark.parametrize("scope", ["encoder", "all"])
def test_head_with_prebuilt_parameters_equals_its_own_forward(scope):
    config = make_config("minatar", "plastic", 8, "cpu", {"network.layer_norm_scope": scope})
    torch.manual_seed(0)
    network = build_q_network(config, (4, 10, 10), 5)
    x = torch.rand(8, 4, 10, 10)
    assert torch.allclose(network(x, network.head.linear_parameters()), network(x), atol=1e-6)
    network.eval()  # noise off: the parameters are the means
    assert torch.allclose(network(x, network.head.linear_parameters()), network(x), atol=1e-6)
