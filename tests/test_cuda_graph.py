"""train.cuda_graph: the Rainbow update replayed as one CUDA graph.

On a CPU machine only the parts that do not need a GPU run (the static-input plumbing and the
refusals); the graph itself is checked against the eager update where torch sees a GPU
(``scripts/device_checks.sh`` runs this file there).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import pytest
import torch

from plastic.agents.cuda_graph import GraphedStep, _cloned, tensors_of
from plastic.agents.drq_sac import DrQSACAgent
from plastic.agents.rainbow import RainbowAgent, UpdateRandomness
from plastic.configs import build_config
from plastic.configs.schema import TrainConfig
from reference_learner import SUITE_SHAPES, make_config, synthetic_batch
from test_drq_sac import ACTIONS, PIXEL_SHAPE, STATE_SHAPE, make_batch
from test_drq_sac import make_config as make_sac_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_static_inputs_hold_every_tensor_in_a_fixed_order():
    a, b, c = torch.arange(3.0), torch.ones(2, 2), torch.zeros(4)
    r = UpdateRandomness(online_noise={"z": (a, b), "a": (c, c)}, target_noise={}, obs_shift=b,
                         perturbed=UpdateRandomness(online_noise={}, target_noise={"x": (a, a)}))
    # dict keys sorted, dataclass fields in order, nested draws after their parent's fields
    assert [t is x for t, x in zip(tensors_of(r), [c, c, a, b, b, a, a])] == [True] * 7
    static = _cloned(r)
    assert type(static.perturbed) is UpdateRandomness and static.next_obs_shift is None
    pairs = list(zip(tensors_of(static), tensors_of(r)))
    assert len(pairs) == 7
    assert all(torch.equal(s, x) and s.data_ptr() != x.data_ptr() for s, x in pairs)
    with pytest.raises(TypeError, match="cannot hold a object"):
        tensors_of(object())


def test_cuda_graph_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="fp32 or bf16"):
        build_config("minatar", "breakout", "plastic",
                     overrides={"train.cuda_graph": True, "train.precision": "fp16"})
    shapes = SUITE_SHAPES["minatar"]
    config = make_config("minatar", "plastic", 8, "cpu", {"train.cuda_graph": True})
    with pytest.raises(ValueError, match="train.cuda_graph needs a CUDA device; this run's is cpu"):
        RainbowAgent(config, shapes["obs_shape"], 5, torch.device("cpu"))
    sac_config = sac_twin_config(pixels=False, cuda_graph=True)
    with pytest.raises(ValueError, match="train.cuda_graph needs a CUDA device; this run's is cpu"):
        DrQSACAgent(sac_config, STATE_SHAPE, ACTIONS, torch.device("cpu"))


class ReplayOnCPU(GraphedStep):
    """GraphedStep with its CUDA parts emulated: recording runs nothing and keeps the output
    tensors, a replay runs the step on the static inputs and writes those same output tensors
    (what a graph replay does). The rest of GraphedStep (warm-up count, static inputs, copies out,
    invalidation) and the agent's use of it are the code under test."""

    def _check_device(self) -> None:
        pass

    def _warm_up(self, inputs):
        return self.step(*inputs)

    def _record(self, static_inputs):
        owner = self

        class Replay:
            output: dict = {}

            def replay(self) -> None:
                fresh = owner.step(*owner._static_inputs)
                for key, tensor in fresh.items():
                    self.output.setdefault(key, torch.empty_like(tensor)).copy_(tensor)

        graph = Replay()
        return graph, graph.output


