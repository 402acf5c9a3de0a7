"""The chirality figure: which enantiomer the decodes of chiral QM9 molecules return, with the
chiral fingerprint and with the default one (``milad.chirality``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..chirality import FINGERPRINTS, HANDS
from .decoding import _clip
from .style import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FINGERPRINT_STYLES", "plot_chirality"]

#: marker, colour and label of each fingerprint
FINGERPRINT_STYLES = {
    "chiral": {"marker": "o", "color": "#0072B2", "label": "chiral fingerprint"},
    "default": {"marker": "s", "color": "#D55E00", "label": "default fingerprint"},
}
HAND_COLOURS = {"original": "#009E73", "mirror": "#D55E00", "either": "#999999",
                "neither": "#000000"}
#: structure RMSDs below this (exact zeros too) are drawn at it
FLOOR = 1e-9


def plot_chirality(table, paths: Iterable[str | Path] = (), structure_tolerance: float = 0.01,
                   title: str = "") -> Figure:
    """Left: RMSD of every successful decode to the original against its RMSD to the mirror
    image (log-log; the original hand lies top left, the mirror image bottom right); failed
    decodes as crosses. Right: per fingerprint, the successful decodes by hand. Saved to every
    path in ``paths``; returns the ``Figure``."""
    import matplotlib.pyplot as plt

    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(9.5, 4.2),
                                        gridspec_kw={"width_ratios": [3, 2]})
    present = [f for f in FINGERPRINTS if (table["fingerprint"] == f).any()]
    success = table["success"].astype(bool).to_numpy()
    for fingerprint in present:
        style = FINGERPRINT_STYLES[fingerprint]
        rows = (table["fingerprint"] == fingerprint).to_numpy()
        ok, failed = table[rows & success], table[rows & ~success]
        scatter.scatter(_clip(ok["rmsd"], FLOOR), _clip(ok["mirror_rmsd"], FLOOR), s=36,
                        marker=style["marker"], facecolors="none" if fingerprint == "default"
                        else style["color"], edgecolors=style["color"], alpha=0.8,
                        label=f"{style['label']} ({len(ok)} decoded)")
        if len(failed):
            scatter.scatter(_clip(failed["rmsd"], FLOOR), _clip(failed["mirror_rmsd"], FLOOR),
                            s=30, marker="x", color=style["color"],
                            label=f"{style['label']}: not decoded ({len(failed)})")
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    values = np.concatenate([table["rmsd"], table["mirror_rmsd"]]).astype(float)
    finite = values[np.isfinite(values)]
    low, high = FLOOR / 5, max(5.0, 3 * float(finite.max()) if len(finite) else 5.0)
    for axis in (scatter.set_xlim, scatter.set_ylim):
        axis(low, high)
    tolerance = structure_tolerance
    scatter.fill_between([low, tolerance], tolerance, high, color=HAND_COLOURS["original"],
                         alpha=0.08, lw=0)
    scatter.fill_between([tolerance, high], low, tolerance, color=HAND_COLOURS["mirror"],
                         alpha=0.08, lw=0)
    for line in (scatter.axvline, scatter.axhline):
        line(tolerance, color="0.4", lw=0.7, ls="--")
    scatter.text(low * 2, high / 1.6, "original enantiomer", fontsize=8, va="top",
                 color=HAND_COLOURS["original"])
    scatter.text(high / 1.6, low * 2, "mirror image", fontsize=8, ha="right", va="bottom",
                 color=HAND_COLOURS["mirror"])
    scatter.set_xlabel("structure RMSD to the original (Å)")
    scatter.set_ylabel("structure RMSD to its mirror image (Å)")
    scatter.legend(loc="center left", bbox_to_anchor=(0.0, 0.3), fontsize=7, frameon=False)
    if np.any(finite < FLOOR):
        scatter.text(0.99, 0.99, f"below {FLOOR:.0e} (exact zeros too): drawn at {FLOOR:.0e}",
                     transform=scatter.transAxes, fontsize=6.5, color="0.3", ha="right",
                     va="top")

    positions = np.arange(len(present))
    bottom = np.zeros(len(present))
    for hand in HANDS:
        counts = np.array([int(((table["fingerprint"] == f) & success & (table["hand"] == hand)).sum())
                           for f in present])
        if not counts.any():
            continue
        bars.bar(positions, counts, bottom=bottom, color=HAND_COLOURS[hand], width=0.6,
                 label={"original": "original enantiomer", "mirror": "mirror image",
                        "either": "both (not told apart)", "neither": "neither"}[hand])
        for x, (count, base) in enumerate(zip(counts, bottom)):
            if count:
                bars.text(x, base + count / 2, str(count), ha="center", va="center",
                          color="white", fontsize=9)
        bottom = bottom + counts
    bars.set_xticks(positions, [FINGERPRINT_STYLES[f]["label"] for f in present], fontsize=8)
    bars.set_ylabel("successful decodes")
    bars.yaxis.get_major_locator().set_params(integer=True)
    bars.set_ylim(0, max(1.0, bottom.max()) * 1.25)
    bars.legend(loc="upper right", fontsize=7, frameon=False)
    bars.set_title(f"hand within {structure_tolerance:g} Å", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig
