"""The invariant sets shipped in milad/data/invariants: complete, independent, reproducible."""

import numpy as np
import pytest

from milad.invariants import generate_zernike_invariants, load_invariants, shipped_orders
from milad.invariants.reduce import jacobian_rank


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


@pytest.mark.slow
def test_shipped_set_7_is_regenerated_exactly():
    shipped, fresh = load_invariants(7), generate_zernike_invariants(7, 0, seed=0)
    assert shipped.labels == fresh.labels
    assert shipped.exact_polynomials() == fresh.exact_polynomials()
