"""Geometric and 3D Zernike moments of weighted delta or Gaussian densities.

Conventions
-----------
* Geometric moments ``m_stu`` (paper eq. 3, 5) are ordered by total order ``k = s+t+u``
  and, within an order, by decreasing ``s`` then decreasing ``t`` (``geometric_indices``).
* Zernike moments ``Omega_nl^m`` (paper eq. 27-31) are ordered lexicographically in
  ``(n, l, m)`` with ``0 <= l <= n``, ``n - l`` even and ``-l <= m <= l``
  (``zernike_indices``). Coordinates are in units of the cutoff radius: the density must lie
  inside the unit sphere.
* Spherical harmonics carry the Condon-Shortley phase (supplementary eq. 1) and are
  orthonormal on the sphere; the radial polynomials ``R_nl`` are normalised so that
  ``3/(4 pi) * int_{|x|<=1} Z Z* dV = 1`` (eq. 29) and have a positive leading coefficient.
* ``Omega_nl^m = 3/(4 pi) * int f(x) conj(Z_nl^m(x)) dV`` (eq. 30), evaluated through the
  exact geometric-to-Zernike change of basis, so for a density with tails outside the unit
  ball (wide Gaussians) the integral runs over all space.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numba
import numpy as np

__all__ = [
    "geometric_indices",
    "monomials",
    "geometric_moments",
    "geometric_moments_batch",
    "geometric_moment_derivatives",
    "zernike_indices",
    "zernike_transform",
    "zernike_moments",
    "zernike_polynomials",
    "reconstruct",
    "reconstruct_grid",
]


# ----------------------------------------------------------------------------------------
# geometric moments
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def geometric_indices(max_order: int) -> np.ndarray:
    """Exponents ``(s, t, u)`` of every geometric moment up to ``max_order``, shape (K, 3)."""
    if max_order < 0:
        raise ValueError(f"max_order must be >= 0, got {max_order}")
    rows = [
        (s, t, k - s - t)
        for k in range(max_order + 1)
        for s in range(k, -1, -1)
        for t in range(k - s, -1, -1)
    ]
    out = np.array(rows, dtype=np.int64)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def _gaussian_axis_coefficients(max_order: int) -> np.ndarray:
    """Table ``G[p, j]`` with ``E[(mu + sigma X)^p] = sum_j G[p, j] mu^(p-j) sigma^j``, X~N(0,1)."""
    table = np.zeros((max_order + 1, max_order + 1))
    for p in range(max_order + 1):
        for j in range(0, p + 1, 2):
            double_factorial = math.prod(range(j - 1, 0, -2)) if j > 0 else 1
            table[p, j] = math.comb(p, j) * double_factorial
    return table


@numba.njit(cache=True)
def _axis_powers_delta(coords, max_order):
    """powers[i, a, p] = coords[i, a] ** p."""
    n = coords.shape[0]
    out = np.empty((n, 3, max_order + 1))
    for i in range(n):
        for a in range(3):
            value = 1.0
            for p in range(max_order + 1):
                out[i, a, p] = value
                value *= coords[i, a]
    return out


@numba.njit(cache=True)
def _axis_powers_gaussian(coords, sigmas, table):
    """powers[i, a, p] = E[(x_ia + sigma_i X)^p] for a standard normal X."""
    n = coords.shape[0]
    order = table.shape[0] - 1
    out = np.zeros((n, 3, order + 1))
    mu_pow = np.empty(order + 1)
    sig_pow = np.empty(order + 1)
    for i in range(n):
        sig_pow[0] = 1.0
        for p in range(1, order + 1):
            sig_pow[p] = sig_pow[p - 1] * sigmas[i]
        for a in range(3):
            mu_pow[0] = 1.0
            for p in range(1, order + 1):
                mu_pow[p] = mu_pow[p - 1] * coords[i, a]
            for p in range(order + 1):
                acc = 0.0
                for j in range(0, p + 1, 2):
                    acc += table[p, j] * mu_pow[p - j] * sig_pow[j]
                out[i, a, p] = acc
    return out


def _axis_powers(positions: np.ndarray, max_order: int, sigmas: np.ndarray | None) -> np.ndarray:
    if sigmas is None:
        return _axis_powers_delta(positions, max_order)
    return _axis_powers_gaussian(positions, sigmas, _gaussian_axis_coefficients(max_order))


def monomials(
    positions: np.ndarray, max_order: int, sigmas: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom moment contributions and their position gradients.

    Returns ``(values, gradients)`` of shapes (N, K) and (N, K, 3): ``values[i, k]`` is the
    k-th geometric moment of atom i's feature with unit weight; for both feature functions
    ``d/dx E[(x + sigma X)^p] = p E[(x + sigma X)^(p-1)]``, so one formula serves.
    """
    powers = _axis_powers(np.asarray(positions, float), max_order, sigmas)
    values, gradients = _monomial_products(powers, geometric_indices(max_order))
    # moment-major in memory, as the numpy expressions this kernel replaced laid them out (the
    # BLAS products downstream see the same strides, so their floats do not change)
    return values.T, gradients.transpose(1, 0, 2)


