"""The decoder: moments from invariants, atoms from moments, round trips, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from milad.compare import compare
from milad.data import read_qm9_subset
from milad.decode import (
    SEARCH_EFFORT,
    SPECIES_MODES,
    RepulsionTerm,
    atoms_from_moments,
    count_atoms,
    decode,
    moment_space,
    moments_from_invariants,
    peak_find,
)
from milad.decode.loss import WALL, Target, fit_atoms, position_penalty
from milad.decode.search import SearchProblem, species_by_enumeration
from milad.descriptor import Descriptor
from milad.moments import geometric_moments, zernike_moments
from milad.qm9 import descriptors

SPECIES = "H,C,N,O,F"


@pytest.fixture(scope="module")
def plain():
    return Descriptor(n_max=7, cutoff=5.0)


@pytest.fixture(scope="module")
def with_species():
    return Descriptor(n_max=7, cutoff=5.0, species=SPECIES)


@pytest.fixture(scope="module")
def qm9():
    return read_qm9_subset()


def centred(atoms: Atoms, descriptor: Descriptor) -> Atoms:
    out = atoms.copy()
    out.positions = descriptor.molecule_positions(atoms)
    return out


# ------------------------------------------------------------------ building blocks
def test_moment_space_matches_the_encoder(plain, rng):
    space = moment_space(plain.invariants)
    assert space.n_params == 120 and space.n_moments == 120
    x = rng.normal(size=space.n_params)
    np.testing.assert_allclose(space.omega(x), space.A @ x, atol=1e-15)
    # the compiled omega gives the floats (and signs of zeros) of the numpy expression, batched
    batch = rng.normal(size=(2, 3, space.n_params))
    batch[0, 1, ::5] = 0.0
    numpy_omega = space._c1 * batch[..., space._p1] + space._c2 * batch[..., space._p2]
    assert space.omega(batch).shape == (2, 3, 120)
    assert space.omega(batch).tobytes() == numpy_omega.tobytes()
    positions = rng.uniform(-0.4, 0.4, size=(6, 3))
    weights = rng.uniform(1.0, 2.0, size=6)
    omega = zernike_moments(geometric_moments(positions, weights, 7), 7)
    np.testing.assert_allclose(space.omega(space.moments(positions, weights)), omega, atol=1e-12)
    phi = plain.environment(positions * plain.cutoff, weights)
    np.testing.assert_allclose(space.phi(space.moments(positions, weights)), phi, rtol=1e-10, atol=1e-14)


def test_invariant_and_moment_subsets_are_the_full_arrays_to_the_bit(plain, rng):
    """Algorithm 1 fits the invariants of l <= l' by the moments of l <= l': the rows and
    columns asked for are those of the full arrays, the same floats; a row the set lacks is an
    IndexError, not memory read past the end."""
    space, invariants = moment_space(plain.invariants), plain.invariants
    x = rng.normal(scale=0.3, size=space.n_params)
    phi, jacobian = space.phi_and_jacobian(x)
    rows = np.flatnonzero(space.invariant_l <= 4)
    params = np.flatnonzero(space.l <= 4)
    phi_rows, jacobian_rows = space.phi_and_jacobian(x, rows, params)
    assert np.array_equal(phi_rows, phi[rows])
    assert np.array_equal(jacobian_rows, jacobian[np.ix_(rows, params)])
    batch = np.stack([space.omega(rng.normal(scale=0.3, size=space.n_params)) for _ in range(9)])
    backwards = rows[::-1]
    assert np.array_equal(invariants.evaluate(batch, backwards), invariants.evaluate(batch)[:, backwards])
    assert np.array_equal(invariants.jacobian(batch, rows), invariants.jacobian(batch)[:, rows])
    for method in (invariants.evaluate, invariants.jacobian):
        with pytest.raises(IndexError, match="invariant row out of range"):
            method(batch, [0, len(invariants)])


def test_analytic_jacobians_match_finite_differences(plain, rng):
    space = moment_space(plain.invariants)
    x = rng.normal(scale=0.3, size=space.n_params)
    _, jacobian = space.phi_and_jacobian(x)
    step = 1e-6
    for p in rng.choice(space.n_params, size=8, replace=False):
        e = np.zeros(space.n_params)
        e[p] = step
        numeric = (space.phi(x + e) - space.phi(x - e)) / (2 * step)
        np.testing.assert_allclose(jacobian[:, p], numeric, rtol=1e-5, atol=1e-8)
    positions = rng.uniform(-0.3, 0.3, size=(4, 3))
    weights = rng.uniform(1.0, 2.0, size=4)  # not 1: the weights scale d x / d positions
    x, derivatives = space.moments_with_derivatives(positions, weights)
    d_positions, d_weights = derivatives()
    np.testing.assert_allclose(x, space.moments(positions, weights), rtol=1e-14, atol=1e-15)
    for atom, axis in ((2, 1), (0, 2)):
        shifted = positions.copy()
        shifted[atom, axis] += step
        back = positions.copy()
        back[atom, axis] -= step
        numeric = (space.moments(shifted, weights) - space.moments(back, weights)) / (2 * step)
        np.testing.assert_allclose(d_positions[:, atom, axis], numeric, rtol=1e-6, atol=1e-10)
    for atom in range(4):
        np.testing.assert_allclose(d_weights[:, atom], space.moments(positions, np.eye(4)[atom]),
                                   atol=1e-14)
    # a derivative not asked for is skipped; the others are the same floats
    for wrt_positions, wrt_weights in ((True, False), (False, True), (False, False)):
        partial = derivatives(wrt_positions, wrt_weights)
        for full, part, wanted in zip((d_positions, d_weights), partial,
                                      (wrt_positions, wrt_weights)):
            if wanted:
                np.testing.assert_array_equal(part, full)
            else:
                assert part is None


def test_repulsion_vanishes_smoothly_at_r_min():
    term = RepulsionTerm()
    assert (term.epsilon, term.sigma, term.power, term.r_min) == (0.1, 1.0, 2, 0.55)
    r = np.array([term.r_min - 1e-9, term.r_min, 0.6, 1.0])
    assert np.all(np.abs(term.energy(r)) < 1e-12)
    assert np.all(np.abs(term.derivative(r)) < 1e-6)
    assert term.energy(np.array([0.3]))[0] > 1.0
    assert np.all(np.diff(term.energy(np.linspace(0.2, 0.55, 20))) < 0)  # monotonic repulsion


def test_penalty_jacobian(rng):
    positions = rng.normal(scale=0.05, size=(6, 3))
    positions[0] *= 25  # outside the unit sphere: the wall acts
    values, jacobian = position_penalty(positions, RepulsionTerm(), 5.0)
    assert values[0] > 0 and np.count_nonzero(values) >= 2
    # the squares: the wall term plus each atom's share of eq. 36's double sum
    distances = 5.0 * np.linalg.norm(positions[:, None] - positions[None], axis=2)
    pair = RepulsionTerm().energy(distances + np.diag(np.full(6, np.inf)))
    wall = (WALL * np.maximum(np.linalg.norm(positions, axis=1) - 1.0, 0.0)) ** 2
    np.testing.assert_allclose(values**2, wall + pair.sum(axis=1), rtol=1e-13)
    no_repulsion = position_penalty(positions, None, 5.0)[0]
    np.testing.assert_allclose(no_repulsion**2, wall, rtol=1e-13)
    step = 1e-6
    numeric = np.zeros_like(jacobian)
    for k in range(positions.size):
        e = np.zeros(positions.size)
        e[k] = step
        up = position_penalty((positions.ravel() + e).reshape(6, 3), RepulsionTerm(), 5.0)[0]
        down = position_penalty((positions.ravel() - e).reshape(6, 3), RepulsionTerm(), 5.0)[0]
        numeric[:, k] = (up - down) / (2 * step)
    np.testing.assert_allclose(jacobian, numeric, atol=1e-6)


def _captured_residuals(monkeypatch):
    """Make ``fit_atoms`` hand its residual function to a recorder instead of the solver."""
    import milad.decode.loss as loss

    captured = []

    def record(fun, x0, max_nfev, **options):
        captured.append(fun)
        return x0

    monkeypatch.setattr(loss, "solve_lm", record)
    return loss, captured


@pytest.mark.parametrize("fit_positions, fit_weights", [(True, False), (True, True), (False, True)])
def test_fit_atoms_residual_jacobian_matches_finite_differences(plain, rng, monkeypatch,
                                                                fit_positions, fit_weights):
    """The one residual builder of every fit of atoms: one moments target, one fingerprint
    target with its own fixed weights (as in the joint polish), repulsion, wall and weight
    penalty; its Jacobian against central differences of its residuals."""
    loss, captured = _captured_residuals(monkeypatch)
    space = moment_space(plain.invariants)
    n = 5
    positions = rng.uniform(-0.45, 0.45, size=(n, 3))
    positions[0] = [0.99, 0.1, 0.05]  # pushed across the wall by the steps below
    positions[1] = positions[2] + [0.05, 0.0, 0.0]  # 0.25 A apart: the repulsion acts
    weights = rng.uniform(1.05, 1.95, n)
    x = space.moments(rng.uniform(-0.4, 0.4, size=(n, 3)), np.ones(n))
    targets = [loss.Target("moments", x), loss.Target("phi", space.phi(x), np.full(n, 1.5))]
    fitted = loss.fit_atoms(space, targets, positions, weights, fit_positions=fit_positions,
                            fit_weights=fit_weights, weight_range=(1.2, 1.8),
                            repulsion=RepulsionTerm(), cutoff=5.0)
    np.testing.assert_array_equal(fitted[0], positions)  # unchanged by the recorder
    (fun,) = captured
    free = np.concatenate(([positions.ravel()] if fit_positions else []) + ([weights] if fit_weights else []))
    residuals, jacobian = fun(free)
    jacobian = jacobian()  # formed on demand (the solvers ask only at accepted steps)
    expected_rows = len(x) + len(plain) + (n if fit_positions else 0) + (n if fit_weights else 0)
    assert residuals.shape == (expected_rows,) and jacobian.shape == (expected_rows, len(free))
    step = 1e-7
    numeric = np.empty_like(jacobian)
    for k in range(len(free)):
        e = np.zeros(len(free))
        e[k] = step
        numeric[:, k] = (fun(free + e)[0] - fun(free - e)[0]) / (2 * step)
    np.testing.assert_allclose(jacobian, numeric, rtol=1e-5, atol=1e-6)


def test_fit_moments_residual_jacobian_matches_finite_differences(plain, rng, monkeypatch):
    loss, captured = _captured_residuals(monkeypatch)
    space = moment_space(plain.invariants)
    x = rng.normal(scale=0.3, size=space.n_params)
    params = np.flatnonzero(space.l <= 4)
    rows = np.flatnonzero(space.invariant_l <= 4)
    scales = rng.uniform(0.5, 2.0, size=len(plain))
    loss.fit_moments(space, space.phi(x) * 1.01, x, params, rows, scales, max_nfev=10)
    (fun,) = captured
    residuals, jacobian = fun(x[params])
    jacobian = jacobian()
    assert residuals.shape == (len(rows),) and jacobian.shape == (len(rows), len(params))
    step = 1e-6
    for k in rng.choice(len(params), size=8, replace=False):
        e = np.zeros(len(params))
        e[k] = step
        numeric = (fun(x[params] + e)[0] - fun(x[params] - e)[0]) / (2 * step)
        np.testing.assert_allclose(jacobian[:, k], numeric, rtol=1e-5, atol=1e-8)


def _rosenbrock(shift=0.0):
    """Residuals (3,) and Jacobian of a curved valley, ``(10 (y - x^2), 1 - x, shift)``: the
    minimum (1, 1) has cost ``shift^2``, zero for ``shift = 0``. Counts its evaluations."""
    calls = []

    def fun(v):
        calls.append(v.copy())
        x, y = v
        return np.array([10 * (y - x * x), 1 - x, shift]), np.array([[-20 * x, 10.0], [-1.0, 0.0], [0.0, 0.0]])

    return fun, calls


@pytest.mark.parametrize("method", ["svd", "cholesky"])
def test_solve_lm_converges_and_stops_when_done(method):
    """Both step solvers reach the minimum of a curved valley, stop at the residual floor long
    before ``max_nfev``, and return the same bits on a second run."""
    from milad.decode.loss import solve_lm

    fun, calls = _rosenbrock()
    solution = solve_lm(fun, np.array([-1.2, 1.0]), 500, method=method)
    np.testing.assert_allclose(solution, [1.0, 1.0], atol=1e-10)
    assert len(calls) < 100
    again = solve_lm(_rosenbrock()[0], np.array([-1.2, 1.0]), 500, method=method)
    assert again.tobytes() == solution.tobytes()


@pytest.mark.parametrize("method", ["svd", "cholesky"])
def test_solve_lm_forms_a_deferred_jacobian_only_at_accepted_steps(method):
    """A Jacobian handed over as a function is formed only where a step was accepted (once
    per point), and the fit takes the same path to the bit as with the Jacobian given."""
    from milad.decode.loss import solve_lm

    eager, _ = _rosenbrock()
    formed = []

    def deferred(v):
        residuals, jacobian = eager(v)

        def form():
            formed.append(v.copy())
            return jacobian

        return residuals, form

    start = np.array([-1.2, 1.0])
    lazy_calls = []

    def counted(v):
        lazy_calls.append(v.copy())
        return deferred(v)

    solution = solve_lm(counted, start, 500, method=method)
    assert solution.tobytes() == solve_lm(eager, start, 500, method=method).tobytes()
    assert len(formed) < len(lazy_calls)  # the rejected trial points never formed one
    assert len({point.tobytes() for point in formed}) == len(formed)


@pytest.mark.parametrize("method", ["svd", "cholesky"])
def test_solve_lm_stops_a_stalled_fit(method):
    """A fit that creeps: the residual falls a little with every evaluation, whatever the step
    (``1 + 1e-3 / calls``), so every step is taken and only the stall test ends it, at the end
    of the second window of 20 evaluations (the first sets the reference cost), not after
    ``max_nfev``; the point returned is the best evaluated, here the last."""
    from milad.decode.loss import solve_lm

    calls = []

    def fun(v):
        calls.append(v.copy())
        return np.array([1.0 + 1e-3 / len(calls)]), np.array([[1.0]])

    solution = solve_lm(fun, np.zeros(1), 3000, method=method, window=20)
    assert len(calls) == 40
    assert solution.tobytes() == calls[-1].tobytes()


def test_solve_lm_rejects_an_unknown_method():
    from milad.decode.loss import solve_lm

    with pytest.raises(ValueError, match="unknown LM step method 'qr'"):
        solve_lm(_rosenbrock()[0], np.zeros(2), 10, method="qr")


def test_moment_space_is_built_once_and_freed_with_its_invariant_set():
    import gc
    import weakref

    from milad.invariants import InvariantSet, load_invariants

    shipped = load_invariants(7)
    own = InvariantSet(shipped.kind, shipped.max_order, shipped.moments, shipped.variable_scale,
                       list(shipped.invariants))
    space = moment_space(own)
    assert moment_space(own) is space and space.grid(11) is space.grid(11)
    assert moment_space(shipped) is not space
    dead = weakref.ref(space)
    del own, space
    gc.collect()
    assert dead() is None


def test_peak_finding_locates_isolated_atoms(plain):
    space = moment_space(plain.invariants)
    truth = np.array([[0.5, 0.0, 0.0], [-0.3, 0.4, 0.2]])
    found = peak_find(space.moments(truth, np.ones(2)), plain.invariants, 2)
    distances = np.linalg.norm(found[:, None] - truth[None], axis=2).min(axis=1)
    assert np.all(distances < 0.1)  # grid spacing 2/30


def test_relocation_stops_when_every_atom_was_moved_in_vain(plain, monkeypatch, rng):
    """Relocations are deterministic: once every atom was moved without lowering the moment
    RMSD, another round would repeat the same fits, so the search ends after one fit per atom
    (not after its ``moves`` budget)."""
    import milad.decode.placement as placement

    fits = []

    def no_gain(space, target, positions, weights, **options):
        fits.append(positions)
        return positions + 3.0, weights  # far outside the sphere: never better

    monkeypatch.setattr(placement, "fit_atoms", no_gain)
    space = moment_space(plain.invariants)
    positions = rng.uniform(-0.4, 0.4, size=(4, 3))
    x = space.moments(rng.uniform(-0.4, 0.4, size=(4, 3)), np.ones(4))
    grid, basis = space.grid(11)
    kept, _ = placement._relocate(space, x, positions, np.ones(4), grid, basis, moves=10, fit_weights=False,
                                  weight_range=None, repulsion=None, cutoff=5.0, r_min=0.1, max_nfev=10,
                                  lm_method="cholesky")
    assert len(fits) == 4
    np.testing.assert_array_equal(kept, positions)


def test_atoms_from_exact_moments(plain, qm9):
    mol = qm9[17]  # ethanol, 9 atoms
    space = moment_space(plain.invariants)
    truth = plain.molecule_positions(mol) / plain.cutoff
    x = space.moments(truth, np.ones(len(mol)))
    positions, _ = atoms_from_moments(x, plain.invariants, len(mol), weights=np.ones(len(mol)))
    assert space.moment_rmsd(space.moments(positions, np.ones(len(mol))), x) < 1e-8
    assert compare(centred(mol, plain), Atoms(["X"] * len(mol), positions * plain.cutoff)).best < 1e-4


@pytest.mark.parametrize("fit_weights", [False, True])
def test_relocations_taken_apart_give_the_same_atoms(fit_weights, with_species, qm9, rng):
    """``atoms_from_moments(relocate=False)`` then ``relocate_atoms`` (as the search runs them,
    trying the atoms in between) is the default ``atoms_from_moments`` to the bit, with and
    without fitted weights, from moments off a molecule's (as Algorithm 1 leaves them)."""
    from milad.decode.placement import relocate_atoms

    mol = qm9[11]  # 7 atoms
    space = moment_space(with_species.invariants)
    weights = with_species.species.weights_of(mol.get_chemical_symbols())
    x = space.moments(with_species.molecule_positions(mol) / with_species.cutoff, weights)
    x = x + rng.normal(0.0, 0.02 * np.abs(x).max(), x.shape)
    options = dict(weights=np.full(len(mol), weights.mean()), fit_weights=fit_weights,
                   weight_range=with_species.species.weight_range, n_points=15, lm_method="cholesky")
    default = atoms_from_moments(x, with_species.invariants, len(mol), **options)
    unrelocated = atoms_from_moments(x, with_species.invariants, len(mol), relocate=False, **options)
    options.pop("weights")
    relocated = relocate_atoms(x, with_species.invariants, *unrelocated, **options)
    for got, expected in zip(relocated, default):
        np.testing.assert_array_equal(got, expected)


