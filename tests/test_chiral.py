"""The opt-in chiral fingerprint: parity-odd invariants appended to the default ones."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import write

from geometry import random_rotation
from milad.cli import main
from milad.data import read_qm9_subset
from milad.descriptor import Descriptor
from milad.invariants import (
    InvariantSet,
    generate_chiral_invariants,
    load_chiral_invariants,
    load_invariants,
    shipped_invariant_path,
    shipped_orders,
)
from milad.invariants.reduce import jacobian_rank
from milad.invariants.zernike import candidate_invariants, chiral_point_groups, chiral_test_densities
from milad.moments import geometric_moments, zernike_indices, zernike_moments

SPECIES = "H,C,N,O,F,Cl,Br"
#: the shipped chiral sets: 5 invariants for n_max = 7, 9 for n_max = 10
SIZES = {7: 5, 10: 9}


@pytest.fixture(scope="module")
def descriptors():
    """(default, chiral) descriptors with species weights."""
    return Descriptor(n_max=7, cutoff=5.0, species=SPECIES), Descriptor(n_max=7, cutoff=5.0, species=SPECIES, chiral=True)


def bromochlorofluoromethane(mirror=False):
    """CHFClBr (the textbook chiral molecule), built by hand: bond lengths in Angstrom."""
    directions = np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]]) / np.sqrt(3)
    positions = np.vstack([[0, 0, 0], directions * np.array([[1.09], [1.35], [1.77], [1.94]])])
    if mirror:
        positions[:, 0] *= -1
    return Atoms("CHFClBr", positions=positions)


def qm9_molecule(smiles):
    """A molecule of the shipped QM9 subset; CC(N)C#N and CCC(C)O have a stereocentre."""
    return next(a for a in read_qm9_subset() if a.info["smiles"] == smiles)


def odd_moments(n_max, positions, weights):
    return zernike_moments(geometric_moments(positions, weights, n_max), n_max)


def odd_part_and_bound(descriptor, atoms):
    """The odd part of a molecule's fingerprint and a bound on its rounding errors: each odd
    invariant's sum over terms of |coefficient x moments| with every moment as large as the
    largest (the moments that vanish by symmetry are themselves rounding-sized)."""
    centred = descriptor.molecule_positions(atoms) / descriptor.cutoff
    moments = odd_moments(descriptor.n_max, centred, descriptor.weights_of(atoms.get_chemical_symbols()))
    odd = descriptor.invariants.imaginary
    bound = descriptor.invariants.bound(np.full(len(moments), np.abs(moments).max()))
    return descriptor.molecule(atoms)[odd], bound[odd]


# ------------------------------------------------------------------ the odd invariants, exactly
def test_odd_candidates_are_parity_odd_and_purely_imaginary():
    """Every odd candidate has sum l odd, and its coefficients are antisymmetric under m -> -m,
    so that conj(I) = -I for a real density (Omega^-m = (-1)^m conj(Omega^m), sum m = 0):
    exactly, on the rational coefficients. The even candidates are symmetric (real)."""
    n_max = 5
    index = zernike_indices(n_max)
    row = {tuple(int(v) for v in r): k for k, r in enumerate(index)}
    flip = np.array([row[(int(n), int(l), -int(m))] for n, l, m in index])
    for parity in (0, 1):
        candidates = candidate_invariants(n_max, parity=parity)
        assert candidates
        for candidate in candidates:
            ls = [int(index[k][1]) for k in next(iter(candidate["terms"]))]
            assert sum(ls) % 2 == parity, candidate["label"]
            assert candidate["label"].startswith("Im ") == bool(parity)
            sign = -1 if parity else 1
            for monomial, coefficient in candidate["terms"].items():
                mirrored = tuple(sorted(flip[list(monomial)]))
                assert candidate["terms"][mirrored] == sign * coefficient, candidate["label"]
    # pairs couple two l of the parity of n: the odd candidates are all nu = 3
    assert {c["degree"] for c in candidate_invariants(n_max, parity=1)} == {3}


