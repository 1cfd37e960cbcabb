"""``plastic evaluate RUN_DIR``: play a trained run's agent with the run's own evaluation protocol,
print its mean score and, where the game has pictures, write its first game as an animated GIF.

The agent comes from ``final_model.pt`` (a finished run) or else ``checkpoint.pt`` (the latest
checkpoint of an unfinished one), built from the run's ``config.json``. The games are played by
``plastic.train.evaluate.play_games`` with the suite's environments (``plastic.suites``), as
the training loop's evaluations are: the same number of games and environments in lockstep, the
agent's evaluation policy, raw scores.

Only the standard library is imported at module level: ``plastic --help`` builds this parser.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from plastic.configs.schema import Config

FINAL_MODEL = "final_model.pt"
CHECKPOINT = "checkpoint.pt"
EXAMPLES = """examples:
  plastic evaluate runs/minatar/breakout/plastic/seed0
  plastic evaluate runs/minatar/breakout/plastic/seed0 --episodes 5 --video breakout.gif
  plastic evaluate runs/atari/pong/drq/seed0 --episodes 1 --video pong.gif --max-frames 1000"""

Frame = Callable[[Any, "np.ndarray"], "np.ndarray"]  # (env, observation) -> RGB picture


@dataclass
class TrainedAgent:
    config: Config
    agent: Any
    source: Path  # the file its networks came from
    step: int | None  # agent steps trained; None when the file does not say


def add_evaluate_subcommand(subparsers: Any) -> None:
    """Adds ``evaluate`` to an ``argparse`` subparsers object (sets ``func``)."""
    parser = subparsers.add_parser(
        "evaluate", help="play a trained run's agent: its mean score, and a video of a game",
        description="Play evaluation games with a trained run's agent (final_model.pt, or its latest "
                    "checkpoint.pt) under the run's own evaluation protocol and print the mean score.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `plastic train`")
    parser.add_argument("--episodes", type=int, help="games to play (default: the run's train.eval_episodes)")
    parser.add_argument("--seed", type=int,
                        help="seeds the games' start states (default: those of the run's final "
                             "evaluation; the same seed plays the same games)")
    parser.add_argument("--video", metavar="PATH.gif",
                        help="write the first game as an animated GIF (MinAtar boards, Atari screens, "
                             "DMC camera frames)")
    parser.add_argument("--max-frames", type=int, default=2000, help="frames the video keeps (default 2000)")
    parser.add_argument("--fps", type=float, default=15.0, help="video frames per second (default 15)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.set_defaults(func=run_evaluate_from_args)


def run_evaluate_from_args(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, episodes=args.episodes, seed=args.seed, video=args.video,
                          max_frames=args.max_frames, fps=args.fps, device=args.device)
    print(result["line"])
    if result["video"] is not None:
        print(f"video: {result['video']} ({result['frames']} steps of the first game, "
              f"GIF at {args.fps:g} fps)")
    return 0


# ---------------------------------------------------------------------------------- the agent
def load_trained_agent(run_dir: str | Path, device: str = "cpu") -> TrainedAgent:
    """The agent of a run directory, with the networks of ``final_model.pt`` (or else of the latest
    ``checkpoint.pt``); ``ValueError`` / ``FileNotFoundError`` in one line when it cannot be had."""
    from plastic.configs.schema import Config
    from plastic.envs import make_env
    from plastic.runtime import resolve_device
    from plastic.suites import get_suite
    from plastic.train.checkpoint import read_json

    run_dir = Path(run_dir).expanduser().resolve()
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: RUN_DIR must be a run directory of "
                                "`plastic train` (it holds config.json)")
    config = Config.from_dict(read_json(config_path))
    source = next((run_dir / name for name in (FINAL_MODEL, CHECKPOINT) if (run_dir / name).is_file()), None)
    if source is None and (run_dir / "summary.json").is_file():  # e.g. a copy of its small artifacts
        raise FileNotFoundError(f"{run_dir} holds a finished run's records (summary.json) but not its "
                                f"model ({FINAL_MODEL}): evaluate the run directory it trained in; "
                                "copies of finished runs, such as those under benchmarks/, leave models out")
    if source is None:
        raise FileNotFoundError(f"{run_dir} has neither {FINAL_MODEL} nor {CHECKPOINT}: the run saved no "
                                "model yet; let it train to its first checkpoint or to the end")
    target = resolve_device(device)
    if config.train.cuda_graph and target.type != "cuda":
        # the graph is a training-speed setting: a run trained with it is evaluated eagerly elsewhere
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, cuda_graph=False))
    runtime = get_suite(config.suite)
    env = make_env(config.suite, config.game, config.seed, train=False, **runtime.env_kwargs(config))
    try:
        agent = runtime.agent.build(config, env.observation_space.shape, env.action_space, target)
    finally:
        env.close()
    step = _load_networks(agent, source)
    return TrainedAgent(config, agent, source, step)


def _load_networks(agent: Any, path: Path) -> int | None:
    import torch

    from plastic.agents.base import network_states
    from plastic.train.checkpoint import one_line

    final = path.name == FINAL_MODEL
    try:
        # final_model.pt holds state dicts only; checkpoint.pt also numpy arrays and RNG states (ours).
        saved = torch.load(path, map_location="cpu", weights_only=final)
    except Exception as error:  # torch raises many kinds for a truncated or foreign file
        raise ValueError(f"{path} cannot be read ({one_line(error)[:160]}); put back a good copy, or "
                         "train the run again") from None
    if not final:
        try:
            agent.load_state_dict(saved["agent"])
            return int(saved["loop"]["step"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"{path} does not hold an agent of the run's config.json "
                             f"({one_line(error)[:160]}); was it copied from another run?") from None
    # network_states gives the agent's live state dicts, whose tensors share storage with its
    # modules: copying into them loads the networks of any suite's agent.
    live = network_states(agent)
    for name, state in live.items():
        stored = saved.get(name, {}) if isinstance(saved, dict) else {}
        wrong = sorted(k for k in state if getattr(stored.get(k), "shape", None) != state[k].shape)
        if wrong:
            raise ValueError(f"{path} does not hold the networks of the run's config.json ({name}: "
                             f"{', '.join(wrong[:3])} missing or of another shape); was it copied from "
                             "another run?")
        with torch.no_grad():
            for key, tensor in state.items():
                tensor.copy_(stored[key])
    return None


# -------------------------------------------------------------------------------- the games
def evaluate_run(run_dir: str | Path, *, episodes: int | None = None, seed: int | None = None,
                 video: str | Path | None = None, max_frames: int = 2000, fps: float = 15.0,
                 device: str = "cpu") -> dict[str, Any]:
    """Plays ``episodes`` games (default: the run's ``train.eval_episodes``) with the run's agent;
    returns ``returns``, ``score`` (their mean), ``line`` (a one-line account) and ``video``/``frames``."""
    import numpy as np

    from plastic.runtime import configure_threads
    from plastic.train.evaluate import play_games

    if episodes is not None and episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")
    if video is not None:
        video = _check_video(Path(video), max_frames, fps)
    trained = load_trained_agent(run_dir, device)
    config = trained.config
    configure_threads(config.train.threads)
    frame = _frame_function(config) if video is not None else None
    recorder: list[FrameRecorder] = []
    episodes = episodes or config.train.eval_episodes
    recorded = _recorded_summary(trained)
    # By default the start states of the run's final evaluation (a run with intermediate
    # evaluations drew fresh ones at each; 0 where not recorded); --seed plays others.
    index = int(recorded.get("evaluation_index", 0)) if seed is None else 0
    states = "the run's final evaluation's start states" if seed is None and index else None
    seed = config.seed if seed is None else seed
    returns, lengths = play_games(lambda obs: trained.agent.act(obs, evaluate=True),
                                  _env_maker(config, frame, max_frames, recorder),
                                  episodes, config.train.eval_envs, seed=seed, index=index)
    score = float(np.mean(returns))
    result: dict[str, Any] = {"returns": returns, "lengths": lengths, "score": score, "video": None,
                              "frames": 0, "source": trained.source}
    if video is not None and recorder:
        result.update(video=video, frames=_write_gif(video, recorder[0].frames, fps))
    result["line"] = _summary_line(trained, returns, lengths, states or f"start states from seed {seed}",
                                   recorded.get("score"))
    return result


def _recorded_summary(trained: TrainedAgent) -> dict[str, Any]:
    """The summary.json of a finished run whose final model is played ({} for an unfinished run)."""
    from plastic.train.checkpoint import read_json

    summary = trained.source.parent / "summary.json"
    return read_json(summary) if trained.step is None and summary.is_file() else {}


def _env_maker(config: Config, frame: Frame | None, max_frames: int,
               recorder: list[FrameRecorder]) -> Callable[[int], Any]:
    """The suite's evaluation environments, as the training loop makes them; the first one records
    its first game when ``frame`` is given."""
    from plastic.envs import make_env
    from plastic.suites import get_suite

    runtime = get_suite(config.suite)

    def make(env_seed: int) -> Any:
        env = make_env(config.suite, config.game, env_seed, train=runtime.eval_with_train_envs,
                       **runtime.env_kwargs(config))
        if frame is not None and not recorder:
            recorder.append(FrameRecorder(env, frame, max_frames))
            return recorder[0]
        return env

    return make


def _summary_line(trained: TrainedAgent, returns: list[float], lengths: list[int], states: str,
                  recorded_score: float | None) -> str:
    import numpy as np

    config = trained.config
    where = f"{trained.source.name}" + (f" at step {trained.step}" if trained.step is not None else "")
    line = (f"{config.suite} {config.game}, preset {config.preset}, run seed {config.seed} ({where}): "
            f"mean score {np.mean(returns):.2f} over {len(returns)} games (std {np.std(returns):.2f}, "
            f"min {min(returns):g}, max {max(returns):g}; longest game {max(lengths)} steps; {states})")
    if recorded_score is not None:
        line += f"; the run's final evaluation scored {recorded_score:.2f}"
    return line


# ------------------------------------------------------------------------------------ video
class FrameRecorder:
    """Wraps an env (everything but reset and step passes through) and keeps a picture of every
    step of its first game, up to ``max_frames``."""

    def __init__(self, env: Any, frame: Frame, max_frames: int) -> None:
        self.env, self.frame, self.max_frames = env, frame, max_frames
        self.frames: list[np.ndarray] = []
        self.recording = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def _keep(self, obs: np.ndarray) -> None:
        if self.recording and len(self.frames) < self.max_frames:
            self.frames.append(self.frame(self.env, obs))

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._keep(obs)  # a new game, or (Atari) the same game after a lost life
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._keep(obs)
        if info.get("game_over"):
            self.recording = False
        return obs, reward, terminated, truncated, info


def _frame_function(config: Config) -> Frame:
    import numpy as np

    if config.suite == "minatar":
        return _minatar_frame
    if config.suite == "atari":
        return lambda env, obs: np.asarray(env.unwrapped.ale.getScreenRGB(), dtype=np.uint8)
    if config.env.obs != "pixels":
        raise ValueError("--video needs pixel observations: this DMC run observes the state (env.obs="
                         f"{config.env.obs}); drop --video")
    # The newest of the stacked RGB camera frames, twice the size.
    return lambda env, obs: np.kron(np.moveaxis(obs[-3:], 0, -1), np.ones((2, 2, 1), np.uint8))


def _minatar_frame(env: Any, obs: np.ndarray, cell: int = 16) -> np.ndarray:
    """A MinAtar board (C, 10, 10) as an RGB image: each cell in the colour of its highest active
    channel (as MinAtar's own display), black where none is."""
    import numpy as np

    channels = obs.shape[0]
    colours = [colorsys.hsv_to_rgb(i / channels, 0.65, 0.95) for i in range(channels)]
    palette = np.array([(0, 0, 0), *[[int(255 * c) for c in rgb] for rgb in colours]], dtype=np.uint8)
    index = np.max(obs.astype(np.int64) * np.arange(1, channels + 1)[:, None, None], axis=0)
    return np.kron(palette[index], np.ones((cell, cell, 1), np.uint8))


def _check_video(path: Path, max_frames: int, fps: float) -> Path:
    if path.suffix.lower() != ".gif":
        raise ValueError(f"--video {path}: only animated GIFs are written (with Pillow); name it "
                         f"{path.with_suffix('.gif').name}")
    if max_frames < 1 or fps <= 0:
        raise ValueError(f"--max-frames must be >= 1 and --fps > 0, got {max_frames} and {fps:g}")
    if not path.expanduser().resolve().parent.is_dir():
        raise FileNotFoundError(f"--video {path}: its directory does not exist")
    return path


def _write_gif(path: Path, frames: list[np.ndarray], fps: float) -> int:
    """Writes ``frames`` as a looping GIF; returns their number (Pillow merges identical
    consecutive frames into one shown longer, so the file may hold fewer)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)),
                   loop=0)
    return len(images)


def main(argv: list[str] | None = None) -> int:
    """``python -m plastic.train.evaluate_cli ARGS``: ``plastic evaluate ARGS`` (its errors too)."""
    from plastic.cli import main as plastic_main

    return plastic_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
