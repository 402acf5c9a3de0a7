"""Behler-Parrinello neural-network potentials on MILAD fingerprints (paper section IV B, Fig. 8).

Every atom-centred environment is encoded as a MILAD fingerprint Phi_i (Behler's cosine cutoff,
eq. 37, scales the neighbour weights); a feed-forward network per element maps Phi_i to an
atomic energy eps_i and the total energy is E = sum_i eps_i. The networks use tanh activations
and, as in the paper, linear layers without bias: inputs and outputs are instead rescaled into
(-1, 1) from the ranges seen in the training set, so a prediction that leaves these ranges is an
extrapolation and raises an :class:`ExtrapolationWarning`.

Forces come from the chain rule, F_j = -sum_i dE/dPhi_i . dPhi_i/dr_j: dE/dPhi is written out
analytically for the network (no double back-propagation is needed) and contracted with the
sparse pair derivatives of :meth:`milad.descriptor.Descriptor.local_derivatives`, which are
computed once per structure and stored in a :class:`FingerprintSet`.

Training minimises eq. 38, averaged rather than summed over the M structures so that its scale
does not depend on the batch size:

    L = 1/(2M) sum_k [ e_k + alpha / (3 N_k) sum_i,j (F_ij - F'_ij)^2 ],

with the energy term e_k = ((E_k - E'_k) / N_k)^2 (``energy_term="per_atom"``: the energy
error per atom, the issue's reading and that of the AMP library the paper used, whose
customary force coefficient 0.04 is the paper's alpha) or e_k = (E_k - E'_k)^2 / N_k
(``energy_term="eq38"``: eq. 38 as printed, energies weighted N_k times more). Optimisers:
full-batch L-BFGS (the paper used BFGS) and mini-batch Adam; early stopping watches the loss on
a validation split carved out of the *training* data only (:func:`validation_split`), and
:func:`train_best_of` keeps the best of several seeds by that same validation loss.

Typical use::

    frames = read_mlearn("Si/training.json")
    descriptor = Descriptor(n_max=7, cutoff=4.7)
    data = fingerprint_structures(frames, descriptor)
    fitted, validation = data.split(*validation_split(data.groups, 0.1, seed=0))
    potential = Potential.for_data(fitted, hidden=(32, 32))
    potential.fit(fitted, validation, alpha=0.04, optimizer="lbfgs")
    potential.save("si.pt")
    atoms.calc = Potential.load("si.pt").calculator()
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numba
import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .data import DataUnavailableError
from .descriptor import Descriptor
from .features import SpeciesMap

__all__ = [
    "ExtrapolationWarning",
    "FingerprintSet",
    "MiladCalculator",
    "Potential",
    "descriptor_from_settings",
    "descriptor_settings",
    "fingerprint_structures",
    "loss_and_metrics",
    "mark_unavailable",
    "run_nve",
    "train_best_of",
    "unavailable_reason",
    "validation_split",
]

FORMAT = "milad-potential"
FORMAT_VERSION = 1
UNAVAILABLE = "milad-unavailable"


class ExtrapolationWarning(UserWarning):
    """A fingerprint component or an energy per atom outside the range seen in training."""


# ---------------------------------------------------------------------- placeholders


def mark_unavailable(path: str | Path, reason: str) -> None:
    """Write a stand-in for a fingerprint set (``.npz``) or a model (``.pt``) that could not
    be made (e.g. the training data are missing); loading it raises with ``reason``.

    Lets a pipeline keep a fixed set of outputs per element while saying why one is empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez(handle, unavailable=np.array(str(reason)))
    else:
        torch.save({"format": UNAVAILABLE, "reason": str(reason)}, path)


