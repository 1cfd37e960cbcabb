"""What ``RainbowAgent.draw_randomness`` draws, against closed-form references.

The fast-path and golden tests feed both learners the agent's own draws, so they cannot see a
draw that is wrong in itself. Here each draw is checked for its distribution and its
independence: noise f(ε) = sign(ε)·√|ε| with ε ~ N(0, 1), separate for the online, target and
perturbed networks; crop offsets uniform on {0, …, 2·pad}, separate for s and s′; intensity draws
clamp(N(0, 1), −2, 2), separate for s and s′. Seeds are fixed (the tests are deterministic);
tolerances are 4–5 standard errors of the estimate, far inside what each plausible mistake moves.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from plastic.agents.rainbow import RainbowAgent, UpdateRandomness
from reference_learner import make_config

# MinAtar has augmentation off by default: on here, with a different pad than Atari's 4.
AGENTS = {
    "minatar": ((4, 10, 10), {"agent.augment": True, "agent.shift_pad": 2}),
    "atari": ((4, 84, 84), {}),
}
# SAM resamples the noise of its perturbed pass and runs that pass afresh (its own noise for both
# networks and its own augmentation): every kind of draw exists.
FRESH = {"sam.resample_noise": True, "sam.perturbed_pass": "fresh"}
SUITES = list(AGENTS)


def make_agent(suite: str, **overrides) -> RainbowAgent:
    shape, suite_overrides = AGENTS[suite]
    config = make_config(suite, "plastic", 8, "cpu", {**FRESH, **suite_overrides, **overrides})
    torch.manual_seed(0)
    return RainbowAgent(config, shape, 6, torch.device("cpu"))


def std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def std_normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def clamped_normal_variance(c: float) -> float:
    """Var[clamp(Z, −c, c)], Z ~ N(0, 1): E[Z²; |Z| < c] + c²·P(|Z| ≥ c) (the mean is 0)."""
    inside = (2.0 * std_normal_cdf(c) - 1.0) - 2.0 * c * std_normal_pdf(c)
    return inside + c * c * 2.0 * std_normal_cdf(-c)


def noise_sets(r: UpdateRandomness) -> dict[str, torch.Tensor]:
    """Each noise draw of one update as one flat vector (layers in order, ε_in then ε_out)."""
    def flat(noise) -> torch.Tensor:
        return torch.cat([e for name in sorted(noise) for e in noise[name]])

    return {"online": flat(r.online_noise), "target": flat(r.target_noise),
            "perturbed": flat(r.perturbed_noise), "fresh online": flat(r.perturbed.online_noise),
            "fresh target": flat(r.perturbed.target_noise)}


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def assert_uncorrelated(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Independent draws: the sample correlation is within 4.5 standard errors (1/√n) of 0."""
    r = correlation(a, b)
    assert abs(r) < 4.5 / math.sqrt(len(a)), (what, r)


# ------------------------------------------------------------------------------------ structure
@pytest.mark.parametrize("suite", SUITES)
def test_draws_have_every_field_with_its_shape(suite):
    agent = make_agent(suite)
    pad = agent.config.agent.shift_pad
    layers = {name: (m.in_features, m.out_features) for name, m in agent._noisy_online.items()}
    assert len(layers) == 4  # dueling: two noisy layers in each stream
    r = agent.draw_randomness(8)
    for draws in (r, r.perturbed):
        for noise in (draws.online_noise, draws.target_noise):
            assert {name: (i.shape, o.shape) for name, (i, o) in noise.items()} \
                == {name: ((i,), (o,)) for name, (i, o) in layers.items()}
        for shift in (draws.obs_shift, draws.next_obs_shift):
            assert shift.shape == (8, 2) and not shift.is_floating_point()
            assert shift.min() >= 0 and shift.max() <= 2 * pad
        for factor in (draws.obs_intensity, draws.next_obs_intensity):
            assert factor.shape == (8,) and factor.dtype == torch.float32
    assert {name: (i.shape, o.shape) for name, (i, o) in r.perturbed_noise.items()} \
        == {name: ((i,), (o,)) for name, (i, o) in layers.items()}
    assert r.perturbed.perturbed is None and r.perturbed.perturbed_noise is None


