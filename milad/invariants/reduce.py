"""Exact rank decisions for polynomial invariants by modular arithmetic.

A candidate invariant is a polynomial with rational coefficients, ``{monomial: Fraction}``,
where a monomial is a sorted tuple of variable indices (repeats give powers).

Algebraic independence is decided by the Jacobian criterion (paper section II C 2): a set of
polynomials is algebraically independent iff their Jacobian has full rank at a generic point.
We evaluate the Jacobian *exactly* over the prime field F_p (p = 2^31 - 1) at a random point.
A nonzero minor mod p is a nonzero minor of the rational Jacobian, so every rank found this way
is a certified lower bound of the generic rank: an invariant that raises it is provably
independent of those kept before it. The converse fails only if the random point is a root of
a nonzero minor (probability <= degree / p < 1e-6 per decision, Schwartz-Zippel), which at
worst would drop a usable invariant, never keep a dependent one; reaching the known maximum,
(number of moments) - 3, shows that no such drop happened.

The coupling-scheme variables (complex moments) are related to the real moment components by
an invertible complex-linear map, which preserves Jacobian ranks, so the decision carries over
to the real fingerprint.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Mapping, Sequence

import numpy as np

PRIME = 2_147_483_647  # 2^31 - 1: products of two residues fit in int64

Polynomial = Mapping[tuple[int, ...], Fraction | int]

__all__ = [
    "PRIME",
    "to_field",
    "gradient_mod_p",
    "random_point",
    "RowEchelon",
    "independent_subset",
    "jacobian_rank",
    "linear_rank",
]


def to_field(value: Fraction | int, prime: int = PRIME) -> int:
    """Image of a rational number in F_p (its denominator must not be divisible by p)."""
    value = Fraction(value)
    if value.denominator % prime == 0:
        raise ZeroDivisionError(f"denominator of {value} is divisible by {prime}")
    return value.numerator % prime * pow(value.denominator % prime, -1, prime) % prime


def gradient_mod_p(poly: Polynomial, point: np.ndarray, prime: int = PRIME) -> np.ndarray:
    """Exact gradient of ``poly`` at ``point`` (int64 residues) over F_p, shape (n_vars,)."""
    n_vars = len(point)
    gradient = np.zeros(n_vars, dtype=np.int64)
    if not poly:
        return gradient
    by_degree: dict[int, list] = {}
    for monomial, coefficient in poly.items():
        by_degree.setdefault(len(monomial), []).append((monomial, to_field(coefficient, prime)))
    for degree, items in by_degree.items():
        factors = np.array([m for m, _ in items], dtype=np.int64).reshape(len(items), degree)
        coefficients = np.array([c for _, c in items], dtype=np.int64)
        values = point[factors]  # (T, degree)
        for j in range(degree):
            partial = coefficients.copy()
            for k in range(degree):
                if k != j:
                    partial = partial * values[:, k] % prime
            np.add.at(gradient, factors[:, j], partial)
            gradient %= prime
    return gradient


def random_point(n_vars: int, seed: int, prime: int = PRIME) -> np.ndarray:
    """The random point of F_p^n_vars (non-zero int64 residues) drawn from ``seed``."""
    return np.random.default_rng(seed).integers(1, prime, n_vars, dtype=np.int64)


def _vector_mod_p(poly: Polynomial, columns: dict, prime: int) -> np.ndarray:
    vec = np.zeros(len(columns), dtype=np.int64)
    for monomial, coefficient in poly.items():
        vec[columns[monomial]] = to_field(coefficient, prime)
    return vec


class RowEchelon:
    """Incremental reduced row-echelon basis over F_p."""

    def __init__(self, n_columns: int, prime: int = PRIME):
        self.prime = prime
        self.n_columns = n_columns
        self.rows: dict[int, np.ndarray] = {}

    @property
    def rank(self) -> int:
        return len(self.rows)

    def add(self, vector: np.ndarray) -> bool:
        """Add ``vector`` if it is independent of the basis; return whether it was."""
        p = self.prime
        v = np.asarray(vector, dtype=np.int64) % p
        for pivot, row in self.rows.items():
            if v[pivot]:
                v = (v - int(v[pivot]) * row % p) % p
        nonzero = np.flatnonzero(v)
        if not len(nonzero):
            return False
        pivot = int(nonzero[0])
        v = v * pow(int(v[pivot]), -1, p) % p
        for other, row in self.rows.items():
            if row[pivot]:
                self.rows[other] = (row - int(row[pivot]) * v % p) % p
        self.rows[pivot] = v
        return True


def independent_subset(
    candidates: Sequence[Polynomial], n_vars: int, seed: int = 0, prime: int = PRIME
) -> list[int]:
    """Indices of the candidates kept by the Jacobian-rank procedure, in the given order.

    Each candidate is kept only if its gradient raises the rank of the Jacobian of those kept
    before it, at one random point of F_p^n_vars drawn from ``seed``.
    """
    point = random_point(n_vars, seed, prime)
    echelon = RowEchelon(n_vars, prime)
    kept = []
    for i, poly in enumerate(candidates):
        if echelon.rank == n_vars:
            break
        if echelon.add(gradient_mod_p(poly, point, prime)):
            kept.append(i)
    return kept


def jacobian_rank(polys: Iterable[Polynomial], n_vars: int, seed: int, prime: int = PRIME) -> int:
    """Rank over F_p of the Jacobian of ``polys`` at a random point drawn from ``seed``."""
    point = random_point(n_vars, seed, prime)
    echelon = RowEchelon(n_vars, prime)
    for poly in polys:
        echelon.add(gradient_mod_p(poly, point, prime))
    return echelon.rank


def linear_rank(polys: Sequence[Polynomial], prime: int = PRIME) -> int:
    """Rank over F_p of the coefficient vectors of ``polys`` (linear independence)."""
    columns: dict = {}
    for poly in polys:
        for monomial in poly:
            columns.setdefault(monomial, len(columns))
    echelon = RowEchelon(len(columns), prime)
    for poly in polys:
        echelon.add(_vector_mod_p(poly, columns, prime))
    return echelon.rank
