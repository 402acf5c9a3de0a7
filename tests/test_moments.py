"""Geometric and 3D Zernike moments (paper section II, eq. 3-6, 13-14, 27-31).

Every reference value here is computed independently of ``milad.moments``: direct sums
(eq. 5), explicit quadrature of the Gaussian density (eq. 6), and Zernike polynomials built
from Jacobi polynomials and scipy's spherical harmonics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import eval_jacobi, sph_harm_y

from geometry import random_points, random_rotation
from milad.moments import (
    geometric_indices,
    geometric_moment_derivatives,
    geometric_moments,
    reconstruct,
    zernike_indices,
    zernike_moments,
    zernike_polynomials,
    zernike_transform,
)


# ----------------------------------------------------------------------------------------
# independent helpers
# ----------------------------------------------------------------------------------------
def direct_geometric_moments(positions, weights, max_order):
    """Eq. 5, summed term by term in plain Python."""
    out = []
    for s, t, u in geometric_indices(max_order):
        out.append(
            sum(w * x**s * y**t * z**u for w, (x, y, z) in zip(weights, positions))
        )
    return np.array(out)


def gaussian_density(points, positions, weights, sigmas):
    """Eq. 6, literally."""
    out = np.zeros(len(points))
    for r, w, s in zip(positions, weights, sigmas):
        d2 = np.sum((points - r) ** 2, axis=1)
        out += w / (s**3 * math.sqrt((2 * math.pi) ** 3)) * np.exp(-0.5 * d2 / s**2)
    return out


def ball_quadrature(n_r, n_theta, n_phi, radius=1.0):
    """Gauss-Legendre in r and cos(theta), uniform in phi: points (P, 3), weights (P,)."""
    xr, wr = np.polynomial.legendre.leggauss(n_r)
    r = radius * (xr + 1) / 2
    wr = wr * radius / 2 * r**2
    ct, wt = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * (np.arange(n_phi) + 0.5) / n_phi
    wp = np.full(n_phi, 2 * np.pi / n_phi)
    R, CT, PHI = np.meshgrid(r, ct, phi, indexing="ij")
    W = wr[:, None, None] * wt[None, :, None] * wp[None, None, :]
    ST = np.sqrt(1 - CT**2)
    points = np.stack([R * ST * np.cos(PHI), R * ST * np.sin(PHI), R * CT], axis=-1)
    return points.reshape(-1, 3), W.ravel()


def reference_zernike(points, n, l, m):
    """Z_nl^m = R_nl Y_l^m from a Jacobi polynomial and scipy's Y (Condon-Shortley phase).

    With x = 2 r^2 - 1, int_0^1 (r^l P_k^(0, l+1/2)(x))^2 r^2 dr = 1 / (2n + 3), k = (n-l)/2,
    so eq. 29 fixes R_nl = sqrt((2n + 3) 4 pi / 3) r^l P_k^(0, l+1/2)(2 r^2 - 1), whose
    leading coefficient is positive. As a polynomial it is defined for r > 1 too.
    """
    points = np.asarray(points, float)
    r = np.linalg.norm(points, axis=1)
    safe = np.where(r > 0, r, 1.0)
    theta = np.arccos(np.clip(points[:, 2] / safe, -1, 1))
    phi = np.mod(np.arctan2(points[:, 1], points[:, 0]), 2 * np.pi)
    k = (n - l) // 2
    radial = (
        math.sqrt((2 * n + 3) * 4 * math.pi / 3)
        * r**l
        * eval_jacobi(k, 0.0, l + 0.5, 2 * r**2 - 1)
    )
    return radial * sph_harm_y(l, m, theta, phi)


def reference_zernike_all(points, n_max):
    return np.stack([reference_zernike(points, *map(int, row)) for row in zernike_indices(n_max)], 1)


# ----------------------------------------------------------------------------------------
# geometric moments
# ----------------------------------------------------------------------------------------
def test_geometric_indices_order_and_count():
    assert geometric_indices(2).tolist() == [
        [0, 0, 0],
        [1, 0, 0], [0, 1, 0], [0, 0, 1],
        [2, 0, 0], [1, 1, 0], [1, 0, 1], [0, 2, 0], [0, 1, 1], [0, 0, 2],
    ]
    for k in (0, 3, 7, 16):
        idx = geometric_indices(k)
        assert len(idx) == math.comb(k + 3, 3)
        assert len({tuple(row) for row in idx}) == len(idx)
        assert np.all(np.diff(idx.sum(axis=1)) >= 0)
    with pytest.raises(ValueError, match="max_order"):
        geometric_indices(-1)


def test_delta_moments_equal_direct_sum(rng):
    positions = random_points(rng, 7, 1.0)
    weights = rng.uniform(0.5, 2.0, 7)
    expected = direct_geometric_moments(positions, weights, 6)
    np.testing.assert_allclose(geometric_moments(positions, weights, 6), expected, rtol=1e-12, atol=1e-15)
    assert geometric_moments(positions, weights, 0)[0] == pytest.approx(weights.sum())


def test_gaussian_moments_match_3d_quadrature(rng):
    """Eq. 6 integrated numerically on a Gauss-Legendre product grid (not factorised)."""
    positions = random_points(rng, 3, 0.6)
    weights = rng.uniform(0.5, 2.0, 3)
    sigmas = np.array([0.2, 0.3, 0.4])
    max_order = 6
    half_width, n = 4.5, 100
    x, w = np.polynomial.legendre.leggauss(n)
    x, w = half_width * x, half_width * w
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    grid = np.stack([X, Y, Z], -1).reshape(-1, 3)
    f = gaussian_density(grid, positions, weights, sigmas).reshape(n, n, n)
    f *= w[:, None, None] * w[None, :, None] * w[None, None, :]
    powers = x[None, :] ** np.arange(max_order + 1)[:, None]  # (p, node)
    table = np.einsum("abc,sa,tb,uc->stu", f, powers, powers, powers)
    idx = geometric_indices(max_order)
    expected = table[idx[:, 0], idx[:, 1], idx[:, 2]]
    got = geometric_moments(positions, weights, max_order, sigmas)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
    assert got[0] == pytest.approx(weights.sum(), rel=1e-14)


def test_order_16_moments_are_finite_and_correct(rng):
    positions = random_points(rng, 5, 1.0)
    weights = rng.uniform(0.5, 2.0, 5)
    delta = geometric_moments(positions, weights, 16)
    assert delta.shape == (969,)
    assert np.all(np.isfinite(delta))
    np.testing.assert_allclose(delta, direct_geometric_moments(positions, weights, 16), rtol=1e-11, atol=1e-17)

    sigmas = rng.uniform(0.1, 0.3, 5)
    gauss = geometric_moments(positions, weights, 16, sigmas)
    assert np.all(np.isfinite(gauss))
    # single Gaussian at the origin: m_stu = sigma^(s+t+u) (s-1)!! (t-1)!! (u-1)!!, 0 if odd
    sigma = 0.37
    single = geometric_moments(np.zeros((1, 3)), np.array([1.7]), 16, np.array([sigma]))

    def double_factorial(k):
        return math.prod(range(k, 0, -2)) if k > 0 else 1

    expected = [
        1.7 * sigma ** (s + t + u) * double_factorial(s - 1) * double_factorial(t - 1) * double_factorial(u - 1)
        if s % 2 == t % 2 == u % 2 == 0
        else 0.0
        for s, t, u in geometric_indices(16)
    ]
    np.testing.assert_allclose(single, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_batch_moments_equal_single_environment_moments(rng, gaussian):
    from milad.moments import geometric_moments_batch

    positions = random_points(rng, 9, 0.9)
    weights = rng.uniform(0.5, 2.0, 9)
    sigmas = rng.uniform(0.05, 0.2, 9) if gaussian else None
    segments = np.array([2, 0, 0, 2, 1, 0, 2, 2, 0])
    batch = geometric_moments_batch(positions, weights, segments, 4, 5, sigmas)
    assert batch.shape == (4, len(geometric_indices(5)))
    for env in range(3):
        sel = segments == env
        single = geometric_moments(positions[sel], weights[sel], 5, None if sigmas is None else sigmas[sel])
        np.testing.assert_allclose(batch[env], single, rtol=1e-13, atol=1e-16)
    assert np.all(batch[3] == 0)  # an environment without atoms


@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_geometric_moment_derivatives_match_finite_differences(rng, gaussian):
    n_atoms, max_order, h = 4, 8, 1e-5
    positions = random_points(rng, n_atoms, 0.9)
    weights = rng.uniform(0.5, 2.0, n_atoms)
    sigmas = rng.uniform(0.1, 0.3, n_atoms) if gaussian else None
    d_pos, d_w = geometric_moment_derivatives(positions, weights, max_order, sigmas)
    n_moments = len(geometric_indices(max_order))
    assert d_pos.shape == (n_moments, n_atoms, 3)
    assert d_w.shape == (n_moments, n_atoms)

    fd_pos = np.zeros_like(d_pos)
    for i in range(n_atoms):
        for a in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[i, a] += h
            minus[i, a] -= h
            fd_pos[:, i, a] = (
                geometric_moments(plus, weights, max_order, sigmas)
                - geometric_moments(minus, weights, max_order, sigmas)
            ) / (2 * h)
    fd_w = np.zeros_like(d_w)
    for i in range(n_atoms):
        plus, minus = weights.copy(), weights.copy()
        plus[i] += h
        minus[i] -= h
        fd_w[:, i] = (
            geometric_moments(positions, plus, max_order, sigmas)
            - geometric_moments(positions, minus, max_order, sigmas)
        ) / (2 * h)
    np.testing.assert_allclose(d_pos, fd_pos, rtol=0, atol=1e-8 * np.abs(d_pos).max())
    np.testing.assert_allclose(d_w, fd_w, rtol=0, atol=1e-9 * np.abs(d_w).max())
    # the derivative with respect to a weight is the moment vector of that atom alone
    for i in range(n_atoms):
        alone = geometric_moments(positions[i : i + 1], np.ones(1), max_order,
                                  None if sigmas is None else sigmas[i : i + 1])
        np.testing.assert_allclose(d_w[:, i], alone, rtol=1e-13, atol=1e-16)


# ----------------------------------------------------------------------------------------
# Zernike polynomials and moments
# ----------------------------------------------------------------------------------------
def test_zernike_indices_order_and_count():
    idx = zernike_indices(7)
    assert len(idx) == 120
    assert idx[:6].tolist() == [[0, 0, 0], [1, 1, -1], [1, 1, 0], [1, 1, 1], [2, 0, 0], [2, 2, -2]]
    assert [tuple(r) for r in idx] == sorted(tuple(r) for r in idx)
    assert np.all((idx[:, 0] - idx[:, 1]) % 2 == 0)
    assert np.all(np.abs(idx[:, 2]) <= idx[:, 1])
    assert np.all(idx[:, 1] <= idx[:, 0])
    with pytest.raises(ValueError, match="n_max"):
        zernike_indices(-1)


def test_first_zernike_polynomials_closed_forms(rng):
    """From eq. 29: 3/(4 pi) int_ball Z conj(Z) dV = 1 with R_nl(r) * Y_l^m."""
    points = random_points(rng, 20, 1.0)
    x, y, z = points.T
    r2 = np.sum(points**2, axis=1)
    values = zernike_polynomials(points, 2)
    column = {tuple(map(int, row)): j for j, row in enumerate(zernike_indices(2))}
    np.testing.assert_allclose(values[:, column[(0, 0, 0)]], 1.0, atol=1e-14)
    np.testing.assert_allclose(values[:, column[(1, 1, 0)]], math.sqrt(5) * z, atol=1e-14)
    np.testing.assert_allclose(values[:, column[(1, 1, 1)]], -math.sqrt(5 / 2) * (x + 1j * y), atol=1e-14)
    np.testing.assert_allclose(values[:, column[(1, 1, -1)]], math.sqrt(5 / 2) * (x - 1j * y), atol=1e-14)
    np.testing.assert_allclose(
        values[:, column[(2, 0, 0)]], math.sqrt(7 / 3) * (5 * r2 - 3) / 2, atol=1e-13
    )
    # Y_2^2 = 1/4 sqrt(15 / (2 pi)) (x + iy)^2 / r^2, R_22 = sqrt(28 pi / 3) r^2
    np.testing.assert_allclose(
        values[:, column[(2, 2, 2)]],
        math.sqrt(28 * math.pi / 3) / 4 * math.sqrt(15 / (2 * math.pi)) * (x + 1j * y) ** 2,
        atol=1e-13,
    )


def test_zernike_polynomials_match_reference(rng):
    points = random_points(rng, 50, 1.0)
    np.testing.assert_allclose(zernike_polynomials(points, 7), reference_zernike_all(points, 7), rtol=0, atol=1e-11)
    values = zernike_polynomials(points, 12)
    column = {tuple(map(int, row)): j for j, row in enumerate(zernike_indices(12))}
    for nlm in [(12, 0, 0), (12, 12, 12), (12, 12, -7), (11, 5, -3), (12, 6, 2), (9, 1, 1)]:
        np.testing.assert_allclose(values[:, column[nlm]], reference_zernike(points, *nlm), rtol=0, atol=1e-9)


@pytest.mark.parametrize("n_max", [7, 12])
def test_zernike_orthonormality(n_max):
    """Eq. 29 by a quadrature that is exact for the polynomial integrands."""
    points, weights = ball_quadrature(n_max + 3, n_max + 3, 2 * n_max + 3)
    values = zernike_polynomials(points, n_max)
    gram = 3 / (4 * math.pi) * (values.T * weights) @ values.conj()
    np.testing.assert_allclose(gram, np.eye(len(gram)), rtol=0, atol=1e-10)


def test_zernike_moments_of_gaussians_match_quadrature(rng):
    """Omega = 3/(4 pi) int f conj(Z) dV for Gaussians well inside the unit ball."""
    positions = np.array([[0.05, -0.04, 0.06], [-0.08, 0.02, -0.03]])
    weights = np.array([1.3, 0.8])
    sigmas = np.array([0.13, 0.12])
    points, quad = ball_quadrature(48, 40, 40)
    f = gaussian_density(points, positions, weights, sigmas)
    expected = 3 / (4 * math.pi) * (f * quad) @ reference_zernike_all(points, 7).conj()
    got = zernike_moments(geometric_moments(positions, weights, 7, sigmas), 7)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert got[0] == pytest.approx(3 / (4 * math.pi) * weights.sum(), rel=1e-13)


def test_zernike_moments_of_wide_gaussian_integrate_over_all_space():
    """Module docstring: for wide densities the polynomial Z is integrated over all space."""
    positions = np.array([[0.3, -0.2, 0.1]])
    weights = np.array([1.0])
    sigmas = np.array([0.6])
    points, quad = ball_quadrature(80, 30, 30, radius=7.0)
    f = gaussian_density(points, positions, weights, sigmas)
    expected = 3 / (4 * math.pi) * (f * quad) @ reference_zernike_all(points, 4).conj()
    got = zernike_moments(geometric_moments(positions, weights, 4, sigmas), 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("gaussian", [False, True], ids=["delta", "gaussian"])
def test_negative_m_moments_are_conjugates(rng, gaussian):
    positions = random_points(rng, 6, 0.9)
    weights = rng.uniform(0.5, 2.0, 6)
    sigmas = rng.uniform(0.05, 0.2, 6) if gaussian else None
    moments = zernike_moments(geometric_moments(positions, weights, 7, sigmas), 7)
    row = {tuple(map(int, r)): i for i, r in enumerate(zernike_indices(7))}
    for (n, l, m), i in row.items():
        np.testing.assert_allclose(moments[row[(n, l, -m)]], (-1) ** m * np.conj(moments[i]), rtol=1e-12, atol=1e-14)
        if m == 0:
            assert abs(moments[i].imag) < 1e-14


def test_reconstruct_band_limited_density_exactly(rng):
    """A density sum_k a_k Z_k has Zernike moments a_k and reconstruct() returns it (eq. 14)."""
    n_max = 7
    idx = zernike_indices(n_max)
    row = {tuple(map(int, r)): i for i, r in enumerate(idx)}
    coefficients = np.zeros(len(idx), complex)
    for (n, l, m), i in row.items():
        if m > 0:
            coefficients[i] = rng.normal() + 1j * rng.normal()
            coefficients[row[(n, l, -m)]] = (-1) ** m * np.conj(coefficients[i])
        elif m == 0:
            coefficients[i] = rng.normal()

    def density(points):
        values = reference_zernike_all(points, n_max) @ coefficients
        assert np.abs(values.imag).max() < 1e-10
        return values.real

    # geometric moments of the density on the unit ball by exact quadrature (degree <= 14)
    points, quad = ball_quadrature(n_max + 3, n_max + 3, 2 * n_max + 3)
    g_idx = geometric_indices(n_max)
    monomials = np.prod(points[:, None, :] ** g_idx[None, :, :], axis=2)
    geometric = (density(points) * quad) @ monomials
    moments = zernike_moments(geometric, n_max)
    np.testing.assert_allclose(moments, coefficients, rtol=0, atol=1e-10)

    inside = random_points(rng, 40, 1.0)
    np.testing.assert_allclose(reconstruct(moments, n_max, inside), density(inside), rtol=0, atol=1e-9)
    np.testing.assert_allclose(reconstruct(coefficients, n_max, inside), density(inside), rtol=0, atol=1e-10)
    outside = random_points(rng, 10, 1.0)
    outside *= (1.05 / np.linalg.norm(outside, axis=1))[:, None]
    assert np.all(reconstruct(moments, n_max, outside) == 0.0)


def test_rotation_acts_unitarily_on_each_nl_block(rng):
    """c_nl -> D^l c_nl with the same unitary D^l for every n and every environment."""
    n_max = 7
    idx = zernike_indices(n_max)
    rotation = random_rotation(rng)
    before, after = [], []
    for _ in range(16):  # >= 2 l + 1 samples for every l, so D^l is determined
        positions = random_points(rng, 5, 0.95)
        weights = rng.uniform(0.5, 2.0, 5)
        before.append(zernike_moments(geometric_moments(positions, weights, n_max), n_max))
        after.append(zernike_moments(geometric_moments(positions @ rotation.T, weights, n_max), n_max))
    before, after = np.array(before), np.array(after)
    for l in range(n_max + 1):
        blocks = [np.flatnonzero((idx[:, 0] == n) & (idx[:, 1] == l)) for n in range(l, n_max + 1, 2)]
        for cols in blocks:
            np.testing.assert_allclose(
                np.linalg.norm(after[:, cols], axis=1), np.linalg.norm(before[:, cols], axis=1), rtol=1e-11
            )
        # one D^l fitted to all blocks of this l reproduces them all and is unitary
        a = np.concatenate([before[:, c] for c in blocks]).T  # (2l+1, samples)
        b = np.concatenate([after[:, c] for c in blocks]).T
        assert np.linalg.matrix_rank(a) == 2 * l + 1
        d = b @ np.linalg.pinv(a)
        np.testing.assert_allclose(d @ a, b, rtol=0, atol=1e-10)
        np.testing.assert_allclose(d @ d.conj().T, np.eye(2 * l + 1), rtol=0, atol=1e-9)
    # inversion: Z_nl^m(-x) = (-1)^l Z_nl^m(x)
    positions = random_points(rng, 5, 0.95)
    weights = rng.uniform(0.5, 2.0, 5)
    plain = zernike_moments(geometric_moments(positions, weights, n_max), n_max)
    inverted = zernike_moments(geometric_moments(-positions, weights, n_max), n_max)
    np.testing.assert_allclose(inverted, (-1.0) ** idx[:, 1] * plain, rtol=1e-12, atol=1e-14)


def test_zernike_transform_is_cached_and_read_only():
    first = zernike_transform(7)
    assert zernike_transform(7) is first
    assert first.shape == (120, 120)
    assert first.dtype == complex
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0] = 1.0
    assert geometric_indices(5) is geometric_indices(5)
    assert zernike_indices(5) is zernike_indices(5)


def test_zernike_moments_reject_wrong_length_and_accept_batches(rng):
    with pytest.raises(ValueError, match=r"expected 120 geometric moments for n_max=7, got 119"):
        zernike_moments(np.zeros(119), 7)
    with pytest.raises(ValueError, match="expected 120"):
        zernike_moments(np.zeros((2, 84)), 7)
    batch = np.stack(
        [geometric_moments(random_points(rng, 4, 0.9), np.ones(4), 7) for _ in range(3)]
    ).reshape(3, 1, -1)
    out = zernike_moments(batch, 7)
    assert out.shape == (3, 1, 120)
    for i in range(3):
        np.testing.assert_allclose(out[i, 0], zernike_moments(batch[i, 0], 7), rtol=1e-14)
