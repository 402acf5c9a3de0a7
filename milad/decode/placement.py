"""Atoms from moments: peak finding (Algorithm 2) and the fit of atoms to moments (eq. 36).

Initial positions come from the eq. 14 reconstruction of the density over a cubic grid inside
the unit sphere: Algorithm 2 as published (:func:`peak_find`) or, by default, a greedy variant
that refits the atoms placed so far after each placement. Positions (and weights, for species)
are then fitted to the moments with the repulsion of eq. 35 (the loss of eq. 36), and single
atoms are relocated out of local minima. Positions are in units of the cutoff.
"""

from __future__ import annotations

import numpy as np

from ..invariants import InvariantSet
from .loss import RepulsionTerm, Target, fit_atoms, min_distance
from .space import moment_space

__all__ = ["atoms_from_moments", "peak_find", "relocate_atoms"]


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
    grid, basis = space.grid(n_points)
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


GAIN = 0.01  # relative drop of the moment RMSD for which a relocated atom is kept


def _greedy_positions(space, x, grid, basis, weights, *, fit_weights, weight_range, repulsion,
                      cutoff, r_min, max_nfev, lm_method):
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
        positions, placed = fit_atoms(
            space, Target("moments", x), positions, placed, fit_weights=fit_weights,
            weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, max_nfev=max_nfev,
            method=lm_method,
        )
    return positions, placed


def _relocate(space, x, positions, weights, grid, basis, *, moves, fit_weights, weight_range,
              repulsion, cutoff, r_min, max_nfev, lm_method, tol=1e-10):
    """Escape local minima of the fit to the moments by moving single atoms.

    The atom sitting in the most negative residual density (``x`` minus the atoms' moments,
    reconstructed on the grid) is moved to the maximum of the residual density away from the
    other atoms and the fit redone; the move is kept when it lowers the moment RMSD by the
    fraction ``GAIN`` (a refit into the same minimum is not a gain). Atoms are
    tried in order of their residual density until one move is accepted (then the ranking is
    recomputed), at most ``moves`` fits in all; when every atom was moved without a gain the
    search ends (the fits are deterministic, so another round would repeat them).
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
        if not order:  # every atom moved without a gain: retrying would repeat the same fits
            break
        atom = order[0]
        tried.add(atom)
        near = (np.delete(distance2, atom, axis=1) < r_min**2).any(axis=1)
        trial = positions.copy()
        trial[atom] = grid[int(np.argmax(np.where(near, -np.inf, residual)))]
        trial, trial_weights = fit_atoms(
            space, Target("moments", x), trial, weights, fit_weights=fit_weights,
            weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, max_nfev=max_nfev,
            method=lm_method,
        )
        rmsd = moment_rmsd(trial, trial_weights)
        if rmsd < (1.0 - GAIN) * best:
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
    lm_method: str = "svd",
    relocate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (cutoff units) and weights of ``n_atoms`` deltas reproducing the moments ``x``.

    Starts from ``initial_positions`` or, without them, from peak finding on the eq. 14
    reconstruction over a ``n_points^3`` grid: ``method="peaks"`` is Algorithm 2 as published,
    ``method="greedy"`` (default) refits the atoms placed so far to the moments after each
    placement (``greedy_nfev`` evaluations each), which finds much better starts for larger
    molecules. Then positions (and weights with ``fit_weights``, kept in ``weight_range``) are
    fitted by LM to the loss of eq. 36 (moment RMSD plus the repulsion of eq. 35). Up to
    ``moves`` single-atom relocations (:func:`relocate_atoms`) follow while the moment RMSD is
    not negligible. With ``fit_weights`` and no ``initial_positions`` the positions are found
    first with the weights held fixed (relocations included), then positions and weights are
    fitted together (much more reliable than fitting both from the start). ``lm_method``: the
    LM steps of every fit (:func:`~milad.decode.loss.solve_lm`).

    ``relocate=False`` skips the relocations after the last fit (those of the positions-first
    fit stay): :func:`relocate_atoms` applied to that result gives the default's, and the
    search (:mod:`milad.decode.search`) takes the two steps apart to try the atoms before
    relocating them.
    """
    space = moment_space(invariants)
    if method not in ("greedy", "peaks"):
        raise ValueError(f"unknown peak-finding method {method!r}; choose 'greedy' or 'peaks'")
    if weights is None:
        weights = np.full(n_atoms, space.total_weight(x) / n_atoms)
    weights = np.asarray(weights, dtype=float)
    r_min = _exclusion_radius(repulsion, cutoff)
    if initial_positions is None and fit_weights:
        # positions first, with the weights held at their starting values; then both
        initial_positions, weights = atoms_from_moments(
            x, invariants, n_atoms, weights=weights, fit_weights=False, cutoff=cutoff,
            repulsion=repulsion, n_points=n_points, method=method, moves=moves,
            max_nfev=max_nfev, greedy_nfev=greedy_nfev, lm_method=lm_method,
        )
    if initial_positions is None:
        if method == "peaks":
            initial_positions = peak_find(x, invariants, n_atoms, weight=float(weights.mean()),
                                          r_min=r_min, n_points=n_points)
        else:
            grid, basis = space.grid(n_points)
            initial_positions, weights = _greedy_positions(
                space, x, grid, basis, weights, fit_weights=fit_weights,
                weight_range=weight_range, repulsion=repulsion, cutoff=cutoff, r_min=r_min,
                max_nfev=greedy_nfev, lm_method=lm_method,
            )
    positions, weights = fit_atoms(
        space, Target("moments", x), np.asarray(initial_positions, float), weights,
        fit_weights=fit_weights, weight_range=weight_range, repulsion=repulsion, cutoff=cutoff,
        max_nfev=max_nfev, method=lm_method,
    )
    return relocate_atoms(
        x, invariants, positions, weights, fit_weights=fit_weights, weight_range=weight_range,
        cutoff=cutoff, repulsion=repulsion, n_points=n_points, moves=moves if relocate else 0,
        max_nfev=max_nfev, lm_method=lm_method,
    )


def relocate_atoms(
    x: np.ndarray,
    invariants: InvariantSet,
    positions: np.ndarray,
    weights: np.ndarray,
    *,
    fit_weights: bool = False,
    weight_range: tuple[float, float] | None = None,
    cutoff: float = 5.0,
    repulsion: RepulsionTerm | None = RepulsionTerm(),
    n_points: int = 31,
    moves: int = 10,
    max_nfev: int = 200,
    lm_method: str = "svd",
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``moves`` single-atom relocations of atoms already fitted to the moments ``x``
    (positions (N, 3) in cutoff units, weights (N,)), each a move to the maximum of the residual
    density followed by a refit, kept when it lowers the moment RMSD (``_relocate``); the other
    arguments as in :func:`atoms_from_moments`. Returns (positions, weights)."""
    if not moves:
        return positions, weights
    space = moment_space(invariants)
    grid, basis = space.grid(n_points)
    return _relocate(
        space, x, positions, weights, grid, basis, moves=moves, fit_weights=fit_weights,
        weight_range=weight_range, repulsion=repulsion, cutoff=cutoff,
        r_min=_exclusion_radius(repulsion, cutoff), max_nfev=max_nfev, lm_method=lm_method,
    )


def _exclusion_radius(repulsion: RepulsionTerm | None, cutoff: float) -> float:
    """Cutoff units: how far from placed atoms peak finding and relocations look (``r_min``)."""
    return max(min_distance(repulsion) / cutoff, 1e-3)
