"""The model: one feed-forward network per element, E = sum of atomic energies.

Each :class:`ElementNetwork` maps an atom's fingerprint Phi_i (K,) to its atomic energy eps_i
(eV); :class:`Potential` holds one per element, sums them per structure, and returns forces
(eV/A) from the chain rule F_j = -sum_i dE/dPhi_i . dPhi_i/dr_j: the networks write dE/dPhi out
in their forward pass (with the registered derivative of their activation, see
:mod:`milad.potential.activations`) and :mod:`milad.potential.forces` contracts it with the pair
derivatives. As in the paper, linear layers have no bias by default: inputs and outputs are
instead rescaled into (-1, 1) from the ranges seen in the training set, so a prediction that
leaves these ranges is an extrapolation and raises an :class:`ExtrapolationWarning`.

A potential saves to and loads from one ``.pt`` file (weights, scaling, descriptor settings,
learning curve, metadata); :meth:`Potential.fit` trains it (:mod:`milad.potential.training`)
and :meth:`Potential.calculator` wraps it for ASE (:mod:`milad.potential.calculator`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from ..data import DataUnavailableError
from ..descriptor import Descriptor
from .activations import get_activation
from .dataset import FingerprintSet, TensorSet
from .forces import position_gradient
from .unavailable import UNAVAILABLE

if TYPE_CHECKING:
    from .calculator import MiladCalculator

__all__ = ["ElementNetwork", "ExtrapolationWarning", "Potential"]

FORMAT = "milad-potential"
FORMAT_VERSION = 1


class ExtrapolationWarning(UserWarning):
    """A fingerprint component or an energy per atom outside the range seen in training."""


class ElementNetwork(torch.nn.Module):
    """Feed-forward network of one element with input/output rescaling into (-1, 1).

    Hidden layers apply the registered ``activation`` (tanh by default). Buffers:
    ``input_center``/``input_halfwidth`` (K,) map the training range of every fingerprint
    component onto [-1, 1]; ``energy_center``/``energy_halfwidth`` map the network output y
    onto the atomic energy eps = center + halfwidth * y (from the training range of the energy
    per atom).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int] = (32, 32), bias: bool = False,
                 activation: str = "tanh"):
        super().__init__()
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

    def set_ranges(self, input_min: np.ndarray, input_max: np.ndarray, energy_min: float,
                   energy_max: float) -> None:
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

    ``descriptor``: settings from :meth:`Descriptor.to_dict` (or a :class:`Descriptor`).
    After :meth:`fit` (or :meth:`load`) ``history`` holds the learning curve and
    ``metadata`` the training settings, data checksums and code version.
    """

    def __init__(
        self,
        elements: Sequence[str],
        descriptor: dict[str, Any] | Descriptor,
        hidden: Sequence[int] = (32, 32),
        bias: bool = False,
        activation: str = "tanh",
    ):
        super().__init__()
        if isinstance(descriptor, Descriptor):
            descriptor = descriptor.to_dict()
        self.elements = tuple(str(e) for e in elements)
        self.descriptor_config = dict(descriptor)
        self.hidden = tuple(int(h) for h in hidden)
        self.bias = bool(bias)
        self.activation = str(activation)
        n_inputs = int(descriptor["n_invariants"])
        self.networks = torch.nn.ModuleDict({
            e: ElementNetwork(n_inputs, self.hidden, self.bias, self.activation)
            for e in self.elements
        })
        self.history: dict[str, list] = {}
        self.metadata: dict[str, Any] = {}
        self._descriptor: Descriptor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_data(cls, data: FingerprintSet, hidden: Sequence[int] = (32, 32), bias: bool = False,
                 seed: int | None = 0, activation: str = "tanh") -> "Potential":
        """A potential whose scaling ranges come from ``data`` (the fitted training part)."""
        if seed is not None:
            torch.manual_seed(seed)
        potential = cls(data.elements, data.descriptor, hidden, bias, activation)
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

    def evaluate(self, atoms: Atoms, forces: bool = True,
                 warn: bool = True) -> tuple[float, np.ndarray, np.ndarray | None]:
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
        from .. import __version__
        from ..provenance import git_commit

        record = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "milad_version": __version__,
            "git": git_commit(),
            "torch_version": str(torch.__version__),
            "elements": list(self.elements),
            "hidden": list(self.hidden),
            "bias": self.bias,
            "activation": self.activation,
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
        """A saved potential (files from before activations were selectable load as tanh)."""
        record = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(record, dict) and record.get("format") == UNAVAILABLE:
            raise DataUnavailableError(f"{path}: no potential ({record['reason']})")
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved milad potential")
        if record["format_version"] > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {record['format_version']}, newer than "
                             f"this milad reads ({FORMAT_VERSION})")
        potential = cls(record["elements"], json.loads(record["descriptor"]),
                        record["hidden"], record["bias"], record.get("activation", "tanh"))
        potential.load_state_dict(record["state_dict"])
        potential.history = json.loads(record["history"])
        potential.metadata = json.loads(record["metadata"])
        potential.metadata.setdefault("saved_with", {
            "milad_version": record["milad_version"], "git": record["git"],
            "torch_version": record["torch_version"],
        })
        return potential
