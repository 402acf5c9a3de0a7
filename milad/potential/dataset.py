"""Training data of a potential: fingerprints, their pair derivatives and DFT labels.

:func:`fingerprint_structures` runs a :class:`~milad.descriptor.Descriptor` over a list of
structures once and stores everything training and evaluation need in a
:class:`FingerprintSet` (saved as an uncompressed ``.npz``): per atom the fingerprint Phi_i
(K invariants), per structure the energy (eV) and per atom the forces (eV/A), and per
neighbour pair the derivatives d Phi_i / d r_j (A^-1 times the fingerprint's units), which
are the expensive part and are what makes force training possible without recomputing the
descriptor. :func:`validation_split` carves a stratified validation set out of the training
data and :func:`kfold_split` deals it into stratified cross-validation folds.
:class:`TensorSet` is the same data as torch tensors, the form the model consumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from ase import Atoms
from numpy.typing import DTypeLike

from ..data import DataUnavailableError
from ..descriptor import Descriptor
from ..io import atomic_output

__all__ = ["FingerprintSet", "TensorSet", "fingerprint_structures", "kfold_split",
           "validation_split"]


@dataclass
class FingerprintSet:
    """Fingerprints, their pair derivatives and DFT labels of a list of structures.

    Atoms of all structures are concatenated (N in total, M structures, P neighbour pairs).
    values (N, K) float64; species (N,) index into ``elements``; structure (N,) structure of
    each atom; n_atoms (M,); energy (M,) eV (NaN without labels); forces (N, 3) eV/A;
    centers, neighbors (P,) global atom indices of each pair; derivatives (P, 3, K),
    d Phi[centers[p]] / d r[neighbors[p]] transposed for contiguous contraction (float32 by
    default: force errors of ~1e-7 relative), or ``None`` when not computed; n_pairs (M,);
    groups (M,) structure labels; descriptor: :meth:`Descriptor.to_dict` of the descriptor.
    """

    elements: tuple[str, ...]
    species: np.ndarray
    values: np.ndarray
    structure: np.ndarray
    n_atoms: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    centers: np.ndarray
    neighbors: np.ndarray
    derivatives: np.ndarray | None
    n_pairs: np.ndarray
    groups: np.ndarray
    descriptor: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.n_atoms)

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def atom_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @property
    def pair_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_pairs)])

    def subset(self, indices: Sequence[int]) -> "FingerprintSet":
        """The structures ``indices`` (in that order) as a new set."""
        indices = np.asarray(indices, dtype=np.int64)
        atoms_at, pairs_at = self.atom_offsets, self.pair_offsets
        atom_index = _ranges(atoms_at[indices], self.n_atoms[indices])
        pair_index = _ranges(pairs_at[indices], self.n_pairs[indices])
        new_of_old = np.full(len(self.values), -1, dtype=np.int64)
        new_of_old[atom_index] = np.arange(len(atom_index))
        return FingerprintSet(
            elements=self.elements,
            species=self.species[atom_index],
            values=self.values[atom_index],
            structure=np.repeat(np.arange(len(indices)), self.n_atoms[indices]),
            n_atoms=self.n_atoms[indices],
            energy=self.energy[indices],
            forces=self.forces[atom_index],
            centers=new_of_old[self.centers[pair_index]],
            neighbors=new_of_old[self.neighbors[pair_index]],
            derivatives=None if self.derivatives is None else self.derivatives[pair_index],
            n_pairs=self.n_pairs[indices],
            groups=self.groups[indices],
            descriptor=dict(self.descriptor),
            metadata={**self.metadata, "subset_of": int(len(self))},
        )

    def split(self, *index_lists: Sequence[int]) -> tuple["FingerprintSet", ...]:
        return tuple(self.subset(i) for i in index_lists)

    def save(self, path: str | Path) -> None:
        """Uncompressed ``.npz`` (derivatives dominate and do not compress well)."""
        arrays = {
            "species": self.species, "values": self.values, "structure": self.structure,
            "n_atoms": self.n_atoms, "energy": self.energy, "forces": self.forces,
            "centers": self.centers, "neighbors": self.neighbors, "n_pairs": self.n_pairs,
            "groups": np.asarray(self.groups, dtype=str),
            "elements": np.asarray(self.elements, dtype=str),
            "header": np.array(json.dumps(
                {"descriptor": self.descriptor, "metadata": self.metadata}, default=str
            )),
        }
        if self.derivatives is not None:
            arrays["derivatives"] = self.derivatives
        with atomic_output(path) as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "FingerprintSet":
        with np.load(path, allow_pickle=False) as data:
            if "unavailable" in data.files:
                raise DataUnavailableError(f"{path}: no fingerprints ({data['unavailable']})")
            header = json.loads(str(data["header"]))
            return cls(
                elements=tuple(str(e) for e in data["elements"]),
                species=data["species"], values=data["values"], structure=data["structure"],
                n_atoms=data["n_atoms"], energy=data["energy"], forces=data["forces"],
                centers=data["centers"], neighbors=data["neighbors"],
                derivatives=data["derivatives"] if "derivatives" in data.files else None,
                n_pairs=data["n_pairs"], groups=data["groups"].astype(str),
                descriptor=header["descriptor"], metadata=header["metadata"],
            )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64) - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total)


def fingerprint_structures(
    frames: Iterable[Atoms],
    descriptor: Descriptor,
    derivatives: bool = True,
    derivative_dtype: DTypeLike = np.float32,
    elements: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FingerprintSet:
    """Fingerprints (and pair derivatives) of every atom of every structure in ``frames``.

    Energies and forces are read from each structure's calculator when it has one
    (``read_mlearn`` attaches them); otherwise they are NaN.
    """
    frames = list(frames)
    symbols_all = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
    elements = tuple(elements) if elements is not None else tuple(symbols_all)
    missing = set(symbols_all) - set(elements)
    if missing:
        raise ValueError(f"structures hold elements {sorted(missing)} not in {elements}")
    index_of = {e: i for i, e in enumerate(elements)}
    parts: dict[str, list] = {k: [] for k in ("values", "species", "forces", "centers",
                                              "neighbors", "derivatives")}
    n_atoms, n_pairs, energy, groups = [], [], [], []
    offset = 0
    for k, atoms in enumerate(frames):
        if derivatives:
            local = descriptor.local_derivatives(atoms)
            values = local.values
            parts["centers"].append(local.centers + offset)
            parts["neighbors"].append(local.neighbors + offset)
            parts["derivatives"].append(
                np.ascontiguousarray(local.derivatives.transpose(0, 2, 1), dtype=derivative_dtype)
            )
            n_pairs.append(len(local.centers))
        else:
            values = descriptor.local(atoms)
            n_pairs.append(0)
        parts["values"].append(values)
        parts["species"].append([index_of[s] for s in atoms.get_chemical_symbols()])
        if atoms.calc is not None:
            energy.append(float(atoms.get_potential_energy()))
            parts["forces"].append(np.asarray(atoms.get_forces(), dtype=float))
        else:
            energy.append(np.nan)
            parts["forces"].append(np.full((len(atoms), 3), np.nan))
        n_atoms.append(len(atoms))
        groups.append(str(atoms.info.get("group", "")))
        offset += len(atoms)
        if progress is not None:
            progress(k + 1, len(frames))
    n_features = len(descriptor)

    def cat(name, shape, dtype):
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.zeros(shape, dtype)

    return FingerprintSet(
        elements=elements,
        species=np.concatenate([np.asarray(s, dtype=np.int64) for s in parts["species"]])
        if frames else np.zeros(0, np.int64),
        values=cat("values", (0, n_features), float),
        structure=np.repeat(np.arange(len(frames)), n_atoms).astype(np.int64),
        n_atoms=np.asarray(n_atoms, dtype=np.int64),
        energy=np.asarray(energy, dtype=float),
        forces=cat("forces", (0, 3), float),
        centers=cat("centers", (0,), np.int64),
        neighbors=cat("neighbors", (0,), np.int64),
        derivatives=cat("derivatives", (0, 3, n_features), derivative_dtype) if derivatives else None,
        n_pairs=np.asarray(n_pairs, dtype=np.int64),
        groups=np.asarray(groups, dtype=str),
        descriptor=descriptor.to_dict(),
    )


def validation_split(groups: Sequence[str], fraction: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, validation)`` of a split stratified by ``groups``.

    From every group of n structures, round(fraction * n) go to validation (at least one when
    the fraction is positive and n >= 2), chosen with a seeded generator. Only ever applied to
    the training file: the test set never takes part in a training decision.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    groups = np.asarray(groups, dtype=str)
    rng = np.random.default_rng(seed)
    validation = []
    for group in sorted(set(groups.tolist())):
        members = np.flatnonzero(groups == group)
        n = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            n = max(n, 1)
        validation.extend(rng.permutation(members)[:n].tolist())
    validation = np.array(sorted(validation), dtype=np.int64)
    fit = np.setdiff1d(np.arange(len(groups)), validation)
    return fit, validation


def kfold_split(groups: Sequence[str], n_folds: int,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held_out)`` indices (sorted) of each of ``n_folds`` folds, stratified by
    ``groups``.

    Group by group (in sorted order), the structures are shuffled with
    ``np.random.default_rng(seed)`` and dealt round-robin into the folds, the deal continuing
    where the previous group left off: every structure is held out exactly once, each fold
    holds floor(n/k) or ceil(n/k) of a group of n, and fold sizes differ by one at most.
    """
    groups = np.asarray(groups, dtype=str)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"cross-validation needs an integer number of folds >= 2, got {n_folds}")
    if n_folds > len(groups):
        raise ValueError(f"{n_folds} folds need at least {n_folds} structures, got {len(groups)}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(groups), dtype=np.int64)
    dealt = 0
    for group in sorted(set(groups.tolist())):
        members = rng.permutation(np.flatnonzero(groups == group))
        fold_of[members] = (dealt + np.arange(len(members))) % n_folds
        dealt += len(members)
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k))
            for k in range(n_folds)]