def test_the_search_tries_the_atoms_before_relocating_them(plain, qm9, monkeypatch):
    """A small molecule whose fitted atoms polish onto the fingerprint is decoded without any
    relocation; with the polish made to miss, the relocations run after it."""
    import milad.decode.search as search
    from milad.decode.placement import relocate_atoms

    relocations = []

    def counted(*args, **kwargs):
        relocations.append(1)
        return relocate_atoms(*args, **kwargs)

    monkeypatch.setattr(search, "relocate_atoms", counted)
    mol = qm9[5]  # 5 atoms
    _, result = decode(plain.molecule(mol), plain, len(mol), seed=0, attempts=1, hops=0, max_iterations=1)
    assert result.success and result.iterations == 1 and not relocations
    _, result = decode(plain.molecule(mol), plain, len(mol), seed=0, attempts=1, hops=0, max_iterations=1,
                       tol=1e-300)  # no polish reaches it
    assert len(relocations) == 1  # one origin in the first iteration


def test_the_floor_of_the_positions_fits_changes_no_decision(plain, qm9, monkeypatch):
    """Fits of positions to the fingerprint end at ``tol * FLOOR_MARGIN``: a decode that needs
    basin hops makes the same iterations and hops with the floor as with fits run on to 1e-14,
    and succeeds as it did, in no more LM evaluations (fewer over the cases). Which small decodes need a hop depends on
    the machine's floats (the fits are chaotic), so two are run, and at least one must hop."""
    import milad.decode.loss as loss
    import milad.decode.search as search

    # QM9 5 (H2CO) at seed 2 and QM9 6 at seed 5: one iteration, then basin hops, on the
    # machines this was run on
    cases = [(4, 2), (5, 5)]
    solve_lm, hop = loss.solve_lm, search.SearchProblem._hop
    evaluations, hops = [], []

    def counted(fun, x0, max_nfev, **kwargs):
        def fun_counted(x):
            evaluations[-1] += 1
            return fun(x)
        return solve_lm(fun_counted, x0, max_nfev, **kwargs)

    def counted_hop(self, *args):
        hops[-1] += 1
        return hop(self, *args)

    monkeypatch.setattr(loss, "solve_lm", counted)
    monkeypatch.setattr(search.SearchProblem, "_hop", counted_hop)
    hopped = saved = 0
    for index, seed in cases:
        mol = qm9[index]
        evaluations.clear()
        hops.clear()
        results = []
        for margin in (search.FLOOR_MARGIN, 1e-8):  # the default, then a floor of 1e-14 (loss.FLOOR)
            monkeypatch.setattr(search, "FLOOR_MARGIN", margin)
            evaluations.append(0)
            hops.append(0)
            results.append(decode(plain.molecule(mol), plain, len(mol), seed=seed, attempts=1)[1])
        floored, unfloored = results
        assert floored.success and unfloored.success
        assert floored.iterations == unfloored.iterations
        assert hops[0] == hops[1], hops
        assert floored.moment_rmsd == unfloored.moment_rmsd
        assert evaluations[0] <= evaluations[1], evaluations
        saved += evaluations[1] - evaluations[0]
        hopped += hops[0] > 0
    assert hopped, "no case needed a basin hop: pick one that does on this machine"
    assert saved > 0


