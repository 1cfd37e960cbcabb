"""Exact snapshots of whole environments, for checkpoint/resume that continues bit for bit.

``get_env_state(env)`` walks the wrapper chain from ``env`` down to ``env.unwrapped`` (Gymnasium
1.x wrappers do not forward attributes) and collects every layer's state: our own wrappers and
envs define ``get_state()`` / ``set_state(state)``; a few Gymnasium wrappers
(``FrameStackObservation``, ``TimeLimit``) are handled here. Either the base env is one of ours
(``DMCEnv``) or the wrapper directly above it is: its state includes the base env's (emulator,
game objects, random streams). A layer that is
neither ours nor known here is refused rather than silently left out of the snapshot.

A state holds only plain Python values, numpy arrays and bytes, so it pickles and loads in a
fresh process without the env packages' classes.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation, TimeLimit

STATE_FORMAT = "plastic.env_state/1"


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """A picklable snapshot of ``env`` (all wrapper layers and the base env)."""
    layers = _wrapper_layers(env)
    states = []
    for layer in layers:
        state = layer.get_state() if _has_own_state(layer) else _ADAPTERS[type(layer)].get(layer)
        states.append({"layer": type(layer).__name__, "state": state})
    return {"format": STATE_FORMAT, "layers": states}


def set_env_state(env: gym.Env, state: Mapping[str, Any]) -> None:
    """Restore a snapshot from :func:`get_env_state` into ``env``, made with the same arguments.

    Raises ``ValueError`` (and leaves ``env`` unchanged) if the snapshot comes from a different
    wrapper chain, game or configuration.
    """
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise ValueError(
            f"Not an environment state made by get_env_state (expected format {STATE_FORMAT!r})"
        )
    layers = _wrapper_layers(env)
    saved_names = [entry["layer"] for entry in state["layers"]]
    names = [type(layer).__name__ for layer in layers]
    if saved_names != names:
        raise ValueError(
            f"The state was taken from an env with wrapper layers {saved_names}, "
            f"but this env has {names}"
        )
    pairs = [(layer, entry["state"]) for layer, entry in zip(layers, state["layers"], strict=True)]
    # Check the Gymnasium layers first and restore them last, so that any mismatch is found
    # before anything changes (our own set_state methods check before they write).
    for layer, layer_state in pairs:
        if not _has_own_state(layer):
            _ADAPTERS[type(layer)].check(layer, layer_state)
    for layer, layer_state in pairs:
        if _has_own_state(layer):
            layer.set_state(layer_state)
    for layer, layer_state in pairs:
        if not _has_own_state(layer):
            _ADAPTERS[type(layer)].apply(layer, layer_state)


def check_same_config(kind: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every setting where a snapshot differs from the env."""
    keys = sorted(set(saved) | set(current))
    differences = [
        f"{key}: state has {saved.get(key)!r}, env has {current.get(key)!r}"
        for key in keys
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(
            f"The {kind} state was taken from a different game or configuration than this env "
            f"({'; '.join(differences)}); make the env with the same arguments as the saved one"
        )


def generator_state(generator: np.random.Generator | None) -> dict[str, Any] | None:
    """The bit-generator state of a numpy ``Generator`` (a plain dict), or None."""
    return None if generator is None else generator.bit_generator.state


def generator_from_state(state: dict[str, Any] | None) -> np.random.Generator | None:
    """A numpy ``Generator`` continuing exactly from ``generator_state``'s output."""
    if state is None:
        return None
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _has_own_state(layer: gym.Env) -> bool:
    # Looked up on the class: a wrapper that forwarded attributes to its inner env would
    # otherwise seem to have the inner layer's methods.
    return callable(getattr(type(layer), "get_state", None)) and callable(
        getattr(type(layer), "set_state", None)
    )


def _wrapper_layers(env: gym.Env) -> list[gym.Env]:
    """The wrappers from ``env`` inwards, after checking that each one can be snapshotted."""
    layers = []
    layer = env
    while isinstance(layer, gym.Wrapper):
        if not (_has_own_state(layer) or type(layer) in _ADAPTERS):
            raise ValueError(
                f"Cannot snapshot wrapper {type(layer).__name__}: it defines no get_state/"
                f"set_state and is not one of the Gymnasium wrappers handled here "
                f"({', '.join(cls.__name__ for cls in _ADAPTERS)})"
            )
        layers.append(layer)
        layer = layer.env
    if _has_own_state(layer):  # a base env that snapshots itself
        layers.append(layer)
    if not layers or not _has_own_state(layers[-1]):
        raise ValueError(
            f"Cannot snapshot the base env {type(layer).__name__}: it, or the wrapper directly "
            "around it, must be one of plastic's envs (DMCEnv, AtariProtocol, MinAtarProtocol)"
        )
    return layers


class _Adapter(NamedTuple):
    """How to snapshot a Gymnasium wrapper that has no get_state/set_state of its own."""

    get: Callable[[Any], dict[str, Any]]
    check: Callable[[Any, dict[str, Any]], None]
    apply: Callable[[Any, dict[str, Any]], None]


def _frame_stack_get(layer: FrameStackObservation) -> dict[str, Any]:
    return {
        "config": {"stack_size": int(layer.stack_size), "padding_type": layer.padding_type},
        "padding_value": copy.deepcopy(layer.padding_value),
        "frames": copy.deepcopy(list(layer.obs_queue)),
    }


def _frame_stack_check(layer: FrameStackObservation, state: dict[str, Any]) -> None:
    current = {"stack_size": int(layer.stack_size), "padding_type": layer.padding_type}
    check_same_config("FrameStackObservation", state["config"], current)
    if len(state["frames"]) != layer.stack_size:
        raise ValueError(
            f"FrameStackObservation state holds {len(state['frames'])} frames, "
            f"the env stacks {layer.stack_size}"
        )


def _frame_stack_set(layer: FrameStackObservation, state: dict[str, Any]) -> None:
    # padding_value changes at every reset when padding_type == "reset", so it is state too.
    layer.padding_value = copy.deepcopy(state["padding_value"])
    layer.obs_queue = deque(copy.deepcopy(state["frames"]), maxlen=layer.stack_size)


def _time_limit_get(layer: TimeLimit) -> dict[str, Any]:
    return {
        "config": {"max_episode_steps": layer._max_episode_steps},
        "elapsed_steps": layer._elapsed_steps,
    }


def _time_limit_check(layer: TimeLimit, state: dict[str, Any]) -> None:
    current = {"max_episode_steps": layer._max_episode_steps}
    check_same_config("TimeLimit", state["config"], current)


def _time_limit_set(layer: TimeLimit, state: dict[str, Any]) -> None:
    layer._elapsed_steps = state["elapsed_steps"]


_ADAPTERS: dict[type, _Adapter] = {
    FrameStackObservation: _Adapter(_frame_stack_get, _frame_stack_check, _frame_stack_set),
    TimeLimit: _Adapter(_time_limit_get, _time_limit_check, _time_limit_set),
}
