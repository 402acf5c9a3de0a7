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

#: colour of the parity-odd invariants of the chiral fingerprint
ODD_COLOUR = "#CC79A7"


def plot_completeness(table, paths: Iterable[str | Path] = (), tolerance: float = 1e-10,
                      mirror_table=None) -> Figure:
    """Draw Phi_B - Phi_B' per invariant (paper Fig. 1) and save it to every path in ``paths``.

    Top panel: the signed differences on a linear scale, as in the paper. Middle panel: their
    magnitude on a log scale, showing that the nu <= 3 invariants agree to rounding. With
    ``mirror_table`` (``milad.completeness.mirror_pair_differences``) a bottom panel: B against
    its mirror image with the chiral fingerprint, the default (even) invariants agreeing to
    rounding and the parity-odd ones differing (their sign flips).
    Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    summary = completeness_summary(table)
    index = table["index"].to_numpy()
    degree = table["degree"].to_numpy()
    difference = table["difference"].to_numpy()
    floor = 1e-18  # exact zeros drawn at the bottom of the log panel

    if mirror_table is None:
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(7.0, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
        )
    else:
        fig, (top, bottom, mirror) = plt.subplots(
            3, 1, figsize=(7.0, 7.6), gridspec_kw={"height_ratios": [3, 2, 2]}
        )
        bottom.sharex(top)
        top.tick_params(labelbottom=False)
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
    if mirror_table is not None:
        _plot_mirror_pair(mirror, mirror_table, tolerance, floor)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def _plot_mirror_pair(panel, table, tolerance: float, floor: float) -> None:
    """|Phi_B - Phi_B*| of B and its mirror image B* with the chiral fingerprint (log scale):
    the even invariants (the default fingerprint) grey, the parity-odd ones coloured."""
    index = table["index"].to_numpy()
    magnitude = np.maximum(np.abs(table["difference"].to_numpy()), floor)
    odd = (table["parity"] == "odd").to_numpy()
    even_max = float(np.abs(table.loc[~odd, "difference"]).max())
    panel.scatter(index[~odd], magnitude[~odd], s=9, color="0.55",
                  label=f"default fingerprint ({int((~odd).sum())}): max $|\\Delta|$ = {even_max:.0e}")
    panel.scatter(index[odd], magnitude[odd], s=22, color=ODD_COLOUR, marker="D",
                  label=f"parity-odd, chiral=True ({int(odd.sum())}): "
                        f"{int(table.loc[odd, 'differs'].sum())} differ, "
                        r"$\Phi_{B^*} = -\Phi_B$")
    panel.axhline(tolerance, color="0.3", lw=0.6, ls="--")
    panel.set_yscale("log")
    panel.set_ylim(floor / 3, 1.0)
    panel.set_xlim(index.min() - 1, index.max() + 1)
    panel.set_ylabel(r"$|\Phi_B - \Phi_{B^*}|$")
    panel.set_xlabel("invariant index of the chiral fingerprint (the default one, then the odd ones)")
    panel.set_title("B and its mirror image B* (chiral fingerprint)", fontsize=9)
    panel.legend(loc="upper left", fontsize=7, frameon=False)
