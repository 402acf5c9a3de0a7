"""A set of polynomial rotation invariants of a moment vector: storage, I/O and evaluation.

Every invariant is stored exactly: ``I = sqrt(scale_squared) * sum_t c_t prod_j y_{f_tj}``
with rational ``c_t`` in *scaled variables* ``y_k = moment_k / variable_scale_k``. The scaling
makes the coefficients rational for Clebsch-Gordan coupled Zernike invariants (see
``milad.invariants.zernike``); geometric-moment invariants use ``variable_scale = 1``.
Evaluation uses the equivalent float coefficients on the moments themselves and numba kernels
over flat term arrays (no Python loop over invariants or terms).

An invariant marked ``imaginary`` stands for the *imaginary* part of its polynomial,
``Im I = Re(-i I)``: the real-valued parity-odd (pseudoscalar) invariants of the chiral
fingerprint (``milad.invariants.zernike.generate_chiral_invariants``), whose polynomials are
purely imaginary on real densities. The factor ``-i`` is folded into the float coefficients, so
``evaluate``, ``jacobian`` and ``chained_jacobian`` need no special case: every value is
``Re`` of a holomorphic polynomial. Such sets are written as format version 2 (version 1 plus
the ``imaginary`` flag); sets without imaginary invariants stay version 1.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np

from ..io import atomic_output

__all__ = ["Invariant", "InvariantSet", "FORMAT_VERSION"]

#: newest format this milad writes and reads; version 1 (no ``imaginary`` flags) is written
#: for sets without imaginary invariants, so older readers still read them
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Invariant:
    """One invariant: a recipe label, its correlation order and its exact polynomial.

    ``imaginary``: the invariant's value is the imaginary part of the polynomial (a
    parity-odd pseudoscalar), not its real part.
    """

    label: str
    degree: int
    terms: dict  # {sorted tuple of moment indices: Fraction}
    scale_squared: Fraction = Fraction(1)
    imaginary: bool = False


@numba.njit(cache=True)
def _evaluate(moments, factors, coefficients, owner, n_invariants):
    n_batch = moments.shape[0]
    out = np.zeros((n_batch, n_invariants), dtype=moments.dtype)
    for b in range(n_batch):
        row = moments[b]
        for t in range(factors.shape[0]):
            value = coefficients[t] * row[factors[t, 0]]
            for j in range(1, factors.shape[1]):
                value *= row[factors[t, j]]
            out[b, owner[t]] += value
    return out


@numba.njit(cache=True)
def _jacobian(moments, factors, coefficients, owner, n_invariants):
    n_batch, n_ext = moments.shape
    degree = factors.shape[1]
    out = np.zeros((n_batch, n_invariants, n_ext), dtype=moments.dtype)
    for b in range(n_batch):
        row = moments[b]
        for t in range(factors.shape[0]):
            for j in range(degree):
                value = row[n_ext - 1] * coefficients[t]  # row[-1] == 1, fixes the dtype
                for k in range(degree):
                    if k != j:
                        value *= row[factors[t, k]]
                out[b, owner[t], factors[t, j]] += value
    return out[:, :, : n_ext - 1]


@numba.njit(cache=True)
def _chained_jacobian(moments, factors, coefficients, owner, n_invariants, indptr, indices, data, n_out):
    """Re(dI/dmoments @ C) for a sparse CSR chain matrix C (K, n_out): real (B, n_inv, n_out)."""
    n_batch, n_ext = moments.shape
    n_moments = n_ext - 1
    degree = factors.shape[1]
    out = np.zeros((n_batch, n_invariants, n_out))
    for b in range(n_batch):
        row = moments[b]
        for t in range(factors.shape[0]):
            target = out[b, owner[t]]
            for j in range(degree):
                alpha = factors[t, j]
                if alpha >= n_moments:
                    continue  # padding: the constant 1
                value = row[n_moments] * coefficients[t]
                for k in range(degree):
                    if k != j:
                        value *= row[factors[t, k]]
                for q in range(indptr[alpha], indptr[alpha + 1]):
                    target[indices[q]] += (value * data[q]).real
    return out


@dataclass
class InvariantSet:
    """An ordered set of polynomial invariants of a moment vector.

    kind: "zernike" (complex moments ordered as ``milad.moments.zernike_indices``) or
    "geometric" (real moments ordered as ``milad.moments.geometric_indices``).
    moments: (K, 3) integer labels of the moments, (n, l, m) or (s, t, u).
    variable_scale: (K,) positive floats, see the module docstring.
    """

    kind: str
    max_order: int
    moments: np.ndarray
    variable_scale: np.ndarray
    invariants: list[Invariant]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.moments = np.asarray(self.moments, dtype=np.int64)
        self.variable_scale = np.asarray(self.variable_scale, dtype=float)
        n_moments = len(self.moments)
        max_degree = max((inv.degree for inv in self.invariants), default=1)
        factors, coefficients, owner = [], [], []
        for i, inv in enumerate(self.invariants):
            scale = -1j * math.sqrt(inv.scale_squared) if inv.imaginary else math.sqrt(inv.scale_squared)
            for monomial, c in inv.terms.items():
                factors.append(list(monomial) + [n_moments] * (max_degree - len(monomial)))
                coefficients.append(
                    scale * float(c) / math.prod(float(self.variable_scale[k]) for k in monomial)
                )
                owner.append(i)
        self._factors = np.array(factors, dtype=np.int64).reshape(-1, max_degree)
        # float unless some invariant is imaginary (then complex, with -i folded in)
        self._coefficients = np.array(coefficients, dtype=complex if self.chiral else float)
        self._owner = np.array(owner, dtype=np.int64)
        self._derived: dict = {}

    def derived(self, key: str, build):
        """Data derived from this set (e.g. the decoder's moment space): ``build()`` runs once
        per key and the result lives, and is freed, with the set."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_derived"] = {}  # derived data is rebuilt on demand, not pickled
        return state

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return len(self.invariants)

    @property
    def n_moments(self) -> int:
        return len(self.moments)

    @property
    def chiral(self) -> bool:
        """Whether the set holds parity-odd (imaginary) invariants, which tell mirror images apart."""
        return any(inv.imaginary for inv in self.invariants)

    @property
    def imaginary(self) -> np.ndarray:
        """Boolean mask of the imaginary (parity-odd) invariants, (n_invariants,)."""
        return np.array([inv.imaginary for inv in self.invariants], dtype=bool)

    @property
    def degrees(self) -> np.ndarray:
        """Correlation order of every invariant, (n_invariants,)."""
        return np.array([inv.degree for inv in self.invariants], dtype=np.int64)

    @property
    def labels(self) -> list[str]:
        return [inv.label for inv in self.invariants]

    @property
    def n_terms(self) -> int:
        return len(self._coefficients)

    def counts_by_degree(self) -> dict[int, int]:
        values, counts = np.unique(self.degrees, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def exact_polynomials(self) -> list[dict]:
        """The invariants as exact polynomials in the scaled variables (for rank checks)."""
        return [inv.terms for inv in self.invariants]

    def appended(self, other: "InvariantSet") -> "InvariantSet":
        """This set followed by the invariants of ``other`` (same kind and moments).

        Metadata are this set's, with ``other``'s under ``"appended"``.
        """
        if (other.kind, other.max_order) != (self.kind, self.max_order) or not np.array_equal(
            other.moments, self.moments
        ):
            raise ValueError(
                f"cannot append a {other.kind} set of order {other.max_order} to a {self.kind} "
                f"set of order {self.max_order}: the moments differ"
            )
        return InvariantSet(
            kind=self.kind,
            max_order=self.max_order,
            moments=self.moments,
            variable_scale=self.variable_scale,
            invariants=self.invariants + other.invariants,
            metadata={**self.metadata, "appended": [*self.metadata.get("appended", []), other.metadata]},
        )

    # ------------------------------------------------------------------ evaluation
    def _extended(self, moments: np.ndarray) -> tuple[np.ndarray, tuple]:
        moments = np.asarray(moments)
        if moments.shape[-1] != self.n_moments:
            raise ValueError(
                f"this {self.kind} invariant set needs {self.n_moments} moments per environment, "
                f"got an array of shape {moments.shape}"
            )
        lead = moments.shape[:-1]
        dtype = complex if np.iscomplexobj(moments) or self.chiral else float
        flat = moments.reshape(-1, self.n_moments).astype(dtype, copy=False)
        ext = np.concatenate([flat, np.ones((flat.shape[0], 1), dtype=dtype)], axis=1)
        return ext, lead

    def evaluate(self, moments: np.ndarray) -> np.ndarray:
        """Invariants of ``moments`` (..., K) -> real array (..., n_invariants)."""
        ext, lead = self._extended(moments)
        values = _evaluate(ext, self._factors, self._coefficients, self._owner, len(self))
        return values.real.reshape(*lead, len(self))

    def bound(self, moments: np.ndarray) -> np.ndarray:
        """``sum_t |c_t| prod_j |moment_tj|`` per invariant, (..., n_invariants): an upper
        bound of ``|I|``, the scale at which an invariant's value counts as zero or not."""
        ext, lead = self._extended(moments)
        products = np.abs(self._coefficients) * np.prod(np.abs(ext[:, self._factors]), axis=2)
        values = np.stack([np.bincount(self._owner, row, minlength=len(self)) for row in products])
        return values.reshape(*lead, len(self))

    def jacobian(self, moments: np.ndarray) -> np.ndarray:
        """Holomorphic derivatives dI/d(moment) of the polynomials (of ``-i I`` for imaginary
        invariants), (..., n_invariants, K).

        For complex moments the real fingerprint's derivative with respect to a real
        parameter p is ``Re(jacobian @ dmoments/dp)``.
        """
        ext, lead = self._extended(moments)
        values = _jacobian(ext, self._factors, self._coefficients, self._owner, len(self))
        return values.reshape(*lead, len(self), self.n_moments)

    def chained_jacobian(self, moments: np.ndarray, chain) -> np.ndarray:
        """``Re(jacobian(moments) @ chain)`` without forming the dense Jacobian.

        chain: a ``scipy.sparse`` matrix (K, P), e.g. the Zernike transform taking geometric
        moments to Zernike moments, so the result is d Phi / d m (..., n_invariants, P).
        """
        ext, lead = self._extended(moments)
        chain = chain.tocsr()
        if chain.shape[0] != self.n_moments:
            raise ValueError(f"chain matrix needs {self.n_moments} rows, got {chain.shape[0]}")
        data = chain.data.astype(ext.dtype)
        values = _chained_jacobian(
            ext, self._factors, self._coefficients, self._owner, len(self),
            chain.indptr.astype(np.int64), chain.indices.astype(np.int64), data, chain.shape[1],
        )
        return values.reshape(*lead, len(self), chain.shape[1])

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "format": "milad-invariants",
            "format_version": FORMAT_VERSION if self.chiral else 1,
            "kind": self.kind,
            "max_order": self.max_order,
            "moments": self.moments.tolist(),
            "variable_scale": [repr(float(s)) for s in self.variable_scale],
            "metadata": self.metadata,
            "invariants": [
                {
                    "label": inv.label,
                    "degree": inv.degree,
                    "scale_squared": str(inv.scale_squared),
                    "factors": [list(m) for m in inv.terms],
                    "coefficients": [str(c) for c in inv.terms.values()],
                    **({"imaginary": True} if inv.imaginary else {}),
                }
                for inv in self.invariants
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "InvariantSet":
        if data.get("format") != "milad-invariants":
            raise ValueError("not a milad invariant set (missing 'format: milad-invariants')")
        if data.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"invariant set format version {data.get('format_version')} is not supported "
                f"(this milad reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        missing = {"kind", "max_order", "moments", "variable_scale", "invariants"} - set(data)
        if missing:
            raise ValueError(f"invariant set is missing the field(s) {sorted(missing)}")
        invariants = [
            Invariant(
                label=item["label"],
                degree=int(item["degree"]),
                terms={
                    tuple(f): Fraction(c) for f, c in zip(item["factors"], item["coefficients"])
                },
                scale_squared=Fraction(item["scale_squared"]),
                imaginary=bool(item.get("imaginary", False)),
            )
            for item in data["invariants"]
        ]
        return cls(
            kind=data["kind"],
            max_order=int(data["max_order"]),
            moments=np.array(data["moments"], dtype=np.int64),
            variable_scale=np.array([float(s) for s in data["variable_scale"]]),
            invariants=invariants,
            metadata=data.get("metadata", {}),
        )

    def save(self, path: str | Path) -> None:
        """Write as JSON (gzip-compressed when the name ends in .gz)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        with atomic_output(path) as handle:
            if path.suffix == ".gz":  # named as gzip.open(path) would name it
                with gzip.GzipFile(filename=path, mode="wb", fileobj=handle) as archive, \
                        io.TextIOWrapper(archive, encoding="utf-8") as wrapper:
                    wrapper.write(text)
            else:
                handle.write(text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> "InvariantSet":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"invariant set file not found: {path}")
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    data = json.load(handle)
            else:
                data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"invariant set file {path} is corrupt or truncated: {error}") from error
        return cls.from_dict(data)
