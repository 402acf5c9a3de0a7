"""Behler-Parrinello neural-network potentials on MILAD fingerprints (paper section IV B, Fig. 8).

Every atom-centred environment is encoded as a MILAD fingerprint Phi_i (Behler's cosine cutoff,
eq. 37, scales the neighbour weights); a feed-forward network per element maps Phi_i to an
atomic energy eps_i and the total energy is E = sum_i eps_i. Forces come from the chain rule,
F_j = -sum_i dE/dPhi_i . dPhi_i/dr_j, with the sparse pair derivatives of
:meth:`milad.descriptor.Descriptor.local_derivatives` computed once per structure.

Modules, in the order data flows through them:

* :mod:`~milad.potential.modelfile`: verified model files (format version, size and SHA-256
  digest checked before loading; :class:`ModelFileError`);
* :mod:`~milad.potential.unavailable`: placeholder files for outputs that could not be made;
* :mod:`~milad.potential.dataset`: :class:`FingerprintSet` (fingerprints, pair derivatives,
  DFT labels), :func:`fingerprint_structures`, :func:`validation_split`, :func:`kfold_split`;
* :mod:`~milad.potential.activations`: activations with their derivatives (for dE/dPhi);
* :mod:`~milad.potential.forces`: the pair-derivative contraction dE/dPhi -> dE/dr;
* :mod:`~milad.potential.model`: :class:`Potential` (networks with range or standard input
  scaling, prediction, extrapolation checks, save/load);
* :mod:`~milad.potential.ensemble`: :class:`Ensemble`, a committee of potentials (mean
  prediction, spread), and :func:`load_model` for either kind of model file;
* :mod:`~milad.potential.training`: the loss of eq. 38, :meth:`Potential.fit`,
  :func:`train_best_of`, :func:`train_model` (training from settings), :func:`set_metrics`,
  :func:`largest_error_share` (how much of a set's RMSE one structure makes) and
  :func:`cross_validation_fold`;
* :mod:`~milad.potential.calculator`: :class:`MiladCalculator` for ASE and :func:`run_nve`.

Typical use::

    frames = read_mlearn("Si/training.json")
    descriptor = Descriptor(n_max=7, cutoff=4.7)
    data = fingerprint_structures(frames, descriptor)
    fitted, validation = data.split(*validation_split(data.groups, 0.1, seed=0))
    potential = Potential.for_data(fitted, hidden=(32, 32))
    potential.fit(fitted, validation, alpha=0.04, optimizer="lbfgs")
    potential.save("si.pt")
    atoms.calc = Potential.load("si.pt").calculator()

or, from settings (as the pipeline trains)::

    model = train_model(data, {"hidden": [32, 32], "ensemble": 4}, training_settings)
"""

from .calculator import MiladCalculator, run_nve
from .dataset import FingerprintSet, fingerprint_structures, kfold_split, validation_split
from .ensemble import Ensemble, load_model
from .model import ExtrapolationWarning, Potential
from .modelfile import ModelFileError
from .training import (
    cross_validation_fold,
    largest_error_share,
    loss_and_metrics,
    set_metrics,
    train_best_of,
    train_model,
)
from .unavailable import mark_unavailable, unavailable_reason

__all__ = [
    "Ensemble",
    "ExtrapolationWarning",
    "FingerprintSet",
    "MiladCalculator",
    "ModelFileError",
    "Potential",
    "cross_validation_fold",
    "fingerprint_structures",
    "kfold_split",
    "largest_error_share",
    "load_model",
    "loss_and_metrics",
    "mark_unavailable",
    "run_nve",
    "set_metrics",
    "train_best_of",
    "train_model",
    "unavailable_reason",
    "validation_split",
]