@numba.njit(cache=True)
def _monomial_products(powers, idx):
    """Moment-major ``values[k, i] = px py pz`` (K, N) and ``gradients[k, i] = (dpx py pz,
    px dpy pz, px py dpz)`` (K, N, 3) with ``px = powers[i, 0, s_k]`` and ``dpx = s_k
    powers[i, 0, s_k - 1]`` (0 for s_k = 0); products taken left to right."""
    n, n_moments = powers.shape[0], idx.shape[0]
    values = np.empty((n_moments, n))
    gradients = np.empty((n_moments, n, 3))
    for k in range(n_moments):
        s, t, u = idx[k, 0], idx[k, 1], idx[k, 2]
        for i in range(n):
            px, py, pz = powers[i, 0, s], powers[i, 1, t], powers[i, 2, u]
            dpx = s * powers[i, 0, max(s - 1, 0)]
            dpy = t * powers[i, 1, max(t - 1, 0)]
            dpz = u * powers[i, 2, max(u - 1, 0)]
            values[k, i] = px * py * pz
            gradients[k, i, 0] = dpx * py * pz
            gradients[k, i, 1] = px * dpy * pz
            gradients[k, i, 2] = px * py * dpz
    return values, gradients


@numba.njit(cache=True)
def _segment_moments(powers, weights, segments, idx, n_segments):
    out = np.zeros((n_segments, idx.shape[0]))
    for p in range(powers.shape[0]):
        seg = segments[p]
        w = weights[p]
        for k in range(idx.shape[0]):
            out[seg, k] += w * powers[p, 0, idx[k, 0]] * powers[p, 1, idx[k, 1]] * powers[p, 2, idx[k, 2]]
    return out


