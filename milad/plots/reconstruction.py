"""Figures of how a fingerprint holds a molecule: its reconstructions by maximum order (paper
Fig. 2) and the peak finding of Algorithm 2 step by step (paper Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .style import panel_grid, save_figure

#: colours of Fig. 3 (Okabe-Ito): picked point, placed, fitted and original atoms
PICKED, PLACED, FITTED, ORIGINAL = "#D55E00", "#E69F00", "#0072B2", "#009E73"

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
                         title: str = "", symbols=None) -> Figure:
    """Contour panels of ``reconstruction_slices`` output, one per order (paper Fig. 2).

    Each panel shows the density over its own maximum (given in the title, weight per
    cutoff^3) from 5% up, with one colour bar; atoms are circles of area proportional to
    their weight, explained by a legend per species (``symbols``, one per atom) or per weight.
    """
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    orders = sorted(slices)
    weights = np.asarray(weights, dtype=float)
    rows, columns = panel_grid(len(orders), 4)
    fig = plt.figure(figsize=(2.6 * columns + 0.9, 2.7 * rows + 0.8), layout="constrained")
    panels = [fig.add_subplot(rows, columns, k + 1) for k in range(len(orders))]
    levels = np.linspace(0.05, 1.0, 12)
    outline = [patheffects.withStroke(linewidth=2.0, foreground="k")]
    for panel, order in zip(panels, orders):
        peak = float(np.max(slices[order]))
        filled = panel.contourf(axis, axis, slices[order] / peak, levels=levels, cmap="viridis")
        atoms = panel.scatter(plane_positions[:, 0], plane_positions[:, 1], s=12 * weights,
                              facecolors="none", edgecolors="white", linewidths=0.9,
                              label="atoms", zorder=3)
        atoms.set_path_effects(outline)
        panel.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.6))
        panel.set_title(f"N = {order} (max {peak:.3g})", fontsize=9)
        panel.set_xlim(-1.0, 1.0)
        panel.set_ylim(-1.0, 1.0)
        panel.set_aspect("equal")
        panel.set_xticks([])
        panel.set_yticks([])
    bar = fig.colorbar(filled, ax=panels, shrink=0.85, pad=0.02, ticks=[0.05, 0.25, 0.5, 0.75, 1])
    bar.set_label("density $\\tilde f$ / panel maximum\n(maximum in the title, weight per "
                  "cutoff$^3$; white: < 5%)", fontsize=7)
    names = list(symbols) if symbols is not None else [f"weight {w:g}" for w in weights]
    if len(names) != len(weights):
        raise ValueError(f"{len(names)} symbols for {len(weights)} atoms")
    kinds = sorted({(float(w), n) for w, n in zip(weights, names)})
    handles = [Line2D([], [], ls="none", marker="o", ms=np.sqrt(12 * w), mfc="none", mec="k",
                      mew=1.0, label=n if symbols is None else f"{n} (weight {w:g})")
               for w, n in kinds]
    handles.append(Line2D([], [], color="0.5", lw=0.6, label="cutoff sphere (radius 1)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7,
               frameon=False, title="atoms in the plane: circle area \u221d weight",
               title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
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
    """Algorithm 2 on one molecule, panel by panel (paper Fig. 3), then the fit that follows
    it; returns the ``Figure``.

    The molecule is centred on its miniball (``descriptor.molecule_positions``), rotated so
    its principal plane is z = 0 (:func:`planar_frame`) and scaled by ``descriptor.cutoff``
    into the unit sphere; the moments ``x`` of its delta density with all weights 1 are the
    input of :func:`milad.decode.peak_find` (``n_points`` grid points per axis, exclusion
    radius ``r_min`` in cutoff units). Step panel i (``gid="step-<i>"``) shows the largest
    value along z of the reconstruction atom i was picked from, over grid points still
    available (white where a whole column is excluded), the exclusion spheres of the atoms
    placed so far (dashed circles of radius ``r_min``, ``gid="excluded"``), those atoms
    (orange) and the picked point (red cross); the title gives the excluded share of the grid.
    n_panels: show only the first ``n_panels`` steps (default all).

    Two panels follow over the initial reconstruction, with the original atoms (green): the
    peak-finding result (``gid="peaks"``, orange) and the positions after the fit of the atoms
    to the moments (eq. 36, :func:`milad.decode.atoms_from_moments` started from the peaks;
    ``gid="fit"``, blue); their titles give the RMSD to the original in Angstrom (atoms matched
    by :func:`milad.compare.assigned_rmsd`). Peak finding only gives the fit its start: the
    reconstruction to order n_max blurs atoms closer than its resolution, so the peaks can lie
    between atoms. Axes are in cutoff units (x, y of the rotated frame); scatter artists carry
    the labels ``"placed"``, ``"picked"``, ``"original"`` and ``"fitted"``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..compare import assigned_rmsd
    from ..decode import atoms_from_moments, moment_space, peak_find

    if len(atoms) == 0:
        raise ValueError("plot_peak_finding needs a molecule with atoms")
    centred = descriptor.molecule_positions(atoms)
    unit = centred @ planar_frame(centred).T / descriptor.cutoff if len(atoms) > 1 else centred
    x = moment_space(descriptor.invariants).moments(unit, np.ones(len(atoms)))
    trace: list = []
    placed = peak_find(x, descriptor.invariants, len(atoms), weight=1.0, r_min=r_min,
                       n_points=n_points, trace=trace)
    fitted, _ = atoms_from_moments(x, descriptor.invariants, len(atoms),
                                   weights=np.ones(len(atoms)), initial_positions=placed,
                                   cutoff=descriptor.cutoff, n_points=n_points)
    steps = len(trace)
    if n_panels is not None:
        if int(n_panels) != n_panels or n_panels < 1:
            raise ValueError(f"n_panels must be a positive integer, got {n_panels}")
        steps = min(int(n_panels), steps)
    rows, columns = panel_grid(steps + 2)
    fig = plt.figure(figsize=(2.4 * columns + 0.9, 2.5 * rows + 0.9), layout="constrained")
    panels = [fig.add_subplot(rows, columns, k + 1) for k in range(steps + 2)]
    half = 1.0 / (n_points - 1)
    extent = (-1 - half, 1 + half, -1 - half, 1 + half)
    first = _max_projection(trace[0]["grid"], trace[0]["values"], n_points)
    vmax = float(np.nanmax(first))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")

    def draw(panel, image, gid):
        panel.set_gid(gid)
        shown = panel.imshow(image, origin="lower", extent=extent, cmap=cmap, vmin=0.0,
                             vmax=vmax, interpolation="nearest")
        panel.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.6))
        panel.set_xlim(-1.05, 1.05)
        panel.set_ylim(-1.05, 1.05)
        panel.set_aspect("equal")
        panel.set_xticks([])
        panel.set_yticks([])
        return shown

    for i, (panel, step) in enumerate(zip(panels, trace[:steps])):
        available = step["available"]
        draw(panel, _max_projection(step["grid"], np.where(available, step["values"], -np.inf),
                                    n_points), f"step-{i + 1}")
        if i:
            for centre in placed[:i]:
                panel.add_patch(plt.Circle(centre[:2], r_min, fill=False, color="w", lw=0.5,
                                           ls="--", gid="excluded"))
            panel.scatter(placed[:i, 0], placed[:i, 1], s=24, color=PLACED, edgecolors="k",
                          linewidths=0.5, label="placed", zorder=3)
        panel.scatter([step["position"][0]], [step["position"][1]], s=60, marker="x",
                      color=PICKED, linewidths=1.8, label="picked", zorder=4)
        excluded = 100.0 * (1.0 - available.mean())
        panel.set_title(f"atom {i + 1} of {len(atoms)} ({excluded:.0f}% excluded)", fontsize=8)
    ending = {"peaks": (placed, PLACED, "placed", "after peak finding"),
              "fit": (fitted, FITTED, "fitted", "after the fit (eq. 36)")}
    for panel, (gid, (positions, colour, label, what)) in zip(panels[steps:], ending.items()):
        shown = draw(panel, first, gid)
        panel.scatter(positions[:, 0], positions[:, 1], s=16, color=colour, edgecolors="k",
                      linewidths=0.4, label=label, zorder=3)
        panel.scatter(unit[:, 0], unit[:, 1], s=70, facecolors="none", edgecolors=ORIGINAL,
                      linewidths=1.4, label="original", zorder=4)
        rmsd = assigned_rmsd(positions, unit) * descriptor.cutoff
        panel.set_title(f"{what}:\nRMSD to original {rmsd:.2g} \u00c5", fontsize=8)
    fig.colorbar(shown, ax=panels, shrink=0.8, pad=0.01,
                 label=r"reconstruction $\tilde f$ (eq. 14), max over z: weight per cutoff$^3$")
    handles = [
        Line2D([], [], ls="none", marker="x", color=PICKED, mew=1.8, label="picked point"),
        Line2D([], [], ls="none", marker="o", mfc=PLACED, mec="k", label="placed by peak finding"),
        Line2D([], [], ls="--", color="0.4", lw=0.8, label=f"excluded sphere, r_min = {r_min}"),
        Line2D([], [], ls="none", marker="o", mfc=FITTED, mec="k", label="after the fit (eq. 36)"),
        Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec=ORIGINAL, mew=1.4,
               label="original atom"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7,
               frameon=False)
    fig.suptitle(
        f"Peak finding (Algorithm 2) on {atoms.get_chemical_formula()}, all weights 1: max over z "
        f"of the reconstruction to n_max = {descriptor.n_max}, {n_points}$^3$ grid; peaks blur "
        f"close atoms, the fit that follows recovers them", fontsize=9,
    )
    save_figure(fig, paths)
    return fig
