"""Rotation invariants of geometric moments by total tensor contraction (paper eq. 7-9).

Moment tensors
--------------
The geometric moments of order ``k`` are the components of the symmetric Cartesian tensor
``M_{i1..ik} = int x_i1 ... x_ik f(x) dV`` (eq. 7): the component whose index list holds
``a`` ones, ``b`` twos and ``c`` threes is ``m_abc`` (eq. 3), whatever the order of the
indices. Under an orthogonal map ``Q`` every index transforms with ``Q`` (eq. 8), so any
product of moment tensors whose indices are all paired up and summed (a *total contraction*,
Einstein notation) is invariant: each pair contributes ``Q^T Q = 1``. Only the Kronecker
delta is used (no Levi-Civita symbol), so the invariants are unchanged by improper rotations
too (the fingerprint cannot tell enantiomers apart), exactly like the even-parity Zernike
family.

Graphs (Suk & Flusser)
----------------------
A total contraction of ``d`` tensors of orders ``k_1..k_d`` is a multigraph: one vertex per
tensor factor, one edge per summed index pair. A vertex of order ``k`` has degree ``k`` (a
loop, i.e. a self-contraction such as ``M_kk``, counts twice), so ``sum k_j`` is even.
Isomorphic graphs give the same polynomial; a disconnected graph gives a product of the
invariants of its components and is never algebraically independent of them, so only
*connected* graphs are generated. The ``degree`` of an invariant is its number of tensor
factors (correlation order). An order-0 tensor (``m_000``) is a graph on its own only.

Generation rules
----------------
For every multiset of factor orders ``min_order <= k_1 <= ... <= k_d <= max_order`` with
``1 <= d <= max_degree`` and ``sum k_j`` even, every symmetric adjacency matrix (loops on the
diagonal, multi-edges allowed) with the required vertex degrees is enumerated, disconnected
ones are dropped and isomorphic ones are merged (canonical form: the lexicographically
smallest adjacency matrix over the vertex permutations that keep the order sequence).
Each graph is expanded into an exact integer polynomial in the ``m_stu`` by summing over all
``3^E`` assignments of an axis to its ``E`` edges (done edge by edge, merging partial
assignments that give every factor the same axis counts). Every assignment adds +1 to one
monomial, so the coefficients are positive integers and no contraction vanishes
identically. Polynomials equal up to a scalar multiple to an earlier one would be removed,
but once isomorphic graphs are merged none occur (checked up to order 4 and degree 5, and
for order 3 alone up to degree 6): distinct graphs give distinct polynomials.

Labels name the edges ``a, b, c, ...`` and list the factors, e.g. ``M2_aa`` (Phi_1, eq. 9),
``M2_ab M2_ab`` (Phi_2) and ``M2_ab M2_ac M2_bc`` (Tr M^3); the label is an ``einsum``
subscript string.

Ordering for the independence reduction (as for the Zernike family): by the highest moment
order the invariant uses (so the invariants kept up to any order are themselves a complete
set for that order), then by degree, then by number of terms, then by label. The reduction
is the exact Jacobian-rank procedure of ``milad.invariants.reduce``.

Counts reached
--------------
The maximal number of algebraically independent invariants is the number of moments used
minus 3 (the dimension of SO(3)) whenever an order >= 2 is present (a generic moment tensor
of order >= 2 has a finite stabiliser); ``maximal_invariant_count`` gives it. With the
default ``max_degree = 4`` the reduction reaches this maximum (seed 0; times for the whole
generation on one CPU core):

=========  =========  ======  ==========  ===========  =============================  ======
min_order  max_order  moments candidates  independent  kept per degree 1/2/3/4         time
=========  =========  ======  ==========  ===========  =============================  ======
2          2          6       4           3 (max 3)    1 / 1 / 1 / 0                  <0.1 s
2          3          16      20          13 (13)      1 / 3 / 4 / 5                  <0.1 s
2          4          31      102         28 (28)      2 / 6 / 15 / 5                 0.2 s
1          4          34      145         31 (31)      2 / 8 / 17 / 4                 0.2 s
0          4          35      146         32 (32)      3 / 8 / 17 / 4                 0.2 s
3          4          25      51          22 (22)      1 / 4 / 9 / 8                  0.1 s
4          4          15      17          12 (12)      1 / 2 / 4 / 5                  <0.1 s
2          5          52      449         49 (49)      2 / 11 / 31 / 5                4 s
2          6          80      1567        77 (77)      3 / 17 / 52 / 5                30 s
=========  =========  ======  ==========  ===========  =============================  ======

Degree 3 is *not* enough once order 3 is involved: orders 2-3 stop at 8 of 13 and orders
2-4 at 26 of 28 with ``max_degree = 3`` (orders 1-4 do reach 31 at degree 3, the vector
helping). The order-3 tensor on its own (``min_order = max_order = 3``) is the hardest case:
its graphs need an even number of factors, degree 4 gives 6 of 7 and the 7th needs a
six-factor graph (``max_degree = 6``, 24 candidates, 1 s). Raising ``max_degree`` beyond what
is needed never changes the kept set (higher degrees are tried last) but costs time:
orders 2-4 take 4.5 s at degree 5 and about 3 min at degree 6 (2612 candidates with ~10^4
terms each).

For ``max_order <= 1`` the maximum is smaller than "moments - 3" (a vector is fixed by the
rotations about itself; ``m_000`` is invariant) and the ``complete`` flag uses the true
maximum.
"""