@pytest.mark.parametrize(("preset", "overrides"), [
    ("plastic", {}), ("plastic", {"fidelity": "intent"}), ("drq", {}),
])
def test_the_graphed_path_computes_the_eager_update_with_replays_emulated(preset, overrides):
    shapes = SUITE_SHAPES["minatar"]
    made = []
    for _ in range(2):
        torch.manual_seed(0)
        made.append(RainbowAgent(make_config("minatar", preset, 8, "cpu", overrides), shapes["obs_shape"],
                                 5, torch.device("cpu")))
    eager, graphed = made
    graphed._graph = ReplayOnCPU(graphed._update)
    kept = []
    for update in range(10):
        batch = synthetic_batch(shapes["obs_shape"], 5, 8, shapes["high"], seed=update)
        draws = eager.draw_randomness(8)
        a, b = eager.update(batch, copy.deepcopy(draws)), graphed.update(batch, copy.deepcopy(draws))
        kept.append((a, b))
        for p, q in zip(eager.online.parameters(), graphed.online.parameters()):
            assert torch.equal(p, q)
        if update == 4:
            for agent in (eager, graphed):
                torch.manual_seed(1)  # the same re-initialisation for both
                agent.reset()
    assert graphed._graph.captures == 2 and graphed.updates == 10  # recorded at updates 4 and 9
    # every update's statistics are its own, not overwritten by the replays after it
    for a, b in kept:
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)


def _agent(preset: str, suite: str, batch_size: int, overrides: dict | None,
           cuda_graph: bool) -> RainbowAgent:
    torch.manual_seed(0)
    config = make_config(suite, preset, batch_size, "cuda",
                         {"train.cuda_graph": cuda_graph, **(overrides or {})})
    agent = RainbowAgent(config, SUITE_SHAPES[suite]["obs_shape"], 5, torch.device("cuda"))
    if not cuda_graph:
        for group in agent.optimizer.param_groups:  # Adam's arithmetic as its graphed twin's
            group["capturable"] = True
    return agent


def _twins(preset: str, suite: str, batch_size: int,
           overrides: dict | None = None) -> tuple[RainbowAgent, RainbowAgent]:
    return tuple(_agent(preset, suite, batch_size, overrides, graphed) for graphed in (False, True))


def _assert_parameters_agree(eager: Iterable[torch.Tensor], graphed: Iterable[torch.Tensor],
                             lr: float) -> None:
    """The two agents' weights after the same updates, up to the GPU's rounding.

    The weights are not equal on a GPU: cuDNN's convolution backward and scatter_add sum with
    atomics (an order that differs from run to run), recorded convolutions may use other cuDNN
    algorithms than eager ones, and Adam turns a near-zero gradient of the other sign into a whole
    step of the other sign (≈ lr in its first updates). Measured on an H200 after 10 Atari `drq`
    updates: 0.105 % and 0.21 % of 6.8M weights outside 1e-5 + 1e-4·|w| (two eager agents: 0.03 %),
    once 1 weight of 512 1.5e-4 apart at lr 1e-4. A graph that replays a stale batch, skips the
    optimizer step or misses its re-recording at a Reset moves most weights (48-96 % on a CPU): so
    at most 1 % outside, and none further apart than a few sign-flipped Adam steps."""
    p = torch.cat([t.detach().flatten() for t in eager])
    q = torch.cat([t.detach().flatten() for t in graphed])
    difference = (q - p).abs()
    share = (difference > 1e-5 + 1e-4 * p.abs()).float().mean().item()
    assert share <= 1e-2, f"{share:.2%} of {p.numel()} weights differ"
    assert difference.max().item() <= 10 * lr, (difference.max().item(), lr)


@needs_cuda
@pytest.mark.parametrize(("suite", "preset", "overrides"), [
    ("minatar", "plastic", {}), ("minatar", "plastic", {"fidelity": "intent"}), ("atari", "drq", {}),
    ("minatar", "plastic", {"train.precision": "bf16"}),
])
def test_the_graphed_update_computes_the_eager_update(suite, preset, overrides):
    """Same weights, batches and draws: warm-up, capture and replays give the eager agent's
    losses, priorities and parameters, across a Reset (which records the graph again)."""
    shapes = SUITE_SHAPES[suite]
    eager, graphed = _twins(preset, suite, 16, overrides)
    for update in range(10):
        batch = synthetic_batch(shapes["obs_shape"], 5, 16, shapes["high"], seed=update)
        draws = eager.draw_randomness(16)
        a, b = eager.update(batch, copy.deepcopy(draws)), graphed.update(batch, copy.deepcopy(draws))
        close = dict(rtol=1e-3, atol=1e-4)  # the GPU's summation order (see below); stale: ≫ 1e-3
        torch.testing.assert_close(b["loss"], a["loss"], **close)
        torch.testing.assert_close(b["priority"], a["priority"], **close)
        _assert_parameters_agree(eager.online.parameters(), graphed.online.parameters(),
                                 eager.optimizer.param_groups[0]["lr"])
        if update == 4:
            for agent in (eager, graphed):
                torch.manual_seed(1)  # the same re-initialisation for both
                agent.reset()
    assert graphed._graph.captures == 2  # at the 4th update, and at the 4th after the Reset
    assert graphed.updates == eager.updates == 10


