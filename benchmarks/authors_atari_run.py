"""A whole Atari-100k run of the PLASTIC authors' own agent, to set beside ours.

Our `drq` at replay ratio 1 does not learn Pong (benchmarks/atari100k/README.md, "Pong: the
authors' agent does not learn it either"), although the golden tests hold its frames, update and
replay to the authors' code. What they do not cover is a whole run of their agent: this script
runs one — their training loop (``BaseAgent.train``), their env class, replay, model, augmentation
and schedules, composed from their ``configs/drq.yaml`` as their ``run.py`` composes it —
and writes what it scored.

Their code never enters our repository: it is imported from a checkout named by
``PLASTIC_AUTHORS_DIR`` (fetch github.com/dojeon-ai/PLASTIC and export it outside our repo; see
``tests/golden/generate_atari_env.py``). It needs, besides our venv: ``pip install einops
omegaconf dotmap opencv-python-headless``. Stand-ins: wandb (nothing is logged there: the scores
come back here), kornia (only its slow crop, which ``random_shift`` does not use), and atari_py
and gym, served by ale-py and gymnasium through the golden env generator's adapters (their env
on ale-py's emulator, as ours); the start no-ops draw from a seeded ``RandomState`` as gym's
``seeding`` did. Their metric evaluation every 200 steps (``evaluate_freq``: Fisher and
activation statistics, no effect on training but the random draws it takes) is off, so a run's
random stream differs from theirs; the final 100-game rollout (``rollout_freq``) is theirs.

Their loop keeps no checkpoint: a run needs one uninterrupted stretch (≈ 4 h on one core of our
AVX-512 CPUs at replay ratio 1, their `drq` update ≈ 140 ms; 2.45 h on both cores of an AMX Xeon,
with nothing else running: another job on either core makes their two-thread update 2.5-4.5x
slower). Its first run, Pong seed 0, scored -20.43 (benchmarks/atari100k/README.md). Usage::

    PLASTIC_AUTHORS_DIR=/work/authors .venv/bin/python benchmarks/authors_atari_run.py \\
        --game pong --seed 0 --replay-ratio 1 --out /work/authors-runs/pong-rr1-seed0.json
    # a quick look that it runs (2,000 random steps, then 200 updates; ≈ 75 s here):
    #   --steps 2200 --eval-games 1 --out /tmp/authors-smoke.json

The JSON holds the final rollout's game scores and mean, every training game's score with the
step it ended at, the overrides and the wall time. Each training game is also appended, as it ends,
to ``<out>.train-games.jsonl`` (step, score, seconds since the start): a run cut short still shows
its learning curve.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def import_authors_code(root: Path) -> types.SimpleNamespace:
    """Their env class, agent and model builders, with the stand-ins the docstring names."""
    sys.path.insert(0, str(GOLDEN))
    from generate_atari_env import import_authors_env

    import_authors_env(root)  # the gym and atari_py stand-ins
    for name in [name for name in sys.modules if name == "src" or name.startswith("src.")]:
        del sys.modules[name]  # its empty `src` packages: here their real ones load (registries)
    seeding = sys.modules["gym.utils.seeding"]
    seeding.np_random = lambda seed=None: (np.random.RandomState(seed), seed)  # gym's old API
    wandb = types.ModuleType("wandb")
    wandb.init = wandb.log = wandb.finish = lambda *args, **kwargs: None
    wandb.Settings = lambda **kwargs: None
    kornia = types.ModuleType("kornia")
    kornia.augmentation = types.ModuleType("kornia.augmentation")
    sys.modules.update({"wandb": wandb, "kornia": kornia, "kornia.augmentation": kornia.augmentation})
    sys.path.insert(0, str(root / "atari"))
    from src.agents import build_agent
    from src.common.logger import AgentLogger
    from src.envs import build_env
    from src.models import build_model

    return types.SimpleNamespace(build_agent=build_agent, build_env=build_env, build_model=build_model,
                                 AgentLogger=AgentLogger)


def compose_config(root: Path, overrides: dict[str, Any]) -> Any:
    """Their ``configs/drq.yaml`` with its defaults (agent drq, env atari, model nature: backbone
    nature, head identity, policy rainbow_d512_std05), then dotted overrides, as hydra's compose."""
    from omegaconf import OmegaConf

    configs = root / "atari" / "configs"
    top = OmegaConf.load(configs / "drq.yaml")
    top.pop("defaults")
    model = OmegaConf.load(configs / "model" / "nature.yaml")
    parts = {name: choice for entry in model.pop("defaults") for name, choice in entry.items()}
    cfg = OmegaConf.merge(top, {
        "agent": OmegaConf.load(configs / "agent" / "drq.yaml"),
        "env": OmegaConf.load(configs / "env" / "atari.yaml"),
        "model": {name: OmegaConf.load(configs / "model" / name / f"{choice}.yaml")
                  for name, choice in parts.items()},
    })
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


