"""DeepMind Control Suite tasks as Gymnasium environments, from pixels or proprioceptive state.

Pixels follow DrQ's protocol: RGB frames rendered after each agent step, channel-first, the last
``frame_stack`` frames concatenated on the channel axis (oldest first, newest last). At reset the
first frame fills the whole stack (the training loop's replay pads its stacks likewise,
``stack_padding="first"``). Camera 2 for quadruped, 0 otherwise. Each agent action is repeated
``action_repeat`` times and the rewards summed.

Rendering is headless: unless ``MUJOCO_GL`` is set, EGL and then OSMesa are tried, each in a
subprocess (the variable must be set before MuJoCo's GL import, and a backend that fails to load
cannot be unloaded), and the first that renders is used for the rest of the process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from collections import deque
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from plastic.envs.dmc_tasks import check_dmc_task, task_settings
from plastic.envs.snapshot import check_same_config, generator_from_state, generator_state
from plastic.errors import MissingDependencyError

OBS_TYPES = ("pixels", "state")
GL_BACKENDS = ("egl", "osmesa")
_DISABLED_GL = ("off", "disable", "disabled", "false", "0")  # dm_control's "no renderer" names
DEBIAN_GL_PACKAGES = ("libegl1", "libgl1", "libegl-mesa0", "libgl1-mesa-dri", "libosmesa6")

_INSTALL_HINT = (
    "DeepMind Control needs dm_control and mujoco: pip install -e '.[dmc]' "
    "(mujoco must stay <4: dm_control 1.0.50 breaks with mujoco 4.0 at `flex_vertedge`)"
)

# Renders one frame of a one-sphere scene through dm_control, as the environments will.
_PROBE_SCRIPT = """
from dm_control import mujoco
xml = "<mujoco><worldbody><light pos='0 0 1'/><geom type='sphere' size='.1'/></worldbody></mujoco>"
image = mujoco.Physics.from_xml_string(xml).render(height=8, width=8)
assert image.shape == (8, 8, 3), image.shape
print("render-ok")
"""
_PROBE_TIMEOUT_S = 120.0


def _probe_gl_backend(backend: str) -> str | None:
    """Try rendering with ``backend`` in a fresh interpreter; None if it works, else why not."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {_PROBE_TIMEOUT_S:.0f} s"
    if result.returncode == 0 and "render-ok" in result.stdout:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {result.returncode}"


@functools.cache
def _auto_gl_backend() -> tuple[str | None, tuple[str, ...]]:
    """First backend of GL_BACKENDS that renders, and the reasons the others before it failed."""
    failures = []
    for backend in GL_BACKENDS:
        reason = _probe_gl_backend(backend)
        if reason is None:
            return backend, tuple(failures)
        failures.append(f"{backend}: {reason}")
    return None, tuple(failures)


def _no_gl_error(failures: tuple[str, ...] = ()) -> RuntimeError:
    tried = "; ".join(failures) if failures else "no backend could be loaded"
    return RuntimeError(
        "Headless rendering for DeepMind Control from pixels failed with EGL and OSMesa "
        f"({tried}). On Debian/Ubuntu install the Mesa GL libraries as root: "
        f"apt-get install -y {' '.join(DEBIAN_GL_PACKAGES)} (or run "
        "scripts/install_system_deps.sh), or set MUJOCO_GL to a backend that works here. "
        "obs='state' needs no rendering."
    )


def select_mujoco_gl() -> str:
    """The MuJoCo GL backend this process renders with, choosing one if none is chosen yet.

    A ``MUJOCO_GL`` set by the user is respected. Otherwise EGL, then OSMesa, are probed once
    per process and ``MUJOCO_GL`` and ``PYOPENGL_PLATFORM`` set to the first that renders.
    Raises RuntimeError naming the Debian packages to install when neither works.
    """
    if _auto_gl_backend.cache_info().currsize:  # chosen earlier in this process
        backend, failures = _auto_gl_backend()
        if backend is None:
            raise _no_gl_error(failures)
        return backend
    if "MUJOCO_GL" in os.environ:
        return os.environ["MUJOCO_GL"]
    if "dm_control._render" in sys.modules:
        # dm_control was imported before anyone chose: its own pick is final for this process.
        backend = sys.modules["dm_control._render"].BACKEND
        if backend is None:
            raise _no_gl_error(("dm_control was imported before MUJOCO_GL was set",))
        return backend
    backend, failures = _auto_gl_backend()
    if backend is None:
        os.environ["MUJOCO_GL"] = "disable"  # dm_control still imports, for state observations
        raise _no_gl_error(failures)
    os.environ["MUJOCO_GL"] = backend
    os.environ["PYOPENGL_PLATFORM"] = backend
    return backend