@pytest.mark.parametrize("n_max", [7, 10])
def test_shipped_chiral_sets_are_small_independent_and_regenerated_exactly(n_max):
    odd = load_chiral_invariants(n_max)
    assert len(odd) == SIZES[n_max] and odd.chiral and odd.imaginary.all()
    assert set(odd.degrees.tolist()) == {3}
    assert all(label.startswith("Im ") for label in odd.labels)
    # algebraically independent among themselves, at fresh points of the prime field
    for seed in (101, 202):
        assert jacobian_rank(odd.exact_polynomials(), odd.n_moments, seed=seed) == len(odd)
    # the generator reproduces the shipped file: labels, exact coefficients, metadata
    fresh = generate_chiral_invariants(n_max, 0, seed=0)
    assert fresh.labels == odd.labels
    assert fresh.exact_polynomials() == odd.exact_polynomials()
    assert fresh.metadata == odd.metadata
    assert set(odd.metadata["detects"]) | set(odd.metadata["undetected"]) == set(chiral_point_groups(n_max))
    assert set(odd.metadata["detects"].values()) == set(odd.labels)  # each kept for a group


def test_odd_invariants_cannot_raise_the_rank_of_the_complete_even_set():
    """Why the odd set is certified among itself: the even set already has the largest rank a
    rotation-invariant map can have (moments - 3), so the odd invariants, being rotation
    invariant, add no rank (their squares are functions of the even ones); what they add is
    the sign that tells mirror images apart."""
    combined = load_invariants(7, chiral=True)
    assert len(combined) == 117 + SIZES[7]
    assert jacobian_rank(combined.exact_polynomials(), combined.n_moments, seed=7) == 117


def test_shipped_files_and_format():
    assert shipped_orders() == shipped_orders(chiral=True) == [7, 10]
    for n_max in (7, 10):
        with gzip.open(shipped_invariant_path(n_max), "rt") as handle:
            assert json.load(handle)["format_version"] == 1  # the default sets are unchanged
        with gzip.open(shipped_invariant_path(n_max, chiral=True), "rt") as handle:
            data = json.load(handle)
        assert data["format_version"] == 2
        assert all(item["imaginary"] is True for item in data["invariants"])
    with pytest.raises(ValueError, match="no chiral invariant set ships"):
        load_chiral_invariants(8)


def test_chiral_set_round_trips_through_a_file(tmp_path):
    combined = load_invariants(7, chiral=True)
    path = tmp_path / "chiral.json.gz"
    combined.save(path)
    loaded = InvariantSet.load(path)
    assert loaded.labels == combined.labels
    assert loaded.imaginary.tolist() == combined.imaginary.tolist() == [False] * 117 + [True] * 5
    moments = odd_moments(7, *chiral_test_densities(7)["C1"])
    np.testing.assert_array_equal(loaded.evaluate(moments), combined.evaluate(moments))
    with pytest.raises(ValueError, match="cannot append"):
        load_invariants(7).appended(load_chiral_invariants(10))


# ------------------------------------------------------------------ the chiral fingerprint
def test_default_fingerprint_is_unchanged_bitwise(descriptors):
    default, chiral = descriptors
    assert not default.chiral and default.n_chiral == 0 and len(default) == 117
    assert chiral.chiral and chiral.n_chiral == SIZES[7] and len(chiral) == 117 + SIZES[7]
    assert chiral.invariants.labels[:117] == default.invariants.labels
    frames = [bromochlorofluoromethane(), molecule("CH3OH"), qm9_molecule("CC(N)C#N")]
    np.testing.assert_array_equal(chiral.molecules(frames)[:, :117], default.molecules(frames))
    cluster = qm9_molecule("CCC(C)O")
    plain, odd = default.local_derivatives(cluster), chiral.local_derivatives(cluster)
    np.testing.assert_array_equal(odd.values[:, :117], plain.values)
    np.testing.assert_array_equal(odd.derivatives[:, :117], plain.derivatives)