def test_no_augmentation_or_perturbed_draws_where_they_are_off():
    agent = make_agent("minatar", **{"agent.augment": False, "sam.resample_noise": False,
                                     "sam.perturbed_pass": "reuse"})
    r = agent.draw_randomness(8)
    assert r.perturbed is None and r.perturbed_noise is None
    assert (r.obs_shift, r.next_obs_shift, r.obs_intensity, r.next_obs_intensity) == (None,) * 4
    assert r.online_noise.keys() == r.target_noise.keys() == agent._noisy_online.keys()


def test_draws_follow_the_torch_seed():
    agent = make_agent("minatar")

    def fields(r: UpdateRandomness) -> list[torch.Tensor]:
        aug = [r.obs_shift, r.next_obs_shift, r.obs_intensity, r.next_obs_intensity]
        return list(noise_sets(r).values()) + aug + [
            r.perturbed.obs_shift, r.perturbed.next_obs_shift,
            r.perturbed.obs_intensity, r.perturbed.next_obs_intensity]

    torch.manual_seed(5)
    first = fields(agent.draw_randomness(8))
    torch.manual_seed(5)
    again = fields(agent.draw_randomness(8))
    other = fields(agent.draw_randomness(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first, other))


# ---------------------------------------------------------------------------------------- noise
def pooled_noise(agent: RainbowAgent, calls: int, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    draws = [noise_sets(agent.draw_randomness(1)) for _ in range(calls)]
    return {key: torch.cat([d[key] for d in draws]) for key in draws[0]}


@pytest.mark.parametrize("suite", SUITES)
def test_noise_draws_of_the_networks_are_independent(suite):
    """Online, target, the perturbed pass and the fresh pass's two networks: five separate draws."""
    agent = make_agent(suite)
    sets = pooled_noise(agent, 12, seed=1)
    for (a, x), (b, y) in itertools.combinations(sets.items(), 2):
        assert not torch.equal(x, y), (a, b)
        assert_uncorrelated(x, y, (a, b))
        # f(ε) keeps ε's sign: independent draws agree in sign half the time
        agree = (x.sign() == y.sign()).double().mean().item()
        assert abs(agree - 0.5) < 4.5 * 0.5 / math.sqrt(len(x)), (a, b, agree)


@pytest.mark.parametrize("suite", SUITES)
def test_noise_is_sign_sqrt_of_a_standard_normal(suite):
    """f(ε) = sign(ε)·√|ε|: E f = 0, E f² = E|ε| = √(2/π), E f⁴ = E ε² = 1, P(|f| ≤ t) = P(|ε| ≤ t²)."""
    agent = make_agent(suite)
    sets = pooled_noise(agent, 60 if suite == "minatar" else 20, seed=2)
    f = torch.cat(list(sets.values())).double()
    n = len(f)
    assert n > 500_000
    abs_mean = math.sqrt(2 / math.pi)
    # standard errors: Var f = E|ε|; Var f² = E ε² − (E|ε|)²; Var f⁴ = E ε⁴ − 1 = 2
    assert abs(f.mean().item()) < 4.5 * math.sqrt(abs_mean / n)
    assert abs(f.pow(2).mean().item() - abs_mean) < 4.5 * math.sqrt((1 - abs_mean**2) / n)
    assert abs(f.pow(4).mean().item() - 1.0) < 4.5 * math.sqrt(2.0 / n)
    for t in (0.5, 1.0, 1.5):
        p = 2.0 * std_normal_cdf(t * t) - 1.0
        got = (f.abs() <= t).double().mean().item()
        assert abs(got - p) < 4.5 * math.sqrt(p * (1 - p) / n), (t, got, p)
    # each network's draw on its own has the right spread too
    for key, values in sets.items():
        m = len(values)
        second = values.double().pow(2).mean().item()
        assert abs(second - abs_mean) < 4.5 * math.sqrt((1 - abs_mean**2) / m), (key, second)


def test_noise_inverts_to_a_standard_normal_ks():
    """ε = sign(f)·f² recovered from the noise is N(0, 1) by a Kolmogorov–Smirnov test."""
    stats = pytest.importorskip("scipy.stats")
    agent = make_agent("atari")
    f = torch.cat(list(pooled_noise(agent, 4, seed=3).values())).double()
    eps = (f.sign() * f.pow(2)).numpy()
    assert len(eps) > 100_000
    assert stats.kstest(eps, "norm").pvalue > 1e-3


# --------------------------------------------------------------------------------------- shifts
@pytest.mark.parametrize("suite", SUITES)
def test_shifts_are_uniform_and_independent(suite):
    """Offsets uniform on {0, …, 2·pad} per axis, drawn separately for s, s′ and the fresh pass."""
    agent = make_agent(suite)
    pad = agent.config.agent.shift_pad
    cells = 2 * pad + 1
    torch.manual_seed(4)
    batch = 20_000
    r = agent.draw_randomness(batch)
    columns = {"s row": r.obs_shift[:, 0], "s col": r.obs_shift[:, 1],
               "s' row": r.next_obs_shift[:, 0], "s' col": r.next_obs_shift[:, 1],
               "fresh s row": r.perturbed.obs_shift[:, 0], "fresh s' col": r.perturbed.next_obs_shift[:, 1]}
    p = 1.0 / cells
    for key, values in columns.items():
        counts = torch.bincount(values, minlength=cells).double()
        assert len(counts) == cells, key  # nothing above 2·pad (and bincount: nothing below 0)
        assert torch.all((counts - batch * p).abs() < 4.5 * math.sqrt(batch * p * (1 - p))), (key, counts)
    for (a, x), (b, y) in itertools.combinations(columns.items(), 2):
        assert_uncorrelated(x, y, (a, b))
    # s and s′ get the same whole crop once in cells² samples
    same = (r.obs_shift == r.next_obs_shift).all(1).double().mean().item()
    q = p * p
    assert abs(same - q) < 4.5 * math.sqrt(q * (1 - q) / batch), same


@pytest.mark.parametrize("suite", SUITES)
def test_shifts_chi_square(suite):
    """Pearson's χ²: each axis uniform; the joint table of (s, s′) offsets independent."""
    stats = pytest.importorskip("scipy.stats")
    agent = make_agent(suite)
    cells = 2 * agent.config.agent.shift_pad + 1
    torch.manual_seed(6)
    r = agent.draw_randomness(20_000)
    for shift in (r.obs_shift, r.next_obs_shift, r.perturbed.obs_shift):
        for axis in (0, 1):
            counts = torch.bincount(shift[:, axis], minlength=cells).numpy()
            assert stats.chisquare(counts).pvalue > 1e-3
    pairs = [(r.obs_shift[:, 0], r.next_obs_shift[:, 0]), (r.obs_shift[:, 1], r.next_obs_shift[:, 1]),
             (r.obs_shift[:, 0], r.obs_shift[:, 1]), (r.obs_shift[:, 0], r.perturbed.obs_shift[:, 0])]
    for x, y in pairs:
        table = torch.bincount(x * cells + y, minlength=cells * cells).view(cells, cells).numpy()
        assert stats.chi2_contingency(table).pvalue > 1e-3


# ---------------------------------------------------------------------------------- intensities
@pytest.mark.parametrize("suite", SUITES)
def test_intensity_draws_are_a_clamped_standard_normal(suite):
    """clamp(N(0, 1), −2, 2): Φ(−2) ≈ 2.28 % exactly at each bound, Var from the closed form,
    P(x ≤ t) = Φ(t) inside; drawn separately for s, s′ and the fresh pass."""
    agent = make_agent(suite)
    torch.manual_seed(7)
    batch = 100_000
    r = agent.draw_randomness(batch)
    draws = {"s": r.obs_intensity, "s'": r.next_obs_intensity, "fresh s": r.perturbed.obs_intensity,
             "fresh s'": r.perturbed.next_obs_intensity}
    std = math.sqrt(clamped_normal_variance(2.0))
    assert abs(std - 0.9595) < 1e-4  # 0.05·std ≈ 0.0480: the factor's spread
    for key, x in draws.items():
        x = x.double()
        assert x.min().item() == -2.0 and x.max().item() == 2.0, key
        at_bound = std_normal_cdf(-2.0)
        tol = 4.5 * math.sqrt(at_bound * (1 - at_bound) / batch)
        for bound in (-2.0, 2.0):
            assert abs((x == bound).double().mean().item() - at_bound) < tol, (key, bound)
        assert abs(x.mean().item()) < 4.5 * std / math.sqrt(batch), key
        # Var x² ≤ E x⁴ ≤ 3: the standard error of the std is at most √(3/n)/(2σ)
        assert abs(x.std().item() - std) < 4.5 * math.sqrt(3.0 / batch) / (2 * std), (key, x.std())
        for t in (-1.5, -0.5, 0.0, 1.0):
            p = std_normal_cdf(t)
            got = (x <= t).double().mean().item()
            assert abs(got - p) < 4.5 * math.sqrt(p * (1 - p) / batch), (key, t, got)
    for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
        assert_uncorrelated(x, y, (a, b))