@pytest.mark.parametrize("method", ["cholesky", "svd"])
def test_fit_atoms_polishes_a_perturbed_molecule_onto_its_fingerprint(method, plain, qm9, rng):
    """Both LM step methods take atoms 0.05 A off a molecule back onto its fingerprint (the
    decoder's polish), far below the decoder's success threshold 1e-6 (SVD steps reach about
    1e-14, Cholesky steps stop near 1e-11); the molecule is recovered up to rotation."""
    mol = qm9[17]  # ethanol, 9 atoms
    space = moment_space(plain.invariants)
    truth = plain.molecule_positions(mol) / plain.cutoff
    target = space.phi(space.moments(truth, np.ones(len(mol))))
    start = truth + rng.normal(0.0, 0.05 / plain.cutoff, truth.shape)
    positions, _ = fit_atoms(space, Target("phi", target), start, np.ones(len(mol)),
                             repulsion=RepulsionTerm(), cutoff=plain.cutoff, max_nfev=300,
                             method=method)
    phi = space.phi(space.moments(positions, np.ones(len(mol))))
    assert np.sqrt(np.mean((phi - target) ** 2)) < 1e-9
    assert compare(centred(mol, plain), Atoms(["X"] * len(mol), positions * plain.cutoff)).best < 1e-4