def unavailable_reason(path: str | Path) -> str | None:
    """The reason stored by :func:`mark_unavailable`, or ``None`` for a real file."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return str(data["unavailable"]) if "unavailable" in data.files else None
    record = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(record, dict) and record.get("format") == UNAVAILABLE:
        return str(record["reason"])
    return None


# ---------------------------------------------------------------------- descriptor settings


def _invariants_hash(descriptor: Descriptor) -> str:
    return hashlib.sha256("\n".join(descriptor.invariants.labels).encode()).hexdigest()


def descriptor_settings(descriptor: Descriptor) -> dict[str, Any]:
    """JSON-able settings that rebuild ``descriptor`` (shipped invariant set of its order)."""
    species = descriptor.species
    return {
        "n_max": descriptor.n_max,
        "cutoff": descriptor.cutoff,
        "feature": descriptor.feature,
        "sigma": descriptor.sigma,
        "species": None if species is None else list(species.species),
        "weight_range": None if species is None else list(species.weight_range),
        "n_invariants": len(descriptor),
        "invariants_sha256": _invariants_hash(descriptor),
    }


def descriptor_from_settings(settings: dict[str, Any]) -> Descriptor:
    """The descriptor of ``settings``; refuses if the shipped invariant set has changed."""
    species = settings.get("species")
    if species is not None:
        species = SpeciesMap(tuple(species), tuple(settings.get("weight_range") or (1.0, 2.0)))
    descriptor = Descriptor(
        n_max=int(settings["n_max"]),
        cutoff=float(settings["cutoff"]),
        feature=settings.get("feature", "delta"),
        sigma=settings.get("sigma"),
        species=species,
    )
    expected = settings.get("invariants_sha256")
    if expected is not None and expected != _invariants_hash(descriptor):
        raise ValueError(
            f"the shipped n_max={descriptor.n_max} invariant set differs from the one these "
            "fingerprints or this model were made with (invariant labels hash mismatch)"
        )
    return descriptor


# ---------------------------------------------------------------------- fingerprint sets


@dataclass
class FingerprintSet:
    """Fingerprints, their pair derivatives and DFT labels of a list of structures.

    Atoms of all structures are concatenated (N in total, M structures, P neighbour pairs).
    values (N, K) float64; species (N,) index into ``elements``; structure (N,) structure of
    each atom; n_atoms (M,); energy (M,) eV (NaN without labels); forces (N, 3) eV/A;
    centers, neighbors (P,) global atom indices of each pair; derivatives (P, 3, K),
    d Phi[centers[p]] / d r[neighbors[p]] transposed for contiguous contraction (float32 by
    default: force errors of ~1e-7 relative), or ``None`` when not computed; n_pairs (M,).
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

    def split(self, *index_lists) -> tuple["FingerprintSet", ...]:
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
        path = Path(path)
        partial = path.with_name(path.name + ".part.npz")
        np.savez(partial, **arrays)
        partial.replace(path)

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
    derivative_dtype=np.float32,
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
        descriptor=descriptor_settings(descriptor),
    )


def validation_split(groups: Sequence[str], fraction: float, seed: int = 0):
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


# ---------------------------------------------------------------------- torch side


@numba.njit(cache=True, fastmath=True)
def _pair_gradient(derivatives, centers, neighbors, grad_phi, n_atoms):
    """dE/dr (n_atoms, 3) from dE/dPhi (n_atoms, K) and the pair derivatives (P, 3, K).

    Pair p moves Phi[centers[p]] through its neighbour and, oppositely, through the centre.
    """
    out = np.zeros((n_atoms, 3))
    n_features = derivatives.shape[2]
    for p in range(derivatives.shape[0]):
        c = centers[p]
        n = neighbors[p]
        for x in range(3):
            total = 0.0
            for k in range(n_features):
                total += derivatives[p, x, k] * grad_phi[c, k]
            out[n, x] += total
            out[c, x] -= total
    return out


@numba.njit(cache=True, fastmath=True)
def _pair_gradient_transpose(derivatives, centers, neighbors, upstream, n_atoms):
    """Adjoint of ``_pair_gradient``: d(sum upstream * dE/dr) / d(dE/dPhi), (n_atoms, K)."""
    n_features = derivatives.shape[2]
    out = np.zeros((n_atoms, n_features))
    for p in range(derivatives.shape[0]):
        c = centers[p]
        n = neighbors[p]
        w0 = upstream[n, 0] - upstream[c, 0]
        w1 = upstream[n, 1] - upstream[c, 1]
        w2 = upstream[n, 2] - upstream[c, 2]
        for k in range(n_features):
            out[c, k] += derivatives[p, 0, k] * w0 + derivatives[p, 1, k] * w1 + (
                derivatives[p, 2, k] * w2
            )
    return out