def _check_rendering(physics: Any, camera_id: int) -> None:
    """Render a tiny frame now, so a broken GL setup fails here with advice, not mid-run."""
    backend = select_mujoco_gl()
    if backend.lower() in _DISABLED_GL:
        raise RuntimeError(f"MUJOCO_GL={backend} disables rendering; obs='pixels' needs it")
    try:
        physics.render(height=8, width=8, camera_id=camera_id)
    except Exception as e:
        raise RuntimeError(
            f"rendering with MUJOCO_GL={backend} failed ({type(e).__name__}: {e}). "
            f"Set MUJOCO_GL=egl or osmesa before dm_control is imported; on Debian/Ubuntu "
            f"install {' '.join(DEBIAN_GL_PACKAGES)} (scripts/install_system_deps.sh)."
        ) from e


def import_dm_control_suite() -> ModuleType:
    """Import ``dm_control.suite`` after choosing a GL backend; a clear error if not installed.

    When no GL backend works the suite is still imported with rendering disabled, so state
    observations keep working; pixel environments then raise the RuntimeError of
    ``select_mujoco_gl``.
    """
    if "dm_control.suite" not in sys.modules:
        # Checked without importing: mujoco too reads MUJOCO_GL once, when first imported.
        for package in ("mujoco", "dm_control"):
            if importlib.util.find_spec(package) is None:
                raise MissingDependencyError(f"{package} is not installed. {_INSTALL_HINT}")
        mujoco_version = importlib.metadata.version("mujoco")
        if int(mujoco_version.split(".")[0]) >= 4:
            raise MissingDependencyError(f"found mujoco {mujoco_version}. {_INSTALL_HINT}")
        # On failure rendering is disabled; pixel environments raise the error again.
        with contextlib.suppress(RuntimeError):
            select_mujoco_gl()
    try:
        from dm_control import suite
    except ImportError as e:
        raise MissingDependencyError(f"{e}. {_INSTALL_HINT}") from e
    return suite


def _parse_task(task: str) -> tuple[str, str]:
    """(domain, task) of a checked "domain-task" name (no dm_control domain has a hyphen)."""
    domain, name = check_dmc_task(task).split("-", 1)
    return domain, name


# Model arrays that dm_control suite tasks write when an episode starts (reacher's and finger's
# targets, sizes and colours); part of a snapshot because they are not in MuJoCo's mjData.
# hfield_data (quadruped-escape's terrain) would also need re-uploading to the GL context.
MUTABLE_MODEL_FIELDS = ("geom_pos", "geom_size", "geom_rgba", "site_pos", "site_size",
                        "site_rgba", "mat_rgba", "light_pos", "dof_damping")


def _physics_state(physics: Any) -> np.ndarray:
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(physics.model.ptr, spec), dtype=np.float64)
    mujoco.mj_getState(physics.model.ptr, physics.data.ptr, state, spec)
    return state


def _set_physics_state(physics: Any, state: np.ndarray) -> None:
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    mujoco.mj_setState(physics.model.ptr, physics.data.ptr, state, spec)
    # dm_control's (legacy) step relies on the derived quantities of the previous step, so
    # recompute them; the solver's warm start, which mj_forward may overwrite, is then put back
    # so the next step starts the solver where the uninterrupted run would have.
    mujoco.mj_forward(physics.model.ptr, physics.data.ptr)
    mujoco.mj_setState(physics.model.ptr, physics.data.ptr, state, spec)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """One dm_control suite task: actions in [-1, 1], repeated; pixel or state observations.

    Actions are clipped to [-1, 1] and mapped linearly onto the task's actuator ranges (most
    are [-1, 1] already; quadruped's are not).

    Episodes last the task's time limit (1000 env steps for the suite) and end with
    ``truncated=True``; ``terminated`` is True only if the task itself ends the episode with
    discount 0 (none of DMC-Medium does). ``info["game_over"]`` marks the episode end, where
    ``info["episode_return"]`` and ``info["episode_length"]`` (agent steps) are also given.
    Build it with ``make_dmc_env``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        dm_env: Any,
        *,
        task: str,
        obs: str,
        image_size: int,
        frame_stack: int,
        action_repeat: int,
        camera_id: int,
    ) -> None:
        self._env = dm_env
        self.task = task
        self.obs_type = obs
        self.action_repeat = action_repeat
        self.image_size = image_size
        self.camera_id = camera_id
        self.frame_stack = frame_stack if obs == "pixels" else 1

        spec = dm_env.action_spec()
        self._action_low = np.asarray(spec.minimum, dtype=np.float64)
        self._action_high = np.asarray(spec.maximum, dtype=np.float64)
        self._unit_bounds = bool(np.all(self._action_low == -1) and np.all(self._action_high == 1))
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)

        if obs == "pixels":
            shape = (3 * self.frame_stack, image_size, image_size)
            self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        else:
            dim = sum(int(np.prod(s.shape)) for s in dm_env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float32)

        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        self._camera: Any = None
        self._episode_return = 0.0
        self._episode_length = 0
        self._needs_reset = True

    @property
    def physics(self) -> Any:
        """The task's ``dm_control`` Physics (e.g. to render a larger frame for a video)."""
        return self._env.physics

    def _render_frame(self) -> np.ndarray:
        if self._camera is None:
            # What physics.render does, minus building a new camera and scene every frame (the
            # same image, about 1.3x faster at 64x64 on a CPU).
            from dm_control.mujoco import Camera

            self._camera = Camera(self._env.physics, self.image_size, self.image_size, self.camera_id)
        return np.ascontiguousarray(self._camera.render().transpose(2, 0, 1))

    def _observe(self, time_step: Any) -> np.ndarray:
        if self.obs_type == "state":
            values = time_step.observation.values()
            return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in values])
        return np.concatenate(self._frames, axis=0)

    def _to_env_action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        action = np.clip(action, -1.0, 1.0)
        if self._unit_bounds:
            return action
        return self._action_low + (action + 1.0) / 2.0 * (self._action_high - self._action_low)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
            self.action_space.seed(seed)
        time_step = self._env.reset()
        if self.obs_type == "pixels":
            frame = self._render_frame()
            for _ in range(self.frame_stack):
                self._frames.append(frame)
        self._episode_return = 0.0
        self._episode_length = 0
        self._needs_reset = False
        return self._observe(time_step), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        env_action = self._to_env_action(action)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(env_action)
            reward += time_step.reward or 0.0
            if time_step.last():
                break
        if self.obs_type == "pixels":
            self._frames.append(self._render_frame())
        self._episode_return += reward
        self._episode_length += 1

        game_over = time_step.last()
        terminated = bool(game_over and time_step.discount == 0.0)
        truncated = bool(game_over and not terminated)
        info: dict[str, Any] = {"game_over": game_over}
        if game_over:
            info["episode_return"] = float(self._episode_return)
            info["episode_length"] = self._episode_length
            self._needs_reset = True
        return self._observe(time_step), float(reward), terminated, truncated, info

    # ------------------------------------------------------------------------------ snapshots
    def _snapshot_config(self) -> dict[str, Any]:
        return {"task": self.task, "obs": self.obs_type, "image_size": self.image_size,
                "frame_stack": self.frame_stack, "action_repeat": self.action_repeat,
                "camera_id": self.camera_id}

    def get_state(self) -> dict[str, Any]:
        """Everything needed to go on exactly from here, as plain values and numpy arrays: MuJoCo's
        integration state (time, positions, velocities, controls, warm start, ...), the model
        arrays tasks change, the task's random stream, dm_control's step counter and our frame
        stack and episode statistics. Use ``plastic.envs.snapshot.get_env_state`` for a whole env."""
        physics = self._env.physics
        return {
            "config": self._snapshot_config(),
            "physics": _physics_state(physics),
            "model": {name: getattr(physics.model, name).copy() for name in MUTABLE_MODEL_FIELDS},
            "task_random": self._env.task.random.get_state(),
            # dm_control's Environment keeps its time limit and pending reset in these.
            "step_count": self._env._step_count,
            "reset_next_step": self._env._reset_next_step,
            "frames": [frame.copy() for frame in self._frames],
            "episode_return": self._episode_return,
            "episode_length": self._episode_length,
            "needs_reset": self._needs_reset,
            "action_space_rng": generator_state(self.action_space._np_random),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``get_state`` of an env made with the same arguments).
        Raises ``ValueError`` before changing anything if it comes from another task or setup."""
        check_same_config("DMCEnv", state["config"], self._snapshot_config())
        physics = self._env.physics
        expected = _physics_state(physics).shape
        if np.shape(state["physics"]) != expected:
            raise ValueError(f"DMCEnv physics state has shape {np.shape(state['physics'])}, "
                             f"this task's has {expected}")
        for name, values in state["model"].items():
            getattr(physics.model, name)[...] = values
        _set_physics_state(physics, state["physics"])
        self._env.task.random.set_state(state["task_random"])
        self._env._step_count = state["step_count"]
        self._env._reset_next_step = state["reset_next_step"]
        self._frames = deque((frame.copy() for frame in state["frames"]), maxlen=self.frame_stack)
        self._episode_return = state["episode_return"]
        self._episode_length = state["episode_length"]
        self._needs_reset = state["needs_reset"]
        self.action_space._np_random = generator_from_state(state["action_space_rng"])

    def close(self) -> None:
        # Freeing the GL context now avoids dm_control's noisy teardown at interpreter exit.
        self._camera = None
        if self._env is not None:
            self._env.physics.free()
            self._env = None
        super().close()


def make_dmc_env(
    task: str,
    seed: int,
    *,
    train: bool = True,
    obs: str = "pixels",
    image_size: int = 64,
    frame_stack: int = 3,
    action_repeat: int | None = None,
    camera_id: int | None = None,
    shadow_size: int | None = None,
) -> DMCEnv:
    """A dm_control suite task as a Gymnasium env (DrQ's pixel protocol by default).

    Args:
        task: "domain-task", e.g. "walker-run", "cartpole-swingup", "ball_in_cup-catch".
        seed: seeds the task's initial states (dm_control's ``task_kwargs["random"]``) and the
            action space. The evaluation env (``train=False``) draws from a stream derived from
            the seed, so its episodes do not replay the training env's initial states.
            ``reset(seed=s)`` later reseeds the task with ``s`` itself.
        obs: "pixels" — uint8 (3*frame_stack, image_size, image_size); "state" — float32 vector
            of the task's observation dict flattened in its order (frame_stack ignored).
        action_repeat: default the task's (``plastic.envs.dmc_tasks.task_settings``: 2; 4 for
            cheetah-run, reacher-easy and ball_in_cup-catch; 8 for cartpole-swingup).
        camera_id: default 2 for quadruped, 0 otherwise (DrQ).
        shadow_size: MuJoCo's shadow-map size in texels; None keeps the model's (2048 in the
            suite). On a CPU renderer 512 draws 64x64 frames 1.3-2x faster, changing only a few
            shadow-edge pixels (mean difference under 0.05 of 255 on the DMC-Medium tasks).
    """
    if obs not in OBS_TYPES:
        raise ValueError(f"obs must be one of {OBS_TYPES}, got {obs!r}")
    _check_positive("image_size", image_size)
    _check_positive("frame_stack", frame_stack)
    if action_repeat is None:
        action_repeat = task_settings(task).action_repeat
    _check_positive("action_repeat", action_repeat)
    if shadow_size is not None:
        _check_positive("shadow_size", shadow_size)

    suite = import_dm_control_suite()
    domain, task_name = _parse_task(task)

    task_seed = seed if train else int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    dm_env = suite.load(domain, task_name, task_kwargs={"random": task_seed})
    if camera_id is None:
        camera_id = 2 if domain == "quadruped" else 0
    n_cameras = dm_env.physics.model.ncam
    if not -1 <= camera_id < n_cameras:
        raise ValueError(
            f"camera_id must be in [-1, {n_cameras - 1}] for {task} "
            f"(-1 is MuJoCo's free camera), got {camera_id}"
        )
    if shadow_size is not None:  # read when the GL context is made, at the first render
        dm_env.physics.model.vis.quality.shadowsize = shadow_size
    if obs == "pixels":
        _check_rendering(dm_env.physics, camera_id)
    env = DMCEnv(
        dm_env,
        task=task,
        obs=obs,
        image_size=image_size,
        frame_stack=frame_stack,
        action_repeat=action_repeat,
        camera_id=camera_id,
    )
    env.action_space.seed(task_seed)
    return env