def geometric_moments_batch(
    positions: np.ndarray,
    weights: np.ndarray,
    segments: np.ndarray,
    n_segments: int,
    max_order: int,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Moments of many environments at once: atom p belongs to environment ``segments[p]``.

    positions: (P, 3); weights, segments: (P,). Returns (n_segments, K).
    """
    powers = _axis_powers(np.asarray(positions, float), max_order, sigmas)
    return _segment_moments(
        powers,
        np.asarray(weights, float),
        np.asarray(segments, np.int64),
        geometric_indices(max_order),
        int(n_segments),
    )


def geometric_moments(
    positions: np.ndarray,
    weights: np.ndarray,
    max_order: int,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Geometric moments ``m_stu`` of weighted deltas (``sigmas=None``) or Gaussians.

    positions: (N, 3); weights: (N,); sigmas: (N,) Gaussian widths (eq. 6), same length unit
    as positions. Returns (K,) ordered as ``geometric_indices(max_order)``.
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    segments = np.zeros(len(positions), dtype=np.int64)
    return geometric_moments_batch(positions, weights, segments, 1, max_order, sigmas)[0]


def geometric_moment_derivatives(
    positions: np.ndarray,
    weights: np.ndarray,
    max_order: int,
    sigmas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ``geometric_moments`` with respect to positions and weights.

    Returns ``(d_positions, d_weights)`` with shapes (K, N, 3) and (K, N).
    """
    values, gradients = monomials(positions, max_order, sigmas)
    d_positions = gradients * np.asarray(weights, float)[:, None, None]
    return d_positions.transpose(1, 0, 2), values.T


# ----------------------------------------------------------------------------------------
# Zernike polynomials as exact polynomials in x, y, z
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def zernike_indices(n_max: int) -> np.ndarray:
    """``(n, l, m)`` of every Zernike moment up to ``n_max``, shape (K, 3), lexicographic."""
    if n_max < 0:
        raise ValueError(f"n_max must be >= 0, got {n_max}")
    rows = [
        (n, l, m) for n in range(n_max + 1) for l in range(n % 2, n + 1, 2) for m in range(-l, l + 1)
    ]
    out = np.array(rows, dtype=np.int64)
    out.setflags(write=False)
    return out


def _poly_mul(a: dict, b: dict) -> dict:
    """Product of polynomials stored as {(s, t, u): complex-valued Fraction pair (re, im)}."""
    out: dict = {}
    for ka, (ar, ai) in a.items():
        for kb, (br, bi) in b.items():
            key = (ka[0] + kb[0], ka[1] + kb[1], ka[2] + kb[2])
            re, im = out.get(key, (Fraction(0), Fraction(0)))
            out[key] = (re + ar * br - ai * bi, im + ar * bi + ai * br)
    return {k: v for k, v in out.items() if v[0] or v[1]}


def _poly_pow(base: dict, exponent: int) -> dict:
    out = {(0, 0, 0): (Fraction(1), Fraction(0))}
    for _ in range(exponent):
        out = _poly_mul(out, base)
    return out


_ONE = Fraction(1)
_ZERO = Fraction(0)
_R2 = {(2, 0, 0): (_ONE, _ZERO), (0, 2, 0): (_ONE, _ZERO), (0, 0, 2): (_ONE, _ZERO)}
_X_PLUS_IY = {(1, 0, 0): (_ONE, _ZERO), (0, 1, 0): (_ZERO, _ONE)}


@lru_cache(maxsize=None)
def _solid_harmonic(l: int, m: int) -> tuple[dict, float]:
    """``r^l Y_l^m`` for ``m >= 0`` as (exact polynomial P, float factor): r^l Y = factor * P."""
    terms: dict = {}
    for k in range((l - m) // 2 + 1):
        coefficient = Fraction(
            (-1) ** k * math.comb(l, k) * math.comb(2 * l - 2 * k, l) * math.factorial(l - 2 * k),
            math.factorial(l - 2 * k - m),
        )
        for key, (re, im) in _poly_pow(_R2, k).items():
            key = (key[0], key[1], key[2] + l - 2 * k - m)
            old = terms.get(key, (_ZERO, _ZERO))
            terms[key] = (old[0] + coefficient * re, old[1] + coefficient * im)
    poly = _poly_mul(_poly_pow(_X_PLUS_IY, m), terms)
    factor = (-1) ** m / 2**l * math.sqrt(
        (2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
    )
    return poly, factor


@lru_cache(maxsize=None)
def _radial_coefficients(n: int, l: int) -> tuple[tuple[Fraction, ...], float]:
    """``R_nl(r) = factor * r^l * sum_j a_j r^(2j)``: exact ``a`` and float ``factor``.

    Gram-Schmidt of ``r^(l+2j)`` under ``<f, g> = int_0^1 f g r^2 dr``, normalised to
    ``int_0^1 R^2 r^2 dr = 4 pi / 3`` so that eq. 29 holds.
    """
    def inner(a, b):
        return sum(x * y / (l + 2 * i + l + 2 * j + 3) for i, x in enumerate(a) for j, y in enumerate(b))

    basis: list[tuple[Fraction, ...]] = []
    for k in range((n - l) // 2 + 1):
        vec = [Fraction(0)] * k + [Fraction(1)]
        for prev in basis:
            projection = inner(vec, prev) / inner(prev, prev)
            vec = [v - projection * (prev[i] if i < len(prev) else 0) for i, v in enumerate(vec)]
        basis.append(tuple(vec))
    coefficients = basis[-1]
    factor = math.sqrt(4 * math.pi / 3 / float(inner(coefficients, coefficients)))
    return coefficients, factor


@lru_cache(maxsize=None)
def zernike_transform(n_max: int) -> np.ndarray:
    """Matrix ``T`` (complex, (Kz, Kg)) with ``Omega = T @ m`` for geometric moments ``m``.

    Kz = len(zernike_indices(n_max)), Kg = len(geometric_indices(n_max)). Computed once per
    n_max from exact rational polynomial coefficients (eq. 30-31) and cached.
    """
    z_idx = zernike_indices(n_max)
    g_idx = geometric_indices(n_max)
    column = {tuple(int(v) for v in row): j for j, row in enumerate(g_idx)}
    matrix = np.zeros((len(z_idx), len(g_idx)), dtype=complex)
    for row, (n, l, m) in enumerate(z_idx):
        if m < 0:
            continue
        radial, radial_factor = _radial_coefficients(int(n), int(l))
        solid, solid_factor = _solid_harmonic(int(l), int(m))
        radial_poly: dict = {}
        for j, a in enumerate(radial):
            for key, (re, _) in _poly_pow(_R2, j).items():
                radial_poly[key] = (radial_poly.get(key, (_ZERO, _ZERO))[0] + a * re, _ZERO)
        poly = _poly_mul(radial_poly, solid)
        scale = 3 / (4 * math.pi) * radial_factor * solid_factor
        for key, (re, im) in poly.items():
            # conj(Z) enters the moment integral
            matrix[row, column[key]] = scale * complex(float(re), -float(im))
    # Omega_nl^{-m} = (-1)^m conj(Omega_nl^m) for a real density
    positive = {tuple(int(v) for v in r): i for i, r in enumerate(z_idx)}
    for row, (n, l, m) in enumerate(z_idx):
        if m < 0:
            matrix[row] = (-1) ** int(m) * np.conj(matrix[positive[(int(n), int(l), int(-m))]])
    matrix.setflags(write=False)
    return matrix


def zernike_moments(geometric: np.ndarray, n_max: int) -> np.ndarray:
    """Zernike moments from geometric moments (last axis, up to order n_max): (..., Kz)."""
    transform = zernike_transform(n_max)
    geometric = np.asarray(geometric)
    if geometric.shape[-1] != transform.shape[1]:
        raise ValueError(
            f"expected {transform.shape[1]} geometric moments for n_max={n_max}, "
            f"got {geometric.shape[-1]}"
        )
    return geometric @ transform.T


def _as_points(points) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim == 1 and points.shape == (3,):
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (P, 3), got {points.shape}")
    return np.ascontiguousarray(points)


def zernike_polynomials(points: np.ndarray, n_max: int) -> np.ndarray:
    """Values of every ``Z_nl^m`` at ``points`` (P, 3): complex (P, Kz).

    Uses ``Z(x) = (4 pi / 3) * conj(T_row) . monomials(x)``, the same exact coefficients as
    the moment transform.
    """
    points = _as_points(points)
    idx = geometric_indices(n_max)
    powers = _axis_powers_delta(points, n_max)
    monomials = powers[:, 0, idx[:, 0]] * powers[:, 1, idx[:, 1]] * powers[:, 2, idx[:, 2]]
    return (4 * math.pi / 3) * monomials @ np.conj(zernike_transform(n_max)).T


def reconstruct(moments: np.ndarray, n_max: int, points: np.ndarray) -> np.ndarray:
    """Density of eq. 14, ``sum Omega_nl^m Z_nl^m(x)``, at ``points`` (P, 3); zero outside |x|>1."""
    points = _as_points(points)
    moments = np.asarray(moments)
    expected = len(zernike_indices(n_max))
    if moments.shape != (expected,):
        raise ValueError(f"expected {expected} Zernike moments for n_max={n_max}, got shape {moments.shape}")
    values = (zernike_polynomials(points, n_max) @ moments).real
    values[np.einsum("ij,ij->i", points, points) > 1.0] = 0.0
    return values


def reconstruct_grid(moments: np.ndarray, n_max: int, n_points: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 14 on the cubic grid ``linspace(-1, 1, n_points)^3`` that contains the unit sphere.

    Returns ``(axis, density)`` with ``axis`` (n_points,) and ``density`` (n, n, n) indexed
    [x, y, z]; points outside the unit sphere are zero.
    """
    axis = np.linspace(-1.0, 1.0, n_points)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return axis, reconstruct(moments, n_max, grid).reshape(n_points, n_points, n_points)
