"""Figures of the paper that the pipeline redraws, and the small data sets behind them.

Completeness figure (paper section II E, Fig. 1)
------------------------------------------------
Pozdnyakov et al. (PRL 125, 166001, 2020) built two atomic environments, B and B', that no
descriptor of correlation order nu <= 3 (power spectrum, bispectrum) can tell apart.
:func:`pozdnyakov_pair` builds them, :func:`completeness_differences` evaluates the MILAD
fingerprint of both and :func:`plot_completeness` draws Phi_B - Phi_B' per invariant,
coloured by correlation order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = [
    "pozdnyakov_pair",
    "completeness_differences",
    "completeness_summary",
    "plot_completeness",
    "DEGREE_COLOURS",
    "save_figure",
    "planar_frame",
    "reconstruction_slices",
    "plot_reconstructions",
]

#: colour of each correlation order in the figures (colour-blind safe, Okabe-Ito)
DEGREE_COLOURS = {1: "#0072B2", 2: "#009E73", 3: "#E69F00", 4: "#D55E00"}


def save_figure(fig, paths: Iterable[str | Path], dpi: int = 150) -> None:
    """Save ``fig`` to every path (format from the suffix), creating parent folders."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)


def _rotation_about_y(angle_degrees: float) -> np.ndarray:
    """Right-handed rotation about y: takes the z axis towards the x axis."""
    a = np.radians(angle_degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def pozdnyakov_pair(
    radius: float = 0.3,
    polar_angles: Iterable[float] = (0.0, -87.0, 176.0),
    twist: float = 86.0,
    shift: float = 0.4,
    apex: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """The environments B and B' of Pozdnyakov et al., in unit-sphere coordinates.

    Both have eight atoms (the order is the same in both):

    0. the central atom at the origin;
    1. one atom at ``(0, +apex, 0)`` in B and ``(0, -apex, 0)`` in B' (the only difference);
    2-4. three atoms at distance ``radius`` from the origin in the plane y = 0, at
       ``polar_angles`` (degrees, from the z axis towards x), then shifted by ``+shift``
       along y;
    5-7. the same three atoms before their shift, rotated by ``twist`` degrees about the y axis
       (right-handed), then shifted by ``-shift`` along y.

    Returns two float arrays of shape (8, 3).
    """
    angles = np.radians(np.asarray(tuple(polar_angles), dtype=float))
    group = radius * np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], axis=1)
    upper = group + np.array([0.0, shift, 0.0])
    lower = group @ _rotation_about_y(twist).T - np.array([0.0, shift, 0.0])
    centre = np.zeros((1, 3))
    b = np.concatenate([centre, [[0.0, apex, 0.0]], upper, lower])
    b_prime = np.concatenate([centre, [[0.0, -apex, 0.0]], upper, lower])
    return b, b_prime


def completeness_differences(n_max: int = 7, tolerance: float = 1e-10, invariants=None):
    """Fingerprints of B and B' and their difference, one row per invariant.

    The fingerprints are those of ``milad.descriptor.Descriptor(n_max, cutoff=1.0)`` (delta
    feature functions, all weights 1) with the shipped invariant set of order ``n_max``, or
    with ``invariants`` (an ``InvariantSet`` or a path to one) when given.

    Returns a ``pandas.DataFrame`` with columns ``index``, ``label``, ``degree`` (correlation
    order nu), ``phi_B``, ``phi_B_prime``, ``difference`` (Phi_B - Phi_B') and ``differs``
    (``|difference| > tolerance``).
    """
    import pandas as pd

    from .descriptor import Descriptor

    descriptor = Descriptor(n_max=n_max, cutoff=1.0, invariants=invariants)
    invariants = descriptor.invariants
    b, b_prime = pozdnyakov_pair()
    phi_b, phi_b_prime = descriptor.environment(b), descriptor.environment(b_prime)
    difference = phi_b - phi_b_prime
    return pd.DataFrame(
        {
            "index": np.arange(len(difference)),
            "label": list(invariants.labels),
            "degree": np.asarray(invariants.degrees),
            "phi_B": phi_b,
            "phi_B_prime": phi_b_prime,
            "difference": difference,
            "differs": np.abs(difference) > tolerance,
        }
    )


