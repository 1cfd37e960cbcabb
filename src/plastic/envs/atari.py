"""Atari environments under the Atari-100k protocol (Gymnasium + ale-py).

Protocol: frame skip 4 with a max-pool over the last two frames, 84x84 grayscale (area
interpolation, as Dopamine's ``cv2.INTER_AREA``), up to 30 no-op starts, no sticky actions,
minimal action set, episodes capped at 108k emulator frames (27k agent steps), a stack of 4
frames zero-padded at the start of each learning episode. Rewards are the raw game rewards.

With ``train=True`` a lost life ends the learning episode (``terminated=True``) without ending
the game: the next ``reset()`` continues the same game from the current frame. Every step's
``info`` holds ``game_over`` and, when the game ends, ``episode_return`` and ``episode_length``
(raw score and agent steps over all lives), so evaluation and logging see whole games. The
training loop evaluates with ``train=True`` envs too, as Dopamine's runner does, so that the stack
restarts at a life loss in evaluation as in training; ``train=False`` stacks across life losses.

Three settings reproduce the PLASTIC authors' Atari env instead (``env.resize``,
``env.time_limit``, ``env.life_loss_noop``; tests/golden/test_atari_env.py checks them against
frames recorded from their code): bilinear resizing bit-exact with their ``cv2.resize`` (OpenCV's
``INTER_LINEAR``), a horizon in agent steps whose last step is terminal, and one NOOP frame at the
start of a game and after each lost life.

Gymnasium's ``AtariPreprocessing`` is not used: it needs OpenCV (not a dependency here), always
restarts the game on ``reset()``, and cuts the frame skip short when a life is lost.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation

from plastic.envs.scores import ATARI_100K_GAMES, camel_to_snake
from plastic.envs.snapshot import check_same_config, generator_from_state, generator_state
from plastic.errors import MissingDependencyError

FRAME_SKIP = 4
SCREEN_SIZE = 84
_NOOP = 0  # index of NOOP in both the minimal and the full ALE action set

_INSTALL_HINT = "pip install 'ale-py>=0.10,<1' 'gymnasium>=1.0,<2'"


@functools.lru_cache(maxsize=8)
def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights, each (n_out, taps), of a 1-D area resize: output pixel i
    averages the input pixels it covers, each weighted by the fraction lying inside its span."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    pixels = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    dense = np.clip(overlap, 0.0, None) / scale
    taps = int((dense > 0).sum(axis=1).max())
    indices = np.zeros((n_out, taps), np.intp)
    weights = np.zeros((n_out, taps), np.float32)
    for i, row in enumerate(dense):
        covered = np.flatnonzero(row)
        indices[i, : covered.size] = covered
        weights[i, : covered.size] = row[covered]
    indices.flags.writeable = weights.flags.writeable = False
    return indices, weights


def area_resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D uint8 image to ``size`` = (height, width) by area averaging (rounded)."""
    if frame.ndim != 2:
        raise ValueError(f"area_resize expects a 2-D grayscale image, got shape {frame.shape}")
    # Gathers of a few taps rather than dense matrix products: BLAS threads contend badly with
    # the learner's threads, and each output pixel only touches 2-3 input pixels per axis.
    row_idx, row_w = _area_taps(frame.shape[0], size[0])
    col_idx, col_w = _area_taps(frame.shape[1], size[1])
    rows = (frame.astype(np.float32)[row_idx] * row_w[:, :, None]).sum(axis=1)
    resized = (rows[:, col_idx] * col_w).sum(axis=2)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


_LINEAR_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: 11-bit fixed-point weights


@functools.lru_cache(maxsize=8)
def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(left index, right index, left weight, right weight), each (n_out,), of a 1-D bilinear
    resize with OpenCV's arithmetic: half-pixel centres computed in float32, edges clamped, and
    weights rounded to 11-bit fixed point."""
    scale = 1.0 / (n_out / n_in)  # as OpenCV: the inverse of its (double) inverse scale
    centres = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    left = np.floor(centres).astype(np.int64)
    frac = centres - left.astype(np.float32)
    at_edge = (left < 0) | (left >= n_in - 1)
    frac[at_edge] = 0.0
    left = np.clip(left, 0, n_in - 1)
    right = np.minimum(left + 1, n_in - 1)
    w_right = np.rint(frac * np.float32(_LINEAR_COEF_SCALE))
    w_left = np.rint((np.float32(1.0) - frac) * np.float32(_LINEAR_COEF_SCALE))
    taps = (left.astype(np.intp), right.astype(np.intp), w_left.astype(np.int32), w_right.astype(np.int32))
    for array in taps:
        array.flags.writeable = False
    return taps


def bilinear_resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D uint8 image to ``size`` = (height, width) as OpenCV's ``cv2.resize(frame,
    (width, height))`` does with its default ``INTER_LINEAR``, bit for bit.

    Rows are interpolated first in exact integers (fixed-point weights summing to 2048), then
    columns with the rounding of OpenCV's vectorised 8-bit path (the one its x86 and ARM builds
    run): the row sums lose their 4 low bits, each product with a column weight keeps its high 16
    bits, and the sum is rounded off by 2 more bits. OpenCV's scalar fallback rounds only once,
    which differs by 1 on some pixels. Checked bit-exact against opencv-python-headless 4.6.0.66
    (the authors' pin) and 5.1.0 for 210x160 -> 84x84 (tests/golden/test_atari_env.py); other
    sizes are not guaranteed (upscaling differs by 1 on some pixels of the edge rows).
    """
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError(f"bilinear_resize expects a 2-D uint8 image, got {frame.dtype} {frame.shape}")
    row0, row1, row_w0, row_w1 = _linear_taps(frame.shape[0], size[0])
    col0, col1, col_w0, col_w1 = _linear_taps(frame.shape[1], size[1])
    pixels = frame.astype(np.int32)
    horizontal = pixels[:, col0] * col_w0 + pixels[:, col1] * col_w1  # at most 255 * 2048
    horizontal >>= 4
    resized = ((horizontal[row0] * row_w0[:, None]) >> 16) + ((horizontal[row1] * row_w1[:, None]) >> 16)
    resized += 2
    resized >>= 2
    return resized.astype(np.uint8)


RESIZERS = {"area": area_resize, "bilinear": bilinear_resize}
TIME_LIMITS = ("frames", "agent_steps")


class AtariProtocol(gym.Wrapper):
    """No-op starts, frame skip with max-pool, resize, life-loss terminals and whole-game stats.

    Wraps an ale-py ``AtariEnv`` made with ``obs_type="grayscale"`` and ``frameskip=1``.
    Observations are single (screen_size, screen_size) uint8 frames; stack them outside.

    The authors' settings: ``resize="bilinear"``; ``horizon=H``, which ends the game
    (``terminated=True``) on the step taken with H agent steps of the game already behind it, so a
    game lasts at most H + 1 steps, life losses included and start no-ops not; and
    ``life_loss_noop=True``, one NOOP frame (its reward dropped) right after the game's reset and
    after every frame skip that loses a life but not the last one. After a lost life the new
    frame is then the one after the NOOP alone, not max-pooled, as their env's internal reset
    zeroes the previous screen; with ``terminal_on_life_loss=False`` it is pooled with the screen
    of the skip's third frame, as their ``episodic_lives=False``.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        seed: int | None,
        terminal_on_life_loss: bool,
        frame_skip: int = FRAME_SKIP,
        noop_max: int = 30,
        screen_size: int = SCREEN_SIZE,
        resize: str = "area",
        horizon: int | None = None,
        life_loss_noop: bool = False,
    ) -> None:
        super().__init__(env)
        if getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("AtariProtocol skips frames itself: make the ALE env with frameskip=1")
        if env.observation_space.shape is None or len(env.observation_space.shape) != 2:
            raise ValueError("AtariProtocol needs grayscale screens: obs_type='grayscale'")
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        if noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {noop_max}")
        if noop_max > 0 and env.unwrapped.get_action_meanings()[_NOOP] != "NOOP":
            raise ValueError("no-op starts need action 0 to be NOOP")
        if life_loss_noop and env.unwrapped.get_action_meanings()[_NOOP] != "NOOP":
            raise ValueError("life_loss_noop needs action 0 to be NOOP")
        if resize not in RESIZERS:
            raise ValueError(f"resize must be one of {', '.join(RESIZERS)}, got {resize!r}")
        if horizon is not None and horizon < 0:
            raise ValueError(f"horizon must be >= 0 or None, got {horizon}")
        self.frame_skip = frame_skip
        self.noop_max = noop_max
        self.screen_size = screen_size
        self.terminal_on_life_loss = terminal_on_life_loss
        self.resize = resize
        self.horizon = horizon
        self.life_loss_noop = life_loss_noop
        self.observation_space = spaces.Box(0, 255, (screen_size, screen_size), np.uint8)

        self._pending_seed = seed  # seeds the ALE at the next new game, then cleared
        self._noop_rng = np.random.default_rng(seed)
        self._screens: deque[np.ndarray] = deque(maxlen=2)
        self._observation = np.zeros(self.observation_space.shape, np.uint8)
        self._lives = 0
        self._continue_after_life_loss = False
        self._episode_return = 0.0
        self._episode_length = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._pending_seed = seed
            self._noop_rng = np.random.default_rng(seed)
        elif self._continue_after_life_loss:
            # Same game, new learning episode: no no-ops, the current frame as first observation.
            self._continue_after_life_loss = False
            info = {
                "lives": self._lives,
                "episode_frame_number": self.env.unwrapped.ale.getEpisodeFrameNumber(),
                "frame_number": self.env.unwrapped.ale.getFrameNumber(),
                "new_game": False,
                "noops": 0,
            }
            return self._observation.copy(), info
        return self._new_game(options)

    def _new_game(self, options: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        self._continue_after_life_loss = False
        seed, self._pending_seed = self._pending_seed, None
        screen, info = self.env.reset(seed=seed, options=options)
        if self.life_loss_noop:
            screen, _, _, _, info = self.env.step(_NOOP)
        noops = int(self._noop_rng.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            screen, _, terminated, truncated, info = self.env.step(_NOOP)
            if terminated or truncated:
                screen, info = self.env.reset(options=options)
        self._screens.clear()
        self._screens.append(screen)
        self._lives = int(info["lives"])
        self._episode_return = 0.0
        self._episode_length = 0
        return self._pool_and_resize(), {**info, "new_game": True, "noops": noops}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # Only a reset right after a life-loss terminal continues the game.
        self._continue_after_life_loss = False
        total_reward = 0.0
        for _ in range(self.frame_skip):
            screen, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            self._screens.append(screen)
            if terminated or truncated:
                break
        self._episode_return += total_reward
        self._episode_length += 1

        lives = int(info["lives"])
        life_lost = lives < self._lives
        self._lives = lives
        if life_lost and lives > 0 and self.life_loss_noop:
            screen, _, terminated, truncated, info = self.env.step(_NOOP)
            if self.terminal_on_life_loss:
                self._screens.clear()
            else:
                self._screens.pop()
            self._screens.append(screen)
        if self.horizon is not None and self._episode_length > self.horizon:
            terminated = True  # the authors' horizon: terminal for learning, and the game ends
        game_over = bool(terminated or truncated)
        info = {**info, "game_over": game_over}
        if game_over:
            info["episode_return"] = self._episode_return
            info["episode_length"] = self._episode_length
        elif life_lost and self.terminal_on_life_loss:
            terminated = True
            self._continue_after_life_loss = True
        return self._pool_and_resize(), total_reward, bool(terminated), bool(truncated), info

    def _pool_and_resize(self) -> np.ndarray:
        frame = self._screens[0]
        if len(self._screens) == 2:
            frame = np.maximum(self._screens[0], self._screens[1])
        self._observation = RESIZERS[self.resize](frame, (self.screen_size, self.screen_size))
        return self._observation.copy()

    def get_state(self) -> dict[str, Any]:
        """Everything needed to go on exactly from here, as plain values and bytes: the emulator
        (with its RNG), the no-op stream, the last screens, lives, the life-loss flag and the
        running game stats. Use ``plastic.envs.snapshot.get_env_state`` for a whole env."""
        config = self._snapshot_config()
        if config["repeat_action_probability"] > 0:
            # ALE keeps the previous (sticky) action outside the state it clones, so a restored
            # emulator would repeat a different action than the original one.
            raise ValueError(
                "Exact snapshots of Atari envs need repeat_action_probability=0: ale-py does "
                "not save the sticky previous action in its cloned state"
            )
        base = self.env.unwrapped
        return {
            "config": config,
            "ale": base.ale.cloneState(include_rng=True).serialize(),
            "base_np_random": generator_state(base._np_random),
            "base_np_random_seed": base._np_random_seed,
            "pending_seed": self._pending_seed,
            "noop_rng": generator_state(self._noop_rng),
            "screens": [screen.copy() for screen in self._screens],
            "observation": self._observation.copy(),
            "lives": self._lives,
            "continue_after_life_loss": self._continue_after_life_loss,
            "episode_return": self._episode_return,
            "episode_length": self._episode_length,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``get_state`` of an env made with the same arguments)."""
        check_same_config("Atari", state["config"], self._snapshot_config())
        from ale_py import ALEState

        base = self.env.unwrapped
        base.ale.restoreState(ALEState(state["ale"]))
        base._np_random = generator_from_state(state["base_np_random"])
        base._np_random_seed = state["base_np_random_seed"]
        self._pending_seed = state["pending_seed"]
        self._noop_rng = generator_from_state(state["noop_rng"])
        self._screens = deque((screen.copy() for screen in state["screens"]), maxlen=2)
        self._observation = state["observation"].copy()
        self._lives = state["lives"]
        self._continue_after_life_loss = state["continue_after_life_loss"]
        self._episode_return = state["episode_return"]
        self._episode_length = state["episode_length"]

    def _snapshot_config(self) -> dict[str, Any]:
        """Settings a snapshot must agree on; the seed is not one (it lives in the RNG states)."""
        base = self.env.unwrapped
        return {
            "game": base._game,
            "mode": base._game_mode,
            "difficulty": base._game_difficulty,
            "action_set": [action.value for action in base._action_set],
            "max_num_frames_per_episode": base.ale.getInt("max_num_frames_per_episode"),
            "repeat_action_probability": base.ale.getFloat("repeat_action_probability"),
            "frame_skip": self.frame_skip,
            "noop_max": self.noop_max,
            "screen_size": self.screen_size,
            "terminal_on_life_loss": self.terminal_on_life_loss,
            "resize": self.resize,
            "horizon": self.horizon,
            "life_loss_noop": self.life_loss_noop,
        }


