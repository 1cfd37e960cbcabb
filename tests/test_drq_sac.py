"""DrQ (SAC): squashed-Gaussian log-probability, the soft critic target, Reset and SAM scopes, learning,
and exact continuation from a state_dict."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from plastic import metrics
from plastic.agents.drq_sac import DrQSACAgent, SACConfig
from plastic.configs.schema import NetworkConfig, ResetConfig, SAMConfig, TrainConfig
from plastic.nn.layers import CReLU, LayerNorm2d
from plastic.nn.sac_networks import squashed_gaussian_log_prob, squashed_gaussian_sample
from plastic.replay.buffer import Batch, ReplayBuffer
from plastic.reset import ResetSchedule

PIXEL_SHAPE = (9, 16, 16)  # 3 stacked RGB frames, tiny
STATE_SHAPE = (5,)
ACTIONS = 2
BATCH = 8


def make_config(pixels: bool, *, sam: dict | None = None, reset: dict | None = None,
                network: dict | None = None, **sac) -> SimpleNamespace:
    return SimpleNamespace(
        seed=0,
        network=NetworkConfig(input_scale=255.0 if pixels else 1.0, **(network or {})),
        sam=SAMConfig(**(sam or {})),
        reset=ResetConfig(**(reset or {})),
        train=TrainConfig(replay_ratio=1.0),
        sac=SACConfig(**{"batch_size": BATCH, "encoder_channels": "8-8-8-8", "hidden": 32,
                         "state_encoder_hidden": 32, **sac}),
    )


def make_agent(pixels: bool = False, seed: int = 0, **kwargs) -> DrQSACAgent:
    torch.manual_seed(seed)
    shape = PIXEL_SHAPE if pixels else STATE_SHAPE
    return DrQSACAgent(make_config(pixels, **kwargs), shape, ACTIONS, torch.device("cpu"))


def make_batch(pixels: bool, seed: int = 0, terminal: bool = False,
               weight: np.ndarray | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    if pixels:
        obs, next_obs = (rng.integers(0, 256, (BATCH, *PIXEL_SHAPE), dtype=np.uint8) for _ in range(2))
    else:
        obs, next_obs = (rng.normal(size=(BATCH, *STATE_SHAPE)).astype(np.float32) for _ in range(2))
    discount = np.zeros(BATCH, np.float32) if terminal else np.where(rng.random(BATCH) < 0.25, 0.0, 0.99)
    return Batch(
        obs=obs, action=rng.uniform(-1, 1, (BATCH, ACTIONS)).astype(np.float32),
        reward=rng.normal(size=BATCH).astype(np.float32), discount=discount.astype(np.float32),
        next_obs=next_obs, weight=np.ones(BATCH, np.float32) if weight is None else weight.astype(np.float32),
        index=np.arange(BATCH),
    )


def update_and_reset(agent: DrQSACAgent, batch: Batch) -> tuple[dict, bool]:
    """An update, then a Reset where the run's schedule has one, as the training loop does."""
    stats = agent.update(batch)
    schedule = ResetSchedule.from_config(agent.config)
    if not schedule.due(agent.updates):
        return stats, False
    agent.reset(encoder_shrink=schedule.encoder_shrink)
    return stats, True


def twin_of(agent: DrQSACAgent, **kwargs) -> DrQSACAgent:
    """A new agent built from ``kwargs`` holding ``agent``'s state (SAM does not deepcopy)."""
    twin = make_agent(seed=99, **kwargs)
    twin.load_state_dict(copy.deepcopy(agent.state_dict()))
    return twin


def named_state(agent: DrQSACAgent) -> dict[str, torch.Tensor]:
    """Every learnable tensor of the agent by a qualified name."""
    state = {}
    for prefix, module in [("critic", agent.critic), ("target", agent.target_critic), ("actor", agent.actor)]:
        state.update({f"{prefix}.{n}": p.detach().clone() for n, p in module.named_parameters()})
    state["log_alpha"] = agent.log_alpha.detach().clone()
    return state


