"""The public decoder: ``decode(fingerprint, descriptor, n_atoms)`` -> ASE ``Atoms``.

Checks the inputs (fingerprint shape and values, atom count against the encoded total weight,
species mode), runs attempts of the search loop (:mod:`milad.decode.search`) from seeded
random starts until one reaches the fingerprint RMSD ``tol``, and reports the best attempt with
a :class:`DecodeResult`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from threadpoolctl import threadpool_limits

from ..descriptor import Descriptor
from .loss import RepulsionTerm
from .search import Candidate, SearchProblem, species_from_positions
from .space import moment_space

__all__ = ["SEARCH_EFFORT", "SPECIES_MODES", "DecodeResult", "check_atom_count", "count_atoms", "decode",
           "search_effort"]

SPECIES_MODES = ("positions", "single", "two")
#: default (max_iterations, hops) of one attempt, per species mode. Mode single takes twice
#: the alternations and hops: its fits take Cholesky steps (``search.LM_METHOD``), about a
#: third of the cost of the SVD steps they replaced, and the doubled search spends part of that
#: on successes (chosen on the tuning set, not the 77: README, decoder section)
SEARCH_EFFORT = {"positions": (8, 100), "single": (16, 200), "two": (8, 100)}


def search_effort(species_mode: str, max_iterations: int | None = None,
                  hops: int | None = None) -> tuple[int, int]:
    """(max_iterations, hops) of one attempt in ``species_mode``: the given values, or the
    mode's :data:`SEARCH_EFFORT` where they are ``None``."""
    default_iterations, default_hops = SEARCH_EFFORT[species_mode]
    return (default_iterations if max_iterations is None else max_iterations,
            default_hops if hops is None else hops)
OUTSIDE_TOLERANCE = 1e-3  # cutoff units an already-decoded atom may lie outside the sphere



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
    total = space.fingerprint_total_weight(fingerprint)
    count = round(total)
    if count < 1 or abs(total - count) > tol * max(1.0, total):
        raise ValueError(
            f"the fingerprint's zeroth moment encodes a total weight of {total:.6g}, which is not a "
            "whole number of unit-weight atoms: is it a fingerprint with species? (pass n_atoms)"
        )
    return int(count)


def check_atom_count(n_atoms: int, descriptor: Descriptor, species_mode: str = "positions") -> int:
    """``n_atoms`` if a fingerprint of ``descriptor`` can pin that many atoms, else a ValueError
    with the reason, before any work: N atoms have 3N - 3 coordinates up to a rotation (plus
    N weights when species are fitted from one fingerprint, ``species_mode="single"``), and
    a fingerprint of K invariants fixes at most K unknowns."""
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, (int, np.integer)):
        raise ValueError(f"n_atoms must be an integer, got {n_atoms!r}")
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be at least 1, got {n_atoms}")
    per_atom = 4 if species_mode == "single" else 3
    unknowns, available = per_atom * int(n_atoms) - 3, len(descriptor)
    if unknowns > available:
        what = "3N - 3 coordinates and N weights" if per_atom == 4 else "3N - 3 coordinates"
        raise ValueError(
            f"cannot decode {n_atoms} atoms from {available} invariants: they have {unknowns} "
            f"unknowns ({what}), more than the fingerprint holds; at most "
            f"{(available + 3) // per_atom} atoms (a larger n_max encodes more)")
    return int(n_atoms)


