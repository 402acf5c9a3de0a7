"""Placeholder files for outputs that could not be made.

A pipeline keeps a fixed set of outputs per element; when an element's training data are
missing, its fingerprint set (``.npz``) or model (``.pt``) is replaced by a small stand-in that
records why. :func:`unavailable_reason` reads that reason back, and the loaders of
:class:`~milad.potential.dataset.FingerprintSet`, :class:`~milad.potential.model.Potential`,
:class:`~milad.potential.ensemble.Ensemble` and :func:`~milad.potential.ensemble.load_model`
raise :class:`milad.data.DataUnavailableError` with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_output
from .modelfile import READABLE_FORMATS, read_model_file, read_model_header, write_model_file

__all__ = ["UNAVAILABLE", "mark_unavailable", "unavailable_reason"]

#: ``format`` of a placeholder model file.
UNAVAILABLE = "milad-unavailable"
UNAVAILABLE_VERSION = 1
READABLE_FORMATS[UNAVAILABLE] = UNAVAILABLE_VERSION


def mark_unavailable(path: str | Path, reason: str) -> None:
    """Write a stand-in for a fingerprint set (``.npz``) or a model (``.pt``) that could not
    be made (e.g. the training data are missing); loading it raises with ``reason``.

    Lets a pipeline keep a fixed set of outputs per element while saying why one is empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        with atomic_output(path) as handle:
            np.savez(handle, unavailable=np.array(str(reason)))
    else:
        write_model_file({"format": UNAVAILABLE, "format_version": UNAVAILABLE_VERSION,
                          "reason": str(reason)}, path)


def unavailable_reason(path: str | Path) -> str | None:
    """The reason stored by :func:`mark_unavailable`, or ``None`` for a real file."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return str(data["unavailable"]) if "unavailable" in data.files else None
    if read_model_header(path)["format"] != UNAVAILABLE:
        return None
    return str(read_model_file(path)["reason"])