# ------------------------------------------------------------------------------ log-probability
def test_squashed_gaussian_log_prob_equals_change_of_variables():
    """log π(a) = log N(atanh(a); μ, σ) + log|det ∂atanh(a)/∂a|, the Jacobian taken by autograd."""
    mean = torch.tensor([0.3, -1.2], dtype=torch.float64)
    log_std = torch.tensor([-0.5, 0.4], dtype=torch.float64)
    normal = torch.distributions.Normal(mean, log_std.exp())
    for u in [torch.tensor([0.1, -0.7]), torch.tensor([2.5, -3.0]), torch.tensor([5.0, 0.0])]:
        u = u.double()
        a = torch.tanh(u)
        jacobian = torch.autograd.functional.jacobian(torch.atanh, a)  # (2, 2), diagonal
        brute = normal.log_prob(torch.atanh(a)).sum() + torch.linalg.slogdet(jacobian).logabsdet
        ours = squashed_gaussian_log_prob(u, mean, log_std)
        assert ours.item() == pytest.approx(brute.item(), rel=1e-9, abs=1e-9)


def test_squashed_gaussian_sample_is_tanh_of_a_reparameterised_normal():
    mean = torch.tensor([[0.5, -0.25]])
    log_std = torch.tensor([[-1.0, 0.3]])
    torch.manual_seed(3)
    action, log_prob = squashed_gaussian_sample(mean, log_std)
    torch.manual_seed(3)
    u = mean + log_std.exp() * torch.randn_like(mean)
    assert torch.allclose(action, torch.tanh(u))
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) \
        - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    assert torch.allclose(log_prob, expected, atol=1e-5)
    assert action.abs().max() < 1


# -------------------------------------------------------------------------------- critic target
def test_critic_target_uses_target_critic_and_entropy_term():
    agent = make_agent(critic_lr=1e-2)
    for seed in range(3):  # move the online critic away from its EMA target
        agent.update(make_batch(False, seed))
    with torch.no_grad():
        agent.log_alpha.fill_(math.log(0.7))
    t = agent.batch_tensors(make_batch(False, seed=10))
    torch.manual_seed(42)
    y = agent.critic_target(t)

    torch.manual_seed(42)
    with torch.no_grad():
        mean, log_std = agent.actor(agent.critic.encoder(t["next_obs"]))
        eps = torch.randn_like(mean)
        next_action = torch.tanh(mean + log_std.exp() * eps)
        # log π in float64: in float32, (u − mean)/std loses ε's digits where std ≪ |mean|
        mean, std = mean.double(), log_std.double().exp()
        u = mean + std * eps.double()
        log_prob = (torch.distributions.Normal(mean, std).log_prob(u)
                    - torch.log(1 - torch.tanh(u) ** 2)).sum(-1).float()

        def soft_target(critic):
            q1, q2 = critic(t["next_obs"], next_action)
            return t["reward"] + t["discount"] * (torch.min(q1, q2) - 0.7 * log_prob)

        expected = soft_target(agent.target_critic)
        with_online = soft_target(agent.critic)
        target_q = torch.min(*agent.target_critic(t["next_obs"], next_action))
        without_entropy = t["reward"] + t["discount"] * target_q
    assert torch.allclose(y, expected, atol=1e-5)
    live = t["discount"] > 0
    assert live.any() and (~live).any()
    assert torch.equal(y[~live], t["reward"][~live])  # terminal: y = r
    assert (y[live] - with_online[live]).abs().min() > 1e-4  # the online critic would differ
    assert (y[live] - without_entropy[live]).abs().min() > 1e-4  # the entropy term is in


