"""Algorithm 1: moments from invariants.

A Levenberg-Marquardt fit (analytic Jacobians) of the real moment vector ``x`` (see
:mod:`milad.decode.space`) to the fingerprint, growing the angular frequency ``l'`` from 1 to
``l_max`` and fitting at each step only the invariants built from moments with ``l <= l'``; the
``l = l'`` block is re-randomised and the fit retried while the invariant RMSD stays above its
tolerance. Residuals may be divided by the typical size of each invariant for a molecule of the
fingerprint's size and weight (the high orders of a small molecule are tiny), which makes the
tolerance a relative one.

The invariants do not determine the moments uniquely (e.g. 7 of the 15 n_max = 7 invariants
that involve the l = 7 block are quadratic in it), so the fit lands on one of many moment
vectors with the right invariants; the search loop (:mod:`milad.decode.search`) steers towards
one that atoms can realise.
"""

from __future__ import annotations

import math

import numpy as np

from ..invariants import InvariantSet
from .loss import fit_moments
from .space import moment_space

__all__ = ["MAX_NFEV", "moments_from_invariants"]

MAX_NFEV = 200  # LM evaluations per fit (one l') by default


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
    max_nfev: int = MAX_NFEV,
) -> tuple[np.ndarray, float]:
    """Algorithm 1: real moment vector ``x`` whose invariants match ``fingerprint``.

    ``initial``: starting ``x`` (e.g. the moments of random atoms). For ``l'`` from
    ``l_start`` to ``l_max`` the moments with ``l <= l'`` are fitted (LM) to the invariants
    that only use such moments; while the invariant RMSD stays above ``tol`` the ``l = l'``
    block is replaced by ``randomise(rng)[block]`` (default: Gaussian noise of the block's
    size) and the fit retried, up to ``max_retries`` fits per ``l'``, keeping the best. Each
    fit stops once the scaled invariant RMSD is below ``tol / 10`` (Cholesky LM steps, see
    :func:`~milad.decode.loss.solve_lm`). The ``l = 0`` moments are set directly from their
    degree-1 invariants first.

    scales: optional (n_inv,) divisors of the invariant residuals. The invariants of a small
    molecule span many orders of magnitude (high orders are tiny), so dividing by their
    typical size (``MomentSpace.magnitudes``) makes every invariant count; the RMSD compared
    with ``tol`` is then a relative one. Returns ``(x, scaled RMSD over all invariants)``.
    """
    space = moment_space(invariants)
    target = np.asarray(fingerprint, dtype=float)
    scales = np.ones(len(target)) if scales is None else np.asarray(scales, dtype=float)
    x = space.set_l0_moments(np.array(initial, dtype=float), target)
    l_max = int(space.l.max()) if l_stop is None else min(int(l_stop), int(space.l.max()))
    for l_prime in range(max(1, l_start), l_max + 1):
        params = np.flatnonzero(space.l <= l_prime)
        block = np.flatnonzero(space.l == l_prime)
        rows = np.flatnonzero(space.invariant_l <= l_prime)
        best_x, best_rmsd = x, math.inf
        trial = x.copy()
        for retry in range(max(1, max_retries)):
            fitted, rmsd = fit_moments(space, target, trial, params, rows, scales, max_nfev,
                                       floor=0.1 * tol)
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
