"""Figures of the neural-network potentials (paper section IV B; none of them is in the paper):
parity plots, learning curves, the energy trace of an NVE run, the ablation of the
hyper-parameter levers, and the stand-in drawn where an element has no data or no potential.

``summary`` below is the content of ``results/potentials/<El>/metrics.json`` (the rule
potential_evaluate): ``element``, ``metrics`` per subset (``energy_rmse_meV_per_atom``,
``force_rmse_eV_per_A``), ``training`` (``optimizer``, ``best_epoch``) and ``provenance``
(``milad_version``, ``git_commit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from .style import save_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["PARITY_SUBSETS", "plot_ablation", "plot_learning_curve", "plot_missing_data",
           "plot_nve", "plot_parity"]

#: subsets of the parity plot: legend label, colour and opacity
PARITY_SUBSETS = {
    "fit": ("fitted training", "tab:blue", 0.35),
    "validation": ("validation", "tab:green", 0.6),
    "test": ("test", "tab:red", 0.8),
}


def _footer(summary: Mapping[str, Any]) -> str:
    """The milad version and commit that trained the potential, for the title."""
    record = summary["provenance"]
    commit = record.get("git_commit", "unknown")[:10]
    return f"milad {record.get('milad_version', '?')}, commit {commit}"


def plot_missing_data(message: str, paths: Iterable[str | Path] = (),
                      figsize: tuple[float, float] = (8.0, 2.5), fontsize: float = 9) -> Figure:
    """A figure holding only ``message`` (why there is nothing to draw); saved at 100 dpi."""
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=figsize)
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=fontsize)
    axis.axis("off")
    save_figure(fig, paths, dpi=100)
    return fig


def plot_parity(summary: Mapping[str, Any], predictions: Mapping[str, np.ndarray],
                paths: Iterable[str | Path] = ()) -> Figure:
    """Predicted against DFT energies per atom (left) and force components (right).

    predictions: arrays ``<subset>_energy_reference``, ``<subset>_energy_predicted`` (eV/atom),
    ``<subset>_forces_reference`` and ``<subset>_forces_predicted`` (eV/A) for the subsets of
    :data:`PARITY_SUBSETS` present (``predictions.npz`` of the rule potential_evaluate); one
    scatter series per subset, labelled with its RMSE from ``summary``. The black identity
    line spans both axes, which are equal. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    metrics = summary["metrics"]
    fig, (energy_axis, force_axis) = plt.subplots(1, 2, figsize=(10, 4.6))
    for name, (label, colour, alpha) in PARITY_SUBSETS.items():
        if f"{name}_energy_reference" not in predictions:
            continue
        m = metrics[name]
        energy_axis.scatter(predictions[f"{name}_energy_reference"],
                            predictions[f"{name}_energy_predicted"], s=10, color=colour,
                            alpha=alpha,
                            label=f"{label}: RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom")
        force_axis.scatter(predictions[f"{name}_forces_reference"].ravel(),
                           predictions[f"{name}_forces_predicted"].ravel(), s=2, color=colour,
                           alpha=alpha,
                           label=f"{label}: RMSE {m['force_rmse_eV_per_A']:.3f} eV/A")
    for axis, quantity in ((energy_axis, "energy per atom (eV/atom)"),
                           (force_axis, "force component (eV/A)")):
        low, high = axis.get_xlim()
        low, high = min(low, axis.get_ylim()[0]), max(high, axis.get_ylim()[1])
        axis.plot([low, high], [low, high], color="black", lw=0.8)
        axis.set_xlim(low, high)
        axis.set_ylim(low, high)
        axis.set_xlabel(f"DFT {quantity}")
        axis.set_ylabel(f"MILAD NNP {quantity}")
        axis.legend(fontsize=8, loc="upper left")
        axis.set_aspect("equal")
    fig.suptitle(f"{summary['element']}: parity of energies and force components "
                 f"({_footer(summary)})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def plot_learning_curve(summary: Mapping[str, Any], history: pd.DataFrame,
                        paths: Iterable[str | Path] = ()) -> Figure:
    """Loss, energy RMSE (meV/atom) and force RMSE (eV/A) per epoch, log scale.

    history: a DataFrame with columns ``epoch``, ``train_loss``, ``validation_loss`` (NaN
    throughout: not drawn), ``train_energy_rmse``, ``validation_energy_rmse`` (eV/atom),
    ``train_force_rmse``, ``validation_force_rmse`` (``history.csv`` of the rule
    potential_train). A dashed line marks the kept epoch, ``summary["training"]["best_epoch"]``.
    Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].semilogy(history["epoch"], history["train_loss"], label="fitted training")
    if history["validation_loss"].notna().any():
        axes[0].semilogy(history["epoch"], history["validation_loss"], label="validation")
    axes[0].set_ylabel("loss (eq. 38)")
    axes[1].semilogy(history["epoch"], 1000 * history["train_energy_rmse"],
                     label="fitted training")
    axes[1].semilogy(history["epoch"], 1000 * history["validation_energy_rmse"],
                     label="validation")
    axes[1].set_ylabel("energy RMSE (meV/atom)")
    axes[2].semilogy(history["epoch"], history["train_force_rmse"], label="fitted training")
    axes[2].semilogy(history["epoch"], history["validation_force_rmse"], label="validation")
    axes[2].set_ylabel("force RMSE (eV/A)")
    training = summary["training"]
    best = training.get("best_epoch")
    for axis in axes:
        axis.set_xlabel("epoch")
        if best:
            axis.axvline(best, color="grey", ls="--", lw=0.8)
        axis.legend(fontsize=8)
    fig.suptitle(f"{summary['element']}: learning curve, {training.get('optimizer')}; dashed: "
                 f"kept (best validation) epoch {best} ({_footer(summary)})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def plot_nve(run: Mapping[str, Any], element: str, paths: Iterable[str | Path] = ()) -> Figure:
    """Energy conservation of an NVE run (``milad.potential.run_nve``'s result).

    Top: total and potential energy minus the initial total energy (meV/atom); bottom:
    temperature (K); against time (ps). The title gives the total-energy drift
    (meV/atom/ps). Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    n = run["n_atoms"]
    e0 = run["total"][0]
    axes[0].plot(run["time_ps"], [(e - e0) / n * 1000 for e in run["total"]], label="total")
    axes[0].plot(run["time_ps"], [(e - e0) / n * 1000 for e in run["potential"]],
                 label="potential", alpha=0.6)
    axes[0].set_ylabel("E - E_tot(0) (meV/atom)")
    axes[0].legend(fontsize=8)
    axes[1].plot(run["time_ps"], run["temperature"])
    axes[1].set_ylabel("T (K)")
    axes[1].set_xlabel("time (ps)")
    axes[0].set_title(
        f"{element} NVE, {n} atoms, dt = {run['timestep_fs']} fs: drift "
        f"{1000 * run['drift_eV_per_atom_per_ps']:.3f} meV/atom/ps", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
    return fig


def plot_ablation(ablation: pd.DataFrame, paths: Iterable[str | Path] = ()) -> Figure:
    """The CV RMSE ratios with / without each lever, energy (left) and force (right) panel.

    ablation: the table of ``milad.potential.selection.ablation_table`` (columns ``element``,
    ``lever``, ``energy_ratio``, ``force_ratio``). x: the elements (table order), one bar per
    lever in each group (the legend gives the levers), log y-axis, a dashed line at 1 ("no
    change"; below: the lever lowered the error), plain-number tick labels. Bars carry
    ``gid="bar-<energy|force>-<lever>-<element>"``. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    missing = [c for c in ("element", "lever", "energy_ratio", "force_ratio")
               if c not in ablation.columns]
    if missing:
        raise ValueError(f"ablation table lacks column(s) {missing}")
    if ablation.empty:
        raise ValueError("ablation table has no rows: no lever to draw")
    elements = list(dict.fromkeys(ablation["element"]))
    levers = list(dict.fromkeys(ablation["lever"]))
    where = {element: i for i, element in enumerate(elements)}
    width = 0.8 / len(levers)
    ratios = ablation[["energy_ratio", "force_ratio"]].to_numpy(dtype=float)
    if not (np.isfinite(ratios).all() and (ratios > 0).all()):
        raise ValueError("ablation ratios must be finite and positive for a log axis")
    low, high = min(ratios.min(), 1.0) / 1.3, max(ratios.max(), 1.0) * 1.3
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.2 * len(elements) * len(levers) ** 0.5 + 4),
                                            4.2))
    for axis, quantity in zip(axes, ("energy", "force")):
        for k, lever in enumerate(levers):
            rows = ablation[ablation["lever"] == lever]
            shift = (k - (len(levers) - 1) / 2) * width
            x = rows["element"].map(where).to_numpy(dtype=float) + shift
            bars = axis.bar(x, rows[f"{quantity}_ratio"], width=width * 0.95, color=f"C{k}",
                            label=lever)
            for bar, element in zip(bars, rows["element"]):
                bar.set_gid(f"bar-{quantity}-{lever}-{element}")
        axis.axhline(1.0, color="black", ls="--", lw=0.8, gid="no-change")
        axis.text(1.0, 1.0, "no change", transform=axis.get_yaxis_transform(), ha="right",
                  va="bottom", fontsize=7)
        axis.set_yscale("log")
        axis.set_ylim(low, high)
        axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.yaxis.set_minor_locator(NullLocator())
        axis.set_xticks(range(len(elements)), elements)
        axis.set_xlabel("element")
        axis.set_ylabel(f"CV {quantity} RMSE ratio, with / without")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=min(len(levers), 4),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.94))
    fig.suptitle("Ablation of the potentials' levers: CV on the training files; ratio with / "
                 "without the lever", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9 - 0.04 * ((len(levers) - 1) // 4)))
    save_figure(fig, paths)
    return fig