def test_update_regresses_the_critic_on_critic_target():
    """The critic loss is the importance-weighted mean (1/B)·Σ w_i·((Q1_i − y_i)² + (Q2_i − y_i)²),
    with the replay's weights (non-uniform here, as prioritized replay gives them)."""
    agent = make_agent(critic_lr=1e-2)
    agent.update(make_batch(False, 0))
    twin = twin_of(agent, critic_lr=1e-2)
    weight = np.array([1.0, 0.05, 0.6, 0.1, 0.9, 0.3, 0.02, 0.75])
    batch = make_batch(False, 1, weight=weight)
    torch.manual_seed(5)
    stats = agent.update(batch)
    torch.manual_seed(5)
    t = twin.batch_tensors(batch)
    y = twin.critic_target(t)
    with torch.no_grad():
        q1, q2 = twin.critic(t["obs"], t["action"])
    per_sample = ((q1 - y) ** 2 + (q2 - y) ** 2).double().numpy()
    by_hand = float((weight * per_sample).sum() / BATCH)
    assert stats["critic_loss"].item() == pytest.approx(by_hand, rel=1e-5)
    # The check has teeth: unweighted, or normalised by the weights' sum, the loss differs.
    for other in [per_sample.mean(), (weight * per_sample).sum() / weight.sum()]:
        assert abs(by_hand - other) > 0.05 * by_hand


# ---------------------------------------------------------------------- target EMA, actor, α
def moved_agent(**kwargs) -> DrQSACAgent:
    """A pixel agent after a few large critic steps: online and target critics differ."""
    agent = make_agent(pixels=True, critic_lr=1e-2, **kwargs)
    for seed in range(3):
        agent.update(make_batch(True, seed))
    return agent


def test_target_critic_is_an_ema_of_the_whole_critic_encoder_included():
    agent = moved_agent()
    old_target = {n: p.detach().clone() for n, p in agent.target_critic.named_parameters()}
    agent.update(make_batch(True, seed=7))
    critic = dict(agent.critic.named_parameters())
    assert any(n.startswith("encoder.") for n in critic) and critic.keys() == old_target.keys()
    for name, p in agent.target_critic.named_parameters():
        expected = 0.995 * old_target[name] + 0.005 * critic[name].detach()
        assert torch.allclose(p, expected, rtol=1e-6, atol=1e-7), name
        assert (critic[name] - old_target[name]).abs().max() > 1e-4, name  # the check has teeth


def test_actor_and_temperature_losses_by_hand():
    """Actor: α·log π(a|s) − min(Q1, Q2)(s, a) on the ONLINE critic's features; temperature:
    α·(H − H_target) with H_target = −|A|, which puts the gradient α·(H − H_target) on log α."""
    agent = moved_agent(alpha_lr=1e-3)
    assert agent.target_entropy == -ACTIONS
    with torch.no_grad():
        agent.log_alpha.fill_(math.log(0.3))
    obs = agent.batch_tensors(make_batch(True, seed=11))["obs"]
    torch.manual_seed(21)
    with torch.no_grad():
        features = agent.critic.encoder(obs)
        mean, log_std = agent.actor(features)
        u = mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(u)
        log_prob = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) \
            - torch.log(1 - action**2).sum(-1)
        q1, q2 = agent.critic.head(features, action)
        assert (q1 - q2).abs().min() > 1e-4  # min and max differ on every sample
        actor_loss = (0.3 * log_prob - torch.min(q1, q2)).mean()
        entropy = -log_prob.mean()
        alpha_loss = 0.3 * (entropy + ACTIONS)
        target_features = agent.target_critic.encoder(obs)
        assert (target_features - features).abs().max() > 1e-3  # reading it would show

    torch.manual_seed(21)
    stats = agent._update_actor_and_alpha(obs)
    assert stats["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-4, abs=1e-5)
    assert stats["entropy"].item() == pytest.approx(entropy.item(), rel=1e-4, abs=1e-5)
    assert stats["alpha_loss"].item() == pytest.approx(alpha_loss.item(), rel=1e-4, abs=1e-6)
    assert agent.log_alpha.grad.item() == pytest.approx(alpha_loss.item(), rel=1e-4, abs=1e-6)


def test_actor_step_leaves_the_critic_and_its_gradients_untouched():
    agent = moved_agent()
    critic = dict(agent.critic.named_parameters())
    assert all(p.grad is not None for p in critic.values())  # from the last critic step
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in critic.items()}
    target_before = [p.clone() for p in agent.target_critic.parameters()]
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    agent._update_actor_and_alpha(agent.batch_tensors(make_batch(True, seed=12))["obs"])
    for name, p in critic.items():
        assert torch.equal(p, before[name][0]) and torch.equal(p.grad, before[name][1]), name
    assert all(torch.equal(p, q) for p, q in zip(agent.target_critic.parameters(), target_before))
    assert all(not torch.equal(p, q) for p, q in zip(agent.actor.parameters(), actor_before)
               if p.dim() > 1)  # the actor did step


