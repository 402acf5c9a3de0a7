"""MILAD: moment invariants local atomic descriptors."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

__version__ = "0.1.0"


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def configure_numba_cache(package: Path = Path(__file__).parent) -> str | None:
    """Point numba's on-disk cache at a writable folder when ``package`` (where numba's
    ``cache=True`` writes ``__pycache__``) is read-only and ``NUMBA_CACHE_DIR`` is unset.

    Tries ``$XDG_CACHE_HOME/milad/numba`` (``~/.cache``), then the temporary folder; returns
    the folder chosen, or None when nothing had to change. Runs when milad is imported, before
    any kernel is compiled.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or _writable(package / "__pycache__"):
        return None
    candidates = []
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        candidates.append(cache / "milad" / "numba")
    except RuntimeError:  # no home folder
        pass
    candidates.append(Path(tempfile.gettempdir()) / f"milad-{os.getuid()}" / "numba")
    for folder in candidates:
        if _writable(folder):
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            if "numba" in sys.modules:  # numba read its settings already
                sys.modules["numba"].config.CACHE_DIR = str(folder)
            return str(folder)
    return None


configure_numba_cache()
