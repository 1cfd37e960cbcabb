"""CReLU, LayerNorm2d and NoisyLinear against hand values and torch's own layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from plastic import CReLU, LayerNorm2d, NoisyLinear
from plastic.nn.layers import FACTORISED_MAX_ROWS


def test_crelu_hand_values_and_shape():
    x = torch.tensor([[1.0, -2.0, 0.0]])
    assert torch.equal(CReLU(dim=-1)(x), torch.tensor([[1.0, 0.0, 0.0, 0.0, 2.0, 0.0]]))
    conv_features = torch.randn(2, 3, 4, 5)
    out = CReLU()(conv_features)
    assert out.shape == (2, 6, 4, 5)
    assert torch.equal(out[:, 3:], F.relu(-conv_features))


def test_crelu_passes_gradient_for_every_unit():
    x = torch.randn(64, 10, requires_grad=True)
    CReLU(dim=1)(x).sum().backward()
    assert torch.all(x.grad.abs() == 1)  # ReLU would zero the gradient of about half


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layernorm2d_equals_torch_layernorm_per_position(memory_format):
    torch.manual_seed(0)
    ln2d = LayerNorm2d(6)
    with torch.no_grad():
        ln2d.weight.normal_()
        ln2d.bias.normal_()
    reference = nn.LayerNorm(6, eps=1e-6)
    reference.load_state_dict(ln2d.state_dict())
    x = (3 * torch.randn(4, 6, 5, 7) + 1).to(memory_format=memory_format).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = ln2d(x)
    expected = reference(x_ref.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected, atol=1e-5)
    (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
    (expected * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(ln2d.weight.grad, reference.weight.grad, atol=1e-4)
    # each position normalised over channels (identity affine)
    plain = LayerNorm2d(6)(x.detach())
    assert torch.allclose(plain.mean(1), torch.zeros(4, 5, 7), atol=1e-5)


def test_layernorm2d_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expects NCHW input with 3 channels"):
        LayerNorm2d(3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="num_channels must be positive"):
        LayerNorm2d(0)


def test_noisy_linear_train_uses_factorised_noise_and_eval_uses_mean():
    torch.manual_seed(1)
    layer = NoisyLinear(5, 3, std_init=0.5)
    x = torch.randn(4, 5)
    w = layer.weight_mu + layer.weight_sigma * torch.outer(layer.eps_out, layer.eps_in)
    b = layer.bias_mu + layer.bias_sigma * layer.eps_out
    assert torch.allclose(layer(x), x @ w.T + b, atol=1e-6)
    layer.eval()
    assert torch.allclose(layer(x), x @ layer.weight_mu.T + layer.bias_mu, atol=1e-6)


def assert_sign_sqrt_normal(f: torch.Tensor, what: str) -> None:
    """f = sign(ε)·√|ε|, ε ~ N(0, 1): E f = 0, E f² = E|ε| = √(2/π), E f⁴ = E ε² = 1, each within
    4.5 standard errors (Var f = √(2/π), Var f² = 1 − 2/π, Var f⁴ = E ε⁴ − 1 = 2)."""
    f = f.double()
    n, abs_mean = len(f), math.sqrt(2 / math.pi)
    assert abs(f.mean().item()) < 4.5 * math.sqrt(abs_mean / n), what
    assert abs(f.pow(2).mean().item() - abs_mean) < 4.5 * math.sqrt((1 - abs_mean**2) / n), what
    assert abs(f.pow(4).mean().item() - 1.0) < 4.5 * math.sqrt(2.0 / n), what


def test_noisy_linear_init_and_noise_distribution():
    torch.manual_seed(0)
    layer = NoisyLinear(10_000, 4, std_init=0.5)
    bound = 1 / math.sqrt(10_000)
    assert layer.weight_mu.abs().max() <= bound
    assert torch.allclose(layer.weight_sigma, torch.full_like(layer.weight_sigma, 0.5 * bound))
    assert torch.allclose(layer.bias_sigma, torch.full((4,), 0.5 / 2))
    # f(ε) = sign(ε)√|ε| with ε ~ N(0,1) on both sides of the factorised noise
    assert_sign_sqrt_normal(layer.eps_in, "eps_in")
    wide = NoisyLinear(3, 40_000)
    assert_sign_sqrt_normal(wide.eps_out, "eps_out")
    wide.reset_noise(torch.Generator().manual_seed(4))
    assert_sign_sqrt_normal(wide.eps_out, "eps_out after reset_noise")
    # ε_in and ε_out are separate draws
    square = NoisyLinear(2_000, 2_000)
    assert not torch.equal(square.eps_in, square.eps_out)
    r = torch.corrcoef(torch.stack([square.eps_in, square.eps_out]))[0, 1].item()
    assert abs(r) < 4.5 / math.sqrt(2_000)
    before = layer.eps_in.clone()
    layer.reset_noise(torch.Generator().manual_seed(3))
    assert not torch.equal(before, layer.eps_in)
    first = layer.eps_in.clone()
    layer.reset_noise(torch.Generator().manual_seed(3))
    assert torch.equal(first, layer.eps_in)


@pytest.mark.parametrize("rows", [1, FACTORISED_MAX_ROWS, FACTORISED_MAX_ROWS + 1, 24])
def test_noisy_linear_gradients_equal_autograd_of_the_explicit_weight(rows):
    """Both forward forms (factorised up to FACTORISED_MAX_ROWS rows, the built weight above):
    every gradient equals autograd's through W = μ + σ ⊙ outer(ε_out, ε_in), b = μ_b + σ_b ⊙ ε_out,
    and in closed form dσ_W = (gᵀx) ⊙ outer(ε_out, ε_in), dσ_b = Σ g ⊙ ε_out."""
    torch.manual_seed(2)
    layer = NoisyLinear(7, 5).double()
    with torch.no_grad():  # σ not constant, so a gradient sent to the wrong entries shows
        layer.weight_sigma.uniform_(0.1, 1.0)
        layer.bias_sigma.uniform_(0.1, 1.0)
    x = torch.randn(rows, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(rows, 5, dtype=torch.float64)
    (layer(x) * upstream).sum().backward()

    leaves = {k: p.detach().clone().requires_grad_() for k, p in layer.named_parameters()}
    x_ref = x.detach().clone().requires_grad_()
    noise = torch.outer(layer.eps_out, layer.eps_in)
    weight = leaves["weight_mu"] + leaves["weight_sigma"] * noise
    bias = leaves["bias_mu"] + leaves["bias_sigma"] * layer.eps_out
    ((x_ref @ weight.T + bias) * upstream).sum().backward()
    for k, p in layer.named_parameters():
        assert torch.allclose(p.grad, leaves[k].grad, atol=1e-12), k
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-12)
    assert torch.allclose(layer.weight_sigma.grad, (upstream.T @ x.detach()) * noise, atol=1e-12)
    assert torch.allclose(layer.bias_sigma.grad, upstream.sum(0) * layer.eps_out, atol=1e-12)
    assert torch.allclose(layer.weight_mu.grad, upstream.T @ x.detach(), atol=1e-12)
    assert layer.eps_in.grad is None and layer.eps_out.grad is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_noisy_weight_built_in_autocast_dtype_equals_the_cast_fp32_weight(dtype):
    """Under autocast, a noisy weight built in autocast's type (``effective_parameters(dtype)``)
    gives bit for bit the output and fp32 gradients of the fp32 weight that autocast casts."""
    torch.manual_seed(3)
    layer = NoisyLinear(64, 24)
    with torch.no_grad():
        layer.weight_sigma.uniform_(0.01, 0.2)
    x = torch.randn(16, 64)
    upstream = torch.randn(16, 24)
    results = []
    for build_dtype in (dtype, None):
        layer.zero_grad(set_to_none=True)
        weight, bias = layer.effective_parameters(build_dtype)
        assert weight.dtype == (build_dtype or torch.float32)
        with torch.autocast("cpu", dtype=dtype):
            out = F.linear(x, weight, bias)
        (out.float() * upstream).sum().backward()
        results.append((out, {k: p.grad.clone() for k, p in layer.named_parameters()}))
    (out_low, grads_low), (out_cast, grads_cast) = results
    assert out_low.dtype == dtype and torch.equal(out_low, out_cast)
    for k, g in grads_cast.items():
        assert grads_low[k].dtype == torch.float32 and torch.equal(grads_low[k], g), k
    # the weight itself: the fp32 weight, rounded
    assert torch.equal(layer.effective_parameters(dtype)[0], layer.noisy_weight().to(dtype))


def test_noisy_linear_eval_sends_no_gradient_to_sigma():
    layer = NoisyLinear(3, 2).eval()
    layer(torch.randn(5, 3)).sum().backward()
    assert layer.weight_sigma.grad is None and layer.bias_sigma.grad is None
    assert layer.weight_mu.grad is not None
