"""Golden fixtures of the Atari env, made by running the PLASTIC authors' own env class.

Their code never enters our repository; this script imports their ``AtariEnv`` (atari/src/envs/
atari.py) from a checkout and records what it returns. To get the checkout, fetch
github.com/dojeon-ai/PLASTIC (e.g. with the search tool's ``fetch``, which gives a bare mirror)
and export it outside our repo::

    mkdir -p /work/authors && git --git-dir=MIRROR archive HEAD | tar -x -C /work/authors

Besides our venv's ale-py and numpy, their env needs OpenCV: ``pip install
opencv-python-headless`` into the venv (any 4.x or 5.x; the authors pinned 4.6.0.66, which gives
the same fixtures as 5.1.0). Their other imports are replaced here by small stand-ins: ``atari_py``
by an adapter that serves atari_py's ``ALEInterface`` calls from ale-py's (so their env runs on
ale-py's emulator and ROMs, as ours does), ``gym`` by gymnasium's spaces and a ``seeding`` whose
``np_random`` hands out the start no-op counts fixed below (and whose ALE seed is their seed + 1:
Breakout and Pong play the same for any ALE seed without sticky actions), and their ``src``
package folders by empty packages, so that their ``__init__`` files (omegaconf, class registries)
do not run. Then::

    PLASTIC_AUTHORS_DIR=/work/authors .venv/bin/python tests/golden/generate_atari_env.py

Each scenario is saved as ``fixtures/atari_env/SCENARIO.npz``: the settings, the actions, the
forced no-op counts, and per event (a ``reset()`` or a ``step()`` of their env, as their training
loop calls them: reset only when ``traj_done``) the observation (4x84x84 frames, stored as a table
of distinct frames and per event the table rows of its stack), the clipped reward, the raw game
score, ``done``, ``traj_done`` and the ALE's lives after it. ``resize.npz`` holds max-pooled
210x160 grayscale screens from their env with the 84x84 frames their ``cv2.resize`` made of them,
and two noise images through the same call. Running the script again gives identical files.
"""

from __future__ import annotations

import io
import os
import sys
import types
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atari_env"
MAX_START_NOOPS = 30

# name -> their env's settings, the start no-op counts of the explicit resets, and how to play:
# "steps" agent steps with actions drawn from "action_seed", then "after" more past each game end.
SCENARIOS: dict[str, dict[str, Any]] = {
    # A whole game of Breakout with life-loss terminals (their default episodic_lives=True).
    "breakout_lives": dict(game="breakout", episodic_lives=True, horizon=27_000, noops=[17, 4],
                           action_seed=0, until_game_over=True, after=6),
    # Their horizon, small: 50 steps behind the step that ends the game; life losses on the way.
    "breakout_horizon": dict(game="breakout", episodic_lives=True, horizon=50, noops=[30, 1, 9],
                             action_seed=1, steps=110),
    "pong_horizon": dict(game="pong", episodic_lives=True, horizon=50, noops=[12, 25],
                         action_seed=2, steps=60),
    # episodic_lives=False (ours: train=False): a life loss is no terminal, the stack goes on.
    "breakout_whole_game": dict(game="breakout", episodic_lives=False, horizon=27_000, noops=[8],
                                action_seed=3, until_game_over=True, after=0),
}
RESIZE_GAMES = {"breakout": 0, "pong": 1, "ms_pacman": 2, "seaquest": 3}  # game -> action seed
RESIZE_STEPS = (25, 70)  # the screens after these agent steps


# ----------------------------------------------------------------------------- stand-ins
_forced_noops: list[int] = []


class _ForcedNoops:
    """Stands in for their ``np_random``: ``randint`` (only used for the start no-ops) returns the
    next forced count."""

    def randint(self, low: int, high: int) -> int:
        count = _forced_noops.pop(0)
        assert low <= count < high, (low, count, high)
        return count


def _seeding_module() -> types.ModuleType:
    seeding = types.ModuleType("gym.utils.seeding")
    seeding.np_random = lambda seed=None: (_ForcedNoops(), seed)
    seeding.hash_seed = lambda seed: int(seed)
    return seeding