def test_moments_from_invariants_matches_the_fingerprint(plain, qm9):
    """Algorithm 1 from starts near rotated copies of the molecule (random starts reach one of
    many moment vectors with the right invariants; the full decode is tested below).

    The LM path is chaotic at the rounding level (the result moves with the CPU's BLAS), and a
    start can end in a local minimum at ~1e-6: every start must reach the decoder's tolerance,
    most must reach 1e-7 absolute."""
    from scipy.spatial.transform import Rotation

    mol = qm9[9]
    phi = plain.molecule(mol)
    space = moment_space(plain.invariants)
    absolute = []
    for seed in range(3, 7):
        rng = np.random.default_rng(seed)
        rotated = plain.molecule_positions(mol) @ Rotation.random(random_state=seed).as_matrix().T
        start = space.moments(rotated / plain.cutoff, np.ones(len(mol)))
        start += rng.normal(scale=1e-3 * np.abs(start).max(), size=start.shape)
        scales = space.magnitudes(start)
        x, rmsd = moments_from_invariants(phi, plain.invariants, start, rng, tol=1e-8, scales=scales)
        # the returned RMSD is the scaled one over all invariants
        assert rmsd == pytest.approx(np.sqrt(np.mean(((space.phi(x) - phi) / scales) ** 2)))
        assert rmsd < 1e-5
        absolute.append(np.sqrt(np.mean((space.phi(x) - phi) ** 2)))
    assert sum(a < 1e-7 for a in absolute) >= 3, absolute
    # the l = 0 moments are read off directly
    for i, p, c in space.linear:
        assert x[p] == pytest.approx(phi[i] / c)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("index", [0, 4, 8, 13, 17])
