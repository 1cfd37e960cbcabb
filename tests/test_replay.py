"""Replay buffer and sum tree against brute-force references."""

from __future__ import annotations

import copy
import math
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from plastic.replay import ReplayBuffer, SumTree

GAMMA = 0.9


# ---------------------------------------------------------------------------- recorded episodes
@dataclass
class Step:
    episode: int
    step: int  # index within its episode
    frame: np.ndarray
    action: np.ndarray
    reward: float
    terminal: bool
    episode_end: bool


def record_episodes(
    rng: np.random.Generator,
    frame_shape: tuple[int, ...],
    frame_dtype: type,
    action_shape: tuple[int, ...],
    action_dtype: type,
    num_episodes: int = 14,
) -> list[Step]:
    """Episodes of random lengths; frames encode (episode, step) in their first two values.

    The first episodes are fixed so that every case is present: episodes shorter than the stack
    and than n, a long truncated one, a short truncated one. Later episodes end in a terminal or
    (1 in 5) a truncation; learning-only terminals (life losses) appear inside episodes; the last
    episode is still running.
    """
    lengths = [1, 2, 13, 3, 2] + list(rng.integers(1, 20, size=num_episodes - 5))
    ends = ["terminal", "terminal", "truncated", "terminal", "truncated"] + [
        "truncated" if rng.random() < 0.2 else "terminal" for _ in range(num_episodes - 5)
    ]
    ends[-1] = "running"
    steps = []
    for episode, (length, end) in enumerate(zip(lengths, ends, strict=True)):
        for i in range(length):
            if np.issubdtype(frame_dtype, np.integer):
                frame = rng.integers(0, 256, size=frame_shape).astype(frame_dtype)
                codes = [episode % 256, i % 256]
            else:
                frame = rng.standard_normal(frame_shape).astype(frame_dtype)
                codes = [episode, i]
            frame.flat[: len(codes)] = codes[: frame.size]
            if np.issubdtype(action_dtype, np.integer):
                action = np.asarray(rng.integers(0, 6, size=action_shape), dtype=action_dtype)
            else:
                action = rng.uniform(-1, 1, size=action_shape).astype(action_dtype)
            last = i == length - 1
            life_loss = not last and rng.random() < 0.07
            steps.append(
                Step(
                    episode=episode,
                    step=i,
                    frame=frame,
                    action=action,
                    reward=float(rng.integers(-4, 5)) / 2,
                    terminal=life_loss or (last and end == "terminal"),
                    episode_end=last and end != "running",
                )
            )
    return steps


def stack_frames(frames: list[np.ndarray], frame_shape: tuple[int, ...]) -> np.ndarray:
    if len(frames) == 1:
        return frames[0]
    if len(frame_shape) == 2:
        return np.stack(frames)
    return np.concatenate(frames)


def brute_force_reference(
    steps: list[Step], capacity: int, stack: int, n: int, gamma: float, padding: str = "zero"
) -> dict[int, dict]:
    """Every sampleable transition, keyed by buffer slot, computed with plain loops."""
    num_added = len(steps)
    oldest = max(0, num_added - capacity)
    episodes: dict[int, list[int]] = {}
    for g, s in enumerate(steps):
        episodes.setdefault(s.episode, []).append(g)
    frame_shape = steps[0].frame.shape

    def observation(ep: list[int], i: int) -> tuple[np.ndarray, int]:
        frames, earliest = [], ep[i]
        for back in range(stack - 1, -1, -1):
            if i - back < 0 and padding == "zero":
                frames.append(np.zeros_like(steps[0].frame))
            elif i - back < 0:  # "first": the episode's first frame, as DMC's stack at reset
                frames.append(steps[ep[0]].frame)
            else:
                frames.append(steps[ep[i - back]].frame)
                earliest = min(earliest, ep[i - back])
        return stack_frames(frames, frame_shape), earliest

    reference = {}
    for g in range(oldest, num_added):
        ep, i = episodes[steps[g].episode], steps[g].step
        reward, discount, next_i = 0.0, None, None
        for k in range(n):
            if i + k >= len(ep):  # the episode has not got that far yet
                break
            s = steps[ep[i + k]]
            reward += gamma**k * s.reward
            if s.terminal:  # documented: next_obs is then the stack at the terminal step itself
                discount, next_i = 0.0, i + k
                break
            if s.episode_end:  # truncated: no frame after it is ever stored
                break
        else:
            if i + n < len(ep):
                discount, next_i = gamma**n, i + n
        if discount is None:
            continue
        obs, earliest = observation(ep, i)
        if earliest < oldest:  # its stack reads an overwritten frame
            continue
        reference[g % capacity] = {
            "obs": obs,
            "action": steps[g].action,
            "reward": reward,
            "discount": discount,
            "next_obs": observation(ep, next_i)[0],
        }
    return reference


