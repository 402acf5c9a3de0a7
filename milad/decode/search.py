"""The search loop: the alternating scheme of the paper's Fig. 4, basin hops and species.

One attempt alternates **moments from invariants** (Algorithm 1,
:mod:`milad.decode.algorithm1`) and **atoms from moments** (:mod:`milad.decode.placement`),
each followed by a *polish*, a fit of the positions (and weights) directly to the target
fingerprint. Between alternations, *basin hops* perturb the best atoms and polish again. Fitting
atoms, then refitting the moments from the atoms' moments, steers Algorithm 1 towards a moment
vector that N atoms can realise.

Species are weights in the species map's range (e.g. the paper's H, C, O, N, F -> 1.1 ... 1.9
over [1, 2]). In one fingerprint (mode "single") weights are free within the range during the
fits, then snapped to the nearest species and the positions polished again; near misses get
discrete species moves. With a second, positions-only fingerprint (mode "two") only the
weights are fitted, positions fixed (:func:`species_from_positions`).

Every candidate structure travels as a :class:`Candidate` (positions in cutoff units, weights,
fingerprint RMSD).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..descriptor import Descriptor
from .algorithm1 import MAX_NFEV, moments_from_invariants
from .loss import FLOOR, STALL_WINDOW, RepulsionTerm, Target, fit_atoms, min_distance
from .placement import atoms_from_moments, relocate_atoms
from .space import moment_space

__all__ = ["Attempt", "Candidate", "SearchProblem", "species_by_enumeration", "species_from_positions"]

HOP_WIDTHS = (0.1, 0.2, 0.4, 0.8)  # Angstrom
HOPS_PER_ROUND = 10
SNAP_BELOW = 1e-2  # continuous-weight RMSD below which snapped species are tried
MOVES_BELOW = 1e-3  # snapped-species RMSD below which discrete species moves are tried
REFINE_BELOW = 1e-4  # RMSD below which a near solution is converged fully
REFINE_NFEV = 3000
REFINE_WINDOW = 100  # the stall window of a refinement (loss.STALL_WINDOW for other fits)
#: fits of positions to the fingerprint (polishes, refinements, mode two's joint polish) end
#: once their RMS residual is this fraction of the success threshold ``tol`` (1e-12 by default,
#: a fingerprint RMSD of about 1.1e-11: ``SearchProblem.floor_rmsd``). Near a root the LM
#: steps often converge only linearly, so each decade below costs tens of evaluations. With
#: the weights held, a fit that reaches the floor has succeeded and one that does not takes
#: the path it took without it, so no decision of the search depends on it; the value keeps
#: the decoded structures as accurate as before (a floor at 1e-4 of ``tol`` left them ten
#: times further off: README). Fits that free the weights (mode single) keep ``loss.FLOOR``:
#: continuous weights can fit the fingerprint of wrong species, so a floor decides nothing there.
FLOOR_MARGIN = 1e-6
#: LM steps of every fit of atoms in the search (fits to the moments, relocations, polishes,
#: refinements; :func:`~milad.decode.loss.solve_lm`): Marquardt steps by Cholesky
#: factorisation, several times cheaper than SciPy's SVD steps (an SVD of a (161, 88) Jacobian
#: of 22 atoms with weights took 1.4 ms, a Cholesky solve 0.09 ms). Fits of atoms without
#: species have used them since commit 8e73831 (positions: half the CPU time, the same
#: success rates across seeds). With fitted weights (mode single) the SVD steps were kept
#: after one run on the 77 (11 of the 23 largest molecules lost at seed 0 against 8).
#: Measured again on the tuning set (``benchmarks/qm9_tuning.xyz``, not the 77, seeds 0 and
#: 1): a third of the CPU time and 121 decoded against 124 of 144; with twice the search
#: (``api.SEARCH_EFFORT``) 132 in 0.41 of the CPU time (README, decoder section).
LM_METHOD = "cholesky"
POLISH_NFEV = 300
#: LM evaluations per Algorithm 1 fit in searches without fitted weights (SearchProblem says why)
MOMENT_NFEV = 40
#: fits per l' of the first alternation's Algorithm 1 (from random moments) in searches without
#: fitted weights; later alternations and species fits make ``max_retries`` (SearchProblem)
FIRST_LADDER_RETRIES = 1
#: mode "two": species assignments scored exhaustively when the fits miss (5 species: 9 atoms)
ENUMERATION_BUDGET = 2_000_000
ENUMERATION_KEEP = 4096  # assignments nearest in the l = 0 moments, scored by the fingerprint
_ENUMERATION_CHUNK = 1 << 16


@dataclass
class Candidate:
    """A structure tried by the search: ``positions`` (N, 3) in cutoff units, ``weights``
    (N,) and ``rmsd``, the fingerprint RMSD to the target."""

    positions: np.ndarray | None
    weights: np.ndarray | None
    rmsd: float


@dataclass
class Attempt:
    """Outcome of one attempt: ``best`` candidate (species snapped), the continuous weights of
    the best candidate before snapping, moments <-> atoms ``iterations`` made and the scaled
    invariant RMSD of the last Algorithm 1 fit."""

    best: Candidate
    continuous_weights: np.ndarray
    iterations: int
    moment_rmsd: float


def random_configuration(rng, n_atoms, radius, r_min_unit, weight_choices):
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


class SearchProblem:
    """One decoding problem: the target fingerprint of ``descriptor`` and the settings of the
    fits. ``weight_range`` (species) bounds fitted weights; ``fit_weights`` frees them (mode
    "single"); ``timings`` collects seconds per stage.

    ``moment_nfev``, the LM evaluations of each Algorithm 1 fit: ``MOMENT_NFEV`` without fitted
    weights, Algorithm 1's default (``MAX_NFEV``, 200) with them. For a small molecule the fits
    of l' >= 4 rarely reach their tolerance and crawl to the limit, while the fits of atoms
    after them find the molecule from a rougher moment vector (and later alternations refit
    the moments from the atoms' own). Chosen on 72 other QM9 molecules of the same sizes
    (``benchmarks/qm9_tuning.xyz``), not on the 77 the benchmark reports: see the
    README's decoder section for the numbers. Species in one fingerprint were not measured
    (a pass takes hours), so they keep the default.

    ``moment_retries``, the fits per ``l'`` of an Algorithm 1 call: without fitted weights the
    first alternation's ladder (``l'`` from 1, random moments) fits each ``l'`` once
    (``FIRST_LADDER_RETRIES``); every other call makes ``max_retries``. The fits of l' >= 4
    almost always end at their budget above the tolerance (142 of 146 in 15 tuning decodes of
    10-19 atoms), so a retry from a re-randomised block mostly doubles a crawl that the fits of
    atoms do not need for a small molecule; later alternations, which harder molecules reach,
    keep the retries. Chosen on the tuning set (seeds 0-4, against retries everywhere: 357
    against 356 decoded, median 3-9 atoms 0.34 s against 0.45 s, decode CPU 1,350 s against
    1,365 s); one fit per ``l'`` in every call was also tried there and cost more CPU (1,422 s).
    """

    def __init__(self, descriptor: Descriptor, target: np.ndarray, n_atoms: int,
                 weight_range: tuple[float, float] | None, fit_weights: bool,
                 repulsion: RepulsionTerm | None, tol: float, moment_tol: float, max_retries: int,
                 n_points: int, timings: dict[str, float]):
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
        self.chiral = bool(descriptor.invariants.chiral)
        self.total_weight = self.space.fingerprint_total_weight(target)
        self.mean_weight = self.total_weight / n_atoms
        l0 = self.space.set_l0_moments(np.zeros(self.space.n_params), target)
        msr = self.space.mean_square_radius(l0)
        self.radius = min(1.0, math.sqrt(5.0 / 3.0 * msr)) if msr and msr > 0 else 0.5

    @property
    def moment_nfev(self) -> int:
        """LM evaluations per Algorithm 1 fit (see the class docstring)."""
        return MAX_NFEV if self.fit_weights else MOMENT_NFEV

    def moment_retries(self, first: bool) -> int:
        """Fits per ``l'`` of an Algorithm 1 call, ``first`` for the first alternation's (see
        the class docstring)."""
        return FIRST_LADDER_RETRIES if first and not self.fit_weights else self.max_retries

    def _timed(self, stage, function, *args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def random_moments(self, rng) -> np.ndarray:
        """Moments of random atoms of this problem's size and mean weight."""
        choices = [1.0] if self.weight_range is None else self.descriptor.species.weights
        positions, weights = random_configuration(
            rng, self.n_atoms, self.radius, min_distance(self.repulsion) / self.descriptor.cutoff, choices,
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

    def candidate(self, positions, weights) -> Candidate:
        return Candidate(positions, weights, self.rmsd(positions, weights))

    @property
    def floor(self) -> float:
        """RMS residual at which fits of positions to the fingerprint end (``FLOOR_MARGIN``)."""
        return self.tol * FLOOR_MARGIN

    @property
    def floor_rmsd(self) -> float:
        """The fingerprint RMSD at which a polish reaches ``floor`` (its n_inv + N residuals,
        the atoms' penalties zero): attempts that succeed above it are refined down to it."""
        return self.floor * math.sqrt(len(self.target) + self.n_atoms)

    def polish(self, positions, weights, fit_weights: bool, max_nfev: int = POLISH_NFEV,
               window: int = STALL_WINDOW):
        """Fit positions (and weights) to the target fingerprint, until the RMS residual is
        below ``floor`` (``loss.FLOOR`` with ``fit_weights``) or the fit stalls; returns
        (positions, weights)."""
        return self._timed(
            "polish", fit_atoms, self.space, Target("phi", self.target), positions, weights,
            fit_weights=fit_weights, weight_range=self.weight_range, repulsion=self.repulsion,
            cutoff=self.descriptor.cutoff, max_nfev=max_nfev, window=window,
            method=LM_METHOD, floor=FLOOR if fit_weights else self.floor,
        )

    def fit_weights_only(self, positions, weights, max_nfev: int = 400) -> np.ndarray:
        """Weights fitted to the target fingerprint with the positions fixed."""
        return fit_atoms(
            self.space, Target("phi", self.target), positions, weights, fit_positions=False,
            fit_weights=True, weight_range=self.weight_range, max_nfev=max_nfev,
        )[1]

    def hand(self, positions, weights) -> np.ndarray:
        """With parity-odd invariants (a chiral fingerprint): ``positions`` or their mirror
        image, whichever fingerprint is nearer the target. A reflection keeps the even
        invariants and flips the sign of the odd ones, so a fit that reached the other
        enantiomer (which the even part cannot tell apart) is turned into this one: a step no
        continuous fit can take, as every path between the two passes through achiral
        structures. Without odd invariants ``positions`` as they are."""
        if not self.chiral:
            return positions
        mirrored = positions * np.array([-1.0, 1.0, 1.0])
        return mirrored if self.rmsd(mirrored, weights) < self.rmsd(positions, weights) else positions

    def snap(self, weights) -> np.ndarray:
        """Weights of the nearest species (clipped into the weight range first)."""
        low, high = self.weight_range
        clipped = np.clip(weights, low, high)
        return self.descriptor.species.weights_of(self.descriptor.species.species_of(clipped))

    def _score(self, positions, weights) -> tuple[Candidate, Candidate]:
        """Score polished atoms: the candidate as fitted and after snapping species."""
        rmsd = self.rmsd(positions, weights)
        if not (math.isfinite(rmsd) and np.all(np.isfinite(positions)) and np.all(np.isfinite(weights))):
            failed = Candidate(positions, weights, math.inf)
            return failed, failed
        fitted = Candidate(positions, weights, rmsd)
        if not self.fit_weights:
            return fitted, fitted
        snapped = self.snap(weights)
        if rmsd > SNAP_BELOW:  # far from a solution: score the snapped weights without a polish
            return fitted, self.candidate(positions, snapped)
        final, _ = self.polish(positions, snapped, False)
        final = self.candidate(final, snapped)
        if self.tol <= final.rmsd < MOVES_BELOW:  # near miss: a species or two may be wrong
            final = species_moves(self, final)
        return fitted, final

    def _alternate(self, rng, current: Candidate | None, history, scales, mean_weights):
        """One moments <-> atoms iteration of Fig. 4 (see ``attempt``); returns the scored
        polished atoms (``_score``) and the invariant RMSD of the moments fit."""
        l_values = self.space.l
        l_max = int(l_values.max())
        if current is None:
            start, l_start, origins = self.random_moments(rng), 1, [None]
        else:
            start = self.space.moments(current.positions, current.weights)
            l_start = l_max
            if len(history) >= 2 and history[-1] > 0.5 * history[-2]:
                l_start = int(rng.integers(min(3, l_max), l_max + 1))
                fresh = self.random_moments(rng)
                start[l_values >= l_start] = fresh[l_values >= l_start]
            origins = [current, None]
        x, moment_rmsd = self._timed(
            "moments", moments_from_invariants, self.target, self.descriptor.invariants,
            start, rng, tol=self.moment_tol, max_retries=self.moment_retries(current is None),
            randomise=self.random_moments, scales=scales, l_start=l_start,
            max_nfev=self.moment_nfev,
        )
        settings = dict(fit_weights=self.fit_weights, weight_range=self.weight_range,
                        cutoff=self.descriptor.cutoff, repulsion=self.repulsion,
                        n_points=self.n_points, lm_method=LM_METHOD)
        fits = [  # fitted to x, before relocations
            self._timed(
                "atoms", atoms_from_moments, x, self.descriptor.invariants, self.n_atoms,
                weights=mean_weights if origin is None else origin.weights, relocate=False,
                initial_positions=None if origin is None else origin.positions, **settings,
            )
            for origin in origins
        ]
        # the atoms before relocations are polished first: when they reach the fingerprint
        # the relocations (most of the atoms stage of a small molecule) are not needed; when
        # they do not, the iteration goes on exactly as without this try
        scored = self._score(*self._polished(*self._nearest(x, fits)))
        if scored[1].rmsd < self.tol:
            return scored, moment_rmsd
        relocated = [
            self._timed("atoms", relocate_atoms, x, self.descriptor.invariants, positions, weights,
                        **settings)
            for positions, weights in fits
        ]
        return self._score(*self._polished(*self._nearest(x, relocated))), moment_rmsd

    def _nearest(self, x, fits):
        """The (positions, weights) of ``fits`` whose moments are nearest ``x`` (the first of
        equal fits)."""
        return min(fits, key=lambda fit: self.space.moment_rmsd(self.space.moments(*fit), x))

    def _polished(self, positions, weights):
        """``polish`` with this problem's fitted weights, then ``hand``: (positions, weights)."""
        positions, weights = self.polish(positions, weights, self.fit_weights)
        return self.hand(positions, weights), weights

    def _hop(self, rng, current: Candidate):
        """Basin hopping: perturb every atom (Gaussian, width drawn from ``HOP_WIDTHS``
        Angstrom; weights by 0.05) and polish; returns the scored atoms (``_score``)."""
        width = float(rng.choice(HOP_WIDTHS)) / self.descriptor.cutoff
        positions = current.positions + rng.normal(0.0, width, current.positions.shape)
        weights = current.weights
        if self.fit_weights:
            weights = weights + rng.normal(0.0, 0.05, weights.shape)
        return self._score(*self._polished(positions, weights))

    def attempt(self, rng, max_iterations: int, hops: int) -> Attempt:
        """One attempt of the alternating scheme (Fig. 4) with basin hopping.

        Iteration 1: moments from invariants (Algorithm 1) from the moments of random atoms,
        atoms from moments (greedy peak finding, fit, relocations), polish on the fingerprint.
        The fitted atoms are polished and scored before their relocations, which run only when
        that misses (an iteration that misses then goes on exactly as it would without the
        try, so an attempt succeeds whenever it did without it). Then, while the fingerprint RMSD is above ``tol``: rounds of ``HOPS_PER_ROUND`` basin
        hops (perturb the best atoms, polish, keep if better; ``hops`` in all) alternate with
        further moments <-> atoms iterations (``max_iterations`` in all). In those, the moments
        are refitted to the invariants starting from the moments of the best atoms so far
        (Algorithm 1 at ``l' = l_max``); when the RMSD stagnated (less than halved) the blocks
        ``l >= L`` (L random in 3..l_max) are re-randomised first and ``l'`` grows from L, to
        pick another root of the invariant equations (many moment vectors share a fingerprint;
        only a realisable one is sought). Atoms are fitted both from the best atoms and from
        fresh peak finding, keeping the better fit to the moments (before relocations and
        after), and polished.
        """
        scales = self.invariant_scales(rng)
        mean_weights = np.full(self.n_atoms, self.mean_weight)
        current: Candidate | None = None  # best polished candidate before snapping species
        best = Candidate(None, None, math.inf)  # best after snapping
        history: list[float] = []
        moment_rmsd = math.nan
        iterations = hops_done = 0

        def consider(scored: tuple[Candidate, Candidate]) -> float:
            nonlocal current, best
            fitted, final = scored
            if fitted.rmsd < (math.inf if current is None else current.rmsd):
                current = fitted
            if final.rmsd < best.rmsd:
                best = final
            return fitted.rmsd

        while True:
            if iterations < max_iterations:
                scored, moment_rmsd = self._alternate(rng, current, history, scales, mean_weights)
                iterations += 1
                history.append(consider(scored))
            if best.rmsd < self.tol:
                break
            round_hops = min(HOPS_PER_ROUND, hops - hops_done) if current is not None else 0
            for _ in range(round_hops):
                scored = self._timed("hops", self._hop, rng, current)
                hops_done += 1
                consider(scored)
                if best.rmsd < self.tol:
                    break
            if best.rmsd < self.tol or (iterations >= max_iterations and (hops_done >= hops or current is None)):
                break
        if best.positions is None:  # every fit diverged: report the mean-weight random start
            positions, _ = random_configuration(rng, self.n_atoms, self.radius, 0.0, [1.0])
            best = Candidate(positions, mean_weights if not self.fit_weights else self.snap(mean_weights), math.inf)
            current = Candidate(positions, mean_weights, math.inf)
        if self.floor_rmsd < best.rmsd < REFINE_BELOW:  # converge a near solution (ill-conditioned directions)
            positions, _ = self.polish(best.positions, best.weights, False, max_nfev=REFINE_NFEV,
                                       window=REFINE_WINDOW)
            refined = self.candidate(positions, best.weights)
            if refined.rmsd < best.rmsd:
                best = refined
        return Attempt(best, current.weights.copy(), iterations, moment_rmsd)


def species_moves(problem: SearchProblem, start: Candidate, rounds: int = 4) -> Candidate:
    """Discrete local search over species with positions fixed, then a polish.

    Candidate moves: one atom to any other species, and pairs of atoms shifted by the same
    species step in opposite directions (which keeps the total weight, fixed by Omega_00). The
    moments are linear in the weights, so all moves are scored in one vectorised batch; the
    best one is kept (positions re-polished) while it lowers the fingerprint RMSD.
    """
    space = problem.space
    levels = np.asarray(problem.descriptor.species.weights, dtype=float)
    positions, weights = start.positions, start.weights
    n = len(weights)
    rmsd = problem.rmsd(positions, weights)
    steps = np.diff(levels)
    step = float(np.median(steps)) if len(steps) else 0.0
    for _ in range(rounds):
        if rmsd < problem.tol:
            break
        columns = space.weight_columns(positions)  # (P, N): dx / dw
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
        deltas = np.concatenate([singles, pairs])  # (moves, N) weight changes
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
    return Candidate(positions, weights, rmsd)


def species_by_enumeration(problem: SearchProblem, positions: np.ndarray,
                           budget: int = ENUMERATION_BUDGET,
                           keep: int = ENUMERATION_KEEP) -> Candidate | None:
    """The best of every assignment of species to fixed ``positions`` (N, 3) (cutoff units),
    or ``None`` when there are more than ``budget`` (``n_species ** N``) or the invariant set
    has no degree-1 ``l = 0`` invariants.

    The moments are linear in the weights, ``x = C w``, and the degree-1 invariants give the
    ``l = 0`` moments exactly, so every assignment is first ranked by its misfit in those few
    linear equations (vectorised over chunks of assignments); the ``keep`` nearest are scored
    by the full fingerprint RMSD. Complete for the molecules it accepts: with the true
    positions the true species (or a symmetry-equivalent assignment) is among them, which the
    continuous weight fits, stuck in a local minimum, can miss (e.g. QM9 23, HC3N, at some
    seeds).
    """
    space = problem.space
    levels = np.asarray(problem.descriptor.species.weights, dtype=float)
    n = len(positions)
    count = len(levels) ** n
    if count > budget or not space.linear:
        return None
    columns = space.weight_columns(positions)  # (P, N): x = columns @ w
    rows = [p for _, p, _ in space.linear]
    linear = columns[rows]  # (L, N)
    known = space.set_l0_moments(np.zeros(space.n_params), problem.target)[rows]
    place = len(levels) ** np.arange(n - 1, -1, -1)

    def assignments(codes):  # base-n_species digits of the codes -> weights (len(codes), N)
        return levels[(codes[:, None] // place) % len(levels)]

    kept_codes = np.zeros(0, dtype=np.int64)
    kept_misfit = np.zeros(0)
    for start in range(0, count, _ENUMERATION_CHUNK):
        codes = np.arange(start, min(count, start + _ENUMERATION_CHUNK), dtype=np.int64)
        misfit = np.linalg.norm(assignments(codes) @ linear.T - known, axis=1)
        codes, misfit = np.concatenate([kept_codes, codes]), np.concatenate([kept_misfit, misfit])
        if len(codes) > keep:
            nearest = np.argpartition(misfit, keep - 1)[:keep]
            codes, misfit = codes[nearest], misfit[nearest]
        kept_codes, kept_misfit = codes, misfit
    weights = assignments(kept_codes)
    phi = space.invariants.evaluate(space.omega(weights @ columns.T))
    best = int(np.argmin(np.mean((phi - problem.target) ** 2, axis=1)))
    return problem.candidate(positions, weights[best])


@dataclass
class SpeciesFit:
    """Species mode "two": the ``best`` candidate (snapped weights) and the continuous weights
    it was snapped from."""

    best: Candidate
    continuous_weights: np.ndarray


def species_from_positions(problem: SearchProblem, positions_problem: SearchProblem,
                           positions: np.ndarray, rng, starts: int) -> SpeciesFit:
    """Species mode "two": fit only the weights to the species fingerprint, positions fixed.

    Several starts (the mean weight, then random species); each fit is snapped to species and
    scored by the fingerprint RMSD; near misses get discrete species moves
    (:func:`species_moves`); when all of that misses, small molecules get every assignment
    (:func:`species_by_enumeration`); finally the positions are polished against both
    fingerprints at once (the positions-only one pins positions only to its RMSD; the true
    structure satisfies both).
    """
    species_weights = problem.descriptor.species.weights
    mean = np.full(problem.n_atoms, problem.mean_weight)
    best, best_fitted = problem.candidate(positions, problem.snap(mean)), mean
    for start in range(max(1, starts)):
        if start == 0:
            initial = np.full(problem.n_atoms, problem.mean_weight)
        else:
            initial = rng.choice(species_weights, size=problem.n_atoms)
        fitted = problem.fit_weights_only(positions, initial)
        if not np.all(np.isfinite(fitted)):
            continue
        snapped = problem.candidate(positions, problem.snap(fitted))
        if snapped.rmsd < best.rmsd:
            best, best_fitted = snapped, fitted
        if snapped.rmsd < problem.tol:
            break
    if problem.tol <= best.rmsd < MOVES_BELOW:
        best = species_moves(problem, best)
    if best.rmsd >= problem.tol:
        enumerated = species_by_enumeration(problem, positions)
        if enumerated is not None and enumerated.rmsd < best.rmsd:
            best, best_fitted = enumerated, enumerated.weights
    if best.rmsd < REFINE_BELOW:
        ones = np.ones(problem.n_atoms)
        joint = fit_atoms(
            problem.space, [Target("phi", positions_problem.target, ones), Target("phi", problem.target, best.weights)],
            best.positions, best.weights, repulsion=problem.repulsion, cutoff=problem.descriptor.cutoff,
            max_nfev=REFINE_NFEV, window=REFINE_WINDOW, floor=problem.floor,
        )[0]
        joint_rmsd = problem.rmsd(joint, best.weights)
        if max(joint_rmsd, positions_problem.rmsd(joint, ones)) < max(best.rmsd, positions_problem.rmsd(best.positions, ones)):
            best = Candidate(joint, best.weights, joint_rmsd)
    return SpeciesFit(best, best_fitted)