class _PositionGradient(torch.autograd.Function):
    """dE/dr from dE/dPhi through the sparse pair derivatives, one pass over them each way.

    (A numba kernel: about ten times faster on one core than gathering dE/dPhi onto the pairs
    and contracting with ``torch.bmm``, and it accumulates in float64.)
    """

    @staticmethod
    def forward(ctx, grad_phi, data):
        ctx.data = data
        out = _pair_gradient(data.derivatives_np, data.centers_np, data.neighbors_np,
                             np.ascontiguousarray(grad_phi.detach().numpy()),
                             data.n_atoms_total)
        return torch.from_numpy(out).to(grad_phi.dtype)

    @staticmethod
    def backward(ctx, upstream):
        data = ctx.data
        out = _pair_gradient_transpose(
            data.derivatives_np, data.centers_np, data.neighbors_np,
            np.ascontiguousarray(upstream.detach().to(torch.float64).numpy()),
            data.n_atoms_total,
        )
        return torch.from_numpy(out).to(upstream.dtype), None


class _Tensors:
    """A FingerprintSet as torch tensors (network dtype float64, pair derivatives as stored)."""

    def __init__(self, data: FingerprintSet, dtype=torch.float64, need_forces: bool = True):
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

    def batch(self, indices) -> "_Tensors":
        return _Tensors(self.data.subset(indices), self.dtype, self.has_forces)


class ElementNetwork(torch.nn.Module):
    """Feed-forward tanh network of one element with input/output rescaling into (-1, 1).

    Buffers: ``input_center``/``input_halfwidth`` (K,) map the training range of every
    fingerprint component onto [-1, 1]; ``energy_center``/``energy_halfwidth`` map the network
    output y onto the atomic energy eps = center + halfwidth * y (from the training range of
    the energy per atom).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int] = (32, 32), bias: bool = False):
        super().__init__()
        sizes = [int(n_inputs), *(int(h) for h in hidden)]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=bias, dtype=torch.float64)
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.output = torch.nn.Linear(sizes[-1], 1, bias=bias, dtype=torch.float64)
        self.register_buffer("input_center", torch.zeros(n_inputs, dtype=torch.float64))
        self.register_buffer("input_halfwidth", torch.ones(n_inputs, dtype=torch.float64))
        self.register_buffer("energy_center", torch.zeros((), dtype=torch.float64))
        self.register_buffer("energy_halfwidth", torch.ones((), dtype=torch.float64))

    def set_ranges(self, input_min, input_max, energy_min: float, energy_max: float) -> None:
        low = torch.as_tensor(input_min, dtype=torch.float64)
        high = torch.as_tensor(input_max, dtype=torch.float64)
        half = (high - low) / 2
        # a component constant in training: unit scale, so it maps onto 0 (warns beyond +-1)
        self.input_halfwidth.copy_(torch.where(half > 0, half, torch.ones_like(half)))
        self.input_center.copy_((high + low) / 2)
        span = (energy_max - energy_min) / 2
        self.energy_halfwidth.fill_(span if span > 0 else 1.0)
        self.energy_center.fill_((energy_max + energy_min) / 2)

    def scaled(self, phi: torch.Tensor) -> torch.Tensor:
        return (phi - self.input_center) / self.input_halfwidth

    def forward(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Atomic energies (n,) and their gradients d eps / d Phi (n, K) in physical units."""
        h = self.scaled(phi)
        slopes = []
        for layer in self.layers:
            h = torch.tanh(layer(h))
            slopes.append(1 - h * h)
        y = self.output(h).squeeze(-1)
        g = self.output.weight.expand(len(phi), -1)
        for layer, slope in zip(reversed(self.layers), reversed(slopes)):
            g = (g * slope) @ layer.weight
        return (
            self.energy_center + self.energy_halfwidth * y,
            g * (self.energy_halfwidth / self.input_halfwidth),
        )


