"""The agents: ``RainbowAgent`` (``plastic.agents.rainbow``) and ``DrQSACAgent``
(``plastic.agents.drq_sac``), both ``Agent``s."""

from plastic.agents.base import Agent, network_states

__all__ = ["Agent", "network_states"]
