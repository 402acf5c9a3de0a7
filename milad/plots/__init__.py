"""Figures the pipeline draws, one module per family; they only draw (the numbers they show
come from ``milad.completeness``, ``milad.qm9``, ``milad.chirality`` and the pipeline's results).

* :mod:`milad.plots.completeness`: paper Fig. 1, the Pozdnyakov et al. pair;
* :mod:`milad.plots.reconstruction`: paper Figs. 2 (reconstructions) and 3 (peak finding);
* :mod:`milad.plots.decoding`: paper Figs. 5, 6, 7 and SI Figs. 1, 2 (QM9 decoding);
* :mod:`milad.plots.chirality`: which enantiomer the decodes of chiral molecules return;
* :mod:`milad.plots.potentials`: parity plots, learning curves, NVE energy trace, the
  ablation of the potentials' levers and the stand-in for missing data;
* :mod:`milad.plots.style`: saving, panel grids, colours and labels.

Every function takes the paths to save to (format from the suffix) and returns the
matplotlib ``Figure``.
"""

from .chirality import plot_chirality
from .completeness import plot_completeness
from .decoding import (
    RMSD_FLOOR,
    plot_decoding,
    plot_point_groups,
    plot_rdkit_validation,
    plot_rdkit_vs_fingerprint,
    plot_species_recovery,
)
from .potentials import (
    plot_ablation,
    plot_learning_curve,
    plot_missing_data,
    plot_nve,
    plot_parity,
)
from .reconstruction import (
    planar_frame,
    plot_peak_finding,
    plot_reconstructions,
    reconstruction_slices,
)
from .style import save_figure

__all__ = [
    "RMSD_FLOOR",
    "planar_frame",
    "plot_ablation",
    "plot_chirality",
    "plot_completeness",
    "plot_decoding",
    "plot_learning_curve",
    "plot_missing_data",
    "plot_nve",
    "plot_parity",
    "plot_peak_finding",
    "plot_point_groups",
    "plot_rdkit_validation",
    "plot_rdkit_vs_fingerprint",
    "plot_reconstructions",
    "plot_species_recovery",
    "reconstruction_slices",
    "save_figure",
]
