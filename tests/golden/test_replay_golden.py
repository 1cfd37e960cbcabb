"""Our replay against what the authors' ``PERBuffer`` stored and sampled from the same stream.

The fixture comes from tests/golden/generate_replay.py. Their buffer stores whole observations and
builds each n-step transition once its window is full; ours stores each frame once and rebuilds
stacks and returns when sampling. Fed the same steps, every transition they hold must be ours to
the bit (stacks, action, done), its n-step return to float32 rounding, and prioritized sampling must
pick the same transitions with the same importance weights from the same uniform draws.

Compared where both hold the same transitions (a terminal, then n - 1 steps). Elsewhere the two
differ in *when* a transition becomes sampleable, not in what it is: theirs after the n-th step of
its window is stored (its next observation comes in that step's tuple), ours once the frame after
the window is stored, one step later; and a window cut by a terminal is sampleable in ours at the
terminal, in theirs only when n steps have passed since its start. A new transition takes the
maximum priority of that moment in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plastic.replay.buffer import ReplayBuffer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "replay" / "per.npz"


class Draws:
    """Stands in for the buffer's generator: hands out the uniform draws their sample() used."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def random(self, size: int) -> np.ndarray:
        assert size == self.values.size
        return self.values


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as archive:
        return {key: archive[key] for key in archive}


def fill(buffer: ReplayBuffer, golden: dict[str, np.ndarray], steps: range) -> None:
    for t in steps:
        terminal = bool(golden["terminal"][t])
        buffer.add(golden["frames"][t], int(golden["actions"][t]), float(golden["rewards"][t]),
                   terminal=terminal, episode_end=terminal)


def test_the_transitions_and_priority_sampling_match_the_authors_buffer(golden):
    buffer = ReplayBuffer(1000, (3, 3), frame_stack=int(golden["stack"]), n_step=int(golden["n_step"]),
                          gamma=float(golden["gamma"]), prioritized=True,
                          priority_exponent=float(golden["exponent"]), stack_padding="zero")
    first = int(golden["first_part"])
    fill(buffer, golden, range(first))
    count = len(golden["emitted_action"])
    assert buffer.num_valid == count  # the same transitions: 0 .. count - 1, slot = step
    ours = buffer._gather(np.arange(count), np.ones(count, dtype=np.float32))
    np.testing.assert_array_equal(ours.obs, golden["emitted_obs"])
    np.testing.assert_array_equal(ours.action, golden["emitted_action"])
    done = golden["emitted_done"].astype(bool)
    assert done.any() and not done.all()
    np.testing.assert_array_equal(ours.discount == 0, done)
    np.testing.assert_allclose(ours.discount[~done], float(golden["gamma"]) ** int(golden["n_step"]),
                               rtol=1e-6)
    np.testing.assert_allclose(ours.reward, golden["emitted_return"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ours.next_obs[~done], golden["emitted_next_obs"][~done])

    # priorities set on six transitions, then the stream goes on: new ones enter at the maximum
    buffer.update_priorities(golden["priority_index"], golden["priority_value"])
    fill(buffer, golden, range(first, len(golden["terminal"])))
    leaves = golden["leaves"]
    assert buffer.num_valid == leaves.size
    np.testing.assert_allclose(buffer._tree.get(np.arange(leaves.size)), leaves, rtol=1e-6)
    assert buffer._max_priority ** float(golden["exponent"]) == pytest.approx(float(golden["max_leaf"]))
    assert len(set(leaves.round(6))) > 3  # the priorities made a difference to sample from

    batch = buffer.sample(golden["sampled"].size, beta=float(golden["beta"]), rng=Draws(golden["fractions"]))
    np.testing.assert_array_equal(batch.index, golden["sampled"])
    # theirs adds 1e-5 to 1 / (N P) before the exponent: a relative 1e-5 at most here
    np.testing.assert_allclose(batch.weight, golden["weights"], rtol=1e-4)
    assert batch.weight.min() < 0.9  # a high-priority transition was drawn and weighted down
