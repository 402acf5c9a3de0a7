"""Structure comparison with unknown atom correspondence and orientation.

``compare(a, b)`` gives the RMSD (Angstrom) between two molecules after the best rigid
rotation and the best assignment of atoms, for ``b`` and for its mirror image: MILAD
fingerprints cannot tell enantiomers apart, so a decoded molecule may be either.

The assignment is found by an orientation search: starting from the principal-axes
alignments (all axis orderings and sign choices that are proper rotations) and from a few
seeded random rotations, a Hungarian assignment (``scipy.optimize.linear_sum_assignment``,
within each species when both molecules carry the same species) and a Kabsch rotation are
alternated until the assignment no longer changes. The RMSD of the best assignment is then
computed by RDKit's ``rdMolAlign.AlignMol`` with that atom map (as in the paper's
supplementary validation), no reflection allowed.

Also here: :func:`point_group` (Schoenflies symbol of a molecule, for the paper's Fig. 7) and
:func:`rdkit_validation` (the supplementary experiment behind SI Fig. 1: structure RMSD and
fingerprint RMSD of transformed copies and of pairs of different molecules).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from .paper import DECODING_DESCRIPTOR

__all__ = [
    "ComparisonResult",
    "compare",
    "kabsch",
    "best_assignment",
    "assigned_rmsd",
    "point_group",
    "rdkit_validation",
    "VALIDATION_COLUMNS",
]

#: atoms up to which every starting rotation is followed; beyond, the LARGE_STARTS best
FULL_SEARCH_ATOMS = 100
LARGE_STARTS = 3


@dataclass
class ComparisonResult:
    """rmsd: ``b`` against ``a``; mirror_rmsd: the mirror image of ``b`` against ``a``;
    matched: ``"original"`` or ``"mirror"``, whichever is lower (ties: original);
    assignment / mirror_assignment: index in ``b`` of the atom matched to each atom of ``a``;
    species_aware: whether atoms were only matched within a species."""

    rmsd: float
    mirror_rmsd: float
    matched: str
    assignment: list
    mirror_assignment: list
    species_aware: bool

    @property
    def best(self) -> float:
        return min(self.rmsd, self.mirror_rmsd)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["best"] = self.best
        return out


def kabsch(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Proper rotation ``R`` minimising ``sum |R p_i - q_i|^2`` for centred (N, 3) sets."""
    h = p.T @ q
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def _assign(p: np.ndarray, q: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """perm with ``p[i] <-> q[perm[i]]`` minimising squared distances within each group.

    When every atom's strictly nearest partner is a different one, that is the unique optimum
    (each term is at its minimum) and the Hungarian algorithm is skipped.
    """
    perm = np.empty(len(p), dtype=np.int64)
    for rows, columns in groups:
        diff = p[rows][:, None, :] - q[columns][None, :, :]
        cost = np.einsum("ijk,ijk->ij", diff, diff)
        nearest = np.argmin(cost, axis=1)
        lowest = cost[np.arange(len(rows)), nearest]
        strict = np.count_nonzero(cost == lowest[:, None], axis=1) == 1
        if strict.all() and len(np.unique(nearest)) == len(rows):
            perm[rows] = columns[nearest]
            continue
        r, c = linear_sum_assignment(cost)
        perm[rows[r]] = columns[c]
    return perm


def assigned_rmsd(p: np.ndarray, q: np.ndarray) -> float:
    """RMSD of two (N, 3) point sets in the same frame (no rotation), atoms matched by the
    assignment of least squared distance."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"assigned_rmsd needs sets of one shape, got {p.shape}, {q.shape}")
    perm = _assign(p, q, [(np.arange(len(p)), np.arange(len(q)))])
    return float(np.sqrt(np.mean(np.sum((p - q[perm]) ** 2, axis=1))))


def _principal_frames(p: np.ndarray) -> np.ndarray:
    _, vectors = np.linalg.eigh(p.T @ p)
    return vectors


def _starting_rotations(p: np.ndarray, q: np.ndarray, n_random: int, rng) -> list[np.ndarray]:
    vp, vq = _principal_frames(p), _principal_frames(q)
    rotations = []
    for order in itertools.permutations(range(3)):
        permutation = np.eye(3)[:, list(order)]
        for signs in itertools.product((1.0, -1.0), repeat=3):
            rotation = vq @ permutation @ np.diag(signs) @ vp.T
            if np.linalg.det(rotation) > 0:
                rotations.append(rotation)
    if n_random:
        rotations.extend(Rotation.random(n_random, random_state=rng).as_matrix())
    return rotations


def _nearest_cost(p: np.ndarray, q: np.ndarray, groups, rotation: np.ndarray) -> float:
    """Sum of squared nearest-partner distances (within groups) after ``rotation``: a lower
    bound of the assignment cost, from k-d trees in O(N log N)."""
    rotated = p @ rotation.T
    return sum(float(np.sum(cKDTree(q[columns]).query(rotated[rows])[0] ** 2))
               for rows, columns in groups)


def best_assignment(
    p: np.ndarray,
    q: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    n_random: int = 24,
    max_iterations: int = 50,
    seed: int = 0,
    max_starts: int | None = None,
) -> tuple[np.ndarray, float]:
    """Best (perm, rmsd) over proper rotations for centred point sets ``p`` and ``q`` (N, 3).

    max_starts: follow only this many starting rotations, those whose nearest-partner cost is
    lowest; ``None`` follows all of them up to ``FULL_SEARCH_ATOMS`` atoms and
    ``LARGE_STARTS`` beyond (each start costs Hungarian assignments of N x N matrices).
    """
    n = len(p)
    if groups is None:
        groups = [(np.arange(n), np.arange(n))]
    if max_starts is None:
        max_starts = None if n <= FULL_SEARCH_ATOMS else LARGE_STARTS
    rng = np.random.default_rng(seed)
    starts = _starting_rotations(p, q, n_random, rng)
    if max_starts is not None and max_starts < len(starts):
        scores = [_nearest_cost(p, q, groups, rotation) for rotation in starts]
        starts = [starts[i] for i in np.argsort(scores, kind="stable")[:max(1, int(max_starts))]]
    best_perm, best_rmsd = None, math.inf
    # every assignment met on any path: a path that reaches one joins an earlier path (the
    # next rotation depends on the assignment only) and ends where it did, so it stops there
    visited: set[bytes] = set()
    for rotation in starts:
        perm = None
        for _ in range(max_iterations):
            new = _assign(p @ rotation.T, q, groups)
            if perm is not None and np.array_equal(new, perm):
                break
            if new.tobytes() in visited:
                perm = None
                break
            visited.add(new.tobytes())
            perm = new
            rotation = kabsch(p, q[perm])
        if perm is None:
            continue
        rmsd = float(np.sqrt(np.mean(np.sum((p @ rotation.T - q[perm]) ** 2, axis=1))))
        if rmsd < best_rmsd:
            best_perm, best_rmsd = perm, rmsd
    return best_perm, best_rmsd


def _rdkit_molecule(numbers, positions):
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    molecule = Chem.RWMol()
    for z in numbers:
        molecule.AddAtom(Chem.Atom(int(z)))
    conformer = Chem.Conformer(len(numbers))
    for i, (x, y, z) in enumerate(np.asarray(positions, dtype=float)):
        conformer.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    molecule.AddConformer(conformer, assignId=True)
    return molecule.GetMol()


def _rdkit_rmsd(a: Atoms, positions_b: np.ndarray, numbers_b, perm: np.ndarray) -> float:
    """RDKit's RMSD of ``b`` aligned onto ``a`` with the atom map ``a[i] <-> b[perm[i]]``."""
    from rdkit.Chem import rdMolAlign

    reference = _rdkit_molecule(a.numbers, a.positions)
    probe = _rdkit_molecule(numbers_b, positions_b)
    atom_map = [(int(perm[i]), int(i)) for i in range(len(perm))]
    return float(rdMolAlign.AlignMol(probe, reference, atomMap=atom_map))


def compare(
    a: Atoms,
    b: Atoms,
    *,
    species: bool | None = None,
    n_random: int = 24,
    seed: int = 0,
    use_rdkit: bool = True,
) -> ComparisonResult:
    """RMSD between molecules ``a`` and ``b`` (same atom count) for ``b`` and its mirror image.

    species: ``True`` matches atoms only within a chemical species (both molecules must have
    the same composition), ``False`` ignores species, ``None`` (default) uses species when the
    compositions agree (a positions-only decode, whose atoms are all ``X``, is compared by
    positions). n_random: random starting rotations besides the principal-axes ones (seeded by
    ``seed``). use_rdkit: compute the final RMSD with RDKit's ``AlignMol`` (else Kabsch).
    """
    if len(a) != len(b):
        raise ValueError(f"cannot compare molecules with {len(a)} and {len(b)} atoms")
    if len(a) == 0:
        raise ValueError("cannot compare empty structures")
    for name, atoms in (("first", a), ("second", b)):
        if not np.all(np.isfinite(atoms.positions)):
            raise ValueError(f"the {name} structure has NaN or infinite positions")
    same_composition = Counter(a.get_chemical_symbols()) == Counter(b.get_chemical_symbols())
    if species is None:
        species = same_composition
    elif species and not same_composition:
        raise ValueError(
            f"species-aware comparison needs the same composition, got "
            f"{a.get_chemical_formula()} and {b.get_chemical_formula()}"
        )
    if species:
        sa, sb = np.array(a.get_chemical_symbols()), np.array(b.get_chemical_symbols())
        groups = [(np.flatnonzero(sa == s), np.flatnonzero(sb == s)) for s in sorted(set(sa))]
    else:
        groups = None
    p = a.positions - a.positions.mean(axis=0)
    q = b.positions - b.positions.mean(axis=0)
    results = []
    for mirrored in (False, True):
        target = -q if mirrored else q
        perm, rmsd = best_assignment(p, target, groups, n_random=n_random, seed=seed)
        if use_rdkit:
            rmsd = _rdkit_rmsd(a, target + b.positions.mean(axis=0), b.numbers, perm)
        results.append((rmsd, perm))
    (rmsd, perm), (mirror_rmsd, mirror_perm) = results
    return ComparisonResult(
        rmsd=float(rmsd),
        mirror_rmsd=float(mirror_rmsd),
        matched="original" if rmsd <= mirror_rmsd else "mirror",
        assignment=[int(i) for i in perm],
        mirror_assignment=[int(i) for i in mirror_perm],
        species_aware=bool(species),
    )


# ----------------------------------------------------------------------------------------
# Point groups (paper Fig. 7)
# ----------------------------------------------------------------------------------------
def point_group(atoms: Atoms, tolerance: float = 0.01, angular_tolerance: float = 4.0) -> str:
    """Schoenflies symbol of a molecule, e.g. ``"C2v"``, ``"Td"``, ``"Cinfv"``, ``"Dinfh"``.

    Uses the ``pointgroup`` package (``PointGroup(positions, symbols, tolerance_eig,
    tolerance_ang)``), which centres the molecule on its centre of mass. ``tolerance`` is its
    ``tolerance_eig``: the largest difference between eigenvalues of the inertia tensor
    (normalised by the total moment of inertia, so dimensionless) that still counts as a
    degeneracy, and also the distance (Angstrom) added to the angular tolerance when testing
    whether a symmetry operation maps every atom onto an atom of the same species.
    ``angular_tolerance`` (degrees) is its ``tolerance_ang``. A single atom gives ``"Kh"``.
    """
    from pointgroup import PointGroup

    if len(atoms) == 0:
        raise ValueError("cannot find the point group of an empty structure")
    if not (tolerance > 0 and angular_tolerance > 0):
        raise ValueError(
            f"tolerances must be positive, got {tolerance} and {angular_tolerance} degrees"
        )
    positions = np.asarray(atoms.positions, dtype=float)
    if not np.all(np.isfinite(positions)):
        raise ValueError(f"{atoms.get_chemical_formula()} has NaN or infinite positions")
    if len(atoms) == 1:
        return "Kh"
    group = PointGroup(
        positions, atoms.get_chemical_symbols(), tolerance_eig=float(tolerance),
        tolerance_ang=float(angular_tolerance),
    ).get_point_group()
    # plain ASCII Schoenflies: "C*v", "C∞v" and "Cinfv" all become "Cinfv"
    symbol = str(group).strip().replace("∞", "inf").replace("*", "inf")
    return symbol


# ----------------------------------------------------------------------------------------
# Validation of the fingerprint as a similarity measure (SI Fig. 1)
# ----------------------------------------------------------------------------------------
#: columns of :func:`rdkit_validation`'s table, in order
VALIDATION_COLUMNS = (
    "kind", "species", "n_atoms", "qm9_id", "other_id", "trial", "rmsd", "mirror_rmsd",
    "fingerprint_rmsd", "species_aware",
)


def _one_element(atoms: Atoms) -> Atoms:
    """The same positions with every atom a dummy ``X``: positions-only comparisons."""
    return Atoms(["X"] * len(atoms), positions=atoms.positions)


def _random_copy(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """``atoms`` rotated by a uniformly random rotation about the origin, with its atom labels
    randomly permuted (symbols and positions together)."""
    rotation = Rotation.random(random_state=rng).as_matrix()
    order = rng.permutation(len(atoms))
    return Atoms(np.asarray(atoms.get_chemical_symbols())[order],
                 positions=atoms.positions[order] @ rotation.T)


def rdkit_validation(
    molecules: list[Atoms],
    *,
    n_trials: int = 5,
    seed: int = 0,
    species: bool,
    descriptor=None,
    n_random: int = 24,
    use_rdkit: bool = True,
):
    """The supplementary validation experiment (SI Fig. 1) as a ``pandas.DataFrame``.

    For every molecule, ``n_trials`` copies with a random rotation and a random permutation
    of the atom labels (``kind="self"``, ``other_id`` = ``qm9_id``, ``trial`` 0..n_trials-1),
    and every unordered pair of different molecules with the same number of atoms
    (``kind="pair"``, ``trial`` 0) are compared two ways:

    * ``rmsd`` / ``mirror_rmsd`` (Angstrom): :func:`compare`'s direct RMSD of the second
      structure (and of its mirror image) against the first;
    * ``fingerprint_rmsd``: ``sqrt(mean((Phi_a - Phi_b)^2))`` of the molecules' MILAD
      fingerprints, each centred on its miniball.

    species: ``False`` treats every atom as the same element (structures compared by
    positions, fingerprints of the paper's decoding descriptor,
    ``milad.paper.DECODING_DESCRIPTOR``, without species: weights 1); ``True`` uses the real
    elements (fingerprints with the paper's species weights). A pair of
    different compositions cannot be matched within species, so it is compared by positions;
    ``species_aware`` records which matching was used. descriptor: replaces the default
    descriptor (it must carry a species map exactly when ``species`` is true).
    n_random, use_rdkit: :func:`compare`'s cost knobs. Random numbers come from
    ``numpy.random.default_rng(seed)``. ``qm9_id`` is ``atoms.info["qm9_id"]`` (the position in
    ``molecules`` when absent).

    Columns: see :data:`VALIDATION_COLUMNS`; one row per comparison.
    """
    import pandas as pd

    from .descriptor import Descriptor

    molecules = list(molecules)
    if not molecules:
        raise ValueError("rdkit_validation needs at least one molecule")
    if int(n_trials) != n_trials or n_trials < 0:
        raise ValueError(f"n_trials must be a non-negative integer, got {n_trials}")
    species = bool(species)
    if descriptor is None:
        settings = DECODING_DESCRIPTOR if species else {**DECODING_DESCRIPTOR, "species": None}
        descriptor = Descriptor.from_dict(settings)
    elif (descriptor.species is not None) != species:
        raise ValueError(
            f"species={species} needs a descriptor {'with' if species else 'without'} a "
            f"species map, got {descriptor!r}"
        )
    ids = [int(m.info.get("qm9_id", i)) for i, m in enumerate(molecules)]
    if len(set(ids)) != len(ids):
        raise ValueError("molecules must have distinct qm9_id values")
    rng = np.random.default_rng(seed)

    copies, owners = [], []
    for index, molecule in enumerate(molecules):
        for trial in range(int(n_trials)):
            copies.append(_random_copy(molecule, rng))
            owners.append((index, trial))
    phi = descriptor.molecules(molecules)
    phi_copies = descriptor.molecules(copies) if copies else np.zeros((0, phi.shape[1]))

    def structure(atoms: Atoms) -> Atoms:
        return atoms if species else _one_element(atoms)

    def row(kind, i, other_id, trial, a, b, phi_a, phi_b):
        result = compare(
            structure(a), structure(b), species=None if species else False,
            n_random=n_random, seed=seed,
            use_rdkit=use_rdkit,
        )
        return {
            "kind": kind, "species": species, "n_atoms": len(a), "qm9_id": ids[i],
            "other_id": other_id, "trial": trial, "rmsd": result.rmsd,
            "mirror_rmsd": result.mirror_rmsd,
            "fingerprint_rmsd": float(np.sqrt(np.mean((phi_a - phi_b) ** 2))),
            "species_aware": result.species_aware,
        }

    rows = [
        row("self", i, ids[i], trial, molecules[i], copy, phi[i], phi_copies[k])
        for k, ((i, trial), copy) in enumerate(zip(owners, copies))
    ]
    for i, j in itertools.combinations(range(len(molecules)), 2):
        if len(molecules[i]) == len(molecules[j]):
            rows.append(row("pair", i, ids[j], 0, molecules[i], molecules[j], phi[i], phi[j]))
    table = pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))
    return table.astype({"n_atoms": int, "qm9_id": int, "other_id": int, "trial": int,
                         "species": bool, "species_aware": bool})