def test_round_trip_positions(index, plain, qm9):
    mol = qm9[index]
    assert len(mol) <= 9
    atoms, result = decode(plain.molecule(mol), plain, len(mol), seed=index, attempts=3)
    assert result.success and result.fingerprint_rmsd < 1e-6
    assert result.species_mode == "positions" and result.seed == index
    assert set(result.timings) >= {"moments", "atoms", "polish", "total"}
    assert set(atoms.get_chemical_symbols()) == {"X"}
    assert np.all(np.linalg.norm(atoms.positions, axis=1) <= plain.cutoff)
    assert compare(centred(mol, plain), atoms).best < 0.01


@pytest.mark.parametrize("index", [4, 9, 12])
def test_round_trip_species_one_fingerprint(index, with_species, qm9):
    mol = qm9[index]
    atoms, result = decode(with_species.molecule(mol), with_species, len(mol), seed=index, attempts=3)
    assert result.species_mode == "single"
    assert result.success and result.fingerprint_rmsd < 1e-6
    assert sorted(atoms.get_chemical_symbols()) == sorted(mol.get_chemical_symbols())
    comparison = compare(centred(mol, with_species), atoms)
    assert comparison.species_aware and comparison.best < 0.01
    low, high = with_species.species.weight_range
    assert np.all((result.weights > low - 0.05) & (result.weights < high + 0.05))