def fill(buffer: ReplayBuffer, steps: list[Step]) -> None:
    for s in steps:
        buffer.add(s.frame, s.action, s.reward, s.terminal, s.episode_end)


def check_against_reference(buffer: ReplayBuffer, reference: dict[int, dict]) -> None:
    assert buffer.num_valid == len(reference)
    slots = sorted(reference)
    row_of_slot = np.full(buffer.capacity, -1)
    row_of_slot[slots] = np.arange(len(slots))
    ref = {key: np.stack([reference[s][key] for s in slots]) for key in ("obs", "action")}
    ref["reward"] = np.array([reference[s]["reward"] for s in slots])
    ref["discount"] = np.array([reference[s]["discount"] for s in slots])
    ref["next_obs"] = np.stack([reference[s]["next_obs"] for s in slots])
    sampled = set()
    for _ in range(25):
        batch = buffer.sample(min(64, len(reference)))
        assert batch.obs.shape[1:] == buffer.obs_shape == ref["obs"].shape[1:]
        assert batch.obs.dtype == ref["obs"].dtype and batch.action.dtype == ref["action"].dtype
        rows = row_of_slot[batch.index]
        assert np.all(rows >= 0), f"sampled unsampleable slots {batch.index[rows < 0]}"
        np.testing.assert_array_equal(batch.obs, ref["obs"][rows])
        np.testing.assert_array_equal(batch.action, ref["action"][rows])
        np.testing.assert_allclose(batch.reward, ref["reward"][rows], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(batch.discount, ref["discount"][rows], rtol=1e-6)
        np.testing.assert_array_equal(batch.next_obs, ref["next_obs"][rows])
        sampled.update(batch.index.tolist())
    # Every sampleable transition turns up (each has >= 1/len(reference) odds in every draw).
    assert sampled == set(reference)


CASES = {
    # name: frame_shape, frame_dtype, stack, n, capacity, action_shape, action_dtype, padding
    "atari-like stack4 n3": ((6, 6), np.uint8, 4, 3, 1000, (), np.int64, "zero"),
    "stack4 n1 wrap": ((6, 6), np.uint8, 4, 1, 37, (), np.int64, "zero"),
    "stack4 n10 wrap": ((6, 6), np.uint8, 4, 10, 53, (), np.int64, "zero"),
    "state vector stack1 n10 wrap": ((5,), np.float32, 1, 10, 41, (2,), np.float32, "zero"),
    "rgb (3,8,8) stack3 n3 wrap": ((3, 8, 8), np.uint8, 3, 3, 45, (), np.int64, "zero"),
    "minatar-like stack1 n3": ((2, 4, 4), np.uint8, 1, 3, 1000, (), np.int64, "zero"),
    "dmc-like rgb stack3 n1 wrap, first-frame padding":
        ((3, 8, 8), np.uint8, 3, 1, 45, (2,), np.float32, "first"),
    "stack4 n3 wrap, first-frame padding": ((6, 6), np.uint8, 4, 3, 53, (), np.int64, "first"),
}


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_samples_match_brute_force_reference(case: str, seed: int, prioritized: bool) -> None:
    frame_shape, frame_dtype, stack, n, capacity, action_shape, action_dtype, padding = CASES[case]
    rng = np.random.default_rng(seed)
    steps = record_episodes(rng, frame_shape, frame_dtype, action_shape, action_dtype)
    buffer = ReplayBuffer(
        capacity,
        frame_shape,
        frame_stack=stack,
        frame_dtype=frame_dtype,
        action_shape=action_shape,
        action_dtype=action_dtype,
        n_step=n,
        gamma=GAMMA,
        prioritized=prioritized,
        seed=seed,
        stack_padding=padding,
    )
    added = 0
    for stop in (len(steps) // 3, 2 * len(steps) // 3, len(steps)):
        for end in range(added + 1, stop + 1):  # the count is right after every single add
            fill(buffer, steps[end - 1 : end])
            expected = len(brute_force_reference(steps[:end], capacity, stack, n, GAMMA, padding))
            assert buffer.num_valid == expected, f"after {end} steps"
        added = stop
        reference = brute_force_reference(steps[:stop], capacity, stack, n, GAMMA, padding)
        assert len(reference) > 0
        check_against_reference(buffer, reference)
    if capacity < len(steps):
        assert len(buffer) == capacity  # the wrap-around really happened


HAND_EXPECTED = {  # padding: slot -> (obs, n-step reward, discount, next_obs)
    "zero": {
        0: ([0, 0, 1], 1.0 + 0.5 * 2.0, 0.0, None),
        1: ([0, 1, 2], 2.0, 0.0, None),
        2: ([1, 2, 3], 4.0 + 0.5 * 8.0, 0.0, None),
        3: ([2, 3, 4], 8.0, 0.0, None),
        4: ([0, 0, 11], 1.0 + 0.5 * 1.0, 0.25, [11, 12, 13]),
    },
    "first": {
        0: ([1, 1, 1], 1.0 + 0.5 * 2.0, 0.0, None),
        1: ([1, 1, 2], 2.0, 0.0, None),
        2: ([1, 2, 3], 4.0 + 0.5 * 8.0, 0.0, None),
        3: ([2, 3, 4], 8.0, 0.0, None),
        4: ([11, 11, 11], 1.0 + 0.5 * 1.0, 0.25, [11, 12, 13]),
    },
}


@pytest.mark.parametrize("padding", list(HAND_EXPECTED))
def test_stack_padding_and_life_loss_by_hand(padding: str) -> None:
    """A tiny hand-written case: padding at episode starts, stacks across a life loss."""
    buffer = ReplayBuffer(
        50, (1, 1), frame_stack=3, n_step=2, gamma=0.5, seed=0, stack_padding=padding
    )
    # episode A: frames 1..4, life loss (terminal only) at step 1, terminal at step 3
    # episode B: frames 11, 12, 13 (running)
    for value, reward, terminal, end in [
        (1, 1.0, False, False),
        (2, 2.0, True, False),
        (3, 4.0, False, False),
        (4, 8.0, True, True),
        (11, 1.0, False, False),
        (12, 1.0, False, False),
        (13, 1.0, False, False),
    ]:
        buffer.add(np.full((1, 1), value), 0, reward, terminal, end)
    # sampleable: 0 (hits life loss at 1), 1, 2 (hits terminal at 3), 3, 4 (next obs at 6)
    assert buffer.num_valid == 5
    expected = HAND_EXPECTED[padding]
    seen = set()
    for _ in range(40):
        batch = buffer.sample(5)
        for row, slot in enumerate(batch.index.tolist()):
            obs, reward, discount, next_obs = expected[slot]
            assert batch.obs[row].ravel().tolist() == obs
            assert batch.reward[row] == pytest.approx(reward)
            assert batch.discount[row] == pytest.approx(discount)
            if next_obs is not None:
                assert batch.next_obs[row].ravel().tolist() == next_obs
            seen.add(slot)
    assert seen == set(expected)


# ---------------------------------------------------------------------------- prioritized
def _expected_probabilities(raw: dict[int, float], exponent: float) -> dict[int, float]:
    mass = {slot: p**exponent for slot, p in raw.items()}
    total = sum(mass.values())
    return {slot: m / total for slot, m in mass.items()}


def _chi_square_p_value(counts: np.ndarray, expected: np.ndarray) -> float:
    """Pearson's chi-square goodness-of-fit p-value (as scipy.stats.chisquare computes it)."""
    statistic = float(((counts - expected) ** 2 / expected).sum())
    dof = counts.size - 1
    try:
        from scipy.special import chdtrc  # chi-square upper tail; lighter than scipy.stats
    except ImportError:  # Wilson-Hilferty approximation of the same tail
        z = ((statistic / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
        return 0.5 * math.erfc(z / math.sqrt(2))
    return float(chdtrc(dof, statistic))


def _sample_counts(buffer: ReplayBuffer, slots: list[int], draws: int) -> np.ndarray:
    hits = np.concatenate([buffer.sample(19).index for _ in range(draws // 19)])
    assert set(hits.tolist()) <= set(slots)
    return np.array([np.count_nonzero(hits == s) for s in slots], dtype=np.float64)


def test_prioritized_frequencies_and_weights() -> None:
    buffer = ReplayBuffer(
        32, (1,), frame_dtype=np.float32, n_step=1, prioritized=True, priority_exponent=0.5, seed=3
    )
    for t in range(20):
        buffer.add(np.array([t]), 0, 0.0, False, False)
    assert buffer.num_valid == 19  # step 19 still waits for its next frame
    raw = {slot: float(slot + 1) for slot in range(19)}
    buffer.update_priorities(np.array(list(raw)), np.array(list(raw.values())))
    # A pending slot given a huge priority stays unsampleable.
    buffer.update_priorities(np.array([19]), np.array([1e6]))

    slots = list(raw)
    counts = _sample_counts(buffer, slots, 12_000)
    probability = _expected_probabilities(raw, 0.5)
    expected = np.array([probability[s] for s in slots]) * counts.sum()
    assert _chi_square_p_value(counts, expected) > 1e-3
    # The test has power: the same counts reject priorities used without the exponent.
    wrong = _expected_probabilities(raw, 1.0)
    assert _chi_square_p_value(counts, np.array([wrong[s] for s in slots]) * counts.sum()) < 1e-6

    # Importance weights by hand: w = (N P)^-beta / max over the batch.
    batch = buffer.sample(16, beta=0.7)
    p = np.array([probability[int(s)] for s in batch.index])
    w = (19 * p) ** -0.7
    np.testing.assert_allclose(batch.weight, w / w.max(), rtol=1e-6)

    # New transitions enter at the largest raw priority seen so far (19).
    for t in range(20, 25):
        buffer.add(np.array([t]), 0, 0.0, False, False)
    raw.update({slot: 19.0 for slot in range(19, 24)})
    slots = list(raw)
    counts = _sample_counts(buffer, slots, 12_000)
    probability = _expected_probabilities(raw, 0.5)
    expected = np.array([probability[s] for s in slots]) * counts.sum()
    assert _chi_square_p_value(counts, expected) > 1e-3


def test_uniform_frequencies_and_weights() -> None:
    """Uniform sampling draws every sampleable slot equally often, the unsampleable ones (steps
    whose n-step window is not stored yet, in the middle of a wrapped buffer) never."""
    buffer = ReplayBuffer(32, (1,), frame_dtype=np.float32, n_step=3, seed=4)
    for t in range(45):  # slots hold steps 13..44; steps 42..44 (slots 10..12) wait for s_{t+3}
        buffer.add(np.array([t]), 0, 0.0, False, False)
    slots = [t % 32 for t in range(13, 42)]
    assert buffer.num_valid == len(slots) == 29 and len(buffer) == 32
    counts = _sample_counts(buffer, slots, 13_000)
    expected = np.full(len(slots), counts.sum() / len(slots))
    assert _chi_square_p_value(counts, expected) > 1e-3
    # The test has power: the same counts reject slots weighted by as little as 1 ± 0.15.
    tilted = np.linspace(0.85, 1.15, len(slots))
    assert _chi_square_p_value(counts, tilted / tilted.sum() * counts.sum()) < 1e-6
    batch = buffer.sample(16, beta=0.7)
    np.testing.assert_array_equal(batch.weight, np.ones(16, np.float32))


def test_prioritized_overwritten_slot_gets_fresh_priority() -> None:
    buffer = ReplayBuffer(8, (1,), frame_dtype=np.float32, prioritized=True, seed=0)
    for t in range(8):
        buffer.add(np.array([t]), 0, 0.0, False, False)
    buffer.update_priorities(np.arange(7), np.array([4.0] + [1e-12] * 6))
    # Slot 0 (priority 4, the max) is overwritten by step 8; step 7 becomes sampleable at the max
    # priority (4), and the new occupant of slot 0 waits for its next frame: priority 0.
    buffer.add(np.array([8]), 0, 0.0, False, False)
    hits = np.concatenate([buffer.sample(7).index for _ in range(50)])
    assert 0 not in hits
    assert np.mean(hits == 7) > 0.9


def test_update_priorities_repeated_index_last_wins() -> None:
    buffer = ReplayBuffer(8, (1,), frame_dtype=np.float32, prioritized=True, seed=0)
    for t in range(4):
        buffer.add(np.array([t]), 0, 0.0, False, False)
    buffer.update_priorities(np.array([0, 1, 2, 0]), np.array([100.0, 1.0, 0.0, 0.0]))
    hits = np.concatenate([buffer.sample(2).index for _ in range(100)])
    assert set(hits.tolist()) == {1}


# ---------------------------------------------------------------------------- sum tree
@pytest.mark.parametrize("capacity", [1, 7, 64, 1000])
def test_sum_tree_matches_cumsum_searchsorted(capacity: int) -> None:
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity)
    values = np.zeros(capacity)
    for _ in range(20):
        index = rng.integers(0, capacity, size=rng.integers(1, 2 * capacity + 2))
        new = rng.integers(0, 10, size=index.size).astype(np.float64)  # exact sums
        new[rng.random(index.size) < 0.3] = 0.0
        tree.update(index, new)
        for i, v in zip(index, new, strict=True):  # last write wins, as in a plain loop
            values[i] = v
        np.testing.assert_array_equal(tree.values(), values)
        assert tree.total == values.sum()
        if values.sum() == 0:
            continue
        mass = rng.uniform(0, values.sum(), size=500)
        mass[:3] = [0.0, np.nextafter(values.sum(), 0), values.sum()]
        expected = np.minimum(np.searchsorted(np.cumsum(values), mass, side="right"), capacity - 1)
        found = tree.find(mass)
        # A mass at the total itself lands on the last positive leaf.
        expected[2] = np.flatnonzero(values)[-1]
        np.testing.assert_array_equal(found, expected)
        assert np.all(values[found] > 0)


def test_sum_tree_random_floats_and_rebuild() -> None:
    rng = np.random.default_rng(0)
    values = rng.exponential(size=777) * (rng.random(777) < 0.8)
    tree = SumTree(777)
    tree.set_values(values)
    np.testing.assert_allclose(tree.total, values.sum(), rtol=1e-12)
    cumulative = np.cumsum(values)
    mass = rng.uniform(0, values.sum(), size=5000)
    # stay clear of bin edges, where two summation orders may round differently
    gap = np.abs(mass[:, None] - cumulative[None, :]).min(axis=1)
    mass = mass[gap > 1e-9]
    np.testing.assert_array_equal(tree.find(mass), np.searchsorted(cumulative, mass, side="right"))
    tree.update(np.arange(777), values)  # batched update gives the same tree as a rebuild
    np.testing.assert_array_equal(tree.find(mass), np.searchsorted(cumulative, mass, side="right"))


def test_sum_tree_bad_input() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)
    tree = SumTree(4)
    with pytest.raises(ValueError, match="positive total"):
        tree.find(np.array([0.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        tree.update(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        tree.update(np.array([0]), np.array([-1.0]))


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_sampling_with_another_generator_leaves_the_buffers_draws_alone(prioritized: bool) -> None:
    steps = record_episodes(np.random.default_rng(6), (4, 4), np.uint8, (), np.int64, num_episodes=10)
    kwargs = dict(frame_stack=4, n_step=3, prioritized=prioritized, seed=3)
    plain, probed = ReplayBuffer(60, (4, 4), **kwargs), ReplayBuffer(60, (4, 4), **kwargs)
    fill(plain, steps)
    fill(probed, steps)
    # A generator in the buffer's own seed's state draws the buffer's next batch...
    first = plain.sample(16)
    np.testing.assert_array_equal(probed.sample(16, rng=np.random.default_rng(3)).index, first.index)
    probed.sample(16, rng=np.random.default_rng(99))
    # ...without advancing the buffer's own generator: its first own draw is still ``first``.
    np.testing.assert_array_equal(probed.sample(16).index, first.index)
    for _ in range(3):
        np.testing.assert_array_equal(plain.sample(16).index, probed.sample(16).index)


# ---------------------------------------------------------------------------- checkpointing
@pytest.mark.parametrize("compress_frames", [True, False], ids=["compressed", "raw"])
@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_state_dict_round_trip_continues_identically(prioritized: bool, compress_frames: bool) -> None:
    rng = np.random.default_rng(5)
    steps = record_episodes(rng, (4, 4), np.uint8, (), np.int64, num_episodes=20)
    kwargs = dict(frame_stack=4, n_step=3, prioritized=prioritized)
    original = ReplayBuffer(60, (4, 4), seed=1, **kwargs)
    fill(original, steps[:100])
    for _ in range(3):
        batch = original.sample(16)
        original.update_priorities(batch.index, rng.random(16))

    saved = copy.deepcopy(original.state_dict(compress_frames=compress_frames))
    assert isinstance(saved["frames"], dict) == compress_frames
    restored = ReplayBuffer(60, (4, 4), seed=999, **kwargs)
    restored.load_state_dict(saved)
    assert restored.nbytes == original.nbytes and len(restored) == len(original)

    for s in steps[100:]:
        for buffer in (original, restored):
            buffer.add(s.frame, s.action, s.reward, s.terminal, s.episode_end)
        a, b = original.sample(8, beta=0.5), restored.sample(8, beta=0.5)
        for field in ("obs", "action", "reward", "discount", "next_obs", "weight", "index"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        priority = rng.random(8)
        original.update_priorities(a.index, priority)
        restored.update_priorities(b.index, priority)

    other = ReplayBuffer(60, (4, 4), frame_stack=4, n_step=5, prioritized=prioritized)
    with pytest.raises(ValueError, match="n_step"):
        other.load_state_dict(saved)


def test_state_dict_shares_storage_and_checkpoints_without_copies(tmp_path) -> None:
    rng = np.random.default_rng(7)
    steps = record_episodes(rng, (84, 84), np.uint8, (), np.int64, num_episodes=60)
    assert len(steps) >= 470
    kwargs = dict(frame_stack=4, n_step=3, prioritized=True, stack_padding="first")
    original = ReplayBuffer(400, (84, 84), seed=1, **kwargs)
    fill(original, steps[:450])  # wrapped around
    state = original.state_dict(compress_frames=False)
    assert np.shares_memory(np.asarray(state["frames"]), original._frames)
    assert np.shares_memory(np.asarray(state["actions"]), original._actions)

    path = tmp_path / "replay.pt"
    tracemalloc.start()
    torch.save(state, path)  # as the training loop's checkpoint does
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    frame_bytes = original._frames.nbytes
    assert peak < 0.05 * frame_bytes  # numpy arrays would be pickled: several copies
    assert frame_bytes < path.stat().st_size < 1.1 * original.nbytes

    restored = ReplayBuffer(400, (84, 84), seed=999, **kwargs)
    restored.load_state_dict(torch.load(path, weights_only=False))
    mine, theirs = restored.state_dict(compress_frames=False), original.state_dict(compress_frames=False)
    assert mine.keys() == theirs.keys()
    for key in mine:
        if key in ("config", "rng_state"):
            assert mine[key] == theirs[key], key
        else:
            np.testing.assert_array_equal(np.asarray(mine[key]), np.asarray(theirs[key]), key)
    for s in steps[450:470]:
        for buffer in (original, restored):
            buffer.add(s.frame, s.action, s.reward, s.terminal, s.episode_end)
        a, b = original.sample(8), restored.sample(8)
        for field in ("obs", "action", "reward", "discount", "next_obs", "weight", "index"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))

    zero_padded = ReplayBuffer(400, (84, 84), frame_stack=4, n_step=3, prioritized=True)
    with pytest.raises(ValueError, match="stack_padding"):
        zero_padded.load_state_dict(state)


def screen_like_frames(rng: np.random.Generator, count: int) -> np.ndarray:
    """84x84 frames as a game draws them: a constant background, a border, two moving sprites."""
    frames = np.full((count, 84, 84), 40, dtype=np.uint8)
    frames[:, :6], frames[:, -6:] = 200, 200
    for t in range(count):
        for sprite in range(2):
            row, col = (t * (3 + sprite) + 17 * sprite) % 70 + 6, (t * 5 + 31 * sprite) % 76
            frames[t, row:row + 8, col:col + 8] = rng.integers(0, 256, size=(8, 8))
    return frames


def test_compressed_frames_are_much_smaller_exact_and_read_in_chunks(tmp_path, monkeypatch) -> None:
    import plastic.replay.buffer as buffer_module

    rng = np.random.default_rng(3)
    frames = screen_like_frames(rng, 600)
    original = ReplayBuffer(500, (84, 84), frame_stack=4, n_step=3, prioritized=True, seed=2)
    for t, frame in enumerate(frames):  # wraps around; an episode ends every 90 steps
        original.add(frame, t % 6, float(t % 3), t % 90 == 89, t % 90 == 89)
    monkeypatch.setattr(buffer_module, "_CHUNK_BYTES", 84 * 84 * 64)  # 64 frames a chunk
    tracemalloc.start()
    state = original.state_dict()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.3 * original._frames.nbytes  # compressed from the live array, never copied
    assert len(state["frames"]["zlib_chunks"]) == 8  # 500 frames: 7 of 64 and one of 52
    raw_path, packed_path = tmp_path / "raw.pt", tmp_path / "packed.pt"
    torch.save(original.state_dict(compress_frames=False), raw_path)
    torch.save(state, packed_path)
    frame_bytes = original._frames.nbytes
    assert raw_path.stat().st_size > frame_bytes  # uncompressed: every frame byte is written
    assert packed_path.stat().st_size < 0.25 * frame_bytes  # such frames compress > 4x

    restored = ReplayBuffer(500, (84, 84), frame_stack=4, n_step=3, prioritized=True, seed=9)
    restored.load_state_dict(torch.load(packed_path, weights_only=False))
    np.testing.assert_array_equal(restored._frames, original._frames)
    for _ in range(3):
        a, b = original.sample(8), restored.sample(8)
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.next_obs, b.next_obs)


def test_version_1_states_load_and_corrupt_frames_are_named() -> None:
    rng = np.random.default_rng(4)
    frames = screen_like_frames(rng, 50)
    original = ReplayBuffer(100, (84, 84), frame_stack=4, n_step=3, seed=2)
    for t, frame in enumerate(frames):
        original.add(frame, t % 6, 1.0, False, False)
    old = {**original.state_dict(compress_frames=False), "version": 1}  # as plastic wrote before
    restored = ReplayBuffer(100, (84, 84), frame_stack=4, n_step=3, seed=9)
    restored.load_state_dict(old)
    np.testing.assert_array_equal(restored._frames, original._frames)

    packed = original.state_dict()
    torn = {**packed, "frames": {**packed["frames"],
                                 "zlib_chunks": [packed["frames"]["zlib_chunks"][0][:-40]]}}
    with pytest.raises(ValueError, match="'frames' is corrupt"):
        ReplayBuffer(100, (84, 84), frame_stack=4, n_step=3).load_state_dict(torn)
    wrong_dtype = {**packed, "frames": {**packed["frames"], "dtype": "<f4"}}
    with pytest.raises(ValueError, match="'frames' holds float32, expected uint8"):
        ReplayBuffer(100, (84, 84), frame_stack=4, n_step=3).load_state_dict(wrong_dtype)
    with pytest.raises(ValueError, match="version 7; this version of plastic reads 1, 2"):
        ReplayBuffer(100, (84, 84), frame_stack=4, n_step=3).load_state_dict({**packed, "version": 7})


# ---------------------------------------------------------------------------- bad input, memory
def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (84, 84))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(-5, (84, 84))
    with pytest.raises(ValueError, match="n_step"):
        ReplayBuffer(100, (84, 84), n_step=0)
    with pytest.raises(ValueError, match="frame_stack"):
        ReplayBuffer(100, (84, 84), frame_stack=0)
    with pytest.raises(ValueError, match="gamma"):
        ReplayBuffer(100, (84, 84), gamma=1.5)
    with pytest.raises(ValueError, match="stack_padding must be one of zero, first"):
        ReplayBuffer(100, (84, 84), stack_padding="edge")

    buffer = ReplayBuffer(100, (2, 2), frame_stack=4, n_step=3)
    with pytest.raises(ValueError, match="no sampleable transition"):
        buffer.sample(1)
    with pytest.raises(ValueError, match=r"frame has shape \(4, 2, 2\), expected"):
        buffer.add(np.zeros((4, 2, 2), np.uint8), 0, 0.0, False, False)
    with pytest.raises(ValueError, match="action has shape"):
        buffer.add(np.zeros((2, 2), np.uint8), [0, 1], 0.0, False, False)
    with pytest.raises(ValueError, match="dtype float64"):
        buffer.add(np.zeros((2, 2)), 0, 0.0, False, False)
    with pytest.raises(ValueError, match="reward"):
        buffer.add(np.zeros((2, 2), np.uint8), 0, float("nan"), False, False)
    for _ in range(6):
        buffer.add(np.zeros((2, 2), np.uint8), 0, 0.0, False, False)
    assert buffer.num_valid == 3
    with pytest.raises(ValueError, match=r"batch_size \(4\) exceeds .* \(3\)"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(0)
    with pytest.raises(ValueError, match="equal length"):
        buffer.update_priorities(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        buffer.update_priorities(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        buffer.update_priorities(np.array([100]), np.array([1.0]))

    prioritized = ReplayBuffer(10, (1,), frame_dtype=np.float32, prioritized=True)
    for t in range(3):
        prioritized.add(np.array([t]), 0, 0.0, False, False)
    prioritized.update_priorities(np.array([0, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="priority 0"):
        prioritized.sample(1)


def test_atari_sized_buffer_fits_well_under_a_gigabyte() -> None:
    buffer = ReplayBuffer(100_000, (84, 84), frame_stack=4, n_step=10, prioritized=True)
    assert buffer.obs_shape == (4, 84, 84)
    assert 100_000 * 84 * 84 <= buffer.nbytes < 1e9
    assert buffer.nbytes / 100_000 < 7.2e3
