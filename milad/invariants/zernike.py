"""Rotation invariants of Zernike moments by Clebsch-Gordan coupling (paper eq. 19-22).

Exact arithmetic
----------------
Racah's formula factors a Clebsch-Gordan coefficient as

    <j1 m1 j2 m2 | J M> = A(j1, j2, J) * sqrt(F(J, M) F(j1, m1) F(j2, m2)) * S(...)

with ``F(l, m) = (l+m)! (l-m)!``, ``A^2`` rational and ``S`` a rational sum. In the scaled
variables ``y_l^m = c_l^m / sqrt(F(l, m))`` a coupled form divided by ``sqrt(F(J, M))`` is
``A`` times a polynomial with *rational* coefficients ``F(j1,m1) F(j2,m2) S``, and so is every
invariant built from such forms. We therefore expand invariants exactly (``fractions``),
remove zero and identical ones exactly, and decide linear and algebraic independence exactly
over a prime field (``milad.invariants.reduce``).

Generation rules (eq. 20-22; l2 and l4 >= 1 since a factor with l = 0 makes a product)
------------------------------------------------------------------------------------------
The default set holds only invariants of even parity (sum of the l of all factors even): under
inversion ``c_nl^m -> (-1)^l c_nl^m`` and, for a real density, ``conj(I) = (-1)^(sum l) I``, so
odd-parity invariants are purely imaginary pseudoscalars. Dropping them makes the fingerprint
real and invariant under improper rotations too (it cannot tell enantiomers apart). The opt-in
chiral set (``generate_chiral_invariants``, ``parity=1``) takes their imaginary parts instead.

* nu = 1: ``c_n0^0``, n even.
* nu = 2: ``c_n(l, l)_0``, 1 <= l <= n, n - l even.
* nu = 3: ``c_n1(l1, l2)_L c_n2``, 1 <= l2 <= l1 <= n1, n1 - l1 and n1 - l2 even,
  1 <= L <= n2, n2 - L even.
* nu = 4: ``c_n1(l1, l2)_L c_n2(l3, l4)_L``, (n1, l1, l2) <= (n2, l3, l4) in lexicographic order,
  1 <= L <= l_max, with the same constraints on each pair.

Odd parity (``parity=1``): the same rules with ``sum l`` odd. A pair ``c_n(l1, l2)_L`` couples
two l of the parity of n, so ``l1 + l2`` is even: no nu = 1, 2 or 4 invariant is odd, and the odd
nu = 3 ones have L and n2 odd. The coupling to L = 0 of three tensors with odd ``sum l`` is
antisymmetric under exchanging two of them, so it vanishes unless the three (n, l) differ
(e.g. every ``l1 = l2`` pair, and ``c_3(3,1)_3 c_3``): the lowest is ``c_4(4,2)_3 c_3``, of
order 4.

Ordering for the independence reduction: by the highest moment order the invariant uses
(so that the invariants kept up to any l_max are themselves a complete set, Table I), then by
correlation order, then by number of terms, then by recipe.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..moments import zernike_indices
from .polynomial import Invariant, InvariantSet
from .reduce import PRIME, independent_subset, linear_rank

__all__ = [
    "scaled_clebsch_gordan",
    "coupling_scale_squared",
    "candidate_invariants",
    "chiral_point_groups",
    "chiral_test_densities",
    "generate_chiral_invariants",
    "generate_zernike_invariants",
    "invariant_counts",
]


@lru_cache(maxsize=None)
def _F(l: int, m: int) -> int:
    return math.factorial(l + m) * math.factorial(l - m)


@lru_cache(maxsize=None)
def scaled_clebsch_gordan(j1: int, m1: int, j2: int, m2: int, J: int) -> Fraction:
    """Rational part of <j1 m1 j2 m2 | J m1+m2> in scaled variables: F(j1,m1) F(j2,m2) S."""
    total = Fraction(0)
    for k in range(j1 + j2 - J + 1):
        arguments = (k, j1 + j2 - J - k, j1 - m1 - k, j2 + m2 - k, J - j2 + m1 + k, J - j1 - m2 + k)
        if min(arguments) < 0:
            continue
        total += Fraction((-1) ** k, math.prod(math.factorial(a) for a in arguments))
    return _F(j1, m1) * _F(j2, m2) * total


@lru_cache(maxsize=None)
def coupling_scale_squared(j1: int, j2: int, J: int) -> Fraction:
    """A(j1, j2, J)^2 = (2J+1) (j1+j2-J)! (j1-j2+J)! (-j1+j2+J)! / (j1+j2+J+1)!."""
    return Fraction(
        (2 * J + 1)
        * math.factorial(j1 + j2 - J)
        * math.factorial(j1 - j2 + J)
        * math.factorial(-j1 + j2 + J),
        math.factorial(j1 + j2 + J + 1),
    )


def _couple(a: list, la: int, b: list, lb: int, L: int) -> list:
    """Couple two scaled spherical tensors (lists over m of polynomials) to rank L."""
    out = []
    for M in range(-L, L + 1):
        poly: dict = {}
        for ma in range(max(-la, M - lb), min(la, M + lb) + 1):
            weight = scaled_clebsch_gordan(la, ma, lb, M - ma, L)
            if not weight:
                continue
            for key_a, value_a in a[ma + la].items():
                weighted = weight * value_a  # exact: the same sums in any grouping
                for key_b, value_b in b[M - ma + lb].items():
                    key = tuple(sorted(key_a + key_b))
                    poly[key] = poly.get(key, 0) + weighted * value_b
        out.append({k: v for k, v in poly.items() if v})
    return out


class _Coupler:
    """Caches moment tensors and pair-coupled forms c_n(l1, l2)_L for one n_max."""

    def __init__(self, n_max: int):
        self.index = {tuple(int(v) for v in row): i for i, row in enumerate(zernike_indices(n_max))}
        self._pairs: dict = {}

    def tensor(self, n: int, l: int) -> list:
        return [{(self.index[(n, l, m)],): Fraction(1)} for m in range(-l, l + 1)]

    def pair(self, n: int, l1: int, l2: int, L: int) -> list:
        key = (n, l1, l2, L)
        if key not in self._pairs:
            self._pairs[key] = _couple(self.tensor(n, l1), l1, self.tensor(n, l2), l2, L)
        return self._pairs[key]


def _recipes(n_min: int, n_max: int, l_max: int, parity: int = 0):
    """Yield (label, degree, highest order, recipe) following the module's generation rules,
    for invariants whose ``sum l`` has the given ``parity`` (0 even, 1 odd)."""
    orders = range(n_min, n_max + 1)
    if parity == 0:  # nu = 1 and 2 invariants are all even
        for n in orders:
            if n % 2 == 0:
                yield f"c_{n}0", 1, n, ("1", n)
        for n in orders:
            for l in range(2 - n % 2, n + 1, 2):
                yield f"c_{n}({l},{l})_0", 2, n, ("2", n, l)
    pairs = [
        (n, l1, l2)
        for n in orders
        for l1 in range(2 - n % 2, n + 1, 2)
        for l2 in range(2 - n % 2, l1 + 1, 2)
    ]
    for (n1, l1, l2), n2 in itertools.product(pairs, orders):
        for L in range(max(l1 - l2, 1), min(l1 + l2, n2, l_max) + 1):
            if (n2 - L) % 2 == 0 and (l1 + l2 + L) % 2 == parity:
                yield f"c_{n1}({l1},{l2})_{L} c_{n2}", 3, max(n1, n2), ("3", n1, l1, l2, L, n2)
    for (n1, l1, l2), (n2, l3, l4) in itertools.combinations_with_replacement(pairs, 2):
        for L in range(max(l1 - l2, l3 - l4, 1), min(l1 + l2, l3 + l4, l_max) + 1):
            if (l1 + l2 + l3 + l4) % 2 != parity:
                continue
            label = f"c_{n1}({l1},{l2})_{L} c_{n2}({l3},{l4})_{L}"
            yield label, 4, max(n1, n2), ("4", n1, l1, l2, n2, l3, l4, L)


def _expand(coupler: _Coupler, recipe: tuple) -> tuple[dict, Fraction]:
    """Exact polynomial (scaled variables) and A^2 factor of one recipe."""
    kind = recipe[0]
    if kind == "1":
        return {(coupler.index[(recipe[1], 0, 0)],): Fraction(1)}, Fraction(1)
    if kind == "2":
        _, n, l = recipe
        return coupler.pair(n, l, l, 0)[0], coupling_scale_squared(l, l, 0)
    if kind == "3":
        _, n1, l1, l2, L, n2 = recipe
        pair = coupler.pair(n1, l1, l2, L)
        poly = _couple(pair, L, coupler.tensor(n2, L), L, 0)[0] if any(pair) else {}
        return poly, coupling_scale_squared(l1, l2, L) * coupling_scale_squared(L, L, 0)
    _, n1, l1, l2, n2, l3, l4, L = recipe
    left, right = coupler.pair(n1, l1, l2, L), coupler.pair(n2, l3, l4, L)
    poly = _couple(left, L, right, L, 0)[0] if any(left) and any(right) else {}
    scale = (
        coupling_scale_squared(l1, l2, L)
        * coupling_scale_squared(l3, l4, L)
        * coupling_scale_squared(L, L, 0)
    )
    return poly, scale


def _normal_form(poly: dict) -> frozenset:
    """A key shared exactly by the polynomials proportional to ``poly``: its coefficients as
    coprime integers, the first term's (lowest key) positive. Integer gcds instead of a
    Fraction division per term."""
    common = math.lcm(*(v.denominator for v in poly.values()))
    integers = {k: v.numerator * (common // v.denominator) for k, v in poly.items()}
    divisor = math.gcd(*integers.values())
    if integers[min(integers)] < 0:
        divisor = -divisor
    return frozenset((k, v // divisor) for k, v in integers.items())


def candidate_invariants(
    n_max: int, n_min: int = 0, l_max: int | None = None, parity: int = 0
) -> list[dict]:
    """All generated invariants, zero and identical ones removed, in reduction order.

    parity: 0 for the even (real) invariants, 1 for the odd ones, labelled ``Im ...``: their
    polynomials are purely imaginary on real densities and the fingerprint takes their
    imaginary part.

    Returns dicts with keys label, degree, order (highest moment order used), recipe,
    terms (exact polynomial) and scale_squared.
    """
    if not 0 <= n_min <= n_max:
        raise ValueError(f"need 0 <= n_min <= n_max, got n_min={n_min}, n_max={n_max}")
    if parity not in (0, 1):
        raise ValueError(f"parity is 0 (even) or 1 (odd), got {parity!r}")
    l_max = n_max if l_max is None else l_max
    coupler = _Coupler(n_max)
    seen: set = set()
    out = []
    for label, degree, order, recipe in _recipes(n_min, n_max, l_max, parity):
        terms, scale_squared = _expand(coupler, recipe)
        if not terms:
            continue
        key = _normal_form(terms)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            dict(label=f"Im {label}" if parity else label, degree=degree, order=order,
                 recipe=recipe, terms=terms, scale_squared=scale_squared)
        )
    out.sort(key=lambda c: (c["order"], c["degree"], len(c["terms"]), c["recipe"]))
    return out


def _variable_scale(n_max: int) -> np.ndarray:
    return np.array([math.sqrt(_F(int(l), int(m))) for _, l, m in zernike_indices(n_max)])


def _invariant_set(candidates: list[dict], kept: list[int], n_max: int, n_min: int, seed: int,
                   imaginary: bool, **metadata) -> InvariantSet:
    """The kept candidates as an ``InvariantSet``, with the shared generation metadata."""
    from .. import __version__

    invariants = [
        Invariant(
            label=candidates[i]["label"],
            degree=candidates[i]["degree"],
            terms=candidates[i]["terms"],
            scale_squared=candidates[i]["scale_squared"],
            imaginary=imaginary,
        )
        for i in kept
    ]
    n_used = int(np.sum(zernike_indices(n_max)[:, 0] >= n_min))
    return InvariantSet(
        kind="zernike",
        max_order=n_max,
        moments=zernike_indices(n_max),
        variable_scale=_variable_scale(n_max),
        invariants=invariants,
        metadata={
            **metadata,
            "min_order": n_min,
            "moments_used": n_used,
            "candidates": len(candidates),
            "rank_prime": PRIME,
            "rank_seed": seed,
            "generator": f"milad {__version__}",
        },
    )


def generate_zernike_invariants(n_max: int, n_min: int = 0, seed: int = 0) -> InvariantSet:
    """An algebraically independent set of Zernike-moment invariants up to ``n_max``.

    ``n_min = 0`` keeps the zeroth and first order moments (117 invariants for n_max = 7),
    ``n_min = 2`` drops them (113, the paper's Table I).
    """
    candidates = candidate_invariants(n_max, n_min)
    n_vars = len(zernike_indices(n_max))
    kept = independent_subset([c["terms"] for c in candidates], n_vars, seed=seed)
    invariant_set = _invariant_set(candidates, kept, n_max, n_min, seed, imaginary=False)
    invariant_set.metadata["complete"] = len(kept) == invariant_set.metadata["moments_used"] - 3
    return invariant_set


#: an odd invariant detects a symmetric test density when |value| exceeds this fraction of its
#: bound (``InvariantSet.bound``) at moments all as large as the density's root mean square.
#: On the test densities of n_max = 7 and 10 those that vanish by symmetry stay below 1e-17 of
#: it (rounding), the others above 1e-10
DETECTION_THRESHOLD = 1e-13


def chiral_point_groups(n_max: int) -> dict[str, np.ndarray]:
    """The chiral (proper) point groups as rotation matrices, {name: (order, 3, 3)}.

    C1, C_n and D_n for n = 2..n_max, T, O and I. Moments up to n_max have |m| <= n_max, so a
    C_n-symmetric density with n > n_max is seen as axially symmetric, which is achiral.
    """
    from scipy.spatial.transform import Rotation

    names = ["C1"] + [f"{kind}{n}" for n in range(2, n_max + 1) for kind in "CD"] + ["T", "O", "I"]
    return {name: Rotation.create_group(name).as_matrix() for name in names}


def chiral_test_densities(n_max: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One density of every chiral point group, {name: (positions (N, 3), weights (N,))}:
    the orbits of three random points (radius 0.3-0.8, unit weight) under the group (two
    points and the centre would lie in a mirror plane)."""
    rng = np.random.default_rng([seed, 1])
    out = {}
    for name, rotations in chiral_point_groups(n_max).items():
        points = rng.normal(size=(3, 3))
        points *= rng.uniform(0.3, 0.8, (3, 1)) / np.linalg.norm(points, axis=1, keepdims=True)
        positions = np.einsum("gij,pj->pgi", rotations, points).reshape(-1, 3)
        out[name] = (positions, np.ones(len(positions)))
    return out


def generate_chiral_invariants(n_max: int, n_min: int = 0, seed: int = 0) -> InvariantSet:
    """The parity-odd (chiral) invariants that ``chiral=True`` appends to the fingerprint.

    Their values are the imaginary parts of the odd-parity couplings: real pseudoscalars that
    keep their value under proper rotations and change sign under improper ones, so they
    vanish for achiral densities. All are nu = 3 (the module docstring says why).

    Size. The even set of the same order is complete: its Jacobian already has the largest
    rank a rotation-invariant map can have (moments - 3), so no odd invariant can raise it:
    each is algebraically dependent on the even ones (its square is invariant under all of
    O(3)), and what it adds is the sign that tells a density from its mirror image. One
    generically non-zero odd invariant would do that generically. But an odd invariant also
    vanishes on every density whose symmetry kills the moments it couples: the lowest,
    ``Im c_4(4,2)_3 c_3``, is zero on every C_n- or D_n-symmetric density with n >= 4 and on
    T-, O- and I-symmetric ones, chiral as they are. So the set is chosen to cover the chiral
    point groups: going through the odd candidates in reduction order, a candidate is kept
    when it is non-zero (``DETECTION_THRESHOLD``) on the test density
    (``chiral_test_densities``) of a point group that no kept invariant detects yet, and it
    raises the exact mod-p Jacobian rank of the odd invariants kept before it (so none is a
    function of the others). Metadata ``detects`` names, for every group, the first kept
    invariant non-zero on it, ``undetected`` the groups no odd candidate to n_max sees (for
    n_max = 7: C7, D7, O and I; for 10: C10, D10 and I).
    """
    from ..moments import geometric_moments, zernike_moments
    from .reduce import RowEchelon, gradient_mod_p, random_point

    candidates = candidate_invariants(n_max, n_min, parity=1)
    if not candidates:
        return _invariant_set(candidates, [], n_max, n_min, seed, imaginary=True, parity="odd",
                              detects={}, undetected=list(chiral_point_groups(n_max)))
    pool = _invariant_set(candidates, list(range(len(candidates))), n_max, n_min, seed, imaginary=True)
    densities = chiral_test_densities(n_max, seed)
    moments = np.stack([
        zernike_moments(geometric_moments(positions, weights, n_max), n_max)
        for positions, weights in densities.values()
    ])
    moments[:, zernike_indices(n_max)[:, 0] < n_min] = 0
    rms = np.sqrt(np.mean(np.abs(moments) ** 2, axis=1, keepdims=True))
    scale = pool.bound(np.broadcast_to(rms, moments.shape))
    detected = np.abs(pool.evaluate(moments)) > DETECTION_THRESHOLD * scale
    names = list(densities)
    n_vars = len(zernike_indices(n_max))
    point = random_point(n_vars, seed)
    echelon = RowEchelon(n_vars)
    kept, detects = [], {}
    for i, candidate in enumerate(candidates):
        new = [g for g, name in enumerate(names) if detected[g, i] and name not in detects]
        if new and echelon.add(gradient_mod_p(candidate["terms"], point)):
            detects.update({names[g]: candidate["label"] for g in new})
            kept.append(i)
    return _invariant_set(
        candidates, kept, n_max, n_min, seed, imaginary=True, parity="odd",
        detects={name: detects[name] for name in names if name in detects},
        undetected=[name for name in names if name not in detects],
    )


def invariant_counts(l_max: int, n_min: int = 2, seed: int = 0) -> dict[str, int]:
    """Table I counts for one l_max (= n_max): all, linearly and algebraically independent."""
    candidates = candidate_invariants(l_max, n_min)
    polys = [c["terms"] for c in candidates]
    n_vars = len(zernike_indices(l_max))
    return {
        "l_max": l_max,
        "all": len(polys),
        "linearly_independent": linear_rank(polys),
        "algebraically_independent": len(independent_subset(polys, n_vars, seed=seed)),
    }