@pytest.mark.parametrize("smiles", ["CC(N)C#N", "CCC(C)O"])
def test_invariant_to_proper_rotations_permutations_translations(descriptors, smiles):
    _, chiral = descriptors
    atoms = qm9_molecule(smiles)
    reference = chiral.molecule(atoms)
    assert np.all(np.abs(reference) > 0)
    rng = np.random.default_rng(5)
    for _ in range(3):
        moved = atoms[rng.permutation(len(atoms))]
        moved.positions = moved.positions @ random_rotation(rng).T + rng.normal(size=3)
        # every component to 1e-10 of its own size
        np.testing.assert_allclose(chiral.molecule(moved), reference, rtol=1e-10, atol=0)


@pytest.mark.parametrize("smiles", ["CC(N)C#N", "CCC(C)O"])
def test_odd_part_changes_sign_under_improper_rotations(descriptors, smiles):
    _, chiral = descriptors
    atoms = qm9_molecule(smiles)
    reference = chiral.molecule(atoms)
    sign = np.where(chiral.invariants.imaginary, -1.0, 1.0)
    assert sign[:117].min() == 1 and sign[117:].max() == -1
    rng = np.random.default_rng(6)
    improper = [random_rotation(rng, proper=False) for _ in range(2)] + [np.diag([1.0, -1.0, 1.0]), -np.eye(3)]
    for matrix in improper:
        assert np.linalg.det(matrix) == pytest.approx(-1)
        mirrored = atoms.copy()
        mirrored.positions = mirrored.positions @ matrix.T
        np.testing.assert_allclose(chiral.molecule(mirrored), sign * reference, rtol=1e-10, atol=0)


def test_enantiomers_of_bromochlorofluoromethane(descriptors):
    default, chiral = descriptors
    left, right = chiral.molecule(bromochlorofluoromethane()), chiral.molecule(bromochlorofluoromethane(True))
    np.testing.assert_array_equal(default.molecule(bromochlorofluoromethane()), left[:117])
    np.testing.assert_allclose(left[:117], right[:117], rtol=1e-10, atol=0)  # same default fingerprint
    np.testing.assert_allclose(left[117:], -right[117:], rtol=1e-10, atol=0)
    odd, bound = odd_part_and_bound(chiral, bromochlorofluoromethane())
    assert np.all(np.abs(odd) > 1e-12 * bound), odd / bound  # measured: above 4e-11


@pytest.mark.parametrize("name", ["H2O", "NH3", "CH4", "CH3OH", "CH3CH2OH", "C6H6", "CH3CHO"])
def test_odd_part_vanishes_for_achiral_molecules(descriptors, name):
    """Molecules with a mirror plane (or an S_n axis): the odd part is zero to rounding
    (measured: below 1e-21 of the bound, against above 4e-11 for CHFClBr)."""
    _, chiral = descriptors
    atoms = molecule(name)
    atoms.positions = atoms.positions @ random_rotation(np.random.default_rng(3)).T
    odd, bound = odd_part_and_bound(chiral, atoms)
    assert np.all(np.abs(odd) <= 1e-16 * bound), odd / bound


@pytest.mark.parametrize("n_max", [7, 10])
def test_chiral_point_groups_detected_as_recorded(n_max):
    """The symmetric test densities of the groups the set 'detects' have a non-zero odd part of
    opposite sign for their mirror image; those of the undetected groups a zero one."""
    odd = load_chiral_invariants(n_max)
    for name, (positions, weights) in chiral_test_densities(n_max).items():
        moments = odd_moments(n_max, positions, weights)
        values = odd.evaluate(moments)
        rms = np.sqrt(np.mean(np.abs(moments) ** 2))
        scale = odd.bound(np.full(len(moments), rms))
        if name in odd.metadata["detects"]:
            first = odd.labels.index(odd.metadata["detects"][name])
            assert abs(values[first]) > 1e-10 * scale[first], name
            mirrored = odd.evaluate(odd_moments(n_max, positions * [1, 1, -1], weights))
            np.testing.assert_allclose(mirrored, -values, rtol=0, atol=1e-10 * abs(values[first]))
        else:
            assert np.all(np.abs(values) < 1e-15 * scale), name