# ------------------------------------------------------------------------------------------ reset
@pytest.mark.parametrize("reset_target", [True, False])
def test_reset_touches_exactly_the_non_encoder_parameters_at_exact_counts(reset_target):
    kwargs = dict(pixels=True, sam={"enabled": True, "rho": 0.01}, critic_lr=1e-3, actor_lr=1e-3,
                  alpha_lr=1e-3)
    agent = make_agent(reset={"enabled": True, "interval": 3, "reset_target": reset_target}, **kwargs)
    resets_at = []
    for i in range(1, 8):
        twin = twin_of(agent, **kwargs)  # the same agent without Reset, from the same RNG state
        batch = make_batch(True, seed=i)
        torch.manual_seed(100 + i)
        _, reset = update_and_reset(agent, batch)
        torch.manual_seed(100 + i)
        twin.update(batch)
        ours, theirs = named_state(agent), named_state(twin)
        changed = {n for n in ours if not torch.equal(ours[n], theirs[n])}
        if not reset:
            assert changed == set()
            continue
        resets_at.append(agent.updates)
        expected = {n for n in ours if not n.startswith(("critic.encoder.", "target."))}
        if reset_target:
            expected |= {n for n in ours if n.startswith("target.head.")}
        assert changed == expected
        if reset_target:  # online and target heads hold the same fresh values
            for n, p in agent.target_critic.head.named_parameters():
                assert torch.equal(p, ours[f"critic.head.{n}"]), n
        assert agent.log_alpha.item() == pytest.approx(math.log(0.1), abs=1e-7)
        # Optimizer state: cleared for exactly the reset parameters, kept for the encoder.
        for p in [*agent.critic.head.parameters(), *agent.actor.parameters(), agent.log_alpha]:
            for optimizer in (agent.critic_optimizer, agent.actor_optimizer, agent.alpha_optimizer):
                assert p not in optimizer.state
        for p, q in zip(agent.critic.encoder.parameters(), twin.critic.encoder.parameters()):
            mine, twins = agent.critic_optimizer.state[p], twin.critic_optimizer.state[q]
            assert int(mine["step"]) == agent.updates
            assert torch.equal(mine["exp_avg"], twins["exp_avg"])
            assert torch.equal(mine["exp_avg_sq"], twins["exp_avg_sq"])
    assert resets_at == [3, 6]