from __future__ import annotations

import itertools
import string
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..moments import geometric_indices
from .polynomial import Invariant, InvariantSet
from .reduce import PRIME, independent_subset

__all__ = [
    "contraction_graphs",
    "contract",
    "candidate_geometric_invariants",
    "generate_geometric_invariants",
    "maximal_invariant_count",
]

_EDGE_NAMES = string.ascii_lowercase + string.ascii_uppercase


# ----------------------------------------------------------------------------------------
# graphs
# ----------------------------------------------------------------------------------------
def _adjacency_matrices(orders: tuple[int, ...]):
    """Every symmetric non-negative integer matrix with 2 A_jj + sum_{i!=j} A_ij = orders[j]."""
    d = len(orders)
    adjacency = np.zeros((d, d), dtype=np.int64)
    remaining = list(orders)

    def fill_row(i: int):
        if i == d:
            yield adjacency.copy()
            return
        for loops in range(remaining[i] // 2 + 1):
            adjacency[i, i] = loops
            remaining[i] -= 2 * loops
            yield from fill_off_diagonal(i, i + 1)
            remaining[i] += 2 * loops
        adjacency[i, i] = 0

    def fill_off_diagonal(i: int, j: int):
        if j == d:
            if remaining[i] == 0:
                yield from fill_row(i + 1)
            return
        # the edges still needed by vertex i must fit into vertices j..d-1
        if remaining[i] > sum(remaining[j:]):
            return
        for count in range(min(remaining[i], remaining[j]) + 1):
            adjacency[i, j] = adjacency[j, i] = count
            remaining[i] -= count
            remaining[j] -= count
            yield from fill_off_diagonal(i, j + 1)
            remaining[i] += count
            remaining[j] += count
        adjacency[i, j] = adjacency[j, i] = 0

    yield from fill_row(0)


def _connected(adjacency: np.ndarray) -> bool:
    d = len(adjacency)
    seen = {0}
    stack = [0]
    while stack:
        i = stack.pop()
        for j in np.flatnonzero(adjacency[i]):
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    return len(seen) == d


@lru_cache(maxsize=None)
def _order_preserving_permutations(orders: tuple[int, ...]) -> np.ndarray:
    """All vertex permutations that keep the (sorted) order sequence, shape (P, d)."""
    groups = [[j for j, k in enumerate(orders) if k == value] for value in sorted(set(orders))]
    perms = [
        [j for part in parts for j in part]
        for parts in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    return np.array(perms, dtype=np.int64).reshape(len(perms), len(orders))


def _canonical(adjacency: np.ndarray, orders: tuple[int, ...]) -> tuple[int, ...]:
    """Smallest upper triangle over the vertex permutations that keep the order sequence."""
    perms = _order_preserving_permutations(orders)
    rows, cols = np.triu_indices(len(orders))
    upper = adjacency[perms[:, rows], perms[:, cols]]  # (P, d(d+1)/2)
    best = np.lexsort(upper.T[::-1])[0]
    return tuple(int(v) for v in upper[best])


def _edges(orders: tuple[int, ...], upper: tuple[int, ...]) -> list[tuple[int, int]]:
    """Edge list (i, j), i <= j, of the graph whose upper adjacency triangle is ``upper``."""
    d = len(orders)
    edges = []
    for (i, j), count in zip(zip(*np.triu_indices(d)), upper):
        edges.extend([(int(i), int(j))] * count)
    return edges


def _label(orders: tuple[int, ...], edges: list[tuple[int, int]]) -> str:
    if len(edges) > len(_EDGE_NAMES):
        raise ValueError(f"too many contracted indices ({len(edges)}) to name")
    indices: list[list[str]] = [[] for _ in orders]
    for name, (i, j) in zip(_EDGE_NAMES, edges):
        indices[i].append(name)
        indices[j].append(name)
    return " ".join(
        f"M{k}_{''.join(sorted(names))}" if names else f"M{k}" for k, names in zip(orders, indices)
    )


def contraction_graphs(max_order: int, min_order: int = 2, max_degree: int = 4):
    """Connected contraction graphs, one per isomorphism class.

    Yields ``(orders, edges)``: the factor orders (non-decreasing) and the list of contracted
    index pairs ``(i, j)`` between factors ``i <= j`` (``i == j`` is a self-contraction).
    """
    for degree in range(1, max_degree + 1):
        for orders in itertools.combinations_with_replacement(range(min_order, max_order + 1), degree):
            if sum(orders) % 2 or (degree > 1 and 0 in orders):
                continue
            seen = set()
            for adjacency in _adjacency_matrices(orders):
                if not _connected(adjacency):
                    continue
                key = _canonical(adjacency, orders)
                if key in seen:
                    continue
                seen.add(key)
                yield orders, _edges(orders, key)


# ----------------------------------------------------------------------------------------
# expansion into polynomials of the m_stu
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _moment_lookup(max_order: int) -> np.ndarray:
    """table[a, b, c] = position of m_abc in ``geometric_indices(max_order)``."""
    table = np.full((max_order + 1,) * 3, -1, dtype=np.int64)
    for position, (s, t, u) in enumerate(geometric_indices(max_order)):
        table[s, t, u] = position
    return table


def _contract_integer(
    orders: tuple[int, ...], edges: list[tuple[int, int]], max_order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Monomials (T, d) (sorted moment indices, lexicographic) and integer coefficients (T,).

    The sum over the ``3^E`` axis assignments of the edges is done edge by edge on *states*:
    the state of a partial assignment is the table ``n[vertex, axis]`` of how often each axis
    occurs among the indices of each factor so far, stored as one mixed-radix integer, and
    assignments that reach the same state are merged (their multiplicities add). At the end a
    state names one component of each factor, i.e. one monomial.
    """
    d = len(orders)
    radix = np.repeat(np.array(orders, dtype=np.int64) + 1, 3)  # digit (vertex, axis)
    if float(np.prod(radix.astype(float))) >= 2.0**62:
        raise ValueError(f"contraction of tensors of orders {orders} is too large to expand")
    place = np.concatenate([[1], np.cumprod(radix[:-1])]).astype(np.int64)
    states = np.zeros(1, dtype=np.int64)
    multiplicity = np.ones(1, dtype=np.int64)
    for i, j in edges:
        step = place[3 * i : 3 * i + 3] + place[3 * j : 3 * j + 3]  # one per axis
        states, inverse = np.unique((states[:, None] + step[None, :]).ravel(), return_inverse=True)
        merged = np.zeros(len(states), dtype=np.int64)
        np.add.at(merged, inverse.ravel(), np.repeat(multiplicity, 3))
        multiplicity = merged
    counts = states[:, None] // place[None, :] % radix[None, :]  # (S, 3d)
    table = _moment_lookup(max_order)
    monomials = np.sort(table[counts[:, 0::3], counts[:, 1::3], counts[:, 2::3]], axis=1)
    # states differing by a permutation of equal-order factors give the same monomial
    n_moments = len(table.ravel()[table.ravel() >= 0])
    if float(n_moments) ** d < 2.0**62:  # one base-K integer per monomial: fast 1-D unique
        base = n_moments ** np.arange(d - 1, -1, -1, dtype=np.int64)
        keys, inverse = np.unique(monomials @ base, return_inverse=True)
        monomials = keys[:, None] // base[None, :] % n_moments
    else:
        monomials, inverse = np.unique(monomials, axis=0, return_inverse=True)
    coefficients = np.zeros(len(monomials), dtype=np.int64)
    np.add.at(coefficients, inverse.ravel(), multiplicity)
    return monomials.reshape(-1, d), coefficients


def contract(orders: tuple[int, ...], edges: list[tuple[int, int]], max_order: int) -> dict:
    """Exact polynomial ``{sorted moment-index tuple: Fraction}`` of a total contraction.

    Moment indices refer to ``geometric_indices(max_order)``.
    """
    monomials, coefficients = _contract_integer(orders, edges, max_order)
    return {tuple(m): Fraction(c) for m, c in zip(monomials.tolist(), coefficients.tolist())}


def _normal_form(monomials: np.ndarray, coefficients: np.ndarray) -> tuple:
    """Key equal for two integer polynomials iff they agree up to a nonzero scalar factor.

    Monomials come lexicographically sorted from ``_contract_integer``; the coefficients are
    divided by their gcd and given the sign that makes the first one positive.
    """
    g = int(np.gcd.reduce(coefficients))
    primitive = coefficients // g * (1 if coefficients[0] > 0 else -1)
    return monomials.tobytes(), primitive.tobytes(), monomials.shape


def _check_orders(max_order: int, min_order: int, max_degree: int) -> None:
    if not 0 <= min_order <= max_order:
        raise ValueError(f"need 0 <= min_order <= max_order, got {min_order}, {max_order}")
    if max_degree < 1:
        raise ValueError(f"max_degree must be >= 1, got {max_degree}")


def candidate_geometric_invariants(
    max_order: int, min_order: int = 2, max_degree: int = 4
) -> list[dict]:
    """All contraction invariants, zero and identical ones removed, in reduction order.

    Returns dicts with keys label, degree (number of tensor factors), order (highest moment
    order used), orders (the factor orders), edges and terms (exact integer polynomial over
    ``geometric_indices(max_order)``).
    """
    _check_orders(max_order, min_order, max_degree)
    seen: set = set()
    out = []
    for orders, edges in contraction_graphs(max_order, min_order, max_degree):
        monomials, coefficients = _contract_integer(orders, edges, max_order)
        nonzero = coefficients != 0
        monomials, coefficients = monomials[nonzero], coefficients[nonzero]
        if not len(coefficients):
            continue
        key = _normal_form(monomials, coefficients)
        if key in seen:
            continue
        seen.add(key)
        terms = {
            tuple(m): Fraction(c) for m, c in zip(monomials.tolist(), coefficients.tolist())
        }
        out.append(
            dict(label=_label(orders, edges), degree=len(orders), order=max(orders),
                 orders=orders, edges=edges, terms=terms)
        )
    out.sort(key=lambda c: (c["order"], c["degree"], len(c["terms"]), c["label"]))
    return out


def _moments_used(max_order: int, min_order: int) -> int:
    return int(np.sum(geometric_indices(max_order).sum(axis=1) >= min_order))


def maximal_invariant_count(max_order: int, min_order: int = 2) -> int:
    """Largest possible number of independent invariants of the moments of these orders.

    ``moments used - 3`` when an order >= 2 is present; a lone vector (order 1) is fixed by
    the rotations about it, so it gives one invariant, and m_000 is invariant itself.
    """
    n_used = _moments_used(max_order, min_order)
    if max_order >= 2:
        return n_used - 3
    return n_used - (2 if max_order == 1 else 0)


def generate_geometric_invariants(
    max_order: int = 4, min_order: int = 2, seed: int = 0, max_degree: int = 4
) -> InvariantSet:
    """An algebraically independent set of geometric-moment contraction invariants.

    With the defaults (orders 2-4, degree <= 4) it holds 28 invariants, the maximum.
    """
    from .. import __version__

    candidates = candidate_geometric_invariants(max_order, min_order, max_degree)
    n_vars = len(geometric_indices(max_order))
    kept = independent_subset([c["terms"] for c in candidates], n_vars, seed=seed)
    invariants = [
        Invariant(label=candidates[i]["label"], degree=candidates[i]["degree"],
                  terms=candidates[i]["terms"])
        for i in kept
    ]
    n_used = _moments_used(max_order, min_order)
    return InvariantSet(
        kind="geometric",
        max_order=max_order,
        moments=geometric_indices(max_order),
        variable_scale=np.ones(n_vars),
        invariants=invariants,
        metadata={
            "min_order": min_order,
            "max_degree": max_degree,
            "moments_used": n_used,
            "candidates": len(candidates),
            "rank_prime": PRIME,
            "rank_seed": seed,
            "generator": f"milad {__version__}",
            "complete": len(invariants) == maximal_invariant_count(max_order, min_order),
        },
    )
