"""Fingerprints and their position derivatives agree with values pinned from milad before the
speed work of issue 14 (commit 776fa38): a silicon cell with delta features, a two-species
cell, Gaussian features, and a whole molecule with weight derivatives.

The pinned file holds the structures themselves, every fingerprint, the derivatives of a few
pairs per structure, the forces of a fixed linear energy (they contract every pair) and each
invariant's largest derivative. A component agrees when it is within 1e-12 of its own size,
or, for the few components that are sums cancelling to almost nothing, within 1e-13 of that
invariant's largest value (fingerprints: over the structure's environments) or largest
derivative: the rounding of the sums themselves, which differs between CPUs (a small
fingerprint component of the Si-Ge cell differs by 3e-11 of itself, 1e-14 of its invariant's
largest value, between two x86-64 machines with the same package versions).

Regenerate (only on purpose, with the code whose numbers are to be pinned):
``python tests/test_pinned_fingerprints.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from milad.descriptor import Descriptor

PINNED = Path(__file__).parent / "data" / "pinned_fingerprints.npz"
PAIRS = [0, 37, 71, 107]  # the pairs whose derivatives are stored
RELATIVE = 1e-12
CANCELLATION = 1e-13

CASES = {
    "si_delta": dict(n_max=7, cutoff=4.7),
    "sige_species": dict(n_max=7, cutoff=5.0, species="Si,Ge"),
    "si_gauss": dict(n_max=7, cutoff=4.0, feature="gaussian", sigma=0.4),
}
STRUCTURE = {"si_delta": "si", "sige_species": "sige", "si_gauss": "si"}


def _structures() -> dict[str, Atoms]:
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.1, seed=1)
    sige = bulk("Si", "diamond", a=5.5, cubic=True)
    sige.rattle(0.15, seed=2)
    symbols = sige.get_chemical_symbols()
    symbols[1] = symbols[5] = "Ge"
    sige.set_chemical_symbols(symbols)
    return {"si": si, "sige": sige}


def _energy_gradient(n_atoms: int, n_inv: int) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n_atoms, n_inv))


def _pinned_forces(derivatives, centers, neighbors, gradient) -> np.ndarray:
    """-dE/dr of E = sum gradient * Phi, written out independently of milad."""
    per_pair = np.einsum("pk,pkc->pc", gradient[centers], derivatives)
    out = np.zeros((len(gradient), 3))
    np.add.at(out, neighbors, per_pair)
    np.add.at(out, centers, -per_pair)
    return -out


def compute(structures: dict[str, Atoms]) -> dict[str, np.ndarray]:
    """Everything the pinned file holds, computed by the milad on the path."""
    out: dict[str, np.ndarray] = {}
    for name, settings in CASES.items():
        atoms = structures[STRUCTURE[name]]
        descriptor = Descriptor(**settings)
        local = descriptor.local_derivatives(atoms)
        derivatives = np.asarray(local.derivatives)
        gradient = _energy_gradient(*local.values.shape)
        out[f"{name}_values"] = local.values
        out[f"{name}_local"] = descriptor.local(atoms)
        out[f"{name}_pairs"] = np.stack([local.centers[PAIRS], local.neighbors[PAIRS]])
        out[f"{name}_derivatives"] = derivatives[PAIRS]
        out[f"{name}_scale"] = np.abs(derivatives).max(axis=(0, 2))
        out[f"{name}_forces"] = _pinned_forces(derivatives, local.centers, local.neighbors,
                                               gradient)
    ethanol = structures["ethanol"]
    descriptor = Descriptor(n_max=7, cutoff=5.0, species="H,C,N,O,F")
    weights = descriptor.weights_of(ethanol.get_chemical_symbols())
    phi, d_positions, d_weights = descriptor.environment_derivatives(ethanol.positions, weights)
    out["ethanol_molecule"] = descriptor.molecules([ethanol], centre=False)[0]
    out["ethanol_values"] = phi
    out["ethanol_d_positions"] = d_positions
    out["ethanol_d_weights"] = d_weights
    return out


def _save_structures(structures: dict[str, Atoms]) -> dict[str, np.ndarray]:
    out = {}
    for name, atoms in structures.items():
        out[f"atoms_{name}_positions"] = atoms.positions
        out[f"atoms_{name}_cell"] = atoms.cell.array
        out[f"atoms_{name}_pbc"] = atoms.pbc
        out[f"atoms_{name}_numbers"] = atoms.numbers
    return out


def _load_structures(pinned) -> dict[str, Atoms]:
    names = {key.split("_")[1] for key in pinned if key.startswith("atoms_")}
    return {name: Atoms(numbers=pinned[f"atoms_{name}_numbers"],
                        positions=pinned[f"atoms_{name}_positions"],
                        cell=pinned[f"atoms_{name}_cell"], pbc=pinned[f"atoms_{name}_pbc"])
            for name in names}


@pytest.fixture(scope="module")
def pinned():
    with np.load(PINNED) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def computed(pinned):
    return compute(_load_structures(pinned))


def _assert_close(actual, expected, floor=0.0, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    allowed = RELATIVE * np.abs(expected) + floor
    bad = np.abs(actual - expected) > allowed
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} component(s) differ from the pinned values; worst "
        f"relative difference {np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-300)):.3g}")


def _cancellation_floor(values: np.ndarray) -> np.ndarray:
    """``CANCELLATION`` times each invariant's largest value over the environments."""
    return CANCELLATION * np.abs(values).max(axis=0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_fingerprints_match_pinned_values(pinned, computed, case):
    for kind in ("values", "local"):
        expected = pinned[f"{case}_{kind}"]
        _assert_close(computed[f"{case}_{kind}"], expected, _cancellation_floor(expected), what=kind)


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_derivatives_and_forces_match_pinned_values(pinned, computed, case):
    np.testing.assert_array_equal(computed[f"{case}_pairs"], pinned[f"{case}_pairs"])
    scale = pinned[f"{case}_scale"]
    _assert_close(computed[f"{case}_scale"], scale, what="largest derivatives")
    _assert_close(computed[f"{case}_derivatives"], pinned[f"{case}_derivatives"],
                  CANCELLATION * scale[None, :, None], what="pair derivatives")
    forces = pinned[f"{case}_forces"]
    _assert_close(computed[f"{case}_forces"], forces, CANCELLATION * np.abs(forces).max(),
                  what="forces")


def test_forces_by_vector_jacobian_product_match_pinned_forces(pinned):
    """What a calculator does: forces without forming the pair derivatives."""
    structures = _load_structures(pinned)
    for case, settings in CASES.items():
        local = Descriptor(**settings).local_derivatives(structures[STRUCTURE[case]],
                                                         jacobian=False)
        gradient = _energy_gradient(*local.values.shape)
        forces = pinned[f"{case}_forces"]
        _assert_close(local.forces(gradient), forces, CANCELLATION * np.abs(forces).max(),
                      what=f"{case} forces")
        # these values are summed as Descriptor.local sums them
        expected = pinned[f"{case}_local"]
        _assert_close(local.values, expected, _cancellation_floor(expected), what=f"{case} values")


def test_molecule_fingerprint_and_derivatives_match_pinned_values(pinned, computed):
    for key in ("ethanol_molecule", "ethanol_values"):
        _assert_close(computed[key], pinned[key], what=key)
    for key in ("ethanol_d_positions", "ethanol_d_weights"):
        scale = np.abs(pinned[key]).reshape(len(pinned[key]), -1).max(axis=1)
        floor = CANCELLATION * scale.reshape(-1, *[1] * (pinned[key].ndim - 1))
        _assert_close(computed[key], pinned[key], floor, what=key)


if __name__ == "__main__":
    structures = _structures()
    ethanol = molecule("CH3CH2OH")
    ethanol.positions = Descriptor(n_max=7, cutoff=5.0).molecule_positions(ethanol)
    structures["ethanol"] = ethanol
    PINNED.parent.mkdir(exist_ok=True)
    np.savez_compressed(PINNED, **_save_structures(structures), **compute(structures))
    print(f"wrote {PINNED} ({PINNED.stat().st_size} bytes)")
