"""Structure comparison with unknown atom order and orientation, and mirror images."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from milad.compare import best_assignment, compare, kabsch
from milad.data import read_qm9_subset


@pytest.fixture(scope="module")
def qm9():
    return read_qm9_subset()


def shuffled(atoms: Atoms, seed: int, mirror: bool = False) -> Atoms:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(atoms))
    rotation = Rotation.random(random_state=seed).as_matrix()
    positions = atoms.positions[order] @ rotation.T + rng.normal(size=3) * 4
    if mirror:
        positions = -positions
    return Atoms(np.array(atoms.get_chemical_symbols())[order], positions=positions)


def test_kabsch_recovers_a_rotation(rng):
    p = rng.normal(size=(7, 3))
    p -= p.mean(axis=0)
    rotation = Rotation.random(random_state=4).as_matrix()
    np.testing.assert_allclose(kabsch(p, p @ rotation.T), rotation, atol=1e-12)
    assert np.linalg.det(kabsch(p, -p)) == pytest.approx(1.0)  # proper rotations only


@pytest.mark.parametrize("index", [5, 17, 40, 76])
def test_rotated_permuted_copy_has_zero_rmsd(index, qm9):
    mol = qm9[index]
    result = compare(mol, shuffled(mol, index))
    assert result.rmsd < 1e-6 and result.matched == "original" and result.species_aware
    # the assignment maps every atom onto one of the same species
    other = shuffled(mol, index)
    assert [other[j].symbol for j in result.assignment] == mol.get_chemical_symbols()
    positions_only = compare(mol, Atoms(["X"] * len(mol), positions=other.positions))
    assert not positions_only.species_aware and positions_only.rmsd < 1e-6


def test_mirror_image_of_a_chiral_molecule(qm9):
    mol = qm9[76]  # C9H20 in a chiral conformation
    mirrored = compare(mol, shuffled(mol, 3, mirror=True))
    assert mirrored.matched == "mirror"
    assert mirrored.mirror_rmsd < 1e-6 and mirrored.rmsd > 0.1
    direct = compare(mol, shuffled(mol, 3))
    assert direct.matched == "original" and direct.rmsd < 1e-6 and direct.mirror_rmsd > 0.1
    assert direct.best == pytest.approx(direct.rmsd)
    assert set(direct.to_dict()) >= {"rmsd", "mirror_rmsd", "matched", "best"}


def test_achiral_molecule_matches_both(qm9):
    mol = qm9[5]  # methane
    result = compare(mol, shuffled(mol, 1, mirror=True))
    assert result.rmsd < 1e-4 and result.mirror_rmsd < 1e-6


def test_rdkit_and_kabsch_agree(qm9):
    mol = qm9[30]
    other = shuffled(mol, 8)
    other.positions += np.random.default_rng(0).normal(scale=0.05, size=other.positions.shape)
    with_rdkit = compare(mol, other)
    plain = compare(mol, other, use_rdkit=False)
    assert 0.01 < with_rdkit.rmsd < 0.2
    assert with_rdkit.rmsd == pytest.approx(plain.rmsd, rel=1e-6)


def test_best_assignment_of_point_sets(rng):
    p = rng.normal(size=(10, 3))
    p -= p.mean(axis=0)
    order = rng.permutation(10)
    q = (p @ Rotation.random(random_state=2).as_matrix().T)[order]
    perm, rmsd = best_assignment(p, q)
    assert rmsd < 1e-9
    np.testing.assert_array_equal(order[perm], np.arange(10))


def test_comparison_errors(qm9):
    with pytest.raises(ValueError, match="3 and 4 atoms"):
        compare(qm9[0], qm9[2])
    with pytest.raises(ValueError, match="same composition"):
        compare(qm9[0], Atoms("X3", positions=qm9[0].positions), species=True)
    broken = qm9[0].copy()
    broken.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compare(qm9[0], broken)
