"""Golden fixture of the Atari replay, made by running the PLASTIC authors' own ``PERBuffer``.

Their code never enters our repository; this script imports their ``PERBuffer``
(atari/src/agents/buffers/per_buffer.py) from a checkout and records what it stores and samples.
To get the checkout, fetch github.com/dojeon-ai/PLASTIC (e.g. with the search tool's ``fetch``)
and export it outside our repo::

    mkdir -p /work/authors && git --git-dir=MIRROR archive HEAD | tar -x -C /work/authors
    .venv/bin/pip install einops omegaconf dotmap        # their package's imports
    PLASTIC_AUTHORS_DIR=/work/authors .venv/bin/python tests/golden/generate_replay.py

The stream: episodes of 13, 4, 25, 1, 20, 15 and 9+ steps of 3x3 uint8 frames, stacked 4 deep with
zeros before an episode's first frame (their env's stack), random actions and clipped rewards, a
terminal at each episode's end, stored as their training loop stores it (``store(obs, action,
reward, done, next_obs)``, 10-step returns, gamma 0.99, priority exponent 0.5). Recorded at two
points where both buffers hold the same transitions (a terminal followed by n - 1 steps): every
transition they emitted (obs, action, n-step return, done, next obs); then, after priorities are set
on six transitions and the stream goes on, every transition's sum-tree value and their max; then
one ``sample(8)`` (its uniform draws, data indices, importance weights and exponent).
``fixtures/replay/per.npz``; running the script again gives an identical file.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "replay" / "per.npz"
EPISODES = (13, 4, 25, 1, 20, 15)  # then 9 steps of a seventh (n - 1: both buffers agree there)
N_STEP, GAMMA, EXPONENT, STACK, BATCH = 10, 0.99, 0.5, 4, 8
FIRST_PART = sum(EPISODES[:5]) + N_STEP - 1  # a terminal, then n - 1 steps
PRIORITIES = {0: 0.25, 5: 4.0, 12: 0.5, 20: 1.0, 44: 0.09, 60: 2.25}  # transition -> raw priority


def stream() -> dict[str, np.ndarray]:
    """Frames, actions, rewards and terminals of every step, and each step's stacked observation."""
    rng = np.random.default_rng(0)
    lengths = [*EPISODES, N_STEP - 1]
    steps = sum(lengths)
    frames = rng.integers(0, 256, (steps, 3, 3), dtype=np.uint8)
    terminal = np.zeros(steps, dtype=bool)
    terminal[np.cumsum(EPISODES) - 1] = True
    stacks = np.zeros((steps, STACK, 3, 3), dtype=np.uint8)
    start = 0
    for length in lengths:
        for k in range(length):
            for back in range(min(k, STACK - 1) + 1):
                stacks[start + k, STACK - 1 - back] = frames[start + k - back]
        start += length
    return {"frames": frames, "stacks": stacks, "actions": rng.integers(0, 6, steps),
            "rewards": rng.choice([-1.0, 0.0, 1.0], steps), "terminal": terminal}


def import_per_buffer(root: Path) -> type:
    for name in ("wandb", "gym", "kornia", "kornia.augmentation"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["kornia"].augmentation = sys.modules["kornia.augmentation"]
    sys.path.insert(0, str(root / "atari"))
    from src.agents.buffers.per_buffer import PERBuffer

    return PERBuffer


def main() -> None:
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root:
        sys.exit("Set PLASTIC_AUTHORS_DIR to a checkout of github.com/dojeon-ai/PLASTIC (see the docstring)")
    PERBuffer = import_per_buffer(Path(root))
    data = stream()
    steps = len(data["terminal"])
    buffer = PERBuffer(size=1000, n_step=N_STEP, gamma=GAMMA, prior_exp=EXPONENT,
                       prior_weight_scheduler={"initial_value": 0.4, "final_value": 1.0, "step_size": 10},
                       device="cpu")

    def store(t: int) -> None:  # their observations are (frames, channels, height, width)
        next_obs = data["stacks"][t + 1] if t + 1 < steps else data["stacks"][t]
        buffer.store(data["stacks"][t][:, None], int(data["actions"][t]), float(data["rewards"][t]),
                     bool(data["terminal"][t]), next_obs[:, None])

    for t in range(FIRST_PART):
        store(t)
    emitted = list(buffer.transitions.transitions)  # in order: transition t is entry t
    obs, action, _, returns, done, next_obs = (np.array(x) for x in zip(*emitted))
    tree = buffer.transitions
    index = np.array(sorted(PRIORITIES))
    buffer.update_priorities(index + tree.tree_start, np.array([PRIORITIES[t] for t in index]))
    for t in range(FIRST_PART, steps):
        store(t)
    count = len(tree.transitions)
    np.random.seed(3)
    fractions = np.random.uniform(0.0, 1.0, BATCH)  # what sample() draws next, as fractions
    np.random.seed(3)
    batch = buffer.sample(BATCH)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        FIXTURE, **{k: v for k, v in data.items() if k != "stacks"},
        first_part=FIRST_PART, n_step=N_STEP, gamma=GAMMA, exponent=EXPONENT, stack=STACK,
        emitted_obs=obs[:, :, 0], emitted_action=action, emitted_return=returns, emitted_done=done,
        emitted_next_obs=next_obs[:, :, 0], priority_index=index,
        priority_value=np.array([PRIORITIES[t] for t in index]),
        leaves=tree.sum_tree[tree.tree_start:tree.tree_start + count].copy(), max_leaf=tree.max,
        fractions=fractions, sampled=np.asarray(batch["idxs"]) - tree.tree_start,
        weights=batch["weights"].numpy(), beta=batch["prior_weight"])
    print(f"{FIXTURE}: {len(emitted)} transitions after {FIRST_PART} steps, {count} after {steps}")


if __name__ == "__main__":
    main()
