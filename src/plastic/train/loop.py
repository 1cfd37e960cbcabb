"""The off-policy training loop: act, store, update at the replay ratio, log, checkpoint, evaluate.

One loop serves every agent (Rainbow on Atari and MinAtar, DrQ (SAC) on DeepMind Control), through
the ``plastic.agents.Agent`` protocol; what differs per suite is data in ``plastic.suites``.
``Trainer._steps`` is the schedule of a run: after each agent step, the updates the replay ratio
owes, each followed by a Reset where the ``ResetSchedule`` says so; then logs, plasticity metrics,
evaluations and checkpoints, each at its own interval.

A run directory holds ``config.json``, CSV streams (``episodes``, ``train``, ``plasticity``,
``eval``), TensorBoard events under ``tb/``, ``checkpoint.pt`` (atomic; a finished run keeps its
final one) and, once finished, ``summary.json``. Running again on the same directory resumes from
the checkpoint — bit for bit on CPU —, on a finished run only reports, and with a larger
``train.steps`` extends a finished run from its final checkpoint. One process at a time holds a
run directory (``plastic.train.lock``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from plastic import metrics, provenance
from plastic.agents.base import Agent, network_states
from plastic.configs.schema import Config, saved_config_differences
from plastic.envs import get_env_state, set_env_state
from plastic.envs.scores import RANDOM_SCORES, human_normalized_score
from plastic.replay.buffer import ReplayBuffer
from plastic.reset import ResetSchedule
from plastic.runtime import configure_threads, denormals_flushed, keep_freed_memory, resolve_device
from plastic.suites import get_suite
from plastic.train.checkpoint import (
    CheckpointError,
    WriteError,
    load_checkpoint,
    read_json,
    save_checkpoint,
    write_json,
)
from plastic.train.evaluate import play_games, without_per_game
from plastic.train.lock import run_lock
from plastic.train.logger import RunLogger, read_csv
from plastic.train.stop import StopRequest, stop_requests

CHECKPOINT = "checkpoint.pt"


class ConfigMismatchError(ValueError):
    pass


class RunInterrupted(KeyboardInterrupt):  # noqa: N818 - a KeyboardInterrupt, with where to resume
    """Ctrl-C or SIGTERM stopped a run; the message says from which step the same command resumes it.
    ``exit_code``: 128 + the signal's number, as a shell reports a process that signal ended."""

    def __init__(self, message: str, signal_number: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number


class RunStoppedError(RuntimeError):
    """A run's file could not be written; the message names it and says how to resume."""


@dataclasses.dataclass
class LoopState:
    step: int = 0
    episodes: int = 0
    update_budget: float = 0.0
    last_return: float = math.nan
    resets: int = 0
    evaluations: int = 0  # evaluations done; each draws fresh env seeds from (seed, its index)
    wall_seconds: float = 0.0
    # Seconds per part of TIME_PARTS, and "final_evaluation"; kept across resumes like wall_seconds.
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    # The same in the process's CPU time (all its threads), which a stopped process (SIGSTOP) or one
    # waiting for a core does not spend: summary.json's "cpu_time" beside the wall-clock "time".
    cpu_seconds: float = 0.0
    part_cpu_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    # Each start or resume: its step, code and machine (plastic.provenance); summary.json's "provenance".
    segments: list[dict[str, Any]] = dataclasses.field(default_factory=list)


# The parts of a run's wall time that ``summary.json``'s "time" breaks down. On CUDA an update's
# kernels run asynchronously, so part of their time can land in the part that waits for them next.
TIME_PARTS = {
    "updates": "replay sampling, the agents' updates, priority writes and Resets",
    "acting": "action selection, the environment's step and storing the transition",
    "evaluation": "intermediate and final evaluation episodes",
    "plasticity_metrics": "the plasticity metrics' passes",
    "checkpoints": "writing checkpoints",
}


def check_run_dir(run_dir: Path, config: Config) -> str:
    """'new', 'resume', 'finished' or 'extend' (a finished run asked for more ``train.steps``,
    continued from its final checkpoint); refuses a directory that holds a different config (keys
    that only change logging, ``LOGGING_KEYS``, may differ, and ``train.steps`` may grow)."""
    path = run_dir / "config.json"
    if not path.exists():
        return "new"
    differences = saved_config_differences(read_json(path), config)
    saved_steps, wanted_steps = differences.get("train.steps", (config.train.steps,) * 2)
    growing = wanted_steps > saved_steps
    if growing:
        del differences["train.steps"]
    if differences:
        details = "; ".join(f"{k}: run has {was!r}, asked {now!r}"
                            for k, (was, now) in list(differences.items())[:8])
        fewer = " (train.steps may only grow, to extend a run)" if "train.steps" in differences else ""
        raise ConfigMismatchError(
            f"run directory {run_dir} holds a run with a different config ({details}){fewer}; "
            "use another --run-dir, or the same settings to resume it"
        )
    if not (run_dir / "summary.json").exists():
        return "resume"
    if not growing:
        return "finished"
    if not (run_dir / CHECKPOINT).exists():
        raise ConfigMismatchError(
            f"run directory {run_dir} finished at step {saved_steps} without keeping its "
            f"final {CHECKPOINT} (a run keeps it with train.keep_final_checkpoint=true and "
            f"train.checkpoint_interval > 0), so it cannot be extended to {wanted_steps} "
            "steps; use another --run-dir to train a longer run from the start")
    return "extend"


def _eval_due(cfg: Config, step: int) -> bool:
    """An intermediate evaluation after agent step ``step``: every ``eval_interval`` steps and,
    with ``eval_at_start``, after the first (the final one is ``_finish``'s)."""
    periodic = bool(cfg.train.eval_interval) and step % cfg.train.eval_interval == 0
    return (periodic or (cfg.train.eval_at_start and step == 1)) and step < cfg.train.steps


def _frame(obs: np.ndarray, stack: int) -> np.ndarray:
    per_frame = obs.shape[0] // stack
    return obs[-1] if stack > 1 and per_frame == 1 else obs[obs.shape[0] - per_frame:]


class Trainer:
    def __init__(self, config: Config, run_dir: Path, *, progress: bool | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir).expanduser().resolve()
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.device = resolve_device(config.device)
        self.suite = get_suite(config.suite)
        self.checkpoint_step: int | None = None  # the step of the checkpoint on disk, once known
        self.final_eval: dict[str, Any] | None = None  # the final checkpoint's, once loaded
        self._bar: Any = None  # the tqdm bar while the loop runs

    # ------------------------------------------------------------------------------ setup
    def _make_env(self, seed: int, train: bool):
        cfg = self.config
        return self.suite.make_env(cfg.game, seed, train=train, **self.suite.env_kwargs(cfg))

    def _setup(self) -> None:
        cfg = self.config
        configure_threads(cfg.train.threads)  # 0: one thread (plastic.runtime says why)
        keep_freed_memory()  # no page faults for the update's freed tensors (plastic.runtime)
        torch.manual_seed(cfg.seed)
        self.env = self._make_env(cfg.seed, train=True)
        obs_shape = self.env.observation_space.shape
        self.stack = self.suite.frame_stack(cfg)
        self.discrete = isinstance(self.env.action_space, gym.spaces.Discrete)
        self.agent: Agent = self.suite.agent.build(cfg, obs_shape, self.env.action_space, self.device)
        self.reset_schedule = ResetSchedule.from_config(cfg)
        obs_dtype = self.env.observation_space.dtype
        frame_shape = _frame(np.zeros(obs_shape, obs_dtype), self.stack).shape
        action_shape = () if self.discrete else self.env.action_space.shape
        self.replay_settings = replay = self.suite.agent.replay(cfg)
        self.replay = ReplayBuffer(
            replay.capacity, frame_shape, frame_stack=self.stack, frame_dtype=obs_dtype,
            action_shape=action_shape, action_dtype=np.int64 if self.discrete else np.float32,
            n_step=replay.n_step, gamma=replay.gamma, prioritized=replay.prioritized,
            priority_exponent=replay.priority_exponent, seed=cfg.seed + 2,
            stack_padding=self.suite.stack_padding,
        )
        self.rng = np.random.default_rng(cfg.seed + 3)
        self.metrics_rng = np.random.default_rng(cfg.seed + 4)
        self.action_repeat = self.suite.action_repeat(cfg)
        self.state = LoopState()
        self.obs: np.ndarray | None = None
        self.pending: list[dict[str, Any]] = []  # the updates' statistics for train.csv's next row

    def _save(self, final_eval: dict[str, Any] | None = None) -> None:
        """``final_eval``: the final evaluation's result, which the final checkpoint keeps (a run
        stopped after it resumes without evaluating again)."""
        save_checkpoint(self.run_dir / CHECKPOINT, {
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(compress_frames=self.config.train.compress_replay),
            "env": get_env_state(self.env), "obs": self.obs, "loop": dataclasses.asdict(self.state),
            "rng": self.rng.bit_generator.state, "metrics_rng": self.metrics_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "final_eval": final_eval,
            # so that the row logged after a resume averages the same updates as an uninterrupted run's
            "pending_stats": _stacked(self.pending, self.suite.agent.train_stats),
        })
        self.checkpoint_step = self.state.step

    def _load(self) -> bool:
        path = self.run_dir / CHECKPOINT
        ckpt = load_checkpoint(path)
        if ckpt is None:
            return False
        try:
            self._restore(ckpt)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"checkpoint {path} does not fit this run ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]}); move it away or delete it to start the run "
                "over from step 0, or put back the run's own checkpoint to resume") from None
        self.checkpoint_step = self.state.step
        return True

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.agent.load_state_dict(ckpt["agent"])
        self.replay.load_state_dict(ckpt["replay"])
        self.state = LoopState(**ckpt["loop"])
        self.rng.bit_generator.state = ckpt["rng"]
        if "metrics_rng" in ckpt:  # checkpoints from before the metrics had their own generator
            self.metrics_rng.bit_generator.state = ckpt["metrics_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        set_env_state(self.env, ckpt["env"])
        self.obs = ckpt["obs"]
        self.final_eval = ckpt.get("final_eval")
        self.pending = [{key: value.to(self.device)} for key, values in ckpt.get("pending_stats", {}).items()
                        for value in values.unbind()]  # one key each: _log_train averages per key

    # ------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        cfg = self.config.validate()
        if check_run_dir(self.run_dir, cfg) == "finished":  # reporting needs no lock, no writes
            return self._report_finished()
        try:
            # first: torch's intra-op threads follow the setting if they start after it
            with denormals_flushed(cfg.train.flush_denormal):
                self._setup()  # before touching the run directory: bad game names etc. fail here
                try:
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                    with run_lock(self.run_dir):
                        return self._run_locked(cfg)
                finally:
                    if hasattr(self, "env"):
                        self.env.close()
        except RunInterrupted:
            raise
        except KeyboardInterrupt:
            step = self.state.step if hasattr(self, "state") else 0
            raise RunInterrupted(f"run {self.run_dir} stopped at step {step}; run the same command "
                                 f"again to {self._resume_hint()}") from None
        except OSError as error:
            if not self._in_run_dir(error):
                raise
            what = str(error) if isinstance(error, WriteError) else \
                f"cannot write {error.filename}: {error.strerror}"
            raise RunStoppedError(f"{what}; once that is fixed, run the same command again to "
                                  f"{self._resume_hint()}") from None

    def _run_locked(self, cfg: Config) -> dict[str, Any]:
        status = check_run_dir(self.run_dir, cfg)  # again: another process may have just ended
        if status == "finished":
            return self._report_finished()
        resumed = self._load()  # first: a checkpoint that cannot be read changes nothing
        if status == "extend":
            finished_at = int(read_json(self.run_dir / "summary.json")["steps"])
            if self.state.step != finished_at:
                raise CheckpointError(
                    f"checkpoint {self.run_dir / CHECKPOINT} is at step {self.state.step}, not at "
                    f"the run's final step {finished_at}, so it cannot extend the run; use another "
                    "--run-dir")
            self._set_aside_results(finished_at)
        write_json(self.run_dir / "config.json", cfg.to_dict())
        # Resuming starts from the checkpoint's step, or from step 0 when the run was killed before
        # its first checkpoint: logs beyond that step go, as they will be written again.
        self.logger = RunLogger(self.run_dir, resume_step=None if status == "new" else self.state.step)
        try:
            if cfg.train.wandb_project:
                self.logger.attach_wandb(_wandb_run(cfg, self.run_dir))
            if status == "extend":
                print(f"extending {self.run_dir} from step {self.state.step} to {cfg.train.steps}",
                      file=sys.stderr)
            elif resumed:
                print(f"resuming {self.run_dir} at step {self.state.step}", file=sys.stderr)
            self._warn_if_nothing_learns()
            self.state.segments.append(provenance.describe(self.device, self.state.step))
            if self.obs is None:
                self.obs, _ = self.env.reset()
            self._loop()
            return self._finish()
        finally:
            self.logger.close()

    def _report_finished(self) -> dict[str, Any]:
        summary = read_json(self.run_dir / "summary.json")
        print(f"run already finished: {self.run_dir}\n{without_per_game(summary)}", file=sys.stderr)
        return summary

    def _set_aside_results(self, finished_at: int) -> None:
        """Keep a finished run's summary and final model under step-suffixed names before it is
        extended (and no longer counts as finished)."""
        for name, suffix in (("final_model", ".pt"), ("summary", ".json")):  # summary.json last
            path = self.run_dir / f"{name}{suffix}"
            if path.exists():
                path.replace(self.run_dir / f"{name}_step{finished_at}{suffix}")

    def _warn_if_nothing_learns(self) -> None:
        train = self.config.train
        if train.steps <= train.learning_starts:
            print(f"plastic: warning: train.steps ({train.steps}) <= train.learning_starts "
                  f"({train.learning_starts}): the agent acts at random and never updates, so this "
                  "run only collects data; raise --steps or lower train.learning_starts to train",
                  file=sys.stderr)

    def _resume_hint(self) -> str:
        if self.checkpoint_step is not None:
            return f"resume it from its checkpoint at step {self.checkpoint_step}"
        if (self.run_dir / CHECKPOINT).exists():
            return "resume it from its checkpoint"
        return "start it over (it has no checkpoint yet)"

    def _in_run_dir(self, error: OSError) -> bool:
        if isinstance(error, WriteError):
            return True
        name = error.filename
        return isinstance(name, (str, bytes, os.PathLike)) and \
            Path(os.fsdecode(name)).resolve().is_relative_to(self.run_dir)

    def _loop(self) -> None:
        cfg, state = self.config, self.state
        total = cfg.train.steps
        batch_size = self.replay_settings.batch_size
        if self.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=state.step, unit="step", dynamic_ncols=True)
        try:
            if cfg.train.checkpoint_interval:  # a stop signal: checkpoint at the step's end, then stop
                with stop_requests() as stop:
                    self._steps(total, batch_size, stop)
                    if stop.requested:  # after the last step's check; its checkpoint is written
                        raise self._stopped(stop)
            else:
                self._steps(total, batch_size, None)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def _steps(self, total: int, batch_size: int, stop: StopRequest | None) -> None:
        cfg, state, bar = self.config, self.state, self._bar
        window_start, window_step, window_updates = time.perf_counter(), state.step, self.agent.updates
        started = time.perf_counter() - state.wall_seconds
        cpu_started = time.process_time() - state.cpu_seconds
        while state.step < total:
            with self._timed("acting"):
                self._env_step()
            if state.step > cfg.train.learning_starts and self.replay.num_valid >= batch_size:
                state.update_budget += cfg.train.replay_ratio
                with self._timed("updates"):
                    while state.update_budget >= 1.0:
                        state.update_budget -= 1.0
                        self.pending.append(self._update())
                        if self.reset_schedule.due(self.agent.updates):
                            self._reset()
            if state.step % cfg.train.log_interval == 0 or state.step == total:
                now = time.perf_counter()
                rates = {
                    "steps_per_s": (state.step - window_step) / max(now - window_start, 1e-9),
                    "updates_per_s": (self.agent.updates - window_updates) / max(now - window_start, 1e-9),
                }
                self._log_train(self.pending, rates)
                self.pending = []
                window_start, window_step, window_updates = now, state.step, self.agent.updates
                last = "-" if math.isnan(state.last_return) else f"{state.last_return:.1f}"  # no episode yet
                message = (f"ret={last} steps/s={rates['steps_per_s']:.0f} "
                           f"updates/s={rates['updates_per_s']:.0f}")
                if bar is not None:
                    bar.set_postfix_str(message, refresh=False)
                else:
                    print(f"step {state.step}/{total} {message}", file=sys.stderr, flush=True)
            if cfg.train.metrics_interval and state.step % cfg.train.metrics_interval == 0 \
                    and self.replay.num_valid >= batch_size:
                with self._timed("plasticity_metrics"):
                    self._log_plasticity()
            if _eval_due(cfg, state.step):
                paused = time.perf_counter()
                with self._timed("evaluation"):
                    self._evaluate()
                window_start += time.perf_counter() - paused  # steps/s and updates/s: training only
            if self.reset_schedule.due_after_step(state.step, total):
                self._reset()
            if bar is not None:
                bar.update(1)
            # the last step too: a run stopped in its final evaluation resumes from there
            due = cfg.train.checkpoint_interval and (state.step % cfg.train.checkpoint_interval == 0
                                                     or state.step == total)
            stopping = stop is not None and stop.requested  # read once: a signal may land between
            if due or stopping:
                with self._timed("checkpoints"):
                    state.wall_seconds = time.perf_counter() - started
                    state.cpu_seconds = time.process_time() - cpu_started
                    self._save()
            if stopping:
                raise self._stopped(stop)
        state.wall_seconds = time.perf_counter() - started
        state.cpu_seconds = time.process_time() - cpu_started

    def _stopped(self, stop: StopRequest) -> RunInterrupted:
        step = self.state.step
        return RunInterrupted(f"run {self.run_dir} stopped by {stop.name} at step {step}; run the same "
                              f"command again to resume it from its checkpoint at step {step}",
                              signal_number=stop.signal or 2)

    @contextlib.contextmanager
    def _timed(self, part: str) -> Iterator[None]:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu_seconds = self.state.seconds, self.state.part_cpu_seconds
            seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started
            cpu_seconds[part] = cpu_seconds.get(part, 0.0) + time.process_time() - cpu_started

    def _env_step(self) -> None:
        cfg, state = self.config, self.state
        space = self.env.action_space
        if state.step >= cfg.train.learning_starts:
            action = self.agent.act(self.obs[None])[0]
        elif self.discrete:
            action = self.rng.integers(space.n)
        else:
            action = self.rng.uniform(space.low, space.high).astype(np.float32)
        action = int(action) if self.discrete else action
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        episode_end = terminated or truncated
        learn_reward = float(np.sign(reward)) if self.suite.clip_rewards else float(reward)
        self.replay.add(_frame(self.obs, self.stack), action, learn_reward,
                        terminal=terminated, episode_end=episode_end)
        state.step += 1
        if "episode_return" in info:
            state.episodes += 1
            state.last_return = float(info["episode_return"])
            self._log("episodes", {
                "episode": state.episodes, "return": state.last_return,
                "length": info["episode_length"],
            })
        self.obs = self.env.reset()[0] if episode_end else next_obs

    def _update(self) -> dict[str, Any]:
        replay = self.replay_settings
        start = replay.importance_exponent_start
        batch = self.replay.sample(replay.batch_size, beta=start + (1.0 - start) * self._anneal_progress())
        stats = self.agent.update(batch)
        if replay.prioritized:
            self.replay.update_priorities(batch.index, stats["priority"].cpu().numpy())
        return stats

    def _reset(self) -> None:
        self.agent.reset(encoder_shrink=self.reset_schedule.encoder_shrink)
        self.state.resets += 1
        self._log("resets", {"updates": self.agent.updates})

    def _anneal_progress(self) -> float:
        """How far the importance exponent has gone from its start to 1 (``agent.importance_anneal``)."""
        train = self.config.train
        if self.config.agent.importance_anneal == "updates":  # the authors': the k-th update of T
            total = max(1.0, (train.steps - train.learning_starts) * train.replay_ratio)
            return min(1.0, (self.agent.updates + 1) / total)
        return min(1.0, self.state.step / train.steps)

    def _log_train(self, pending: list[dict[str, Any]], rates: dict[str, float]) -> None:
        values: dict[str, Any] = {"updates": self.agent.updates, "episodes": self.state.episodes,
                                  "resets": self.state.resets, **rates}
        kind = self.suite.agent
        stacked = _stacked(pending, kind.train_stats)
        for key in kind.train_stats:
            if key in kind.sam_stats and not self.config.sam.enabled:
                continue
            values[key] = stacked[key].float().mean().item() if key in stacked else None
        self._log("train", values)

    def _log(self, stream: str, values: dict[str, Any]) -> None:
        step = self.state.step
        self.logger.log(stream, step, {"env_steps": step * self.action_repeat, **values})

    def _log_plasticity(self) -> None:
        # The metrics draw their batch with their own generator: how often they are measured
        # must not change the replay's draws, and so the training that follows.
        batch = self.replay.sample(min(256, self.replay.num_valid), beta=1.0, rng=self.metrics_rng)
        x = torch.from_numpy(batch.obs).to(self.device).float() / self.config.network.input_scale
        encoder, heads = self.agent.plasticity_modules()
        with torch.no_grad():
            features = encoder(x)
        values: dict[str, Any] = {}
        for part, module, inputs in [("encoder", encoder, x),
                                     *((name, m, features) for name, m in heads.items())]:
            # CReLU layers count positive pre-activations: half its output is positive by design.
            active = metrics.active_units(module, inputs, crelu_inputs=True)
            dormant = metrics.dormant_units(module, inputs, tau=0.1)
            values[f"{part}_active"] = float(np.mean(list(active.values())))
            values[f"{part}_dormant"] = float(np.mean(list(dormant.values())))
            values[f"{part}_weight_norm"] = metrics.weight_norm(module)
        values["feature_srank"] = metrics.srank(features)
        self._log("plasticity", values)

    def _evaluate(self, log: bool = True) -> dict[str, Any]:
        cfg, started = self.config, time.perf_counter()
        self._note(f"evaluating at step {self.state.step}: {cfg.train.eval_episodes} episodes")
        returns, lengths = play_games(
            lambda obs: self.agent.act(obs, evaluate=True),
            lambda seed: self._make_env(seed, train=self.suite.eval_with_train_envs),
            cfg.train.eval_episodes, cfg.train.eval_envs, seed=cfg.seed, index=self.state.evaluations,
        )
        self.state.evaluations += 1
        result: dict[str, Any] = {"score": float(np.mean(returns)), "score_std": float(np.std(returns)),
                                  "episodes": len(returns)}
        if cfg.suite == "atari" and cfg.game in RANDOM_SCORES:
            result["human_normalized_score"] = human_normalized_score(cfg.game, result["score"])
        result.update(game_length_mean=float(np.mean(lengths)), game_length_max=max(lengths))
        if log:
            self._log("eval", result)
        self._note(f"evaluation at step {self.state.step}: score {result['score']:.1f} "
                   f"({time.perf_counter() - started:.0f} s; longest game {result['game_length_max']} steps)")
        return {**result, "returns": returns, "lengths": lengths}

    def _note(self, text: str) -> None:
        """A progress line on stderr, or the bar's postfix while the bar runs."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def _final_evaluation(self) -> dict[str, Any]:
        """Evaluate, keep the final checkpoint (a larger train.steps extends the run from it), then
        log: a run stopped in between resumes from the checkpoint without evaluating again, and
        logs the evaluation once."""
        step = self.state.step
        if self.final_eval is not None and self.final_eval["step"] == step:
            result = self.final_eval["result"]
            logged = self.run_dir / "eval.csv"
            rows = read_csv(logged) if logged.exists() else []
            if not rows or rows[-1]["step"] != step:  # stopped before its row was written
                self._log("eval", without_per_game(result))
            return result
        with self._timed("final_evaluation"):  # after the loop: not in wall_seconds
            result = self._evaluate(log=False)
        if self.config.train.checkpoint_interval:
            self._save(final_eval={"step": step, "result": result})
        else:  # no final checkpoint, so no stale one from before checkpoints were turned off
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        self._log("eval", without_per_game(result))
        return result

    def _finish(self) -> dict[str, Any]:
        cfg = self.config
        result = self._final_evaluation()
        summary = {
            "suite": cfg.suite, "game": cfg.game, "preset": cfg.preset, "seed": cfg.seed,
            "steps": self.state.step, "env_steps": self.state.step * self.action_repeat,
            "updates": self.agent.updates, "resets": self.state.resets,
            "train_episodes": self.state.episodes, "wall_seconds": self.state.wall_seconds,
            "time": _time_breakdown(self.state.seconds, self.state.wall_seconds),
            "cpu_time": _time_breakdown(self.state.part_cpu_seconds, self.state.cpu_seconds),
            "device": str(self.device), **result,
            # which evaluation of the run the final one was: its start states' seeds come from it
            "evaluation_index": self.state.evaluations - 1,
            "provenance": self.state.segments,
        }
        save_checkpoint(self.run_dir / "final_model.pt", network_states(self.agent))
        write_json(self.run_dir / "summary.json", summary)  # last: the mark of a finished run
        if not cfg.train.keep_final_checkpoint:  # ~0.2 GB an Atari run; kept only to extend it
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        line = without_per_game(summary)
        print(f"finished {self.run_dir}: {line}", file=sys.stderr)
        return summary


def _time_breakdown(measured: dict[str, float], loop_seconds: float) -> dict[str, float]:
    """Seconds per part of ``TIME_PARTS`` (wall-clock or CPU, as ``measured`` and ``loop_seconds``,
    the training loop's whole, are); "other" (logging, the loop itself) is what the loop holds beyond
    its parts, and "total" adds the final evaluation, which runs after the loop."""
    final_evaluation = measured.get("final_evaluation", 0.0)
    in_loop = sum(measured.get(part, 0.0) for part in TIME_PARTS)
    seconds = {part: measured.get(part, 0.0) for part in TIME_PARTS}
    seconds["evaluation"] += final_evaluation
    seconds["other"] = max(0.0, loop_seconds - in_loop)
    seconds["total"] = loop_seconds + final_evaluation
    return {part: round(value, 3) for part, value in seconds.items()}


def _stacked(pending: list[dict[str, Any]], keys: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
    """The updates' statistics of ``keys``, one tensor per key (a checkpoint of one tensor per
    update and statistic would hold ~10^5 of them at replay ratio 8)."""
    found = {key: [stats[key] for stats in pending if key in stats] for key in keys}
    return {key: torch.stack(values) for key, values in found.items() if values}


def _wandb_run(cfg: Config, run_dir: Path) -> Any:
    try:
        import wandb
    except ImportError:
        raise ValueError("train.wandb_project is set but wandb is not installed: pip install wandb") \
            from None
    # A stable id per run directory, so a resumed run continues the same W&B run.
    digest = hashlib.sha1(str(run_dir).encode()).hexdigest()[:8]
    run_id = f"{cfg.suite}-{cfg.game}-{cfg.preset}-s{cfg.seed}-{digest}"
    return wandb.init(project=cfg.train.wandb_project, config=cfg.to_dict(), dir=str(run_dir),
                      id=run_id.replace("+", "_"), resume="allow")


def train(config: Config, run_dir: Path | str, *, progress: bool | None = None) -> dict[str, Any]:
    return Trainer(config, Path(run_dir), progress=progress).run()