@dataclass
class _Outcome:
    """One attempt as ``decode`` keeps it: the best candidate, its continuous weights before
    snapping, the Algorithm 1 RMSD and, in mode "two", the positions-only fingerprint RMSD."""

    candidate: Candidate
    continuous_weights: np.ndarray | None
    moment_rmsd: float
    positions_rmsd: float | None = None


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
    max_iterations: int | None = None,
    hops: int | None = None,
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
    tol: the success threshold of the fingerprint RMSD. Fits of positions to the fingerprint
    end once their RMS residual is ``tol * 1e-6`` (:data:`milad.decode.search.FLOOR_MARGIN`),
    so a successful decode returns atoms at a fingerprint RMSD of about ``tol * 1e-5`` (1e-11
    by default) or below, unless its fits stall sooner.
    attempts: new random starts while the fingerprint RMSD stays >= ``tol`` (in mode "two" each
    attempt decodes the positions anew: when the species miss from positions that reach the
    positions fingerprint, those positions are likely a near-minimum a hair off the molecule:
    from the true positions the species fit found the species of all 77 benchmark molecules at
    three seeds); max_iterations:
    moments <-> atoms alternations per attempt; hops: basin hops per attempt (perturb the best
    atoms and polish, in rounds of 10 between alternations); ``None`` takes the mode's
    :data:`SEARCH_EFFORT` (8 and 100; 16 and 200 in mode "single"); max_retries: LM fits per ``l'``
    in Algorithm 1 (without fitted weights the first alternation's ladder fits each ``l'``
    once: :class:`~milad.decode.search.SearchProblem`).
    symbol: chemical symbol of the atoms when decoding positions only.
    positions: species mode "two" only: (n_atoms, 3) positions in Angstrom already decoded from
    ``positions_fingerprint`` (e.g. by an earlier ``decode`` in mode "positions"); only the
    species fit (and the final joint polish) is then run.

    Returns ``(atoms, result)``: positions in Angstrom relative to the centre (random
    orientation; possibly the mirror image, unless ``descriptor`` is chiral: its parity-odd
    invariants fix the hand, and the search reflects any fit that reached the other one,
    ``SearchProblem.hand``), symbols from the snapped weights; ``result`` a
    ``DecodeResult``. The best attempt is returned when none succeeds.
    """
    # one BLAS thread: reproducible sums (and the fits' many small BLAS calls would only
    # contend for shared cores)
    with threadpool_limits(1):
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
    max_iterations, hops = search_effort(species_mode, max_iterations, hops)
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
            total = moment_space(descriptor.invariants).fingerprint_total_weight(target)
            raise ValueError(
                "n_atoms is needed when species are encoded in a single fingerprint: its total "
                f"weight {total:.6g} allows {math.ceil(total / high)} to {math.floor(total / low)} atoms"
            )
        n_atoms = count_atoms(positions_target, positions_descriptor)
    n_atoms = check_atom_count(n_atoms, descriptor, species_mode)

    space = moment_space(descriptor.invariants)
    total = space.fingerprint_total_weight(positions_target)
    if species_mode in ("positions", "two"):
        if abs(total - n_atoms) > 1e-3 * max(1.0, n_atoms):
            raise ValueError(
                f"the positions fingerprint encodes a total weight of {total:.6g}, inconsistent "
                f"with {n_atoms} atoms of weight 1"
            )
    if species_mode in ("single", "two"):
        low, high = descriptor.species.weight_range
        species_total = space.fingerprint_total_weight(target)
        if not (n_atoms * low - 1e-9 <= species_total <= n_atoms * high + 1e-9):
            raise ValueError(
                f"the fingerprint encodes a total weight of {species_total:.6g}: {n_atoms} atoms "
                f"would need a mean weight of {species_total / n_atoms:.4g}, outside the species "
                f"weight range [{low}, {high}]"
            )

    timings: dict[str, float] = {"moments": 0.0, "atoms": 0.0, "polish": 0.0, "hops": 0.0, "species": 0.0}
    fit_weights = species_mode == "single"
    problem = SearchProblem(
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
        if np.any(radii > 1 + OUTSIDE_TOLERANCE):
            raise ValueError(f"positions has atoms outside the cutoff sphere of radius {descriptor.cutoff}")
        # a decode's soft wall may leave an atom a hair outside: put it on the sphere
        known_positions[radii > 1] /= radii[radii > 1, None]
    species_problem = None
    if species_mode == "two":
        species_problem = SearchProblem(
            descriptor, target, n_atoms, descriptor.species.weight_range, True, repulsion,
            tol, moment_tol, max_retries, grid_points, timings,
        )

    best: _Outcome | None = None
    total_iterations = 0
    attempt_rmsds = []
    made = 0
    for attempt in range(attempts):
        made += 1
        rng = np.random.default_rng((int(seed), attempt))
        if species_problem is not None and known_positions is not None:
            outcome = _Outcome(problem.candidate(known_positions, np.ones(n_atoms)), None, math.nan)
            iterations = 0
        else:
            result = problem.attempt(rng, max_iterations, hops)
            outcome = _Outcome(result.best, result.continuous_weights, result.moment_rmsd)
            iterations = result.iterations
        total_iterations += iterations
        if species_problem is not None:
            outcome.positions_rmsd = outcome.candidate.rmsd
            start = time.perf_counter()
            fit = species_from_positions(species_problem, problem, outcome.candidate.positions, rng, weight_starts)
            timings["species"] += time.perf_counter() - start
            outcome.candidate, outcome.continuous_weights = fit.best, fit.continuous_weights
        attempt_rmsds.append(outcome.candidate.rmsd)
        if best is None or outcome.candidate.rmsd < best.candidate.rmsd:
            best = outcome
        if outcome.candidate.rmsd < tol:
            break
    positions, weights, rmsd = best.candidate.positions, best.candidate.weights, best.candidate.rmsd
    positions_rmsd, raw_weights = best.positions_rmsd, best.continuous_weights

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
        moment_rmsd=float(best.moment_rmsd),
        positions_rmsd=positions_rmsd,
        attempt_rmsds=[float(v) for v in attempt_rmsds],
        timings=timings,
        weights=None if raw_weights is None or species_mode == "positions" else np.asarray(raw_weights),
    )
    atoms.info.update({"fingerprint_rmsd": final_rmsd, "decode_success": result.success})
    return atoms, result