class Potential(torch.nn.Module):
    """One :class:`ElementNetwork` per element on MILAD fingerprints; E = sum of atomic terms.

    ``descriptor``: settings from :func:`descriptor_settings` (or a :class:`Descriptor`).
    After :meth:`fit` (or :meth:`load`) ``history`` holds the learning curve and
    ``metadata`` the training settings, data checksums and code version.
    """

    def __init__(
        self,
        elements: Sequence[str],
        descriptor: dict[str, Any] | Descriptor,
        hidden: Sequence[int] = (32, 32),
        bias: bool = False,
    ):
        super().__init__()
        if isinstance(descriptor, Descriptor):
            descriptor = descriptor_settings(descriptor)
        self.elements = tuple(str(e) for e in elements)
        self.descriptor_config = dict(descriptor)
        self.hidden = tuple(int(h) for h in hidden)
        self.bias = bool(bias)
        n_inputs = int(descriptor["n_invariants"])
        self.networks = torch.nn.ModuleDict(
            {e: ElementNetwork(n_inputs, self.hidden, self.bias) for e in self.elements}
        )
        self.history: dict[str, list] = {}
        self.metadata: dict[str, Any] = {}
        self._descriptor: Descriptor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_data(cls, data: FingerprintSet, hidden=(32, 32), bias=False, seed: int | None = 0):
        """A potential whose scaling ranges come from ``data`` (the fitted training part)."""
        if seed is not None:
            torch.manual_seed(seed)
        potential = cls(data.elements, data.descriptor, hidden, bias)
        potential.set_ranges(data)
        return potential

    def set_ranges(self, data: FingerprintSet) -> None:
        """Input and output scaling from the ranges found in ``data``."""
        per_atom = data.energy / data.n_atoms
        for index, element in enumerate(self.elements):
            atoms = data.species == index
            if not atoms.any():
                raise ValueError(f"no {element} atom in the data to set its scaling from")
            with_element = np.unique(data.structure[atoms])
            self.networks[element].set_ranges(
                data.values[atoms].min(0), data.values[atoms].max(0),
                float(np.nanmin(per_atom[with_element])), float(np.nanmax(per_atom[with_element])),
            )

    @property
    def descriptor(self) -> Descriptor:
        if self._descriptor is None:
            self._descriptor = descriptor_from_settings(self.descriptor_config)
        return self._descriptor

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ prediction
    def _check_elements(self, elements: Sequence[str]) -> list[int]:
        unknown = sorted(set(elements) - set(self.elements))
        if unknown:
            raise ValueError(f"this potential has no network for {unknown} (has {self.elements})")
        return [self.elements.index(e) for e in elements]

    def atomic(self, values: torch.Tensor, species: torch.Tensor, elements: Sequence[str],
               single_species: bool = False):
        """Atomic energies (n,) and d eps / d Phi (n, K) for atoms of ``species`` (index into
        ``elements``)."""
        mapping = self._check_elements(elements)
        if single_species:
            network = self.networks[self.elements[mapping[int(species[0])]]]
            return network(values)
        energies = torch.zeros(len(values), dtype=values.dtype)
        gradients = torch.zeros_like(values)
        for index in torch.unique(species).tolist():
            mask = species == index
            eps, grad = self.networks[self.elements[mapping[index]]](values[mask])
            energies = energies.index_put((mask,), eps)
            gradients = gradients.index_put((mask,), grad)
        return energies, gradients

    def _predict(self, data: _Tensors, forces: bool = True):
        """Total energies (M,), forces (N, 3) or None, atomic energies (N,)."""
        eps, grad = self.atomic(data.values, data.species, data.data.elements, data.single_species)
        energies = torch.zeros(data.n_structures, dtype=eps.dtype).index_add(0, data.structure, eps)
        if not forces:
            return energies, None, eps
        return energies, -_PositionGradient.apply(grad, data), eps

    def predict_set(self, data: FingerprintSet, forces: bool = True) -> dict[str, np.ndarray]:
        """Predicted ``energy`` (M,), ``forces`` (N, 3) and ``atomic`` energies for a set."""
        tensors = _Tensors(data, need_forces=forces)
        with torch.no_grad():
            energies, force, eps = self._predict(tensors, forces)
        out = {"energy": energies.numpy(), "atomic": eps.numpy()}
        if forces:
            out["forces"] = force.numpy()
        return out

    def extrapolation(self, values: np.ndarray, species: np.ndarray, elements: Sequence[str],
                      tolerance: float = 1e-6) -> np.ndarray:
        """Per atom: how far (in scaled units) its fingerprint leaves [-1, 1]; 0 inside."""
        mapping = self._check_elements(elements)
        excess = np.zeros(len(values))
        for index in np.unique(species):
            mask = species == index
            network = self.networks[self.elements[mapping[int(index)]]]
            with torch.no_grad():
                scaled = network.scaled(torch.as_tensor(values[mask], dtype=torch.float64)).numpy()
            excess[mask] = np.maximum(np.abs(scaled).max(axis=1) - 1 - tolerance, 0.0)
        return excess

    def energy_extrapolation(self, energy_per_atom: float, elements: Sequence[str]) -> float:
        """How far (in scaled units) an energy per atom lies outside the training range."""
        worst = 0.0
        for element in set(elements):
            network = self.networks[element]
            y = (energy_per_atom - float(network.energy_center)) / float(network.energy_halfwidth)
            worst = max(worst, abs(y) - 1.0)
        return max(worst, 0.0)

    def evaluate(self, atoms: Atoms, forces: bool = True, warn: bool = True):
        """Energy (eV), atomic energies (N,) and forces (N, 3) or None for one structure."""
        symbols = atoms.get_chemical_symbols()
        elements = sorted(set(symbols))
        self._check_elements(elements)
        species = np.array([elements.index(s) for s in symbols])
        if forces:
            local = self.descriptor.local_derivatives(atoms)
            values = local.values
        else:
            values = self.descriptor.local(atoms)
        with torch.no_grad():
            eps, grad = self.atomic(
                torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(species), elements,
                single_species=len(elements) == 1,
            )
        eps = eps.numpy()
        energy = float(eps.sum())
        if warn:
            excess = self.extrapolation(values, species, elements)
            energy_excess = self.energy_extrapolation(energy / len(atoms), elements)
            if excess.any() or energy_excess > 0:
                warnings.warn(
                    f"extrapolating: {int((excess > 0).sum())} of {len(atoms)} atoms have "
                    f"fingerprints outside the training range (up to {excess.max():.3g} beyond "
                    f"+-1 in scaled units); energy per atom beyond the training range by "
                    f"{energy_excess:.3g} (scaled units)",
                    ExtrapolationWarning,
                    stacklevel=2,
                )
        return energy, eps, (local.forces(grad.numpy()) if forces else None)

    def calculator(self, **kwargs) -> "MiladCalculator":
        return MiladCalculator(self, **kwargs)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        training: FingerprintSet,
        validation: FingerprintSet | None = None,
        *,
        alpha: float = 0.04,
        energy_term: str = "per_atom",
        weight_decay: float = 0.0,
        optimizer: str = "lbfgs",
        max_epochs: int = 1000,
        patience: int = 50,
        learning_rate: float | None = None,
        batch_size: int = 16,
        lbfgs_iterations: int = 10,
        lbfgs_history: int = 100,
        max_seconds: float | None = None,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
        log_every: int = 10,
    ) -> dict[str, list]:
        """Train on ``training``; early stopping on ``validation`` (restores the best weights).

        optimizer: ``"lbfgs"`` (full batch; one epoch = ``lbfgs_iterations`` L-BFGS iterations
        with strong-Wolfe line search, learning rate 1 by default) or ``"adam"`` (mini-batches
        of ``batch_size`` structures per step, one epoch = one pass over the data, learning
        rate 1e-3 by default and halved when the validation loss stalls for patience/4
        epochs). Training stops after ``max_epochs`` epochs, after ``max_seconds``, when the
        validation loss has not improved for ``patience`` epochs, or (L-BFGS) when the loss no
        longer changes. Without a validation set the training loss is watched instead.
        ``energy_term`` selects the energy term of the loss (see :func:`loss_and_metrics`);
        ``weight_decay`` adds the L2 penalty weight_decay / 2 * sum of squared weights to the
        training loss (not to the validation loss that early stopping watches).
        Returns (and stores in ``self.history``) the per-epoch learning curve.
        """
        if optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; choose 'lbfgs' or 'adam'")
        self._check_elements(training.elements)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        train_t = _Tensors(training)
        valid_t = _Tensors(validation) if validation is not None and len(validation) else None
        parameters = [p for p in self.parameters() if p.requires_grad]
        history: dict[str, list] = {k: [] for k in (
            "epoch", "seconds", "evaluations", "learning_rate", "train_loss",
            "train_energy_rmse", "train_force_rmse", "validation_loss",
            "validation_energy_rmse", "validation_force_rmse")}
        evaluations = 0

        def penalty():
            if not weight_decay:
                return 0.0
            return 0.5 * weight_decay * sum((p * p).sum() for p in parameters)

        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS(
                parameters, lr=learning_rate or 1.0, max_iter=lbfgs_iterations,
                history_size=lbfgs_history, line_search_fn="strong_wolfe",
                tolerance_grad=1e-12, tolerance_change=1e-15,
            )
            scheduler = None

            def closure():
                nonlocal evaluations
                evaluations += 1
                opt.zero_grad()
                loss, _ = loss_and_metrics(self, train_t, alpha, energy_term)
                loss = loss + penalty()
                loss.backward()
                return loss
        else:
            opt = torch.optim.Adam(parameters, lr=learning_rate or 1e-3)
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=max(patience // 4, 1)
            )

        start = time.perf_counter()
        best = (math.inf, None, -1)
        previous_loss = None
        stalled = 0
        for epoch in range(1, max_epochs + 1):
            if optimizer == "lbfgs":
                opt.step(closure)
            else:
                order = rng.permutation(len(training))
                for first in range(0, len(order), batch_size):
                    batch = train_t.batch(np.sort(order[first:first + batch_size]))
                    opt.zero_grad()
                    loss, _ = loss_and_metrics(self, batch, alpha, energy_term)
                    (loss + penalty()).backward()
                    opt.step()
                    evaluations += 1
            with torch.no_grad():
                train_loss, train_metrics = loss_and_metrics(self, train_t, alpha, energy_term)
                if valid_t is not None:
                    valid_loss, valid_metrics = loss_and_metrics(self, valid_t, alpha,
                                                                 energy_term)
                else:
                    valid_loss, valid_metrics = train_loss, {"energy_rmse": math.nan,
                                                             "force_rmse": math.nan}
            train_loss, valid_loss = float(train_loss), float(valid_loss)
            for key, value in (
                ("epoch", epoch), ("seconds", time.perf_counter() - start),
                ("evaluations", evaluations), ("learning_rate", opt.param_groups[0]["lr"]),
                ("train_loss", train_loss),
                ("train_energy_rmse", train_metrics["energy_rmse"]),
                ("train_force_rmse", train_metrics["force_rmse"]),
                ("validation_loss", valid_loss if valid_t is not None else math.nan),
                ("validation_energy_rmse", valid_metrics["energy_rmse"]),
                ("validation_force_rmse", valid_metrics["force_rmse"]),
            ):
                history[key].append(value)
            if not math.isfinite(train_loss):
                reason = "the loss is not finite"
                if log:
                    log(f"epoch {epoch}: loss is not finite; stopping")
                break
            if valid_loss < best[0]:
                best = (valid_loss, {k: v.detach().clone() for k, v in self.state_dict().items()},
                        epoch)
            if scheduler is not None:
                scheduler.step(valid_loss)
            if log and (epoch % log_every == 0 or epoch == 1):
                log(
                    f"epoch {epoch:5d} {history['seconds'][-1]:8.1f} s  evals {evaluations:6d}  "
                    f"loss {train_loss:.4e} / {valid_loss:.4e}  "
                    f"E {1000 * train_metrics['energy_rmse']:.2f} / "
                    f"{1000 * valid_metrics['energy_rmse']:.2f} meV/atom  "
                    f"F {train_metrics['force_rmse']:.4f} / {valid_metrics['force_rmse']:.4f} eV/A"
                )
            reason = None
            if epoch - best[2] >= patience:
                reason = f"no validation improvement for {patience} epochs"
            elif max_seconds is not None and time.perf_counter() - start > max_seconds:
                reason = f"time limit of {max_seconds:.0f} s reached"
            elif optimizer == "lbfgs":
                stalled = stalled + 1 if previous_loss is not None and abs(
                    previous_loss - train_loss) <= 1e-12 * abs(train_loss) else 0
                if stalled >= 3:
                    reason = "training loss no longer changes"
            previous_loss = train_loss
            if reason:
                break
        else:
            reason = f"max_epochs = {max_epochs} reached"
        if best[1] is not None:
            self.load_state_dict(best[1])
        history["best_epoch"] = [best[2]]
        history["stop_reason"] = [reason]
        if log:
            log(f"stopped after epoch {epoch} ({reason}); best epoch {best[2]}")
        self.history = history
        self.metadata.setdefault("training", {}).update({
            "optimizer": optimizer, "alpha": alpha, "energy_term": energy_term,
            "weight_decay": weight_decay,
            "max_epochs": max_epochs,
            "patience": patience, "learning_rate": opt.param_groups[0]["lr"] if optimizer ==
            "adam" else (learning_rate or 1.0), "batch_size": batch_size if optimizer == "adam"
            else None, "lbfgs_iterations": lbfgs_iterations, "seed": seed,
            "n_fit_structures": len(training),
            "n_validation_structures": 0 if validation is None else len(validation),
            "seconds": history["seconds"][-1] if history["seconds"] else 0.0,
            "epochs": epoch, "best_epoch": best[2], "stop_reason": reason,
        })
        return history

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> None:
        """Weights, scaling, descriptor settings, history, metadata and code version."""
        from . import __version__
        from .provenance import git_commit

        record = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "milad_version": __version__,
            "git": git_commit(),
            "torch_version": str(torch.__version__),
            "elements": list(self.elements),
            "hidden": list(self.hidden),
            "bias": self.bias,
            "descriptor": json.dumps(self.descriptor_config),
            "state_dict": self.state_dict(),
            "history": json.dumps(self.history, default=float),
            "metadata": json.dumps(self.metadata, default=str),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        torch.save(record, partial)
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Potential":
        record = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(record, dict) and record.get("format") == UNAVAILABLE:
            raise DataUnavailableError(f"{path}: no potential ({record['reason']})")
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved milad potential")
        if record["format_version"] > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {record['format_version']}, newer than "
                             f"this milad reads ({FORMAT_VERSION})")
        potential = cls(record["elements"], json.loads(record["descriptor"]),
                        record["hidden"], record["bias"])
        potential.load_state_dict(record["state_dict"])
        potential.history = json.loads(record["history"])
        potential.metadata = json.loads(record["metadata"])
        potential.metadata.setdefault("saved_with", {
            "milad_version": record["milad_version"], "git": record["git"],
            "torch_version": record["torch_version"],
        })
        return potential