def test_reset_scope_all_also_resets_the_encoder_in_both_critics():
    agent = make_agent(pixels=True, reset={"enabled": True, "interval": 2, "scope": "all"})
    assert not update_and_reset(agent, make_batch(True, seed=1))[1]
    encoder = [p.detach().clone() for p in agent.critic.encoder.parameters()]
    assert update_and_reset(agent, make_batch(True, seed=2))[1]
    assert all(not torch.equal(p, q) for p, q in zip(agent.critic.encoder.parameters(), encoder))
    assert all(torch.equal(p, q) for p, q in zip(agent.critic.parameters(), agent.target_critic.parameters()))
    assert not agent.critic_optimizer.state
    assert agent.critic.encoder.layers[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_update_never_resets_and_reset_leaves_the_encoder_even_when_asked_to_shrink():
    agent = make_agent(pixels=True, reset={"enabled": True, "interval": 1})
    for seed in range(2):
        assert "reset" not in agent.update(make_batch(True, seed))
    assert all(p in agent.actor_optimizer.state for p in agent.actor.parameters())  # no Reset yet
    encoder = [p.detach().clone() for p in agent.critic.encoder.parameters()]
    touched = agent.reset(encoder_shrink=0.6)  # the DMC recipe never shrinks the encoder
    assert touched and not any(n.startswith("critic.encoder.") for n in touched)
    assert all(torch.equal(p, q) for p, q in zip(agent.critic.encoder.parameters(), encoder))
    assert not any(p in agent.actor_optimizer.state for p in agent.actor.parameters())


# -------------------------------------------------------------------------------------------- SAM
def test_sam_perturbs_only_encoder_parameters_and_head_takes_clean_gradient():
    agent = make_agent(pixels=True, sam={"enabled": True, "rho": 0.05})
    plain = make_agent(pixels=True)  # the same initial networks, no SAM
    before = {n: p.detach().clone() for n, p in agent.critic.named_parameters()}
    actor_before = {n: p.detach().clone() for n, p in agent.actor.named_parameters()}
    seen = []

    def record(module, inputs):
        if torch.is_grad_enabled():
            seen.append(({n: p.detach().clone() for n, p in agent.critic.named_parameters()},
                         {n: p.detach().clone() for n, p in agent.actor.named_parameters()}))

    handle = agent.critic.register_forward_pre_hook(record)
    batch = make_batch(True, seed=1)
    torch.manual_seed(9)
    stats = agent.update(batch)
    handle.remove()
    assert len(seen) == 2  # the clean and the perturbed critic passes
    (clean, _), (perturbed, perturbed_actor) = seen
    assert all(torch.equal(clean[n], before[n]) for n in before)
    assert all(torch.equal(perturbed_actor[n], actor_before[n]) for n in actor_before)
    for name in before:
        if name.startswith("encoder."):
            assert not torch.equal(perturbed[name], before[name]), name
        else:
            assert torch.equal(perturbed[name], before[name]), name
    encoder_names = [n for n in before if n.startswith("encoder.")]
    moved = torch.sqrt(sum(((perturbed[n] - before[n]) ** 2).sum() for n in encoder_names))
    assert moved.item() == pytest.approx(0.05, rel=1e-4)
    assert "loss_perturbed" in stats and "grad_norm_clean" in stats

    torch.manual_seed(9)
    plain.update(batch)
    for (n, p), q in zip(agent.critic.named_parameters(), plain.critic.parameters()):
        if n.startswith("head."):  # the head stepped with the clean gradient, as without SAM
            assert torch.allclose(p, q, rtol=0, atol=1e-7), n
    encoder_diff = [not torch.equal(p, q) for p, q in
                    zip(agent.critic.encoder.parameters(), plain.critic.encoder.parameters())]
    assert all(encoder_diff)


# ---------------------------------------------------------------------------- learning, resume
def test_authors_dmc_exclusion_perturbs_the_head_but_steps_it_with_the_clean_gradient():
    agent = make_agent(pixels=True, sam={"enabled": True, "rho": 0.05, "exclusion": "authors-dmc"})
    clean = make_agent(pixels=True, sam={"enabled": True, "rho": 0.05})
    plain = make_agent(pixels=True)  # the same initial networks, no SAM
    before = {n: p.detach().clone() for n, p in agent.critic.named_parameters()}
    seen = []

    def record(module, inputs):
        if torch.is_grad_enabled():
            seen.append({n: p.detach().clone() for n, p in agent.critic.named_parameters()})

    handle = agent.critic.register_forward_pre_hook(record)
    batch = make_batch(True, seed=1)
    for which in (agent, clean, plain):
        torch.manual_seed(9)
        which.update(batch)
    handle.remove()
    perturbed = seen[1]
    assert all(not torch.equal(perturbed[n], before[n]) for n in before)  # the head moves too
    moved = torch.sqrt(sum(((perturbed[n] - before[n]) ** 2).sum() for n in before))
    assert moved.item() == pytest.approx(0.05, rel=1e-4)  # one ρ-ball over the whole critic
    for (n, p), q, r in zip(agent.critic.named_parameters(), plain.critic.parameters(),
                            clean.critic.parameters()):
        if n.startswith("head."):  # clean gradient: the same step as without SAM
            assert torch.allclose(p, q, rtol=0, atol=1e-7), n
        else:  # the encoder's perturbed gradient saw a perturbed head: not the paper's SAM step
            assert not torch.equal(p, r), n


def test_updates_on_a_fixed_terminal_batch_fit_the_rewards():
    agent = make_agent(critic_lr=1e-3)
    batch = make_batch(False, seed=2, terminal=True)  # y = r exactly
    first = agent.update(batch)["critic_loss"].item()
    for _ in range(150):
        last = agent.update(batch)["critic_loss"].item()
    assert last < 0.05 * first


def test_actor_and_temperature_steps_move_the_right_way():
    agent = make_agent(actor_lr=1e-3)
    t = agent.batch_tensors(make_batch(False, seed=4))

    def greedy_q() -> float:
        with torch.no_grad():
            features = agent.critic.encoder(t["obs"])
            return torch.min(*agent.critic.head(features, torch.tanh(agent.actor(features)[0]))).mean().item()

    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    q_before, log_alpha = greedy_q(), agent.log_alpha.item()
    stats = agent._update_actor_and_alpha(t["obs"])
    # α grows when the policy's entropy is below the target (−|A|) and shrinks when above.
    step = agent.log_alpha.item() - log_alpha
    entropy_gap = agent.target_entropy - stats["entropy"].item()
    assert step != 0 and math.copysign(1, step) == math.copysign(1, entropy_gap)
    for _ in range(60):
        agent._update_actor_and_alpha(t["obs"])
    assert greedy_q() > q_before + 1e-3  # the policy climbs the (fixed) critic
    assert all(torch.equal(p, q) for p, q in zip(agent.critic.parameters(), critic_before))


def filled_pixel_replay(seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    replay = ReplayBuffer(200, (3, 16, 16), frame_stack=3, action_shape=(ACTIONS,),
                          action_dtype=np.float32, gamma=0.99, seed=seed)
    for i in range(60):
        replay.add(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8),
                   rng.uniform(-1, 1, ACTIONS).astype(np.float32), float(rng.normal()),
                   terminal=i % 25 == 24, episode_end=i % 25 == 24)
    return replay


def test_state_dict_round_trip_continues_identically():
    kwargs = dict(pixels=True, sam={"enabled": True, "rho": 0.01}, reset={"enabled": True, "interval": 4})
    agent = make_agent(**kwargs)
    replay = filled_pixel_replay()
    batches = [replay.sample(BATCH) for _ in range(6)]
    for batch in batches[:3]:
        update_and_reset(agent, batch)
    saved = copy.deepcopy(agent.state_dict())
    rng_state = torch.get_rng_state()

    def run(a: DrQSACAgent) -> list[dict]:
        out = []
        for batch in batches[3:]:
            stats, reset = update_and_reset(a, batch)
            out.append({**{k: v.clone() for k, v in stats.items()}, "reset": reset})
        return out

    expected = run(agent)
    restored = make_agent(seed=123, **kwargs)
    restored.load_state_dict(saved)
    assert restored.updates == 3
    torch.set_rng_state(rng_state)
    got = run(restored)
    assert [s["reset"] for s in got] == [True, False, False]
    for mine, theirs in zip(got, expected):
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert (torch.equal(mine[key], theirs[key]) if torch.is_tensor(mine[key])
                    else mine[key] == theirs[key]), key
    a, b = named_state(restored), named_state(agent)
    assert all(torch.equal(a[n], b[n]) for n in a)
    obs = batches[0].obs
    assert np.array_equal(restored.act(obs, evaluate=True), agent.act(obs, evaluate=True))


# ---------------------------------------------------------------------------- acting, interfaces
def test_act_bounds_determinism_and_shape_check():
    agent = make_agent(pixels=True)
    obs = make_batch(True).obs
    sampled = agent.act(obs)
    greedy = agent.act(obs, evaluate=True)
    assert sampled.shape == greedy.shape == (BATCH, ACTIONS)
    assert sampled.dtype == greedy.dtype == np.float32
    assert np.abs(sampled).max() <= 1 and np.abs(greedy).max() <= 1
    with torch.no_grad():
        mean, _ = agent.actor(agent.critic.encoder(torch.from_numpy(obs).float() / 255))
    assert np.allclose(greedy, torch.tanh(mean).numpy(), atol=1e-6)
    assert np.array_equal(greedy, agent.act(obs, evaluate=True))
    assert not np.allclose(sampled, greedy)
    with pytest.raises(ValueError, match="shape"):
        agent.act(obs[:, :3])


def test_plasticity_modules_measure_encoder_and_heads():
    agent = make_agent(pixels=True)
    encoder, heads = agent.plasticity_modules()
    x = agent.to_input(make_batch(True).obs)
    assert encoder is agent.critic.encoder
    assert len(metrics.active_units(encoder, x)) == 4  # one ReLU per conv
    features = encoder(x).detach()
    assert set(heads) == {"actor", "critic"}
    critic_layers = metrics.active_units(heads["critic"], features)
    assert critic_layers and all(name.startswith("q1.") for name in critic_layers)
    assert len(metrics.active_units(heads["actor"], features)) == 2
    assert set(agent.networks()) == {"actor", "critic", "critic_target"}


def test_crelu_and_layer_norm_switches_build_the_networks():
    torch.manual_seed(0)
    config = make_config(True)
    config.network.crelu, config.network.layer_norm = True, True
    agent = DrQSACAgent(config, PIXEL_SHAPE, ACTIONS, torch.device("cpu"))
    kinds = {type(m).__name__ for m in agent.critic.encoder.modules()}
    assert "LayerNorm2d" in kinds
    assert any(type(m).__name__ == "CReLU" for m in agent.actor.modules())
    assert agent.critic.head.q1.trunk[2].in_features == 2 * config.sac.hidden  # CReLU doubles
    stats = agent.update(make_batch(True))
    assert torch.isfinite(stats["critic_loss"]) and torch.isfinite(stats["actor_loss"])


def count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def placement(ln_scope: str, crelu_scope: str) -> dict:
    return {"layer_norm": True, "crelu": True, "layer_norm_scope": ln_scope, "crelu_scope": crelu_scope}


@pytest.mark.parametrize(
    ("ln_scope", "crelu_scope", "placed"),  # placed: LN in encoder, head; CReLU in encoder, head
    [("encoder", "head", (1, 0, 0, 1)), ("head", "encoder", (0, 1, 1, 0)), ("all", "all", (1, 1, 1, 1))],
)
def test_layer_norm_and_crelu_placement(ln_scope, crelu_scope, placed):
    """Pixels 9x16x16 through convs 8-8-8-8 (3x3, stride 2) -> 8x1x1 = 8 features; projections to 50
    (Linear, LayerNorm, tanh: always there); MLPs of 2 x 32 units; 2 actions."""
    agent = make_agent(pixels=True, network=placement(ln_scope, crelu_scope))
    encoder, critic_head, actor = agent.critic.encoder, agent.critic.head, agent.actor
    ln_encoder, ln_head, crelu_encoder, crelu_head = placed
    assert (count(encoder, LayerNorm2d), count(encoder, nn.LayerNorm)) == (4 * ln_encoder, 0)
    assert count(critic_head, nn.LayerNorm) == 1 + 4 * ln_head  # projection + 2 layers in q1 and q2
    assert count(actor, nn.LayerNorm) == 1 + 2 * ln_head
    assert count(critic_head, LayerNorm2d) == count(actor, LayerNorm2d) == 0
    assert (count(encoder, CReLU), count(encoder, nn.ReLU)) == (4 * crelu_encoder, 4 - 4 * crelu_encoder)
    assert (count(critic_head, CReLU), count(actor, CReLU)) == (4 * crelu_head, 2 * crelu_head)

    c = 4 if crelu_encoder else 8  # each conv's own output channels; CReLU concatenates back to 8
    conv_params = (9 * c * 9 + c) + 3 * (8 * c * 9 + c) + 4 * 2 * c * ln_encoder
    assert sum(p.numel() for p in encoder.parameters()) == conv_params
    width = 64 if crelu_head else 32  # the authors' CReLU in the MLPs doubles the features
    projection = 8 * 50 + 50 + 2 * 50

    def trunk(inputs: int) -> int:  # Linear(inputs, 32), [LN(32)], act, Linear(width, 32), [LN(32)], act
        return (inputs * 32 + 32) + (width * 32 + 32) + 2 * 2 * 32 * ln_head

    q = trunk(50 + ACTIONS) + width + 1
    assert sum(p.numel() for p in critic_head.parameters()) == projection + 2 * q
    mean_and_log_std = 2 * (width * ACTIONS + ACTIONS)
    assert sum(p.numel() for p in actor.parameters()) == projection + trunk(50) + mean_and_log_std

    batch = make_batch(True)
    x = agent.to_input(batch.obs)
    assert encoder(x).shape == (BATCH, 8)
    q1, q2 = agent.critic(x, torch.as_tensor(batch.action))
    assert q1.shape == q2.shape == (BATCH,)
    assert agent.actor(encoder(x))[0].shape == (BATCH, ACTIONS)
    stats = agent.update(batch)
    assert torch.isfinite(stats["critic_loss"]) and torch.isfinite(stats["actor_loss"])


def test_crelu_in_the_state_encoder_halves_its_units_and_refuses_odd_widths():
    agent = make_agent(network=placement("all", "encoder"))
    linear, norm = agent.critic.encoder.layers[0], agent.critic.encoder.layers[1]
    assert (linear.out_features, norm.normalized_shape) == (16, (16,))  # 16 + 16 = 32 units
    assert agent.critic.encoder(torch.zeros(BATCH, *STATE_SHAPE)).shape == (BATCH, 32)
    with pytest.raises(ValueError, match="CReLU in the encoder needs even widths .* got 7"):
        make_agent(pixels=True, encoder_channels="8-7-8-8", network=placement("encoder", "encoder"))
    with pytest.raises(ValueError, match="crelu_scope: unknown value 'neck'; valid: head, encoder, all"):
        make_agent(network=placement("encoder", "neck"))


def test_reset_reinitialises_head_layer_norm_and_sam_leaves_it_out():
    agent = make_agent(pixels=True, critic_lr=1e-2, actor_lr=1e-2, sam={"enabled": True, "rho": 0.01},
                       network=placement("all", "head"))
    sam = {p for group in agent.critic_optimizer.param_groups if group["sam"] for p in group["params"]}
    head_norms = [m for m in agent.critic.head.modules() if isinstance(m, nn.LayerNorm)]
    assert all(p in sam for p in agent.critic.encoder.parameters())
    assert not any(p in sam for m in head_norms for p in m.parameters())
    for seed in range(2):
        agent.update(make_batch(True, seed))
    touched = set(agent.reset())
    for network, prefix in ((agent.critic, "critic"), (agent.actor, "actor")):
        for name, module in network.named_modules():
            if isinstance(module, (nn.LayerNorm, LayerNorm2d)):
                in_head = not name.startswith("encoder.")
                assert (f"{prefix}.{name}.weight" in touched) == in_head, name
                assert torch.equal(module.weight, torch.ones_like(module.weight)) == in_head, name


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="valid: encoder, head, all"):
        make_agent(sam={"enabled": True, "scope": "everything"})
    with pytest.raises(ValueError, match="encoder channels"):
        make_agent(pixels=True, encoder_channels="32-x")
    with pytest.raises(ValueError, match="critic_tau"):
        make_agent(critic_tau=0.0)
    with pytest.raises(ValueError, match="observation shape"):
        DrQSACAgent(make_config(True), (3, 8), ACTIONS, torch.device("cpu"))
