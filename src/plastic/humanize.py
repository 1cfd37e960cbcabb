"""Numbers written for people: how long something took or has left."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """'40 s' below 90 s, '12 min' below 90 min, else '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