class ScoreRecorder:
    """Their logger's interface: the games' scores come back here instead of going to wandb."""

    def __init__(self, code: types.SimpleNamespace, game: str, progress: Path | None = None) -> None:
        self.train = code.AgentLogger(average_len=10, env_type="atari", game=game)
        self.eval = code.AgentLogger(average_len=10**6, env_type="atari", game=game)
        self.timestep = 0
        self.train_games: list[tuple[int, float]] = []
        self.progress = progress
        self.started = time.time()

    def step(self, state: Any, reward: float, done: bool, info: Any, mode: str = "train") -> None:
        if mode == "train":
            self.timestep += 1
            self.train.step(state, reward, done, info)
            if info.traj_done:
                game = (self.timestep, float(self.train.traj_game_scores_buffer[-1]))
                self.train_games.append(game)
                if self.progress is not None:  # a run cut short still shows how far it learned
                    seconds = round(time.time() - self.started, 1)
                    with self.progress.open("a") as stream:
                        stream.write(json.dumps({"step": game[0], "score": game[1],
                                                 "wall_seconds": seconds}) + "\n")
        else:
            self.eval.step(state, reward, done, info)

    def update_log(self, mode: str = "train", **values: Any) -> None:
        pass

    def write_log(self, mode: str = "train") -> None:
        pass


def run(root: Path, overrides: dict[str, Any], threads: int, progress: Path | None = None) -> dict[str, Any]:
    import tqdm

    # their loop's progress bar would write 100k updates of itself into a log
    tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)
    code = import_authors_code(root)
    cfg = compose_config(root, overrides)
    torch.set_num_threads(threads)
    seed = int(cfg.seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    import random

    random.seed(seed)  # their set_global_seeds
    cfg.env.seed = seed
    train_env, eval_env = code.build_env(cfg.env)
    for key, value in (("obs_shape", train_env.observation_space.shape),
                       ("action_size", int(train_env.action_space.n))):
        for section in (cfg.model.backbone, cfg.model.head, cfg.model.policy, cfg.agent):
            if key in section:
                section[key] = value
    recorder = ScoreRecorder(code, str(cfg.env.game), progress)
    model = code.build_model(cfg.model)
    agent = code.build_agent(cfg=cfg.agent, device=torch.device(cfg.device), train_env=train_env,
                             eval_env=eval_env, logger=recorder, model=model)
    started = time.time()
    agent.train()
    scores = [float(s) for s in recorder.eval.traj_game_scores_buffer]
    return {"game": str(cfg.env.game), "seed": seed, "overrides": overrides,
            "final_scores": scores, "final_score": float(np.mean(scores)) if scores else None,
            "train_games": recorder.train_games, "wall_seconds": round(time.time() - started, 1),
            "threads": threads, "device": str(cfg.device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="pong")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay-ratio", type=int, default=1, help="their optimize_per_env_step")
    parser.add_argument("--steps", type=int, default=100_000, help="agent steps (their num_timesteps)")
    parser.add_argument("--eval-games", type=int, default=100, help="games of the final rollout")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="JSON file for the results")
    args = parser.parse_args(argv)
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root or not (Path(root) / "atari" / "src").is_dir():
        parser.error("set PLASTIC_AUTHORS_DIR to a checkout of github.com/dojeon-ai/PLASTIC")
    overrides = {"env.game": args.game, "seed": args.seed, "device": args.device,
                 "agent.optimize_per_env_step": args.replay_ratio, "agent.num_timesteps": args.steps,
                 "agent.rollout_freq": args.steps, "agent.num_eval_trajectories": args.eval_games,
                 "agent.evaluate_freq": -1, "agent.log_freq": 10**9}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = out.with_suffix(".train-games.jsonl")
    progress.unlink(missing_ok=True)
    result = run(Path(root), overrides, args.threads, progress)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("final_scores", "train_games")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
