"""Figures of the paper that the pipeline redraws, and the small data sets behind them.

Completeness figure (paper section II E, Fig. 1)
------------------------------------------------
Pozdnyakov et al. (PRL 125, 166001, 2020) built two atomic environments, B and B', that no
descriptor of correlation order nu <= 3 (power spectrum, bispectrum) can tell apart.
:func:`pozdnyakov_pair` builds them, :func:`completeness_differences` evaluates the MILAD
fingerprint of both and :func:`plot_completeness` draws Phi_B - Phi_B' per invariant,
coloured by correlation order.

Decoding figures (paper section IV A, Figs. 3, 5, 6, 7; SI Figs. 1, 2)
-----------------------------------------------------------------------
:func:`plot_peak_finding` draws Algorithm 2 step by step. The others read the tidy decode
table (one row per molecule x mode x attempt, columns :data:`DECODE_COLUMNS`) or the table
of :func:`milad.compare.rdkit_validation`; :func:`decoding_summary` sets the headline numbers
beside the paper's.
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
    "plot_peak_finding",
    "DECODE_COLUMNS",
    "DECODE_MODES",
    "MODE_COLOURS",
    "PAPER_DECODING",
    "per_molecule",
    "decoding_summary",
    "point_group_counts",
    "plot_decoding",
    "plot_species_recovery",
    "plot_point_groups",
    "plot_rdkit_validation",
    "plot_rdkit_vs_fingerprint",
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


# ----------------------------------------------------------------------------------------
# Fig. 3: Algorithm 2 (peak finding) step by step
# ----------------------------------------------------------------------------------------
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
                      n_panels: int | None = None, n_points: int = 31, r_min: float = 0.11):
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

    from .decode import moment_space, peak_find

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


# ----------------------------------------------------------------------------------------
# Decoding results (Figs. 5, 6, 7; SI Figs. 1, 2; headline numbers)
# ----------------------------------------------------------------------------------------
#: decoding modes: positions only; positions and species from one fingerprint; species from a
#: second (species) fingerprint given the decoded positions
DECODE_MODES = ("positions", "single", "two")
#: columns of the tidy decode table (one row per molecule x mode x attempt)
DECODE_COLUMNS = (
    "qm9_id", "n_atoms", "formula", "smiles", "point_group", "mode", "attempt", "seed",
    "success", "fingerprint_rmsd", "positions_rmsd", "structure_rmsd", "rmsd", "mirror_rmsd",
    "matched", "species_correct", "iterations", "wall_s",
)
MODE_COLOURS = {"positions": "#E69F00", "single": "#CC79A7", "two": "#0072B2"}
MODE_LABELS = {
    "positions": "positions only",
    "single": "positions + species",
    "two": "species from 2nd fingerprint",
}
#: the paper's section IV A: success rate (%), largest decoded and largest consistently
#: decoded molecule (atoms); the species sizes belong to the single-fingerprint experiment
PAPER_DECODING = {
    "positions": {"success_rate_percent": 97, "largest_decoded": 29,
                  "largest_consistently_decoded": 19},
    "single": {"success_rate_percent": 70, "largest_decoded": 27,
               "largest_consistently_decoded": 17},
    "two": {"success_rate_percent": 95, "largest_decoded": None,
            "largest_consistently_decoded": None},
}
#: RMSD floor (log axes): smaller values, exact zeros included, are drawn at this value
RMSD_FLOOR = 1e-16
#: structure RMSD (Angstrom) below which RDKit calls two structures the same (SI Fig. 2)
RDKIT_THRESHOLD = 0.1


def _check_columns(table, required: Iterable[str], what: str):
    """Raise ValueError naming missing columns, unknown modes or an empty table."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{what} needs a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {', '.join(missing)}")
    if table.empty:
        raise ValueError(f"{what}: the table is empty")
    if "mode" in table.columns:
        unknown = sorted(set(map(str, table["mode"])) - set(DECODE_MODES))
        if unknown:
            raise ValueError(
                f"{what}: unknown mode(s) {', '.join(unknown)}; expected {', '.join(DECODE_MODES)}"
            )


def _check_threshold(threshold: float, name: str = "threshold") -> float:
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"{name} must be a positive number, got {threshold}")
    return float(threshold)


