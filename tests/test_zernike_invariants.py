"""Clebsch-Gordan invariants of Zernike moments (paper eq. 19-22, section II C 2, Table I)."""

from __future__ import annotations

import gzip
import json
import math
import re
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest

from geometry import assert_invariant, random_points, random_rotation
from milad.invariants import InvariantSet, invariant_counts
from milad.invariants.reduce import jacobian_rank, linear_rank
from milad.invariants.zernike import candidate_invariants
from milad.moments import (
    geometric_moment_derivatives,
    geometric_moments,
    zernike_indices,
    zernike_moments,
    zernike_transform,
)
from milad.paper import TABLE1

N_MAX = 7


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def moments_of(positions, weights, sigmas=None, n_max=N_MAX):
    return zernike_moments(geometric_moments(positions, weights, n_max, sigmas), n_max)


@lru_cache(maxsize=None)
def clebsch_gordan(j1, m1, j2, m2, J, M):
    """<j1 m1 j2 m2 | J M> from Racah's formula, in floating point (test's own copy)."""
    if m1 + m2 != M or not abs(j1 - j2) <= J <= j1 + j2 or abs(m1) > j1 or abs(m2) > j2 or abs(M) > J:
        return 0.0
    f = math.factorial
    prefactor = Fraction(
        (2 * J + 1) * f(J + j1 - j2) * f(J - j1 + j2) * f(j1 + j2 - J), f(j1 + j2 + J + 1)
    ) * (f(J + M) * f(J - M) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2))
    total = Fraction(0)
    for k in range(0, j1 + j2 - J + 1):
        denominators = [k, j1 + j2 - J - k, j1 - m1 - k, j2 + m2 - k, J - j2 + m1 + k, J - j1 - m2 + k]
        if min(denominators) < 0:
            continue
        total += Fraction((-1) ** k, math.prod(f(d) for d in denominators))
    return math.sqrt(prefactor) * float(total)


class Moments:
    """Access c_nl^m of one moment vector by (n, l, m)."""

    def __init__(self, moments, n_max=N_MAX):
        self.values = moments
        self.row = {tuple(map(int, r)): i for i, r in enumerate(zernike_indices(n_max))}

    def __call__(self, n, l, m):
        return self.values[self.row[(n, l, m)]]

    def coupled(self, n, l1, l2, L):
        """Eq. 19: c_n(l1, l2)_L^k for k = -L..L."""
        return np.array([
            sum(
                clebsch_gordan(l1, m, l2, k - m, L, k) * self(n, l1, m) * self(n, l2, k - m)
                for m in range(max(-l1, k - l2), min(l1, k + l2) + 1)
            )
            for k in range(-L, L + 1)
        ])

    def tensor(self, n, l):
        return np.array([self(n, l, m) for m in range(-l, l + 1)])


def contract(a, b):
    """(1/sqrt(2L+1)) sum_k (-1)^(L-k) a^k b^(-k), the coupling to L = 0 of eq. 20-22."""
    L = (len(a) - 1) // 2
    return sum((-1) ** (L - k) * a[k + L] * b[L - k] for k in range(-L, L + 1)) / math.sqrt(2 * L + 1)


def direct_invariant(label, c):
    """Evaluate an invariant from its label with eq. 20-22 (complex value)."""
    if m := re.fullmatch(r"c_(\d+)0", label):
        return c(int(m[1]), 0, 0)
    if m := re.fullmatch(r"c_(\d+)\((\d+),(\d+)\)_0", label):
        n, l, l_again = map(int, m.groups())
        assert l == l_again
        # eq. 20 written out with its own CG coefficients
        return sum(clebsch_gordan(l, k, l, -k, 0, 0) * c(n, l, k) * c(n, l, -k) for k in range(-l, l + 1))
    if m := re.fullmatch(r"c_(\d+)\((\d+),(\d+)\)_(\d+) c_(\d+)", label):
        n1, l1, l2, L, n2 = map(int, m.groups())
        return contract(c.coupled(n1, l1, l2, L), c.tensor(n2, L))  # eq. 21
    if m := re.fullmatch(r"c_(\d+)\((\d+),(\d+)\)_(\d+) c_(\d+)\((\d+),(\d+)\)_(\d+)", label):
        n1, l1, l2, L, n2, l3, l4, L_again = map(int, m.groups())
        assert L == L_again
        return contract(c.coupled(n1, l1, l2, L), c.coupled(n2, l3, l4, L))  # eq. 22
    raise AssertionError(f"unknown label {label}")


