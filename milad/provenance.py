"""Provenance records for pipeline outputs: which code, which commit and which configuration.

Every table the pipeline writes carries the dictionary returned by :func:`provenance`, so a
number can always be traced back to the package version, the git commit (and whether the
working tree had uncommitted changes) and the configuration that produced it.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

__all__ = ["provenance", "git_commit", "provenance_comment_lines"]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip()


def git_commit(path: str | Path | None = None) -> dict[str, Any]:
    """Commit of the git checkout holding ``path`` (default: the milad package itself).

    Returns ``{"commit": sha or "unknown", "dirty": bool or None}``; ``dirty`` tells whether
    tracked files differ from that commit. Outside a checkout (an installed wheel) or in a
    repository without commits both are unknown.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if where.is_file():
        where = where.parent
    commit = _git(["rev-parse", "--verify", "HEAD"], where)
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance(config: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Package version, git commit, interpreter and key library versions, and ``config``.

    ``extra`` keyword arguments are added as they are (e.g. ``rule="table1"``).
    """
    import numpy
    import scipy

    from . import __version__

    git = git_commit()
    record: dict[str, Any] = {
        "milad_version": __version__,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "config": dict(config) if config is not None else {},
    }
    record.update(extra)
    return record


def provenance_comment_lines(record: Mapping[str, Any], prefix: str = "# ") -> list[str]:
    """``record`` as ``key: value`` lines (values JSON-encoded) behind a comment prefix."""
    return [f"{prefix}{key}: {json.dumps(value, sort_keys=True)}" for key, value in record.items()]