def train_best_of(
    fit: FingerprintSet,
    validation: FingerprintSet | None,
    restarts: int = 1,
    hidden: Sequence[int] = (32, 32),
    bias: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **options,
) -> Potential:
    """Train ``restarts`` potentials (seeds ``seed``, ``seed + 1``, ...) and keep the one with
    the lowest validation loss (training loss without a validation set).

    ``options`` go to :meth:`Potential.fit`. The kept potential's metadata lists every
    restart's seed, best validation loss and training time under ``"restarts"``.
    """
    best, records = None, []
    for restart in range(int(restarts)):
        run_seed = int(seed) + restart
        if log and restarts > 1:
            log(f"restart {restart + 1} of {restarts} (seed {run_seed})")
        potential = Potential.for_data(fit, hidden=hidden, bias=bias, seed=run_seed)
        history = potential.fit(fit, validation, seed=run_seed, log=log, **options)
        key = "validation_loss" if validation is not None and len(validation) else "train_loss"
        score = float(history[key][history["best_epoch"][0] - 1])
        records.append({"seed": run_seed, "score": score, "score_of": key,
                        "best_epoch": history["best_epoch"][0],
                        "seconds": history["seconds"][-1] if history["seconds"] else 0.0})
        if best is None or score < best[0]:
            best = (score, potential)
    potential = best[1]
    potential.metadata["restarts"] = records
    if log and restarts > 1:
        log(f"kept seed {potential.metadata['training']['seed']} (lowest {records[0]['score_of']})")
    return potential


