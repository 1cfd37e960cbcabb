"""Published Atari-100k results that ship with plastic, for reports to compare against.

Each ``atari100k_published_<AGENT>_runs.json`` holds, for every one of the 26 Atari-100k games
(CamelCase names, as published), the final score of each of 100 independent runs of one agent:
DER (data-efficient Rainbow), DrQ, DrQ(ε) (DrQ run by the rliable authors with the usual
ε-greedy exploration and evaluation settings in place of DrQ's own) and SPR. They are the per-run
scores Agarwal et al. released with "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021) and their rliable library, copied here unchanged. Their interquartile
means of human-normalised score over the 26 games are 0.183 (DER), 0.224 (DrQ), 0.280 (DrQ(ε))
and 0.337 (SPR); the tests recompute these from the files.

``plastic report DIR --baseline drq-eps`` adds one to a report by name (case-insensitive).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class PublishedBaseline:
    name: str  # what --baseline accepts
    title: str  # how reports label it
    filename: str

    def read(self) -> dict[str, list[float]]:
        """``{game (CamelCase): [final score of each run, ...]}``."""
        data: Any = json.loads(resources.files(__name__).joinpath(self.filename).read_text("utf-8"))
        return data


PUBLISHED_BASELINES: tuple[PublishedBaseline, ...] = (
    PublishedBaseline("der", "DER", "atari100k_published_DER_runs.json"),
    PublishedBaseline("drq", "DrQ", "atari100k_published_DrQ_runs.json"),
    PublishedBaseline("drq-eps", "DrQ(ε)", "atari100k_published_DrQeps_runs.json"),
    PublishedBaseline("spr", "SPR", "atari100k_published_SPR_runs.json"),
)


def _key(name: str) -> str:
    """``DrQ-eps``, ``drq_eps``, ``DrQeps`` and ``DrQ(ε)`` all become ``drqeps``."""
    return re.sub(r"[\s\-_()]", "", name.lower()).replace("ε", "eps")


def published_baseline(name: str) -> PublishedBaseline | None:
    """The bundled baseline called ``name`` (case, dashes and underscores ignored), else None."""
    return next((b for b in PUBLISHED_BASELINES if _key(b.name) == _key(name)), None)


def published_baseline_names() -> list[str]:
    return [b.name for b in PUBLISHED_BASELINES]
