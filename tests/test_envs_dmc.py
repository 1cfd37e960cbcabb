"""DeepMind Control envs, checked against raw dm_control environments stepped by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

_USER_MUJOCO_GL = os.environ.get("MUJOCO_GL")  # before the module under test may set it

pytest.importorskip("dm_control", reason="dm_control is not installed (pip install -e '.[dmc]')")

from plastic.envs.dmc import (  # noqa: E402
    DEBIAN_GL_PACKAGES,
    _probe_gl_backend,
    import_dm_control_suite,
    make_dmc_env,
    select_mujoco_gl,
)
from plastic.envs.dmc_tasks import (  # noqa: E402
    DMC_MEDIUM,
    DMC_MEDIUM_TASKS,
    OTHER_TASKS,
    DMCTaskSettings,
    all_dmc_task_names,
    task_settings,
)


def raw_env(domain: str, task: str, seed: int):
    """The plain dm_control environment our wrapper should reproduce."""
    return import_dm_control_suite().load(domain, task, task_kwargs={"random": seed})


def raw_frame(dm_env, size: int = 64, camera_id: int = 0) -> np.ndarray:
    return dm_env.physics.render(height=size, width=size, camera_id=camera_id).transpose(2, 0, 1)


def flat(observation) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()])


@pytest.fixture
def closing():
    envs = []
    yield lambda env: envs.append(env) or env
    for env in envs:
        env.close()


def test_pixel_stack_and_action_repeat_match_raw_dm_control(closing):
    env = closing(make_dmc_env("cartpole-swingup", seed=3, action_repeat=2))
    raw = raw_env("cartpole", "swingup", seed=3)
    assert env.action_repeat == 2
    obs, _ = env.reset()
    raw.reset()
    assert obs.shape == (9, 64, 64) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    # At reset the first frame fills the stack (DrQ), and it is what dm_control renders.
    np.testing.assert_array_equal(obs[0:3], obs[3:6])
    np.testing.assert_array_equal(obs[3:6], obs[6:9])
    np.testing.assert_array_equal(obs[6:9], raw_frame(raw))

    rng = np.random.default_rng(0)
    previous = obs
    for _ in range(2):
        action = rng.uniform(-1, 1, size=1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        raw_rewards = [raw.step(action).reward for _ in range(2)]
        assert reward == pytest.approx(sum(raw_rewards), rel=1e-12, abs=1e-15)
        # Oldest frame dropped, newest appended last, and it is the frame after both repeats.
        np.testing.assert_array_equal(obs[:6], previous[3:])
        np.testing.assert_array_equal(obs[6:], raw_frame(raw))
        assert not (terminated or truncated or info["game_over"])
        previous = obs
    assert not np.array_equal(obs[0:3], obs[6:9])  # the cart moved


def test_action_repeat_sums_rewards_state(closing):
    env = closing(make_dmc_env("walker-run", seed=7, obs="state", action_repeat=3))
    raw = raw_env("walker", "run", seed=7)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, flat(raw.reset().observation))
    rng = np.random.default_rng(1)
    for _ in range(10):
        action = rng.uniform(-1, 1, size=env.action_space.shape)
        obs, reward, *_ = env.step(action)
        steps = [raw.step(action) for _ in range(3)]
        assert reward == pytest.approx(sum(s.reward for s in steps), rel=1e-12)
        np.testing.assert_array_equal(obs, flat(steps[-1].observation))
    assert reward > 0  # walker-run pays for standing: the sums compared were not all zero


def test_actions_are_rescaled_to_the_task_bounds(closing):
    # quadruped's actuators have ranges like [-1, 1.1] and [-0.8, 0.8]; agents act in [-1, 1].
    env = closing(make_dmc_env("quadruped-walk", seed=0, obs="state"))
    assert env.camera_id == 2
    spec = raw_env("quadruped", "walk", seed=0).action_spec()
    low, high = spec.minimum, spec.maximum
    assert not (np.all(low == -1) and np.all(high == 1))
    env.reset()
    action = np.tile(np.array([-1.0, 0.0, 1.0], dtype=np.float32), 4)
    env.step(action)
    expected = np.where(action < 0, low, np.where(action > 0, high, (low + high) / 2))
    np.testing.assert_allclose(env.physics.data.ctrl, expected, atol=1e-12)
    env.step(np.full(12, 5.0))  # out of range: clipped to the upper bound
    np.testing.assert_allclose(env.physics.data.ctrl, high)


@pytest.mark.parametrize(
    ("task", "repeat", "length"),
    [("cartpole-swingup", 2, 500), ("cheetah-run", None, 250), ("cartpole-swingup", 3, 334)],
)
def test_episode_length_truncation_and_return(closing, task, repeat, length):
    env = closing(make_dmc_env(task, seed=0, obs="state", action_repeat=repeat))
    env.reset()
    rng = np.random.default_rng(2)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        total += reward
        steps += 1
        assert terminated is False  # DMC tasks have no terminal states
        if info["game_over"]:
            break
        assert not truncated and "episode_return" not in info
    assert truncated is True
    assert steps == length == info["episode_length"]
    assert info["episode_return"] == pytest.approx(total)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_space.shape))


def test_state_obs_matches_flattened_spec(closing):
    env = closing(make_dmc_env("walker-run", seed=0, obs="state"))
    spec = raw_env("walker", "run", 0).observation_spec()
    assert env.observation_space.shape == (14 + 1 + 9,)  # orientations, height, velocity
    assert env.observation_space.shape == (sum(int(np.prod(s.shape)) for s in spec.values()),)
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_seeding_is_reproducible(closing):
    def rollout(seed, train=True):
        env = closing(make_dmc_env("walker-run", seed=seed, obs="state", train=train))
        first, _ = env.reset()
        rewards = [env.step(env.action_space.sample())[1] for _ in range(5)]
        return first, rewards

    first_a, rewards_a = rollout(11)
    first_b, rewards_b = rollout(11)
    np.testing.assert_array_equal(first_a, first_b)
    assert rewards_a == rewards_b  # same initial state and same sampled actions
    assert not np.array_equal(first_a, rollout(12)[0])
    assert not np.array_equal(first_a, rollout(11, train=False)[0])  # eval stream differs

    env = closing(make_dmc_env("walker-run", seed=0, obs="state"))
    np.testing.assert_array_equal(env.reset(seed=5)[0], env.reset(seed=5)[0])


def test_pixel_seeding_is_reproducible(closing):
    a = closing(make_dmc_env("cartpole-swingup", seed=4)).reset()[0]
    b = closing(make_dmc_env("cartpole-swingup", seed=4)).reset()[0]
    np.testing.assert_array_equal(a, b)


def test_cartpole_pixels_render_a_scene(closing):
    env = closing(make_dmc_env("cartpole-swingup", seed=0, image_size=64))
    obs, _ = env.reset()
    frame = obs[-3:]
    assert frame.std() > 10 and len(np.unique(frame)) > 20  # not a blank or flat image


def test_quadruped_uses_camera_2(closing):
    env = closing(make_dmc_env("quadruped-run", seed=0, frame_stack=1, image_size=32))
    raw = raw_env("quadruped", "run", seed=0)
    obs, _ = env.reset()
    raw.reset()
    np.testing.assert_array_equal(obs, raw_frame(raw, 32, camera_id=2))
    assert not np.array_equal(obs, raw_frame(raw, 32, camera_id=0))


def test_smaller_shadow_map_barely_changes_frames(closing):
    default = closing(make_dmc_env("walker-run", seed=0, frame_stack=1))
    small = closing(make_dmc_env("walker-run", seed=0, frame_stack=1, shadow_size=512))
    assert default.physics.model.vis.quality.shadowsize == 2048
    assert small.physics.model.vis.quality.shadowsize == 512
    a, b = default.reset()[0].astype(int), small.reset()[0].astype(int)
    assert np.abs(a - b).mean() < 0.5


def test_unknown_task_lists_valid_tasks():
    with pytest.raises(ValueError) as excinfo:
        make_dmc_env("nosuch-task", seed=0)
    message = str(excinfo.value)
    assert "nosuch-task" in message
    for task in DMC_MEDIUM_TASKS + ("ball_in_cup-catch", "cartpole-swingup", "humanoid-run"):
        assert task in message
    with pytest.raises(ValueError, match="walker-run"):
        make_dmc_env("walker", seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs": "rgb"}, "pixels"),
        ({"frame_stack": 0}, "frame_stack"),
        ({"image_size": -1}, "image_size"),
        ({"action_repeat": 0}, "action_repeat"),
        ({"camera_id": 7}, "camera_id"),
        ({"shadow_size": 0}, "shadow_size"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dmc_env("walker-run", seed=0, **kwargs)


@pytest.mark.filterwarnings("ignore:.*infinity:UserWarning")  # state bounds are unbounded
def test_gymnasium_env_checker_accepts_both_observation_types(closing):
    from gymnasium.utils.env_checker import check_env

    check_env(closing(make_dmc_env("cartpole-swingup", seed=0, obs="state")), skip_render_check=True)
    check_env(closing(make_dmc_env("cartpole-swingup", seed=0, image_size=16)), skip_render_check=True)


def test_dmc_medium_settings_as_in_the_paper():
    assert set(DMC_MEDIUM_TASKS) <= set(all_dmc_task_names())  # real dm_control task names
    assert len(DMC_MEDIUM_TASKS) == 11
    assert {t for t, s in DMC_MEDIUM.items() if s.action_repeat == 4} == {
        "cheetah-run",
        "reacher-easy",
    }
    assert {t for t, s in DMC_MEDIUM.items() if s.sam_rho != 0.01} == {"cheetah-run"}
    assert DMC_MEDIUM["cheetah-run"].sam_rho == 0.002
    assert all(s.env_steps == 2_000_000 for s in DMC_MEDIUM.values())
    assert DMC_MEDIUM["walker-run"].agent_steps == 1_000_000
    assert DMC_MEDIUM["cheetah-run"].agent_steps == 500_000
    assert task_settings("humanoid-run") == DMCTaskSettings("humanoid-run")  # a task nobody set
    assert len(all_dmc_task_names()) >= 50


def test_the_authors_short_tasks_take_their_settings():
    # their train_pixels.py: env steps and Reset interval (agent steps) per task, PlaNet's repeats
    assert set(OTHER_TASKS) <= set(all_dmc_task_names()) and not set(OTHER_TASKS) & set(DMC_MEDIUM)
    by_reset = {}
    for name in OTHER_TASKS:
        by_reset.setdefault(task_settings(name).reset_interval_agent_steps, set()).add(name)
    assert by_reset == {50_000: {"hopper-stand", "pendulum-swingup"},
                        25_000: {"ball_in_cup-catch", "cartpole-balance", "cartpole-balance_sparse",
                                 "cartpole-swingup", "finger-spin", "walker-stand", "walker-walk"}}
    assert task_settings("cartpole-swingup").agent_steps == 500_000 // 8
    assert task_settings("ball_in_cup-catch").agent_steps == 500_000 // 4
    assert task_settings("pendulum-swingup").agent_steps == 1_000_000 // 2
    assert {t for t in OTHER_TASKS if task_settings(t).sam_rho != 0.01} == set()


def test_a_headless_backend_was_chosen():
    backend = select_mujoco_gl()
    assert backend == os.environ["MUJOCO_GL"]
    if _USER_MUJOCO_GL is None:
        assert backend in ("egl", "osmesa")
    assert _probe_gl_backend("nosuch-backend") is not None  # a failing probe reports why


@pytest.mark.parametrize("osmesa_works", [True, False])
def test_gl_selection_tries_egl_then_osmesa_then_names_the_packages(monkeypatch, osmesa_works):
    """In-process, with the probe simulated: EGL first; OSMesa when EGL fails; else an error."""
    import functools

    import plastic.envs.dmc as dmc

    tried = []
    reasons = {"egl": "simulated: no EGL device", "osmesa": None if osmesa_works else "no libOSMesa"}

    def probe(backend: str) -> str | None:
        tried.append(backend)
        return reasons[backend]

    monkeypatch.setattr(dmc, "_probe_gl_backend", probe)
    # A fresh per-process choice, and an environment and dm_control import state as if unchosen.
    monkeypatch.setattr(dmc, "_auto_gl_backend", functools.cache(dmc._auto_gl_backend.__wrapped__))
    unset = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    monkeypatch.setattr(os, "environ", unset)
    monkeypatch.delitem(sys.modules, "dm_control._render", raising=False)

    if osmesa_works:
        assert dmc.select_mujoco_gl() == "osmesa"
        assert os.environ["MUJOCO_GL"] == os.environ["PYOPENGL_PLATFORM"] == "osmesa"
        assert dmc.select_mujoco_gl() == "osmesa"  # chosen once per process
    else:
        with pytest.raises(RuntimeError) as error:
            dmc.select_mujoco_gl()
        message = str(error.value)
        assert "egl: simulated: no EGL device; osmesa: no libOSMesa" in message
        assert all(package in message for package in DEBIAN_GL_PACKAGES)
        assert os.environ["MUJOCO_GL"] == "disable"  # state observations still import
    assert tried == ["egl", "osmesa"]


# One fresh interpreter (importing plastic takes seconds) checks both failure modes in turn:
# first without mujoco installed, then with no GL backend that renders.
_FAILURE_SCRIPT = """
import sys
sys.modules["mujoco"] = None  # as if not installed
import plastic.envs.dmc as dmc
try:
    dmc.make_dmc_env("walker-run", 0, obs="state")
except ImportError as e:
    print("IMPORT-ERROR:", e)
del sys.modules["mujoco"]

dmc._probe_gl_backend = lambda backend: "simulated failure"
env = dmc.make_dmc_env("cartpole-swingup", 0, obs="state")
env.reset()
env.step(env.action_space.sample())
env.close()
print("STATE-OK")
try:
    dmc.make_dmc_env("cartpole-swingup", 0)
except RuntimeError as e:
    print("GL-ERROR:", e)
"""


@pytest.fixture(scope="module")
def failure_output() -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-c", _FAILURE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout + result.stderr


def _line(output: str, tag: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(tag)]
    assert lines, f"no {tag} line in:\n{output}"
    return lines[0]


def test_missing_dm_control_gives_install_hint(failure_output):
    error = _line(failure_output, "IMPORT-ERROR:")
    assert "pip install -e '.[dmc]'" in error
    assert "mujoco" in error and "<4" in error


def test_without_working_gl_pixels_fail_naming_packages_and_state_still_works(failure_output):
    assert "STATE-OK" in failure_output
    error = _line(failure_output, "GL-ERROR:")
    for package in DEBIAN_GL_PACKAGES:
        assert package in error
    assert "install_system_deps.sh" in error and "simulated failure" in error
