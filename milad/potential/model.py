"""The model: one feed-forward network per element, E = sum of atomic energies.

Each :class:`ElementNetwork` maps an atom's fingerprint Phi_i (K,) to its atomic energy eps_i
(eV); :class:`Potential` holds one per element, sums them per structure, and returns forces
(eV/A) from the chain rule F_j = -sum_i dE/dPhi_i . dPhi_i/dr_j: the networks write dE/dPhi out
in their forward pass (with the registered derivative of their activation, see
:mod:`milad.potential.activations`) and :mod:`milad.potential.forces` contracts it with the pair
derivatives. As in the paper, linear layers have no bias by default: inputs and outputs are
instead rescaled into (-1, 1) from the ranges seen in the training set (inputs may instead be
standardised to the training mean and standard deviation, ``scaling="standard"``); a
prediction that leaves the training ranges is an extrapolation and raises an
:class:`ExtrapolationWarning` in either case.

A potential saves to and loads from one ``.pt`` file (weights, scaling, descriptor settings,
learning curve, metadata); :meth:`Potential.fit` trains it (:mod:`milad.potential.training`)
and :meth:`Potential.calculator` wraps it for ASE (:mod:`milad.potential.calculator`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch
from ase import Atoms

from ..data import DataUnavailableError
from ..descriptor import Descriptor
from .activations import get_activation
from .dataset import FingerprintSet, TensorSet
from .forces import position_gradient
from .modelfile import READABLE_FORMATS, read_model_file, write_model_file
from .unavailable import UNAVAILABLE

if TYPE_CHECKING:
    from ..descriptor import DescriptorStack, LocalFingerprints
    from .calculator import MiladCalculator
    from .ensemble import Ensemble

__all__ = ["ElementNetwork", "ExtrapolationWarning", "Potential"]

FORMAT = "milad-potential"
#: 2: files carry a header with the payload's size and SHA-256 digest (:mod:`.modelfile`)
FORMAT_VERSION = 2
READABLE_FORMATS[FORMAT] = FORMAT_VERSION
#: input scalings of the element networks (see :class:`ElementNetwork`)
SCALINGS = ("range", "standard")


def check_scaling(scaling: str) -> str:
    """``scaling`` if it names an input scaling, else a ValueError."""
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; choose 'range' or 'standard'")
    return str(scaling)


class ExtrapolationWarning(UserWarning):
    """A fingerprint component or an energy per atom outside the range seen in training."""


class ElementNetwork(torch.nn.Module):
    """Feed-forward network of one element with input/output rescaling.

    Hidden layers apply the registered ``activation`` (tanh by default). The network sees
    h = (Phi - ``input_center``) / ``input_halfwidth`` (buffers, (K,)): with
    ``scaling="range"`` (the paper's) the training range of every fingerprint component maps
    onto [-1, 1]; with ``"standard"`` the center is the training mean and the "halfwidth" the
    training standard deviation (population, ddof 0), so the training inputs have mean 0 and
    unit variance. ``range_center``/``range_halfwidth`` (K,) map the training range onto
    [-1, 1] in both modes and are what extrapolation checks use (they are not in the state
    dict; :meth:`Potential.save` stores them). ``energy_center``/``energy_halfwidth`` map the
    network output y onto the atomic energy eps = center + halfwidth * y (from the training
    range of the energy per atom).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int] = (32, 32), bias: bool = False,
                 activation: str = "tanh", scaling: str = "range"):
        super().__init__()
        self.scaling = check_scaling(scaling)
        sizes = [int(n_inputs), *(int(h) for h in hidden)]
        self.activation = get_activation(activation)
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=bias, dtype=torch.float64)
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.output = torch.nn.Linear(sizes[-1], 1, bias=bias, dtype=torch.float64)
        self.register_buffer("input_center", torch.zeros(n_inputs, dtype=torch.float64))
        self.register_buffer("input_halfwidth", torch.ones(n_inputs, dtype=torch.float64))
        self.register_buffer("energy_center", torch.zeros((), dtype=torch.float64))
        self.register_buffer("energy_halfwidth", torch.ones((), dtype=torch.float64))
        # not persistent: state dicts (and files) stay readable by code without them
        self.register_buffer("range_center", torch.zeros(n_inputs, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("range_halfwidth", torch.ones(n_inputs, dtype=torch.float64),
                             persistent=False)

    def set_ranges(self, input_min: np.ndarray, input_max: np.ndarray, energy_min: float,
                   energy_max: float, input_mean: np.ndarray | None = None,
                   input_std: np.ndarray | None = None) -> None:
        """Scaling from the training fingerprints' per-component min, max (K,) and, for
        ``"standard"`` scaling, mean and standard deviation (K,); energies per atom in eV."""
        low = torch.as_tensor(input_min, dtype=torch.float64)
        high = torch.as_tensor(input_max, dtype=torch.float64)
        half = (high - low) / 2
        # a component constant in training: unit scale, so it maps onto 0 (warns beyond +-1)
        varies = half > 0
        self.range_halfwidth.copy_(torch.where(varies, half, torch.ones_like(half)))
        self.range_center.copy_((high + low) / 2)
        if self.scaling == "range":
            self.input_halfwidth.copy_(self.range_halfwidth)
            self.input_center.copy_(self.range_center)
        else:
            if input_mean is None or input_std is None:
                raise ValueError("standard scaling needs the training mean and standard "
                                 "deviation of every fingerprint component")
            std = torch.as_tensor(input_std, dtype=torch.float64)
            # constant components (min == max) get unit scale whatever rounding left in std
            self.input_halfwidth.copy_(torch.where(varies, std, torch.ones_like(std)))
            self.input_center.copy_(torch.as_tensor(input_mean, dtype=torch.float64))
        span = (energy_max - energy_min) / 2
        self.energy_halfwidth.fill_(span if span > 0 else 1.0)
        self.energy_center.fill_((energy_max + energy_min) / 2)

    def scaled(self, phi: torch.Tensor) -> torch.Tensor:
        """The network's inputs h (n, K) of fingerprints ``phi`` (n, K)."""
        return (phi - self.input_center) / self.input_halfwidth

    def range_scaled(self, phi: torch.Tensor) -> torch.Tensor:
        """Fingerprints (n, K) on the scale that maps the training range onto [-1, 1]."""
        return (phi - self.range_center) / self.range_halfwidth

    def forward(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Atomic energies (n,) and their gradients d eps / d Phi (n, K) in physical units."""
        h = self.scaled(phi)
        slopes = []
        for layer in self.layers:
            h, slope = self.activation(layer(h))
            slopes.append(slope)
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

    ``descriptor``: settings from :meth:`Descriptor.to_dict` (or the descriptor itself);
    ``scaling``: ``"range"`` or ``"standard"`` inputs (see :class:`ElementNetwork`). After
    :meth:`fit` (or :meth:`load`) ``history`` holds the learning curve and ``metadata`` the
    training settings, data checksums and code version.
    """

    def __init__(
        self,
        elements: Sequence[str],
        descriptor: dict[str, Any] | Descriptor,
        hidden: Sequence[int] = (32, 32),
        bias: bool = False,
        activation: str = "tanh",
        scaling: str = "range",
    ):
        super().__init__()
        if not isinstance(descriptor, Mapping):
            descriptor = descriptor.to_dict()
        self.elements = tuple(str(e) for e in elements)
        self.descriptor_config = dict(descriptor)
        self.hidden = tuple(int(h) for h in hidden)
        self.bias = bool(bias)
        self.activation = str(activation)
        self.scaling = check_scaling(scaling)
        n_inputs = int(descriptor["n_invariants"])
        self.networks = torch.nn.ModuleDict({
            e: ElementNetwork(n_inputs, self.hidden, self.bias, self.activation, self.scaling)
            for e in self.elements
        })
        self.history: dict[str, list] = {}
        self.metadata: dict[str, Any] = {}
        self._descriptor: Descriptor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_data(cls, data: FingerprintSet, hidden: Sequence[int] = (32, 32), bias: bool = False,
                 seed: int | None = 0, activation: str = "tanh",
                 scaling: str = "range") -> "Potential":
        """A potential whose input and output scaling come from ``data`` (the fitted
        training part)."""
        if seed is not None:
            torch.manual_seed(seed)
        potential = cls(data.elements, data.descriptor, hidden, bias, activation, scaling)
        potential.set_ranges(data)
        return potential

    def set_ranges(self, data: FingerprintSet) -> None:
        """Input and output scaling from the fingerprints and energies found in ``data``."""
        per_atom = data.energy / data.n_atoms
        for index, element in enumerate(self.elements):
            atoms = data.species == index
            if not atoms.any():
                raise ValueError(f"no {element} atom in the data to set its scaling from")
            with_element = np.unique(data.structure[atoms])
            values = data.values[atoms]
            moments = ({"input_mean": values.mean(0), "input_std": values.std(0)}
                       if self.scaling == "standard" else {})
            self.networks[element].set_ranges(
                values.min(0), values.max(0),
                float(np.nanmin(per_atom[with_element])), float(np.nanmax(per_atom[with_element])),
                **moments,
            )

    @property
    def descriptor(self) -> Descriptor | DescriptorStack:
        if self._descriptor is None:
            self._descriptor = Descriptor.from_dict(self.descriptor_config)
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
               single_species: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _predict(self, data: TensorSet, forces: bool = True):
        """Total energies (M,), forces (N, 3) or None, atomic energies (N,)."""
        eps, grad = self.atomic(data.values, data.species, data.data.elements, data.single_species)
        energies = torch.zeros(data.n_structures, dtype=eps.dtype).index_add(0, data.structure, eps)
        if not forces:
            return energies, None, eps
        gradient = position_gradient(grad, data.derivatives_np, data.centers_np, data.neighbors_np)
        return energies, -gradient, eps

    def predict_set(self, data: FingerprintSet, forces: bool = True) -> dict[str, np.ndarray]:
        """Predicted ``energy`` (M,), ``forces`` (N, 3) and ``atomic`` energies for a set."""
        tensors = TensorSet(data, need_forces=forces)
        with torch.no_grad():
            energies, force, eps = self._predict(tensors, forces)
        out = {"energy": energies.numpy(), "atomic": eps.numpy()}
        if forces:
            out["forces"] = force.numpy()
        return out

    def extrapolation(self, values: np.ndarray, species: np.ndarray, elements: Sequence[str],
                      tolerance: float = 1e-6) -> np.ndarray:
        """Per atom: how far its fingerprint leaves the training range, in units where that
        range is [-1, 1] (whatever the input scaling); 0 inside. values (N, K), species (N,)
        index into ``elements``."""
        mapping = self._check_elements(elements)
        excess = np.zeros(len(values))
        for index in np.unique(species):
            mask = species == index
            network = self.networks[self.elements[mapping[int(index)]]]
            with torch.no_grad():
                scaled = network.range_scaled(
                    torch.as_tensor(values[mask], dtype=torch.float64)).numpy()
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

    def evaluate(self, atoms: Atoms, forces: bool = True,
                 warn: bool = True) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Energy (eV), atomic energies (N,) and forces (N, 3) or None for one structure."""
        environments = Environments.of(atoms, self, forces)
        eps, grad = environments.atomic(self)
        energy = float(eps.sum())
        if warn:
            warn_if_extrapolating(self, environments, energy)
        return energy, eps, environments.forces(grad)

    def calculator(self, **kwargs) -> "MiladCalculator":
        """This potential as an ASE calculator (``kwargs`` go to :class:`MiladCalculator`)."""
        from .calculator import MiladCalculator

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
        ``energy_term`` selects the energy term of the loss (see
        :func:`~milad.potential.training.loss_and_metrics`); ``weight_decay`` adds the L2
        penalty weight_decay / 2 * sum of squared weights to the training loss (not to the
        validation loss that early stopping watches).
        Returns (and stores in ``self.history``) the per-epoch learning curve.
        """
        from .training import train

        return train(
            self, training, validation, alpha=alpha, energy_term=energy_term,
            weight_decay=weight_decay, optimizer=optimizer, max_epochs=max_epochs,
            patience=patience, learning_rate=learning_rate, batch_size=batch_size,
            lbfgs_iterations=lbfgs_iterations, lbfgs_history=lbfgs_history,
            max_seconds=max_seconds, seed=seed, log=log, log_every=log_every,
        )

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> None:
        """Weights, scaling, descriptor settings, history, metadata and code version."""
        write_model_file({**file_header(FORMAT, FORMAT_VERSION), **self._content()}, path)

    def _content(self) -> dict[str, Any]:
        """What defines this potential, as a file (or an ensemble's file) stores it."""
        return {
            "elements": list(self.elements),
            "hidden": list(self.hidden),
            "bias": self.bias,
            "activation": self.activation,
            "scaling": self.scaling,
            "descriptor": json.dumps(self.descriptor_config),
            "state_dict": self.state_dict(),
            "input_ranges": {e: [n.range_center, n.range_halfwidth]
                             for e, n in self.networks.items()},
            "history": json.dumps(self.history, default=float),
            "metadata": json.dumps(self.metadata, default=str),
        }

    @classmethod
    def load(cls, path: str | Path) -> "Potential":
        """A saved potential (files from before activations and input scalings were
        selectable load as tanh and range)."""
        return cls._from_record(read_model(path), path)

    @classmethod
    def _from_record(cls, record: Mapping[str, Any], path: str | Path) -> "Potential":
        """The potential of a file's ``record`` (read from ``path``)."""
        check_format(record, FORMAT, path)
        return cls._from_content(record, saved_with(record))

    @classmethod
    def _from_content(cls, record: Mapping[str, Any], saved: dict[str, Any]) -> "Potential":
        potential = cls(record["elements"], json.loads(record["descriptor"]), record["hidden"],
                        record["bias"], record.get("activation", "tanh"),
                        record.get("scaling", "range"))
        potential.load_state_dict(record["state_dict"])
        ranges = record.get("input_ranges")
        for element, network in potential.networks.items():
            # files without ranges scale by range: the input scaling is the training range
            center, halfwidth = ranges[element] if ranges is not None else (
                network.input_center, network.input_halfwidth)
            network.range_center.copy_(center)
            network.range_halfwidth.copy_(halfwidth)
        potential.history = json.loads(record["history"])
        potential.metadata = json.loads(record["metadata"])
        potential.metadata.setdefault("saved_with", saved)
        return potential


def file_header(format: str, version: int) -> dict[str, Any]:
    """The first entries of a model file: its format and the code that wrote it."""
    from .. import __version__
    from ..provenance import git_commit

    return {"format": format, "format_version": version, "milad_version": __version__,
            "git": git_commit(), "torch_version": str(torch.__version__)}


def saved_with(record: Mapping[str, Any]) -> dict[str, Any]:
    """The code versions recorded in a model file's header."""
    return {k: record[k] for k in ("milad_version", "git", "torch_version")}


def read_model(path: str | Path) -> dict[str, Any]:
    """The record of a verified model file (:func:`~milad.potential.modelfile.read_model_file`);
    DataUnavailableError for a stand-in of :func:`~milad.potential.unavailable.mark_unavailable`."""
    record = read_model_file(path)
    if record["format"] == UNAVAILABLE:
        raise DataUnavailableError(f"{path}: no potential ({record['reason']})")
    return record


def check_format(record: Mapping[str, Any], format: str, path: str | Path) -> None:
    """A ValueError unless ``record`` is of ``format`` (its version was checked on reading)."""
    if record["format"] != format:
        raise ValueError(f"{path} is not a saved {format} (its format is {record['format']!r})")


@dataclass
class Environments:
    """The atom-centred environments of one structure as a potential reads them.

    elements: the structure's element symbols, sorted; species (N,) index into them;
    values (N, K) fingerprints; local: the fingerprints with their pair derivatives (for
    forces), or None.
    """

    elements: list[str]
    species: np.ndarray
    values: np.ndarray
    local: LocalFingerprints | None

    @classmethod
    def of(cls, atoms: Atoms, model: Potential | Ensemble, forces: bool) -> "Environments":
        """The environments of ``atoms`` under ``model``'s descriptor (with the derivatives
        when ``forces``); a ValueError for elements the model has no network for."""
        symbols = atoms.get_chemical_symbols()
        elements = sorted(set(symbols))
        model._check_elements(elements)
        species = np.array([elements.index(s) for s in symbols])
        local = model.descriptor.local_derivatives(atoms, jacobian=False) if forces else None
        values = local.values if forces else model.descriptor.local(atoms)
        return cls(elements, species, values, local)

    def atomic(self, potential: Potential) -> tuple[np.ndarray, np.ndarray]:
        """Atomic energies (N,) eV and d eps / d Phi (N, K) of one potential."""
        with torch.no_grad():
            eps, grad = potential.atomic(
                torch.as_tensor(self.values, dtype=torch.float64), torch.as_tensor(self.species),
                self.elements, single_species=len(self.elements) == 1,
            )
        return eps.numpy(), grad.numpy()

    def forces(self, gradient: np.ndarray) -> np.ndarray | None:
        """Forces (N, 3) eV/A for dE/dPhi ``gradient`` (N, K); None without derivatives."""
        return None if self.local is None else self.local.forces(gradient)


def warn_if_extrapolating(model: Potential | Ensemble, environments: Environments,
                          energy: float) -> None:
    """An :class:`ExtrapolationWarning` (pointing at the caller of ``evaluate``) when a
    fingerprint or the energy per atom (``energy`` in eV) leaves the training range."""
    excess = model.extrapolation(environments.values, environments.species,
                                 environments.elements)
    n_atoms = len(environments.values)
    energy_excess = model.energy_extrapolation(energy / n_atoms, environments.elements)
    if excess.any() or energy_excess > 0:
        warnings.warn(
            f"extrapolating: {int((excess > 0).sum())} of {n_atoms} atoms have "
            f"fingerprints outside the training range (up to {excess.max():.3g} beyond "
            f"+-1 in scaled units); energy per atom beyond the training range by "
            f"{energy_excess:.3g} (scaled units)",
            ExtrapolationWarning,
            stacklevel=3,
        )
