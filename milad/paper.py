"""Every published number of the paper (Uhrin, "Through the eyes of a descriptor", 2021) and
its supplementary information (SI) that the pipeline sets its own results against.

Plain data only, copied from the paper; each name says where it comes from. The rules, the
scripts, :mod:`milad.qm9` and the figures read them from here.

* :data:`TABLE1`: Table I (section II C), invariant counts.
* :data:`COMPLETENESS`: Fig. 1 (section II E), the Pozdnyakov et al. pair.
* :data:`TABLE2`: Table II (section IV B), data sizes and model settings per element.
* :data:`RMSE` (with :data:`RMSE_SOURCES`; elements in :data:`ELEMENTS` order): SI Table I,
  training and test RMSEs of every method; its test rows are Table III (section IV B).
* :data:`DECODING`, :data:`DECODING_EXPERIMENT`, :data:`DECODING_DESCRIPTOR`: the QM9 decoding
  (section IV A, Figs. 5-7).
* :data:`RDKIT_VALIDATION`: the fingerprint as a similarity measure (SI Fig. 1).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "COMPLETENESS",
    "DECODING",
    "DECODING_DESCRIPTOR",
    "DECODING_EXPERIMENT",
    "ELEMENTS",
    "RDKIT_VALIDATION",
    "RMSE",
    "RMSE_SOURCES",
    "TABLE1",
    "TABLE2",
    "ModelSettings",
    "Rmse",
]

# ----------------------------------------------------------------------------------------
# invariants (section II)
# ----------------------------------------------------------------------------------------
#: Table I: number of rotation invariants of Zernike moments up to l_max, per row
#: (all, linearly independent, algebraically independent): ``{row: {l_max: count}}``.
TABLE1: dict[str, dict[int, int]] = {
    "all": {2: 4, 3: 16, 4: 49, 5: 123, 6: 280, 7: 573},
    "linearly_independent": {2: 3, 3: 13, 4: 37, 5: 100, 6: 228, 7: 486},
    "algebraically_independent": {2: 3, 3: 13, 4: 28, 5: 49, 6: 77, 7: 113},
}

#: Fig. 1 (section II E): of the paper's correlation-order nu = 4 invariants
#: (``nu4_invariants``), how many tell the Pozdnyakov et al. pair B/B' apart
#: (``nu4_differ``, non-zero Phi_B - Phi_B'); no invariant of lower order does.
COMPLETENESS: dict[str, int] = {"nu4_invariants": 29, "nu4_differ": 21}


# ----------------------------------------------------------------------------------------
# neural-network potentials (section IV B)
# ----------------------------------------------------------------------------------------
class ModelSettings(NamedTuple):
    """One element's row of Table II."""

    training_points: int
    test_points: int
    r_cut_A: float
    alpha: float
    #: hidden layers of the MILAD network, e.g. "32-32"
    layers: str
    #: hidden layers of the NNP (Behler-Parrinello) model of Zuo et al.
    nnp_layers: str


#: Table II: data sizes and model settings per element.
TABLE2: dict[str, ModelSettings] = {
    "Ni": ModelSettings(263, 31, 3.8, 0.04, "32-32", "24-24"),
    "Cu": ModelSettings(262, 31, 3.9, 0.04, "24-24", "8-8"),
    "Li": ModelSettings(241, 29, 4.8, 0.04, "32-32", "24-24"),
    "Mo": ModelSettings(194, 23, 5.0, 0.04, "32-32", "16-16"),
    "Si": ModelSettings(214, 25, 4.7, 0.04, "32-32", "24-24"),
    "Ge": ModelSettings(228, 25, 5.1, 0.05, "32-32", "24-24"),
}

#: the paper's element order (Tables II, III, SI Table I; the tuples of :class:`Rmse`)
ELEMENTS: tuple[str, ...] = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")


class Rmse(NamedTuple):
    """One method's errors on one split, per element in :data:`ELEMENTS` order;
    ``None`` where the paper has "-" (no such model)."""

    energy_meV_per_atom: tuple[float | None, ...]
    force_eV_per_A: tuple[float | None, ...]


_ = None
#: SI Table I: ``{(method, split): Rmse}``, split "training" or "test", in the paper's row
#: order. Table III of the main text is the "test" rows of GAP, MTP, NNP, SNAP, qSNAP,
#: 3-body ACE and "MILAD (paper)" (the paper's own potentials).
RMSE: dict[tuple[str, str], Rmse] = {
    ("GAP", "training"): Rmse((0.62, 0.60, 0.75, 3.01, 4.49, 4.02), (0.03, 0.01, 0.01, 0.15, 0.10, 0.07)),
    ("GAP", "test"): Rmse((0.62, 0.56, 0.63, 3.55, 4.18, 4.47), (0.04, 0.02, 0.01, 0.16, 0.12, 0.08)),
    ("MTP", "training"): Rmse((0.66, 0.52, 0.73, 3.53, 3.24, 4.46), (0.02, 0.01, 0.01, 0.14, 0.07, 0.06)),
    ("MTP", "test"): Rmse((0.74, 0.52, 0.66, 3.89, 3.02, 3.68), (0.03, 0.01, 0.01, 0.15, 0.09, 0.07)),
    ("NNP", "training"): Rmse((2.38, 2.13, 1.24, 6.06, 10.84, 11.27), (0.06, 0.05, 0.06, 0.20, 0.17, 0.12)),
    ("NNP", "test"): Rmse((2.25, 1.68, 0.98, 5.67, 9.95, 10.95), (0.07, 0.06, 0.06, 0.20, 0.17, 0.12)),
    ("SNAP", "training"): Rmse((1.59, 1.04, 1.39, 8.45, 8.10, 11.82), (0.07, 0.07, 0.04, 0.37, 0.31, 0.29)),
    ("SNAP", "test"): Rmse((1.17, 0.87, 1.13, 9.06, 8.06, 10.96), (0.08, 0.08, 0.04, 0.37, 0.34, 0.29)),
    ("qSNAP", "training"): Rmse((0.82, 1.41, 1.10, 4.68, 6.99, 10.44), (0.06, 0.04, 0.04, 0.32, 0.26, 0.19)),
    ("qSNAP", "test"): Rmse((1.04, 1.16, 0.85, 3.96, 6.28, 10.55), (0.07, 0.05, 0.04, 0.33, 0.29, 0.20)),
    ("3-body ACE", "test"): Rmse((1.74, 1.19, 1.23, 4.00, 5.16, 11.62), (0.03, 0.02, 0.01, 0.16, 0.13, 0.09)),
    ("MILAD (paper)", "training"): Rmse((0.89, 0.68, 0.44, 4.96, 2.44, 3.42), (0.05, 0.04, 0.01, 0.22, 0.11, 0.11)),
    ("MILAD (paper)", "test"): Rmse((1.39, 0.96, 0.64, 5.79, 5.65, 5.47), (0.08, 0.07, 0.02, 0.36, 0.19, 0.14)),
    ("EAM", "training"): Rmse((8.02, 7.29, 339.46, 76.06, _, _), (0.10, 0.11, 0.13, 0.54, _, _)),
    ("EAM", "test"): Rmse((8.51, 7.46, 368.64, 67.98, _, _), (0.11, 0.12, 0.14, 0.52, _, _)),
    ("MEAM", "training"): Rmse((20.37, 9.48, _, 32.62, 104.58, _), (0.29, 0.20, _, 0.23, 0.35, _)),
    ("MEAM", "test"): Rmse((23.04, 10.49, _, 36.42, 111.67, _), (0.33, 0.24, _, 0.22, 0.40, _)),
    ("Tersoff", "training"): Rmse((_, _, _, _, 184.83, 561.37), (_, _, _, _, 0.67, 1.38)),
    ("Tersoff", "test"): Rmse((_, _, _, _, 202.37, 550.72), (_, _, _, _, 0.74, 1.36)),
}
del _

#: where the paper took each method's rows of :data:`RMSE` from
RMSE_SOURCES: dict[str, str] = {
    **{method: "Zuo et al. (paper ref. 82)"
       for method in ("GAP", "MTP", "NNP", "SNAP", "qSNAP", "EAM", "MEAM", "Tersoff")},
    "3-body ACE": "Zeni et al. (paper ref. 59)",
    "MILAD (paper)": "the paper",
}


# ----------------------------------------------------------------------------------------
# QM9 decoding (section IV A, SI "Reconstruction experiment")
# ----------------------------------------------------------------------------------------
#: Section IV A, per decoding mode: success rate (%, molecules whose best attempt is below
#: the threshold), largest decoded and largest consistently (every attempt) decoded molecule
#: (atoms; ``None``: not given). The species sizes are those of the single-fingerprint mode.
DECODING: dict[str, dict[str, int | None]] = {
    "positions": {"success_rate_percent": 97, "largest_decoded": 29,
                  "largest_consistently_decoded": 19},
    "single": {"success_rate_percent": 70, "largest_decoded": 27,
               "largest_consistently_decoded": 17},
    "two": {"success_rate_percent": 95, "largest_decoded": None,
            "largest_consistently_decoded": None},
}

#: Section IV A: the experiment behind :data:`DECODING`: number of QM9 molecules, their
#: smallest and largest size (atoms), attempts per molecule and mode, and the fingerprint RMSD
#: below which a decode counts as a success.
DECODING_EXPERIMENT: dict[str, float] = {
    "molecules": 77, "smallest_atoms": 3, "largest_atoms": 29, "attempts": 3,
    "threshold": 1e-6,
}

#: Section IV A: the fingerprints of the decoding experiment, as ``Descriptor.from_dict``
#: settings: Zernike invariants to n_max = 7, molecules in a 5 A sphere about their smallest
#: enclosing sphere's centre, species H, C, O, N, F weighing 1.1, 1.3, 1.5, 1.7, 1.9.
DECODING_DESCRIPTOR: dict[str, object] = {"n_max": 7, "cutoff": 5.0, "species": "H,C,O,N,F"}

#: SI Fig. 1: rotated, relabelled copies recognised (RDKit RMSD below the threshold) up to
#: this many atoms, ``{species used: atoms}``; and the smallest RDKit RMSD (Angstrom) between
#: two different molecules of one size, positions only.
RDKIT_VALIDATION: dict[str, object] = {
    "copies_recognised_up_to": {False: 8, True: 11},
    "min_pair_rmsd_A": 0.254,
}
