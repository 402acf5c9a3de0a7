"""Figures of how a fingerprint holds a molecule: its reconstructions by maximum order (paper
Fig. 2) and the peak finding of Algorithm 2 step by step (paper Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .style import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FIG2_SPECIES",
    "FIG2_WEIGHT_RANGE",
    "planar_frame",
    "plot_peak_finding",
    "plot_reconstructions",
    "reconstruction_slices",
]

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
    from ..descriptor import centre_on_miniball
    from ..features import SpeciesMap
    from ..moments import geometric_moments, reconstruct, zernike_moments

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
                         title: str = "") -> Figure:
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


def _max_projection(grid: np.ndarray, values: np.ndarray, n_points: int) -> np.ndarray:
    """Largest value along z of each (x, y) column of the cubic grid: (n_points, n_points)
    indexed [y, x]; columns without any grid point are NaN. ``values``: (G,), -inf to skip."""
    index = np.rint((grid + 1.0) * 0.5 * (n_points - 1)).astype(np.int64)
    volume = np.full((n_points,) * 3, -np.inf)
    volume[index[:, 0], index[:, 1], index[:, 2]] = values
    projection = volume.max(axis=2).T
    projection[np.isneginf(projection)] = np.nan
    return projection


def plot_peak_finding(atoms, descriptor, paths: Iterable[str | Path] = (),
                      n_panels: int | None = None, n_points: int = 31,
                      r_min: float = 0.11) -> Figure:
    """Algorithm 2 on one molecule, panel by panel (paper Fig. 3); returns the ``Figure``.

    The molecule is centred on its miniball (``descriptor.molecule_positions``), rotated so
    its principal plane is z = 0 (:func:`planar_frame`) and scaled by ``descriptor.cutoff``
    into the unit sphere; the moments ``x`` of its delta density with all weights 1 are the
    input of :func:`milad.decode.peak_find` (``n_points`` grid points per axis, exclusion
    radius ``r_min`` in cutoff units). Panel i shows the largest value along z of the
    reconstruction atom i was picked from, over grid points still available (white where a
    whole column is excluded), the exclusion spheres of the atoms placed so far (dashed
    circles of radius ``r_min``, ``gid="excluded"``), those atoms (orange) and the picked
    point (red cross); the title gives the excluded share of the grid;
    the last panel shows the initial reconstruction with the placed atoms and the original
    atoms (green). n_panels: show only the first ``n_panels`` steps (default all).
    Axes are in cutoff units (x, y of the rotated frame). Scatter artists carry the labels
    ``"placed"``, ``"picked"`` and ``"original"``.
    """
    import matplotlib.pyplot as plt

    from ..decode import moment_space, peak_find

    if len(atoms) == 0:
        raise ValueError("plot_peak_finding needs a molecule with atoms")
    centred = descriptor.molecule_positions(atoms)
    unit = centred @ planar_frame(centred).T / descriptor.cutoff if len(atoms) > 1 else centred
    x = moment_space(descriptor.invariants).moments(unit, np.ones(len(atoms)))
    trace: list = []
    placed = peak_find(x, descriptor.invariants, len(atoms), weight=1.0, r_min=r_min,
                       n_points=n_points, trace=trace)
    steps = len(trace)
    if n_panels is not None:
        if int(n_panels) != n_panels or n_panels < 1:
            raise ValueError(f"n_panels must be a positive integer, got {n_panels}")
        steps = min(int(n_panels), steps)
    total = steps + 1
    columns = min(4, total)
    rows = int(np.ceil(total / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.7 * rows), squeeze=False)
    half = 1.0 / (n_points - 1)
    extent = (-1 - half, 1 + half, -1 - half, 1 + half)
    first = _max_projection(trace[0]["grid"], trace[0]["values"], n_points)
    vmax = float(np.nanmax(first))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")

    def draw(panel, image):
        panel.imshow(image, origin="lower", extent=extent, cmap=cmap, vmin=0.0, vmax=vmax,
                     interpolation="nearest")
        panel.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.6))
        panel.set_xlim(-1.05, 1.05)
        panel.set_ylim(-1.05, 1.05)
        panel.set_aspect("equal")
        panel.set_xticks([])
        panel.set_yticks([])

    for i, (panel, step) in enumerate(zip(axes.flat, trace[:steps])):
        available = step["available"]
        draw(panel, _max_projection(step["grid"], np.where(available, step["values"], -np.inf),
                                    n_points))
        if i:
            for centre in placed[:i]:
                panel.add_patch(plt.Circle(centre[:2], r_min, fill=False, color="w", lw=0.5,
                                           ls="--", gid="excluded"))
            panel.scatter(placed[:i, 0], placed[:i, 1], s=24, color="#E69F00", edgecolors="k",
                          linewidths=0.5, label="placed", zorder=3)
        panel.scatter([step["position"][0]], [step["position"][1]], s=60, marker="x",
                      color="#D55E00", linewidths=1.8, label="picked", zorder=4)
        excluded = 100.0 * (1.0 - available.mean())
        panel.set_title(f"atom {i + 1} of {len(atoms)} ({excluded:.0f}% excluded)", fontsize=8)
    final = axes.flat[steps]
    draw(final, first)
    final.scatter(placed[:, 0], placed[:, 1], s=16, color="#E69F00", edgecolors="k",
                  linewidths=0.4, label="placed", zorder=3)
    final.scatter(unit[:, 0], unit[:, 1], s=70, facecolors="none", edgecolors="#009E73",
                  linewidths=1.4, label="original", zorder=4)
    final.set_title("placed (orange), original (green)", fontsize=8)
    for panel in list(axes.flat)[total:]:
        panel.axis("off")
    fig.suptitle(
        f"Peak finding on {atoms.get_chemical_formula()}: max over z of the reconstruction, "
        f"{n_points}$^3$ grid, r_min = {r_min} (cutoff units)", fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, paths)
    return fig