def _unknown_game_error(game: str) -> ValueError:
    return ValueError(
        f"Unknown Atari game {game!r}. The Atari-100k games are: {', '.join(ATARI_100K_GAMES)}. "
        "Any other game known to ale-py also works, in snake_case (e.g. 'space_invaders')."
    )


def ale_game_id(game: str) -> str:
    """The ale-py ROM id (snake_case) for ``game``, given in snake_case or CamelCase."""
    try:
        from ale_py import roms
    except ImportError as error:
        raise MissingDependencyError(f"Atari environments need ale-py: {_INSTALL_HINT}") from error
    known = roms.get_all_rom_ids()
    game_id = game if game in known else camel_to_snake(game)
    if game_id not in known:
        raise _unknown_game_error(game)
    try:
        roms.get_rom_path(game_id)
    except OSError as error:
        raise RuntimeError(
            f"The ROM of {game_id!r} is missing or corrupt in the ale-py install ({error}); "
            f"reinstall it: pip install --force-reinstall 'ale-py>=0.10,<1'"
        ) from error
    return game_id


def make_atari_env(
    game: str,
    seed: int,
    *,
    train: bool,
    frame_stack: int = 4,
    noop_max: int = 30,
    max_episode_steps: int = 27_000,
    time_limit: str = "frames",
    max_episode_frames: int | None = None,
    resize: str = "area",
    life_loss_noop: bool = False,
    repeat_action_probability: float = 0.0,
    full_action_space: bool = False,
) -> gym.Env:
    """An Atari game under the Atari-100k protocol; observations uint8 (frame_stack, 84, 84).

    ``train=True`` makes a lost life terminal for learning (the game goes on at the next
    ``reset()``); ``train=False`` plays whole games. ``seed`` seeds the ALE and the no-op
    starts, so equal seeds and actions give equal trajectories.

    ``time_limit="frames"``: ALE's own cap of ``max_episode_frames`` emulator frames (default
    4 x ``max_episode_steps``), counted from the start of the game, no-ops included; it ends the
    game with ``truncated=True``. ``time_limit="agent_steps"``: the authors' horizon of
    ``max_episode_steps`` agent steps after the start no-ops, whose last step (the game's
    ``max_episode_steps + 1``-th, as their counter checks before it counts) ends the game with
    ``terminated=True``; the ALE has no frame cap then. ``resize`` and ``life_loss_noop``: see
    ``AtariProtocol``.
    """
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if time_limit not in TIME_LIMITS:
        raise ValueError(f"time_limit must be one of {', '.join(TIME_LIMITS)}, got {time_limit!r}")
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if time_limit == "agent_steps" and max_episode_frames is not None:
        raise ValueError("time_limit='agent_steps' has no frame cap: leave max_episode_frames unset")
    if max_episode_frames is None and time_limit == "frames":
        max_episode_frames = FRAME_SKIP * max_episode_steps
    if max_episode_frames is not None and max_episode_frames < 1:
        raise ValueError(f"max_episode_frames must be >= 1, got {max_episode_frames}")
    if not 0.0 <= repeat_action_probability <= 1.0:
        raise ValueError(
            f"repeat_action_probability must be in [0, 1], got {repeat_action_probability}"
        )
    game_id = ale_game_id(game)
    from ale_py.env import AtariEnv

    base = AtariEnv(
        game=game_id,
        obs_type="grayscale",
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=full_action_space,
        max_num_frames_per_episode=max_episode_frames,
    )
    env = AtariProtocol(
        base, seed=seed, terminal_on_life_loss=train, noop_max=noop_max, resize=resize,
        horizon=max_episode_steps if time_limit == "agent_steps" else None,
        life_loss_noop=life_loss_noop,
    )
    return FrameStackObservation(env, frame_stack, padding_type="zero")
