"""A memory-efficient circular replay buffer with n-step returns and optional prioritized sampling.

Storage and time
    ``add`` is called once per environment step ``t`` with the NEWEST frame of the observation the
    action was taken in (``obs[-1]`` of an Atari ``(4, 84, 84)`` stack, ``obs[-3:]`` of a DMC
    ``(9, 64, 64)`` stack of three RGB frames, the whole observation when ``frame_stack == 1``),
    the action, the reward, and two flags. Each frame is stored once, in a circular array of ``capacity``
    steps; slot ``t % capacity`` holds step ``t``, and ``Batch.index`` is that slot.

Frame stacks
    ``obs`` and ``next_obs`` are rebuilt at sampling time from consecutive stored frames and never
    reach across an episode boundary. Frames before an episode's first step are padded as the
    environment pads its own stack at reset, so acting and learning see identical stacks:
    ``stack_padding="zero"`` fills them with zeros (the Dopamine convention; the Atari
    environment's stack), ``"first"`` repeats the episode's first frame (DrQ's DeepMind Control
    stack). Frames of shape ``(C, H, W)`` are concatenated along C (``(stack*C, H, W)``), frames
    of shape ``(H, W)`` get a new leading axis (``(stack, H, W)``), 1-D frames are concatenated
    (``(stack*D,)``). With ``frame_stack == 1`` an observation is the frame itself.

Flags
    ``terminal``: the transition ends the return (no bootstrap from what follows).
    ``episode_end``: the episode ended at this step (terminated or truncated); the next ``add``
    starts a new episode, whose stacks start from padding. A terminal without ``episode_end`` is a
    learning-only terminal (e.g. an Atari life loss with the game going on): the n-step window
    stops there, but frame stacks continue across it, as the environment's own stack does (an
    environment that restarts its stack on a life loss should pass ``episode_end=True`` too).

n-step returns
    For the transition at step ``t`` the window is steps ``t .. t+n-1``; ``m`` is ``n``, or the
    number of steps up to and including the first terminal in the window.
    ``reward = sum_{k<m} gamma^k r_{t+k}``; ``discount = gamma^n`` if no terminal ended the
    window, else 0; ``next_obs`` is the stack at ``t+m`` (when ``discount == 0`` it is
    the stack at ``t+m-1``, a valid observation that the learner multiplies by 0).

Which transitions can be sampled
    Everything a transition needs must be stored: its window up to the first terminal, and for a
    window without a terminal also the frame at ``t+n`` (so the n steps after ``t`` must have been
    added), and every frame of its stacks (after a wrap of the circular buffer the oldest steps are
    overwritten, so the first few transitions whose stack would read an overwritten frame are
    excluded). A window that reaches a truncation (``episode_end`` without ``terminal``) before a
    terminal is never sampleable: no frame after a truncation is stored, so the last up-to-n
    transitions of a truncated episode are excluded. Sampleability is tracked incrementally on
    ``add`` (O(n + frame_stack) scalar work per step); ``num_valid`` counts them.

Sampling
    Uniform: uniform over sampleable transitions, with replacement (vectorised rejection sampling
    over stored slots). Prioritized (Schaul et al., 2016): ``P(i) = p_i^a / sum_j p_j^a`` with
    ``a = priority_exponent``, drawn by stratified sampling from a sum tree (the total mass is split
    into B equal segments, one uniform draw in each). A transition enters with the largest raw
    priority seen so far (1 at first) when it becomes sampleable; unsampleable slots keep priority
    0. ``update_priorities`` takes raw priorities (e.g. |TD error| or a distributional loss) and
    applies the exponent; updates to slots that are not sampleable (any more) are ignored, so a
    slot overwritten between ``sample`` and ``update_priorities`` keeps its fresh priority unless
    its new transition is already sampleable.
    Importance weights ``w_i = (N * P(i))^-beta / max_batch w`` with ``N = num_valid``: normalised
    by the largest weight in the batch, as in Dopamine and rlpyt. Uniform weights are ones.

Randomness comes from a ``numpy.random.Generator`` made from ``seed``; its state is part of
``state_dict`` so a resumed run samples the same batches as an uninterrupted one.

Checkpoints
    ``state_dict`` holds the frames zlib-compressed (level 1) in chunks of about 32 MiB, read
    straight from the live array: Atari frames shrink 10- to 40-fold (an Atari-100k replay of
    0.7 GB to tens of MB) for a few seconds of one core per checkpoint, and no
    uncompressed copy is made (``benchmarks/bench_checkpoint.py``). Dopamine gzips its replay
    checkpoints for the same reason. With ``compress_frames=False`` the frames, like every other
    stored array always, are CPU tensors that share memory with the live arrays (no copy):
    ``torch.save`` writes tensor storage straight to the file, whereas pickling numpy arrays would
    briefly hold several copies of a frame store of hundreds of megabytes. Save (or copy) the
    state before the next ``add``. ``load_state_dict`` reads both forms.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from plastic.replay.sum_tree import SumTree

# 2: frames may be compressed (``_pack_rows``); 1: frames as a tensor, still read.
_STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_CHUNK_BYTES = 32 * 2**20
_COMPRESSION_LEVEL = 1  # zlib's fastest (Atari frames: 10-40x, 100-230 MB/s); level 6: 2x slower
_MAX_REJECTION_ROUNDS = 4
STACK_PADDINGS = ("zero", "first")


@dataclass
class Batch:
    """A batch of n-step transitions (numpy arrays; the learner converts them to tensors)."""

    obs: np.ndarray  # (B, *obs_shape), frame dtype
    action: np.ndarray  # (B, *action_shape), action dtype
    reward: np.ndarray  # (B,) float32, n-step discounted reward
    discount: np.ndarray  # (B,) float32, gamma^n, or 0 if a terminal ended the window
    next_obs: np.ndarray  # (B, *obs_shape), frame dtype
    weight: np.ndarray  # (B,) float32 importance weights, max 1 (ones when uniform)
    index: np.ndarray  # (B,) int64 slots, for update_priorities


class ReplayBuffer:
    """Circular n-step replay storing each frame once; uniform or prioritized sampling.

    Args:
        capacity: number of steps stored; must exceed ``n_step``.
        frame_shape: shape of ONE frame (the newest frame of an observation).
        frame_stack: frames per observation (4 for Atari, 3 for DMC pixels, 1 otherwise).
        frame_dtype: dtype of stored frames (uint8 for pixels, float32 for state vectors).
        action_shape: ``()`` for discrete actions, ``(A,)`` for continuous ones.
        action_dtype: int64 for discrete actions, float32 for continuous ones.
        n_step: return horizon n.
        gamma: discount factor in [0, 1].
        prioritized: proportional prioritized sampling instead of uniform.
        priority_exponent: the exponent a in ``P(i) ∝ p_i^a``.
        seed: seed of the buffer's random generator.
        stack_padding: frames before an episode's first step in a stack: "zero" (Atari) or
            "first", the episode's first frame repeated (DeepMind Control).
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, ...],
        *,
        frame_stack: int = 1,
        frame_dtype: npt.DTypeLike = np.uint8,
        action_shape: tuple[int, ...] = (),
        action_dtype: npt.DTypeLike = np.int64,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        priority_exponent: float = 0.5,
        seed: int | None = None,
        stack_padding: str = "zero",
    ) -> None:
        if not _is_int(n_step) or n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step!r}")
        if not _is_int(capacity) or capacity <= 0:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        if capacity <= n_step:
            raise ValueError(
                f"capacity ({capacity}) must be larger than n_step ({n_step}): an n-step "
                "transition needs n + 1 stored steps"
            )
        if not _is_int(frame_stack) or frame_stack < 1:
            raise ValueError(f"frame_stack must be an integer >= 1, got {frame_stack!r}")
        if stack_padding not in STACK_PADDINGS:
            raise ValueError(
                f"stack_padding must be one of {', '.join(STACK_PADDINGS)}, got {stack_padding!r}"
            )
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        if not (math.isfinite(priority_exponent) and priority_exponent >= 0):
            raise ValueError(
                f"priority_exponent must be finite and >= 0, got {priority_exponent!r}"
            )
        self._frame_shape = _check_shape("frame_shape", frame_shape)
        self._action_shape = _check_shape("action_shape", action_shape)
        self._capacity = int(capacity)
        self._frame_stack = int(frame_stack)
        self._n_step = int(n_step)
        self._gamma = float(gamma)
        self._prioritized = bool(prioritized)
        self._priority_exponent = float(priority_exponent)
        self._stack_padding = stack_padding
        self._frame_dtype = np.dtype(frame_dtype)
        self._action_dtype = np.dtype(action_dtype)

        self._frames = np.zeros((self._capacity, *self._frame_shape), dtype=self._frame_dtype)
        self._actions = np.zeros((self._capacity, *self._action_shape), dtype=self._action_dtype)
        self._rewards = np.zeros(self._capacity, dtype=np.float32)
        self._terminal = np.zeros(self._capacity, dtype=bool)
        self._episode_end = np.zeros(self._capacity, dtype=bool)
        # Steps since the episode's first step: where the padding of a stack begins.
        self._episode_step = np.zeros(self._capacity, dtype=np.int32)
        self._valid = np.zeros(self._capacity, dtype=bool)
        self._tree = SumTree(self._capacity) if self._prioritized else None

        self._num_added = 0
        self._num_valid = 0
        self._next_episode_step = 0
        self._steps_since_stop = 0
        self._max_priority = 1.0
        self._rng = np.random.default_rng(seed)
        self._window = np.arange(self._n_step, dtype=np.int64)
        self._window_discounts = self._gamma ** np.arange(self._n_step, dtype=np.float64)
        self._stack_back = np.arange(self._frame_stack - 1, -1, -1, dtype=np.int64)  # oldest first

    # ------------------------------------------------------------------ properties
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def frame_stack(self) -> int:
        return self._frame_stack

    @property
    def stack_padding(self) -> str:
        return self._stack_padding

    @property
    def n_step(self) -> int:
        return self._n_step

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def prioritized(self) -> bool:
        return self._prioritized

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation in a Batch (see the module docstring)."""
        stack, shape = self._frame_stack, self._frame_shape
        if stack == 1:
            return shape
        if len(shape) == 2 or len(shape) == 0:
            return (stack, *shape)
        return (stack * shape[0], *shape[1:])

    @property
    def num_valid(self) -> int:
        """Number of transitions that ``sample`` can currently return."""
        return self._num_valid

    @property
    def num_added(self) -> int:
        """Number of ``add`` calls so far."""
        return self._num_added

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays (frames, actions, rewards, flags, sum tree)."""
        arrays = self._arrays().values()
        return sum(int(a.nbytes) for a in arrays) + (self._tree.nbytes if self._tree else 0)

    def __len__(self) -> int:
        """Number of stored steps (at most ``capacity``); see ``num_valid`` for sampleable ones."""
        return min(self._num_added, self._capacity)

    # ------------------------------------------------------------------ adding
    def add(
        self,
        frame: np.ndarray,
        action: Any,
        reward: float,
        terminal: bool,
        episode_end: bool,
    ) -> None:
        """Store step t: the newest frame of obs_t, the action taken in it, its reward and flags."""
        frame = np.asarray(frame)
        if frame.shape != self._frame_shape:
            raise ValueError(
                f"frame has shape {frame.shape}, expected frame_shape {self._frame_shape} "
                "(pass only the newest frame of the observation, not the whole stack)"
            )
        if not _storable(frame.dtype, self._frame_dtype):
            raise ValueError(
                f"frame has dtype {frame.dtype}, which cannot be stored as {self._frame_dtype}"
            )
        action = np.asarray(action)
        if action.shape != self._action_shape:
            raise ValueError(
                f"action has shape {action.shape}, expected action_shape {self._action_shape}"
            )
        if not _storable(action.dtype, self._action_dtype):
            raise ValueError(
                f"action has dtype {action.dtype}, which cannot be stored as {self._action_dtype}"
            )
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")

        step = self._num_added
        slot = step % self._capacity
        self._mark(slot, False)  # the transition stored there (if any) leaves the buffer
        self._frames[slot] = frame
        self._actions[slot] = action
        self._rewards[slot] = reward
        self._terminal[slot] = terminal = bool(terminal)
        self._episode_end[slot] = episode_end = bool(episode_end)
        self._episode_step[slot] = self._next_episode_step
        self._next_episode_step = 0 if episode_end else self._next_episode_step + 1
        self._num_added += 1
        self._update_validity(step, terminal)
        self._steps_since_stop = 0 if (terminal or episode_end) else self._steps_since_stop + 1

    def _update_validity(self, step: int, terminal: bool) -> None:
        """Track which transitions became (un)sampleable when `step` was added.

        Plain Python on scalars: per step only O(n + frame_stack) transitions can change, and
        numpy's per-call overhead would dominate on such tiny arrays.
        """
        n, capacity = self._n_step, self._capacity
        oldest = max(0, self._num_added - capacity)
        run = self._steps_since_stop  # steps before `step` since the last terminal/episode end
        if run >= n:
            # The window of step - n (steps step-n .. step-1) has no stop: its next frame is here.
            self._mark_if_stack_stored(step - n, oldest)
        if terminal:
            # Pending transitions whose window reaches this terminal are complete now.
            for t in range(step - min(run, n - 1), step + 1):
                self._mark_if_stack_stored(t, oldest)
        if step >= capacity:
            # The frame of step oldest - 1 was overwritten: drop transitions whose stack read it.
            for t in range(oldest, min(oldest + self._frame_stack - 1, step + 1)):
                if self._valid[t % capacity] and not self._stack_stored(t, oldest):
                    self._mark(t % capacity, False)

    def _stack_stored(self, step: int, oldest: int) -> bool:
        episode_step = int(self._episode_step[step % self._capacity])
        return step - min(episode_step, self._frame_stack - 1) >= oldest

    def _mark_if_stack_stored(self, step: int, oldest: int) -> None:
        if step >= oldest and self._stack_stored(step, oldest):
            self._mark(step % self._capacity, True)

    def _mark(self, slot: int, valid: bool) -> None:
        """Set one slot's sampleability; a slot that becomes sampleable gets the max priority."""
        if self._valid[slot] == valid:
            return
        self._valid[slot] = valid
        self._num_valid += 1 if valid else -1
        if self._tree is not None:
            priority = self._max_priority**self._priority_exponent if valid else 0.0
            self._tree.set(slot, priority)

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, beta: float = 0.4, rng: np.random.Generator | None = None) -> Batch:
        """Draw ``batch_size`` transitions (with replacement); ``beta`` is the IS exponent.

        ``rng`` draws instead of the buffer's own generator (which it leaves untouched), for
        samples that must not change the training's later draws, such as diagnostics.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if self._num_valid == 0:
            raise ValueError(
                f"cannot sample: no sampleable transition yet ({self._num_added} steps added; a "
                f"transition needs its {self._n_step}-step window stored)"
            )
        if batch_size > self._num_valid:
            raise ValueError(
                f"batch_size ({batch_size}) exceeds the number of sampleable transitions "
                f"({self._num_valid}); add more steps first"
            )
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
        rng = self._rng if rng is None else rng
        if self._tree is None:
            slots = self._sample_uniform(batch_size, rng)
            weight = np.ones(batch_size, dtype=np.float32)
        else:
            slots, weight = self._sample_prioritized(batch_size, beta, rng)
        return self._gather(slots, weight)

    def _sample_uniform(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        stored = len(self)
        accept_rate = self._num_valid / stored
        chosen: list[np.ndarray] = []
        missing = batch_size
        for _ in range(_MAX_REJECTION_ROUNDS):
            draws = rng.integers(0, stored, size=int(missing / accept_rate * 1.2) + 8)
            accepted = draws[self._valid[draws]][:missing]
            chosen.append(accepted)
            missing -= accepted.size
            if missing == 0:
                return np.concatenate(chosen)
        # Rarely reached (unlucky draws): pick the rest directly among sampleable slots.
        chosen.append(rng.choice(np.flatnonzero(self._valid), size=missing))
        return np.concatenate(chosen).astype(np.int64)

    def _sample_prioritized(
        self, batch_size: int, beta: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self._tree is not None
        total = self._tree.total
        if total <= 0:
            raise ValueError(
                "cannot sample: every sampleable transition has priority 0 (pass positive "
                "priorities to update_priorities, e.g. |TD error| + 1e-6)"
            )
        segment = total / batch_size
        mass = (np.arange(batch_size) + rng.random(batch_size)) * segment
        slots = self._tree.find(mass)
        probability = self._tree.get(slots) / total
        weight = (self._num_valid * probability) ** -beta
        weight /= weight.max()
        return slots, weight.astype(np.float32)

    def _gather(self, slots: np.ndarray, weight: np.ndarray) -> Batch:
        newest = self._num_added - 1
        steps = newest - (newest - slots) % self._capacity
        window_slots = (steps[:, None] + self._window) % self._capacity
        # Among sampleable transitions, the first stop in a window is always a terminal.
        stop = self._terminal[window_slots] | self._episode_end[window_slots]
        before_stop = (np.cumsum(stop, axis=1) - stop) == 0
        rewards = np.where(before_stop, self._rewards[window_slots], 0.0)
        n_step_reward = rewards @ self._window_discounts
        terminated = stop.any(axis=1)
        length = np.where(terminated, stop.argmax(axis=1) + 1, self._n_step)
        discount = np.where(terminated, 0.0, self._gamma**self._n_step)
        next_steps = steps + length - terminated
        return Batch(
            obs=self._stack(steps),
            action=self._actions[slots],
            reward=n_step_reward.astype(np.float32),
            discount=discount.astype(np.float32),
            next_obs=self._stack(next_steps),
            weight=weight,
            index=slots.astype(np.int64, copy=False),
        )

    def _stack(self, steps: np.ndarray) -> np.ndarray:
        """Observations ending at the given steps, padded before each episode's first frame."""
        if self._frame_stack == 1:
            return self._frames[steps % self._capacity]
        episode_step = self._episode_step[steps % self._capacity][:, None]
        back = np.minimum(self._stack_back, episode_step)  # the first frame stands in for earlier
        frames = self._frames[(steps[:, None] - back) % self._capacity]
        if self._stack_padding == "zero":
            frames[self._stack_back > episode_step] = 0
        return frames.reshape(steps.size, *self.obs_shape)

    # ------------------------------------------------------------------ priorities
    def update_priorities(self, index: np.ndarray, priority: np.ndarray) -> None:
        """Set raw priorities (the buffer applies the exponent) of sampled slots.

        A no-op (after checking the arguments) for a uniform buffer. For a repeated index the last
        priority wins; slots that are no longer sampleable are skipped.
        """
        index = np.asarray(index)
        priority = np.asarray(priority, dtype=np.float64)
        if index.ndim != 1 or priority.shape != index.shape:
            raise ValueError(
                f"index and priority must be 1-D arrays of equal length, got shapes "
                f"{index.shape} and {priority.shape}"
            )
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must hold integers, got dtype {index.dtype}")
        if index.size and (index.min() < 0 or index.max() >= self._capacity):
            raise ValueError(f"index values must lie in [0, {self._capacity})")
        if not np.all(np.isfinite(priority)) or np.any(priority < 0):
            raise ValueError("priorities must be finite and >= 0")
        if self._tree is None or index.size == 0:
            return
        keep = self._valid[index]
        index, priority = index[keep], priority[keep]
        if index.size == 0:
            return
        self._max_priority = max(self._max_priority, float(priority.max()))
        self._tree.update(index, priority**self._priority_exponent)

    # ------------------------------------------------------------------ checkpointing
    def _config(self) -> dict[str, Any]:
        return {
            "capacity": self._capacity,
            "frame_shape": list(self._frame_shape),
            "frame_stack": self._frame_stack,
            "frame_dtype": self._frame_dtype.str,
            "action_shape": list(self._action_shape),
            "action_dtype": self._action_dtype.str,
            "n_step": self._n_step,
            "gamma": self._gamma,
            "prioritized": self._prioritized,
            "priority_exponent": self._priority_exponent,
            "stack_padding": self._stack_padding,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        """The per-slot storage arrays, by their ``state_dict`` keys."""
        return {
            "frames": self._frames,
            "actions": self._actions,
            "rewards": self._rewards,
            "terminal": self._terminal,
            "episode_end": self._episode_end,
            "episode_step": self._episode_step,
            "valid": self._valid,
        }

    def state_dict(self, compress_frames: bool = True) -> dict[str, Any]:
        """Everything needed to continue: config, stored steps, counters, RNG state.

        The frames are compressed (``compress_frames``) or, like the other stored steps, tensors
        sharing memory with the buffer (see "Checkpoints" above).
        """
        stored = len(self)
        state: dict[str, Any] = {"version": _STATE_VERSION, "config": self._config()}
        state.update({key: torch.from_numpy(array[:stored]) for key, array in self._arrays().items()})
        if compress_frames:
            state["frames"] = _pack_rows(self._frames[:stored])
        state.update(
            priorities=self._tree.values()[:stored] if self._tree else np.zeros(0),
            num_added=self._num_added,
            next_episode_step=self._next_episode_step,
            steps_since_stop=self._steps_since_stop,
            max_priority=self._max_priority,
            rng_state=self._rng.bit_generator.state,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` taken from a buffer built with the same arguments."""
        if state.get("version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"unsupported replay state version {state.get('version')!r}; this version of "
                f"plastic reads {', '.join(map(str, _READABLE_VERSIONS))}"
            )
        # States saved before stack_padding existed were all zero-padded.
        theirs, ours = {"stack_padding": "zero", **state["config"]}, self._config()
        mismatched = sorted(k for k in ours if theirs.get(k) != ours[k])
        if mismatched:
            details = ", ".join(f"{k}: saved {theirs.get(k)!r} vs {ours[k]!r}" for k in mismatched)
            raise ValueError(f"replay state does not match this buffer ({details})")
        num_added = int(state["num_added"])
        stored = min(num_added, self._capacity)
        arrays = self._arrays()
        values = {key: state[key] if _is_packed(state[key]) else np.asarray(state[key])
                  for key in arrays}  # packed rows, numpy arrays or CPU tensors
        for key, target in arrays.items():
            shape = tuple(values[key]["shape"] if _is_packed(values[key]) else values[key].shape)
            if shape != (stored, *target.shape[1:]):
                raise ValueError(
                    f"replay state array {key!r} has shape {shape}, expected "
                    f"{(stored, *target.shape[1:])}"
                )
        for key, target in arrays.items():
            if _is_packed(values[key]):
                _unpack_rows(values[key], target[:stored], key)
            else:
                target[:stored] = values[key]
            target[stored:] = 0
        self._num_added = num_added
        self._num_valid = int(self._valid.sum())
        self._next_episode_step = int(state["next_episode_step"])
        self._steps_since_stop = int(state["steps_since_stop"])
        self._max_priority = float(state["max_priority"])
        if self._tree is not None:
            priorities = np.zeros(self._capacity)
            priorities[:stored] = state["priorities"]
            self._tree.set_values(priorities)
        self._rng.bit_generator.state = state["rng_state"]


def _pack_rows(array: np.ndarray) -> dict[str, Any]:
    """``array`` (C-contiguous) zlib-compressed in chunks of whole rows, read in place."""
    row_bytes = max(1, array[0].nbytes) if len(array) else 1
    rows = max(1, _CHUNK_BYTES // row_bytes)
    chunks = [zlib.compress(array[start:start + rows], _COMPRESSION_LEVEL)
              for start in range(0, len(array), rows)]
    return {"zlib_chunks": chunks, "chunk_rows": rows, "shape": list(array.shape),
            "dtype": array.dtype.str}


def _is_packed(value: Any) -> bool:
    return isinstance(value, dict) and "zlib_chunks" in value


def _unpack_rows(packed: dict[str, Any], target: np.ndarray, key: str) -> None:
    """Decompress ``_pack_rows``'s chunks into ``target``, one chunk at a time."""
    if np.dtype(packed["dtype"]) != target.dtype:
        raise ValueError(f"replay state array {key!r} holds {np.dtype(packed['dtype'])}, "
                         f"expected {target.dtype}")
    filled, row_bytes = 0, max(1, target[0].nbytes) if len(target) else 1
    for chunk in packed["zlib_chunks"]:
        expected = min(int(packed["chunk_rows"]), len(target) - filled) * row_bytes
        try:  # bufsize: the output's size, given up front, saves the reallocations (3x faster)
            rows = np.frombuffer(zlib.decompress(chunk, bufsize=max(1, expected)), dtype=target.dtype)
            rows = rows.reshape(-1, *target.shape[1:])
        except (zlib.error, ValueError) as error:
            raise ValueError(f"replay state array {key!r} is corrupt ({error})") from None
        if filled + len(rows) > len(target):
            break
        target[filled:filled + len(rows)] = rows
        filled += len(rows)
    if filled != len(target):
        raise ValueError(f"replay state array {key!r} is corrupt: its chunks do not hold "
                         f"{len(target)} rows")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _storable(source: np.dtype, target: np.dtype) -> bool:
    """Integers and bools go anywhere numeric; floats only to floats (no silent truncation)."""
    if source.kind in "biu":
        return target.kind in "biuf"
    return np.can_cast(source, target, casting="same_kind")


def _check_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError as error:
        raise ValueError(f"{name} must be a tuple of positive ints, got {shape!r}") from error
    if any(d <= 0 for d in shape):
        raise ValueError(f"{name} must be a tuple of positive ints, got {shape!r}")
    return shape
