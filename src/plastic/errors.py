"""Errors the command line shows as one line (``plastic: error: ...``) rather than a traceback."""

from __future__ import annotations


class MissingDependencyError(ImportError):
    """An optional library a suite or the report needs is not installed; the message says what to
    install. Other ``ImportError``s are bugs and keep their traceback."""
