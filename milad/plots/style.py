"""What the figures share: saving, and the colours and labels of correlation orders and
decoding modes (colour-blind safe, Okabe-Ito)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["DEGREE_COLOURS", "MODE_COLOURS", "MODE_LABELS", "save_figure"]

#: colour of each correlation order nu (completeness figure)
DEGREE_COLOURS = {1: "#0072B2", 2: "#009E73", 3: "#E69F00", 4: "#D55E00"}

#: colour and legend label of each decoding mode (``milad.qm9.MODES``)
MODE_COLOURS = {"positions": "#E69F00", "single": "#CC79A7", "two": "#0072B2"}
MODE_LABELS = {
    "positions": "positions only",
    "single": "positions + species",
    "two": "species from 2nd fingerprint",
}


def save_figure(fig, paths: Iterable[str | Path], dpi: int = 150) -> None:
    """Save ``fig`` to every path (format from the suffix), creating parent folders."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)

