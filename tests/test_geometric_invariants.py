"""Geometric-moment (tensor contraction) rotation invariants."""

from fractions import Fraction

import numpy as np
import pytest

from geometry import assert_invariant, random_rotation
from milad.invariants.geometric import (
    candidate_geometric_invariants,
    generate_geometric_invariants,
    maximal_invariant_count,
)
from milad.invariants.polynomial import InvariantSet
from milad.invariants.reduce import jacobian_rank
from milad.moments import geometric_indices, geometric_moments


@pytest.fixture(scope="module")
def invariant_set():
    return generate_geometric_invariants(max_order=4, min_order=2, seed=0)


@pytest.fixture(scope="module")
def invariant_set_all_orders():
    return generate_geometric_invariants(max_order=4, min_order=0, seed=0)


def _moment_index(max_order):
    return {tuple(int(v) for v in row): i for i, row in enumerate(geometric_indices(max_order))}


def _moment_tensor(moments, order, max_order):
    """Numeric symmetric tensor M_{i1..ik} from the moment vector."""
    index = _moment_index(max_order)
    tensor = np.empty((3,) * order)
    for component in np.ndindex(*tensor.shape):
        counts = np.bincount(np.array(component, dtype=int), minlength=3)
        tensor[component] = moments[index[tuple(int(c) for c in counts)]]
    return tensor


def test_counts_reach_the_maximum(invariant_set, invariant_set_all_orders):
    assert len(invariant_set) == 28 == maximal_invariant_count(4, 2)
    assert invariant_set.metadata["moments_used"] == 31
    assert invariant_set.metadata["complete"] is True
    assert len(invariant_set_all_orders) == 32 == invariant_set_all_orders.metadata["moments_used"] - 3
    for min_order, max_order, expected in [(2, 2, 3), (2, 3, 13), (3, 4, 22), (4, 4, 12)]:
        generated = generate_geometric_invariants(max_order, min_order)
        assert len(generated) == expected == maximal_invariant_count(max_order, min_order)
    # orders 2-4 need four-factor graphs
    assert len(generate_geometric_invariants(4, 2, max_degree=3)) < 28


@pytest.mark.parametrize("proper", [True, False])
@pytest.mark.parametrize("which", ["invariant_set", "invariant_set_all_orders"])
def test_rotation_invariance(request, which, proper):
    """Rotations (proper) or rotation-inversions (improper), and permutations of the atoms."""
    invariants = request.getfixturevalue(which)
    rng = np.random.default_rng(7 if proper else 11)
    references, moved = [], []
    for _ in range(5):
        n = int(rng.integers(3, 12))
        positions = rng.uniform(-1, 1, size=(n, 3))
        weights = rng.uniform(0.5, 2.0, size=n)
        rotation = random_rotation(rng, proper)
        assert np.linalg.det(rotation) == pytest.approx(1.0 if proper else -1.0)
        references.append(invariants.evaluate(geometric_moments(positions, weights, 4)))
        moved.append(invariants.evaluate(geometric_moments(positions @ rotation.T, weights, 4)))
        # permuting the atoms changes nothing either
        order = rng.permutation(n)
        references.append(references[-1])
        moved.append(invariants.evaluate(geometric_moments(positions[order], weights[order], 4)))
    assert_invariant(moved, references, rtol=1e-10)


def test_first_suk_flusser_invariants_are_candidates():
    index = _moment_index(4)
    m = lambda s, t, u: index[(s, t, u)]  # noqa: E731
    one = Fraction(1)
    phi1 = {(m(2, 0, 0),): one, (m(0, 2, 0),): one, (m(0, 0, 2),): one}
    phi2 = {(m(2, 0, 0),) * 2: one, (m(0, 2, 0),) * 2: one, (m(0, 0, 2),) * 2: one}
    phi2.update({(m(1, 1, 0),) * 2: 2 * one, (m(1, 0, 1),) * 2: 2 * one, (m(0, 1, 1),) * 2: 2 * one})
    candidates = candidate_geometric_invariants(4, 2)
    by_label = {c["label"]: c for c in candidates}
    assert by_label["M2_aa"]["terms"] == phi1
    assert by_label["M2_ab M2_ab"]["terms"] == phi2
    assert by_label["M2_ab M2_ab"]["degree"] == 2
    # they come first in the reduction order and are kept
    invariants = generate_geometric_invariants(4, 2)
    assert invariants.invariants[0].terms == phi1
    assert invariants.invariants[1].terms == phi2


def test_candidates_match_numeric_contractions():
    rng = np.random.default_rng(3)
    moments = rng.normal(size=len(geometric_indices(4)))
    tensors = {k: _moment_tensor(moments, k, 4) for k in range(5)}
    candidates = candidate_geometric_invariants(4, 0)
    labels = set()
    for candidate in candidates:
        factors = candidate["label"].split()
        subscripts = ",".join(f.partition("_")[2] for f in factors) + "->"
        operands = [tensors[int(f.partition("_")[0][1:])] for f in factors]
        expected = np.einsum(subscripts, *operands)
        value = sum(float(c) * np.prod(moments[list(k)]) for k, c in candidate["terms"].items())
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert candidate["order"] == max(candidate["orders"])
        labels.add(candidate["label"])
    assert len(labels) == len(candidates)
    keys = [(c["order"], c["degree"], len(c["terms"]), c["label"]) for c in candidates]
    assert keys == sorted(keys)


def test_algebraic_independence(invariant_set, invariant_set_all_orders):
    for invariants in (invariant_set, invariant_set_all_orders):
        polys = invariants.exact_polynomials()
        assert jacobian_rank(polys, invariants.n_moments, seed=987654) == len(invariants)


def test_jacobian_matches_finite_differences(invariant_set):
    rng = np.random.default_rng(5)
    positions = rng.uniform(-1, 1, size=(6, 3))
    moments = geometric_moments(positions, rng.uniform(0.5, 2, 6), 4)
    jacobian = invariant_set.jacobian(moments)
    assert jacobian.shape == (len(invariant_set), len(moments))
    h = 1e-6
    numeric = np.empty_like(jacobian)
    for k in range(len(moments)):
        step = np.zeros_like(moments)
        step[k] = h
        numeric[:, k] = (invariant_set.evaluate(moments + step) - invariant_set.evaluate(moments - step)) / (2 * h)
    scale = np.abs(jacobian).max(axis=1, keepdims=True)
    assert np.max(np.abs(jacobian - numeric) / scale) < 1e-6
    # orders 0 and 1 are not used by the min_order = 2 set
    assert not np.any(jacobian[:, :4])


@pytest.mark.parametrize("name", ["geometric.json", "geometric.json.gz"])
def test_save_load_round_trip(invariant_set, tmp_path, name):
    path = tmp_path / name
    invariant_set.save(path)
    loaded = InvariantSet.load(path)
    assert loaded.kind == "geometric"
    assert loaded.labels == invariant_set.labels
    assert loaded.metadata == invariant_set.metadata
    assert [inv.terms for inv in loaded.invariants] == [inv.terms for inv in invariant_set.invariants]
    moments = np.random.default_rng(9).normal(size=(4, invariant_set.n_moments))
    assert np.array_equal(loaded.evaluate(moments), invariant_set.evaluate(moments))
