"""The decoder's loss: residuals of atoms against moments or fingerprints, and the LM solver.

Every fit in the decoder is built here. Algorithm 1 fits moments to invariants
(:func:`fit_moments`); every fit of atoms (to moments, eq. 36; to one fingerprint, the
*polish*; to several fingerprints at once, the joint polish of species mode "two"; of the
weights alone) is built by :func:`fit_atoms` from the same pieces:

* one block of residuals per :class:`Target`: ``metric * (x(atoms) - x_target) / sqrt(K)``
  (the complex moment RMSD) or ``(Phi(atoms) - Phi_target) / sqrt(n_inv)`` (the fingerprint
  RMSD), with analytic Jacobians;
* the repulsion of eq. 35 and a soft wall at the unit sphere, one residual per atom whose
  squares sum to eq. 36's double sum (:func:`position_penalty`);
* a penalty keeping fitted weights inside the species weight range (:func:`weight_penalty`).

Positions are in units of the cutoff; the repulsion works in Angstrom (``cutoff`` scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numba
import numpy as np
from scipy.linalg.lapack import dposv, dpotrs
from scipy.optimize import least_squares

from .space import MomentSpace

__all__ = [
    "MIN_DISTANCE",
    "RepulsionTerm",
    "Target",
    "fit_atoms",
    "fit_moments",
    "moment_residuals",
    "phi_residuals",
    "position_penalty",
    "solve_lm",
    "weight_penalty",
]

#: Angstrom: the closest two decoded atoms are pushed apart to (eq. 35's r_min), also the
#: exclusion radius of peak finding and the spacing of random starts
MIN_DISTANCE = 0.55
WALL = 10.0  # stiffness of the soft wall keeping atoms inside the unit sphere
WEIGHT_WALL = 10.0  # stiffness of the penalty keeping weights inside their range
#: a fit ends when its cost fell by less than STALL_PROGRESS over STALL_WINDOW evaluations
STALL_WINDOW = 20
STALL_PROGRESS = 0.02
#: RMS residual at which a fit ends by default (the floating-point floor of the fingerprints)
FLOOR = 1e-14


class _Stalled(Exception):
    """Raised inside :func:`solve_lm`'s residual function to end a fit that has converged or
    stalled."""


def _cholesky_lm(residuals_at: Callable, jacobian_at: Callable, x0: np.ndarray, max_nfev: int,
                 mu_floor: float = 1e-10) -> None:
    """Marquardt's method with Nielsen's damping update, steps by Cholesky (see
    :func:`solve_lm`); runs until ``residuals_at`` raises or ``max_nfev`` evaluations are
    spent. ``jacobian_at(x)`` is asked only at the points whose step was accepted."""
    x = np.array(x0, dtype=float)
    residuals = residuals_at(x)
    jacobian = jacobian_at(x)
    nfev = 1
    cost = float(residuals @ residuals)
    scale = np.zeros(len(x))
    mu, growth = 1e-3, 2.0
    while nfev < max_nfev:
        scale = np.maximum(scale, np.sqrt(np.einsum("ij,ij->j", jacobian, jacobian)))
        safe = np.where(scale > 0.0, scale, 1.0)
        scaled = jacobian / safe  # unit column norms at their largest so far
        normal = scaled.T @ scaled
        gradient = scaled.T @ residuals
        while nfev < max_nfev:
            damped = normal.copy()
            damped.reshape(-1)[:: len(x) + 1] += mu  # normal + mu I, on a view of the diagonal
            # the transpose (normal is symmetric to the bit) is the Fortran array LAPACK
            # factorises in place
            factor, step, info = dposv(damped.T, -gradient, lower=0, overwrite_a=1, overwrite_b=1)
            if info == 0 and np.isfinite(step).all():
                # one refinement step, its residual formed with ``scaled`` itself (Bjorck's
                # corrected semi-normal equations)
                correction = -(scaled.T @ (residuals + scaled @ step) + mu * step)
                step = step + dpotrs(factor, correction, lower=0)[0]
                trial = x + step / safe
                trial_residuals = residuals_at(trial)
                nfev += 1
                trial_cost = float(trial_residuals @ trial_residuals)
                if np.isfinite(trial_cost) and trial_cost < cost:
                    predicted = -(2.0 * gradient @ step + step @ (normal @ step))
                    ratio = (cost - trial_cost) / predicted if predicted > 0 else 0.0
                    mu = max(mu * max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3), mu_floor)
                    growth = 2.0
                    x, residuals, cost = trial, trial_residuals, trial_cost
                    jacobian = jacobian_at(x)
                    break
            mu, growth = mu * growth, growth * 2.0
            if mu > 1e16:  # no step lowers the cost
                return


def solve_lm(fun: Callable, x0: np.ndarray, max_nfev: int, *, method: str = "svd",
             floor: float = FLOOR, window: int = STALL_WINDOW,
             progress: float = STALL_PROGRESS) -> np.ndarray:
    """Levenberg-Marquardt least squares of ``fun(x) -> (residuals, jacobian)``; returns the
    best ``x`` evaluated. ``jacobian`` may be a function of no arguments that forms it: both
    solvers then form it only at the points whose step they accept (about a quarter of a
    decoder's trial steps are rejected, and the Jacobian is most of an evaluation's cost).

    ``method="svd"``: SciPy's trust-region reflective solver without bounds (``"trf"``), Moré's
    Levenberg-Marquardt trust region solved exactly by SVD, with MINPACK's Jacobian column
    scaling; robust to the rank-deficient Jacobians of a converging polish (it reaches RMS
    residuals near 1e-14). Unlike MINPACK's ``lm``, whose path through these ill-conditioned
    fits changed from run to run for the same inputs, it is bitwise reproducible.
    ``method="cholesky"``: Marquardt's method with Nielsen's (1999) damping update, the step
    ``(Js^T Js + mu I) y = -Js^T r`` (``Js``: the Jacobian with unit column norms) solved by a
    Cholesky factorisation plus one refinement step: a (P, P) solve instead of an SVD, several
    times cheaper for Algorithm 1's nearly square (117, 120) Jacobians and for the fits of
    atoms (the SciPy solver's SVDs were about half of a 29-atom decode). Near a singular root
    it stalls sooner (about 1e-9 of the starting residual in a test problem where the SVD
    steps reach 1e-13; a polish of a molecule's atoms ends near a fingerprint RMSD of 1e-11
    instead of 1e-14), far below the decoder's success threshold (1e-6) and Algorithm 1's
    tolerance. The decoder uses it for Algorithm 1 and for every fit of atoms in its search
    (:data:`milad.decode.search.LM_METHOD` says why); the SVD steps remain the default here and
    for mode two's fits of the weights alone and its joint polish.

    The fit ends after ``max_nfev`` evaluations, when the RMS residual is below ``floor``, or
    when the best cost fell by less than the fraction ``progress`` over the last ``window``
    evaluations (at the floating-point floor of the residuals, or crawling: steps that no
    longer change the structure, which SciPy's own tolerances would let run to ``max_nfev``).
    Both are deterministic: the same inputs give the same bits with the same BLAS and thread
    count (the decoder runs BLAS single-threaded).
    """
    if method not in ("svd", "cholesky"):
        raise ValueError(f"unknown LM step method {method!r}; choose 'svd' or 'cholesky'")
    cache = {}  # the last point evaluated: its residuals and Jacobian (or the function forming it)
    state = {"evaluations": 0, "best_cost": math.inf, "best_x": np.array(x0, dtype=float),
             "checkpoint": math.inf}

    def evaluate(x):
        key = x.tobytes()
        if key not in cache:
            cache.clear()
            residuals, jacobian = fun(x)
            cache[key] = [residuals, jacobian]
            cost = float(residuals @ residuals)
            if cost < state["best_cost"]:
                state["best_cost"], state["best_x"] = cost, x.copy()
            state["evaluations"] += 1
            if state["best_cost"] <= floor**2 * len(residuals):
                raise _Stalled
            if state["evaluations"] % window == 0:
                if state["best_cost"] > (1.0 - progress) * state["checkpoint"]:
                    raise _Stalled
                state["checkpoint"] = state["best_cost"]
        return cache[key]

    def residuals_at(x):
        return evaluate(x)[0]

    def jacobian_at(x):
        entry = evaluate(x)
        if callable(entry[1]):
            entry[1] = entry[1]()
        return entry[1]

    try:
        if method == "cholesky":
            _cholesky_lm(residuals_at, jacobian_at, x0, max_nfev)
        else:
            least_squares(
                residuals_at, x0, jac=jacobian_at, method="trf",
                x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=max_nfev,
            )
    except _Stalled:
        pass
    return state["best_x"]


@dataclass(frozen=True)
class RepulsionTerm:
    """The short-range repulsion of eq. 35, zero (with zero slope) from ``r_min`` on.

    ``E(r) = 4 eps [(sigma / r)^n + k1 r + k2]`` for ``r < r_min`` (Angstrom) with ``k1`` and
    ``k2`` chosen so that E and dE/dr vanish at ``r_min``.
    """

    epsilon: float = 0.1
    sigma: float = 1.0
    power: int = 2
    r_min: float = MIN_DISTANCE

    @property
    def k1(self) -> float:
        return self.power * self.sigma**self.power / self.r_min ** (self.power + 1)

    @property
    def k2(self) -> float:
        return -((self.sigma / self.r_min) ** self.power) - self.k1 * self.r_min

    def energy(self, r: np.ndarray) -> np.ndarray:
        """E(r) at distances ``r`` (Angstrom), any shape."""
        return self._evaluate(r)[0]

    def derivative(self, r: np.ndarray) -> np.ndarray:
        """dE/dr at distances ``r`` (Angstrom), any shape."""
        return self._evaluate(r)[1]

    def _evaluate(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(r, dtype=float)
        energy, derivative = _repulsion_array(r.ravel(), *self._kernel_constants())
        return energy.reshape(r.shape), derivative.reshape(r.shape)

    def _kernel_constants(self) -> tuple[float, float, float, float, float, float]:
        """(4 epsilon, sigma, power, r_min, k1, k2) for :func:`_repulsion`."""
        return (4 * self.epsilon, float(self.sigma), float(self.power), float(self.r_min),
                self.k1, self.k2)


@numba.njit(cache=True)
def _repulsion(r, four_epsilon, sigma, power, r_min, k1, k2):
    """E(r) and dE/dr of eq. 35, both 0 from ``r_min`` on (see :class:`RepulsionTerm`)."""
    if not r < r_min:
        return 0.0, 0.0
    # clamped far below any physical distance so that coincident atoms stay finite
    safe = max(r, 0.05 * r_min)
    ratio = sigma / safe
    # (a square as numpy's ** 2 takes it, not pow: equal to the bit)
    scaled = ratio * ratio if power == 2.0 else ratio**power
    value = four_epsilon * (scaled + k1 * safe + k2)
    derivative = four_epsilon * (-power * sigma**power / safe ** (power + 1) + k1)
    return max(value, 0.0), derivative


@numba.njit(cache=True)
def _repulsion_array(r, four_epsilon, sigma, power, r_min, k1, k2):
    energy = np.empty(r.shape[0])
    derivative = np.empty(r.shape[0])
    for p in range(r.shape[0]):
        energy[p], derivative[p] = _repulsion(r[p], four_epsilon, sigma, power, r_min, k1, k2)
    return energy, derivative


#: kernel constants when there is no repulsion (unused by the kernel then)
_NO_REPULSION = (0.0, 1.0, 2.0, 0.0, 0.0, 0.0)


@numba.njit(cache=True)
def _penalty_kernel(positions, scale, wall, repulsion, four_epsilon, sigma, power, r_min, k1, k2):
    """Per atom ``S_i`` = wall term ``(wall max(0, |u_i| - 1))^2`` (``wall`` 0: none) plus,
    with ``repulsion``, ``sum_j E(r_ij)`` over the pairs closer than ``r_min`` (eq. 35), and
    dS/dpositions (N, 3N). One pass over the N(N-1)/2 pairs instead of N x N temporaries;
    the sums run in the order of the vectorised formulas they replaced (the i-side of every
    pair, then its j-side), so the values are those of that code to the bit."""
    n = positions.shape[0]
    total = np.zeros(n)
    jacobian = np.zeros((n, 3 * n))
    if repulsion and n > 1:
        n_pairs = n * (n - 1) // 2
        first = np.empty(n_pairs, np.int64)
        second = np.empty(n_pairs, np.int64)
        energy = np.empty(n_pairs)
        slope = np.empty((n_pairs, 3))
        close = 0
        for i in range(n):
            for j in range(i + 1, n):
                d0 = positions[i, 0] - positions[j, 0]
                d1 = positions[i, 1] - positions[j, 1]
                d2 = positions[i, 2] - positions[j, 2]
                r = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2) * scale
                if r < r_min:
                    value, derivative = _repulsion(r, four_epsilon, sigma, power, r_min, k1, k2)
                    # dr_ij / du_i = scale^2 (u_i - u_j) / r_ij
                    g = derivative * scale**2 / max(r, 1e-12)
                    first[close], second[close] = i, j
                    energy[close] = value
                    slope[close, 0], slope[close, 1], slope[close, 2] = g * d0, g * d1, g * d2
                    close += 1
        for p in range(close):
            total[first[p]] += energy[p]
        for p in range(close):
            total[second[p]] += energy[p]
        for p in range(close):
            i, j = first[p], second[p]
            for a in range(3):
                jacobian[i, 3 * i + a] += slope[p, a]
                jacobian[i, 3 * j + a] -= slope[p, a]
        for p in range(close):
            i, j = first[p], second[p]
            for a in range(3):
                jacobian[j, 3 * j + a] -= slope[p, a]
                jacobian[j, 3 * i + a] += slope[p, a]
    if wall > 0.0:
        for i in range(n):
            radius = math.sqrt(positions[i, 0] ** 2 + positions[i, 1] ** 2 + positions[i, 2] ** 2)
            excess = wall * max(radius - 1.0, 0.0)
            factor = 2 * excess * wall / max(radius, 1e-12)
            total[i] = excess**2 + total[i]
            for a in range(3):
                jacobian[i, 3 * i + a] = factor * positions[i, a] + jacobian[i, 3 * i + a]
    return total, jacobian


def min_distance(repulsion: RepulsionTerm | None) -> float:
    """The closest approach (Angstrom) of decoded atoms: the repulsion's ``r_min``."""
    return repulsion.r_min if repulsion is not None else MIN_DISTANCE


def position_penalty(positions: np.ndarray, repulsion: RepulsionTerm | None, scale: float):
    """One residual per atom, ``sqrt(S_i + (k max(0, |u_i| - 1))^2)``: the repulsion of eq. 35
    (the squares sum to eq. 36's double sum) plus a soft wall at the unit sphere. Returns the
    residuals (N,) and their Jacobian (N, 3N)."""
    constants = repulsion._kernel_constants() if repulsion is not None else _NO_REPULSION
    total, jacobian = _penalty_kernel(np.ascontiguousarray(positions, dtype=float), scale,
                                      WALL, repulsion is not None, *constants)
    residuals = np.sqrt(total)
    # d sqrt(S) = dS / (2 sqrt(S)); S vanishes quadratically, so the ratio stays finite
    jacobian /= 2 * np.maximum(residuals, 1e-12)[:, None]
    return residuals, jacobian


def weight_penalty(weights: np.ndarray, low: float, high: float):
    """Residuals ``k * distance outside [low, high]`` (N,) and their Jacobian (N, N)."""
    below, above = weights < low, weights > high
    residuals = WEIGHT_WALL * (np.maximum(low - weights, 0.0) + np.maximum(weights - high, 0.0))
    jacobian = np.diag(WEIGHT_WALL * (above.astype(float) - below.astype(float)))
    return residuals, jacobian


def moment_residuals(space: MomentSpace, target_x, positions, weights):
    """Complex-moment RMSD residuals (P,) and ``derivatives(wrt_positions, wrt_weights)``,
    which forms their derivatives by positions (P, 3N) and weights (P, N) when called (a
    derivative not asked for is ``None``)."""
    x, moment_derivatives = space.moments_with_derivatives(positions, weights)
    scale = space.metric / math.sqrt(space.n_moments)

    def derivatives(wrt_positions: bool = True, wrt_weights: bool = True):
        d_positions, d_weights = moment_derivatives(wrt_positions, wrt_weights)
        if d_positions is not None:
            d_positions = scale[:, None] * d_positions.reshape(len(x), -1)
        if d_weights is not None:
            d_weights = scale[:, None] * d_weights
        return d_positions, d_weights

    return scale * (x - target_x), derivatives


def phi_residuals(space: MomentSpace, target_phi, positions, weights):
    """Fingerprint RMSD residuals (n_inv,) and ``derivatives(wrt_positions, wrt_weights)``,
    which forms their derivatives by positions (n_inv, 3N) and weights (n_inv, N) when called
    (a derivative not asked for is ``None``)."""
    x, moment_derivatives = space.moments_with_derivatives(positions, weights)
    phi, phi_jacobian = space.phi_with_jacobian(x)
    scale = 1.0 / math.sqrt(len(phi))

    def derivatives(wrt_positions: bool = True, wrt_weights: bool = True):
        d_positions, d_weights = moment_derivatives(wrt_positions, wrt_weights)
        if d_positions is None and d_weights is None:
            return None, None
        jacobian = phi_jacobian()
        if d_positions is not None:
            d_positions = scale * (jacobian @ d_positions.reshape(len(x), -1))
        if d_weights is not None:
            d_weights = scale * (jacobian @ d_weights)
        return d_positions, d_weights

    return scale * (phi - target_phi), derivatives


_RESIDUALS = {"moments": moment_residuals, "phi": phi_residuals}


@dataclass(frozen=True)
class Target:
    """What a fit of atoms matches: ``kind`` "moments" (``values`` a real moment vector ``x``,
    eq. 36) or "phi" (``values`` a fingerprint); ``weights`` (N,) fixed weights of the atoms
    for this target, or ``None`` for the weights being fitted (or held) by :func:`fit_atoms`."""

    kind: str
    values: np.ndarray
    weights: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in _RESIDUALS:
            raise ValueError(f"unknown fit target {self.kind!r}; choose one of {tuple(_RESIDUALS)}")


def fit_atoms(
    space: MomentSpace,
    targets: Target | list[Target],
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
    window: int = STALL_WINDOW,
    method: str = "svd",
    floor: float = FLOOR,
) -> tuple[np.ndarray, np.ndarray]:
    """LM fit of positions (N, 3) and/or weights (N,) to one or more targets, with the
    repulsion and the unit-sphere wall (when positions are free) and the weight-range penalty
    (when weights are free and ``weight_range`` is given) as extra residuals.

    ``rows`` restricts every target to some of its residuals (moment coordinates or
    invariants); ``window``: the fit ends when its cost fell by less than ``STALL_PROGRESS``
    over this many evaluations, or once the RMS residual is below ``floor``; ``method``: the LM
    steps (:func:`solve_lm`). Returns the fitted ``(positions, weights)``; the input arrays are
    not changed.
    """
    targets = [targets] if isinstance(targets, Target) else list(targets)
    n = len(positions)

    def unpack(free):
        p = free[: 3 * n].reshape(n, 3) if fit_positions else positions
        w = free[3 * n :] if fit_positions else free
        return p, (w if fit_weights else weights)

    def fun(free):
        """Residuals at ``free`` and a function forming their Jacobian (deferred: a rejected
        LM step never needs it)."""
        p, w = unpack(free)
        n_free = len(free)
        weight_columns = slice(n_free - n, n_free)  # the fitted weights, after the positions
        # (residuals, () -> (d/dpositions or None, d/dweights or None), restricted to ``rows``)
        blocks = []
        for target in targets:
            own = target.weights is not None  # fixed weights: no dependence on the fitted ones
            residuals, derivatives = _RESIDUALS[target.kind](
                space, target.values, p, target.weights if own else w)
            blocks.append((residuals if rows is None else residuals[rows],
                           partial(derivatives, fit_positions, fit_weights and not own),
                           rows is not None))
        if fit_positions:
            values, jac_p = position_penalty(p, repulsion, cutoff)
            blocks.append((values, lambda: (jac_p, None), False))
        if fit_weights and weight_range is not None:
            values, jac_w = weight_penalty(w, *weight_range)
            blocks.append((values, lambda: (None, jac_w), False))
        residuals = np.concatenate([block[0] for block in blocks])

        def jacobian():
            # one Jacobian, each block written into its rows (zeros where a block does not
            # depend)
            out = np.zeros((len(residuals), n_free))
            start = 0
            for values, derivatives, restricted in blocks:
                stop = start + len(values)
                for d, columns in zip(derivatives(), (slice(0, 3 * n), weight_columns)):
                    if d is not None:
                        out[start:stop, columns] = d[rows] if restricted else d
                start = stop
            return out

        return residuals, jacobian

    start = []
    if fit_positions:
        start.append(positions.ravel())
    if fit_weights:
        start.append(weights)
    solution = solve_lm(fun, np.concatenate(start), max_nfev, window=window, method=method,
                        floor=floor)
    p, w = unpack(solution)
    return np.array(p), np.array(w, dtype=float)


def fit_moments(space: MomentSpace, target: np.ndarray, x: np.ndarray, params: np.ndarray,
                rows: np.ndarray, scales: np.ndarray, max_nfev: int,
                floor: float = FLOOR) -> tuple[np.ndarray, float]:
    """LM fit of the moment coordinates ``x[params]`` to the invariants ``rows`` of the
    fingerprint ``target``, residuals divided by ``scales`` (n_inv,), until their RMS is
    below ``floor`` (or the fit stalls); returns the fitted ``x`` and the scaled invariant
    RMSD over ``rows``."""
    inverse = 1.0 / scales[rows]

    target_rows = target[rows]

    def fun(free):
        trial = x.copy()
        trial[params] = free
        values, jacobian = space.phi_with_jacobian(trial, rows, params)
        return (values - target_rows) * inverse, lambda: jacobian() * inverse[:, None]

    solution = x.copy()
    solution[params] = solve_lm(fun, x[params], max_nfev, method="cholesky", floor=floor)
    residual = (space.phi(solution, rows) - target_rows) * inverse
    return solution, float(np.sqrt(np.mean(residual**2)))
