"""A trained potential in ASE: calculator and NVE dynamics.

:class:`MiladCalculator` gives energies (eV), atomic energies and forces (eV/A) of any
structure whose elements the potential (a :class:`~milad.potential.model.Potential` or an
:class:`~milad.potential.ensemble.Ensemble`) knows, counting extrapolations instead of warning
at every step; :func:`run_nve` runs velocity-Verlet molecular dynamics with it and measures how
well the total energy is conserved, the usual test that forces are the energy's gradient.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .ensemble import Ensemble, load_model
from .model import ExtrapolationWarning, Potential

__all__ = ["MiladCalculator", "run_nve"]


class MiladCalculator(Calculator):
    """ASE calculator of a :class:`Potential` or an :class:`Ensemble`: energy, atomic
    energies and forces.

    ``potential`` may be a model or the path of a saved one. With an ensemble the results
    also hold ``"energy_std"`` (eV), the members' energy spread; a single potential has no
    such result. The first extrapolating structure raises an :class:`ExtrapolationWarning`;
    every one is counted in ``n_extrapolations`` (set ``warn=False`` to skip the check).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]

    def __init__(self, potential: Potential | Ensemble | str | Path, warn: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(potential, (Potential, Ensemble)):
            potential = load_model(potential)
        self.potential = potential
        if isinstance(potential, Ensemble):
            self.implemented_properties = [*self.implemented_properties, "energy_std"]
        self.warn = warn
        self.n_extrapolations = 0

    def check_state(self, atoms, tol=1e-15):
        """The properties that changed since the last calculation, compared exactly (ASE
        compares within ``tol`` at a cost like that of the fingerprints of a small cell, and
        an MD step asks several times). A change below ``tol`` that ASE would ignore only
        means one more calculation."""
        previous = self.atoms
        if previous is None:
            return super().check_state(atoms, tol=tol)
        checked = set(all_changes) - set(self.ignored_changes)
        changes = [name for name, old, new in (("cell", previous.cell.array, atoms.cell.array),
                                               ("pbc", previous.pbc, atoms.pbc))
                   if name in checked and not np.array_equal(old, new)]
        old_arrays, new_arrays = previous.arrays, atoms.arrays
        changes += sorted(checked & (set(old_arrays) ^ set(new_arrays)))
        changes += [name for name in sorted(checked & set(old_arrays) & set(new_arrays))
                    if not np.array_equal(old_arrays[name], new_arrays[name])]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_forces = "forces" in properties
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExtrapolationWarning)
            energy, eps, forces, *spread = self.potential.evaluate(
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
        if spread:
            self.results["energy_std"] = spread[0]


def run_nve(
    atoms: Atoms,
    calculator: Calculator,
    steps: int,
    timestep_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
    interval: int = 1,
) -> dict[str, Any]:
    """Velocity-Verlet NVE run from Maxwell-Boltzmann velocities at ``temperature_K``
    (``calculator``: any ASE calculator, e.g. a :class:`MiladCalculator` of a potential or an
    ensemble).

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
