"""Structure comparison with unknown atom order and orientation, and mirror images."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from milad.compare import (
    VALIDATION_COLUMNS,
    _random_copy,
    assigned_rmsd,
    best_assignment,
    compare,
    kabsch,
    point_group,
    rdkit_validation,
)
from milad.data import QM9_SPECIES, read_qm9_subset


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


# ----------------------------------------------------------------------------------------
# point groups (paper Fig. 7)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [("CH4", "Td"), ("NH3", "C3v"), ("H2O", "C2v"), ("C6H6", "D6h"), ("CO2", "Dinfh"),
     ("HCN", "Cinfv")],
)
def test_point_group_of_textbook_molecules(name, expected):
    from ase.build import molecule

    atoms = molecule(name)
    assert point_group(atoms) == expected
    # rotated, translated and relabelled: same group
    assert point_group(shuffled(atoms, 7)) == expected


def test_point_group_sees_broken_symmetry():
    from ase.build import molecule

    ammonia = molecule("NH3")
    ammonia.positions[1] += [0.2, 0.1, 0.05]  # one H moved: no symmetry left
    assert point_group(ammonia) == "C1"
    substituted = molecule("NH3")
    substituted.symbols[1] = "F"  # NH2F: only the mirror plane through N-F is left
    assert point_group(substituted) == "Cs"


def test_point_groups_of_the_subset(qm9):
    counts = Counter(point_group(m) for m in qm9)
    assert counts == {
        "Cs": 26, "C1": 19, "C2v": 7, "C3v": 6, "C2": 6, "C2h": 3, "Cinfv": 2, "Td": 2,
        "D3h": 2, "D3": 2, "Dinfh": 1, "D3d": 1,
    }
    assert point_group(qm9[5]) == "Td"  # methane


def test_point_group_errors(qm9):
    with pytest.raises(ValueError, match="empty"):
        point_group(Atoms())
    broken = qm9[3].copy()
    broken.positions[0, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        point_group(broken)
    with pytest.raises(ValueError, match="positive"):
        point_group(qm9[3], tolerance=0.0)
    assert point_group(Atoms("C", positions=[[1.0, 2.0, 3.0]])) == "Kh"


# ----------------------------------------------------------------------------------------
# SI validation experiment (SI Fig. 1)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(qm9):
    return qm9[:5]  # two 3-atom (H2O, HCN) and three 4-atom molecules


@pytest.fixture(scope="module")
def validation(small):
    return {s: rdkit_validation(small, n_trials=3, seed=1, species=s) for s in (False, True)}


def test_random_copy_is_a_rotated_relabelled_copy(qm9):
    from scipy.spatial.distance import pdist

    mol = qm9[30]
    copy = _random_copy(mol, np.random.default_rng(0))
    assert sorted(copy.get_chemical_symbols()) == sorted(mol.get_chemical_symbols())
    assert copy.get_chemical_symbols() != mol.get_chemical_symbols()  # labels permuted
    assert not np.allclose(np.sort(copy.positions, axis=0), np.sort(mol.positions, axis=0))
    np.testing.assert_allclose(np.sort(pdist(copy.positions)), np.sort(pdist(mol.positions)),
                               atol=1e-12)


@pytest.mark.parametrize("species", [False, True])
def test_rdkit_validation_rows(validation, small, species):
    table = validation[species]
    assert list(table.columns) == list(VALIDATION_COLUMNS)
    copies, pairs = table[table["kind"] == "self"], table[table["kind"] == "pair"]
    assert len(copies) == 3 * len(small) and len(pairs) == 1 + 3  # C(2,2) + C(3,2) pairs
    assert (table["species"] == species).all()
    ids = [int(m.info["qm9_id"]) for m in small]
    assert sorted(copies["qm9_id"].unique()) == sorted(ids)
    assert (copies["qm9_id"] == copies["other_id"]).all()
    assert sorted(copies["trial"].unique()) == [0, 1, 2]
    assert (pairs["qm9_id"] != pairs["other_id"]).all() and (pairs["trial"] == 0).all()
    sizes = {int(m.info["qm9_id"]): len(m) for m in small}
    assert (pairs["qm9_id"].map(sizes) == pairs["other_id"].map(sizes)).all()
    assert (table["n_atoms"] == table["qm9_id"].map(sizes)).all()
    # RDKit's AlignMol RMSD is the square root of a difference of large sums, so identical
    # structures give up to a few 1e-6 A (at most 6e-6 A over the whole subset), not 0
    assert copies["rmsd"].max() < 1e-5
    assert copies["fingerprint_rmsd"].max() < 1e-10
    assert pairs["rmsd"].min() > 0.1 and pairs["fingerprint_rmsd"].min() > 1e-3
    # species_aware: positions-only never; with species, copies always, pairs only when
    # the compositions agree
    assert copies["species_aware"].all() == species
    if not species:
        assert not table["species_aware"].any()


def test_rdkit_validation_fingerprints_use_the_species(validation, small):
    """The two settings compare the same structures, but fingerprints weighted by species."""
    plain, weighted = validation[False], validation[True]
    pairs = plain["kind"] == "pair"
    assert not np.allclose(plain.loc[pairs, "fingerprint_rmsd"],
                           weighted.loc[pairs, "fingerprint_rmsd"])
    from milad.descriptor import Descriptor

    first = pairs.idxmax()
    a, b = (next(m for m in small if m.info["qm9_id"] == plain.loc[first, k])
            for k in ("qm9_id", "other_id"))
    d = Descriptor(n_max=7, cutoff=5.0, species=QM9_SPECIES)
    expected = np.sqrt(np.mean((d.molecule(a) - d.molecule(b)) ** 2))
    assert weighted.loc[first, "fingerprint_rmsd"] == pytest.approx(expected, rel=1e-12)


def test_random_copies_are_seeded(qm9):
    mol = qm9[40]
    one, two, other = (_random_copy(mol, np.random.default_rng(s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(one.positions, two.positions)
    assert not np.allclose(one.positions, other.positions)
    a = rdkit_validation(qm9[:2], n_trials=2, seed=3, species=True, use_rdkit=False)
    b = rdkit_validation(qm9[:2], n_trials=2, seed=3, species=True, use_rdkit=False)
    np.testing.assert_allclose(a["rmsd"], b["rmsd"], rtol=0, atol=1e-12)
    keys = ["kind", "qm9_id", "other_id", "trial"]
    assert a[keys].equals(b[keys])


def test_rdkit_validation_errors(small):
    from milad.descriptor import Descriptor

    with pytest.raises(ValueError, match="at least one molecule"):
        rdkit_validation([], species=False)
    with pytest.raises(ValueError, match="n_trials"):
        rdkit_validation(small, n_trials=-1, species=False)
    with pytest.raises(ValueError, match="species map"):
        rdkit_validation(small, species=True, descriptor=Descriptor())
    with pytest.raises(ValueError, match="distinct qm9_id"):
        rdkit_validation([small[0], small[0]], species=False)
    with pytest.raises(TypeError):
        rdkit_validation(small)  # species must be given


def test_assigned_rmsd_matches_atoms_without_rotating():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(6, 3))
    assert assigned_rmsd(p, p[rng.permutation(6)]) == 0.0
    moved = p + [0.0, 0.0, 0.3]  # a shift is not undone: every atom is 0.3 away
    assert assigned_rmsd(moved, p[::-1]) == pytest.approx(0.3)
    rotated = p @ Rotation.from_euler("z", 90, degrees=True).as_matrix().T
    assert assigned_rmsd(rotated, p) > 0.1  # nor is a rotation
    with pytest.raises(ValueError, match="shape"):
        assigned_rmsd(p, p[:5])