@pytest.mark.parametrize("index", [7, 16])
def test_round_trip_species_two_fingerprints(index, plain, with_species, qm9):
    mol = qm9[index]
    atoms, result = decode(
        with_species.molecule(mol), with_species, len(mol), seed=index, attempts=3,
        positions_fingerprint=plain.molecule(mol),
    )
    assert result.species_mode == "two"
    assert result.success and result.positions_rmsd < 1e-6 and result.fingerprint_rmsd < 1e-6
    assert sorted(atoms.get_chemical_symbols()) == sorted(mol.get_chemical_symbols())
    assert compare(centred(mol, with_species), atoms).best < 0.01


def test_species_from_already_decoded_positions(plain, with_species, qm9):
    """Mode "two" in two steps, as the pipeline runs it: positions first, then species only."""
    mol = qm9[16]
    decoded, first = decode(plain.molecule(mol), plain, len(mol), seed=2, attempts=2)
    assert first.success
    atoms, result = decode(
        with_species.molecule(mol), with_species, len(mol), seed=2, attempts=1,
        positions_fingerprint=plain.molecule(mol), positions=decoded.positions,
    )
    assert result.success and result.iterations == 0
    assert sorted(atoms.get_chemical_symbols()) == sorted(mol.get_chemical_symbols())
    assert compare(centred(mol, with_species), atoms).best < 0.01
    with pytest.raises(ValueError, match="positions must be a finite"):
        decode(with_species.molecule(mol), with_species, len(mol), positions_fingerprint=plain.molecule(mol),
               positions=decoded.positions[:-1])
    far = decoded.positions.copy()
    far[0] = [1.01 * with_species.cutoff, 0.0, 0.0]  # beyond the hair a soft wall may leave
    with pytest.raises(ValueError, match="outside the cutoff sphere"):
        decode(with_species.molecule(mol), with_species, len(mol), positions_fingerprint=plain.molecule(mol),
               positions=far)
    with pytest.raises(ValueError, match="only used with species_mode='two'"):
        decode(plain.molecule(mol), plain, len(mol), positions=decoded.positions)