@needs_cuda
def test_returned_statistics_are_not_overwritten_by_the_next_replay():
    shapes = SUITE_SHAPES["minatar"]
    _, graphed = _twins("drq", "minatar", 8)
    kept = []
    for update in range(6):
        kept.append(graphed.update(synthetic_batch(shapes["obs_shape"], 5, 8, shapes["high"], seed=update)))
    losses = [s["loss"].item() for s in kept]
    assert len(set(losses)) == len(losses)  # each update's own loss, not the last replay's six times



def _acting_twins(device: str, graphed: bool) -> tuple[RainbowAgent, RainbowAgent]:
    shapes, made = SUITE_SHAPES["minatar"], []
    for cuda_graph in (False, graphed):
        torch.manual_seed(0)
        config = make_config("minatar", "plastic", 8, device, {"train.cuda_graph": cuda_graph})
        made.append(RainbowAgent(config, shapes["obs_shape"], 5, torch.device(device)))
    return made[0], made[1]


def _act_alongside(eager: RainbowAgent, graphed: RainbowAgent, check, after_reset=lambda: None) -> None:
    """Both agents act on the same observations between identical updates, across a Reset."""
    shapes = SUITE_SHAPES["minatar"]
    rng = np.random.default_rng(0)
    for step in range(12):
        obs = rng.integers(0, 2, (1, *shapes["obs_shape"]), dtype=np.uint8)
        for network, noise in ((eager.target, True), (eager.online, False)):
            name = "target" if network is eager.target else "online"
            check(eager.q_values(obs, network=network, noise=noise),
                  graphed.q_values(obs, network=getattr(graphed, name), noise=noise))
        batch = synthetic_batch(shapes["obs_shape"], 5, 8, shapes["high"], seed=step)
        draws = eager.draw_randomness(8)
        eager.update(batch, copy.deepcopy(draws))
        graphed.update(batch, copy.deepcopy(draws))
        if step == 7:
            for agent in (eager, graphed):
                torch.manual_seed(1)
                agent.reset()
            after_reset()


def test_acting_one_observation_replays_a_graph_per_network_and_noise_emulated():
    eager, graphed = _acting_twins("cpu", graphed=False)
    graphed._act_graphs, graphed._new_graph = {}, ReplayOnCPU

    def check(a, b):
        assert torch.equal(a, b)

    resets = []

    def after_reset():
        assert graphed._act_graphs == {}  # the Reset forgot them
        resets.append(True)

    _act_alongside(eager, graphed, check, after_reset)
    assert resets == [True]
    # two graphs (the target with noise, the online without), made again after the Reset and
    # recorded at their 4th use since
    assert {key: g.captures for key, g in graphed._act_graphs.items()} == {(True, True): 1, (False, False): 1}
    batch_of_two = np.zeros((2, *SUITE_SHAPES["minatar"]["obs_shape"]), np.uint8)
    graphed.q_values(batch_of_two, network=graphed.target, noise=False)  # evaluation's batches: eager
    assert len(graphed._act_graphs) == 2


@needs_cuda
def test_graphed_acting_gives_the_eager_q_values():
    eager, graphed = _acting_twins("cuda", graphed=True)
    for group in eager.optimizer.param_groups:
        group["capturable"] = True

    def check(a, b):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)

    _act_alongside(eager, graphed, check)
    assert sorted(graphed._act_graphs) == [(False, False), (True, True)]