def poly_mul(a, b):
    out = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            key = tuple(sorted(ka + kb))
            out[key] = out.get(key, 0) + va * vb
    return {k: v for k, v in out.items() if v}


def random_environment(rng, n_atoms=8, radius=0.9):
    return random_points(rng, n_atoms, radius), rng.uniform(0.5, 2.0, n_atoms)


def random_real_density_moments(rng, n_max):
    """Random complex moments obeying only the reality condition of a real density:
    c_nl^-m = (-1)^m conj(c_nl^m), so c_nl^0 is real (milad.moments, eq. 30)."""
    index = zernike_indices(n_max).tolist()
    row = {tuple(r): i for i, r in enumerate(index)}
    moments = rng.normal(size=len(index)) + 1j * rng.normal(size=len(index))
    for i, (n, l, m) in enumerate(index):
        if m == 0:
            moments[i] = moments[i].real
        elif m < 0:
            moments[i] = (-1) ** m * np.conj(moments[row[(n, l, -m)]])
    return moments


# ----------------------------------------------------------------------------------------
# Table I and set sizes
# ----------------------------------------------------------------------------------------
# milad's Table I rows (invariant_counts: moments with 2 <= n <= l_max, as in the paper),
# pinned; the paper's rows are milad.paper.TABLE1.
#
# Algebraically independent: (number of moments: 6, 16, 31, 52, 80, 116) - 3, the most a set
# of rotation invariants can have (three rotation angles), which the exact Jacobian-rank
# reduction reaches. Equal to the paper's row, whatever the candidates.
TABLE_I_ALGEBRAIC = {2: 3, 3: 13, 4: 28, 5: 49, 6: 77, 7: 113}
# All: every candidate of milad's generation rules (milad.invariants.zernike: nu = 4 couples
# the pair forms of any two orders n1, n2), zero and identical ones removed. The paper's row
# (4, 16, 49, 123, 280, 573) follows rules it does not state; restricting nu = 4 to n1 = n2
# gives TABLE_I_EQUAL_N, the paper's count at l_max = 2 and 3 only.
TABLE_I_ALL = {2: 4, 3: 19, 4: 72, 5: 195, 6: 512, 7: 1090}
TABLE_I_EQUAL_N = {2: 4, 3: 16, 4: 45, 5: 97, 6: 222}
# Linearly independent: rank of the candidates' exact coefficient vectors, so it differs from
# the paper's (3, 13, 37, 100, 228, 486) with the candidates. At l_max = 2 milad's 4 exceeds
# the paper's 3: the one nu = 4 candidate is a multiple of the square of the nu = 2 one (see
# test_table_one_differences_from_the_paper), a product but not a linear combination.
TABLE_I_LINEAR = {2: 4, 3: 18, 4: 68, 5: 181, 6: 465, 7: 990}


@pytest.mark.parametrize(
    "l_max",
    [2, 3, 4, 5, 6, pytest.param(7, marks=pytest.mark.slow)],
)
def test_table_one_counts(l_max):
    assert invariant_counts(l_max) == {
        "l_max": l_max,
        "all": TABLE_I_ALL[l_max],
        "linearly_independent": TABLE_I_LINEAR[l_max],
        "algebraically_independent": TABLE_I_ALGEBRAIC[l_max],
    }
    n_moments = int(np.sum(zernike_indices(l_max)[:, 0] >= 2))
    assert TABLE_I_ALGEBRAIC[l_max] == n_moments - 3 == TABLE1["algebraically_independent"][l_max]


