"""SAM against closed forms on f(w) = ½ wᵀAw and against a brute-force reference SAM."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from plastic import SAM, NoisyLinear


def spd_matrix(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g)
    return m @ m.T / n + torch.eye(n)


def quadratic(A: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return 0.5 * w @ A @ w


def closure_of(loss_fn):
    """A SAM closure: one forward, one backward, returns the loss."""

    def closure():
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_sgd_step_matches_closed_form():
    A, w0 = spd_matrix(5, 0), torch.randn(5, generator=torch.Generator().manual_seed(1))
    lr, rho = 0.1, 0.05
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.SGD, rho=rho, lr=lr)
    opt.step(closure_of(lambda: quadratic(A, w)))
    g = A @ w0
    expected = w0 - lr * A @ (w0 + rho * g / g.norm())
    assert torch.allclose(w.detach(), expected, atol=1e-6, rtol=0)
    assert not torch.allclose(w.detach(), w0 - lr * g, atol=1e-4)  # SAM differs from plain SGD


def test_adaptive_step_matches_closed_form():
    A, w0 = spd_matrix(6, 2), torch.randn(6, generator=torch.Generator().manual_seed(3))
    lr, rho = 0.05, 0.5
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.SGD, rho=rho, adaptive=True, lr=lr)
    quadratic(A, w).backward()
    opt.first_step(zero_grad=True)
    quadratic(A, w).backward()
    opt.second_step()
    g = A @ w0
    e = rho * w0.abs() ** 2 * g / (w0.abs() * g).norm()
    assert torch.allclose(w.detach(), w0 - lr * A @ (w0 + e), atol=1e-6, rtol=0)


def _two_group_setup(exclusion: str):
    A = spd_matrix(6, 4)
    w0 = torch.randn(6, generator=torch.Generator().manual_seed(5))
    enc, head = nn.Parameter(w0[:4].clone()), nn.Parameter(w0[4:].clone())
    opt = SAM(
        [{"params": [enc]}, {"params": [head], "sam": False}],
        torch.optim.SGD, rho=0.2, lr=0.1, exclusion=exclusion,
    )

    def loss():
        return quadratic(A, torch.cat([enc, head]))

    return A, w0, enc, head, opt, loss


def test_no_sam_group_takes_clean_gradient_and_is_not_perturbed():
    A, w0, enc, head, opt, loss = _two_group_setup("clean")
    loss().backward()
    opt.first_step(zero_grad=True)
    assert torch.equal(head.detach(), w0[4:])  # never perturbed
    loss().backward()
    opt.second_step()
    g = A @ w0
    e = torch.cat([0.2 * g[:4] / g[:4].norm(), torch.zeros(2)])  # ‖g‖ over the SAM group only
    g_perturbed = A @ (w0 + e)
    assert torch.allclose(enc.detach(), w0[:4] - 0.1 * g_perturbed[:4], atol=1e-6, rtol=0)
    assert torch.allclose(head.detach(), w0[4:] - 0.1 * g[4:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("exclusion", ["authors", "authors-dmc"])
def test_authors_exclusions_perturb_the_head(exclusion):
    A, w0, enc, head, opt, loss = _two_group_setup(exclusion)
    loss().backward()
    opt.first_step(zero_grad=True)
    g = A @ w0
    e = 0.2 * g / g.norm()  # every parameter perturbed, norm over all
    assert torch.allclose(head.detach(), w0[4:] + e[4:], atol=1e-12)
    loss().backward()
    opt.second_step()
    g_perturbed = A @ (w0 + e)  # the encoder's gradient sees the perturbed head
    assert torch.allclose(enc.detach(), w0[:4] - 0.1 * g_perturbed[:4], atol=1e-6, rtol=0)
    # "authors" (Atari code): the head steps with clean + perturbed; "authors-dmc": clean only.
    head_grad = g[4:] + g_perturbed[4:] if exclusion == "authors" else g[4:]
    assert torch.allclose(head.detach(), w0[4:] - 0.1 * head_grad, atol=1e-6, rtol=0)


class RecordingSGD(torch.optim.SGD):
    """SGD that records the parameter values it is asked to step from."""

    seen: list[torch.Tensor]

    def step(self, closure=None):
        self.seen = [p.detach().clone() for g in self.param_groups for p in g["params"]]
        return super().step(closure)


def test_parameters_restored_bitwise_before_base_step():
    model = nn.Sequential(nn.Linear(7, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3))
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), RecordingSGD, rho=0.3, lr=0.1)
    x = torch.randn(9, 7)
    opt.step(closure_of(lambda: model(x).pow(2).sum()))
    assert all(torch.equal(a, b) for a, b in zip(opt.base_optimizer.seen, before))


def test_adam_base_matches_hand_rolled_adam_on_perturbed_gradient():
    A, w0 = spd_matrix(5, 6), torch.randn(5, generator=torch.Generator().manual_seed(7))
    lr, rho, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.Adam, rho=rho, lr=lr, betas=(b1, b2), eps=eps)
    ref, m, v = w0.clone(), torch.zeros(5), torch.zeros(5)
    for t in range(1, 6):
        opt.step(closure_of(lambda: quadratic(A, w)))
        g = A @ ref
        g_perturbed = A @ (ref + rho * g / g.norm())
        m = b1 * m + (1 - b1) * g_perturbed
        v = b2 * v + (1 - b2) * g_perturbed**2
        ref = ref - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    assert torch.allclose(w.detach(), ref, atol=1e-6, rtol=0)


def test_gradient_clipping_composes():
    A, w0 = spd_matrix(4, 8), 10 * torch.randn(4, generator=torch.Generator().manual_seed(9))
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.SGD, rho=0.1, lr=0.1)
    quadratic(A, w).backward()
    opt.first_step(zero_grad=True)
    quadratic(A, w).backward()
    nn.utils.clip_grad_norm_([w], max_norm=1.0)
    opt.second_step()
    g = A @ w0
    g_perturbed = A @ (w0 + 0.1 * g / g.norm())
    assert g_perturbed.norm() > 1.0
    expected = w0 - 0.1 * g_perturbed / g_perturbed.norm()
    assert torch.allclose(w.detach(), expected, atol=1e-6, rtol=0)


def test_restore_then_clip_sees_clean_head_gradient():
    A, w0, enc, head, opt, loss = _two_group_setup("clean")
    loss().backward()
    opt.first_step(zero_grad=True)
    loss().backward()
    opt.restore()
    assert torch.equal(enc.detach(), w0[:4]) and torch.equal(head.detach(), w0[4:])
    g = A @ w0
    assert torch.allclose(head.grad, g[4:])  # the clean gradient is back before clipping
    total = nn.utils.clip_grad_norm_([enc, head], max_norm=0.01)
    opt.second_step()
    e = torch.cat([0.2 * g[:4] / g[:4].norm(), torch.zeros(2)])
    final = torch.cat([(A @ (w0 + e))[:4], g[4:]])
    assert torch.allclose(total, final.norm())
    assert torch.allclose(torch.cat([enc, head]).detach(), w0 - 0.1 * 0.01 * final / final.norm(), atol=1e-6)


@pytest.mark.parametrize("exclusion", ["clean", "authors"])
def test_perturbed_block_is_first_step_then_restore(exclusion):
    A, w0, enc, head, opt, loss = _two_group_setup(exclusion)
    _, _, twin_enc, twin_head, twin_opt, twin_loss = _two_group_setup(exclusion)
    loss().backward()
    with opt.perturbed():
        assert not torch.equal(enc.detach(), w0[:4]) and enc.grad is None  # at w + e, zeroed
        loss().backward()
    twin_loss().backward()
    twin_opt.first_step(zero_grad=True)
    twin_loss().backward()
    twin_opt.restore()
    for p, q in ((enc, twin_enc), (head, twin_head)):
        assert torch.equal(p.detach(), q.detach()) and torch.equal(p.grad, q.grad)
    assert torch.equal(enc.detach(), w0[:4])
    with pytest.raises(RuntimeError, match="inside"), opt.perturbed():  # w comes back anyway
        raise RuntimeError("inside")
    assert torch.equal(torch.cat([enc, head]).detach(), w0)


def reference_sam_step(model: nn.Module, loss_fn, rho: float, lr: float) -> None:
    """Brute-force SAM with plain autograd, one parameter at a time."""
    params = list(model.parameters())
    grads = torch.autograd.grad(loss_fn(model), params)
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    originals = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(rho * g / norm)
    grads = torch.autograd.grad(loss_fn(model), params)
    with torch.no_grad():
        for p, original, g in zip(params, originals, grads):
            p.copy_(original - lr * g)


def test_matches_reference_with_noisy_layers_and_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), NoisyLinear(8, 8), nn.LayerNorm(8),
        nn.ReLU(), NoisyLinear(8, 2),
    )
    reference = copy.deepcopy(model)
    x, y = torch.randn(16, 5), torch.randn(16, 2)

    def loss_fn(m):
        return (m(x) - y).pow(2).mean()

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    for _ in range(3):
        opt.step(closure_of(lambda: loss_fn(model)))
        reference_sam_step(reference, loss_fn, rho=0.05, lr=0.1)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert torch.allclose(model[1].running_mean, reference[1].running_mean)


def test_state_dict_round_trip_continues_identically():
    A = spd_matrix(5, 10)
    w0 = torch.randn(5, generator=torch.Generator().manual_seed(11))

    def make():
        w = nn.Parameter(w0.clone())
        return w, SAM([w], torch.optim.Adam, rho=0.1, lr=0.01)

    def step(w, opt):
        opt.step(closure_of(lambda: quadratic(A, w)))

    w, opt = make()
    for _ in range(3):
        step(w, opt)
    saved = copy.deepcopy(opt.state_dict())
    w2, opt2 = make()
    with torch.no_grad():
        w2.copy_(w)
    opt2.load_state_dict(saved)
    assert opt2.base_optimizer.state is opt2.state
    assert opt2.state[w2]["step"] == 3
    for _ in range(3):
        step(w, opt)
        step(w2, opt2)
    assert torch.equal(w.detach(), w2.detach())


def test_lr_change_reaches_base_optimizer():
    w = nn.Parameter(torch.ones(2))
    opt = SAM([w], torch.optim.SGD, rho=0.0, lr=1.0)
    opt.param_groups[0]["lr"] = 0.5
    opt.step(closure_of(w.sum))
    assert torch.allclose(w.detach(), torch.full((2,), 0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": -0.1}, "rho must be a non-negative"),
        ({"exclusion": "bogus"}, "valid choices: clean, authors, authors-dmc"),
        ({"base_optimizer": "adam"}, "torch.optim.Optimizer class"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAM([nn.Parameter(torch.ones(1))], **kwargs)


def test_empty_parameter_list_and_missing_closure():
    with pytest.raises(ValueError, match="empty parameter list"):
        SAM([], rho=0.1)
    opt = SAM([nn.Parameter(torch.ones(1))], rho=0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_first_step_twice_is_an_error():
    w = nn.Parameter(torch.ones(3))
    opt = SAM([w], torch.optim.SGD, rho=0.1, lr=0.1)
    w.sum().backward()
    opt.first_step()
    with pytest.raises(RuntimeError, match="twice"):
        opt.first_step()


def test_deepcopy_gives_an_independent_working_optimizer():
    A = spd_matrix(4, 12)
    w = nn.Parameter(torch.randn(4, generator=torch.Generator().manual_seed(13)))
    opt = SAM([w], torch.optim.Adam, rho=0.1, lr=0.01)
    opt.step(closure_of(lambda: quadratic(A, w)))
    w2, opt2 = copy.deepcopy((w, opt))
    assert opt2.param_groups[0]["params"][0] is w2 and opt2.base_optimizer.state is opt2.state
    assert opt2.state[w2]["step"] == 1
    for _ in range(2):
        opt.step(closure_of(lambda: quadratic(A, w)))
        opt2.step(closure_of(lambda: quadratic(A, w2)))
    assert torch.equal(w.detach(), w2.detach()) and w is not w2


def test_scoped_param_groups_flag_the_scoped_part_and_drop_empty_parts():
    from plastic.optim.sam import scoped_param_groups

    encoder, head = [torch.nn.Parameter(torch.zeros(2))], [torch.nn.Parameter(torch.zeros(3))]
    flags = {scope: [(len(g["params"]), g["sam"]) for g in scoped_param_groups(encoder, head, scope)]
             for scope in ("encoder", "head", "all")}
    assert flags == {"encoder": [(1, True), (1, False)], "head": [(1, False), (1, True)],
                     "all": [(1, True), (1, True)]}
    assert [(g["sam"]) for g in scoped_param_groups([], head, "head")] == [True]
    with pytest.raises(ValueError, match="SAM on the encoder, which has no parameters"):
        scoped_param_groups([], head, "encoder")
    with pytest.raises(ValueError, match="unknown scope 'neck'"):
        scoped_param_groups(encoder, head, "neck")
