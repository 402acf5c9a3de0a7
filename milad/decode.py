"""Decoding: from a MILAD fingerprint back to atoms and species (paper section III).

The decoder alternates (paper Fig. 4) between

1. **moments from invariants** (Algorithm 1): a Levenberg-Marquardt fit (SciPy
   ``least_squares(method="lm")``, analytic Jacobians) of the moments to the fingerprint,
   growing the angular frequency ``l'`` from 1 to ``l_max`` and fitting at each step only the
   invariants built from moments with ``l <= l'``; the ``l = l'`` block is re-randomised and
   the fit retried while the invariant RMSD stays above its tolerance. Residuals are divided by
   the typical size of each invariant for a molecule of the fingerprint's size and weight
   (the high orders of a small molecule are tiny), so the tolerance is a relative one;
2. **atoms from moments**: initial positions by peak finding (Algorithm 2) on the eq. 14
   reconstruction over a cubic grid (by default with a refit of the atoms placed so far after
   each placement), then a least-squares fit of the positions (and weights, for species) to the
   moments plus the repulsion of eq. 35 (the loss of eq. 36), and single-atom relocations out of
   local minima;

each followed by a *polish*, a least-squares fit of the positions (and weights) directly to the
target fingerprint. Between the alternations, *basin hops* perturb the best atoms and polish
again. Success means a fingerprint RMSD between the target and the decoded structure below
``tol`` (1e-6 by default, the paper's threshold).

Why the alternation matters: the 117 invariants do not determine the moments uniquely (e.g.
7 of the 15 invariants that involve the l = 7 block are quadratic in it), so Algorithm 1 lands
on one of many moment vectors with the right invariants, most of which no set of N atoms
produces. Fitting atoms, then refitting the moments from the atoms' moments, steers towards a
realisable one.

Moments of a real density obey ``Omega_nl^-m = (-1)^m conj(Omega_nl^m)``, so they are handled
as a real vector ``x`` (``Re Omega_nl^m`` for ``m >= 0``, ``Im Omega_nl^m`` for ``m > 0``; 120
numbers for ``n_max = 7``) with ``Omega = A @ x`` and, for unit-weight deltas at ``u``,
``x = R @ monomials(u)``. Positions inside the fits are in units of the cutoff. The residuals
and Jacobians are vectorised over atoms and pairs (no Python loop over atoms).

Species (weights in the species map's range, e.g. the paper's H, C, O, N, F -> 1.1 ... 1.9 over [1, 2]):

* ``species_mode="single"``: one fingerprint with species; weights are free within the range
  during the fits and then snapped to the nearest species, after which the positions are
  polished again with the snapped weights;
* ``species_mode="two"``: a second, positions-only fingerprint (all weights 1) is decoded first;
  then only the weights are fitted to the species fingerprint with the positions fixed.

Every random choice comes from ``numpy.random.default_rng((seed, attempt))``. The fits are
chaotic (which root of the invariant equations is reached), and MINPACK's path through them
can differ in the last bits between runs (SciPy's LM is not bitwise reproducible here), so the
same seed usually but not always gives the same structure.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from ase import Atoms
from scipy.optimize import least_squares

from .descriptor import Descriptor
from .invariants import InvariantSet
from .moments import geometric_indices, monomials, zernike_indices, zernike_polynomials, zernike_transform

__all__ = [
    "DecodeResult",
    "MomentSpace",
    "RepulsionTerm",
    "decode",
    "atoms_from_moments",
    "moments_from_invariants",
    "peak_find",
    "count_atoms",
]

SPECIES_MODES = ("positions", "single", "two")

try:  # the fits make many small BLAS calls: extra BLAS threads only contend on shared cores
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError:  # pragma: no cover - optional
    _threadpool_limits = None


def _single_threaded_blas():
    return _threadpool_limits(1) if _threadpool_limits is not None else nullcontext()


# ----------------------------------------------------------------------------------------
# real coordinates of the moments and the invariants as functions of them
# ----------------------------------------------------------------------------------------
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
        self._a = A[self._first, np.arange(n_params)]
        partner = [
            position[(int(index[k][0]), int(index[k][1]), -int(index[k][2]))] for k, _ in columns
        ]
        self._second = np.array(partner)  # m = 0: the same row, with b_p = 0
        self._b = np.where(self._second != self._first, A[self._second, np.arange(n_params)], 0)
        # row k of A: c1[k] at column p1[k] plus c2[k] at column p2[k] (elementwise: cheaper
        # than a complex matrix-vector product in the hot loops)
        nonzero = [np.flatnonzero(row) for row in A]
        self._p1 = np.array([cols[0] for cols in nonzero])
        self._p2 = np.array([cols[-1] for cols in nonzero])
        self._c1 = A[np.arange(len(index)), self._p1]
        self._c2 = np.where(self._p2 != self._p1, A[np.arange(len(index)), self._p2], 0)
        self.R = np.array(
            [transform[k].real if part == 0 else transform[k].imag for k, part in columns]
        )
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

    # -------------------------------------------------------------- moments <-> invariants
    def omega(self, x: np.ndarray) -> np.ndarray:
        """Complex moments ``A @ x``."""
        x = np.asarray(x)
        return self._c1 * x[..., self._p1] + self._c2 * x[..., self._p2]

    def phi(self, x: np.ndarray) -> np.ndarray:
        return self.invariants.evaluate(self.omega(x))

    def phi_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Invariants and their real derivatives with respect to ``x``: (n_inv,), (n_inv, P)."""
        omega = self.omega(x)
        jacobian = self.invariants.jacobian(omega)
        # Re(J @ A) using the two non-zeros of every column of A
        real, imag = jacobian.real, jacobian.imag
        first, second = self._first, self._second
        d_x = real[:, first] * self._a.real - imag[:, first] * self._a.imag
        d_x += real[:, second] * self._b.real - imag[:, second] * self._b.imag
        return self.invariants.evaluate(omega), d_x

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

    def moments_and_derivatives(self, positions, weights):
        """``x``, dx/dpositions (P, N, 3) and dx/dweights (P, N); vectorised over atoms."""
        values, gradients = monomials(positions, self.n_max)
        n = len(positions)
        x = self.R @ (weights @ values)
        weighted = (gradients * weights[:, None, None]).transpose(1, 0, 2).reshape(-1, 3 * n)
        d_positions = (self.R @ weighted).reshape(len(x), n, 3)
        d_weights = self.R @ values.T
        return x, d_positions, d_weights

    def mean_square_radius(self, x: np.ndarray) -> float | None:
        """``sum w r^2 / sum w`` (cutoff units) read off the l = 0 moments, None if unknown."""
        if self._p20 is None:
            return None
        row = self.R[self._p20]
        total = x[self.omega00_param] / self.R[self.omega00_param, self._g000]
        if not total > 0:
            return None
        second = (x[self._p20] - row[self._g000] * total) / row[self._g200]
        return float(second / total)


_SPACES: dict[int, tuple[InvariantSet, MomentSpace]] = {}


def moment_space(invariants: InvariantSet) -> MomentSpace:
    """The (cached) ``MomentSpace`` of an invariant set."""
    entry = _SPACES.get(id(invariants))
    if entry is None or entry[0] is not invariants:
        entry = (invariants, MomentSpace(invariants))
        _SPACES[id(invariants)] = entry
    return entry[1]