class _AtariPyALE:
    """atari_py's ``ALEInterface`` calls, served by ale-py's: byte-string keys, the minimal action
    set as integers, and grayscale screens shaped (210, 160, 1)."""

    def __init__(self) -> None:
        import ale_py

        self._ale = ale_py.ALEInterface()
        self._ale.setLoggerMode(ale_py.LoggerMode.Error)

    def setInt(self, key: bytes, value: int) -> None:  # noqa: N802 - atari_py's names
        self._ale.setInt(key.decode(), int(value))

    def setFloat(self, key: bytes, value: float) -> None:  # noqa: N802
        self._ale.setFloat(key.decode(), float(value))

    def loadROM(self, path: str) -> None:  # noqa: N802
        self._ale.loadROM(path)

    def getMinimalActionSet(self) -> np.ndarray:  # noqa: N802
        return np.array([action.value for action in self._ale.getMinimalActionSet()], np.intc)

    def getScreenGrayscale(self, screen: np.ndarray | None = None) -> np.ndarray:  # noqa: N802
        if screen is None:
            screen = np.empty((210, 160, 1), np.uint8)
        self._ale.getScreenGrayscale(screen.reshape(210, 160))
        return screen

    def act(self, action: int) -> int:
        return self._ale.act(int(action))

    def lives(self) -> int:
        return self._ale.lives()

    def game_over(self) -> bool:
        return self._ale.game_over()

    def reset_game(self) -> None:
        self._ale.reset_game()


def import_authors_env(root: Path) -> type:
    """Their ``AtariEnv`` class, imported from ``root``/atari/src/envs/atari.py with stand-ins."""
    import gymnasium
    from ale_py import roms

    gym = types.ModuleType("gym")
    gym.spaces = gymnasium.spaces
    gym.utils = types.ModuleType("gym.utils")
    gym.utils.seeding = _seeding_module()
    atari_py = types.ModuleType("atari_py")
    atari_py.ALEInterface = _AtariPyALE
    atari_py.get_game_path = lambda game: str(roms.get_rom_path(game))
    sys.modules.update({"gym": gym, "gym.spaces": gym.spaces, "gym.utils": gym.utils,
                        "gym.utils.seeding": gym.utils.seeding, "atari_py": atari_py})
    for name, folder in (("src", ""), ("src.envs", "envs"), ("src.common", "common")):
        package = types.ModuleType(name)
        package.__path__ = [str(root / "atari" / "src" / folder)]
        sys.modules[name] = package
    from src.envs.atari import AtariEnv

    return AtariEnv


@contextmanager
def forced_noops(counts: list[int]) -> Iterator[None]:
    _forced_noops[:] = counts
    yield
    assert not _forced_noops, f"no-op counts left unused: {_forced_noops}"


# ----------------------------------------------------------------------------- recording
def make_env(AtariEnv: type, game: str, episodic_lives: bool, horizon: int) -> Any:
    # Their defaults otherwise: frame_skip 4, 4 frames, clipped rewards, 30 no-ops, no sticky
    # actions. Their constructor resets once (no-op count 1 here); their loop resets again.
    with forced_noops([1]):
        return AtariEnv(game=game, episodic_lives=episodic_lives, horizon=horizon,
                        max_start_noops=MAX_START_NOOPS, seed=0)