def test_table_one_differences_from_the_paper():
    """The reasons given with the pinned rows (l_max <= 5 to keep it fast)."""
    for l_max in (2, 3, 4, 5):
        candidates = candidate_invariants(l_max, 2)
        equal_n = [c for c in candidates if c["degree"] < 4 or c["recipe"][1] == c["recipe"][4]]
        assert len(equal_n) == TABLE_I_EQUAL_N[l_max]
        assert (len(equal_n) == TABLE1["all"][l_max]) == (l_max <= 3)
    # l_max = 2: c_2(2,2)_2 c_2(2,2)_2 = (constant) * c_2(2,2)_0 ** 2
    by_degree = {c["degree"]: c for c in candidate_invariants(2, 2)}
    assert sorted(by_degree) == [1, 2, 3, 4]
    assert by_degree[4]["label"] == "c_2(2,2)_2 c_2(2,2)_2"
    square = poly_mul(by_degree[2]["terms"], by_degree[2]["terms"])
    assert set(square) == set(by_degree[4]["terms"])
    assert len({by_degree[4]["terms"][k] / v for k, v in square.items()}) == 1


def test_generated_set_sizes(zernike_set_7, zernike_set_7_n2):
    assert len(zernike_set_7) == 117
    assert len(zernike_set_7_n2) == 113
    for inv, n_min in [(zernike_set_7, 0), (zernike_set_7_n2, 2)]:
        assert inv.kind == "zernike"
        assert inv.max_order == 7
        assert inv.n_moments == 120
        assert inv.metadata["complete"] is True
        assert inv.metadata["min_order"] == n_min
        assert len(set(inv.labels)) == len(inv)
        assert set(inv.degrees.tolist()) <= {1, 2, 3, 4}
        assert sum(inv.counts_by_degree().values()) == len(inv)
    # the n_min = 2 set never touches the n = 0 and n = 1 moments
    used = {k for poly in zernike_set_7_n2.exact_polynomials() for mono in poly for k in mono}
    assert min(zernike_indices(7)[sorted(used), 0]) >= 2
    # n_max = 7 with the n = 0, 1 moments: 120 moments - 3 rotations
    assert len(zernike_set_7) == zernike_set_7.n_moments - 3


# ----------------------------------------------------------------------------------------
# values, reality, invariance
# ----------------------------------------------------------------------------------------
def test_clebsch_gordan_helper_is_correct():
    """Sanity of the test's own CG: closed forms and orthonormality."""
    assert clebsch_gordan(1, 0, 1, 0, 0, 0) == pytest.approx(-1 / math.sqrt(3))
    assert clebsch_gordan(1, 0, 1, 0, 2, 0) == pytest.approx(math.sqrt(2 / 3))
    assert clebsch_gordan(1, 1, 1, 0, 2, 1) == pytest.approx(1 / math.sqrt(2))
    assert clebsch_gordan(1, 1, 1, -1, 1, 0) == pytest.approx(1 / math.sqrt(2))
    assert clebsch_gordan(1, 0, 1, 0, 1, 0) == pytest.approx(0, abs=1e-15)
    assert clebsch_gordan(2, 0, 2, 0, 2, 0) == pytest.approx(-math.sqrt(2 / 7))
    for l in range(6):
        for m in range(-l, l + 1):
            assert clebsch_gordan(l, m, l, -m, 0, 0) == pytest.approx((-1) ** (l - m) / math.sqrt(2 * l + 1))
    for j1, j2 in [(2, 3), (3, 3), (4, 2)]:
        rows = [(J, M) for J in range(abs(j1 - j2), j1 + j2 + 1) for M in range(-J, J + 1)]
        cols = [(m1, m2) for m1 in range(-j1, j1 + 1) for m2 in range(-j2, j2 + 1)]
        u = np.array([[clebsch_gordan(j1, m1, j2, m2, J, M) for m1, m2 in cols] for J, M in rows])
        np.testing.assert_allclose(u @ u.T, np.eye(len(rows)), atol=1e-13)


@pytest.mark.parametrize("moments_from", ["environment", "random"])
@pytest.mark.parametrize("set_name", ["zernike_set_7", "shipped_set_10"])
def test_invariants_equal_equations_20_to_22(rng, request, set_name, moments_from):
    """Every invariant against eq. 20-22 evaluated from its label with the test's own CG
    coefficients: on the moments of an environment, and on random moments that obey nothing
    but the reality condition (so they reach moment vectors no small environment has)."""
    inv = request.getfixturevalue(set_name)
    n_max = inv.max_order
    if moments_from == "environment":
        moments = moments_of(*random_environment(rng), n_max=n_max)
    else:
        moments = random_real_density_moments(rng, n_max)
    values = inv.evaluate(moments)
    direct = np.array([direct_invariant(label, Moments(moments, n_max)) for label in inv.labels])
    # eq. 20-22 of even parity are real under the reality condition
    assert_invariant(direct, direct.real, rtol=1e-12, err_msg="imaginary parts")
    assert set(inv.degrees.tolist()) == {1, 2, 3, 4}
    for nu in (1, 2, 3, 4):
        sel = inv.degrees == nu
        assert_invariant(values[sel], direct.real[sel], rtol=1e-11, err_msg=f"nu={nu}")


