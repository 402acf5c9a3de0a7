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
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

__all__ = ["ComparisonResult", "compare", "kabsch", "best_assignment"]


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
    """perm with ``p[i] <-> q[perm[i]]`` minimising squared distances within each group."""
    perm = np.empty(len(p), dtype=np.int64)
    for rows, columns in groups:
        diff = p[rows][:, None, :] - q[columns][None, :, :]
        cost = np.einsum("ijk,ijk->ij", diff, diff)
        r, c = linear_sum_assignment(cost)
        perm[rows[r]] = columns[c]
    return perm


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


def best_assignment(
    p: np.ndarray,
    q: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    n_random: int = 24,
    max_iterations: int = 50,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Best (perm, rmsd) over proper rotations for centred point sets ``p`` and ``q`` (N, 3)."""
    n = len(p)
    if groups is None:
        groups = [(np.arange(n), np.arange(n))]
    rng = np.random.default_rng(seed)
    best_perm, best_rmsd = None, math.inf
    seen = set()
    for rotation in _starting_rotations(p, q, n_random, rng):
        perm = None
        for _ in range(max_iterations):
            new = _assign(p @ rotation.T, q, groups)
            if perm is not None and np.array_equal(new, perm):
                break
            perm = new
            rotation = kabsch(p, q[perm])
        key = perm.tobytes()
        if key in seen:
            continue
        seen.add(key)
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