def record_scenario(AtariEnv: type, settings: dict[str, Any]) -> dict[str, np.ndarray]:
    env = make_env(AtariEnv, settings["game"], settings["episodic_lives"], settings["horizon"])
    num_actions = env.action_space.n
    actions = np.random.default_rng(settings["action_seed"]).integers(num_actions, size=10_000)
    events: list[dict[str, Any]] = []

    def record(kind: int, action: int, obs: np.ndarray, reward: float = 0.0, game_score: float = 0.0,
               done: bool = False, traj_done: bool = False) -> None:
        events.append(dict(kind=kind, action=action, obs=obs[:, 0], reward=reward,
                           game_score=game_score, done=done, traj_done=traj_done,
                           lives=env.ale.lives()))

    with forced_noops(list(settings["noops"])):
        record(0, -1, env.reset())
        steps, left_after_game_over = 0, None
        while True:
            if settings.get("until_game_over"):
                if left_after_game_over == 0:
                    break
            elif steps == settings["steps"]:
                break
            action = int(actions[steps])
            obs, reward, done, info = env.step(action)
            steps += 1
            record(1, action, obs, float(reward), float(info.game_score), bool(done),
                   bool(info.traj_done))
            if left_after_game_over is not None:
                left_after_game_over -= 1
            if info.traj_done:
                if settings.get("until_game_over") and left_after_game_over is None:
                    left_after_game_over = settings["after"]
                    if left_after_game_over == 0:
                        break
                record(0, -1, env.reset())

    table, stack_rows = frame_table([event["obs"] for event in events])
    fields = {key: np.array([event[key] for event in events]) for key in
              ("kind", "action", "reward", "game_score", "done", "traj_done", "lives")}
    return {
        "game": np.array(settings["game"]),
        "episodic_lives": np.array(settings["episodic_lives"]),
        "horizon": np.array(settings["horizon"]),
        "max_start_noops": np.array(MAX_START_NOOPS),
        "noops": np.array(settings["noops"]),
        "frames": table,
        "stack_rows": stack_rows,
        "kind": fields["kind"].astype(np.uint8),
        "action": fields["action"].astype(np.int16),
        "reward": fields["reward"].astype(np.float32),
        "game_score": fields["game_score"].astype(np.float32),
        "done": fields["done"].astype(bool),
        "traj_done": fields["traj_done"].astype(bool),
        "lives": fields["lives"].astype(np.int16),
    }


def frame_table(stacks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct frames (F, 84, 84) and each stack's rows in that table (E, 4): lossless, smaller."""
    rows: dict[bytes, int] = {}
    frames: list[np.ndarray] = []
    index = np.zeros((len(stacks), stacks[0].shape[0]), np.int16)
    for e, stack in enumerate(stacks):
        for k, frame in enumerate(stack):
            key = frame.tobytes()
            if key not in rows:
                rows[key] = len(frames)
                frames.append(frame)
            index[e, k] = rows[key]
    return np.stack(frames), index


def record_resize(AtariEnv: type) -> dict[str, np.ndarray]:
    import cv2

    raws, resized, sources = [], [], []
    for game, seed in RESIZE_GAMES.items():
        env = make_env(AtariEnv, game, True, 27_000)
        actions = np.random.default_rng(seed).integers(env.action_space.n, size=max(RESIZE_STEPS))
        with forced_noops([MAX_START_NOOPS]):
            env.reset()
        for step, action in enumerate(actions, start=1):
            obs = env.step(int(action)).observation
            if step in RESIZE_STEPS:
                raws.append(env._max_frame[:, :, 0].copy())  # the screen their resize was given
                resized.append(obs[-1, 0])
                sources.append(f"{game}@{step}")
    for seed in (0, 1):  # full-range noise reaches every rounding case
        noise = np.random.default_rng(seed).integers(0, 256, (210, 160), dtype=np.uint8)
        raws.append(noise)
        resized.append(cv2.resize(noise, (84, 84), cv2.INTER_LINEAR))  # their call, verbatim args
        sources.append(f"noise{seed}")
    return {"raw": np.stack(raws), "resized": np.stack(resized), "source": np.array(sources)}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> None:
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root or not (Path(root) / "atari" / "src" / "envs" / "atari.py").is_file():
        sys.exit("Set PLASTIC_AUTHORS_DIR to a checkout of github.com/dojeon-ai/PLASTIC (see the docstring)")
    AtariEnv = import_authors_env(Path(root))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, settings in SCENARIOS.items():
        arrays = record_scenario(AtariEnv, settings)
        save_npz(FIXTURES / f"{name}.npz", arrays)
        steps = int((arrays["kind"] == 1).sum())
        life_losses = int((arrays["done"] & ~arrays["traj_done"]).sum())
        print(f"{name}: {steps} steps, {life_losses} life-loss terminals, "
              f"{int(arrays['traj_done'].sum())} game ends, {len(arrays['frames'])} distinct frames")
    save_npz(FIXTURES / "resize.npz", record_resize(AtariEnv))
    for path in sorted(FIXTURES.glob("*.npz")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