def test_species_by_enumeration_is_exact_for_small_molecules(with_species, qm9):
    """Every species assignment of a molecule of up to 9 atoms, ranked by the l = 0 moments
    and scored by the fingerprint: the true species come back at the true positions."""
    for index in (5, 11, 20):  # 5, 7 and 10 atoms
        mol = qm9[index]
        target = with_species.molecule(mol)
        problem = SearchProblem(with_species, target, len(mol), with_species.species.weight_range,
                                True, None, 1e-6, 1e-5, 2, 31, {})
        positions = with_species.molecule_positions(mol) / with_species.cutoff
        found = species_by_enumeration(problem, positions)
        if len(mol) > 9:  # 5 ** 10 assignments: over the budget
            assert found is None
            continue
        assert found.rmsd < 1e-10
        assert with_species.species.species_of(found.weights) == mol.get_chemical_symbols()
        assert species_by_enumeration(problem, positions, budget=5 ** len(mol) - 1) is None


def test_mode_two_decodes_the_positions_anew_in_each_attempt(qm9, monkeypatch):
    """A species fit that misses from decoded positions sends the next attempt back to the
    positions (they may sit in a near-minimum of the positions fingerprint a hair off the
    molecule, as CH4's do at seed 0), not to new species starts from the same positions."""
    import milad.decode.api as api
    from milad.decode.search import Candidate, SpeciesFit

    plain_paper, species_paper = descriptors()
    mol = qm9[5]  # CH4
    positions_decodes = []
    attempt = SearchProblem.attempt

    def counted(self, *args, **kwargs):
        positions_decodes.append(1)
        return attempt(self, *args, **kwargs)

    def missed(problem, positions_problem, positions, rng, starts):
        weights = problem.snap(np.full(problem.n_atoms, problem.mean_weight))
        return SpeciesFit(Candidate(positions, weights, 1.0), weights)

    monkeypatch.setattr(SearchProblem, "attempt", counted)
    monkeypatch.setattr(api, "species_from_positions", missed)
    _, result = decode(species_paper.molecule(mol), species_paper, len(mol), seed=0, attempts=3,
                       positions_fingerprint=plain_paper.molecule(mol))
    assert not result.success and result.attempts == 3 and len(positions_decodes) == 3
    assert result.positions_rmsd < 1e-6  # the positions themselves were decoded


def test_species_of_known_positions_escape_the_weight_fits_local_minimum(qm9):
    """QM9 23 (HC3N, linear) with the paper's species weights: at seed 1 every continuous
    weight fit from known positions ends at RMSD 0.012 with wrong species; the enumeration
    of all 5 ** 5 assignments finds them."""
    plain_paper, species_paper = descriptors()
    mol = next(m for m in qm9 if int(m.info["qm9_id"]) == 23)
    atoms, result = decode(
        species_paper.molecule(mol), species_paper, len(mol), seed=1, attempts=1,
        positions_fingerprint=plain_paper.molecule(mol),
        positions=species_paper.molecule_positions(mol),
    )
    assert result.success and result.fingerprint_rmsd < 1e-6
    assert sorted(atoms.get_chemical_symbols()) == sorted(mol.get_chemical_symbols())
    assert compare(centred(mol, species_paper), atoms).best < 0.01


