"""MILAD fingerprints: atoms -> feature density -> moments -> rotation invariants Phi.

Two kinds of environment:

* a whole molecule (``Descriptor.molecule``): centred on its smallest enclosing sphere
  (miniball) and every atom included;
* atom-centred environments of a periodic or finite ``ase.Atoms`` (``Descriptor.local``):
  neighbours within the cutoff, relative to the centre (the centre itself is not part of its
  own density), with weights scaled by Behler's cosine cutoff (eq. 37).

Positions are divided by the cutoff so every environment lies in the unit sphere in which the
Zernike polynomials are orthogonal. Derivatives are analytic: the invariant polynomials are
differentiated exactly, and chained through the linear Zernike transform and the geometric
moments.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import miniball
import numba
import numpy as np
import scipy.sparse
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list

from .features import FEATURES, SpeciesMap, check_finite, cosine_cutoff
from .invariants import InvariantSet, load_chiral_invariants, load_invariants
from .moments import (
    _axis_powers,
    _segment_moments,
    geometric_indices,
    geometric_moments_batch,
    monomials,
    zernike_transform,
)

__all__ = ["Descriptor", "DescriptorStack", "LocalFingerprints", "centre_on_miniball", "compute_path",
           "neighbor_pairs"]


class LocalFingerprints:
    """Fingerprints of every atom-centred environment of a structure and their derivatives.

    values: (n_atoms, n_invariants).
    centers, neighbors: (n_pairs,) atom indices; pair p is neighbour ``neighbors[p]`` (possibly
    a periodic image) inside the environment of atom ``centers[p]``.
    derivatives: (n_pairs, n_invariants, 3), d Phi[centers[p]] / d r[neighbors[p]] through
    that image. Moving the centre moves every neighbour vector the opposite way, so
    d Phi[i] / d r[i] = -sum of its pairs; ``position_jacobian`` and ``forces`` account for it.

    From :meth:`Descriptor.local_derivatives` with ``jacobian=False`` the derivatives are
    formed only when first read: ``forces`` then needs just one vector-Jacobian product
    through the invariant polynomials (what a calculator does at every MD step).
    """

    def __init__(self, values: np.ndarray, centers: np.ndarray, neighbors: np.ndarray,
                 derivatives: np.ndarray | None = None, *,
                 chain: "_PairChain | _StackChain | None" = None):
        if derivatives is None and chain is None:
            raise ValueError("LocalFingerprints needs the derivatives or the chain to form them")
        self.values = values
        self.centers = centers
        self.neighbors = neighbors
        self._derivatives = derivatives
        self._chain = chain

    def __repr__(self) -> str:
        return (f"LocalFingerprints(n_atoms={len(self.values)}, n_pairs={len(self.centers)}, "
                f"n_invariants={self.values.shape[1]})")

    @property
    def derivatives(self) -> np.ndarray:
        if self._derivatives is None:
            self._derivatives = self._chain.jacobian()
        return self._derivatives

    def forces(self, energy_gradient: np.ndarray) -> np.ndarray:
        """Forces -dE/dr (n_atoms, 3) for ``energy_gradient`` = dE/dPhi, (n_atoms, n_inv)."""
        energy_gradient = np.asarray(energy_gradient, dtype=float)
        if self._derivatives is None:
            return -self._chain.position_gradient(energy_gradient)
        return -_pair_gradient(np.ascontiguousarray(energy_gradient), self._derivatives,
                               self.centers, self.neighbors)

    def position_jacobian(self) -> np.ndarray:
        """Dense d Phi[i] / d r[j], shape (n_atoms, n_invariants, n_atoms, 3): small systems only."""
        n_atoms, n_inv = self.values.shape
        dense = np.zeros((n_atoms, n_inv, n_atoms, 3))
        np.add.at(dense, (self.centers, slice(None), self.neighbors), self.derivatives)
        np.add.at(dense, (self.centers, slice(None), self.centers), -self.derivatives)
        return dense


@numba.njit(cache=True)
def _pair_gradient(energy_gradient, derivatives, centers, neighbors):
    """dE/dr (n_atoms, 3) from dE/dPhi (n_atoms, K) and pair derivatives (P, K, 3)."""
    out = np.zeros((energy_gradient.shape[0], 3))
    for p in range(derivatives.shape[0]):
        c = centers[p]
        n = neighbors[p]
        for x in range(3):
            total = 0.0
            for k in range(derivatives.shape[1]):
                total += energy_gradient[c, k] * derivatives[p, k, x]
            out[n, x] += total
            out[c, x] -= total
    return out


@numba.njit(cache=True)
def _pair_moments(powers, idx, weights, scaled_weights, weight_gradient, centers, starts):
    """Geometric moments of every environment (n_env, K) and d moments / d vector of every
    pair: w * d(monomial)/d(vector) + monomial * dw/d(vector).

    The pairs of environment c are ``starts[c]:starts[c + 1]`` (sorted by centre); their
    derivatives form a (K, 3 n_c) block, column 3 (p - starts[c]) + x for component x of
    pair p, stored flat from ``3 K starts[c]`` on (see ``_block``).
    powers: (P, 3, order + 1) axis powers of the scaled pair vectors; weights: (P,);
    scaled_weights: weights / cutoff; weight_gradient: (P, 3) dw/d(vector).
    """
    n_pairs = powers.shape[0]
    n_moments = idx.shape[0]
    moments = np.zeros((starts.shape[0] - 1, n_moments))
    jacobians = np.empty(3 * n_pairs * n_moments)
    for p in range(n_pairs):
        w = weights[p]
        sw = scaled_weights[p]
        g0 = weight_gradient[p, 0]
        g1 = weight_gradient[p, 1]
        g2 = weight_gradient[p, 2]
        c = centers[p]
        target = moments[c]
        width = 3 * (starts[c + 1] - starts[c])
        at = 3 * starts[c] * n_moments + 3 * (p - starts[c])
        for k in range(n_moments):
            s = idx[k, 0]
            t = idx[k, 1]
            u = idx[k, 2]
            px = powers[p, 0, s]
            py = powers[p, 1, t]
            pz = powers[p, 2, u]
            dpx = s * powers[p, 0, max(s - 1, 0)]
            dpy = t * powers[p, 1, max(t - 1, 0)]
            dpz = u * powers[p, 2, max(u - 1, 0)]
            value = px * py * pz
            target[k] += w * value
            jacobians[at] = dpx * py * pz * sw + value * g0
            jacobians[at + 1] = px * dpy * pz * sw + value * g1
            jacobians[at + 2] = px * py * dpz * sw + value * g2
            at += width
    return moments, jacobians


@numba.njit(cache=True)
def _pair_forces(powers, idx, raised, scaled_weights, weight_gradient, centers, neighbors,
                 moment_cotangent):
    """dE/dr (n_atoms, 3) from dE/dm (n_env, K), pair by pair without d m / d vector.

    For pair p of environment c with monomials q_k: dE/d vector = w / cutoff * sum_k dE/dm_k
    d q_k / d vector + (sum_k dE/dm_k q_k) dw / d vector, and d q_k / dx = s_k q_(k - e_x),
    so per environment dE/dm is first lifted onto the monomials of lower order:
    ``raised[k', a]`` is the index of monomial k' times axis a (``_raised_indices``).
    """
    n_env, n_moments = moment_cotangent.shape
    n_lower = raised.shape[0]
    n_pairs = centers.shape[0]
    lifted = np.zeros((n_env, 3, n_lower))
    for c in range(n_env):
        for k in range(n_lower):
            for a in range(3):
                lifted[c, a, k] = (idx[k, a] + 1) * moment_cotangent[c, raised[k, a]]
    out = np.zeros((n_env, 3))
    # the pairs of one environment (a run of equal centres) side by side: every monomial
    # and every sum over k is a vector loop over them, each pair's sums in the order of k
    width = 0
    p = 0
    while p < n_pairs:
        q = p
        while q < n_pairs and centers[q] == centers[p]:
            q += 1
        width = max(width, q - p)
        p = q
    n_powers = powers.shape[2]
    axis = np.empty((3, n_powers, width))
    monomial = np.empty((n_moments, width))
    along = np.empty(width)
    total = np.empty((3, width))
    p = 0
    while p < n_pairs:
        c = centers[p]
        q = p
        while q < n_pairs and centers[q] == c:
            q += 1
        n = q - p
        for a in range(3):
            for e in range(n_powers):
                for j in range(n):
                    axis[a, e, j] = powers[p + j, a, e]
        for k in range(n_moments):
            s, t, u = idx[k, 0], idx[k, 1], idx[k, 2]
            for j in range(n):
                monomial[k, j] = axis[0, s, j] * axis[1, t, j] * axis[2, u, j]
        along[:n] = 0.0
        for k in range(n_moments):
            g = moment_cotangent[c, k]
            for j in range(n):
                along[j] += g * monomial[k, j]
        total[:, :n] = 0.0
        for a in range(3):
            for k in range(n_lower):
                g = lifted[c, a, k]
                for j in range(n):
                    total[a, j] += g * monomial[k, j]
        for j in range(n):
            for a in range(3):
                value = scaled_weights[p + j] * total[a, j] + along[j] * weight_gradient[p + j, a]
                out[neighbors[p + j], a] += value
                out[c, a] -= value
        p = q
    return out


class _PairChain:
    """What the position derivatives of a structure's local fingerprints are formed from:
    the Zernike moments of every environment and, per pair, the axis powers of its scaled
    vector, its weight w, w / cutoff and dw / d vector."""

    def __init__(self, descriptor: "Descriptor", n_env: int, powers: np.ndarray,
                 weights: np.ndarray, weight_gradient: np.ndarray, centers: np.ndarray,
                 neighbors: np.ndarray, zernike: np.ndarray | None = None):
        self.descriptor = descriptor
        self.zernike = zernike  # needed for forces only
        self.powers = powers
        self.weights = weights
        self.weight_gradient = weight_gradient
        self.centers = centers
        self.neighbors = neighbors
        self.starts = np.searchsorted(centers, np.arange(n_env + 1))

    def values_and_jacobian(self) -> tuple[np.ndarray, np.ndarray]:
        """Phi (n_env, n_inv) and d Phi[centers[p]] / d r[neighbors[p]], (P, n_inv, 3) (a
        transposed view of a (P, 3, n_inv) array)."""
        descriptor = self.descriptor
        geometric, pair_jacobians = _pair_moments(
            self.powers, geometric_indices(descriptor.n_max), self.weights,
            self.weights / descriptor.cutoff, self.weight_gradient, self.centers, self.starts)
        values, products = descriptor.invariants.values_and_tangent_products(
            descriptor._zernike(geometric), descriptor._chain_plan, pair_jacobians,
            3 * self.starts)
        return values, products.reshape(len(self.centers), 3, -1).transpose(0, 2, 1)

    def jacobian(self) -> np.ndarray:
        return self.values_and_jacobian()[1]

    def position_gradient(self, energy_gradient: np.ndarray) -> np.ndarray:
        """dE/dr (n_atoms, 3) for dE/dPhi (n_atoms, n_inv), by one vector-Jacobian product."""
        descriptor = self.descriptor
        moment_cotangent = descriptor.invariants.chained_cotangent(
            self.zernike, energy_gradient, descriptor._chain_plan)
        return _pair_forces(self.powers, geometric_indices(descriptor.n_max),
                            _raised_indices(descriptor.n_max), self.weights / descriptor.cutoff,
                            self.weight_gradient, self.centers, self.neighbors,
                            np.ascontiguousarray(moment_cotangent))


@lru_cache(maxsize=None)
def _raised_indices(max_order: int) -> np.ndarray:
    """(K', 3): the index of geometric monomial k' (order < max_order) times x, y or z."""
    idx = geometric_indices(max_order)
    index = {tuple(int(v) for v in row): k for k, row in enumerate(idx)}
    lower = [row for row in idx if row.sum() < max_order]
    return np.array([[index[tuple(int(v) for v in row + np.eye(3, dtype=int)[a])]
                      for a in range(3)] for row in lower], dtype=np.int64).reshape(-1, 3)


@numba.njit(cache=True)
def _image_pairs(positions, shifts, cutoff, centers, neighbors, vectors):
    """Pairs (i, j, image) closer than ``cutoff``: fills the arrays as far as they reach and
    returns how many pairs there are (more than fit: call again with arrays that long)."""
    n = positions.shape[0]
    cutoff2 = cutoff * cutoff
    low = np.empty(3)
    high = np.empty(3)
    for a in range(3):
        low[a] = positions[:, a].min()
        high[a] = positions[:, a].max()
    count = 0
    for i in range(n):  # pairs come sorted by centre, then image, then neighbour
        for s in range(shifts.shape[0]):
            sx, sy, sz = shifts[s, 0], shifts[s, 1], shifts[s, 2]
            zero_shift = sx == 0.0 and sy == 0.0 and sz == 0.0
            # skip images whose bounding box lies beyond the cutoff from atom i
            gap2 = 0.0
            for a in range(3):
                x = positions[i, a] - shifts[s, a]
                gap = max(low[a] - x, x - high[a], 0.0)
                gap2 += gap * gap
            if gap2 >= cutoff2:
                continue
            for j in range(n):
                if zero_shift and i == j:
                    continue
                dx = positions[j, 0] + sx - positions[i, 0]
                dy = positions[j, 1] + sy - positions[i, 1]
                dz = positions[j, 2] + sz - positions[i, 2]
                if dx * dx + dy * dy + dz * dz < cutoff2:
                    if count < centers.shape[0]:
                        centers[count] = i
                        neighbors[count] = j
                        vectors[count, 0] = dx
                        vectors[count, 1] = dy
                        vectors[count, 2] = dz
                    count += 1
    return count


_DIRECT_SEARCH_LIMIT = 20_000_000  # atom pairs x images above which ASE's binned search wins
#: Angstrom: the cutoffs a Descriptor accepts (an atomic environment, not a typo or infinity)
CUTOFF_RANGE = (0.01, 100.0)
#: periodic images of the cell a neighbour search may visit (a degenerate, e.g. 1e-9 A thin,
#: cell would need billions)
MAX_IMAGES = 1_000_000


def compute_path() -> str:
    """Which hardware-specific code the fingerprints run on, in one line: numba's kernels are
    compiled for this CPU (its SIMD instructions) on first use, the geometric-to-Zernike
    transform is a BLAS matrix product (numpy's), and how many threads each may use."""
    import llvmlite.binding
    import threadpoolctl

    blas = [f"{Path(pool.get('filepath', '?')).parent.name}: {pool.get('internal_api')} "
            f"{pool.get('version')} ({pool.get('architecture', 'generic')} kernels, "
            f"{pool.get('num_threads')} thread(s))"
            for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    return (f"numba {numba.__version__} kernels compiled for CPU "
            f"'{llvmlite.binding.get_host_cpu_name()}' ({numba.config.NUMBA_NUM_THREADS} "
            f"thread(s) allowed, the kernels use one); BLAS: {'; '.join(blas) or 'none loaded'}")


def check_cutoff(cutoff) -> float:
    """``cutoff`` as a float if it is a finite radius in :data:`CUTOFF_RANGE` (Angstrom), else
    a ValueError saying why."""
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise ValueError(f"cutoff must be a number of Angstrom, got {cutoff!r}") from None
    low, high = CUTOFF_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"cutoff must be a finite radius between {low} and {high} Angstrom, "
                         f"got {cutoff}")
    return value


def neighbor_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centers, neighbors, vectors) of every pair closer than ``cutoff``, periodic images included.

    ``vectors[p] = r[neighbors[p]] + image shift - r[centers[p]]``; an atom is not its own
    neighbour unless through a periodic image. Small cells use a direct numba search over the
    needed images; large ones ASE's binned neighbour list. Pairs come sorted by centre.
    """
    positions = np.asarray(atoms.positions, dtype=float)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = atoms.cell.array
    if pbc.any() and abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError("a periodic structure needs a cell of non-zero volume")
    if pbc.any():
        inverse = np.linalg.inv(cell)
        fractional = positions @ inverse
        fractional[:, pbc] %= 1.0
        positions = fractional @ cell
        spacing = 1.0 / np.linalg.norm(inverse, axis=0)  # distances between lattice planes
        reps = np.where(pbc, np.ceil(cutoff / spacing), 0)
        images = float(np.prod(2 * reps + 1))
        if images > MAX_IMAGES:
            thin = int(np.argmin(np.where(pbc, spacing, np.inf)))
            raise ValueError(
                f"degenerate periodic cell: its lattice planes along cell vector {thin} are "
                f"{spacing[thin]:.3g} A apart, so a {cutoff} A cutoff would visit {images:.3g} "
                f"periodic images (at most {MAX_IMAGES:,}); check the cell")
        reps = [int(r) for r in reps]
        grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reps], indexing="ij"), -1)
        shifts = grid.reshape(-1, 3) @ cell
    else:
        shifts = np.zeros((1, 3))
    if len(positions) ** 2 * len(shifts) > _DIRECT_SEARCH_LIMIT:
        centers, neighbors, vectors = neighbor_list("ijD", atoms, cutoff)
        keep = np.einsum("ij,ij->i", vectors, vectors) < cutoff * cutoff
        order = np.argsort(centers[keep], kind="stable")
        return centers[keep][order], neighbors[keep][order], vectors[keep][order]
    shifts = np.ascontiguousarray(shifts)
    # room for twice the pairs of a uniform density (one pass); a denser cluster counts first
    volume = abs(np.linalg.det(cell)) if pbc.all() else None
    expected = (len(positions) ** 2 * 4.19 * cutoff ** 3 / volume) if volume else 0.0
    capacity = int(min(2 * expected + 64 * len(positions), len(positions) ** 2 * len(shifts)))
    centers, neighbors = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    vectors = np.empty((capacity, 3))
    count = _image_pairs(positions, shifts, cutoff, centers, neighbors, vectors)
    if count > capacity:
        centers, neighbors = np.empty(count, np.int64), np.empty(count, np.int64)
        vectors = np.empty((count, 3))
        _image_pairs(positions, shifts, cutoff, centers, neighbors, vectors)
    return centers[:count], neighbors[:count], vectors[:count]


def centre_on_miniball(positions: np.ndarray) -> tuple[np.ndarray, float]:
    """Positions relative to the centre of their smallest enclosing sphere, and its radius."""
    positions = np.asarray(positions, dtype=float)
    if len(positions) == 1:
        return np.zeros((1, 3)), 0.0
    # miniball shuffles the points: a fixed generator makes the centre reproducible to the bit
    centre, radius_squared = miniball.get_bounding_ball(positions, rng=np.random.default_rng(0))
    return positions - centre, float(np.sqrt(radius_squared))


class Descriptor:
    """Maps atomic environments to MILAD fingerprint vectors Phi.

    n_max: highest Zernike order. cutoff: radius (Angstrom) of the sphere scaled onto the unit
    sphere. feature: "delta" or "gaussian" with width ``sigma`` in Angstrom: one value, or a
    ``{symbol: width}`` mapping for per-species widths. species: a
    ``SpeciesMap`` (or comma-separated string) turning symbols into weights; ``None`` gives
    every atom weight 1. invariants: an ``InvariantSet``, a path to one, or ``None`` for the
    shipped set of order ``n_max``.

    chiral: append the shipped parity-odd invariants of order ``n_max``
    (``milad.invariants.generate_chiral_invariants``) after the invariants: the fingerprint is
    then the default one (same values, same order) followed by the imaginary parts of a few
    odd-parity couplings, pseudoscalars that keep their value under proper rotations, change
    sign under improper ones (mirror images) and vanish for achiral structures: the last
    ``n_chiral`` components. An ``invariants`` set that already holds odd invariants makes a
    chiral descriptor by itself (``chiral`` must then stay False; ``invariants.imaginary``
    marks its odd components).
    """

    def __init__(
        self,
        n_max: int = 7,
        cutoff: float = 5.0,
        feature: str = "delta",
        sigma: float | dict[str, float] | None = None,
        species: SpeciesMap | str | None = None,
        invariants: InvariantSet | str | Path | None = None,
        chiral: bool = False,
    ):
        if feature not in FEATURES:
            raise ValueError(f"unknown feature function {feature!r}; choose one of {FEATURES}")
        if feature == "gaussian":
            widths = list(sigma.values()) if isinstance(sigma, dict) else [sigma]
            if not widths or any(w is None or not float(w) > 0 for w in widths):
                raise ValueError("the gaussian feature needs positive widths sigma (Angstrom)")
        check_cutoff(cutoff)
        if isinstance(invariants, (str, Path)):
            invariants = InvariantSet.load(invariants)
        elif invariants is None:
            invariants = load_invariants(n_max, chiral=bool(chiral))
            chiral = False
        if invariants.kind != "zernike" or invariants.max_order != n_max:
            raise ValueError(
                f"invariant set is {invariants.kind} of order {invariants.max_order}, "
                f"but the descriptor uses Zernike moments to n_max={n_max}"
            )
        if chiral:
            if invariants.chiral:
                raise ValueError("this invariant set already holds parity-odd invariants: "
                                 "leave chiral=False")
            invariants = invariants.appended(load_chiral_invariants(n_max))
        if isinstance(species, str):
            species = SpeciesMap.parse(species)
        self.n_max = int(n_max)
        self.cutoff = float(cutoff)
        self.feature = feature
        if feature == "delta":
            self.sigma = None
        else:
            self.sigma = {str(k): float(v) for k, v in sigma.items()} if isinstance(sigma, dict) else float(sigma)
        self.species = species
        self.invariants = invariants
        transform = zernike_transform(self.n_max)
        # real and imaginary parts as contiguous float matrices: plain BLAS products
        self._transform_real = np.ascontiguousarray(transform.real)
        self._transform_imag = np.ascontiguousarray(transform.imag)
        self._transform_sparse = scipy.sparse.csr_array(transform)  # ~11% non-zero
        self._chain_plan = invariants.chain_plan(self._transform_sparse)
        self._n_geometric = len(geometric_indices(self.n_max))

    def __repr__(self) -> str:
        species = None if self.species is None else ",".join(self.species.species)
        chiral = ", chiral=True" if self.chiral else ""
        return (
            f"Descriptor(n_max={self.n_max}, cutoff={self.cutoff}, feature={self.feature!r}, "
            f"sigma={self.sigma}, species={species!r}{chiral}, n_invariants={len(self)})"
        )

    def __len__(self) -> int:
        return len(self.invariants)

    @property
    def chiral(self) -> bool:
        """Whether the fingerprint has parity-odd components (tells mirror images apart)."""
        return self.invariants.chiral

    @property
    def n_chiral(self) -> int:
        """Number of parity-odd components (0 for the default fingerprint)."""
        return int(self.invariants.imaginary.sum())

    # ------------------------------------------------------------------ settings
    def invariants_sha256(self) -> str:
        """sha256 of the invariant labels: identifies the invariant set a fingerprint used."""
        return hashlib.sha256("\n".join(self.invariants.labels).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings that rebuild this descriptor with :meth:`from_dict`.

        Keys: ``n_max``, ``cutoff`` (Angstrom), ``feature``, ``sigma`` (Angstrom, a number or a
        ``{symbol: width}`` mapping, ``None`` for delta features), ``species`` (list or
        ``None``), ``weight_range``, ``chiral`` (only when true: the settings of a default
        descriptor are unchanged), and, to detect a changed invariant set, ``n_invariants``
        and ``invariants_sha256``. The one way descriptor settings travel: saved potentials,
        fingerprint files, decode records and the pipeline's rules.
        """
        species = self.species
        return {
            "n_max": self.n_max,
            "cutoff": self.cutoff,
            "feature": self.feature,
            "sigma": dict(self.sigma) if isinstance(self.sigma, dict) else self.sigma,
            "species": None if species is None else list(species.species),
            "weight_range": None if species is None else list(species.weight_range),
            **({"chiral": True} if self.chiral else {}),
            "n_invariants": len(self),
            "invariants_sha256": self.invariants_sha256(),
        }

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> "Descriptor | DescriptorStack":
        """The descriptor of ``settings`` (from :meth:`to_dict`, or a config block with at
        least ``n_max`` and ``cutoff``), with the shipped invariant set of order ``n_max``
        (and its parity-odd invariants when ``chiral``);
        settings with a ``stack`` list (:meth:`DescriptorStack.to_dict`) give a
        :class:`DescriptorStack`.

        ``species`` may be a list or a comma-separated string. Unknown keys raise, and so does
        an ``invariants_sha256`` that no longer matches the shipped set.
        """
        if "stack" in settings:
            return DescriptorStack.from_dict(settings)
        known = {"n_max", "cutoff", "feature", "sigma", "species", "weight_range", "chiral",
                 "n_invariants", "invariants_sha256"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown descriptor setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        missing = sorted({"n_max", "cutoff"} - set(settings))
        if missing:
            raise ValueError(f"descriptor settings lack {', '.join(missing)}")
        species = settings.get("species")
        if species is not None:
            names = species.split(",") if isinstance(species, str) else species
            species = SpeciesMap(tuple(s.strip() for s in names if s.strip()),
                                 tuple(settings.get("weight_range") or (1.0, 2.0)))
        descriptor = cls(
            n_max=int(settings["n_max"]),
            cutoff=float(settings["cutoff"]),
            feature=settings.get("feature") or "delta",
            sigma=settings.get("sigma"),
            species=species,
            chiral=bool(settings.get("chiral", False)),
        )
        expected = settings.get("invariants_sha256")
        if expected is not None and expected != descriptor.invariants_sha256():
            raise ValueError(
                f"the shipped n_max={descriptor.n_max} invariant set differs from the one these "
                "fingerprints or this model were made with (invariant labels hash mismatch)"
            )
        return descriptor

    # ------------------------------------------------------------------ helpers
    def weights_of(self, symbols) -> np.ndarray:
        """Feature weights of atoms with these chemical symbols (1 without a species map)."""
        symbols = list(symbols)
        if self.species is None:
            return np.ones(len(symbols))
        return self.species.weights_of(symbols)

    def widths_of(self, symbols) -> np.ndarray | None:
        """Gaussian widths (Angstrom) of atoms with these symbols; ``None`` for delta features."""
        symbols = list(symbols)
        if self.sigma is None:
            return None
        if not isinstance(self.sigma, dict):
            return np.full(len(symbols), self.sigma)
        unknown = sorted(set(symbols) - set(self.sigma))
        if unknown:
            raise KeyError(f"no Gaussian width given for species {', '.join(unknown)}")
        return np.array([self.sigma[s] for s in symbols])

    def _scaled_widths(self, widths, n: int) -> np.ndarray | None:
        """Per-atom widths in cutoff units: explicit ``widths`` or the descriptor's scalar."""
        if self.sigma is None:
            return None
        if widths is None:
            if isinstance(self.sigma, dict):
                raise ValueError("per-species widths need symbols: pass per-atom sigmas")
            widths = np.full(n, self.sigma)
        widths = np.asarray(widths, dtype=float)
        if widths.shape != (n,) or not np.all(widths > 0):
            raise ValueError(f"need one positive Gaussian width per atom, got shape {widths.shape}")
        return widths / self.cutoff

    def _check_inside(self, positions: np.ndarray) -> None:
        radii = np.linalg.norm(positions, axis=1)
        outside = radii > self.cutoff * (1 + 1e-12)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} atom(s) lie outside the cutoff sphere of radius "
                f"{self.cutoff} (largest distance from the centre {radii.max():.4f})"
            )

    def _zernike(self, geometric: np.ndarray) -> np.ndarray:
        return geometric @ self._transform_real.T + 1j * (geometric @ self._transform_imag.T)

    def _invariants_of(self, geometric: np.ndarray) -> np.ndarray:
        return self.invariants.evaluate(self._zernike(geometric))

    def _moment_gradients(self, geometric: np.ndarray) -> np.ndarray:
        """d Phi / d m_stu for every environment, real (n_env, n_inv, K_geometric)."""
        return self.invariants.chained_jacobian(self._zernike(geometric), self._chain_plan)

    # ------------------------------------------------------------------ single environments
    def environment(self, positions, weights=None, sigmas=None) -> np.ndarray:
        """Phi of one environment: ``positions`` (N, 3) relative to its centre, in Angstrom.

        weights: (N,), default 1; sigmas: (N,) Gaussian widths in Angstrom (gaussian feature;
        default the descriptor's scalar width).
        """
        positions, weights = self._validated(positions, weights)
        geometric = geometric_moments_batch(
            positions / self.cutoff, weights, np.zeros(len(positions), np.int64), 1,
            self.n_max, self._scaled_widths(sigmas, len(positions)),
        )
        return self._invariants_of(geometric)[0]

    def environment_derivatives(self, positions, weights=None, sigmas=None):
        """Phi and its derivatives for one environment.

        Returns ``(phi, d_positions, d_weights)`` with shapes (n_inv,), (n_inv, N, 3) and
        (n_inv, N).
        """
        positions, weights = self._validated(positions, weights)
        scaled = positions / self.cutoff
        values, gradients = monomials(scaled, self.n_max, self._scaled_widths(sigmas, len(positions)))
        geometric = (weights @ values)[None]
        moment_gradient = self._moment_gradients(geometric)[0]  # (n_inv, K)
        d_positions = np.einsum("ik,nkc->inc", moment_gradient, gradients) * (
            weights[None, :, None] / self.cutoff
        )
        d_weights = moment_gradient @ values.T
        return self._invariants_of(geometric)[0], d_positions, d_weights

    def _validated(self, positions, weights) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=float)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {positions.shape}")
        check_finite(positions, "positions")
        weights = np.ones(len(positions)) if weights is None else np.asarray(weights, float)
        if weights.shape != (len(positions),):
            raise ValueError(f"need one weight per atom: {weights.shape} vs {len(positions)} atoms")
        check_finite(weights, "weights")
        self._check_inside(positions)
        return positions, weights

    # ------------------------------------------------------------------ molecules
    def molecule_positions(self, atoms: Atoms) -> np.ndarray:
        """Positions of a molecule centred on its miniball (Angstrom), checked against cutoff."""
        check_finite(atoms.positions, f"positions of {atoms.get_chemical_formula()}")
        centred, radius = centre_on_miniball(atoms.positions)
        if radius > self.cutoff:
            raise ValueError(
                f"molecule {atoms.get_chemical_formula()} has an enclosing radius of "
                f"{radius:.3f} A, larger than the cutoff {self.cutoff} A"
            )
        return centred

    def molecule(self, atoms: Atoms) -> np.ndarray:
        """Phi of a whole molecule centred on its smallest enclosing sphere: (n_inv,)."""
        return self.molecules([atoms])[0]

    def molecules(self, frames, centre: bool = True) -> np.ndarray:
        """Phi of many molecules at once: (n_frames, n_inv).

        With ``centre=False`` the positions are taken as already relative to the centre
        (skipping the miniball search, which costs ~2 ms per molecule).
        """
        frames = list(frames)
        if not frames:
            return np.zeros((0, len(self)))
        empty = [i for i, atoms in enumerate(frames) if len(atoms) == 0]
        if empty:
            raise ValueError(f"structure {empty[0]} has no atoms: a fingerprint needs at least "
                             f"one ({len(empty)} empty structure(s) in all)")
        if centre:
            positions = np.concatenate([self.molecule_positions(a) for a in frames])
        else:
            positions = np.concatenate([a.positions for a in frames])
            check_finite(positions, "positions")
            self._check_inside(positions)
        symbols = [s for a in frames for s in a.get_chemical_symbols()]
        segments = np.repeat(np.arange(len(frames)), [len(a) for a in frames])
        geometric = geometric_moments_batch(
            positions / self.cutoff, self.weights_of(symbols), segments, len(frames), self.n_max,
            self._scaled_widths(self.widths_of(symbols), len(positions)),
        )
        return self._invariants_of(geometric)

    # ------------------------------------------------------------------ atom-centred
    def _pairs(self, atoms: Atoms):
        check_finite(atoms.positions, "positions")
        centers, neighbors, vectors = neighbor_pairs(atoms, self.cutoff)
        distances = np.linalg.norm(vectors, axis=1)
        # per element, then per pair
        numbers, of_neighbor = np.unique(atoms.numbers[neighbors], return_inverse=True)
        symbols = [chemical_symbols[z] for z in numbers]
        widths = self.widths_of(symbols)
        widths = None if widths is None else self._scaled_widths(widths[of_neighbor],
                                                                 len(neighbors))
        smooth, smooth_derivative = cosine_cutoff(distances, self.cutoff)
        species_weights = self.weights_of(symbols)[of_neighbor]
        return centers, neighbors, vectors, distances, species_weights, widths, smooth, smooth_derivative

    def local(self, atoms: Atoms) -> np.ndarray:
        """Phi of every atom-centred environment of ``atoms``: (n_atoms, n_inv)."""
        centers, _, vectors, _, species_weights, widths, smooth, _ = self._pairs(atoms)
        geometric = geometric_moments_batch(
            vectors / self.cutoff, species_weights * smooth, centers, len(atoms), self.n_max, widths
        )
        return self._invariants_of(geometric)

    def local_derivatives(self, atoms: Atoms, jacobian: bool = True) -> LocalFingerprints:
        """Phi of every atom-centred environment and its derivatives with respect to positions.

        With ``jacobian=False`` the pair derivatives are formed only if read; forces from an
        energy gradient (``LocalFingerprints.forces``) then skip them altogether.
        """
        centers, neighbors, vectors, distances, species_weights, widths, smooth, smooth_derivative = (
            self._pairs(atoms)
        )
        weights = species_weights * smooth
        # d m / d vector for one pair: w * d(monomial)/d(vector) + monomial * dw/d(vector)
        unit = vectors / np.maximum(distances, 1e-300)[:, None]
        weight_gradient = np.ascontiguousarray((species_weights * smooth_derivative)[:, None] * unit)
        powers = _axis_powers(vectors / self.cutoff, self.n_max, widths)
        if jacobian:
            chain = _PairChain(self, len(atoms), powers, weights, weight_gradient, centers,
                               neighbors)
            values, derivatives = chain.values_and_jacobian()
            return LocalFingerprints(values=values, centers=centers, neighbors=neighbors,
                                     derivatives=derivatives)
        geometric = _segment_moments(powers, weights, centers, geometric_indices(self.n_max),
                                     len(atoms))
        zernike = self._zernike(geometric)
        chain = _PairChain(self, len(atoms), powers, weights, weight_gradient, centers, neighbors,
                           zernike)
        return LocalFingerprints(values=self.invariants.evaluate(zernike), centers=centers,
                                 neighbors=neighbors, chain=chain)