def test_candidates_have_even_parity_and_are_real(rng):
    """Module rule: only even sum(l) invariants are generated, so every candidate is real."""
    n_max = 5
    candidates = candidate_invariants(n_max, 0)
    assert len(candidates) > 100
    c = Moments(moments_of(*random_environment(rng), n_max=n_max), n_max)
    values = []
    for candidate in candidates:
        assert candidate["terms"], candidate["label"]
        label = candidate["label"]
        ls = [int(x) for pair in re.findall(r"\((\d+),(\d+)\)", label) for x in pair]
        if candidate["degree"] == 3:
            ls.append(int(re.search(r"\)_(\d+) c_", label)[1]))
        assert sum(ls) % 2 == 0, label
        assert candidate["degree"] == label.count("c_") + label.count(",")
        values.append(direct_invariant(label, c))
    values = np.array(values)
    assert np.abs(values.imag).max() < 1e-13 * np.abs(values).max()
    # sorted by the highest moment order used, then by correlation order
    keys = [(cand["order"], cand["degree"]) for cand in candidates]
    assert keys == sorted(keys)


@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_invariants_are_real_for_real_densities(rng, zernike_set_7, gaussian):
    from milad.invariants.polynomial import _evaluate

    inv = zernike_set_7
    positions, weights = random_environment(rng)
    sigmas = rng.uniform(0.05, 0.2, len(weights)) if gaussian else None
    moments = moments_of(positions, weights, sigmas)
    ext, _ = inv._extended(moments)
    complex_values = _evaluate(ext, inv._factors, inv._coefficients, inv._owner, len(inv))[0]
    assert np.iscomplexobj(complex_values)
    assert np.abs(complex_values.imag).max() < 1e-13 * np.abs(complex_values).max()
    np.testing.assert_array_equal(inv.evaluate(moments), complex_values.real)


@pytest.mark.parametrize("set_name", ["zernike_set_7", "zernike_set_7_n2", "shipped_set_10"])
@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_invariance_under_rotations_reflections_permutations(rng, request, set_name, gaussian):
    """Every invariant, to 1e-10 of its own size, under O(3) and permutations of the atoms
    (translations: test_descriptor.py, where environments are centred)."""
    inv = request.getfixturevalue(set_name)

    def fingerprint(positions, weights, sigmas):
        return inv.evaluate(moments_of(positions, weights, sigmas, inv.max_order))

    references, transformed = [], []
    for _ in range(3):
        positions, weights = random_environment(rng, 7, 0.7 if gaussian else 0.95)
        sigmas = rng.uniform(0.05, 0.15, len(weights)) if gaussian else None
        reference = fingerprint(positions, weights, sigmas)
        for proper in (True, False):
            rotation = random_rotation(rng, proper)
            assert np.linalg.det(rotation) == pytest.approx(1.0 if proper else -1.0)
            transformed.append(fingerprint(positions @ rotation.T, weights, sigmas))
        transformed.append(fingerprint(positions * [1.0, -1.0, 1.0], weights, sigmas))  # a mirror
        order = rng.permutation(len(weights))
        transformed.append(
            fingerprint(positions[order], weights[order], None if sigmas is None else sigmas[order])
        )
        references += [reference] * 4
        # ... but the fingerprint does see a change of the structure
        moved = positions.copy()
        moved[0] *= 0.9
        changed = fingerprint(moved, weights, sigmas)
        assert np.linalg.norm(changed - reference) > 1e-4 * np.linalg.norm(reference)
    references, transformed = np.array(references), np.array(transformed)
    assert_invariant(transformed, references, rtol=1e-10)
    # the check can fail where a check against the whole vector's norm cannot: the smallest
    # invariant changed by 1e-8 of its own size
    scale = np.abs(references).max(axis=0)
    smallest = np.argmin(scale)
    nudged = transformed.copy()
    nudged[0, smallest] += 1e-8 * scale[smallest]
    assert np.abs(nudged - references).max() < 1e-10 * np.linalg.norm(references[0])
    with pytest.raises(AssertionError, match="1 of"):
        assert_invariant(nudged, references, rtol=1e-10)


