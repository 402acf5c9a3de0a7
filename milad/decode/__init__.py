"""Decoding: from a MILAD fingerprint back to atoms and species (paper section III).

One module per step of the paper's section III, data flowing down the list:

* :mod:`~milad.decode.space`: the moment space, the invariants as functions of a real moment
  vector ``x`` (``Omega = A @ x``; ``x = R @ monomials(u)`` for unit deltas at ``u``);
* :mod:`~milad.decode.loss`: the residuals every fit minimises (moments, eq. 36; fingerprint;
  the repulsion of eq. 35 and the sphere and weight walls) and the LM solver;
* :mod:`~milad.decode.algorithm1`: Algorithm 1, moments from invariants;
* :mod:`~milad.decode.placement`: Algorithm 2 (peak finding) and the fit of atoms to moments;
* :mod:`~milad.decode.search`: the alternating scheme of Fig. 4 with basin hops, species
  snapping and species moves, species from a second fingerprint;
* :mod:`~milad.decode.api`: the public :func:`decode` and :class:`DecodeResult`.

Success means a fingerprint RMSD between the target and the decoded structure below ``tol``
(1e-6 by default, the paper's threshold). Species are decoded from one fingerprint with species
as weights (``species_mode="single"``) or from a second, positions-only fingerprint
(``species_mode="two"``).

The default fingerprint is the same for a molecule and its mirror image, so a decode may return
either; a chiral descriptor (``Descriptor(..., chiral=True)``) fixes the hand, and the search
reflects a fit that reached the other enantiomer (:meth:`~milad.decode.search.SearchProblem.hand`).

Every random choice comes from ``numpy.random.default_rng((seed, attempt))`` and the fits run
with one BLAS thread and a deterministic solver (:func:`~milad.decode.loss.solve_lm`), so the
same fingerprint, settings and seed give a bitwise-identical structure on the same machine and
software. The fits are chaotic (which root of the invariant equations is reached), so another
BLAS, CPU or library version may reach a different, equally valid, structure.
"""

from .algorithm1 import moments_from_invariants
from .api import (
    SEARCH_EFFORT,
    SPECIES_MODES,
    DecodeResult,
    check_atom_count,
    count_atoms,
    decode,
    search_effort,
)
from .loss import RepulsionTerm
from .placement import atoms_from_moments, peak_find
from .space import MomentSpace, moment_space

__all__ = [
    "SEARCH_EFFORT",
    "SPECIES_MODES",
    "DecodeResult",
    "MomentSpace",
    "RepulsionTerm",
    "atoms_from_moments",
    "check_atom_count",
    "count_atoms",
    "decode",
    "moment_space",
    "moments_from_invariants",
    "peak_find",
    "search_effort",
]