def per_molecule(table, threshold: float = 1e-6):
    """One row per (mode, molecule) of the decode table.

    Columns: ``mode``, ``qm9_id``, ``n_atoms``, ``point_group`` (when the table has it),
    ``attempts``, ``best`` / ``worst`` (lowest / highest finite fingerprint RMSD over the
    attempts, NaN when none is finite), ``successes`` (attempts with fingerprint RMSD <
    ``threshold``), ``decoded`` (best < threshold) and ``consistent`` (every attempt below
    it). Sorted by mode (``DECODE_MODES`` order), ``n_atoms``, ``qm9_id``.
    """
    threshold = _check_threshold(threshold)
    _check_columns(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd"), "per_molecule")
    rmsd = table["fingerprint_rmsd"].astype(float)
    data = table.assign(_ok=rmsd.to_numpy() < threshold, _rmsd=rmsd.where(np.isfinite(rmsd)))
    aggregations = {
        "n_atoms": ("n_atoms", "first"),
        "attempts": ("_rmsd", "size"),
        "best": ("_rmsd", "min"),
        "worst": ("_rmsd", "max"),
        "successes": ("_ok", "sum"),
    }
    if "point_group" in table.columns:
        aggregations["point_group"] = ("point_group", "first")
    out = data.groupby(["mode", "qm9_id"], sort=False).agg(**aggregations).reset_index()
    out["successes"] = out["successes"].astype(int)
    out["decoded"] = out["best"].to_numpy() < threshold
    out["consistent"] = out["successes"] == out["attempts"]
    out["_mode"] = out["mode"].map({m: i for i, m in enumerate(DECODE_MODES)})
    out = out.sort_values(["_mode", "n_atoms", "qm9_id"]).drop(columns="_mode")
    return out.reset_index(drop=True)


def decoding_summary(table, threshold: float = 1e-6):
    """Headline decoding numbers, one row per mode present, beside the paper's.

    Columns: ``mode``, ``molecules``, ``decoded`` (best attempt below ``threshold``),
    ``consistently_decoded`` (all attempts below it), ``success_rate_percent`` and
    ``consistent_rate_percent`` (of ``molecules``), ``largest_decoded`` and
    ``largest_consistently_decoded`` (atoms; 0 when none), ``median_wall_s`` (seconds per
    attempt), ``paper_success_rate_percent``, ``paper_largest_decoded``,
    ``paper_largest_consistently_decoded`` (:data:`PAPER_DECODING`, NaN where the paper gives
    none) and ``meets_paper``: our success rate, rounded to a whole percent as the paper's
    is, and our largest sizes are at least the paper's.
    """
    import pandas as pd

    _check_columns(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd", "wall_s"),
                   "decoding_summary")
    molecules = per_molecule(table, threshold)
    rows = []
    for mode in DECODE_MODES:
        rows_of_mode = molecules[molecules["mode"] == mode]
        if rows_of_mode.empty:
            continue
        n = len(rows_of_mode)
        decoded = rows_of_mode[rows_of_mode["decoded"]]
        consistent = rows_of_mode[rows_of_mode["consistent"]]
        paper = PAPER_DECODING[mode]
        rate = 100.0 * len(decoded) / n
        largest = int(decoded["n_atoms"].max()) if len(decoded) else 0
        largest_consistent = int(consistent["n_atoms"].max()) if len(consistent) else 0
        meets = round(rate) >= paper["success_rate_percent"]
        for ours, key in ((largest, "largest_decoded"),
                          (largest_consistent, "largest_consistently_decoded")):
            if paper[key] is not None:
                meets = meets and ours >= paper[key]
        rows.append({
            "mode": mode,
            "molecules": n,
            "decoded": len(decoded),
            "consistently_decoded": len(consistent),
            "success_rate_percent": rate,
            "consistent_rate_percent": 100.0 * len(consistent) / n,
            "largest_decoded": largest,
            "largest_consistently_decoded": largest_consistent,
            "median_wall_s": float(table.loc[table["mode"] == mode, "wall_s"].median()),
            "paper_success_rate_percent": float(paper["success_rate_percent"]),
            "paper_largest_decoded": np.nan if paper["largest_decoded"] is None
            else float(paper["largest_decoded"]),
            "paper_largest_consistently_decoded": np.nan
            if paper["largest_consistently_decoded"] is None
            else float(paper["largest_consistently_decoded"]),
            "meets_paper": bool(meets),
        })
    return pd.DataFrame(rows)


def _clip(values, floor: float) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=float), floor)