class TensorSet:
    """A :class:`FingerprintSet` as torch tensors, the input of the model and of the loss.

    values (N, K), n_atoms, energy (M,) and forces (N, 3) in ``dtype`` (float64, the network's);
    species, structure (N,) long. With ``need_forces`` the pair arrays stay numpy, as the force
    kernels of :mod:`milad.potential.forces` read them: ``centers_np``, ``neighbors_np`` (P,)
    int64 and ``derivatives_np`` (P, 3, K) in the stored dtype.
    """

    def __init__(self, data: FingerprintSet, dtype: torch.dtype = torch.float64,
                 need_forces: bool = True):
        if need_forces and data.derivatives is None:
            raise ValueError("force training/evaluation needs fingerprints with derivatives")
        self.data = data
        self.dtype = dtype
        self.n_structures = len(data)
        self.n_atoms_total = len(data.values)
        self.values = torch.as_tensor(data.values, dtype=dtype)
        self.species = torch.as_tensor(data.species, dtype=torch.long)
        self.structure = torch.as_tensor(data.structure, dtype=torch.long)
        self.n_atoms = torch.as_tensor(data.n_atoms, dtype=dtype)
        self.energy = torch.as_tensor(data.energy, dtype=dtype)
        self.forces = torch.as_tensor(data.forces, dtype=dtype)
        self.has_forces = need_forces
        if need_forces:
            self.centers_np = np.ascontiguousarray(data.centers, dtype=np.int64)
            self.neighbors_np = np.ascontiguousarray(data.neighbors, dtype=np.int64)
            self.derivatives_np = np.ascontiguousarray(data.derivatives)
        self.single_species = len(np.unique(data.species)) <= 1

    def batch(self, indices: Sequence[int]) -> "TensorSet":
        """The structures ``indices`` as a new set."""
        return TensorSet(self.data.subset(indices), self.dtype, self.has_forces)