# ------------------------------------------------------------------------------ DrQ with SAC
def sac_twin_config(pixels: bool, cuda_graph: bool = False):
    """The DMC agent as PLASTIC runs it (SAM on the encoder, a Reset), with the target and the
    actor stepped every second update, so that an update takes one of two paths."""
    config = make_sac_config(pixels, sam={"enabled": True, "rho": 0.1},
                             reset={"enabled": True, "interval": 5},
                             actor_update_every=2, target_update_every=2)
    config.train = TrainConfig(replay_ratio=1.0, cuda_graph=cuda_graph)
    return config


def _sac_parameters(agent: DrQSACAgent) -> list[torch.Tensor]:
    return [*agent.critic.parameters(), *agent.target_critic.parameters(), *agent.actor.parameters(),
            agent.log_alpha]


@pytest.mark.parametrize("pixels", [False, True])
def test_the_graphed_sac_paths_compute_the_eager_update_with_replays_emulated(pixels):
    """One graph per path (actor and target stepped or not), each warmed up and recorded on its
    own, forgotten at a Reset; fed the same draws, the replays give the eager update exactly."""
    made = []
    for _ in range(2):
        torch.manual_seed(0)
        made.append(DrQSACAgent(sac_twin_config(pixels), PIXEL_SHAPE if pixels else STATE_SHAPE,
                                ACTIONS, torch.device("cpu")))
    eager, graphed = made
    graphed._graphs, graphed._new_graph = {}, ReplayOnCPU
    captures = []
    for update in range(12):
        batch = make_batch(pixels, seed=update)
        draws = eager.draw_randomness(len(batch.action))
        a, b = eager.update(batch, copy.deepcopy(draws)), graphed.update(batch, copy.deepcopy(draws))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert ("actor_loss" in b) == (update % 2 == 1)  # updates 2, 4, ... step the actor
        for p, q in zip(_sac_parameters(eager), _sac_parameters(graphed)):
            assert torch.equal(p, q)
        captures.append({path: g.captures for path, g in graphed._graphs.items()})
        if update == 7:
            for agent in (eager, graphed):
                torch.manual_seed(1)
                agent.reset()
            assert graphed._graphs == {}
    # each path recorded at its 4th update (3 eager warm-ups), again at its 4th after the Reset
    assert captures[6] == {(False, False): 1, (True, True): 0}
    assert captures[7] == {(False, False): 1, (True, True): 1}
    assert captures[11] == {(False, False): 0, (True, True): 0}  # after the Reset: warming up


@needs_cuda
@pytest.mark.parametrize("pixels", [False, True])
def test_the_graphed_sac_update_computes_the_eager_update(pixels):
    made = []
    for cuda_graph in (False, True):
        torch.manual_seed(0)
        made.append(DrQSACAgent(sac_twin_config(pixels, cuda_graph), PIXEL_SHAPE if pixels else STATE_SHAPE,
                                ACTIONS, torch.device("cuda")))
    eager, graphed = made
    groups = [g for o in (eager.critic_optimizer, eager.actor_optimizer, eager.alpha_optimizer)
              for g in o.param_groups]
    for group in groups:  # Adam's arithmetic as its graphed twin's
        group["capturable"] = True
    learning_rate = max(group["lr"] for group in groups)
    for update in range(12):
        batch = make_batch(pixels, seed=update)
        draws = eager.draw_randomness(len(batch.action))
        a, b = eager.update(batch, copy.deepcopy(draws)), graphed.update(batch, copy.deepcopy(draws))
        torch.testing.assert_close(b["critic_loss"], a["critic_loss"], rtol=1e-3, atol=1e-4)
        _assert_parameters_agree(_sac_parameters(eager), _sac_parameters(graphed), learning_rate)
        if update == 7:
            for agent in (eager, graphed):
                torch.manual_seed(1)
                agent.reset()
    assert sorted(graphed._graphs) == [(False, False), (True, True)]