def _floor_note(panel, values, floor: float) -> None:
    values = np.asarray(values, dtype=float)
    if np.any(values[np.isfinite(values)] < floor):
        panel.text(0.01, 0.01, f"values below {floor:.0e} (exact zeros too) drawn at {floor:.0e}",
                   transform=panel.transAxes, fontsize=7, color="0.3", va="bottom")


def _plot_modes(table, modes, paths, threshold, floor, title):
    """Figs. 5 and 6: per-size aggregate (left) and per-molecule results (right)."""
    import matplotlib.pyplot as plt

    threshold = _check_threshold(threshold)
    floor = _check_threshold(floor, "floor")
    molecules = per_molecule(table, threshold)
    present = [m for m in modes if (molecules["mode"] == m).any()]
    if not present:
        raise ValueError(f"the decode table has no rows for mode(s) {', '.join(modes)}")
    order = (molecules[["qm9_id", "n_atoms"]].drop_duplicates("qm9_id")
             .sort_values(["n_atoms", "qm9_id"]).reset_index(drop=True))
    position = dict(zip(order["qm9_id"], order.index))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11.0, 4.0), sharey=True, gridspec_kw={"width_ratios": [1, 3]}
    )
    width = 0.5 / len(present)
    every = []
    for k, mode in enumerate(present):
        rows = molecules[molecules["mode"] == mode]
        colour = MODE_COLOURS[mode]
        shift = (k - (len(present) - 1) / 2) * width
        x = rows["qm9_id"].map(position).to_numpy(dtype=float) + shift
        best, worst = rows["best"].to_numpy(), rows["worst"].to_numpy()
        finite = np.isfinite(best)
        every.extend([best, worst])
        n, decoded = len(rows), int(rows["decoded"].sum())
        consistent = int(rows["consistent"].sum())
        label = (f"{MODE_LABELS[mode]}: {decoded}/{n} ({100 * decoded / n:.0f}%) decoded, "
                 f"{consistent}/{n} ({100 * consistent / n:.0f}%) every attempt")
        right.vlines(x[finite], _clip(best[finite], floor), _clip(worst[finite], floor),
                     color=colour, lw=0.8)
        right.plot(x[finite], _clip(best[finite], floor), "o", ms=4, color=colour, label=label,
                   gid=f"best-{mode}")
        # by size: median of the molecules' best attempts, bar over all attempts of that size
        size = rows.groupby("n_atoms").agg(median=("best", "median"), low=("best", "min"),
                                           high=("worst", "max")).reset_index()
        sx = size["n_atoms"].to_numpy(dtype=float) + shift
        ok = np.isfinite(size["median"].to_numpy())
        left.vlines(sx[ok], _clip(size["low"][ok], floor), _clip(size["high"][ok], floor),
                    color=colour, lw=0.8)
        left.plot(sx[ok], _clip(size["median"][ok], floor), "s", ms=4, color=colour,
                  gid=f"size-{mode}")
    for panel in (left, right):
        panel.set_yscale("log")
        panel.axhline(threshold, color="0.3", ls="--", lw=0.8)
    left.annotate(f"threshold {threshold:.0e}", (0.02, threshold),
                  xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points",
                  fontsize=7, color="0.3")
    _floor_note(right, np.concatenate(every), floor)
    left.set_xlabel("number of atoms $N_A$")
    left.set_ylabel("fingerprint RMSD, decoded vs original")
    left.set_title("by size: median of best attempts, range of all", fontsize=9)
    groups = order.assign(x=order.index.to_numpy(dtype=float)).groupby("n_atoms")["x"].mean()
    right.set_xticks(groups.to_numpy(dtype=float), [str(n) for n in groups.index], fontsize=7)
    right.set_xlabel("molecules sorted by number of atoms (tick label: $N_A$)")
    right.set_title("per molecule: marker at the best attempt, bar from best to worst", fontsize=9)
    right.legend(loc="upper left", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def plot_decoding(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6,
                  floor: float = RMSD_FLOOR):
    """Paper Fig. 5: fingerprint RMSD of decoded vs original, modes ``positions`` and ``single``.

    Needs columns ``qm9_id``, ``n_atoms``, ``mode``, ``fingerprint_rmsd``. A molecule counts
    as decoded when its best attempt is below ``threshold`` and as consistently decoded when
    every attempt is (legend). Log y axis: values below ``floor`` are drawn at ``floor`` (a
    note says so). Returns the ``Figure``; the per-molecule marker lines carry
    ``gid="best-<mode>"``.
    """
    return _plot_modes(table, ("positions", "single"), paths, threshold, floor,
                       "Decoding from fingerprints (paper Fig. 5)")


def plot_species_recovery(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6,
                          floor: float = RMSD_FLOOR):
    """Paper Fig. 6: species from a second fingerprint (mode ``two``) next to ``positions``.

    Same layout, columns and conventions as :func:`plot_decoding`.
    """
    return _plot_modes(table, ("positions", "two"), paths, threshold, floor,
                       "Species recovered with a second fingerprint (paper Fig. 6)")


def point_group_counts(table, threshold: float = 1e-6):
    """Molecules decoded (best attempt below ``threshold``) per point group and mode.

    Columns: ``point_group``, ``mode``, ``molecules``, ``decoded``, ``proportion``; point
    groups ordered by number of molecules (most first), then name; modes in
    ``DECODE_MODES`` order.
    """
    _check_columns(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd", "point_group"),
                   "point_group_counts")
    molecules = per_molecule(table, threshold)
    counts = (molecules.groupby(["point_group", "mode"], sort=False)
              .agg(molecules=("decoded", "size"), decoded=("decoded", "sum")).reset_index())
    counts["decoded"] = counts["decoded"].astype(int)
    counts["proportion"] = counts["decoded"] / counts["molecules"]
    size = counts.groupby("point_group")["molecules"].max()
    counts["_size"] = -counts["point_group"].map(size)
    counts["_mode"] = counts["mode"].map({m: i for i, m in enumerate(DECODE_MODES)})
    counts = counts.sort_values(["_size", "point_group", "_mode"]).drop(columns=["_size", "_mode"])
    return counts.reset_index(drop=True)


def plot_point_groups(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6):
    """Paper Fig. 7: proportion of molecules decoded per point group, one bar per mode.

    Needs columns ``qm9_id``, ``n_atoms``, ``mode``, ``fingerprint_rmsd``, ``point_group``.
    Bar height = decoded / molecules (:func:`point_group_counts`); the text "k/n" above each
    bar gives the absolute numbers. Bars carry ``gid="bar-<mode>-<point group>"``.
    """
    import matplotlib.pyplot as plt

    counts = point_group_counts(table, threshold)
    groups = list(dict.fromkeys(counts["point_group"]))
    modes = [m for m in DECODE_MODES if (counts["mode"] == m).any()]
    width = 0.8 / len(modes)
    width_inches = min(13.0, max(6.0, 0.55 * len(groups) * len(modes) ** 0.5 + 2))
    fig, ax = plt.subplots(figsize=(width_inches, 3.8))
    where = {g: i for i, g in enumerate(groups)}
    for k, mode in enumerate(modes):
        rows = counts[counts["mode"] == mode]
        shift = (k - (len(modes) - 1) / 2) * width
        x = rows["point_group"].map(where).to_numpy(dtype=float) + shift
        bars = ax.bar(x, rows["proportion"], width=width * 0.95, color=MODE_COLOURS[mode],
                      label=MODE_LABELS[mode])
        for bar, group, done, n in zip(bars, rows["point_group"], rows["decoded"],
                                       rows["molecules"]):
            bar.set_gid(f"bar-{mode}-{group}")
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{done}/{n}",
                    ha="center", va="bottom", fontsize=6, rotation=90 if len(modes) > 2 else 0)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel(f"proportion decoded (fingerprint RMSD < {threshold:.0e})")
    ax.set_xlabel("point group (most common first)")
    ax.legend(loc="upper right", fontsize=7, frameon=False, ncol=len(modes))
    ax.set_title("Decoding by point group (paper Fig. 7); k/n: decoded / molecules", fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def plot_rdkit_validation(validation, paths: Iterable[str | Path] = (),
                          rdkit_threshold: float = RDKIT_THRESHOLD, floor: float = RMSD_FLOOR):
    """SI Fig. 1: structure RMSD (RDKit) against the number of atoms, with fingerprint RMSDs.

    ``validation``: the table of :func:`milad.compare.rdkit_validation` (columns ``kind`` in
    {"self", "pair"}, ``species`` bool, ``n_atoms``, ``rmsd``, ``fingerprint_rmsd``). One
    panel per ``species`` setting (positions only, with species); filled markers: structure
    RMSD (Angstrom), open markers: fingerprint RMSD; self = rotated, relabelled copies,
    pair = different molecules of the same size. The title of each panel gives the largest
    size whose copies all have RMSD < ``rdkit_threshold`` and the smallest RMSD of a pair
    (the paper: 8 atoms positions only, 11 with species; 0.254 Angstrom). Values below
    ``floor`` are drawn at ``floor``. Marker lines carry
    ``gid="<kind>-<rmsd|fingerprint>-<species>"``.
    """
    import matplotlib.pyplot as plt

    _check_columns(validation, ("kind", "species", "n_atoms", "rmsd", "fingerprint_rmsd"),
                   "plot_rdkit_validation")
    rdkit_threshold = _check_threshold(rdkit_threshold, "rdkit_threshold")
    unknown = sorted(set(map(str, validation["kind"])) - {"self", "pair"})
    if unknown:
        raise ValueError(f"plot_rdkit_validation: unknown kind(s) {', '.join(unknown)}")
    flags = {True: True, False: False, "True": True, "False": False, "true": True, "false": False}
    species = validation["species"].map(lambda value: flags.get(value, value))
    if not species.map(lambda value: isinstance(value, (bool, np.bool_))).all():
        raise ValueError("plot_rdkit_validation: the species column must hold True/False")
    validation = validation.assign(species=species.astype(bool))
    settings = sorted(set(validation["species"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 4.0), sharey=True,
                             squeeze=False)
    style = {"self": ("o", "#0072B2", -0.15, "rotated, relabelled copy"),
             "pair": ("^", "#D55E00", 0.15, "different molecule")}
    for panel, setting in zip(axes[0], settings):
        rows = validation[validation["species"] == setting]
        for kind, (marker, colour, shift, label) in style.items():
            part = rows[rows["kind"] == kind]
            if part.empty:
                continue
            x = part["n_atoms"].to_numpy(dtype=float) + shift
            panel.plot(x, _clip(part["rmsd"], floor), marker, ms=4, color=colour, ls="none",
                       label=f"{label}: RDKit RMSD (A)", gid=f"{kind}-rmsd-{setting}")
            panel.plot(x, _clip(part["fingerprint_rmsd"], floor), marker, ms=4, ls="none",
                       mfc="none", color=colour, label=f"{label}: fingerprint RMSD",
                       gid=f"{kind}-fingerprint-{setting}")
        panel.set_yscale("log")
        panel.axhline(rdkit_threshold, color="0.3", ls=":", lw=0.8)
        copies, pairs = rows[rows["kind"] == "self"], rows[rows["kind"] == "pair"]
        notes = []
        if len(copies):
            failed = copies.loc[~(copies["rmsd"] < rdkit_threshold), "n_atoms"]
            sizes = np.sort(copies["n_atoms"].unique())
            recognised = sizes[sizes < failed.min()] if len(failed) else sizes
            notes.append(f"copies found up to $N_A$ = {recognised.max() if len(recognised) else 0}")
        if len(pairs):
            notes.append(f"min pair RMSD {pairs['rmsd'].min():.3f} A")
        panel.set_title(("with species" if setting else "positions only") + ": " + "; ".join(notes),
                        fontsize=9)
        panel.set_xlabel("number of atoms $N_A$")
        _floor_note(panel, np.concatenate([rows["rmsd"], rows["fingerprint_rmsd"]]), floor)
    axes[0, 0].set_ylabel("RMSD (structure: A; fingerprint: dimensionless)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7,
               frameon=False)
    fig.suptitle(f"Fingerprints as a similarity measure (SI Fig. 1); dotted: {rdkit_threshold} A",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, paths)
    return fig


def plot_rdkit_vs_fingerprint(table, paths: Iterable[str | Path] = (), max_atoms: int = 11,
                              threshold: float = 1e-6, rdkit_threshold: float = RDKIT_THRESHOLD,
                              floor: float = RMSD_FLOOR):
    """SI Fig. 2: RDKit RMSD against fingerprint RMSD of every decoding attempt of a molecule
    with at most ``max_atoms`` atoms, one panel per mode.

    Needs columns ``qm9_id``, ``n_atoms``, ``mode``, ``attempt``, ``fingerprint_rmsd``,
    ``rmsd`` and ``mirror_rmsd``. Attempts are sorted by size, molecule and attempt along x;
    per attempt: fingerprint RMSD (circle, dimensionless), RDKit RMSD to the original (square,
    Angstrom) and, where that is above ``rdkit_threshold``, the RMSD to the mirror image
    (triangle, joined to the square). Grey bars at the bottom: number of atoms. The title
    counts the attempts on which both measures agree (fingerprint RMSD < ``threshold`` exactly
    when min(original, mirror) RMSD < ``rdkit_threshold``). Values below ``floor`` are drawn
    at ``floor``. Marker lines carry ``gid="<fingerprint|original|mirror>-<mode>"``.
    """
    import matplotlib.pyplot as plt

    _check_columns(table, ("qm9_id", "n_atoms", "mode", "attempt", "fingerprint_rmsd", "rmsd",
                           "mirror_rmsd"), "plot_rdkit_vs_fingerprint")
    threshold = _check_threshold(threshold)
    rdkit_threshold = _check_threshold(rdkit_threshold, "rdkit_threshold")
    small = table[table["n_atoms"] <= max_atoms]
    if small.empty:
        raise ValueError(f"plot_rdkit_vs_fingerprint: no molecule with at most {max_atoms} atoms")
    modes = [m for m in DECODE_MODES if (small["mode"] == m).any()]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.0 * len(modes), 4.0), sharey=True,
                             squeeze=False)
    for panel, mode in zip(axes[0], modes):
        rows = small[small["mode"] == mode].sort_values(["n_atoms", "qm9_id", "attempt"])
        x = np.arange(len(rows), dtype=float)
        fingerprint = rows["fingerprint_rmsd"].to_numpy(dtype=float)
        original = rows["rmsd"].to_numpy(dtype=float)
        mirror = rows["mirror_rmsd"].to_numpy(dtype=float)
        flip = original > rdkit_threshold
        panel.plot(x, _clip(fingerprint, floor), "o", ms=4, color=MODE_COLOURS[mode], ls="none",
                   label="fingerprint RMSD", gid=f"fingerprint-{mode}")
        panel.plot(x, _clip(original, floor), "s", ms=4, mfc="none", color="k", ls="none",
                   label="RDKit RMSD to original (A)", gid=f"original-{mode}")
        panel.vlines(x[flip], _clip(original[flip], floor), _clip(mirror[flip], floor),
                     color="0.5", lw=0.6)
        panel.plot(x[flip], _clip(mirror[flip], floor), "v", ms=4, color="0.4", ls="none",
                   label="RDKit RMSD to mirror image (A)", gid=f"mirror-{mode}")
        panel.set_yscale("log")
        panel.axhline(threshold, color=MODE_COLOURS[mode], ls="--", lw=0.8)
        panel.axhline(rdkit_threshold, color="k", ls=":", lw=0.8)
        structure = np.where(flip, np.fmin(original, mirror), original)
        judged = np.isfinite(fingerprint) & np.isfinite(structure)
        agree = int(np.sum(((fingerprint < threshold) == (structure < rdkit_threshold))[judged]))
        panel.set_title(f"{MODE_LABELS[mode]}: measures agree on {agree}/{int(judged.sum())}",
                        fontsize=9)
        panel.set_xlabel(f"decoding attempts, molecules with $N_A \\leq$ {max_atoms}")
        panel.set_xticks([])
        _floor_note(panel, np.concatenate([fingerprint, original, mirror]), floor)
        bars = panel.twinx()
        bars.bar(x, rows["n_atoms"], width=0.8, color="0.85", zorder=0)
        bars.set_ylim(0, 5 * max(max_atoms, 1))
        bars.set_yticks([0, max_atoms])
        bars.tick_params(labelsize=7)
        panel.set_zorder(bars.get_zorder() + 1)
        panel.patch.set_visible(False)
    axes[0, 0].set_ylabel("RMSD (fingerprint; RDKit in A)")
    handles = [h for panel in axes[0] for h in panel.get_lines() if h.get_label()[0] != "_"]
    unique: dict = {}
    for handle in handles:
        unique.setdefault(handle.get_label(), handle)
    fig.legend(list(unique.values()), list(unique), loc="lower center", ncol=5, fontsize=7,
               frameon=False)
    fig.suptitle(f"RDKit vs fingerprint RMSD (SI Fig. 2); dashed {threshold:.0e}, "
                 f"dotted {rdkit_threshold} A; grey bars: $N_A$", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, paths)
    return fig
