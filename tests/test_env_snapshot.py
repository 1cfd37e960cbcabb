"""Env snapshots: a restored copy must go on exactly as the original (checkpoint/resume)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

from plastic.envs.snapshot import get_env_state, set_env_state

MINATAR = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


class _PlainUnpickler(pickle.Unpickler):
    """Loads only builtins and numpy: proves a state holds no env-package objects."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] not in {"builtins", "numpy", "copyreg", "collections"}:
            raise pickle.UnpicklingError(f"state contains {module}.{name}")
        return super().find_class(module, name)


def pickle_round_trip(state):
    return _PlainUnpickler(io.BytesIO(pickle.dumps(state))).load()


def random_actions(env: gym.Env, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` random actions: integers for a discrete env, uniform floats in [-1, 1] otherwise."""
    if isinstance(env.action_space, gym.spaces.Discrete):
        return rng.integers(env.action_space.n, size=size)
    return rng.uniform(-1, 1, (size, *env.action_space.shape)).astype(np.float32)


def play(env: gym.Env, actions, *, until: Callable | None = None) -> list[tuple]:
    """Step through ``actions`` as a training loop would (reset when an episode ends).
    With ``until``, stop right after the first step record for which ``until`` is true."""
    records = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action) if np.ndim(action) == 0 else action)
        records.append(("step", obs, reward, terminated, truncated, info))
        if until is not None and until(records[-1]):
            return records
        if terminated or truncated:
            records.append(("reset", *env.reset()))
    assert until is None, "the condition never held"
    return records


def assert_same(a, b, where: str = "") -> None:
    """Exact equality of nested records: arrays (values and dtype), dicts, scalars (and types)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {a.keys()} != {b.keys()}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def is_life_loss(record) -> bool:
    return record[0] == "step" and record[3] and not record[5]["game_over"]


def check_resume(
    make: Callable[[], gym.Env],
    rng: np.random.Generator,
    *,
    prefix_until: Callable | None = None,
    extra_prefix_steps: tuple[int, int],
    suffix_steps: int = 200,
) -> list[tuple]:
    """Play env A for a random while, snapshot it through pickle into a fresh env B, then check
    that A and B produce identical records for the same next actions. Returns A's suffix."""
    env_a = make()
    env_a.reset()
    if prefix_until is not None:
        play(env_a, random_actions(env_a, rng, 10_000), until=prefix_until)
    play(env_a, random_actions(env_a, rng, int(rng.integers(*extra_prefix_steps))))

    env_b = make()
    set_env_state(env_b, pickle_round_trip(get_env_state(env_a)))

    actions = random_actions(env_a, rng, suffix_steps)
    suffix_a, suffix_b = play(env_a, actions), play(env_b, actions)
    assert_same(suffix_a, suffix_b, "suffix")

    # The check has teeth: a fresh env with the same arguments does not play the same way.
    control = make()
    control.reset()
    control_records = play(control, actions[:30])
    with pytest.raises(AssertionError):
        assert_same(suffix_a[: len(control_records)], control_records)
    return suffix_a


# ---------------------------------------------------------------- MinAtar


@pytest.mark.parametrize("game", MINATAR)
def test_minatar_resume_is_exact(game):
    pytest.importorskip("minatar")
    from plastic.envs.minatar import make_minatar_env

    # Frequent sticky actions, so the restored RNG and last action both matter; a short cap,
    # so episode ends (game over or cap) fall after the snapshot.
    def make() -> gym.Env:
        return make_minatar_env(game, 7, max_episode_steps=60, repeat_action_probability=0.5)

    suffix = check_resume(make, np.random.default_rng(1), extra_prefix_steps=(20, 150))
    assert any(r[0] == "reset" for r in suffix)


def test_minatar_time_limit_counter_is_restored():
    pytest.importorskip("minatar")
    from plastic.envs.minatar import make_minatar_env

    def make() -> gym.Env:
        return TimeLimit(make_minatar_env("freeway", 3), max_episode_steps=25)

    suffix = check_resume(make, np.random.default_rng(2), extra_prefix_steps=(30, 40))
    # freeway never ends by itself this early: every episode end is TimeLimit's 25-step cap
    steps_between = np.diff([i for i, r in enumerate(suffix) if r[0] == "reset"])
    assert len(steps_between) >= 2 and set(steps_between) == {26}


@pytest.mark.parametrize("suite", ["minatar", "atari"])
def test_snapshot_before_first_reset_carries_the_seed(suite):
    pytest.importorskip({"minatar": "minatar", "atari": "ale_py"}[suite])
    from plastic.envs import make_env

    game = {"minatar": "asterix", "atari": "pong"}[suite]
    # B is made with another seed: only the restored state can make it play A's game.
    env_a, env_b = make_env(suite, game, 5, train=True), make_env(suite, game, 6, train=True)
    set_env_state(env_b, pickle_round_trip(get_env_state(env_a)))
    assert_same(env_a.reset(), env_b.reset())
    actions = np.random.default_rng(0).integers(env_a.action_space.n, size=60)
    assert_same(play(env_a, actions), play(env_b, actions))


# ---------------------------------------------------------------- Atari


@pytest.fixture
def atari():
    pytest.importorskip("ale_py")
    from plastic.envs.atari import make_atari_env

    return make_atari_env


def test_atari_breakout_resume_after_life_loss_is_exact(atari):
    def make() -> gym.Env:
        return atari("breakout", 11, train=True)

    suffix = check_resume(
        make,
        np.random.default_rng(3),
        prefix_until=is_life_loss,
        extra_prefix_steps=(1, 60),
        suffix_steps=300,
    )
    # The suffix crosses life losses and a new game (no-op draws, ALE reset after restore).
    assert any(is_life_loss(r) for r in suffix)
    assert any(r[0] == "reset" and r[2]["new_game"] for r in suffix)


def test_atari_authors_settings_resume_is_exact(atari):
    """The agent-step counter of the authors' horizon and their life-loss NOOP come back: the
    suffix crosses life losses and the horizon's end of a game."""
    authors = {"resize": "bilinear", "time_limit": "agent_steps", "max_episode_steps": 70,
               "life_loss_noop": True}

    def make() -> gym.Env:
        return atari("breakout", 11, train=True, **authors)

    suffix = check_resume(make, np.random.default_rng(8), prefix_until=is_life_loss,
                          extra_prefix_steps=(1, 20), suffix_steps=200)
    assert any(is_life_loss(r) for r in suffix)
    assert any(r[0] == "step" and r[5]["game_over"] and r[5]["lives"] > 0 for r in suffix), \
        "a game must end at the horizon after the snapshot"
    state = get_env_state(make())
    for key, value, setting in (("resize", "area", "resize"), ("life_loss_noop", False, "life_loss_noop"),
                                ("max_episode_steps", 71, "horizon")):
        with pytest.raises(ValueError, match=setting):
            set_env_state(atari("breakout", 11, train=True, **{**authors, key: value}), state)


def test_atari_pong_resume_across_the_frame_cap_is_exact(atari):
    def make() -> gym.Env:
        return atari("pong", 4, train=True, max_episode_frames=1000)

    suffix = check_resume(make, np.random.default_rng(4), extra_prefix_steps=(100, 200))
    assert any(r[0] == "step" and r[4] for r in suffix), "the cap must fall after the snapshot"


def test_atari_snapshot_before_a_one_frame_final_step(atari):
    # When the game ends on the first frame of a step, the observation max-pools that frame
    # with the last screen of the step before: the snapshot must hold that screen.
    noops = atari("pong", 9, train=True).reset()[1]["noops"]
    steps = 30
    cap = noops + 4 * steps + 1  # the last step plays one frame only

    def make() -> gym.Env:
        return atari("pong", 9, train=True, max_episode_frames=cap)

    env_a = make()
    env_a.reset()
    actions = np.random.default_rng(7).integers(6, size=steps + 1)
    play(env_a, actions[:steps])
    env_b = make()
    set_env_state(env_b, pickle_round_trip(get_env_state(env_a)))
    last_a, last_b = env_a.step(int(actions[-1])), env_b.step(int(actions[-1]))
    assert last_a[3] and last_a[4]["episode_frame_number"] == cap
    assert_same(last_a, last_b)


def test_atari_snapshot_at_life_loss_terminal_continues_the_game(atari):
    rng = np.random.default_rng(5)
    env_a = atari("breakout", 2, train=True)
    env_a.reset()
    play(env_a, rng.integers(4, size=5000), until=is_life_loss)  # stop before the reset
    env_b = atari("breakout", 2, train=True)
    set_env_state(env_b, pickle_round_trip(get_env_state(env_a)))

    reset_a, reset_b = env_a.reset(), env_b.reset()
    assert reset_b[1]["new_game"] is False  # continues the same game, as the original does
    assert_same(reset_a, reset_b)
    actions = rng.integers(4, size=100)
    assert_same(play(env_a, actions), play(env_b, actions))


def test_atari_state_restores_in_a_fresh_process(atari, tmp_path):
    env = atari("breakout", 8, train=True, frame_stack=3)
    env.reset()
    rng = np.random.default_rng(6)
    play(env, rng.integers(4, size=5000), until=is_life_loss)
    actions = rng.integers(4, size=150)
    (tmp_path / "state.pkl").write_bytes(pickle.dumps((get_env_state(env), actions)))

    script = textwrap.dedent(
        f"""
        import pickle, sys
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_env_snapshot import play
        from plastic.envs.atari import make_atari_env
        from plastic.envs.snapshot import set_env_state
        state, actions = pickle.loads(open({str(tmp_path / "state.pkl")!r}, "rb").read())
        env = make_atari_env("breakout", 8, train=True, frame_stack=3)
        set_env_state(env, state)
        env.reset()
        open({str(tmp_path / "out.pkl")!r}, "wb").write(pickle.dumps(play(env, actions)))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    env.reset()
    assert_same(play(env, actions), pickle.loads((tmp_path / "out.pkl").read_bytes()))


# ---------------------------------------------------------------- mismatches


def test_mismatched_game_or_config_is_a_value_error_and_changes_nothing(atari):
    pytest.importorskip("minatar")
    from plastic.envs.minatar import make_minatar_env

    breakout = atari("breakout", 0, train=True)
    breakout.reset()
    state = get_env_state(breakout)
    with pytest.raises(ValueError, match="game: state has 'breakout', env has 'pong'"):
        set_env_state(atari("pong", 0, train=True), state)
    with pytest.raises(ValueError, match="terminal_on_life_loss"):
        set_env_state(atari("breakout", 0, train=False), state)
    with pytest.raises(ValueError, match="stack_size"):
        set_env_state(atari("breakout", 0, train=True, frame_stack=2), state)
    with pytest.raises(ValueError, match="wrapper layers"):
        set_env_state(make_minatar_env("breakout", 0), state)

    asterix = make_minatar_env("asterix", 0)
    state = get_env_state(asterix)
    target = make_minatar_env("seaquest", 0)
    before = get_env_state(target)
    with pytest.raises(ValueError, match="game: state has 'asterix', env has 'seaquest'"):
        set_env_state(target, state)
    assert_same(get_env_state(target), before)
    with pytest.raises(ValueError, match="max_episode_steps"):
        set_env_state(make_minatar_env("asterix", 0, max_episode_steps=10), state)
    with pytest.raises(ValueError, match="format"):
        set_env_state(target, {"layers": []})


def test_unsupported_envs_are_refused(atari):
    pytest.importorskip("minatar")
    from plastic.envs.minatar import make_minatar_env

    with pytest.raises(ValueError, match="RecordEpisodeStatistics"):
        get_env_state(RecordEpisodeStatistics(make_minatar_env("asterix", 0)))
    with pytest.raises(ValueError, match="base env"):
        get_env_state(make_minatar_env("asterix", 0).unwrapped)
    with pytest.raises(ValueError, match="repeat_action_probability"):
        get_env_state(atari("pong", 0, train=True, repeat_action_probability=0.25))


# ---------------------------------------------------------------- DeepMind Control


@pytest.mark.parametrize(("task", "obs"), [("reacher-easy", "state"), ("finger-turn_hard", "state"),
                                           ("reacher-hard", "pixels")])
def test_dmc_resume_across_an_episode_boundary_is_exact(task, obs):
    """Physics, the targets tasks draw into the model at reset, the task's random stream and the
    frame stack all come back: the restored env plays on bit for bit, through the next reset."""
    pytest.importorskip("dm_control")
    from plastic.envs.dmc import make_dmc_env

    def make():
        # 125 agent steps an episode; small cheap frames (their content is not what is tested)
        return make_dmc_env(task, 4, obs=obs, action_repeat=8, image_size=24, shadow_size=128)

    suffix = check_resume(make, np.random.default_rng(7), extra_prefix_steps=(130, 240), suffix_steps=150)
    assert any(record[0] == "reset" for record in suffix)


def test_dmc_state_of_another_task_is_refused_and_changes_nothing():
    pytest.importorskip("dm_control")
    from plastic.envs.dmc import make_dmc_env

    source = make_dmc_env("reacher-easy", 0, obs="state")
    source.reset()
    target = make_dmc_env("reacher-hard", 0, obs="state")
    target.reset()
    before = get_env_state(target)
    with pytest.raises(ValueError, match="task: state has 'reacher-easy', env has 'reacher-hard'"):
        set_env_state(target, get_env_state(source))
    assert_same(get_env_state(target), before)
    with pytest.raises(ValueError, match="action_repeat"):
        set_env_state(make_dmc_env("reacher-easy", 0, obs="state", action_repeat=2), get_env_state(source))