# ---------------------------------------------------------------------- loss and metrics


def loss_and_metrics(potential: Potential, data: _Tensors | FingerprintSet, alpha: float,
                     energy_term: str = "per_atom"):
    """Loss of eq. 38 (mean over structures) and energy/force RMSEs.

    energy_term: ``"per_atom"``: ((E - E') / N)^2, the energy error per atom (the issue's and
    AMP's reading); ``"eq38"``: (E - E')^2 / N as eq. 38 is printed, which weights the
    energies N times more. The force term is alpha / (3 N) sum (F - F')^2 in both.

    Metrics: ``energy_rmse`` (eV/atom, over structures of (E - E')/N) and ``force_rmse``
    (eV/A, over all force components), as in Zuo et al. and the paper's Table III.
    """
    if isinstance(data, FingerprintSet):
        data = _Tensors(data)
    energies, forces, _ = potential._predict(data, forces=True)
    energy_error = (energies - data.energy) / data.n_atoms
    force_squares = ((forces - data.forces) ** 2).sum(1)
    per_structure = torch.zeros(data.n_structures, dtype=force_squares.dtype).index_add(
        0, data.structure, force_squares
    )
    if energy_term == "per_atom":
        energy_part = energy_error**2
    elif energy_term == "eq38":
        energy_part = energy_error**2 * data.n_atoms
    else:
        raise ValueError(f"unknown energy_term {energy_term!r}; choose 'per_atom' or 'eq38'")
    loss = 0.5 * torch.mean(energy_part + alpha / (3 * data.n_atoms) * per_structure)
    with torch.no_grad():
        metrics = {
            "energy_rmse": float(torch.sqrt(torch.mean(energy_error**2))),
            "force_rmse": float(torch.sqrt(force_squares.sum() / (3 * data.n_atoms_total))),
        }
    return loss, metrics