def completeness_summary(table) -> dict[int, dict[str, float]]:
    """Per correlation order: number of invariants, how many differ, largest |difference|."""
    out = {}
    for degree, rows in table.groupby("degree"):
        out[int(degree)] = {
            "count": int(len(rows)),
            "differ": int(rows["differs"].sum()),
            "max_abs_difference": float(np.abs(rows["difference"]).max()),
        }
    return out


def plot_completeness(table, paths: Iterable[str | Path] = (), tolerance: float = 1e-10):
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


# ----------------------------------------------------------------------------------------
# Fig. 2: a molecule reconstructed from Zernike moments of increasing order
# ----------------------------------------------------------------------------------------
#: the paper's Fig. 2 weights: H 1.125, C 2.375, N 3.625, O 4.875 (bins of [0.5, 5.5])
FIG2_SPECIES = ("H", "C", "N", "O")
FIG2_WEIGHT_RANGE = (0.5, 5.5)


def planar_frame(positions: np.ndarray) -> np.ndarray:
    """Rotation whose rows are the principal axes: ``positions @ R.T`` puts the plane of
    largest spread at z = 0 (exactly the molecular plane for a planar molecule)."""
    centred = positions - positions.mean(axis=0)
    _, _, axes = np.linalg.svd(centred)
    if np.linalg.det(axes) < 0:
        axes[2] *= -1
    return axes


def reconstruction_slices(atoms, orders: Iterable[int], cutoff: float = 5.0,
                          species=None, n_grid: int = 161):
    """Eq. 14 reconstructions of a molecule in its own plane for each maximum order N.

    The molecule is centred on its smallest enclosing sphere, rotated so its principal plane
    is z = 0 and scaled by ``cutoff`` into the unit sphere; the moments of its weighted delta
    density (``species``: a ``SpeciesMap``, default the paper's Fig. 2 weights) are computed
    to order N and the density is evaluated on an ``n_grid`` x ``n_grid`` grid of that plane.

    Returns ``(axis, slices, plane_positions, weights)``: grid coordinates (unit-sphere units),
    ``{N: density (n_grid, n_grid) indexed [y, x]}``, the in-plane atom positions (n_atoms, 3)
    and the weights used.
    """
    from .descriptor import centre_on_miniball
    from .features import SpeciesMap
    from .moments import geometric_moments, reconstruct, zernike_moments

    species = species or SpeciesMap(FIG2_SPECIES, FIG2_WEIGHT_RANGE)
    centred, radius = centre_on_miniball(atoms.positions)
    if radius > cutoff:
        raise ValueError(f"molecule radius {radius:.3f} A exceeds the cutoff {cutoff} A")
    plane = centred @ planar_frame(centred).T / cutoff
    weights = species.weights_of(atoms.get_chemical_symbols())
    axis = np.linspace(-1.0, 1.0, n_grid)
    xx, yy = np.meshgrid(axis, axis)  # [y, x]
    grid = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], axis=1)
    slices = {}
    for order in orders:
        moments = zernike_moments(geometric_moments(plane, weights, order), order)
        slices[int(order)] = reconstruct(moments, order, grid).reshape(xx.shape)
    return axis, slices, plane, weights


def plot_reconstructions(axis, slices, plane_positions, weights, paths: Iterable[str | Path] = (),
                         title: str = ""):
    """Contour panels of ``reconstruction_slices`` output, one per order (paper Fig. 2)."""
    import matplotlib.pyplot as plt

    orders = sorted(slices)
    columns = min(4, len(orders))
    rows = int(np.ceil(len(orders) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    extent = 1.0
    for panel, order in zip(axes.flat, orders):
        # fractional colour scale: each panel from 5% to 100% of its own maximum
        levels = np.linspace(0.05, 1.0, 12) * float(np.max(slices[order]))
        panel.contourf(axis, axis, slices[order], levels=levels, cmap="viridis", extend="max")
        panel.scatter(plane_positions[:, 0], plane_positions[:, 1], s=12 * np.asarray(weights),
                      facecolors="none", edgecolors="white", linewidths=0.8)
        panel.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.6))
        panel.set_title(f"N = {order}", fontsize=9)
        panel.set_xlim(-extent, extent)
        panel.set_ylim(-extent, extent)
        panel.set_aspect("equal")
        panel.set_xticks([])
        panel.set_yticks([])
    for panel in list(axes.flat)[len(orders):]:
        panel.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig
