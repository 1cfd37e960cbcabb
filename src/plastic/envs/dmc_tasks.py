"""DeepMind Control tasks and PLASTIC's per-task settings, as data.

DMC-Medium is the 11-task benchmark of the PLASTIC paper (from pixels, 2M env steps each); nine
shorter tasks take the settings of the authors' DMC script (``OTHER_TASKS``). Any other dm_control
suite task can be run by its "domain-task" name with default settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from plastic.errors import MissingDependencyError


@dataclass(frozen=True)
class DMCTaskSettings:
    """Paper settings for one task; step counts say whether they count env or agent steps."""

    name: str
    action_repeat: int = 2
    env_steps: int = 2_000_000
    sam_rho: float = 0.01
    reset_interval_agent_steps: int = 100_000

    @property
    def agent_steps(self) -> int:
        """Agent steps (policy decisions) that make up ``env_steps`` physics control steps."""
        return self.env_steps // self.action_repeat


# Reset interval: the paper says every 100k agent steps, "25k-50k for short tasks", without
# naming the short tasks. The authors' DMC script (train_pixels.py) has per-task tables: every
# DMC-Medium task runs 2M env steps with a Reset every 100k agent steps (0.5M-1M agent steps, at
# least 5 resets); the short tasks are others (OTHER_TASKS below).
DMC_MEDIUM: dict[str, DMCTaskSettings] = {
    s.name: s
    for s in (
        DMCTaskSettings("acrobot-swingup"),
        DMCTaskSettings("cartpole-swingup_sparse"),
        DMCTaskSettings("cheetah-run", action_repeat=4, sam_rho=0.002),
        DMCTaskSettings("finger-turn_easy"),
        DMCTaskSettings("finger-turn_hard"),
        DMCTaskSettings("hopper-hop"),
        DMCTaskSettings("quadruped-run"),
        DMCTaskSettings("quadruped-walk"),
        DMCTaskSettings("reacher-easy", action_repeat=4),
        DMCTaskSettings("reacher-hard"),
        DMCTaskSettings("walker-run"),
    )
}

DMC_MEDIUM_TASKS: tuple[str, ...] = tuple(DMC_MEDIUM)

# Tasks outside DMC-Medium that the authors' DMC script also carries settings for: its env-step
# budget and Reset interval per task, and PlaNet's action repeats (8 for cartpole-swingup, 4 for
# ball_in_cup-catch) that it applies. These are the paper's "short tasks".
OTHER_TASKS: dict[str, DMCTaskSettings] = {
    name: DMCTaskSettings(name, action_repeat=repeat, env_steps=env_steps, reset_interval_agent_steps=reset)
    for name, repeat, env_steps, reset in (
        ("ball_in_cup-catch", 4, 500_000, 25_000),
        ("cartpole-balance", 2, 500_000, 25_000),
        ("cartpole-balance_sparse", 2, 500_000, 25_000),
        ("cartpole-swingup", 8, 500_000, 25_000),
        ("finger-spin", 2, 500_000, 25_000),
        ("hopper-stand", 2, 1_000_000, 50_000),
        ("pendulum-swingup", 2, 1_000_000, 50_000),
        ("walker-stand", 2, 500_000, 25_000),
        ("walker-walk", 2, 500_000, 25_000),
    )
}


def task_settings(task: str) -> DMCTaskSettings:
    """The paper's settings for a DMC-Medium task, the authors' for the other tasks their code
    lists (``OTHER_TASKS``), defaults for any other task name.

    The name is not validated here; ``check_dmc_task`` does it (when a config is built).
    """
    return DMC_MEDIUM.get(task) or OTHER_TASKS.get(task) or DMCTaskSettings(name=task)


def resolve_action_repeat(task: str, asked: int) -> int:
    """Env steps per agent step: ``asked``, or the task's setting when ``asked`` is 0."""
    return asked or task_settings(task).action_repeat


def all_dmc_task_names() -> list[str]:
    """Every dm_control suite task as "domain-task", sorted. Imports dm_control on first use."""
    from plastic.envs.dmc import import_dm_control_suite

    suite = import_dm_control_suite()
    return sorted(f"{domain}-{task}" for domain, task in suite.ALL_TASKS)


def check_dmc_task(task: str) -> str:
    """``task`` if it is a DMC-Medium task or any other dm_control suite task ("domain-task"),
    else ``ValueError`` listing them. dm_control is imported only for names without settings here
    (``DMC_MEDIUM``, ``OTHER_TASKS``); where it is missing, such a name is refused, saying so."""
    if task in DMC_MEDIUM or task in OTHER_TASKS:
        return task
    try:
        every = all_dmc_task_names()
    except MissingDependencyError as error:
        raise ValueError(
            f"unknown DeepMind Control task {task!r}: not one of the tasks known without dm_control "
            f"({', '.join([*DMC_MEDIUM_TASKS, *OTHER_TASKS])}), and other suite tasks cannot be checked "
            f"here ({error})") from None
    if task not in every:
        raise ValueError(
            f"unknown DeepMind Control task {task!r}. The 11 DMC-Medium tasks: "
            f"{', '.join(DMC_MEDIUM_TASKS)}. Any dm_control suite task works as 'domain-task': "
            f"{', '.join(every)}."
        )
    return task
