"""Figures of the QM9 decoding experiment (paper section IV A, Figs. 5, 6, 7; SI Figs. 1, 2).

They read the tidy decode table (one row per molecule x mode x attempt, columns
``milad.qm9.COLUMNS``) or the table of ``milad.compare.rdkit_validation``; the numbers they
show come from ``milad.qm9`` (``per_molecule``, ``point_group_counts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..qm9 import (
    MODES,
    RDKIT_THRESHOLD,
    check_table,
    check_threshold,
    copies_recognised_up_to,
    per_molecule,
    point_group_counts,
)
from .style import MODE_COLOURS, MODE_LABELS, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RMSD_FLOOR",
    "plot_decoding",
    "plot_point_groups",
    "plot_rdkit_validation",
    "plot_rdkit_vs_fingerprint",
    "plot_species_recovery",
]

#: RMSD floor (log axes): smaller values, exact zeros included, are drawn at this value
RMSD_FLOOR = 1e-16


def _clip(values, floor: float) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=float), floor)


def _floor_note(panel, values, floor: float) -> None:
    values = np.asarray(values, dtype=float)
    if np.any(values[np.isfinite(values)] < floor):
        panel.text(0.01, 0.01, f"values below {floor:.0e} (exact zeros too) drawn at {floor:.0e}",
                   transform=panel.transAxes, fontsize=7, color="0.3", va="bottom")


def _plot_modes(table, modes, paths, threshold, floor, title) -> Figure:
    """Figs. 5 and 6: per-size aggregate (left) and per-molecule results (right)."""
    import matplotlib.pyplot as plt

    threshold = check_threshold(threshold)
    floor = check_threshold(floor, "floor")
    molecules = per_molecule(table, threshold)
    present = [m for m in modes if (molecules["mode"] == m).any()]
    if not present:
        raise ValueError(f"the decode table has no rows for mode(s) {', '.join(modes)}")
    order = (molecules[["qm9_id", "n_atoms"]].drop_duplicates("qm9_id")
             .sort_values(["n_atoms", "qm9_id"]).reset_index(drop=True))
    position = dict(zip(order["qm9_id"], order.index))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11.0, 4.4), sharey=True, gridspec_kw={"width_ratios": [1, 3]},
        layout="constrained",
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
        panel.axhline(threshold, color="0.3", ls="--", lw=0.8, gid="threshold")
    left.annotate(f"threshold {threshold:.0e}", (0.02, threshold),
                  xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points",
                  fontsize=7, color="0.3")
    every = np.concatenate(every)
    floored = bool(np.any(every[np.isfinite(every)] < floor))
    left.set_xlabel("number of atoms $N_A$")
    left.set_ylabel("fingerprint RMSD, decoded vs original")
    left.set_title("by size: median of best attempts, range of all", fontsize=9)
    groups = order.assign(x=order.index.to_numpy(dtype=float)).groupby("n_atoms")["x"].mean()
    right.set_xticks(groups.to_numpy(dtype=float), [str(n) for n in groups.index], fontsize=7)
    right.set_xlabel("molecules sorted by number of atoms (tick label: $N_A$)"
                     + (f"; RMSD below {floor:.0e} (exact zeros too) drawn at {floor:.0e}"
                        if floored else ""))
    right.set_title("per molecule: marker at the best attempt, bar from best to worst", fontsize=9)
    # below the panels: over them it would hide markers or the threshold line
    fig.legend(*right.get_legend_handles_labels(), loc="outside lower center", fontsize=7,
               frameon=False, ncol=len(present))
    fig.suptitle(title, fontsize=10)
    save_figure(fig, paths)
    return fig


def plot_decoding(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6,
                  floor: float = RMSD_FLOOR) -> Figure:
    """Paper Fig. 5: fingerprint RMSD of decoded vs original, modes ``positions`` and ``single``.

    Needs columns ``qm9_id``, ``n_atoms``, ``mode``, ``fingerprint_rmsd``. A molecule counts
    as decoded when its best attempt is below ``threshold`` and as consistently decoded when
    every attempt is (legend, below the panels). Log y axis: values below ``floor`` are drawn
    at ``floor`` (the x label says so). Returns the ``Figure``; the per-molecule marker lines
    carry ``gid="best-<mode>"``, the threshold lines ``gid="threshold"``.
    """
    return _plot_modes(table, ("positions", "single"), paths, threshold, floor,
                       "Decoding from fingerprints (paper Fig. 5)")


def plot_species_recovery(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6,
                          floor: float = RMSD_FLOOR) -> Figure:
    """Paper Fig. 6: species from a second fingerprint (mode ``two``) next to ``positions``.

    Same layout, columns and conventions as :func:`plot_decoding`.
    """
    return _plot_modes(table, ("positions", "two"), paths, threshold, floor,
                       "Species recovered with a second fingerprint (paper Fig. 6)")


def plot_point_groups(table, paths: Iterable[str | Path] = (), threshold: float = 1e-6) -> Figure:
    """Paper Fig. 7: proportion of molecules decoded per point group, one bar per mode.

    Needs columns ``qm9_id``, ``n_atoms``, ``mode``, ``fingerprint_rmsd``, ``point_group``.
    Bar height = decoded / molecules (:func:`point_group_counts`); the text "k/n" above each
    bar gives the absolute numbers. Bars carry ``gid="bar-<mode>-<point group>"``.
    """
    import matplotlib.pyplot as plt

    counts = point_group_counts(table, threshold)
    groups = list(dict.fromkeys(counts["point_group"]))
    modes = [m for m in MODES if (counts["mode"] == m).any()]
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
                          rdkit_threshold: float = RDKIT_THRESHOLD,
                          floor: float = RMSD_FLOOR) -> Figure:
    """SI Fig. 1: structure RMSD (RDKit) against the number of atoms, with fingerprint RMSDs.

    ``validation``: the table of :func:`milad.compare.rdkit_validation` (columns ``kind`` in
    {"self", "pair"}, ``species`` bool, ``n_atoms``, ``rmsd``, ``fingerprint_rmsd``). One
    panel per ``species`` setting (positions only, with species); filled markers: structure
    RMSD (Angstrom), open markers: fingerprint RMSD; self = rotated, relabelled copies,
    pair = different molecules of the same size. The title of each panel gives the largest
    size whose copies all have RMSD < ``rdkit_threshold`` and the smallest RMSD of a pair
    (the paper's: ``milad.paper.RDKIT_VALIDATION``). Values below ``floor`` are drawn at
    ``floor``. Marker lines carry ``gid="<kind>-<rmsd|fingerprint>-<species>"``.
    """
    import matplotlib.pyplot as plt

    check_table(validation, ("kind", "species", "n_atoms", "rmsd", "fingerprint_rmsd"),
                "plot_rdkit_validation")
    rdkit_threshold = check_threshold(rdkit_threshold, "rdkit_threshold")
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
            notes.append(f"copies found up to $N_A$ = "
                          f"{copies_recognised_up_to(copies, rdkit_threshold)}")
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
                              floor: float = RMSD_FLOOR) -> Figure:
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

    check_table(table, ("qm9_id", "n_atoms", "mode", "attempt", "fingerprint_rmsd", "rmsd",
                        "mirror_rmsd"), "plot_rdkit_vs_fingerprint")
    threshold = check_threshold(threshold)
    rdkit_threshold = check_threshold(rdkit_threshold, "rdkit_threshold")
    small = table[table["n_atoms"] <= max_atoms]
    if small.empty:
        raise ValueError(f"plot_rdkit_vs_fingerprint: no molecule with at most {max_atoms} atoms")
    modes = [m for m in MODES if (small["mode"] == m).any()]
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