def test_evaluate_shapes_and_bad_input(rng, zernike_set_7):
    moments = np.stack([moments_of(*random_environment(rng)) for _ in range(6)]).reshape(2, 3, 120)
    values = zernike_set_7.evaluate(moments)
    assert values.shape == (2, 3, 117)
    assert values.dtype == float
    np.testing.assert_allclose(values[1, 2], zernike_set_7.evaluate(moments[1, 2]), rtol=1e-14)
    assert zernike_set_7.jacobian(moments).shape == (2, 3, 117, 120)
    with pytest.raises(ValueError, match="needs 120 moments"):
        zernike_set_7.evaluate(np.zeros(119, complex))
    with pytest.raises(ValueError, match="needs 120 moments"):
        zernike_set_7.jacobian(np.zeros((2, 121), complex))


# ----------------------------------------------------------------------------------------
# derivatives
# ----------------------------------------------------------------------------------------
def test_jacobian_matches_finite_differences_of_moments(rng, zernike_set_7):
    """evaluate() returns Re P(c) for holomorphic P: dRe P/dRe c = Re P', dRe P/dIm c = -Im P'."""
    inv = zernike_set_7
    moments = 0.5 * (rng.normal(size=120) + 1j * rng.normal(size=120))  # generic, not real-density
    jac = inv.jacobian(moments)
    assert jac.shape == (117, 120)
    h = 1e-6
    eye = np.eye(120)
    perturbed = np.concatenate(
        [moments + h * eye, moments - h * eye, moments + 1j * h * eye, moments - 1j * h * eye]
    )
    values = inv.evaluate(perturbed).reshape(4, 120, 117)
    d_real = (values[0] - values[1]).T / (2 * h)
    d_imag = (values[2] - values[3]).T / (2 * h)
    scale = np.abs(jac).max()
    np.testing.assert_allclose(d_real, jac.real, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(d_imag, -jac.imag, rtol=0, atol=1e-7 * scale)


def test_jacobian_is_the_padded_term_by_term_product_to_the_bit(rng, zernike_set_7):
    """The kernel skips the padding factors of low-degree terms; every entry must still be
    the float of the plain rule: for each term in order and each factor j (padding included),
    add ``(1 + 0j) * c`` times the other factors, left to right, to column j."""
    inv = zernike_set_7
    moments = rng.normal(size=120) + 1j * rng.normal(size=120)
    moments[rng.integers(0, 120, 8)] = 0.0  # exact zeros, where signs of zero could differ
    rows = np.array([0, 5, 40, 116, 77])
    extended = [complex(z) for z in moments] + [1 + 0j]
    expected = np.zeros((len(rows), 121), dtype=complex)
    for r, i in enumerate(rows):
        for t in range(inv._term_start[i], inv._term_start[i + 1]):
            factors = inv._factors[t]
            for j in range(len(factors)):
                value = (1 + 0j) * float(inv._coefficients[t])
                for k, f in enumerate(factors):
                    if k != j:
                        value *= extended[f]
                expected[r, factors[j]] += value
    got = inv.jacobian(moments, rows)
    assert got.shape == (len(rows), 120)
    assert got.tobytes() == expected[:, :120].tobytes()


@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_fingerprint_derivatives_through_positions_and_weights(rng, zernike_set_7, gaussian):
    """Phi(r, w) = evaluate(T @ m(r, w)) against Re(J @ T @ dm) with dm from the moments module."""
    inv = zernike_set_7
    positions, weights = random_environment(rng, 5, 0.9)
    sigmas = rng.uniform(0.05, 0.2, 5) if gaussian else None

    def phi(p, w):
        return inv.evaluate(moments_of(p, w, sigmas))

    d_pos, d_w = geometric_moment_derivatives(positions, weights, N_MAX, sigmas)
    transform = zernike_transform(N_MAX)
    jac = inv.jacobian(moments_of(positions, weights, sigmas))
    analytic_pos = np.einsum("iz,zg,gna->ina", jac, transform, d_pos).real  # (117, N, 3)
    analytic_w = (jac @ transform @ d_w).real  # (117, N)

    h = 1e-6
    numeric_pos = np.zeros_like(analytic_pos)
    for n in range(len(weights)):
        for a in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[n, a] += h
            minus[n, a] -= h
            numeric_pos[:, n, a] = (phi(plus, weights) - phi(minus, weights)) / (2 * h)
    numeric_w = np.zeros_like(analytic_w)
    for n in range(len(weights)):
        plus, minus = weights.copy(), weights.copy()
        plus[n] += h
        minus[n] -= h
        numeric_w[:, n] = (phi(positions, plus) - phi(positions, minus)) / (2 * h)
    np.testing.assert_allclose(analytic_pos, numeric_pos, rtol=0, atol=1e-7 * np.abs(analytic_pos).max())
    np.testing.assert_allclose(analytic_w, numeric_w, rtol=0, atol=1e-7 * np.abs(analytic_w).max())


# ----------------------------------------------------------------------------------------
# exact ranks
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("set_name", ["zernike_set_7", "zernike_set_7_n2"])
def test_exact_jacobian_rank_is_full_at_fresh_points(request, set_name):
    inv = request.getfixturevalue(set_name)
    polys = inv.exact_polynomials()
    for seed in (9001, 424242):
        assert jacobian_rank(polys, inv.n_moments, seed=seed) == len(inv)


def test_dependent_invariants_do_not_raise_the_rank(zernike_set_7):
    inv = zernike_set_7
    polys = inv.exact_polynomials()
    n_vars, full = inv.n_moments, len(inv)
    square = poly_mul(polys[5], polys[5])
    product = poly_mul(polys[10], polys[40])
    mixed = {k: 3 * v for k, v in poly_mul(polys[2], polys[80]).items()}
    for k, v in polys[7].items():
        mixed[k] = mixed.get(k, 0) - Fraction(1, 2) * v
    for extra in (square, product, mixed):
        assert jacobian_rank(polys + [extra], n_vars, seed=77) == full
    # the check can fail: dropping one lowers the rank, a non-invariant raises it
    assert jacobian_rank(polys[:-1], n_vars, seed=77) == full - 1
    assert jacobian_rank(polys + [{(60,): Fraction(1)}], n_vars, seed=77) == full + 1
    # a dependent set replacing an invariant by its square keeps the rank too
    assert jacobian_rank(polys[:5] + [square] + polys[6:], n_vars, seed=78) == full


def test_linear_rank():
    p = {(0, 1): Fraction(1), (2, 2, 3): Fraction(-3, 7)}
    q = {(1,): Fraction(5), (0, 1): Fraction(2)}
    assert linear_rank([p, {k: 2 * v for k, v in p.items()}, q]) == 2
    assert linear_rank([p, q]) == 2
    assert linear_rank([p, q, {k: p.get(k, 0) + q.get(k, 0) for k in set(p) | set(q)}]) == 2
    assert linear_rank([p, q, {(4,): Fraction(1)}]) == 3


# ----------------------------------------------------------------------------------------
# persistence
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["set.json", "set.json.gz"])
def test_save_load_round_trip(tmp_path, rng, zernike_set_7, name):
    path = tmp_path / name
    zernike_set_7.save(path)
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as handle:
            assert json.load(handle)["format"] == "milad-invariants"
    loaded = InvariantSet.load(path)
    assert loaded.labels == zernike_set_7.labels
    assert loaded.exact_polynomials() == zernike_set_7.exact_polynomials()
    assert loaded.metadata == zernike_set_7.metadata
    np.testing.assert_array_equal(loaded.moments, zernike_set_7.moments)
    np.testing.assert_array_equal(loaded.variable_scale, zernike_set_7.variable_scale)
    moments = np.stack([moments_of(*random_environment(rng)) for _ in range(4)])
    np.testing.assert_array_equal(loaded.evaluate(moments), zernike_set_7.evaluate(moments))
    np.testing.assert_array_equal(loaded.jacobian(moments), zernike_set_7.jacobian(moments))
    # str paths work too
    assert len(InvariantSet.load(str(path))) == len(zernike_set_7)