# ------------------------------------------------------------------ derivatives
# (environment derivatives, delta and gaussian: tests/test_descriptor.py, chiral=True)
def test_local_derivatives_match_finite_differences(descriptors):
    _, chiral = descriptors
    atoms = bromochlorofluoromethane()
    local = chiral.local_derivatives(atoms)
    values = chiral.local(atoms)
    np.testing.assert_allclose(local.values, values, rtol=1e-12, atol=1e-14 * np.abs(values).max())
    jacobian = local.position_jacobian()
    odd = chiral.invariants.imaginary
    step = 1e-5
    for atom, axis in ((0, 0), (2, 1), (4, 2)):
        shifted = [atoms.copy(), atoms.copy()]
        shifted[0].positions[atom, axis] += step
        shifted[1].positions[atom, axis] -= step
        numeric = (chiral.local(shifted[0]) - chiral.local(shifted[1])) / (2 * step)
        np.testing.assert_allclose(jacobian[:, odd, atom, axis], numeric[:, odd], rtol=0,
                                   atol=1e-7 * np.abs(numeric[:, odd]).max())


def test_moment_space_jacobian_of_the_odd_part():
    """InvariantSet.jacobian (the decoder's path, through real moment coordinates) against
    central differences."""
    from milad.decode.space import moment_space

    space = moment_space(load_invariants(7, chiral=True))
    positions, weights = chiral_test_densities(7)["C1"]
    x = space.moments(positions, weights)
    phi, d_x = space.phi_and_jacobian(x)
    odd = space.invariants.imaginary
    np.testing.assert_allclose(phi, space.phi(x), rtol=0, atol=0)
    step = 1e-6 * np.eye(len(x))
    numeric = np.stack([space.phi(x + e) - space.phi(x - e) for e in step], axis=1) / 2e-6
    np.testing.assert_allclose(d_x[odd], numeric[odd], rtol=0, atol=1e-7 * np.abs(numeric[odd]).max())


# ------------------------------------------------------------------ settings and command line
def test_settings_round_trip_and_errors(descriptors):
    default, chiral = descriptors
    assert "chiral" not in default.to_dict()  # default settings unchanged
    record = json.loads(json.dumps(chiral.to_dict()))
    assert record["chiral"] is True and record["n_invariants"] == 117 + SIZES[7]
    rebuilt = Descriptor.from_dict(record)
    assert rebuilt.chiral and rebuilt.to_dict() == record
    assert "chiral=True" in repr(chiral) and "chiral" not in repr(default)
    # a chiral set passed explicitly makes a chiral descriptor; chiral=True on it again is an error
    assert Descriptor(n_max=7, invariants=chiral.invariants).chiral
    with pytest.raises(ValueError, match="already holds parity-odd"):
        Descriptor(n_max=7, invariants=chiral.invariants, chiral=True)
    with pytest.raises(ValueError, match="no invariant set ships for n_max=5"):
        Descriptor(n_max=5, chiral=True)


