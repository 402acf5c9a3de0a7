"""Figures of the paper's completeness experiment (section II E, Fig. 1)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..completeness import completeness_summary
from .style import DEGREE_COLOURS, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_completeness"]


def plot_completeness(table, paths: Iterable[str | Path] = (), tolerance: float = 1e-10) -> Figure:
    """Draw Phi_B - Phi_B' per invariant (paper Fig. 1) and save it to every path in ``paths``.

    Top panel: the signed differences on a linear scale, as in the paper. Bottom panel: their
    magnitude on a log scale, showing that the nu <= 3 invariants agree to rounding.
    Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    summary = completeness_summary(table)
    index = table["index"].to_numpy()
    degree = table["degree"].to_numpy()
    difference = table["difference"].to_numpy()
    floor = 1e-18  # exact zeros drawn at the bottom of the log panel

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7.0, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for nu, colour in DEGREE_COLOURS.items():
        mask = degree == nu
        if not mask.any():
            continue
        stats = summary[nu]
        label = rf"$\nu={nu}$: {stats['differ']} of {stats['count']} differ"
        top.bar(index[mask], difference[mask], width=0.9, color=colour, label=label)
        bottom.scatter(
            index[mask], np.maximum(np.abs(difference[mask]), floor), s=9, color=colour
        )
    top.axhline(0.0, color="0.3", lw=0.6)
    top.set_ylabel(r"$\Phi_B - \Phi_{B'}$")
    top.legend(loc="upper left", frameon=False, fontsize=8)
    nu4 = summary.get(4, {"count": 0, "differ": 0, "max_abs_difference": 0.0})
    low = max((s["max_abs_difference"] for nu, s in summary.items() if nu <= 3), default=0.0)
    top.set_title(
        f"Pozdnyakov pair B/B': {nu4['differ']} of {nu4['count']} "
        rf"$\nu=4$ invariants differ (max $|\Delta|$ = {nu4['max_abs_difference']:.1e}); "
        rf"$\nu\leq3$: max $|\Delta|$ = {low:.0e}",
        fontsize=9,
    )
    bottom.set_yscale("log")
    bottom.axhline(tolerance, color="0.3", lw=0.6, ls="--")
    bottom.annotate(
        f"tolerance {tolerance:.0e}", (index.min(), tolerance), xytext=(2, 3),
        textcoords="offset points", fontsize=7, color="0.3",
    )
    bottom.text(
        0.99, 0.92, f"exact zeros drawn at {floor:.0e}", transform=bottom.transAxes,
        ha="right", va="top", fontsize=7, color="0.3",
    )
    bottom.set_ylim(floor / 3, max(1.0, float(np.abs(difference).max()) * 3))
    bottom.set_ylabel(r"$|\Phi_B - \Phi_{B'}|$")
    bottom.set_xlabel("invariant index (ordered by moment order, correlation order, terms)")
    fig.tight_layout()
    save_figure(fig, paths)
    return fig