class DescriptorStack:
    """Several descriptors of the same atom-centred environments, fingerprints concatenated.

    The usual use is radial resolution: the same invariants at two or more cutoff radii (the
    inner sphere resolves the first neighbour shells, the outer one sees farther). Offers the
    local-environment interface of :class:`Descriptor` (``local``, ``local_derivatives``,
    ``len``, ``to_dict``); fingerprint component ``k`` of the stack is component ``k - offset``
    of the descriptor it belongs to, in the order given.
    """

    def __init__(self, descriptors: Sequence[Descriptor]):
        descriptors = list(descriptors)
        if not descriptors:
            raise ValueError("a DescriptorStack needs at least one descriptor")
        if not all(isinstance(d, Descriptor) for d in descriptors):
            raise TypeError("a DescriptorStack holds Descriptor objects")
        self.descriptors = descriptors
        self.cutoff = max(d.cutoff for d in descriptors)

    def __repr__(self) -> str:
        return f"DescriptorStack({self.descriptors!r})"

    def __len__(self) -> int:
        return sum(len(d) for d in self.descriptors)

    def to_dict(self) -> dict[str, Any]:
        """``{"stack": [settings of each descriptor], "n_invariants": total}``."""
        return {"stack": [d.to_dict() for d in self.descriptors], "n_invariants": len(self)}

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> "DescriptorStack":
        unknown = sorted(set(settings) - {"stack", "n_invariants"})
        if unknown:
            raise ValueError(f"unknown descriptor stack setting(s) {', '.join(unknown)}")
        stack = cls([Descriptor.from_dict(part) for part in settings["stack"]])
        if "n_invariants" in settings and int(settings["n_invariants"]) != len(stack):
            raise ValueError(f"the stack settings say {settings['n_invariants']} invariants, "
                             f"its descriptors give {len(stack)}")
        return stack

    def local(self, atoms: Atoms) -> np.ndarray:
        """Phi of every atom-centred environment, the descriptors side by side: (n_atoms, K)."""
        return np.hstack([d.local(atoms) for d in self.descriptors])

    def local_derivatives(self, atoms: Atoms, jacobian: bool = True) -> LocalFingerprints:
        """Phi and its derivatives. The pairs of every descriptor are listed one descriptor
        after the other, each carrying zeros for the other descriptors' components, so every
        contraction over pairs (forces) sums the descriptors' contributions. With
        ``jacobian=False`` they are formed only if read (see
        :meth:`Descriptor.local_derivatives`)."""
        parts = [d.local_derivatives(atoms, jacobian=jacobian) for d in self.descriptors]
        chain = _StackChain(parts)
        return LocalFingerprints(
            values=np.hstack([part.values for part in parts]),
            centers=np.concatenate([part.centers for part in parts]),
            neighbors=np.concatenate([part.neighbors for part in parts]),
            derivatives=chain.jacobian() if jacobian else None,
            chain=None if jacobian else chain,
        )


class _StackChain:
    """The derivatives of a :class:`DescriptorStack`'s fingerprints from those of its parts."""

    def __init__(self, parts: list[LocalFingerprints]):
        self.parts = parts
        self.offsets = np.concatenate([[0], np.cumsum([part.values.shape[1] for part in parts])])

    def jacobian(self) -> np.ndarray:
        n_pairs = sum(len(part.centers) for part in self.parts)
        derivatives = np.zeros((n_pairs, self.offsets[-1], 3))
        start = 0
        for part, low, high in zip(self.parts, self.offsets[:-1], self.offsets[1:]):
            derivatives[start:start + len(part.centers), low:high] = part.derivatives
            start += len(part.centers)
        return derivatives

    def position_gradient(self, energy_gradient: np.ndarray) -> np.ndarray:
        """dE/dr (n_atoms, 3): the parts' vector-Jacobian products summed."""
        return -sum(part.forces(np.ascontiguousarray(energy_gradient[:, low:high]))
                    for part, low, high in zip(self.parts, self.offsets[:-1], self.offsets[1:]))