def test_cli_fingerprint_and_invariants_chiral(tmp_path, capsys):
    structures = tmp_path / "molecules.extxyz"
    write(structures, [bromochlorofluoromethane(), bromochlorofluoromethane(True), molecule("CH3OH")])
    plain, chiral = tmp_path / "plain.npy", tmp_path / "chiral.npy"
    assert main(["fingerprint", str(structures), "-o", str(plain), "--species", SPECIES]) == 0
    assert main(["fingerprint", str(structures), "-o", str(chiral), "--species", SPECIES, "--chiral"]) == 0
    assert f"3 molecules x {117 + SIZES[7]} invariants (the last {SIZES[7]} parity-odd)" in capsys.readouterr().out
    plain, chiral = np.load(plain), np.load(chiral)
    np.testing.assert_array_equal(chiral[:, :117], plain)
    np.testing.assert_allclose(chiral[0, 117:], -chiral[1, 117:], rtol=1e-10, atol=0)
    # methanol has a mirror plane: its parity-odd invariants vanish, to rounding (exact zeros
    # on some CPUs, about 1e-20 on others)
    assert np.abs(chiral[2, 117:]).max() <= 1e-12 * np.abs(chiral[0, 117:]).max()
    assert main(["invariants", "--n-max", "10", "--chiral", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == SIZES[10] and summary["undetected"] == ["C10", "D10", "I"]
    assert main(["invariants", "--chiral"]) == 0
    assert re.search(r"parity-odd \(chiral\) invariants to n_max=7: 5", capsys.readouterr().out)


# ------------------------------------------------------------------ decoding the right hand
# The default fingerprint is the same for a molecule and its mirror image, so a decode of it
# returns either hand (measured: the mirror image in 3 of 4 seeds for CHFClBr); with the odd
# part the fit must reproduce its sign too. Species as weights ("single" mode): the comparison
# is then species-aware, and the mirror image lies 1.24 A away.
def decoded_hand(descriptor, atoms, decoded):
    """(RMSD to the original, RMSD to its mirror image) of a decode, Angstrom: the decoded
    atoms compared with the centred original and with the centred original mirrored."""
    from milad.compare import compare

    reference = atoms.copy()
    reference.positions = descriptor.molecule_positions(atoms)
    result = compare(reference, decoded, species=True)
    return result.rmsd, result.mirror_rmsd


def test_chiral_decode_returns_the_original_enantiomer(descriptors):
    """The mirror image (right hand) of CHFClBr, decoded from its chiral fingerprint with
    species (one attempt, about 6 s), comes back as itself, not as the other hand; the CLI test
    below decodes the other hand."""
    from milad.decode import decode

    _, chiral = descriptors
    right = bromochlorofluoromethane(mirror=True)
    atoms, result = decode(chiral.molecule(right), chiral, len(right), seed=0, attempts=1)
    assert result.success and result.fingerprint_rmsd < 1e-6
    assert atoms.get_chemical_formula() == right.get_chemical_formula()
    to_original, to_mirror = decoded_hand(chiral, right, atoms)
    assert to_original < 0.01 and to_mirror > 1.0, (to_original, to_mirror)
    # its odd part has the sign of the original's
    np.testing.assert_allclose(chiral.molecule(atoms)[117:], chiral.molecule(right)[117:],
                               rtol=1e-6, atol=0)


def test_cli_decode_chiral(tmp_path, capsys):
    """`milad decode --chiral` reads fingerprints of `milad fingerprint --chiral` and returns
    the original enantiomer; a chiral fingerprint without --chiral is named as one."""
    from ase.io import read

    chiral = Descriptor(n_max=7, species=SPECIES, chiral=True)
    structures, fingerprints = tmp_path / "left.extxyz", tmp_path / "left.npy"
    output = tmp_path / "decoded.extxyz"
    left = bromochlorofluoromethane()
    write(structures, left)
    assert main(["fingerprint", str(structures), "-o", str(fingerprints), "--species", SPECIES,
                 "--chiral"]) == 0
    capsys.readouterr()
    assert main(["decode", str(fingerprints), "-o", str(output), "--species", SPECIES,
                 "--n-atoms", "5", "--attempts", "1"]) == 2
    assert "a fingerprint written with --chiral? pass --chiral" in capsys.readouterr().err
    assert main(["decode", str(fingerprints), "-o", str(output), "--species", SPECIES,
                 "--n-atoms", "5", "--attempts", "1", "--chiral"]) == 0
    assert "1/1 decoded below 1e-06" in capsys.readouterr().out
    to_original, to_mirror = decoded_hand(chiral, left, read(output))
    assert to_original < 0.01 and to_mirror > 1.0, (to_original, to_mirror)


def test_decoder_turns_the_other_enantiomer_into_the_target(descriptors):
    """SearchProblem.hand: with a chiral fingerprint a fit that reached the mirror image is
    reflected (no continuous fit can get from one hand to the other); with the default one the
    positions are left as they are."""
    from milad.decode.search import SearchProblem

    default, chiral = descriptors
    atoms = bromochlorofluoromethane()
    weights = chiral.weights_of(atoms.get_chemical_symbols())
    positions = chiral.molecule_positions(atoms) / chiral.cutoff
    mirrored = positions * [-1.0, 1.0, 1.0]
    for descriptor, expected in ((chiral, positions), (default, mirrored)):
        problem = SearchProblem(descriptor, descriptor.molecule(atoms), len(atoms), None, False,
                                None, 1e-6, 1e-5, 2, 31, {})
        np.testing.assert_array_equal(problem.hand(mirrored, weights), expected)
        np.testing.assert_array_equal(problem.hand(positions, weights), positions)


# ------------------------------------------------------------------ the chirality target's steps
def test_stereocentres_from_3d_and_the_hand_of_a_decode():
    """RDKit perceives CHFClBr's stereocentre from the 3D structure, with opposite CIP labels
    for the two hands, and none for methanol; hand_of names the enantiomer a decode is."""
    from milad.chirality import hand_of, mirror_image, stereocentres

    left = stereocentres(bromochlorofluoromethane())
    right = stereocentres(mirror_image(bromochlorofluoromethane()))
    assert [i for i, _ in left] == [i for i, _ in right] == [0]
    assert {left[0][1], right[0][1]} == {"R", "S"}
    assert stereocentres(molecule("CH3OH")) == []
    assert stereocentres(qm9_molecule("CC(N)C#N")) == [(1, "R")]
    assert [hand_of(*pair) for pair in ((1e-8, 0.5), (0.5, 0.0), (1e-3, 2e-3), (0.3, 0.2))] == [
        "original", "mirror", "either", "neither"]


def test_chirality_table_notes_and_criterion():
    """The criterion: every successful decode of the chiral fingerprint is the original."""
    import pandas as pd

    from milad.chirality import chirality_markdown, chirality_notes, chirality_summary, chirality_table

    def record(fingerprint, attempt, success, rmsd, mirror_rmsd):
        return {"qm9_id": 64, "n_atoms": 11, "formula": "C3H6N2", "smiles": "CC(N)C#N",
                "stereocentres": "C1 R", "fingerprint": fingerprint, "attempt": attempt,
                "success": success, "fingerprint_rmsd": 1e-15 if success else 1e-3,
                "rmsd": rmsd, "mirror_rmsd": mirror_rmsd,
                "hand": "original" if rmsd < 0.01 else "mirror" if mirror_rmsd < 0.01 else "neither"}

    table = chirality_table([record("default", 1, True, 0.57, 0.0), record("chiral", 2, False, 0.5, 0.3),
                             record("chiral", 1, True, 0.0, 0.57)])
    assert list(zip(table["fingerprint"], table["attempt"])) == [("chiral", 1), ("chiral", 2), ("default", 1)]
    summary = chirality_summary(table)
    assert summary["chiral"]["criterion"] is True and summary["default"]["mirror"] == 1
    molecules = pd.DataFrame({"qm9_id": [64, 1], "chiral": [True, False]})
    notes = chirality_notes(molecules, table, 1e-6, 0.01)
    assert "1 of the 2 molecules" in notes[0] and "holds" in notes[-1]
    markdown = chirality_markdown(molecules.assign(n_atoms=11, formula="", smiles="", stereocentres="C1 R"),
                                  table, notes, [], "title")
    assert "| 64 | 1 | yes |" in markdown
    mirrored = chirality_table([record("chiral", 1, True, 0.57, 0.0)])
    assert chirality_summary(mirrored)["chiral"]["criterion"] is False
    assert "FAILS" in chirality_notes(molecules, mirrored, 1e-6, 0.01)[-1]