# ----------------------------------------------------------------------------------------
# small least-squares helpers
# ----------------------------------------------------------------------------------------
def _lm(fun, x0: np.ndarray, max_nfev: int, tol: float = 1e-15):
    """``least_squares(method="lm")`` on ``fun(x) -> (residuals, jacobian)``.

    MINPACK's LM needs at least as many residuals as unknowns: rows of zeros are appended when
    there are fewer (the orientation leaves the moment fits underdetermined by 3).
    """
    cache = {}

    def evaluate(x):
        key = x.tobytes()
        if key not in cache:
            cache.clear()
            residuals, jacobian = fun(x)
            missing = len(x) - len(residuals)
            if missing > 0:
                residuals = np.concatenate([residuals, np.zeros(missing)])
                jacobian = np.vstack([jacobian, np.zeros((missing, len(x)))])
            cache[key] = (residuals, jacobian)
        return cache[key]

    # MINPACK may overwrite the arrays it is handed: give it copies of the cached ones
    result = least_squares(
        lambda x: evaluate(x)[0].copy(), x0, jac=lambda x: evaluate(x)[1].copy(), method="lm",
        ftol=tol, xtol=tol, gtol=tol, max_nfev=max_nfev,
    )
    return result.x


@dataclass(frozen=True)
class RepulsionTerm:
    """The short-range repulsion of eq. 35, zero (with zero slope) from ``r_min`` on.

    ``E(r) = 4 eps [(sigma / r)^n + k1 r + k2]`` for ``r < r_min`` (Angstrom) with ``k1`` and
    ``k2`` chosen so that E and dE/dr vanish at ``r_min``.
    """

    epsilon: float = 0.1
    sigma: float = 1.0
    power: int = 2
    r_min: float = 0.55

    @property
    def k1(self) -> float:
        return self.power * self.sigma**self.power / self.r_min ** (self.power + 1)

    @property
    def k2(self) -> float:
        return -((self.sigma / self.r_min) ** self.power) - self.k1 * self.r_min

    def energy(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        inside = r < self.r_min
        # clamped far below any physical distance so that coincident atoms stay finite
        safe = np.where(inside, np.maximum(r, 0.05 * self.r_min), self.r_min)
        value = 4 * self.epsilon * ((self.sigma / safe) ** self.power + self.k1 * safe + self.k2)
        return np.where(inside, np.maximum(value, 0.0), 0.0)

    def derivative(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        inside = r < self.r_min
        safe = np.where(inside, np.maximum(r, 0.05 * self.r_min), self.r_min)
        value = 4 * self.epsilon * (-self.power * self.sigma**self.power / safe ** (self.power + 1) + self.k1)
        return np.where(inside, value, 0.0)

    def pair_energy(self, positions: np.ndarray, scale: float):
        """Eq. 36's double sum ``sum_{i != j} E(r_ij)`` split per atom, ``S_i = sum_j E(r_ij)``,
        and dS/dpositions (N, N, 3); ``positions * scale`` are in Angstrom. Vectorised over the
        pairs closer than ``r_min``."""
        n = len(positions)
        total = np.zeros(n)
        jacobian = np.zeros((n, n, 3))
        if n < 2:
            return total, jacobian
        i, j = np.triu_indices(n, 1)
        delta = positions[i] - positions[j]
        r = np.linalg.norm(delta, axis=1) * scale
        close = r < self.r_min
        if not close.any():
            return total, jacobian
        i, j, delta, r = i[close], j[close], delta[close], r[close]
        energy = self.energy(r)
        # dr_ij / du_i = scale^2 (u_i - u_j) / r_ij
        g = (self.derivative(r) * scale**2 / np.maximum(r, 1e-12))[:, None] * delta
        np.add.at(total, i, energy)
        np.add.at(total, j, energy)
        np.add.at(jacobian, (i, i), g)
        np.add.at(jacobian, (i, j), -g)
        np.add.at(jacobian, (j, j), -g)
        np.add.at(jacobian, (j, i), g)
        return total, jacobian


_WALL = 10.0  # stiffness of the soft wall keeping atoms inside the unit sphere
_WEIGHT_WALL = 10.0  # stiffness of the penalty keeping weights inside their range


def _position_penalty(positions: np.ndarray, repulsion: "RepulsionTerm | None", scale: float):
    """One residual per atom, ``sqrt(S_i + (k max(0, |u_i| - 1))^2)``: the repulsion of eq. 35
    (the squares sum to eq. 36's double sum) plus a soft wall at the unit sphere. Returns the
    residuals (N,) and their Jacobian (N, 3N)."""
    n = len(positions)
    radius = np.linalg.norm(positions, axis=1)
    excess = _WALL * np.maximum(radius - 1.0, 0.0)
    total = excess**2
    jacobian = np.zeros((n, n, 3))
    rows = np.arange(n)
    jacobian[rows, rows] = (2 * excess * _WALL / np.maximum(radius, 1e-12))[:, None] * positions
    if repulsion is not None:
        energy, d_energy = repulsion.pair_energy(positions, scale)
        total = total + energy
        jacobian += d_energy
    residuals = np.sqrt(total)
    # d sqrt(S) = dS / (2 sqrt(S)); S vanishes quadratically, so the ratio stays finite
    jacobian /= 2 * np.maximum(residuals, 1e-12)[:, None, None]
    return residuals, jacobian.reshape(n, 3 * n)


def _weight_penalty(weights: np.ndarray, low: float, high: float):
    """Residuals ``k * distance outside [low, high]`` (N,) and their Jacobian (N, N)."""
    below, above = weights < low, weights > high
    residuals = _WEIGHT_WALL * (np.maximum(low - weights, 0.0) + np.maximum(weights - high, 0.0))
    jacobian = np.diag(_WEIGHT_WALL * (above.astype(float) - below.astype(float)))
    return residuals, jacobian


# ----------------------------------------------------------------------------------------
# Algorithm 1: moments from invariants
# ----------------------------------------------------------------------------------------
def _fit_moments_block(space: MomentSpace, target: np.ndarray, x: np.ndarray, params: np.ndarray,
                       rows: np.ndarray, scales: np.ndarray, max_nfev: int) -> tuple[np.ndarray, float]:
    """LM fit of ``x[params]`` to the invariants ``rows`` (residuals divided by ``scales``);
    returns (x, scaled invariant RMSD over ``rows``)."""
    inverse = 1.0 / scales[rows]

    def fun(free):
        trial = x.copy()
        trial[params] = free
        values, jacobian = space.phi_and_jacobian(trial)
        return (values[rows] - target[rows]) * inverse, jacobian[np.ix_(rows, params)] * inverse[:, None]

    solution = x.copy()
    solution[params] = _lm(fun, x[params], max_nfev)
    residual = (space.phi(solution)[rows] - target[rows]) * inverse
    return solution, float(np.sqrt(np.mean(residual**2)))


def moments_from_invariants(
    fingerprint: np.ndarray,
    invariants: InvariantSet,
    initial: np.ndarray,
    rng: np.random.Generator,
    *,
    tol: float = 1e-5,
    max_retries: int = 2,
    randomise=None,
    l_start: int = 1,
    l_stop: int | None = None,
    scales: np.ndarray | None = None,
    max_nfev: int = 200,
) -> tuple[np.ndarray, float]:
    """Algorithm 1: real moment vector ``x`` whose invariants match ``fingerprint``.

    ``initial``: starting ``x`` (e.g. the moments of random atoms). For ``l'`` from
    ``l_start`` to ``l_max`` the moments with ``l <= l'`` are fitted (LM) to the invariants
    that only use such moments; while the invariant RMSD stays above ``tol`` the ``l = l'``
    block is replaced by ``randomise(rng)[block]`` (default: Gaussian noise of the block's
    size) and the fit retried, up to ``max_retries`` fits per ``l'``, keeping the best. The
    ``l = 0`` moments are set directly from their degree-1 invariants first.

    scales: optional (n_inv,) divisors of the invariant residuals. The invariants of a small
    molecule span many orders of magnitude (high orders are tiny), so dividing by their
    typical size (``MomentSpace.magnitudes``) makes every invariant count; the RMSD compared
    with ``tol`` is then a relative one. Returns ``(x, scaled RMSD over all invariants)``.
    """
    space = moment_space(invariants)
    target = np.asarray(fingerprint, dtype=float)
    scales = np.ones(len(target)) if scales is None else np.asarray(scales, dtype=float)
    x = np.array(initial, dtype=float)
    for i, p, coefficient in space.linear:
        x[p] = target[i] / coefficient
    l_max = int(space.l.max()) if l_stop is None else min(int(l_stop), int(space.l.max()))
    for l_prime in range(max(1, l_start), l_max + 1):
        params = np.flatnonzero(space.l <= l_prime)
        block = np.flatnonzero(space.l == l_prime)
        rows = np.flatnonzero(space.invariant_l <= l_prime)
        best_x, best_rmsd = x, math.inf
        trial = x.copy()
        for retry in range(max(1, max_retries)):
            fitted, rmsd = _fit_moments_block(space, target, trial, params, rows, scales, max_nfev)
            if rmsd < best_rmsd:
                best_x, best_rmsd = fitted, rmsd
            if best_rmsd < tol:
                break
            trial = best_x.copy()
            if randomise is None:
                scale = np.linalg.norm(trial[block]) / math.sqrt(len(block)) + 1e-3
                trial[block] = rng.normal(0.0, scale, len(block))
            else:
                trial[block] = randomise(rng)[block]
        x = best_x
    residual = (space.phi(x) - target) / scales
    return x, float(np.sqrt(np.mean(residual**2)))


# ----------------------------------------------------------------------------------------
# Algorithm 2: peak finding, and the fit of atoms to moments (eq. 36)
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _grid_basis(invariants_id: int, n_max: int, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (G, 3) of ``linspace(-1, 1, n_points)^3`` inside the unit sphere and the
    real basis ``B`` (G, P) with density ``B @ x`` (eq. 14)."""
    space = _SPACES[invariants_id][1]
    axis = np.linspace(-1.0, 1.0, n_points)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.einsum("ij,ij->i", grid, grid) <= 1.0]
    basis = np.ascontiguousarray((zernike_polynomials(grid, n_max) @ space.A).real)
    return grid, basis


def peak_find(
    x: np.ndarray,
    invariants: InvariantSet,
    n_atoms: int,
    *,
    weight: float = 1.0,
    r_min: float = 0.11,
    n_points: int = 31,
    trace: list | None = None,
) -> np.ndarray:
    """Algorithm 2: ``n_atoms`` positions (cutoff units) from the moment vector ``x``.

    Repeatedly takes the grid maximum of the eq. 14 reconstruction, subtracts the
    reconstruction of a single atom of ``weight`` there and excludes grid points closer than
    ``r_min`` (cutoff units) to it.

    trace: when a list is given, one dict per placed atom is appended to it (for figures such as
    the paper's Fig. 3): ``grid`` (G, 3) grid points inside the unit sphere, ``values`` (G,) the
    reconstruction the atom was picked from, ``available`` (G,) bool mask of points not yet
    excluded, ``position`` (3,) the picked point.
    """
    space = moment_space(invariants)
    grid, basis = _grid_basis(id(invariants), space.n_max, int(n_points))
    values = basis @ x
    available = np.ones(len(grid), dtype=bool)
    positions = np.zeros((n_atoms, 3))
    for a in range(n_atoms):
        if not available.any():  # pragma: no cover - only for absurd r_min
            available[:] = True
        best = int(np.argmax(np.where(available, values, -np.inf)))
        point = grid[best]
        positions[a] = point
        if trace is not None:
            trace.append({"grid": grid, "values": values.copy(), "available": available.copy(),
                          "position": point.copy()})
        values = values - basis @ space.moments(point[None], np.array([weight]))
        available &= np.einsum("ij,ij->i", grid - point, grid - point) >= r_min**2
    return positions


def _moment_residuals(space: MomentSpace, target_x, positions, weights):
    x, d_positions, d_weights = space.moments_and_derivatives(positions, weights)
    scale = space.metric / math.sqrt(space.n_moments)
    residuals = scale * (x - target_x)
    return residuals, scale[:, None] * d_positions.reshape(len(x), -1), scale[:, None] * d_weights


def _phi_residuals(space: MomentSpace, target_phi, positions, weights):
    x, d_positions, d_weights = space.moments_and_derivatives(positions, weights)
    phi, jacobian = space.phi_and_jacobian(x)
    scale = 1.0 / math.sqrt(len(phi))
    residuals = scale * (phi - target_phi)
    return residuals, scale * (jacobian @ d_positions.reshape(len(x), -1)), scale * (jacobian @ d_weights)


def _fit_atoms(
    space: MomentSpace,
    kind: str,
    target: np.ndarray,
    positions: np.ndarray,
    weights: np.ndarray,
    *,
    fit_positions: bool = True,
    fit_weights: bool = False,
    weight_range: tuple[float, float] | None = None,
    repulsion: RepulsionTerm | None = None,
    cutoff: float = 1.0,
    max_nfev: int = 200,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """LM fit of positions and/or weights to moments (``kind="moments"``, eq. 36) or to the
    fingerprint (``kind="phi"``), with the repulsion, the unit-sphere wall and the weight-range
    penalty as extra residuals. ``rows`` restricts the fit to some moment coordinates (or
    invariants)."""
    n = len(positions)
    residual_of = _moment_residuals if kind == "moments" else _phi_residuals

    def unpack(free):
        p = free[: 3 * n].reshape(n, 3) if fit_positions else positions
        w = free[3 * n :] if fit_positions else free
        return p, (w if fit_weights else weights)

    def fun(free):
        p, w = unpack(free)
        residuals, d_positions, d_weights = residual_of(space, target, p, w)
        if rows is not None:
            residuals, d_positions, d_weights = residuals[rows], d_positions[rows], d_weights[rows]
        blocks, jacobians = [residuals], []
        columns = []
        if fit_positions:
            columns.append(d_positions)
        if fit_weights:
            columns.append(d_weights)
        jacobians.append(np.hstack(columns))
        n_free = len(free)
        if fit_positions:
            values, jac_p = _position_penalty(p, repulsion, cutoff)
            jac = np.zeros((n, n_free))
            jac[:, : 3 * n] = jac_p
            blocks.append(values)
            jacobians.append(jac)
        if fit_weights and weight_range is not None:
            values, jac_w = _weight_penalty(w, *weight_range)
            jac = np.zeros((len(values), n_free))
            jac[:, n_free - n :] = jac_w
            blocks.append(values)
            jacobians.append(jac)
        return np.concatenate(blocks), np.vstack(jacobians)

    start = []
    if fit_positions:
        start.append(positions.ravel())
    if fit_weights:
        start.append(weights)
    solution = _lm(fun, np.concatenate(start), max_nfev)
    p, w = unpack(solution)
    return np.array(p), np.array(w, dtype=float)


def _greedy_positions(space, x, grid, basis, weights, *, fit_weights, weight_range, repulsion,
                      cutoff, r_min, max_nfev):
    """Algorithm 2 with a refit: atoms are placed one by one at the maximum of the residual
    density (the reconstruction minus the signal of the atoms placed so far, away from them by
    ``r_min``), and after each placement the atoms placed so far are fitted to the moments."""
    n = len(weights)
    positions = np.zeros((0, 3))
    placed = np.zeros(0)
    for a in range(n):
        residual = x - space.moments(positions, placed) if a else x
        values = basis @ residual
        if a:
            diff = grid[:, None, :] - positions[None, :, :]
            near = (np.einsum("gak,gak->ga", diff, diff) < r_min**2).any(axis=1)
            values = np.where(near, -np.inf, values)
        positions = np.vstack([positions, grid[int(np.argmax(values))]])
        placed = np.append(placed, weights[a])
        positions, placed = _fit_atoms(
            space, "moments", x, positions, placed, fit_weights=fit_weights,
            weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, max_nfev=max_nfev,
        )
    return positions, placed


def _relocate(space, x, positions, weights, grid, basis, *, moves, fit_weights, weight_range,
              repulsion, cutoff, r_min, max_nfev, tol=1e-10):
    """Escape local minima of the fit to the moments by moving single atoms.

    The atom sitting in the most negative residual density (``x`` minus the atoms' moments,
    reconstructed on the grid) is moved to the maximum of the residual density away from the
    other atoms and the fit redone; the move is kept when it lowers the moment RMSD. Atoms are
    tried in order of their residual density until one move is accepted (then the ranking is
    recomputed), at most ``moves`` fits in all.
    """
    def moment_rmsd(p, w):
        return space.moment_rmsd(space.moments(p, w), x)

    best = moment_rmsd(positions, weights)
    tried: set[int] = set()
    for _ in range(moves):
        if best < tol:
            break
        residual = basis @ (x - space.moments(positions, weights))
        diff = grid[:, None, :] - positions[None, :, :]
        distance2 = np.einsum("gak,gak->ga", diff, diff)
        at_atoms = residual[np.argmin(distance2, axis=0)]
        order = [int(a) for a in np.argsort(at_atoms) if int(a) not in tried]
        if not order:
            tried.clear()
            order = [int(a) for a in np.argsort(at_atoms)]
        atom = order[0]
        tried.add(atom)
        near = (np.delete(distance2, atom, axis=1) < r_min**2).any(axis=1)
        trial = positions.copy()
        trial[atom] = grid[int(np.argmax(np.where(near, -np.inf, residual)))]
        trial, trial_weights = _fit_atoms(
            space, "moments", x, trial, weights, fit_weights=fit_weights,
            weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, max_nfev=max_nfev,
        )
        rmsd = moment_rmsd(trial, trial_weights)
        if rmsd < best:
            best, positions, weights = rmsd, trial, trial_weights
            tried.clear()
    return positions, weights


def atoms_from_moments(
    x: np.ndarray,
    invariants: InvariantSet,
    n_atoms: int,
    *,
    weights: np.ndarray | None = None,
    fit_weights: bool = False,
    weight_range: tuple[float, float] | None = None,
    cutoff: float = 5.0,
    repulsion: RepulsionTerm | None = RepulsionTerm(),
    n_points: int = 31,
    initial_positions: np.ndarray | None = None,
    method: str = "greedy",
    moves: int = 10,
    max_nfev: int = 200,
    greedy_nfev: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (cutoff units) and weights of ``n_atoms`` deltas reproducing the moments ``x``.

    Starts from ``initial_positions`` or, without them, from peak finding on the eq. 14
    reconstruction over a ``n_points^3`` grid: ``method="peaks"`` is Algorithm 2 as published,
    ``method="greedy"`` (default) refits the atoms placed so far to the moments after each
    placement (``greedy_nfev`` evaluations each), which finds much better starts for larger
    molecules. Then positions (and weights with ``fit_weights``, kept in ``weight_range``) are
    fitted by LM to the loss of eq. 36 (moment RMSD plus the repulsion of eq. 35). Up to
    ``moves`` single-atom relocations (see ``_relocate``) follow while the moment RMSD is not
    negligible. With ``fit_weights`` and no ``initial_positions`` the positions are found first
    with the weights held fixed, then positions and weights are fitted together (much more
    reliable than fitting both from the start).
    """
    space = moment_space(invariants)
    if method not in ("greedy", "peaks"):
        raise ValueError(f"unknown peak-finding method {method!r}; choose 'greedy' or 'peaks'")
    if weights is None:
        total = x[space.omega00_param] / space.R[space.omega00_param, space._g000]
        weights = np.full(n_atoms, total / n_atoms)
    weights = np.asarray(weights, dtype=float)
    r_min = max((repulsion.r_min if repulsion is not None else 0.55) / cutoff, 1e-3)
    if initial_positions is None and fit_weights:
        # positions first, with the weights held at their starting values; then both
        initial_positions, weights = atoms_from_moments(
            x, invariants, n_atoms, weights=weights, fit_weights=False, cutoff=cutoff,
            repulsion=repulsion, n_points=n_points, method=method, moves=moves,
            max_nfev=max_nfev, greedy_nfev=greedy_nfev,
        )
    if initial_positions is None:
        if method == "peaks":
            initial_positions = peak_find(x, invariants, n_atoms, weight=float(weights.mean()),
                                          r_min=r_min, n_points=n_points)
        else:
            grid, basis = _grid_basis(id(invariants), space.n_max, int(n_points))
            initial_positions, weights = _greedy_positions(
                space, x, grid, basis, weights, fit_weights=fit_weights,
                weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, r_min=r_min,
                max_nfev=greedy_nfev,
            )
    positions, weights = _fit_atoms(
        space, "moments", x, np.asarray(initial_positions, float), weights,
        fit_weights=fit_weights, weight_range=weight_range, repulsion=repulsion, cutoff=cutoff,
        max_nfev=max_nfev,
    )
    if moves:
        grid, basis = _grid_basis(id(invariants), space.n_max, int(n_points))
        positions, weights = _relocate(
            space, x, positions, weights, grid, basis, moves=moves, fit_weights=fit_weights,
            weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, r_min=r_min,
            max_nfev=max_nfev,
        )
    return positions, weights


# ----------------------------------------------------------------------------------------
# the alternating scheme and the public API
# ----------------------------------------------------------------------------------------
@dataclass
class DecodeResult:
    """What ``decode`` did.

    success: ``fingerprint_rmsd < tol`` (and ``positions_rmsd < tol`` in mode "two").
    fingerprint_rmsd: RMSD between the target fingerprint and that of the returned atoms
    (species snapped), computed by the descriptor. positions_rmsd: the same for the
    positions-only fingerprint in ``species_mode="two"``. moment_rmsd: relative (scaled)
    invariant RMSD of the last Algorithm 1 fit. iterations: moments <-> atoms alternations over
    all attempts. attempts: attempts made. attempt_rmsds: best fingerprint RMSD of each attempt.
    timings: seconds per stage (``moments`` = Algorithm 1, ``atoms`` = peak finding and fits to
    the moments, ``polish`` = fits to the fingerprint, ``hops`` = basin hopping, ``species`` =
    weight fits of mode "two", ``total``). weights: fitted continuous weights before snapping
    (species modes).
    """

    success: bool
    fingerprint_rmsd: float
    n_atoms: int
    species_mode: str
    seed: int
    attempts: int
    iterations: int
    tol: float
    moment_rmsd: float = math.nan
    positions_rmsd: float | None = None
    attempt_rmsds: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    weights: np.ndarray | None = None


def count_atoms(fingerprint: np.ndarray, descriptor: Descriptor, tol: float = 1e-3) -> int:
    """Number of unit-weight atoms encoded by a positions-only fingerprint (from Omega_00)."""
    space = moment_space(descriptor.invariants)
    if space.omega00_invariant is None:
        raise ValueError("this invariant set has no Omega_00 invariant: pass n_atoms")
    i = space.omega00_invariant
    coefficient = next(c for k, _, c in space.linear if k == i)
    total = float(fingerprint[i]) / coefficient * 4 * math.pi / 3
    count = round(total)
    if count < 1 or abs(total - count) > tol * max(1.0, total):
        raise ValueError(
            f"the fingerprint's zeroth moment encodes a total weight of {total:.6g}, which is not a "
            "whole number of unit-weight atoms: is it a fingerprint with species? (pass n_atoms)"
        )
    return int(count)


def _total_weight(fingerprint, space: MomentSpace) -> float:
    if space.omega00_invariant is None:
        return math.nan
    i = space.omega00_invariant
    coefficient = next(c for k, _, c in space.linear if k == i)
    return float(fingerprint[i]) / coefficient * 4 * math.pi / 3


def _check_fingerprint(fingerprint, descriptor: Descriptor, name: str) -> np.ndarray:
    values = np.asarray(fingerprint, dtype=float)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1 or len(values) != len(descriptor):
        raise ValueError(
            f"{name} has shape {np.shape(fingerprint)}, but the descriptor has {len(descriptor)} "
            "invariants: expected a vector of that length"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains {int((~np.isfinite(values)).sum())} NaN or infinite value(s)")
    return values


def _random_configuration(rng, n_atoms, radius, r_min_unit, weight_choices):
    """Random atoms uniformly in a ball of ``radius`` (cutoff units), kept ``r_min`` apart
    where possible; weights drawn from ``weight_choices``."""
    positions = np.zeros((n_atoms, 3))
    for a in range(n_atoms):
        for _ in range(100):
            direction = rng.normal(size=3)
            point = direction / np.linalg.norm(direction) * radius * rng.random() ** (1 / 3)
            if a == 0 or np.min(np.linalg.norm(positions[:a] - point, axis=1)) >= r_min_unit:
                break
        positions[a] = point
    weights = rng.choice(np.asarray(weight_choices, dtype=float), size=n_atoms)
    return positions, weights


class _Problem:
    """One decoding problem: the target fingerprint and the settings of the fits."""

    def __init__(self, descriptor, target, n_atoms, weight_range, fit_weights, repulsion,
                 tol, moment_tol, max_retries, n_points, timings):
        self.descriptor = descriptor
        self.space = moment_space(descriptor.invariants)
        self.target = target
        self.n_atoms = n_atoms
        self.weight_range = weight_range
        self.fit_weights = fit_weights
        self.repulsion = repulsion
        self.tol = tol
        self.moment_tol = moment_tol
        self.max_retries = max_retries
        self.n_points = n_points
        self.timings = timings
        self.total_weight = _total_weight(target, self.space)
        self.mean_weight = self.total_weight / n_atoms
        msr = self.space.mean_square_radius(self._l0_moments())
        self.radius = min(1.0, math.sqrt(5.0 / 3.0 * msr)) if msr and msr > 0 else 0.5

    def _l0_moments(self):
        x = np.zeros(self.space.n_params)
        for i, p, coefficient in self.space.linear:
            x[p] = self.target[i] / coefficient
        return x

    def _timed(self, stage, function, *args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def random_moments(self, rng):
        choices = [1.0] if self.weight_range is None else self.descriptor.species.weights
        positions, weights = _random_configuration(
            rng, self.n_atoms, self.radius, (self.repulsion.r_min if self.repulsion else 0.55) / self.descriptor.cutoff,
            choices,
        )
        weights = weights * self.mean_weight / weights.mean()
        return self.space.moments(positions, weights)

    def invariant_scales(self, rng, samples: int = 4) -> np.ndarray:
        """Typical invariant sizes for random molecules of this size and total weight."""
        scales = np.mean([self.space.magnitudes(self.random_moments(rng)) for _ in range(samples)], axis=0)
        return np.maximum(scales, 1e-12 * scales.max() + 1e-300)

    def rmsd(self, positions, weights) -> float:
        phi = self.space.phi(self.space.moments(positions, weights))
        return float(np.sqrt(np.mean((phi - self.target) ** 2)))

    def polish(self, positions, weights, fit_weights):
        return self._timed(
            "polish", _fit_atoms, self.space, "phi", self.target, positions, weights,
            fit_weights=fit_weights, weight_range=self.weight_range, repulsion=self.repulsion,
            cutoff=self.descriptor.cutoff, max_nfev=300,
        )

    def snap(self, weights) -> np.ndarray:
        low, high = self.weight_range
        clipped = np.clip(weights, low, high)
        return self.descriptor.species.weights_of(self.descriptor.species.species_of(clipped))

    def _state(self, positions, weights):
        """Score polished atoms: (positions, weights, rmsd) before and after snapping species."""
        rmsd = self.rmsd(positions, weights)
        if not (math.isfinite(rmsd) and np.all(np.isfinite(positions)) and np.all(np.isfinite(weights))):
            failed = (positions, weights, math.inf)
            return failed, failed
        if not self.fit_weights:
            return (positions, weights, rmsd), (positions, weights, rmsd)
        if rmsd > _SNAP_BELOW:  # far from a solution: score the snapped weights without a polish
            snapped = self.snap(weights)
            return (positions, weights, rmsd), (positions, snapped, self.rmsd(positions, snapped))
        snapped = self.snap(weights)
        final, _ = self.polish(positions, snapped, False)
        final_rmsd = self.rmsd(final, snapped)
        if self.tol <= final_rmsd < _MOVES_BELOW:  # near miss: a species or two may be wrong
            final, snapped, final_rmsd = _species_moves(self, final, snapped)
        return (positions, weights, rmsd), (final, snapped, final_rmsd)

    def _alternate(self, rng, current, history, scales, mean_weights):
        """One moments <-> atoms iteration of Fig. 4 (see ``attempt``); returns polished atoms
        and the invariant RMSD of the moments fit."""
        l_values = self.space.l
        l_max = int(l_values.max())
        if current is None:
            start, l_start, origins = self.random_moments(rng), 1, [None]
        else:
            start = self.space.moments(current[0], current[1])
            l_start = l_max
            if len(history) >= 2 and history[-1] > 0.5 * history[-2]:
                l_start = int(rng.integers(min(3, l_max), l_max + 1))
                fresh = self.random_moments(rng)
                start[l_values >= l_start] = fresh[l_values >= l_start]
            origins = [current, None]
        x, moment_rmsd = self._timed(
            "moments", moments_from_invariants, self.target, self.descriptor.invariants,
            start, rng, tol=self.moment_tol, max_retries=self.max_retries,
            randomise=self.random_moments, scales=scales, l_start=l_start,
        )
        candidates = []
        for origin in origins:
            positions, weights = self._timed(
                "atoms", atoms_from_moments, x, self.descriptor.invariants, self.n_atoms,
                weights=mean_weights if origin is None else origin[1],
                fit_weights=self.fit_weights, weight_range=self.weight_range,
                cutoff=self.descriptor.cutoff, repulsion=self.repulsion,
                n_points=self.n_points, initial_positions=None if origin is None else origin[0],
            )
            fit = self.space.moment_rmsd(self.space.moments(positions, weights), x)
            candidates.append((fit, len(candidates), positions, weights))
        _, _, positions, weights = min(candidates)
        positions, weights = self.polish(positions, weights, self.fit_weights)
        return positions, weights, moment_rmsd

    def _hop(self, rng, current):
        """Basin hopping: perturb every atom (Gaussian, width drawn from ``_HOP_WIDTHS``
        Angstrom; weights by 0.05) and polish."""
        width = float(rng.choice(_HOP_WIDTHS)) / self.descriptor.cutoff
        positions = current[0] + rng.normal(0.0, width, current[0].shape)
        weights = current[1]
        if self.fit_weights:
            weights = weights + rng.normal(0.0, 0.05, weights.shape)
        return self.polish(positions, weights, self.fit_weights)

    def attempt(self, rng, max_iterations, hops):
        """One attempt of the alternating scheme (Fig. 4) with basin hopping.

        Iteration 1: moments from invariants (Algorithm 1) from the moments of random atoms,
        atoms from moments (greedy peak finding, fit, relocations), polish on the fingerprint.
        Then, while the fingerprint RMSD is above ``tol``: rounds of ``_HOPS_PER_ROUND`` basin
        hops (perturb the best atoms, polish, keep if better; ``hops`` in all) alternate with
        further moments <-> atoms iterations (``max_iterations`` in all). In those, the moments
        are refitted to the invariants starting from the moments of the best atoms so far
        (Algorithm 1 at ``l' = l_max``); when the RMSD stagnated (less than halved) the blocks
        ``l >= L`` (L random in 3..l_max) are re-randomised first and ``l'`` grows from L, to
        pick another root of the invariant equations (many moment vectors share a fingerprint;
        only a realisable one is sought). Atoms are fitted both from the best atoms and from
        fresh peak finding, keeping the better fit to the moments, and polished.

        Returns (positions, weights, rmsd, iterations, moment_rmsd, continuous weights).
        """
        scales = self.invariant_scales(rng)
        mean_weights = np.full(self.n_atoms, self.mean_weight)
        current = None  # best polished (positions, weights, rmsd) before snapping species
        best = (None, None, math.inf)  # best after snapping
        history: list[float] = []
        moment_rmsd = math.nan
        iterations = hops_done = 0

        def consider(positions, weights):
            nonlocal current, best
            state, final = self._state(positions, weights)
            if state[2] < (math.inf if current is None else current[2]):
                current = state
            if final[2] < best[2]:
                best = final
            return state[2]

        while True:
            if iterations < max_iterations:
                positions, weights, moment_rmsd = self._alternate(rng, current, history, scales, mean_weights)
                iterations += 1
                history.append(consider(positions, weights))
            if best[2] < self.tol:
                break
            round_hops = min(_HOPS_PER_ROUND, hops - hops_done) if current is not None else 0
            for _ in range(round_hops):
                positions, weights = self._timed("hops", self._hop, rng, current)
                hops_done += 1
                consider(positions, weights)
                if best[2] < self.tol:
                    break
            if best[2] < self.tol or (iterations >= max_iterations and (hops_done >= hops or current is None)):
                break
        if best[0] is None:  # every fit diverged: report the mean-weight random start
            positions, _ = _random_configuration(rng, self.n_atoms, self.radius, 0.0, [1.0])
            best = (positions, mean_weights if not self.fit_weights else self.snap(mean_weights), math.inf)
            current = (positions, mean_weights, math.inf)
        if best[2] < _REFINE_BELOW and best[2] > 0:  # converge a near solution fully (ill-conditioned directions)
            positions, _ = self._timed(
                "polish", _fit_atoms, self.space, "phi", self.target, best[0], best[1],
                repulsion=self.repulsion, cutoff=self.descriptor.cutoff, max_nfev=_REFINE_NFEV,
            )
            rmsd = self.rmsd(positions, best[1])
            if rmsd < best[2]:
                best = (positions, best[1], rmsd)
        return best[0], best[1], best[2], iterations, moment_rmsd, current[1].copy()


_HOP_WIDTHS = (0.1, 0.2, 0.4, 0.8)  # Angstrom
_HOPS_PER_ROUND = 10
_SNAP_BELOW = 1e-2  # continuous-weight RMSD below which snapped species are tried
_REFINE_BELOW = 1e-4
_OUTSIDE_TOLERANCE = 1e-3  # cutoff units an already-decoded atom may lie outside the sphere
_MOVES_BELOW = 1e-3  # snapped-species RMSD below which discrete species moves are tried
_REFINE_NFEV = 3000


def _species_moves(problem: "_Problem", positions: np.ndarray, weights: np.ndarray, rounds: int = 4):
    """Discrete local search over species with positions fixed, then a polish.

    Candidate moves: one atom to any other species, and pairs of atoms shifted by the same
    species step in opposite directions (which keeps the total weight, fixed by Omega_00). The
    moments are linear in the weights, so all candidates are scored in one vectorised batch;
    the best one is kept (positions re-polished) while it lowers the fingerprint RMSD.
    Returns (positions, weights, rmsd).
    """
    space = problem.space
    levels = np.asarray(problem.descriptor.species.weights, dtype=float)
    n = len(weights)
    rmsd = problem.rmsd(positions, weights)
    steps = np.diff(levels)
    step = float(np.median(steps)) if len(steps) else 0.0
    for _ in range(rounds):
        if rmsd < problem.tol:
            break
        values, _ = monomials(positions, space.n_max)
        columns = space.R @ values.T  # (P, N): dx / dw
        x = columns @ weights
        level = np.argmin(np.abs(weights[:, None] - levels[None, :]), axis=1)
        # one atom to another species: rows (a, target), target != level[a]
        atom, target = np.nonzero(np.arange(len(levels))[None, :] != level[:, None])
        singles = np.zeros((len(atom), n))
        singles[np.arange(len(atom)), atom] = levels[target] - weights[atom]
        # a pair (a up, b down) by one species step
        up, down = np.nonzero((level + 1 < len(levels))[:, None] & (level >= 1)[None, :]
                              & ~np.eye(n, dtype=bool))
        pairs = np.zeros((len(up), n))
        pairs[np.arange(len(up)), up] = step
        pairs[np.arange(len(up)), down] = -step
        deltas = np.concatenate([singles, pairs])  # (candidates, N) weight changes
        if not len(deltas):
            break
        trial = x[None, :] + deltas @ columns.T
        phi = space.invariants.evaluate(space.omega(trial))
        scores = np.sqrt(np.mean((phi - problem.target) ** 2, axis=1))
        best = int(np.argmin(scores))
        if not scores[best] < rmsd:
            break
        new_weights = weights + deltas[best]
        new_positions, _ = problem.polish(positions, new_weights, False)
        new_rmsd = problem.rmsd(new_positions, new_weights)
        if not new_rmsd < rmsd:
            break
        positions, weights, rmsd = new_positions, new_weights, new_rmsd
    return positions, weights, rmsd


def _fit_weights_only(space, target, positions, weights, weight_range, max_nfev=400):
    return _fit_atoms(space, "phi", target, positions, weights, fit_positions=False,
                      fit_weights=True, weight_range=weight_range, max_nfev=max_nfev)[1]


def decode(
    fingerprint,
    descriptor: Descriptor,
    n_atoms: int | None = None,
    *,
    seed: int = 0,
    attempts: int = 3,
    species_mode: str | None = None,
    positions_fingerprint=None,
    tol: float = 1e-6,
    moment_tol: float = 1e-5,
    max_iterations: int = 8,
    hops: int = 100,
    max_retries: int = 2,
    grid_points: int = 31,
    repulsion: RepulsionTerm | None = RepulsionTerm(),
    weight_starts: int = 4,
    symbol: str = "X",
    positions=None,
) -> tuple[Atoms, DecodeResult]:
    """Decode a molecular MILAD fingerprint back to atoms.

    fingerprint: (n_inv,) ``descriptor`` fingerprint of the molecule (positions relative to its
    centre). n_atoms: number of atoms; ``None`` reads it off the zeroth moment, which needs a
    positions-only fingerprint (all weights 1) or ``positions_fingerprint``.
    species_mode: ``"positions"`` (descriptor without species, all weights 1), ``"single"``
    (one fingerprint with species as weights), ``"two"`` (``fingerprint`` with species plus
    ``positions_fingerprint`` of the same molecule with all weights 1); by default
    ``"positions"`` without a species map, ``"two"`` when ``positions_fingerprint`` is given,
    else ``"single"``.
    attempts: new random starts while the fingerprint RMSD stays >= ``tol``; max_iterations:
    moments <-> atoms alternations per attempt; hops: basin hops per attempt (perturb the best
    atoms and polish, in rounds of 10 between alternations); max_retries: LM fits per ``l'``
    in Algorithm 1.
    symbol: chemical symbol of the atoms when decoding positions only.
    positions: species mode "two" only: (n_atoms, 3) positions in Angstrom already decoded from
    ``positions_fingerprint`` (e.g. by an earlier ``decode`` in mode "positions"); only the
    species fit (and the final joint polish) is then run.

    Returns ``(atoms, result)``: positions in Angstrom relative to the centre (random
    orientation, possibly the mirror image), symbols from the snapped weights; ``result`` a
    ``DecodeResult``. The best attempt is returned when none succeeds.
    """
    with _single_threaded_blas():
        return _decode(
            fingerprint, descriptor, n_atoms, seed=seed, attempts=attempts,
            species_mode=species_mode, positions_fingerprint=positions_fingerprint, tol=tol,
            moment_tol=moment_tol, max_iterations=max_iterations, hops=hops, max_retries=max_retries,
            grid_points=grid_points, repulsion=repulsion, weight_starts=weight_starts,
            symbol=symbol, positions=positions,
        )


def _decode(fingerprint, descriptor, n_atoms, *, seed, attempts, species_mode,
            positions_fingerprint, tol, moment_tol, max_iterations, hops, max_retries, grid_points,
            repulsion, weight_starts, symbol, positions):
    start_time = time.perf_counter()
    if descriptor.feature != "delta":
        raise ValueError(f"decoding supports the delta feature only, not {descriptor.feature!r}")
    if species_mode is None:
        if descriptor.species is None:
            species_mode = "positions"
        else:
            species_mode = "two" if positions_fingerprint is not None else "single"
    if species_mode not in SPECIES_MODES:
        raise ValueError(f"unknown species_mode {species_mode!r}; choose one of {SPECIES_MODES}")
    if species_mode != "positions" and descriptor.species is None:
        raise ValueError(f"species_mode={species_mode!r} needs a descriptor with a species map")
    if species_mode == "two" and positions_fingerprint is None:
        raise ValueError("species_mode='two' needs positions_fingerprint (all weights 1)")
    if species_mode != "two" and positions_fingerprint is not None:
        raise ValueError("positions_fingerprint is only used with species_mode='two'")
    if positions is not None and species_mode != "two":
        raise ValueError("positions (already decoded) are only used with species_mode='two'")
    if not (isinstance(attempts, (int, np.integer)) and attempts >= 1):
        raise ValueError(f"attempts must be a positive integer, got {attempts!r}")
    if not (isinstance(max_iterations, (int, np.integer)) and max_iterations >= 1):
        raise ValueError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    if not (isinstance(hops, (int, np.integer)) and hops >= 0):
        raise ValueError(f"hops must be a non-negative integer, got {hops!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    target = _check_fingerprint(fingerprint, descriptor, "fingerprint")

    positions_descriptor = descriptor
    if species_mode == "positions":
        positions_target = target
    elif species_mode == "two":
        positions_descriptor = Descriptor(
            n_max=descriptor.n_max, cutoff=descriptor.cutoff, invariants=descriptor.invariants
        )
        positions_target = _check_fingerprint(positions_fingerprint, descriptor, "positions_fingerprint")
    else:
        positions_target = target

    if n_atoms is None:
        if species_mode == "single":
            low, high = descriptor.species.weight_range
            total = _total_weight(target, moment_space(descriptor.invariants))
            raise ValueError(
                "n_atoms is needed when species are encoded in a single fingerprint: its total "
                f"weight {total:.6g} allows {math.ceil(total / high)} to {math.floor(total / low)} atoms"
            )
        n_atoms = count_atoms(positions_target, positions_descriptor)
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, (int, np.integer)):
        raise ValueError(f"n_atoms must be an integer, got {n_atoms!r}")
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be at least 1, got {n_atoms}")
    n_atoms = int(n_atoms)

    space = moment_space(descriptor.invariants)
    total = _total_weight(positions_target, space)
    if species_mode in ("positions", "two"):
        if abs(total - n_atoms) > 1e-3 * max(1.0, n_atoms):
            raise ValueError(
                f"the positions fingerprint encodes a total weight of {total:.6g}, inconsistent "
                f"with {n_atoms} atoms of weight 1"
            )
    if species_mode in ("single", "two"):
        low, high = descriptor.species.weight_range
        species_total = _total_weight(target, space)
        if not (n_atoms * low - 1e-9 <= species_total <= n_atoms * high + 1e-9):
            raise ValueError(
                f"the fingerprint encodes a total weight of {species_total:.6g}: {n_atoms} atoms "
                f"would need a mean weight of {species_total / n_atoms:.4g}, outside the species "
                f"weight range [{low}, {high}]"
            )

    timings: dict[str, float] = {"moments": 0.0, "atoms": 0.0, "polish": 0.0, "hops": 0.0, "species": 0.0}
    fit_weights = species_mode == "single"
    problem = _Problem(
        positions_descriptor, positions_target, n_atoms,
        descriptor.species.weight_range if fit_weights else None, fit_weights, repulsion,
        tol, moment_tol, max_retries, grid_points, timings,
    )
    known_positions = None
    if positions is not None:
        known_positions = np.asarray(positions, dtype=float)
        if known_positions.shape != (n_atoms, 3) or not np.all(np.isfinite(known_positions)):
            raise ValueError(f"positions must be a finite ({n_atoms}, 3) array, got shape {known_positions.shape}")
        known_positions = known_positions / descriptor.cutoff
        radii = np.linalg.norm(known_positions, axis=1)
        if np.any(radii > 1 + _OUTSIDE_TOLERANCE):
            raise ValueError(f"positions has atoms outside the cutoff sphere of radius {descriptor.cutoff}")
        # a decode's soft wall may leave an atom a hair outside: put it on the sphere
        known_positions[radii > 1] /= radii[radii > 1, None]
    species_problem = None
    if species_mode == "two":
        species_problem = _Problem(
            descriptor, target, n_atoms, descriptor.species.weight_range, True, repulsion,
            tol, moment_tol, max_retries, grid_points, timings,
        )

    best = None
    total_iterations = 0
    attempt_rmsds = []
    made = 0
    for attempt in range(attempts):
        made += 1
        rng = np.random.default_rng((int(seed), attempt))
        if species_problem is not None and known_positions is not None:
            positions = known_positions
            rmsd, iterations, moment_rmsd = problem.rmsd(positions, np.ones(n_atoms)), 0, math.nan
        elif species_problem is not None and best is not None and best[4] < tol:
            # positions already decoded: only new starts for the species fit
            positions, _, _, moment_rmsd, positions_rmsd, _ = best
            rmsd, iterations = positions_rmsd, 0
        else:
            positions, weights, rmsd, iterations, moment_rmsd, raw_weights = problem.attempt(
                rng, max_iterations, hops
            )
        total_iterations += iterations
        positions_rmsd = None
        if species_problem is not None:
            positions_rmsd = rmsd
            start = time.perf_counter()
            positions, weights, raw_weights, rmsd = _species_from_positions(
                species_problem, problem, positions, rng, weight_starts
            )
            timings["species"] += time.perf_counter() - start
        attempt_rmsds.append(rmsd)
        if best is None or rmsd < best[2]:
            best = (positions, weights, rmsd, moment_rmsd, positions_rmsd, raw_weights)
        if rmsd < tol:
            break
    positions, weights, rmsd, moment_rmsd, positions_rmsd, raw_weights = best

    if species_mode == "positions":
        symbols = [symbol] * n_atoms
    else:
        symbols = descriptor.species.species_of(weights)
    atoms = Atoms(symbols=symbols, positions=positions * descriptor.cutoff)
    # the reported RMSD is that of the returned atoms, computed by the descriptor itself
    final_descriptor = positions_descriptor if species_mode == "positions" else descriptor
    final_rmsd = float(np.sqrt(np.mean(
        (final_descriptor.environment(atoms.positions, weights) - target) ** 2
    ))) if np.all(np.linalg.norm(atoms.positions, axis=1) <= descriptor.cutoff) else rmsd
    if species_mode == "two":
        positions_rmsd = float(np.sqrt(np.mean(
            (positions_descriptor.environment(atoms.positions) - positions_target) ** 2
        )))
    timings["total"] = time.perf_counter() - start_time
    result = DecodeResult(
        success=bool(final_rmsd < tol and (positions_rmsd is None or positions_rmsd < tol)),
        fingerprint_rmsd=final_rmsd,
        n_atoms=n_atoms,
        species_mode=species_mode,
        seed=int(seed),
        attempts=made,
        iterations=total_iterations,
        tol=float(tol),
        moment_rmsd=float(moment_rmsd),
        positions_rmsd=positions_rmsd,
        attempt_rmsds=[float(v) for v in attempt_rmsds],
        timings=timings,
        weights=None if raw_weights is None or species_mode == "positions" else np.asarray(raw_weights),
    )
    atoms.info.update({"fingerprint_rmsd": final_rmsd, "decode_success": result.success})
    return atoms, result


def _joint_polish(space: MomentSpace, targets, positions, *, repulsion, cutoff, max_nfev=_REFINE_NFEV):
    """Fit positions to several fingerprints at once: ``targets`` = [(phi, weights), ...]."""
    n = len(positions)

    def fun(free):
        p = free.reshape(n, 3)
        blocks, jacobians = [], []
        for phi, weights in targets:
            residuals, d_positions, _ = _phi_residuals(space, phi, p, weights)
            blocks.append(residuals)
            jacobians.append(d_positions)
        values, jac_p = _position_penalty(p, repulsion, cutoff)
        return np.concatenate(blocks + [values]), np.vstack(jacobians + [jac_p])

    return _lm(fun, positions.ravel(), max_nfev).reshape(n, 3)


def _species_from_positions(problem: _Problem, positions_problem: _Problem, positions, rng, starts):
    """Species mode "two": fit only the weights to the species fingerprint, positions fixed.

    Several starts (the mean weight, then random species); each fit is snapped to species and
    scored by the fingerprint RMSD; near misses get discrete species moves
    (``_species_moves``); finally the positions are polished against both fingerprints at once
    (the positions-only one pins positions only to its RMSD; the true structure satisfies
    both). Returns (positions, snapped weights, continuous weights, rmsd).
    """
    species_weights = problem.descriptor.species.weights
    mean = np.full(problem.n_atoms, problem.mean_weight)
    best = (problem.snap(mean), mean, problem.rmsd(positions, problem.snap(mean)))
    for start in range(max(1, starts)):
        if start == 0:
            initial = np.full(problem.n_atoms, problem.mean_weight)
        else:
            initial = rng.choice(species_weights, size=problem.n_atoms)
        fitted = _fit_weights_only(problem.space, problem.target, positions, initial, problem.weight_range)
        if not np.all(np.isfinite(fitted)):
            continue
        snapped = problem.snap(fitted)
        rmsd = problem.rmsd(positions, snapped)
        if rmsd < best[2]:
            best = (snapped, fitted, rmsd)
        if rmsd < problem.tol:
            break
    snapped, fitted, rmsd = best
    if problem.tol <= rmsd < _MOVES_BELOW:
        positions, snapped, rmsd = _species_moves(problem, positions, snapped)
    if rmsd < _REFINE_BELOW:
        ones = np.ones(problem.n_atoms)
        joint = _joint_polish(
            problem.space, [(positions_problem.target, ones), (problem.target, snapped)], positions,
            repulsion=problem.repulsion, cutoff=problem.descriptor.cutoff,
        )
        joint_rmsd = problem.rmsd(joint, snapped)
        if max(joint_rmsd, positions_problem.rmsd(joint, ones)) < max(rmsd, positions_problem.rmsd(positions, ones)):
            positions, rmsd = joint, joint_rmsd
    return positions, snapped, fitted, rmsd
