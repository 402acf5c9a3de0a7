"""Committees of potentials: the mean prediction of several networks and their spread.

An :class:`Ensemble` holds N trained :class:`~milad.potential.model.Potential` members of the
same elements, descriptor and architecture (typically the same data fitted from different
seeds, :func:`~milad.potential.training.train_model`). It predicts the members' mean energy,
atomic energies and forces, and reports the standard deviation of the members' energies as an
uncertainty. Evaluating a structure computes the descriptor and its derivatives once for all
members; since forces are linear in dE/dPhi, the mean force is one contraction of the mean
gradient. An ensemble saves to one file (format ``"milad-ensemble"``); :func:`load_model` reads
either kind of model file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from ase import Atoms

from .dataset import FingerprintSet, TensorSet
from .model import (
    Environments,
    Potential,
    check_format,
    file_header,
    read_model,
    saved_with,
    warn_if_extrapolating,
)
from .modelfile import READABLE_FORMATS, write_model_file

if TYPE_CHECKING:
    from ..descriptor import Descriptor, DescriptorStack
    from .calculator import MiladCalculator

__all__ = ["Ensemble", "load_model"]

ENSEMBLE_FORMAT = "milad-ensemble"
ENSEMBLE_FORMAT_VERSION = 2  # 2: verified model files (see milad.potential.modelfile)
READABLE_FORMATS[ENSEMBLE_FORMAT] = ENSEMBLE_FORMAT_VERSION


class Ensemble:
    """The mean of N :class:`Potential` members; their standard deviation is the spread.

    Spreads are population standard deviations over the members (ddof 0). ``metadata`` is the
    ensemble's own (training settings, split); each member keeps its own ``metadata`` and
    ``history``, and :attr:`history` is the first member's learning curve.
    """

    def __init__(self, members: Sequence[Potential], metadata: dict[str, Any] | None = None):
        members = tuple(members)
        if not members:
            raise ValueError("an Ensemble needs at least one member")
        if not all(isinstance(m, Potential) for m in members):
            raise TypeError("the members of an Ensemble are Potential objects")
        first = members[0]
        for index, member in enumerate(members[1:], start=1):
            for name in ("elements", "descriptor_config", "hidden", "bias", "activation",
                         "scaling"):
                if getattr(member, name) != getattr(first, name):
                    raise ValueError(f"ensemble member {index} differs from member 0 in {name}: "
                                     f"{getattr(member, name)!r} != {getattr(first, name)!r}")
        self.members = members
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __len__(self) -> int:
        return len(self.members)

    # ------------------------------------------------------------------ shared settings
    @property
    def elements(self) -> tuple[str, ...]:
        return self.members[0].elements

    @property
    def descriptor_config(self) -> dict[str, Any]:
        return self.members[0].descriptor_config

    @property
    def descriptor(self) -> Descriptor | DescriptorStack:
        return self.members[0].descriptor

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.members[0].hidden

    @property
    def bias(self) -> bool:
        return self.members[0].bias

    @property
    def activation(self) -> str:
        return self.members[0].activation

    @property
    def scaling(self) -> str:
        return self.members[0].scaling

    @property
    def history(self) -> dict[str, list]:
        """The first member's learning curve."""
        return self.members[0].history

    def n_parameters(self) -> int:
        return sum(m.n_parameters() for m in self.members)

    def _check_elements(self, elements: Sequence[str]) -> list[int]:
        return self.members[0]._check_elements(elements)

    # ------------------------------------------------------------------ prediction
    def predict_set(self, data: FingerprintSet, forces: bool = True) -> dict[str, np.ndarray]:
        """Mean ``energy`` (M,) eV, ``forces`` (N, 3) eV/A and ``atomic`` energies (N,) of the
        members, and ``energy_std`` (M,) eV, the members' spread."""
        tensors = TensorSet(data, need_forces=forces)
        runs = []
        with torch.no_grad():
            for member in self.members:
                energies, force, eps = member._predict(tensors, forces)
                runs.append((energies.numpy(), eps.numpy(), force.numpy() if forces else None))
        energies = np.stack([run[0] for run in runs])
        out = {"energy": energies.mean(0), "atomic": np.stack([run[1] for run in runs]).mean(0),
               "energy_std": energies.std(0)}
        if forces:
            out["forces"] = np.stack([run[2] for run in runs]).mean(0)
        return out

    def extrapolation(self, values: np.ndarray, species: np.ndarray, elements: Sequence[str],
                      tolerance: float = 1e-6) -> np.ndarray:
        """Per atom (N,): the largest excess beyond any member's training range
        (:meth:`Potential.extrapolation`; members fitted to the same data share ranges)."""
        return np.max([m.extrapolation(values, species, elements, tolerance)
                       for m in self.members], axis=0)

    def energy_extrapolation(self, energy_per_atom: float, elements: Sequence[str]) -> float:
        """The largest :meth:`Potential.energy_extrapolation` over the members."""
        return max(m.energy_extrapolation(energy_per_atom, elements) for m in self.members)

    def evaluate(self, atoms: Atoms, forces: bool = True, warn: bool = True,
                 ) -> tuple[float, np.ndarray, np.ndarray | None, float]:
        """Mean energy (eV), atomic energies (N,), forces (N, 3) or None, and the members'
        energy spread (eV) for one structure; the descriptor is computed once."""
        environments = Environments.of(atoms, self, forces)
        runs = [environments.atomic(member) for member in self.members]
        member_energies = np.array([eps.sum() for eps, _ in runs])
        energy = float(member_energies.mean())
        if warn:
            warn_if_extrapolating(self, environments, energy)
        eps = np.mean([eps for eps, _ in runs], axis=0)
        gradient = np.mean([grad for _, grad in runs], axis=0)
        return energy, eps, environments.forces(gradient), float(member_energies.std())

    def calculator(self, **kwargs) -> "MiladCalculator":
        """This ensemble as an ASE calculator (``kwargs`` go to :class:`MiladCalculator`)."""
        from .calculator import MiladCalculator

        return MiladCalculator(self, **kwargs)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> None:
        """All members and the ensemble's metadata in one file, written atomically."""
        write_model_file({
            **file_header(ENSEMBLE_FORMAT, ENSEMBLE_FORMAT_VERSION),
            "members": [m._content() for m in self.members],
            "metadata": json.dumps(self.metadata, default=str),
        }, path)

    @classmethod
    def load(cls, path: str | Path) -> "Ensemble":
        """A saved ensemble."""
        return cls._from_record(read_model(path), path)

    @classmethod
    def _from_record(cls, record: dict[str, Any], path: str | Path) -> "Ensemble":
        """The ensemble of a file's ``record`` (read from ``path``)."""
        check_format(record, ENSEMBLE_FORMAT, path)
        saved = saved_with(record)
        ensemble = cls([Potential._from_content(m, saved) for m in record["members"]],
                       json.loads(record["metadata"]))
        ensemble.metadata.setdefault("saved_with", saved)
        return ensemble


def load_model(path: str | Path) -> Potential | Ensemble:
    """The potential or ensemble saved at ``path`` (DataUnavailableError for a stand-in)."""
    record = read_model(path)
    kind = Ensemble if record["format"] == ENSEMBLE_FORMAT else Potential
    return kind._from_record(record, path)
