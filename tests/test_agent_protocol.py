"""Both agents are ``Agent``s, and the training loop uses nothing of an agent but the protocol."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from plastic import suites
from plastic.agents import Agent, network_states
from plastic.agents.drq_sac import DrQSACAgent
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import build_config
from plastic.train.logger import read_csv
from plastic.train.loop import train

MEMBERS = {n for n in vars(Agent) if not n.startswith("_")} | set(Agent.__annotations__)


def rainbow() -> RainbowAgent:
    config = build_config("minatar", "breakout", "plastic", overrides={"agent.batch_size": 8})
    return RainbowAgent(config, (4, 10, 10), 3, torch.device("cpu"))


def drq_sac() -> DrQSACAgent:
    config = build_config("dmc", "cartpole-swingup", "plastic", overrides={
        "env.obs": "state", "sac.batch_size": 8, "sac.hidden": 32})
    return DrQSACAgent(config, (5,), 1, torch.device("cpu"))


def test_the_protocol_is_what_the_loop_needs():
    assert sorted(MEMBERS) == ["act", "load_state_dict", "networks", "plasticity_modules", "reset",
                               "state_dict", "update", "updates"]


@pytest.mark.parametrize("make", [rainbow, drq_sac])
def test_both_agents_implement_the_protocol(make):
    agent = make()
    assert isinstance(agent, Agent)
    for name in MEMBERS - {"updates"}:
        wanted = inspect.signature(getattr(Agent, name)).parameters
        has = inspect.signature(getattr(agent, name)).parameters
        for parameter in list(wanted.values())[1:]:  # after self
            assert parameter.name in has, (name, parameter.name)
            assert has[parameter.name].kind == parameter.kind, (name, parameter.name)
            assert has[parameter.name].default == parameter.default, (name, parameter.name)


@pytest.mark.parametrize(("make", "names"), [(rainbow, {"online", "target"}),
                                             (drq_sac, {"actor", "critic", "critic_target"})])
def test_network_states_are_the_networks_state_dicts(make, names):
    agent = make()
    states = network_states(agent)
    assert set(states) == names  # the keys of final_model.pt
    for name, module in agent.networks().items():
        assert states[name].keys() == module.state_dict().keys()
        assert all(torch.equal(v, module.state_dict()[k]) for k, v in states[name].items())


class ProtocolOnly:
    """An agent seen through the protocol: anything else is an error."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def __getattr__(self, name: str):
        if name not in MEMBERS:
            raise AttributeError(f"the loop used agent.{name}, which is not in the Agent protocol")
        return getattr(self._agent, name)


TINY = {
    "minatar": ("breakout", "drq+reset", {
        "train.steps": 160, "train.learning_starts": 100, "train.replay_ratio": 0.5,
        "agent.batch_size": 8, "agent.replay_capacity": 500, "network.hidden": 16,
        "train.eval_episodes": 1, "train.eval_envs": 1, "env.max_episode_steps": 50,
        "train.log_interval": 40, "train.metrics_interval": 120, "train.checkpoint_interval": 150,
        "reset.interval": 10}),
    "dmc": ("cartpole-swingup", "plastic", {
        "env.obs": "state", "train.steps": 160, "train.learning_starts": 100,
        "train.replay_ratio": 0.5, "sac.batch_size": 8, "sac.hidden": 32,
        "sac.replay_capacity": 500, "train.eval_episodes": 1, "train.eval_envs": 1,
        "train.eval_interval": 0, "train.log_interval": 40, "train.metrics_interval": 120,
        "train.checkpoint_interval": 150, "reset.interval": 10, "reset.interval_unit": "updates"}),
}


@pytest.mark.parametrize("suite", sorted(TINY))
def test_the_loop_uses_only_the_protocol(suite, tmp_path, monkeypatch):
    runtime = suites.SUITES[suite]
    build = runtime.agent.build
    kind = dataclasses.replace(runtime.agent, build=lambda *args: ProtocolOnly(build(*args)))
    monkeypatch.setitem(suites.SUITES, suite, dataclasses.replace(runtime, agent=kind))
    game, preset, overrides = TINY[suite]
    summary = train(build_config(suite, game, preset, overrides=overrides), tmp_path, progress=False)
    assert summary["updates"] == 30 and summary["resets"] == 3
    assert [r["updates"] for r in read_csv(tmp_path / "resets.csv")] == [10, 20, 30]
    assert read_csv(tmp_path / "plasticity.csv")  # plasticity_modules served the metrics