def test_load_truncated_gzip_raises_value_error(tmp_path, zernike_set_7):
    path = tmp_path / "set.json.gz"
    zernike_set_7.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        InvariantSet.load(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        InvariantSet.load(path)


def test_load_truncated_json_raises_value_error(tmp_path, zernike_set_7):
    path = tmp_path / "set.json"
    zernike_set_7.save(path)
    text = path.read_text()
    path.write_text(text[: len(text) // 3])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        InvariantSet.load(path)


def test_load_wrong_format_or_version_raises_value_error(tmp_path, zernike_set_7):
    data = zernike_set_7.to_dict()
    wrong_format = dict(data, format="something-else")
    path = tmp_path / "format.json"
    path.write_text(json.dumps(wrong_format))
    with pytest.raises(ValueError, match="not a milad invariant set"):
        InvariantSet.load(path)
    del wrong_format["format"]
    path.write_text(json.dumps(wrong_format))
    with pytest.raises(ValueError, match="not a milad invariant set"):
        InvariantSet.load(path)
    wrong_version = dict(data, format_version=999)
    path = tmp_path / "version.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(wrong_version, handle)
    with pytest.raises(ValueError, match="version 999"):
        InvariantSet.load(path)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        InvariantSet.load(tmp_path / "missing.json.gz")


# ----------------------------------------------------------------------------------------
# Pozdnyakov et al., PRL 125, 166001 (2020): nu = 3 degenerate, nu = 4 not
# ----------------------------------------------------------------------------------------
def pozdnyakov_environment(sign):
    angles = np.radians([0.0, -87.0, 176.0])
    group = 0.3 * np.stack([np.sin(angles), np.zeros(3), np.cos(angles)], axis=1)
    a = np.radians(86.0)
    about_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return np.vstack([
        [0.0, 0.0, 0.0],
        [0.0, sign * 0.8, 0.0],
        group + [0.0, 0.4, 0.0],
        group @ about_y.T - [0.0, 0.4, 0.0],
    ])


def test_pozdnyakov_pair_is_separated_only_by_nu_4(zernike_set_7):
    inv = zernike_set_7
    plus, minus = pozdnyakov_environment(+1), pozdnyakov_environment(-1)
    assert np.all(np.linalg.norm(plus, axis=1) < 1) and np.all(np.linalg.norm(minus, axis=1) < 1)
    # the construction is degenerate in the pair distances (2-body) already
    def distances(p):
        return np.sort(np.linalg.norm(p[:, None] - p[None], axis=-1).ravel())

    np.testing.assert_allclose(distances(plus), distances(minus), rtol=0, atol=1e-14)
    assert np.abs(plus - minus).max() == pytest.approx(1.6)
    weights = np.ones(len(plus))
    a = inv.evaluate(moments_of(plus, weights))
    b = inv.evaluate(moments_of(minus, weights))
    low = inv.degrees <= 3
    assert_invariant(b[low], a[low], rtol=1e-11)
    difference = np.abs(a - b)[inv.degrees == 4]
    # 8 of the 9 (the reason for the ninth, and the largest difference: test_plots.py)
    assert len(difference) == 9
    assert np.sum(difference > 1e-6) == 8


def test_normal_form_identifies_exactly_the_proportional_polynomials():
    """The deduplication key of the candidates: equal for a polynomial and any non-zero
    rational multiple of it (negative ones included), different when one coefficient or one
    term differs."""
    from milad.invariants.zernike import _normal_form

    poly = {(0, 1): Fraction(3, 4), (2, 2): Fraction(-5, 6), (1, 3): Fraction(7, 10)}
    key = _normal_form(poly)
    for factor in (Fraction(1), Fraction(-2, 3), Fraction(12), Fraction(-1, 35)):
        assert _normal_form({k: factor * v for k, v in poly.items()}) == key
    assert _normal_form({**poly, (1, 3): Fraction(7, 11)}) != key
    assert _normal_form({**poly, (3, 3): Fraction(1)}) != key
    assert _normal_form({k: v for k, v in poly.items() if k != (2, 2)}) != key
    # the first term (lowest key) is positive in the key: coprime integers 45, -50, 42
    assert key == frozenset({((0, 1), 45), ((2, 2), -50), ((1, 3), 42)})
