"""The invariant sets shipped in milad/data/invariants: complete, independent, reproducible."""

import numpy as np
import pytest

from geometry import assert_invariant, random_points
from milad.invariants import generate_zernike_invariants, load_invariants, shipped_orders
from milad.invariants.reduce import jacobian_rank
from milad.moments import geometric_moments, zernike_moments


def test_at_least_orders_7_and_10_ship():
    assert {7, 10} <= set(shipped_orders())


@pytest.mark.parametrize("n_max", shipped_orders())
def test_shipped_set_has_full_exact_jacobian_rank(n_max):
    invariants = load_invariants(n_max)
    assert len(invariants) == invariants.n_moments - 3
    assert invariants.metadata["complete"]
    polys = invariants.exact_polynomials()
    for seed in (101, 202):  # fresh random points of the prime field
        assert jacobian_rank(polys, invariants.n_moments, seed=seed) == len(invariants)


def test_shipped_set_7_has_full_float_rank_with_a_margin():
    """Floating point agrees with the exact decision, with a documented margin.

    The real Jacobian of the 117 invariants with respect to the positions and weights of 40
    random atoms (analytic derivatives, rows normalised) has its smallest singular value about
    1e-8 of the largest: tiny, but five orders of magnitude above the float64 rank tolerance
    (n_params * eps ~ 4e-14). Adding a dependent invariant (a product of two kept ones) gives a
    singular value at that tolerance: the gap is what a float rank decision has to resolve, and
    why the shipped sets were reduced in exact arithmetic instead.
    """
    from milad.descriptor import Descriptor

    descriptor = Descriptor(n_max=7, cutoff=1.0)
    rng = np.random.default_rng(7)
    positions, weights = rng.uniform(-0.55, 0.55, (40, 3)), rng.uniform(0.5, 1.5, 40)
    phi, d_positions, d_weights = descriptor.environment_derivatives(positions, weights)
    jacobian = np.concatenate([d_positions.reshape(len(phi), -1), d_weights], axis=1)
    tolerance = jacobian.shape[1] * np.finfo(float).eps

    def smallest_relative_singular_value(rows):
        singular = np.linalg.svd(rows / np.linalg.norm(rows, axis=1, keepdims=True), compute_uv=False)
        return singular[-1] / singular[0]

    assert smallest_relative_singular_value(jacobian) > 1e4 * tolerance
    product = phi[5] * jacobian[9] + phi[9] * jacobian[5]  # gradient of Phi_5 * Phi_9
    assert smallest_relative_singular_value(np.vstack([jacobian, product])) < 10 * tolerance


def test_shipped_set_10_begins_with_the_set_7(rng):
    """Candidates are reduced in order of the highest moment order they use, so the invariants
    kept up to n = 7 are the n_max = 7 set (the same labels and, on any density, values)."""
    set_7, set_10 = load_invariants(7), load_invariants(10)
    assert len(set_10) == 283 and set_10.labels[:117] == set_7.labels
    points, weights = random_points(rng, 9, 0.9), rng.uniform(0.5, 2.0, 9)
    value_7, value_10 = (
        inv.evaluate(zernike_moments(geometric_moments(points, weights, inv.max_order), inv.max_order))
        for inv in (set_7, set_10)
    )
    assert_invariant(value_10[:117], value_7, rtol=1e-12)


# n_max = 10 needs about 1 min of CPU and 1.4 GB (63 s on an idle machine, more on a busy one), n_max = 7 about 4 s
@pytest.mark.slow
@pytest.mark.parametrize("n_max", shipped_orders())
def test_shipped_set_is_regenerated_exactly(n_max):
    shipped, fresh = load_invariants(n_max), generate_zernike_invariants(n_max, 0, seed=0)
    assert shipped.labels == fresh.labels
    assert shipped.exact_polynomials() == fresh.exact_polynomials()
    assert [i.scale_squared for i in shipped.invariants] == [i.scale_squared for i in fresh.invariants]
