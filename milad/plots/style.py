"""What the figures share: saving, the layout of panel grids, and the colours and labels of
correlation orders and decoding modes (colour-blind safe, Okabe-Ito)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from ..io import atomic_output

__all__ = ["DEGREE_COLOURS", "MODE_COLOURS", "MODE_LABELS", "panel_grid", "save_figure"]

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
    """Save ``fig`` to every path (format from the suffix), creating parent folders; each file
    is written whole or not at all (:func:`milad.io.atomic_output`)."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as handle:
            fig.savefig(handle, dpi=dpi, format=path.suffix.lstrip(".").lower() or None)



def panel_grid(total: int, max_columns: int = 5) -> tuple[int, int]:
    """(rows, columns) for ``total`` panels, at most ``max_columns`` columns, the last row at
    least half full: of those with at least sqrt(total) columns, the fewest empty cells, then
    more columns; without such, the most columns."""
    if total < 1 or max_columns < 1:
        raise ValueError(f"panel_grid needs total >= 1 and max_columns >= 1, got {total}, "
                         f"{max_columns}")

    def last_row(c):
        return total - (-(-total // c) - 1) * c

    widest = min(total, max_columns)
    fitting = [c for c in range(1, widest + 1) if 2 * last_row(c) >= c]
    wide = [c for c in fitting if c * c >= total]
    columns = min(wide, key=lambda c: (c - last_row(c), -c)) if wide else max(fitting)
    return -(-total // columns), columns