@pytest.mark.parametrize("name", ["CH4", "NH3", "C2H4", "C6H6"])
def test_symmetric_molecules_decode(name, plain):
    mol = molecule(name)  # Td, C3v and the planar D2h and D6h
    atoms, result = decode(plain.molecule(mol), plain, len(mol), seed=1, attempts=3)
    assert result.success
    assert compare(centred(mol, plain), atoms).best < 0.01


def test_unknown_atom_count_from_the_zeroth_moment(plain, qm9):
    mol = qm9[11]
    phi = plain.molecule(mol)
    assert count_atoms(phi, plain) == len(mol)
    atoms, result = decode(phi, plain, None, seed=0, attempts=3)
    assert len(atoms) == len(mol) and result.n_atoms == len(mol) and result.success


# ------------------------------------------------------------------ bad inputs
def test_bad_inputs_raise_clear_errors(plain, with_species, qm9):
    mol = qm9[4]
    phi = plain.molecule(mol)
    with pytest.raises(ValueError, match="expected a vector of that length"):
        decode(phi[:-1], plain, len(mol))
    with pytest.raises(ValueError, match="expected a vector of that length"):
        decode(np.stack([phi, phi]), plain, len(mol))
    bad = phi.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decode(bad, plain, len(mol))
    for count in (0, -3):
        with pytest.raises(ValueError, match="at least 1"):
            decode(phi, plain, count)
    with pytest.raises(ValueError, match="must be an integer"):
        decode(phi, plain, 2.5)
    with pytest.raises(ValueError, match="inconsistent with 5 atoms"):
        decode(phi, plain, 5)
    with pytest.raises(ValueError, match="attempts"):
        decode(phi, plain, len(mol), attempts=0)
    species_phi = with_species.molecule(mol)
    # 4 atoms of mean weight ~1.4: 1 atom would need a weight of ~5.6, 12 atoms ~0.5
    for count in (1, 12):
        with pytest.raises(ValueError, match="outside the species weight range"):
            decode(species_phi, with_species, count)
    with pytest.raises(ValueError, match="n_atoms is needed"):
        decode(species_phi, with_species, None)
    with pytest.raises(ValueError, match="not a whole number"):
        count_atoms(species_phi, plain)
    with pytest.raises(ValueError, match="needs positions_fingerprint"):
        decode(species_phi, with_species, len(mol), species_mode="two")
    with pytest.raises(ValueError, match="unknown species_mode"):
        decode(species_phi, with_species, len(mol), species_mode="colour")
    with pytest.raises(ValueError, match="needs a descriptor with a species map"):
        decode(phi, plain, len(mol), species_mode="single")
    gaussian = Descriptor(feature="gaussian", sigma=0.3)
    with pytest.raises(ValueError, match="delta feature only"):
        decode(gaussian.molecule(mol), gaussian, len(mol))


def test_failed_decode_reports_the_best_attempt(plain, qm9):
    mol = qm9[13]
    atoms, result = decode(plain.molecule(mol), plain, len(mol), seed=0, attempts=1,
                           max_iterations=1, hops=0, tol=1e-300)
    assert not result.success and result.attempts == 1 and result.iterations == 1
    assert len(result.attempt_rmsds) == 1
    assert math.isfinite(result.fingerprint_rmsd) and len(atoms) == len(mol)


@pytest.mark.parametrize("mode", SPECIES_MODES)
def test_each_species_mode_searches_with_its_default_effort(mode, plain, with_species, qm9, monkeypatch):
    """Without max_iterations and hops an attempt gets its mode's SEARCH_EFFORT (mode single
    twice the others'); given ones win."""
    seen = []

    def attempt(self, rng, max_iterations, hops):  # record the effort, decode nothing
        seen.append((max_iterations, hops))
        raise StopIteration

    monkeypatch.setattr(SearchProblem, "attempt", attempt)
    mol = qm9[3]
    extra = {"positions_fingerprint": plain.molecule(mol)} if mode == "two" else {}
    descriptor = plain if mode == "positions" else with_species
    for options in ({}, {"max_iterations": 2, "hops": 5}):
        with pytest.raises(StopIteration):
            decode(descriptor.molecule(mol), descriptor, len(mol), species_mode=mode, **extra, **options)
    assert seen == [SEARCH_EFFORT[mode], (2, 5)]
    assert SEARCH_EFFORT["single"] == (16, 200) and SEARCH_EFFORT["positions"] == (8, 100)