# ---------------------------------------------------------------------- ASE calculator


class MiladCalculator(Calculator):
    """ASE calculator of a :class:`Potential`: energy, atomic energies and forces.

    ``potential`` may be a :class:`Potential` or the path of a saved one. The first
    extrapolating structure raises an :class:`ExtrapolationWarning`; every one is counted in
    ``n_extrapolations`` (set ``warn=False`` to skip the check).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]

    def __init__(self, potential: Potential | str | Path, warn: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(potential, Potential):
            potential = Potential.load(potential)
        self.potential = potential
        self.warn = warn
        self.n_extrapolations = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_forces = "forces" in properties
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExtrapolationWarning)
            energy, eps, forces = self.potential.evaluate(
                self.atoms, forces=want_forces, warn=self.warn
            )
        for warning in caught:
            if issubclass(warning.category, ExtrapolationWarning):
                self.n_extrapolations += 1
                if self.n_extrapolations == 1:
                    warnings.warn(str(warning.message) + " (further ones are only counted in "
                                  "calculator.n_extrapolations)", ExtrapolationWarning,
                                  stacklevel=2)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = eps
        if forces is not None:
            self.results["forces"] = forces


# ---------------------------------------------------------------------- molecular dynamics


def run_nve(
    atoms: Atoms,
    calculator: Calculator,
    steps: int,
    timestep_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
    interval: int = 1,
) -> dict[str, Any]:
    """Velocity-Verlet NVE run from Maxwell-Boltzmann velocities at ``temperature_K``.

    Returns the energy trace (``time_ps``, ``potential``, ``kinetic``, ``total`` in eV,
    ``temperature`` in K, every ``interval`` steps) and the conservation measures:
    ``drift_eV_per_atom_per_ps`` (slope of a straight-line fit of the total energy per atom
    against time), ``max_deviation_eV_per_atom`` (largest |E_tot(t) - E_tot(0)| / N) and
    ``std_eV_per_atom``; plus wall ``seconds`` and ``atom_steps_per_second``.
    """
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calculator
    # ASE >= 3.26 names it thermalize_momenta; older ones MaxwellBoltzmannDistribution
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or (
        velocitydistribution.MaxwellBoltzmannDistribution
    )
    thermalize(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    velocitydistribution.Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    trace: dict[str, list] = {k: [] for k in ("time_ps", "potential", "kinetic", "total",
                                              "temperature")}

    def observe():
        potential = float(atoms.get_potential_energy())
        kinetic = float(atoms.get_kinetic_energy())
        trace["time_ps"].append(dynamics.nsteps * timestep_fs / 1000)
        trace["potential"].append(potential)
        trace["kinetic"].append(kinetic)
        trace["total"].append(potential + kinetic)
        trace["temperature"].append(float(atoms.get_temperature()))

    dynamics.attach(observe, interval=interval)
    start = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - start
    t = np.asarray(trace["time_ps"])
    total = np.asarray(trace["total"]) / len(atoms)
    slope = float(np.polyfit(t, total, 1)[0]) if len(t) > 1 else math.nan
    return {
        **trace,
        "n_atoms": len(atoms),
        "steps": int(steps),
        "timestep_fs": float(timestep_fs),
        "temperature_K": float(temperature_K),
        "drift_eV_per_atom_per_ps": slope,
        "max_deviation_eV_per_atom": float(np.max(np.abs(total - total[0]))),
        "std_eV_per_atom": float(np.std(total)),
        "seconds": seconds,
        "atom_steps_per_second": len(atoms) * steps / seconds if seconds > 0 else math.nan,
    }
