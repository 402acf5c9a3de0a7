"""Fingerprints: invariances, derivatives against finite differences, and input errors."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from scipy.spatial.transform import Rotation

from geometry import assert_invariant
from milad.descriptor import Descriptor, centre_on_miniball
from milad.features import SpeciesMap, cosine_cutoff
from milad.moments import geometric_moments

SPECIES = "H,C,N,O,F"


def relative_error(a, b):
    """How much two fingerprints differ, relative to the whole vector (for changes that must
    show; invariance is checked component by component, geometry.assert_invariant)."""
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.linalg.norm(b)


def random_orthogonal(seed, proper):
    matrix = Rotation.random(random_state=seed).as_matrix()
    return matrix if proper else -matrix


@pytest.fixture(scope="module")
def species_descriptor():
    return Descriptor(n_max=7, cutoff=5.0, species=SPECIES)


@pytest.fixture(scope="module")
def silicon():
    atoms = bulk("Si", "diamond", a=5.43) * (2, 2, 2)
    atoms.rattle(0.1, seed=3)
    return atoms


def random_molecule(seed, n_atoms=9):
    rng = np.random.default_rng(seed)
    symbols = rng.choice(list("HCNOF"), n_atoms)
    return Atoms(symbols=symbols, positions=rng.uniform(-2.0, 2.0, (n_atoms, 3)))


# ---------------------------------------------------------------------------- species and cutoff
def test_species_map_bin_centres_and_snapping():
    species = SpeciesMap.parse(SPECIES)
    np.testing.assert_allclose(species.weights, [1.1, 1.3, 1.5, 1.7, 1.9])
    np.testing.assert_allclose(species.weights_of(["O", "H"]), [1.7, 1.1])
    assert species.species_of([1.01, 1.19, 1.21, 1.55, 1.99, 2.0]) == ["H", "H", "C", "N", "F", "F"]
    with pytest.raises(KeyError, match="Cl"):
        species.weights_of(["H", "Cl"])
    with pytest.raises(ValueError, match="outside the species weight range"):
        species.species_of([3.0])
    with pytest.raises(ValueError, match="twice"):
        SpeciesMap(("H", "H"))


def test_cosine_cutoff_matches_eq37_and_its_derivative():
    r = np.linspace(0.0, 6.0, 61)
    value, derivative = cosine_cutoff(r, 5.0)
    expected = np.where(r <= 5.0, 0.5 * (np.cos(np.pi * r / 5.0) + 1), 0.0)
    np.testing.assert_allclose(value, expected, atol=1e-15)
    h = 1e-6
    numeric = (cosine_cutoff(r + h, 5.0)[0] - cosine_cutoff(r - h, 5.0)[0]) / (2 * h)
    inside = r < 4.99
    np.testing.assert_allclose(derivative[inside], numeric[inside], atol=1e-8)


# ---------------------------------------------------------------------------- molecules
@pytest.mark.parametrize("proper", [True, False])
@pytest.mark.parametrize("n_max", [7, 10])
def test_molecule_fingerprint_invariant_to_rotation_permutation_translation(n_max, proper):
    descriptor = Descriptor(n_max=n_max, cutoff=5.0, species=SPECIES)
    references, moved_fingerprints = [], []
    for molecule_seed in (1, 2, 3):
        atoms = random_molecule(molecule_seed)
        reference = descriptor.molecule(atoms)
        for seed in range(3):
            rng = np.random.default_rng(seed)
            moved = atoms[rng.permutation(len(atoms))]
            moved.positions = moved.positions @ random_orthogonal(seed, proper).T + rng.normal(size=3) * 10
            moved_fingerprints.append(descriptor.molecule(moved))
            references.append(reference)
    assert_invariant(moved_fingerprints, references, rtol=1e-10)


def test_molecules_batch_equals_single(species_descriptor):
    frames = [random_molecule(seed, n) for seed, n in [(0, 3), (1, 7), (2, 12)]]
    batch = species_descriptor.molecules(frames)
    single = np.array([species_descriptor.molecule(a) for a in frames])
    np.testing.assert_allclose(batch, single, rtol=1e-13, atol=1e-15)


def test_species_change_the_fingerprint(species_descriptor):
    atoms = molecule("CH3OH")
    swapped = atoms.copy()
    symbols = swapped.get_chemical_symbols()
    symbols[0], symbols[1] = symbols[1], symbols[0]
    swapped.set_chemical_symbols(symbols)
    assert relative_error(species_descriptor.molecule(swapped), species_descriptor.molecule(atoms)) > 1e-3


def test_centre_on_miniball_gives_smallest_sphere():
    points = np.array([[0.0, 0, 0], [2.0, 0, 0], [1.0, 0.3, 0]])
    centred, radius = centre_on_miniball(points)
    assert radius == pytest.approx(1.0)
    np.testing.assert_allclose(centred[0], [-1.0, 0, 0], atol=1e-12)


# ---------------------------------------------------------------------------- single environments
@pytest.mark.parametrize("chiral", [False, True], ids=["default", "chiral"])
@pytest.mark.parametrize("feature", ["delta", "gaussian"])
def test_environment_derivatives_match_finite_differences(feature, chiral):
    """Analytic derivatives against central differences; the parity-odd part of the chiral
    fingerprint (much smaller values) against its own scale."""
    descriptor = Descriptor(n_max=7, cutoff=3.0, feature=feature, sigma=0.3, chiral=chiral)
    parts = [~descriptor.invariants.imaginary, descriptor.invariants.imaginary][: 1 + chiral]
    rng = np.random.default_rng(7)
    positions = rng.uniform(-1.5, 1.5, (6, 3))
    weights = rng.uniform(1.0, 2.0, 6)
    phi, d_positions, d_weights = descriptor.environment_derivatives(positions, weights)
    np.testing.assert_allclose(phi, descriptor.environment(positions, weights), rtol=1e-12)

    def check(analytic, numeric):
        for part in parts:
            np.testing.assert_allclose(analytic[part], numeric[part], atol=1e-7 * np.abs(numeric[part]).max())

    h = 1e-6
    for atom, axis in [(0, 0), (3, 2), (5, 1)]:
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        check(d_positions[:, atom, axis],
              (descriptor.environment(plus, weights) - descriptor.environment(minus, weights)) / (2 * h))
    for atom in (1, 4):
        plus, minus = weights.copy(), weights.copy()
        plus[atom] += h
        minus[atom] -= h
        check(d_weights[:, atom],
              (descriptor.environment(positions, plus) - descriptor.environment(positions, minus)) / (2 * h))


# ---------------------------------------------------------------------------- atom-centred
@pytest.mark.parametrize("chiral", [False, True], ids=["default", "chiral"])
@pytest.mark.parametrize("proper", [True, False])
@pytest.mark.parametrize("n_max", [7, 10])
def test_local_fingerprints_invariant(silicon, n_max, proper, chiral):
    """Invariant to rotations, translations and permutations, except that the parity-odd part
    of the chiral fingerprint changes sign under improper rotations (each component to 1e-10
    of its own size: the rattled environments are chiral)."""
    descriptor = Descriptor(n_max=n_max, cutoff=4.7, chiral=chiral)
    odd = descriptor.invariants.imaginary
    reference = descriptor.local(silicon)  # (atoms, invariants)
    rotation = random_orthogonal(11, proper)
    rotated = silicon.copy()
    rotated.set_cell(silicon.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = silicon.positions @ rotation.T + [0.3, -1.2, 2.5]
    expected = reference * np.where(odd & (not proper), -1.0, 1.0)
    assert_invariant(descriptor.local(rotated), expected, rtol=1e-10)
    order = np.random.default_rng(0).permutation(len(silicon))
    assert_invariant(descriptor.local(silicon[order]), reference[order], rtol=1e-10)
    if chiral:
        assert np.abs(reference[:, odd]).min() > 1e-6 * np.abs(reference[:, odd]).max()


def test_local_fingerprints_of_supercell_repeat_the_cell(silicon):
    descriptor = Descriptor(n_max=7, cutoff=4.7)
    cell = descriptor.local(silicon)
    supercell = descriptor.local(silicon * (2, 1, 1))
    np.testing.assert_allclose(supercell, np.concatenate([cell, cell]), rtol=1e-10, atol=1e-12)


def test_local_fingerprints_of_a_finite_cluster_use_neighbours_within_the_cutoff():
    descriptor = Descriptor(n_max=7, cutoff=3.0)
    cluster = Atoms("Si3", positions=[[0, 0, 0], [2.0, 0, 0], [0, 5.0, 0]])
    values = descriptor.local(cluster)
    expected = descriptor.environment(np.array([[2.0, 0, 0]]), weights=cosine_cutoff(2.0, 3.0)[0][None])
    np.testing.assert_allclose(values[0], expected, rtol=1e-12, atol=1e-15)
    # the isolated atom sees an empty density: every invariant vanishes
    np.testing.assert_allclose(values[2], 0.0, atol=1e-15)


@pytest.mark.parametrize("feature", ["delta", "gaussian"])
def test_local_derivatives_match_finite_differences(feature):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.15, seed=5)
    atoms.set_chemical_symbols(["Si", "Ge"] * 4)
    descriptor = Descriptor(n_max=7, cutoff=4.0, feature=feature, sigma=0.4, species="Si,Ge")
    result = descriptor.local_derivatives(atoms)
    np.testing.assert_allclose(result.values, descriptor.local(atoms), rtol=1e-12, atol=1e-14)
    jacobian = result.position_jacobian()
    h = 1e-6
    for atom, axis in [(0, 0), (3, 1), (6, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        numeric = (descriptor.local(plus) - descriptor.local(minus)) / (2 * h)
        np.testing.assert_allclose(jacobian[:, :, atom, axis], numeric, atol=1e-7 * np.abs(numeric).max())


@pytest.mark.parametrize("chiral", [False, True], ids=["default", "chiral"])
@pytest.mark.parametrize("jacobian", [True, False], ids=["jacobian", "vector-jacobian"])
def test_forces_helper_is_minus_gradient_of_a_linear_energy(silicon, chiral, jacobian):
    """Through the stored pair derivatives and through the vector-Jacobian product that the
    calculator uses (half of each conjugate pair of terms), with and without the odd part."""
    descriptor = Descriptor(n_max=7, cutoff=4.0, chiral=chiral)
    coefficients = np.random.default_rng(2).normal(size=len(descriptor))

    def energy(atoms):
        return float(np.sum(descriptor.local(atoms) @ coefficients))

    result = descriptor.local_derivatives(silicon, jacobian=jacobian)
    forces = result.forces(np.tile(coefficients, (len(silicon), 1)))
    h = 1e-6
    for atom, axis in [(0, 2), (9, 0)]:
        plus, minus = silicon.copy(), silicon.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        numeric = -(energy(plus) - energy(minus)) / (2 * h)
        assert forces[atom, axis] == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    # translational invariance: the total force vanishes
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-9 * np.abs(forces).max())


@pytest.mark.parametrize("n_max", [7, 10])
def test_batched_invariants_and_cotangents_equal_one_at_a_time_to_the_bit(n_max):
    """Batches of complex moments take the blocked kernels (environments as vector lanes),
    single rows the per-row ones: both give the same floats, here over 300 environments (two
    full blocks and a partial one) and every term length of the set."""
    descriptor = Descriptor(n_max=n_max, cutoff=5.0)
    invariants, plan = descriptor.invariants, descriptor._chain_plan
    rng = np.random.default_rng(n_max)
    zernike = np.stack([
        descriptor._zernike(geometric_moments(rng.uniform(-2.8, 2.8, (12, 3)) / 5.0,
                                              rng.uniform(0.5, 1.5, 12), n_max))
        for _ in range(300)])
    cotangent = rng.normal(size=(300, len(invariants)))
    values = invariants.evaluate(zernike)
    gradient = invariants.chained_cotangent(zernike, cotangent, plan)
    for row in (0, 127, 128, 255, 256, 299):
        assert np.array_equal(values[row], invariants.evaluate(zernike[row]))
        assert np.array_equal(gradient[row],
                              invariants.chained_cotangent(zernike[row], cotangent[row], plan))


# ---------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors(species_descriptor):
    with pytest.raises(ValueError, match="outside the cutoff sphere"):
        Descriptor(cutoff=1.0).environment(np.array([[0.0, 0.0, 1.5]]))
    with pytest.raises(ValueError, match="NaN"):
        Descriptor().environment(np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        Descriptor().environment(np.zeros((3, 2)))
    with pytest.raises(KeyError, match="Cl"):
        species_descriptor.molecule(molecule("CH3Cl"))
    with pytest.raises(ValueError, match="larger than the cutoff"):
        Descriptor(cutoff=1.0).molecule(molecule("C6H6"))
    with pytest.raises(ValueError, match="unknown feature"):
        Descriptor(feature="slater")
    with pytest.raises(ValueError, match="sigma"):
        Descriptor(feature="gaussian")
    with pytest.raises(ValueError, match="no invariant set ships"):
        Descriptor(n_max=5)
    nan_atoms = molecule("H2O")
    nan_atoms.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        species_descriptor.molecule(nan_atoms)
    with pytest.raises(ValueError, match="NaN"):
        species_descriptor.local(nan_atoms)


def test_per_species_gaussian_widths():
    atoms = molecule("CH3OH")
    per_species = Descriptor(feature="gaussian", sigma={"C": 0.4, "O": 0.3, "H": 0.2}, species=SPECIES)
    positions = per_species.molecule_positions(atoms)
    weights = per_species.weights_of(atoms.get_chemical_symbols())
    widths = per_species.widths_of(atoms.get_chemical_symbols())
    explicit = Descriptor(feature="gaussian", sigma=1.0, species=SPECIES).environment(positions, weights, widths)
    np.testing.assert_allclose(per_species.molecule(atoms), explicit, rtol=1e-12, atol=1e-15)
    # widths matter
    uniform = Descriptor(feature="gaussian", sigma=0.3, species=SPECIES).molecule(atoms)
    assert relative_error(uniform, explicit) > 1e-4
    with pytest.raises(KeyError, match="N"):
        per_species.molecule(molecule("NH3"))
    with pytest.raises(ValueError, match="per-atom sigmas"):
        per_species.environment(positions)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_neighbor_pairs_match_ase(pbc, monkeypatch):
    from ase.neighborlist import neighbor_list

    import milad.descriptor as descriptor_module

    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 1)
    atoms.rattle(0.2, seed=4)
    atoms.positions += [0.0, 0.0, 9.0]  # outside the cell along z: must be wrapped
    atoms.pbc = pbc
    atoms.cell[1] *= 1.5  # not cubic

    def as_set(i, j, d):
        return sorted((int(a), int(b), *np.round(v, 9)) for a, b, v in zip(i, j, d))

    expected = as_set(*neighbor_list("ijD", atoms, 4.0))
    assert as_set(*descriptor_module.neighbor_pairs(atoms, 4.0)) == expected
    monkeypatch.setattr(descriptor_module, "_DIRECT_SEARCH_LIMIT", 0)  # force the ASE path
    assert as_set(*descriptor_module.neighbor_pairs(atoms, 4.0)) == expected


@pytest.mark.parametrize("settings", [
    {"n_max": 7, "cutoff": 5.0},
    {"n_max": 7, "cutoff": 4.5, "feature": "gaussian", "sigma": {"C": 0.4, "O": 0.3, "H": 0.2},
     "species": SPECIES},
    {"n_max": 7, "cutoff": 5.0, "feature": "gaussian", "sigma": 0.35, "species": SPECIES},
])
def test_settings_round_trip_through_json_and_detect_a_changed_invariant_set(settings):
    import json

    species = settings.get("species")
    original = Descriptor(n_max=settings["n_max"], cutoff=settings["cutoff"],
                          feature=settings.get("feature", "delta"), sigma=settings.get("sigma"),
                          species=species)
    record = json.loads(json.dumps(original.to_dict()))
    rebuilt = Descriptor.from_dict(record)
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.species == original.species and rebuilt.sigma == original.sigma
    atoms = molecule("CH3OH")  # atom-centred: molecule() would add miniball's randomness
    atoms.positions += 0.05 * np.random.default_rng(1).normal(size=atoms.positions.shape)
    assert np.array_equal(rebuilt.local(atoms), original.local(atoms))
    with pytest.raises(ValueError, match="hash mismatch"):
        Descriptor.from_dict({**record, "invariants_sha256": "0" * 64})


def test_descriptor_stack_concatenates_values_and_derivatives():
    from ase.build import bulk

    from milad.descriptor import DescriptorStack

    inner, outer = Descriptor(n_max=7, cutoff=3.0), Descriptor(n_max=7, cutoff=4.7, feature="gaussian", sigma=0.4)
    stack = Descriptor.from_dict(DescriptorStack([inner, outer]).to_dict())
    assert isinstance(stack, DescriptorStack) and len(stack) == len(inner) + len(outer)
    assert stack.cutoff == 4.7
    silicon = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    silicon.rattle(0.05, seed=3)
    values = stack.local(silicon)
    np.testing.assert_array_equal(values, np.hstack([inner.local(silicon), outer.local(silicon)]))
    local = stack.local_derivatives(silicon)
    np.testing.assert_allclose(local.values, values, rtol=1e-12, atol=1e-14)
    jacobian = local.position_jacobian()
    step = 1e-5
    for atom, axis in ((0, 0), (3, 2)):
        shifted = [silicon.copy(), silicon.copy()]
        shifted[0].positions[atom, axis] += step
        shifted[1].positions[atom, axis] -= step
        numeric = (stack.local(shifted[0]) - stack.local(shifted[1])) / (2 * step)
        np.testing.assert_allclose(jacobian[:, :, atom, axis], numeric, atol=1e-7 * np.abs(jacobian).max())
    with pytest.raises(ValueError, match="invariants"):
        Descriptor.from_dict({**stack.to_dict(), "n_invariants": 5})
