"""The moment space of a Zernike invariant set: invariants as functions of real moments.

Moments of a real density obey ``Omega_nl^-m = (-1)^m conj(Omega_nl^m)``, so the decoder works
with a real vector ``x`` (``Re Omega_nl^m`` for ``m >= 0``, ``Im Omega_nl^m`` for ``m > 0``; 120
numbers for ``n_max = 7``) with ``Omega = A @ x`` and, for unit-weight deltas at ``u`` (cutoff
units), ``x = R @ monomials(u)``. Everything here is vectorised over atoms.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..invariants import InvariantSet
from ..moments import geometric_indices, monomials, zernike_indices, zernike_polynomials, zernike_transform

__all__ = ["MomentSpace", "moment_space"]


class MomentSpace:
    """The invariants of an ``InvariantSet`` as functions of the real moment vector ``x``.

    Attributes: ``A`` (K, P) complex with ``Omega = A @ x``; ``R`` (P, Kg) real with
    ``x = R @ m`` for geometric moments ``m``; ``metric`` (P,) so that
    ``||metric * (x - y)|| = ||Omega(x) - Omega(y)||``; ``l`` (P,) the angular frequency of
    each coordinate; ``invariant_l`` (n_inv,) the highest ``l`` each invariant uses.
    """

    def __init__(self, invariants: InvariantSet):
        if invariants.kind != "zernike":
            raise ValueError(f"decoding needs Zernike invariants, got a {invariants.kind} set")
        self.invariants = invariants
        self.n_max = int(invariants.max_order)
        index = zernike_indices(self.n_max)
        if not np.array_equal(np.asarray(invariants.moments), index):
            raise ValueError("the invariant set's moments are not ordered as zernike_indices(n_max)")
        position = {tuple(int(v) for v in row): k for k, row in enumerate(index)}
        columns = []  # (row of the m >= 0 moment, 0 for the real part / 1 for the imaginary part)
        for k, (n, l, m) in enumerate(index):
            if m >= 0:
                columns.append((k, 0))
            if m > 0:
                columns.append((k, 1))
        n_params = len(columns)
        self.n_params = n_params
        self.n_moments = len(index)
        A = np.zeros((len(index), n_params), dtype=complex)
        for p, (k, part) in enumerate(columns):
            n, l, m = (int(v) for v in index[k])
            unit = 1.0 if part == 0 else 1j
            A[k, p] = unit
            if m > 0:
                A[position[(n, l, -m)], p] = (-1) ** m * np.conj(unit)
        transform = zernike_transform(self.n_max)
        self.A = A
        # column p of A: a_p at row first[p] plus b_p at row second[p] (b_p = 0 if none)
        self._first = np.array([k for k, _ in columns])
        a = A[self._first, np.arange(n_params)]
        partner = [
            position[(int(index[k][0]), int(index[k][1]), -int(index[k][2]))] for k, _ in columns
        ]
        self._second = np.array(partner)  # m = 0: the same row, with b_p = 0
        b = np.where(self._second != self._first, A[self._second, np.arange(n_params)], 0)
        self._a_real, self._a_imag = a.real.copy(), a.imag.copy()
        self._b_real, self._b_imag = b.real.copy(), b.imag.copy()
        # row k of A: c1[k] at column p1[k] plus c2[k] at column p2[k] (elementwise: cheaper
        # than a complex matrix-vector product in the hot loops)
        nonzero = [np.flatnonzero(row) for row in A]
        self._p1 = np.array([cols[0] for cols in nonzero])
        self._p2 = np.array([cols[-1] for cols in nonzero])
        self._c1 = A[np.arange(len(index)), self._p1]
        self._c2 = np.where(self._p2 != self._p1, A[np.arange(len(index)), self._p2], 0)
        self._omega_terms = (self._p1, self._p2, self._c1.real.copy(), self._c1.imag.copy(),
                             self._c2.real.copy(), self._c2.imag.copy())
        self.R = np.array(
            [transform[k].real if part == 0 else transform[k].imag for k, part in columns]
        )
        # R is about 6 % non-zero (879 of 14,400 entries for n_max = 7): its products with the
        # per-atom matrices of the fits run over the non-zeros only (:func:`_sparse_times`)
        rows, self._R_columns = np.nonzero(self.R)
        self._R_starts = np.searchsorted(rows, np.arange(n_params + 1))
        self._R_values = self.R[rows, self._R_columns]
        self.metric = np.array([1.0 if index[k][2] == 0 else math.sqrt(2.0) for k, _ in columns])
        self.l = np.array([int(index[k][1]) for k, _ in columns])
        self.invariant_l = np.array(
            [
                max((max(int(index[j][1]) for j in term) for term in inv.terms), default=0)
                for inv in invariants.invariants
            ]
        )
        # degree-1 invariants of l = 0 moments give those moments directly
        self.linear = []  # (invariant index, parameter index, coefficient)
        for i, inv in enumerate(invariants.invariants):
            if inv.degree == 1 and len(inv.terms) == 1:
                (term,) = inv.terms
                k = term[0]
                if int(index[k][1]) == 0:
                    probe = np.zeros(len(index), dtype=complex)
                    probe[k] = 1.0
                    coefficient = float(invariants.evaluate(probe)[i])
                    self.linear.append((i, columns.index((k, 0)), coefficient))
        # Omega_00 (total weight) and the geometric-moment coefficients of Omega_20
        self.omega00_param = columns.index((position[(0, 0, 0)], 0))
        self.omega00_invariant = next(
            (i for i, p, _ in self.linear if p == self.omega00_param), None
        )
        geometric = geometric_indices(self.n_max)
        self._g000 = int(np.flatnonzero((geometric == 0).all(axis=1))[0])
        self._g200 = int(np.flatnonzero((geometric == [2, 0, 0]).all(axis=1))[0])
        self._p20 = columns.index((position[(2, 0, 0)], 0)) if self.n_max >= 2 else None
        # invariant magnitudes: |coefficients| times the RMS of each factor's (n, l) block
        blocks = {}
        self._block = np.array([blocks.setdefault((int(n), int(l)), len(blocks)) for n, l, _ in index])
        self._block_size = np.bincount(self._block).astype(float)
        max_degree = max(inv.degree for inv in invariants.invariants)
        owners, coefficients, factors = [], [], []
        for i, inv in enumerate(invariants.invariants):
            scale = math.sqrt(inv.scale_squared)
            for term, c in inv.terms.items():
                owners.append(i)
                coefficients.append(
                    abs(scale * float(c)) / math.prod(float(invariants.variable_scale[k]) for k in term)
                )
                factors.append([self._block[k] for k in term] + [len(blocks)] * (max_degree - len(term)))
        self._term_owner = np.array(owners)
        self._term_coefficient = np.array(coefficients)
        self._term_blocks = np.array(factors)
        self._grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -------------------------------------------------------------- moments <-> invariants
    def omega(self, x: np.ndarray) -> np.ndarray:
        """Complex moments ``A @ x``."""
        x = np.asarray(x)
        if x.dtype != np.float64:
            return self._c1 * x[..., self._p1] + self._c2 * x[..., self._p2]
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        return _omega(flat, *self._omega_terms).reshape(*x.shape[:-1], len(self._p1))

    def phi(self, x: np.ndarray, rows=None) -> np.ndarray:
        """Invariants of ``x`` (all, or those of the indices ``rows``)."""
        return self.invariants.evaluate(self.omega(x), rows)

    def phi_and_jacobian(self, x: np.ndarray, rows=None,
                         params=None) -> tuple[np.ndarray, np.ndarray]:
        """Invariants and their real derivatives with respect to ``x``: (n_inv,), (n_inv, P);
        with ``rows`` (invariant indices) and ``params`` (indices into ``x``) only those
        invariants and those derivatives, (len(rows),), (len(rows), len(params)); the same
        floats as the full arrays hold there."""
        phi, jacobian = self.phi_with_jacobian(x, rows, params)
        return phi, jacobian()

    def phi_with_jacobian(self, x: np.ndarray, rows=None, params=None):
        """``phi_and_jacobian`` with the derivatives deferred: ``(phi, jacobian)`` where
        ``jacobian()`` forms them (the same floats) from the moments already computed. A fit
        needs them only where it accepts a step, and they cost about ten times the values."""
        omega = self.omega(x)

        def jacobian() -> np.ndarray:
            columns = slice(None) if params is None else np.asarray(params, dtype=np.int64)
            return _real_chain_two(self.invariants.jacobian(omega, rows), self._first[columns],
                                   self._a_real[columns], self._a_imag[columns],
                                   self._second[columns], self._b_real[columns],
                                   self._b_imag[columns])

        return self.invariants.evaluate(omega, rows), jacobian

    def magnitudes(self, x: np.ndarray) -> np.ndarray:
        """Typical size of every invariant for moments like ``x``: each invariant's polynomial
        with absolute coefficients evaluated on the RMS of each (n, l) block, (n_inv,)."""
        omega = self.omega(x)
        rms = np.sqrt(np.bincount(self._block, np.abs(omega) ** 2) / self._block_size)
        rms = np.append(rms, 1.0)
        products = np.prod(rms[self._term_blocks], axis=1) * self._term_coefficient
        return np.bincount(self._term_owner, products, minlength=len(self.invariants))

    def moment_rmsd(self, x: np.ndarray, y: np.ndarray) -> float:
        """RMSD between the complex moment vectors of ``x`` and ``y``."""
        return float(np.linalg.norm(self.metric * (x - y)) / math.sqrt(self.n_moments))

    # -------------------------------------------------------------- atoms -> moments
    def moments(self, positions: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``x`` of weighted deltas at ``positions`` (N, 3) in cutoff units."""
        values, _ = monomials(positions, self.n_max)
        return self.R @ (weights @ values)

    def weight_columns(self, positions: np.ndarray) -> np.ndarray:
        """dx/dweights (P, N) of deltas at ``positions`` (N, 3): the moments are linear in the
        weights, ``x = weight_columns(positions) @ weights``."""
        values, _ = monomials(positions, self.n_max)
        return self._R_times(values.T)

    def moments_with_derivatives(self, positions, weights):
        """``x`` of weighted deltas at ``positions`` (N, 3) and ``derivatives(wrt_positions,
        wrt_weights)``, which forms dx/dpositions (P, N, 3) and dx/dweights (P, N) from the
        monomials already computed, vectorised over atoms; a derivative not asked for is
        ``None`` and costs nothing. Deferred because a fit needs them only where it accepts a
        step."""
        values, gradients = monomials(positions, self.n_max)
        x = self.R @ (weights @ values)

        def derivatives(wrt_positions: bool = True, wrt_weights: bool = True):
            n = len(values)
            d_positions = d_weights = None
            if wrt_positions:
                # (K, N, 3) contiguous: monomials lays the gradients out moment-major; column
                # (a, c) of R @ (gradients * weights)
                by_moment = gradients.transpose(1, 0, 2).reshape(-1, 3 * n)
                d_positions = self._R_times(by_moment, np.repeat(weights, 3)).reshape(len(x), n, 3)
            if wrt_weights:
                d_weights = self._R_times(values.T)
            return d_positions, d_weights

        return x, derivatives

    def _R_times(self, matrix: np.ndarray, column_scale: np.ndarray | None = None) -> np.ndarray:
        """``R @ (matrix * column_scale)`` for a (Kg, M) matrix and (M,) scale (default
        ones), over the non-zeros of ``R``."""
        matrix = np.ascontiguousarray(matrix)
        if column_scale is None:
            column_scale = np.ones(matrix.shape[1])
        return _sparse_times(self._R_starts, self._R_columns, self._R_values, matrix, column_scale)

    def mean_square_radius(self, x: np.ndarray) -> float | None:
        """``sum w r^2 / sum w`` (cutoff units) read off the l = 0 moments, None if unknown."""
        if self._p20 is None:
            return None
        row = self.R[self._p20]
        total = self.total_weight(x)
        if not total > 0:
            return None
        second = (x[self._p20] - row[self._g000] * total) / row[self._g200]
        return float(second / total)

    # -------------------------------------------------------------- total weight and l = 0
    def total_weight(self, x: np.ndarray) -> float:
        """``sum_i w_i`` read off the ``Omega_00`` coordinate of ``x``."""
        return x[self.omega00_param] / self.R[self.omega00_param, self._g000]

    def fingerprint_total_weight(self, fingerprint: np.ndarray) -> float:
        """``sum_i w_i`` read off the fingerprint's ``Omega_00`` invariant (NaN if it has none)."""
        if self.omega00_invariant is None:
            return math.nan
        i = self.omega00_invariant
        coefficient = next(c for k, _, c in self.linear if k == i)
        return float(fingerprint[i]) / coefficient * 4 * math.pi / 3

    def set_l0_moments(self, x: np.ndarray, fingerprint: np.ndarray) -> np.ndarray:
        """Set, in place, the ``l = 0`` coordinates of ``x`` that degree-1 invariants give directly."""
        for i, p, coefficient in self.linear:
            x[p] = fingerprint[i] / coefficient
        return x

    # -------------------------------------------------------------- reconstruction grid
    def grid(self, n_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid points (G, 3) of ``linspace(-1, 1, n_points)^3`` inside the unit sphere and the
        real basis ``B`` (G, P) with density ``B @ x`` (eq. 14); cached per ``n_points``."""
        n_points = int(n_points)
        if n_points not in self._grids:
            axis = np.linspace(-1.0, 1.0, n_points)
            grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
            grid = grid[np.einsum("ij,ij->i", grid, grid) <= 1.0]
            basis = np.ascontiguousarray((zernike_polynomials(grid, self.n_max) @ self.A).real)
            if len(self._grids) >= 4:  # a few grid sizes at most: drop the oldest
                self._grids.pop(next(iter(self._grids)))
            self._grids[n_points] = (grid, basis)
        return self._grids[n_points]


@numba.njit(cache=True)
def _real_chain_two(jacobian, first, a_real, a_imag, second, b_real, b_imag):
    """Re(J @ A) (n_inv, P) for A with two non-zeros per column (a_p at row first[p], b_p at
    row second[p]): ``(Re J a) + (Re J b)`` formed element by element as the numpy
    expression it replaces did (the same floats), without its gathered temporaries."""
    n_rows = jacobian.shape[0]
    n_params = first.shape[0]
    out = np.empty((n_rows, n_params))
    for i in range(n_rows):
        for p in range(n_params):
            u = jacobian[i, first[p]]
            v = jacobian[i, second[p]]
            out[i, p] = (u.real * a_real[p] - u.imag * a_imag[p]) + (
                v.real * b_real[p] - v.imag * b_imag[p])
    return out


@numba.njit(cache=True)
def _omega(x, p1, p2, c1_real, c1_imag, c2_real, c2_imag):
    """``c1 * x[p1] + c2 * x[p2]`` (B, K) for real ``x`` (B, P), with numpy's complex
    products by ``x + 0j`` written out (the same floats, signs of zeros included), without
    the expression's gathered and promoted temporaries."""
    out = np.empty((x.shape[0], p1.shape[0]), dtype=np.complex128)
    for b in range(x.shape[0]):
        for k in range(p1.shape[0]):
            u = x[b, p1[k]]
            v = x[b, p2[k]]
            real = (c1_real[k] * u - c1_imag[k] * 0.0) + (c2_real[k] * v - c2_imag[k] * 0.0)
            imag = (c1_real[k] * 0.0 + c1_imag[k] * u) + (c2_real[k] * 0.0 + c2_imag[k] * v)
            out[b, k] = complex(real, imag)
    return out


@numba.njit(cache=True, fastmath={"contract"})
def _sparse_times(starts, columns, values, matrix, column_scale):
    """``S @ (matrix * column_scale)`` for S in compressed rows (row p:
    ``values[starts[p]:starts[p + 1]]`` at ``columns[...]``, ascending). Each entry is
    accumulated over the non-zeros in column order with fused multiply-adds, which is how
    OpenBLAS's dgemm kernel sums the dense product (the zeros it adds change nothing), so the
    floats equal ``S_dense @ (matrix * column_scale)`` where that kernel runs."""
    n_rows, n_columns = starts.shape[0] - 1, matrix.shape[1]
    out = np.zeros((n_rows, n_columns))
    for p in range(n_rows):
        for q in range(starts[p], starts[p + 1]):
            value, row = values[q], matrix[columns[q]]
            for j in range(n_columns):
                out[p, j] = value * (row[j] * column_scale[j]) + out[p, j]
    return out


def moment_space(invariants: InvariantSet) -> MomentSpace:
    """The ``MomentSpace`` of an invariant set, built once and kept (and freed) with the set."""
    return invariants.derived("moment_space", lambda: MomentSpace(invariants))
