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

import cmath
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
def _check_row(i, term_start):
    """Invariant index ``i`` if the set (``term_start``: n_inv + 1 entries) has it."""
    if i < 0 or i >= term_start.shape[0] - 1:
        raise IndexError("invariant row out of range")
    return i


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
def _evaluate_real(moments, factors, lengths, coefficients, term_start, rows):
    """The real parts of ``_evaluate`` for the invariants ``rows``, bit for bit: each
    invariant's terms (``term_start[i]`` to ``term_start[i + 1]``) summed in a register, no
    padding multiplications, and the last product of each term only to its real part."""
    n_batch = moments.shape[0]
    out = np.empty((n_batch, rows.shape[0]))
    for b in range(n_batch):
        row = moments[b]
        for r in range(rows.shape[0]):
            i = _check_row(rows[r], term_start)
            total = 0.0
            for t in range(term_start[i], term_start[i + 1]):
                d = lengths[t]
                value = coefficients[t] * row[factors[t, 0]]
                if d == 3:
                    value *= row[factors[t, 1]]
                elif d == 4:
                    value = (value * row[factors[t, 1]]) * row[factors[t, 2]]
                else:
                    for j in range(1, d - 1):
                        value *= row[factors[t, j]]
                if d == 1:
                    total += value.real
                else:
                    last = row[factors[t, d - 1]]
                    total += value.real * last.real - value.imag * last.imag
            out[b, r] = total
    return out


#: environments per block of the blocked kernels (moment-major, real and imaginary parts
#: apart: 2 x 121 x 128 doubles for n_max 7, about L2-sized)
_BLOCK = 128
#: batches at least this large take the blocked kernels (below it the per-term loop setup
#: costs more than the vector loops save)
_BLOCKED_FROM = 4


@numba.njit(cache=True)
def _split_block(moments, start, n, real, imag):
    """Rows ``start:start + n`` of the complex ``moments`` (B, K) into the real and imaginary
    parts (K, _BLOCK), moment-major: column b is environment ``start + b``."""
    for k in range(moments.shape[1]):
        for b in range(n):
            z = moments[start + b, k]
            real[k, b] = z.real
            imag[k, b] = z.imag


@numba.njit(cache=True)
def _evaluate_real_blocked(moments, factors, lengths, coefficients, term_start, rows):
    """``_evaluate_real`` for complex moments and real coefficients, to the bit, in blocks of
    ``_BLOCK`` environments: every term is one vector loop over the block (the per-row loop
    gathers three moments per term and cannot vectorise). Each environment's sum runs over the
    same terms in the same order with the same products (a real coefficient times a complex
    moment is the two real products numba's complex multiplication forms from ``c + 0j``, up
    to the sign of an exact zero)."""
    n_batch = moments.shape[0]
    n_ext = moments.shape[1]
    out = np.empty((n_batch, rows.shape[0]))
    re = np.empty((n_ext, _BLOCK))
    im = np.empty((n_ext, _BLOCK))
    total = np.empty(_BLOCK)
    vr = np.empty(_BLOCK)
    vi = np.empty(_BLOCK)
    for start in range(0, n_batch, _BLOCK):
        n = min(_BLOCK, n_batch - start)
        _split_block(moments, start, n, re, im)
        for r in range(rows.shape[0]):
            i = _check_row(rows[r], term_start)
            total[:n] = 0.0
            for t in range(term_start[i], term_start[i + 1]):
                d = lengths[t]
                c = coefficients[t]
                f0 = factors[t, 0]
                if d == 3:
                    f1 = factors[t, 1]
                    f2 = factors[t, 2]
                    for b in range(n):
                        xr = c * re[f0, b]
                        xi = c * im[f0, b]
                        yr = xr * re[f1, b] - xi * im[f1, b]
                        yi = xr * im[f1, b] + xi * re[f1, b]
                        total[b] += yr * re[f2, b] - yi * im[f2, b]
                elif d == 1:
                    for b in range(n):
                        total[b] += c * re[f0, b]
                else:
                    for b in range(n):
                        vr[b] = c * re[f0, b]
                        vi[b] = c * im[f0, b]
                    for j in range(1, d - 1):
                        fj = factors[t, j]
                        for b in range(n):
                            x = vr[b] * re[fj, b] - vi[b] * im[fj, b]
                            vi[b] = vr[b] * im[fj, b] + vi[b] * re[fj, b]
                            vr[b] = x
                    fl = factors[t, d - 1]
                    for b in range(n):
                        total[b] += vr[b] * re[fl, b] - vi[b] * im[fl, b]
            for b in range(n):
                out[start + b, r] = total[b]
    return out


@numba.njit(cache=True)
def _jacobian(moments, factors, lengths, coefficients, term_start, rows):
    """dI/d(moment) of the invariants ``rows``, (B, len(rows), K) for the extended moments
    (B, K + 1); every entry sums its terms in term order. A term's derivative by its factor
    ``j`` is ``c`` times its other factors, multiplied left to right; the padding factors (the
    trailing 1 of the extended moments) are skipped: a product with ``1 + 0j`` changes at most
    the sign of a zero, which a sum started at +0 does not keep, so the sums are the floats of
    the full padded products."""
    n_batch, n_ext = moments.shape
    out = np.zeros((n_batch, rows.shape[0], n_ext - 1), dtype=moments.dtype)
    for b in range(n_batch):
        row = moments[b]
        for r in range(rows.shape[0]):
            i = _check_row(rows[r], term_start)
            target = out[b, r]
            for t in range(term_start[i], term_start[i + 1]):
                d = lengths[t]
                c = coefficients[t]
                f0 = factors[t, 0]
                if d == 3:
                    f1 = factors[t, 1]
                    f2 = factors[t, 2]
                    ca = c * row[f0]
                    target[f0] += (c * row[f1]) * row[f2]
                    target[f1] += ca * row[f2]
                    target[f2] += ca * row[f1]
                elif d == 4:
                    f1 = factors[t, 1]
                    f2 = factors[t, 2]
                    f3 = factors[t, 3]
                    ca = c * row[f0]
                    cab = ca * row[f1]
                    target[f0] += ((c * row[f1]) * row[f2]) * row[f3]
                    target[f1] += (ca * row[f2]) * row[f3]
                    target[f2] += cab * row[f3]
                    target[f3] += cab * row[f2]
                elif d == 1:
                    target[f0] += row[n_ext - 1] * c
                else:
                    for j in range(d):
                        first = 1 if j == 0 else 0
                        value = c * row[factors[t, first]]
                        for k in range(first + 1, d):
                            if k != j:
                                value *= row[factors[t, k]]
                        target[factors[t, j]] += value
    return out


@numba.njit(cache=True)
def _term_derivatives(row, factors, lengths, coefficients, owner, weights, targets, values,
                      out):
    """Derivatives of every term of the invariants ``weights[i] * I_i`` of one moment vector
    ``row`` (padded with a 1): term ``t``'s derivative by its factor ``j`` is added to
    ``out[targets[t, j]]``, and, unless ``values`` is empty, the term to ``values[owner[t]]``.

    With ``targets`` the slots of the non-zero pattern and unit weights this gives the sparse
    Jacobian; with ``targets = factors`` and the weights a cotangent, the vector-Jacobian
    product (reverse mode). Terms of degree <= 4 are written out with prefix and suffix
    products (about 3 * degree multiplications for all derivatives); a value is the
    left-to-right product ``((c * a) * b) * ...`` that ``_evaluate`` forms, so with unit
    weights it is the same to the bit.
    """
    out[:] = 0.0
    with_values = values.shape[0] > 0
    if with_values:
        values[:] = 0.0
    one = row[row.shape[0] - 1]  # == 1, of the moments' dtype
    for t in range(factors.shape[0]):
        d = lengths[t]
        c = one * (coefficients[t] * weights[owner[t]])
        a = row[factors[t, 0]]
        if d == 3:
            b = row[factors[t, 1]]
            e = row[factors[t, 2]]
            ca = c * a
            cab = ca * b
            if with_values:
                values[owner[t]] += (cab * e).real
            out[targets[t, 2]] += cab
            out[targets[t, 1]] += ca * e
            out[targets[t, 0]] += c * (b * e)
        elif d == 4:
            b = row[factors[t, 1]]
            e = row[factors[t, 2]]
            f = row[factors[t, 3]]
            ca = c * a
            cab = ca * b
            ef = e * f
            if with_values:
                values[owner[t]] += ((cab * e) * f).real
            out[targets[t, 3]] += cab * e
            out[targets[t, 2]] += cab * f
            out[targets[t, 1]] += ca * ef
            out[targets[t, 0]] += c * (b * ef)
        else:
            for j in range(d):
                value = c
                for k in range(d):
                    if k != j:
                        value *= row[factors[t, k]]
                out[targets[t, j]] += value
            if with_values:
                value = c * a
                for j in range(1, d):
                    value *= row[factors[t, j]]
                values[owner[t]] += value.real


@numba.njit(cache=True)
def _fold(entries, fold_target, fold_sign, folded):
    """Sparse Jacobian entries folded onto the kept rows of a chain (see ``ChainPlan``)."""
    folded[:] = 0.0
    for s in range(entries.shape[0]):
        sign = fold_sign[s]
        if sign == 0.0:
            folded[fold_target[s]] += entries[s]
        else:
            folded[fold_target[s]] += sign * np.conj(entries[s])


@numba.njit(cache=True)
def _values_and_chained_gradients(moments, factors, lengths, coefficients, owner, slots,
                                  fold_target, fold_sign, folded_invariant, folded_moment,
                                  indptr, indices, data_real, data_imag, n_invariants, n_out):
    """Invariants (B, n_inv) and Re(dI/dmoments @ C), (B, n_inv, n_out), from the sparse
    Jacobian: its non-zero entries are folded onto the kept rows of C (see ``ChainPlan``),
    and every folded entry scatters its row of the CSR chain matrix C once."""
    n_batch = moments.shape[0]
    values = np.empty((n_batch, n_invariants))
    out = np.zeros((n_batch, n_invariants, n_out))
    entries = np.empty(fold_target.shape[0], dtype=moments.dtype)
    folded = np.empty(folded_invariant.shape[0], dtype=moments.dtype)
    unit = np.ones(n_invariants)
    for b in range(n_batch):
        _term_derivatives(moments[b], factors, lengths, coefficients, owner, unit, slots,
                          values[b], entries)
        _fold(entries, fold_target, fold_sign, folded)
        target = out[b]
        for s in range(folded.shape[0]):
            i = folded_invariant[s]
            a = folded_moment[s]
            jr = folded[s].real
            ji = folded[s].imag
            for q in range(indptr[a], indptr[a + 1]):
                target[i, indices[q]] += jr * data_real[q] - ji * data_imag[q]
    return values, out


@numba.njit(cache=True)
def _values_and_tangent_products(moments, factors, lengths, coefficients, owner, slots,
                                 fold_target, fold_sign, folded_invariant, folded_moment,
                                 kept, kept_index, indptr, indices, data_real, data_imag,
                                 tangents, starts, n_rows, n_invariants):
    """Invariants (B, n_inv) and Re(dI_b/dmoments @ C @ X_b) for every row b, stored
    transposed as (R, n_inv), where the tangents X_b of row b, (n_rows, starts[b + 1] -
    starts[b]) row-major, lie in the flat ``tangents`` from ``n_rows * starts[b]`` on.

    Per row: the tangents go through the kept rows of C (W = C_kept @ X, complex), then the
    folded sparse Jacobian contracts W; every inner loop runs over the row's tangent columns,
    contiguous in memory.
    """
    n_batch = moments.shape[0]
    values = np.empty((n_batch, n_invariants))
    out = np.empty((starts[n_batch], n_invariants))
    entries = np.empty(fold_target.shape[0], dtype=moments.dtype)
    folded = np.empty(folded_invariant.shape[0], dtype=moments.dtype)
    unit = np.ones(n_invariants)
    width = 0
    for b in range(n_batch):
        width = max(width, starts[b + 1] - starts[b])
    w_real = np.empty((kept.shape[0], width))
    w_imag = np.empty((kept.shape[0], width))
    product = np.empty((n_invariants, width))
    for b in range(n_batch):
        _term_derivatives(moments[b], factors, lengths, coefficients, owner, unit, slots,
                          values[b], entries)
        low = starts[b]
        n_cols = starts[b + 1] - low
        if n_cols == 0:
            continue
        _fold(entries, fold_target, fold_sign, folded)
        for j in range(kept.shape[0]):
            wr = w_real[j]
            wi = w_imag[j]
            wr[:n_cols] = 0.0
            wi[:n_cols] = 0.0
            a = kept[j]
            for q in range(indptr[a], indptr[a + 1]):
                at = n_rows * low + indices[q] * n_cols
                x = tangents[at:at + n_cols]
                dr = data_real[q]
                di = data_imag[q]
                for r in range(n_cols):
                    wr[r] += dr * x[r]
                    wi[r] += di * x[r]
        product[:, :n_cols] = 0.0
        for s in range(folded.shape[0]):
            target = product[folded_invariant[s]]
            j = kept_index[folded_moment[s]]
            fr = folded[s].real
            fi = folded[s].imag
            wr = w_real[j]
            wi = w_imag[j]
            for r in range(n_cols):
                target[r] += fr * wr[r] - fi * wi[r]
        for r in range(n_cols):
            row = out[low + r]
            for i in range(n_invariants):
                row[i] = product[i, r]
    return values, out


@numba.njit(cache=True)
def _chained_cotangent(moments, cotangent, factors, lengths, coefficients, owner, mirror,
                       mirror_sign, indptr, indices, data_real, data_imag, n_out):
    """Re(cotangent @ dI/dmoments @ C), (B, n_out): a vector-Jacobian product per row."""
    n_batch, n_ext = moments.shape
    out = np.zeros((n_batch, n_out))
    folded = np.empty(n_ext, dtype=moments.dtype)
    no_values = np.empty(0)
    for b in range(n_batch):
        _term_derivatives(moments[b], factors, lengths, coefficients, owner, cotangent[b],
                          factors, no_values, folded)
        for a in range(n_ext - 1):
            if mirror[a] >= 0:
                folded[mirror[a]] += mirror_sign[a] * np.conj(folded[a])
        target = out[b]
        for a in range(n_ext - 1):
            if mirror[a] >= 0:
                continue
            fr = folded[a].real
            fi = folded[a].imag
            for q in range(indptr[a], indptr[a + 1]):
                target[indices[q]] += fr * data_real[q] - fi * data_imag[q]
    return out


@numba.njit(cache=True)
def _chained_cotangent_blocked(moments, cotangent, factors, lengths, coefficients, owner,
                               mirror, mirror_sign, indptr, indices, data_real, data_imag,
                               n_out):
    """``_chained_cotangent`` for complex moments and real coefficients, to the bit, in blocks
    of ``_BLOCK`` environments (see ``_evaluate_real_blocked``): a term's derivatives are
    formed for the whole block into ``parts``, then added to the rows of their factors one row
    at a time, in ``_term_derivatives``' order (a factor may repeat: its row then takes two
    additions in turn)."""
    n_batch = moments.shape[0]
    n_ext = moments.shape[1]
    n_invariants = cotangent.shape[1]
    out = np.empty((n_batch, n_out))
    re = np.empty((n_ext, _BLOCK))
    im = np.empty((n_ext, _BLOCK))
    weight = np.empty((n_invariants, _BLOCK))
    gr = np.empty((n_ext, _BLOCK))
    gi = np.empty((n_ext, _BLOCK))
    parts = np.empty((8, _BLOCK))
    pr = np.empty(_BLOCK)
    pi = np.empty(_BLOCK)
    target = np.empty((n_out, _BLOCK))
    for start in range(0, n_batch, _BLOCK):
        n = min(_BLOCK, n_batch - start)
        _split_block(moments, start, n, re, im)
        for i in range(n_invariants):
            for b in range(n):
                weight[i, b] = cotangent[start + b, i]
        gr[:, :] = 0.0
        gi[:, :] = 0.0
        for t in range(factors.shape[0]):
            d = lengths[t]
            coefficient = coefficients[t]
            o = owner[t]
            f0 = factors[t, 0]
            if d == 3:  # derivatives (c a) b, (c a) e, c (b e) of c a b e
                f1 = factors[t, 1]
                f2 = factors[t, 2]
                for b in range(n):
                    c = coefficient * weight[o, b]
                    car = c * re[f0, b]
                    cai = c * im[f0, b]
                    parts[0, b] = car * re[f1, b] - cai * im[f1, b]
                    parts[1, b] = car * im[f1, b] + cai * re[f1, b]
                    parts[2, b] = car * re[f2, b] - cai * im[f2, b]
                    parts[3, b] = car * im[f2, b] + cai * re[f2, b]
                    ber = re[f1, b] * re[f2, b] - im[f1, b] * im[f2, b]
                    bei = re[f1, b] * im[f2, b] + im[f1, b] * re[f2, b]
                    parts[4, b] = c * ber
                    parts[5, b] = c * bei
            elif d == 4:  # ((c a) b) e, ((c a) b) f, (c a) (e f), c (b (e f))
                f1 = factors[t, 1]
                f2 = factors[t, 2]
                f3 = factors[t, 3]
                for b in range(n):
                    c = coefficient * weight[o, b]
                    car = c * re[f0, b]
                    cai = c * im[f0, b]
                    cabr = car * re[f1, b] - cai * im[f1, b]
                    cabi = car * im[f1, b] + cai * re[f1, b]
                    efr = re[f2, b] * re[f3, b] - im[f2, b] * im[f3, b]
                    efi = re[f2, b] * im[f3, b] + im[f2, b] * re[f3, b]
                    parts[0, b] = cabr * re[f2, b] - cabi * im[f2, b]
                    parts[1, b] = cabr * im[f2, b] + cabi * re[f2, b]
                    parts[2, b] = cabr * re[f3, b] - cabi * im[f3, b]
                    parts[3, b] = cabr * im[f3, b] + cabi * re[f3, b]
                    parts[4, b] = car * efr - cai * efi
                    parts[5, b] = car * efi + cai * efr
                    befr = re[f1, b] * efr - im[f1, b] * efi
                    befi = re[f1, b] * efi + im[f1, b] * efr
                    parts[6, b] = c * befr
                    parts[7, b] = c * befi
            else:  # degree 1 or 2 (or > 4): every derivative as its own product
                for j in range(d):
                    has_factor = False
                    for k in range(d):
                        if k == j:
                            continue
                        fk = factors[t, k]
                        if not has_factor:
                            for b in range(n):
                                c = coefficient * weight[o, b]
                                pr[b] = c * re[fk, b]
                                pi[b] = c * im[fk, b]
                            has_factor = True
                        else:
                            for b in range(n):
                                x = pr[b] * re[fk, b] - pi[b] * im[fk, b]
                                pi[b] = pr[b] * im[fk, b] + pi[b] * re[fk, b]
                                pr[b] = x
                    fj = factors[t, j]
                    if has_factor:
                        for b in range(n):
                            gr[fj, b] += pr[b]
                            gi[fj, b] += pi[b]
                    else:
                        for b in range(n):
                            gr[fj, b] += coefficient * weight[o, b]
                continue
            for j in range(d - 1, -1, -1):  # the last factor's derivative first
                fj = factors[t, j]
                r = 2 * (d - 1 - j)
                for b in range(n):
                    gr[fj, b] += parts[r, b]
                    gi[fj, b] += parts[r + 1, b]
        for a in range(n_ext - 1):
            m = mirror[a]
            if m >= 0:
                s = mirror_sign[a]
                for b in range(n):
                    gr[m, b] += s * gr[a, b]
                    gi[m, b] += -(s * gi[a, b])
        target[:, :n] = 0.0
        for a in range(n_ext - 1):
            if mirror[a] >= 0:
                continue
            for q in range(indptr[a], indptr[a + 1]):
                j = indices[q]
                dr = data_real[q]
                di = data_imag[q]
                for b in range(n):
                    target[j, b] += gr[a, b] * dr - gi[a, b] * di
        for b in range(n):
            for j in range(n_out):
                out[start + b, j] = target[j, b]
    return out


@dataclass(frozen=True)
class ChainPlan:
    """A chain matrix C (K, P) prepared for ``InvariantSet.values_and_chained_jacobian`` and
    ``chained_cotangent``: CSR arrays, and the rows that mirror others.

    Row a mirrors row b when ``C[a] = sign * conj(C[b])`` exactly (the Zernike transform:
    ``Omega_nl^-m = (-1)^m conj(Omega_nl^m)``); then ``Re(x C[a]) = sign * Re(conj(x) C[b])``,
    so derivatives by mirrored moments are folded onto their partners and only the kept rows
    are scattered (half the work for the Zernike transform). ``mirror[a]`` is b, or -1 for
    a kept row.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data_real: np.ndarray
    data_imag: np.ndarray
    n_out: int
    mirror: np.ndarray
    mirror_sign: np.ndarray
    fold_target: np.ndarray  # per slot of the Jacobian pattern: its folded slot
    fold_sign: np.ndarray  # 0: added as is; +-1: sign * conj added
    folded_invariant: np.ndarray
    folded_moment: np.ndarray
    kept: np.ndarray  # the rows that mirror none
    kept_index: np.ndarray  # position of a kept row in ``kept`` (-1 for mirrored rows)
    # the terms a vector-Jacobian product needs: one of each conjugate pair, weighted 2
    cotangent_factors: np.ndarray
    cotangent_lengths: np.ndarray
    cotangent_coefficients: np.ndarray
    cotangent_owner: np.ndarray


def _mirror_rows(chain) -> tuple[np.ndarray, np.ndarray]:
    """``(mirror, sign)`` of the rows of a CSR matrix (see :class:`ChainPlan`)."""
    n_rows = chain.shape[0]
    mirror = np.full(n_rows, -1, dtype=np.int64)
    sign = np.zeros(n_rows)
    rows = {}
    for a in range(n_rows):
        low, high = chain.indptr[a], chain.indptr[a + 1]
        rows[a] = (tuple(chain.indices[low:high]), chain.data[low:high])
    by_pattern: dict = {}
    for a in range(n_rows):
        by_pattern.setdefault(rows[a][0], []).append(a)
    for a in range(n_rows):
        pattern, data = rows[a]
        if not pattern:
            continue
        for b in by_pattern[pattern]:
            if b >= a or mirror[b] >= 0:
                continue
            for candidate in (1.0, -1.0):
                if np.array_equal(data, candidate * np.conj(rows[b][1])):
                    mirror[a], sign[a] = b, candidate
                    break
            if mirror[a] >= 0:
                break
    return mirror, sign


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
        # the non-zero pattern of dI/dmoments: one slot per (invariant, moment) a term touches
        slot_of: dict = {}
        self._slots = np.full(self._factors.shape, -1, dtype=np.int64)
        for t, (row, i) in enumerate(zip(self._factors, self._owner)):
            for j, a in enumerate(row):
                if a < n_moments:
                    self._slots[t, j] = slot_of.setdefault((int(i), int(a)), len(slot_of))
        pattern = np.array(list(slot_of), dtype=np.int64).reshape(-1, 2)
        self._slot_invariant = np.ascontiguousarray(pattern[:, 0])
        self._slot_moment = np.ascontiguousarray(pattern[:, 1])
        self._lengths = np.array([len(m) for inv in self.invariants for m in inv.terms],
                                 dtype=np.int64)
        self._term_start = np.searchsorted(self._owner, np.arange(len(self.invariants) + 1))
        self._all_rows = np.arange(len(self.invariants), dtype=np.int64)
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
        flat = moments.reshape(-1, self.n_moments)
        ext = np.empty((flat.shape[0], self.n_moments + 1), dtype=dtype)
        ext[:, : self.n_moments] = flat
        ext[:, self.n_moments] = 1.0
        return ext, lead

    def evaluate(self, moments: np.ndarray, rows=None) -> np.ndarray:
        """Invariants of ``moments`` (..., K) -> real array (..., n_invariants); with
        ``rows`` (invariant indices) only those, (..., len(rows)), the same floats."""
        ext, lead = self._extended(moments)
        rows = self._rows(rows)
        kernel = _evaluate_real_blocked if self._blocked(ext) else _evaluate_real
        values = kernel(ext, self._factors, self._lengths, self._coefficients, self._term_start,
                        rows)
        return values.reshape(*lead, len(rows))

    def _rows(self, rows) -> np.ndarray:
        """``rows`` as an int64 array of invariant indices (all of them for None); the
        kernels check each against the set's size (``_check_row``)."""
        if rows is None:
            return self._all_rows
        return np.asarray(rows, dtype=np.int64).reshape(-1)

    def _blocked(self, ext: np.ndarray) -> bool:
        """Whether the blocked kernels serve these extended moments: a batch of complex
        moments and real coefficients (they give the row kernels' values to the bit)."""
        return (len(ext) >= _BLOCKED_FROM and np.iscomplexobj(ext)
                and not np.iscomplexobj(self._coefficients))

    def bound(self, moments: np.ndarray) -> np.ndarray:
        """``sum_t |c_t| prod_j |moment_tj|`` per invariant, (..., n_invariants): an upper
        bound of ``|I|``, the scale at which an invariant's value counts as zero or not."""
        ext, lead = self._extended(moments)
        products = np.abs(self._coefficients) * np.prod(np.abs(ext[:, self._factors]), axis=2)
        values = np.stack([np.bincount(self._owner, row, minlength=len(self)) for row in products])
        return values.reshape(*lead, len(self))

    def jacobian(self, moments: np.ndarray, rows=None) -> np.ndarray:
        """Holomorphic derivatives dI/d(moment) of the polynomials (of ``-i I`` for imaginary
        invariants), (..., n_invariants, K); with ``rows`` only those invariants' rows.

        For complex moments the real fingerprint's derivative with respect to a real
        parameter p is ``Re(jacobian @ dmoments/dp)``.
        """
        ext, lead = self._extended(moments)
        rows = self._rows(rows)
        values = _jacobian(ext, self._factors, self._lengths, self._coefficients,
                           self._term_start, rows)
        return values.reshape(*lead, len(rows), self.n_moments)

    def chained_jacobian(self, moments: np.ndarray, chain) -> np.ndarray:
        """``Re(jacobian(moments) @ chain)`` without forming the dense Jacobian.

        chain: a ``scipy.sparse`` matrix (K, P), e.g. the Zernike transform taking geometric
        moments to Zernike moments, so the result is d Phi / d m (..., n_invariants, P).
        """
        return self.values_and_chained_jacobian(moments, chain)[1]

    def chain_plan(self, chain) -> ChainPlan:
        """``chain`` (a ``scipy.sparse`` matrix (K, P)) prepared for the chained derivatives;
        pass the plan instead of the matrix when the same chain serves many calls."""
        if isinstance(chain, ChainPlan):
            return chain
        chain = chain.tocsr()
        if chain.shape[0] != self.n_moments:
            raise ValueError(f"chain matrix needs {self.n_moments} rows, got {chain.shape[0]}")
        chain.sort_indices()
        data = chain.data.astype(complex)
        mirror, mirror_sign = _mirror_rows(chain)
        partner = np.where(mirror < 0, np.arange(self.n_moments), mirror)
        kept = np.flatnonzero(mirror < 0).astype(np.int64)
        kept_index = np.full(self.n_moments, -1, dtype=np.int64)
        kept_index[kept] = np.arange(len(kept))
        folded_of: dict = {}
        fold_target = np.empty(len(self._slot_moment), dtype=np.int64)
        for s, (i, a) in enumerate(zip(self._slot_invariant, self._slot_moment)):
            fold_target[s] = folded_of.setdefault((int(i), int(partner[a])), len(folded_of))
        folded = np.array(list(folded_of), dtype=np.int64).reshape(-1, 2)
        return ChainPlan(
            indptr=chain.indptr.astype(np.int64), indices=chain.indices.astype(np.int64),
            data_real=np.ascontiguousarray(data.real), data_imag=np.ascontiguousarray(data.imag),
            n_out=int(chain.shape[1]), mirror=mirror, mirror_sign=mirror_sign,
            fold_target=fold_target, fold_sign=mirror_sign[self._slot_moment],
            folded_invariant=np.ascontiguousarray(folded[:, 0]),
            folded_moment=np.ascontiguousarray(folded[:, 1]), kept=kept, kept_index=kept_index,
            **self._conjugate_representatives(chain, mirror, mirror_sign),
        )

    def _conjugate_representatives(self, chain, mirror, mirror_sign) -> dict:
        """One term of each conjugate pair, with weight 2 (1 for a term that is its own
        conjugate), when every term has its conjugate in the same invariant; else all terms.

        With moments of a real density (``moment_a = sign * conj(moment_b)`` for a row a that
        mirrors b, and real ``moment_b`` for a real kept row that no row mirrors), the
        conjugate of a term is the term over the partner moments with the product of their
        signs as extra factor. Its derivatives, folded and chained, equal those of the term
        itself (the real part taken at the end), so a vector-Jacobian product needs half the
        terms.
        """
        all_terms = dict(cotangent_factors=self._factors, cotangent_lengths=self._lengths,
                         cotangent_coefficients=self._coefficients, cotangent_owner=self._owner)
        n_moments = self.n_moments
        partner = np.full(n_moments, -1, dtype=np.int64)
        sign = np.ones(n_moments)
        for a in range(n_moments):
            if mirror[a] >= 0:
                partner[a], partner[mirror[a]] = mirror[a], a
                sign[a] = sign[mirror[a]] = mirror_sign[a]
        for b in np.flatnonzero(partner < 0):
            row = chain.data[chain.indptr[b]:chain.indptr[b + 1]]
            if np.any(np.imag(row) != 0):
                return all_terms
            partner[b] = b
        index = {}
        for t, (row, d, i) in enumerate(zip(self._factors, self._lengths, self._owner)):
            index[(int(i), tuple(sorted(int(a) for a in row[:d])))] = t
        weight = np.zeros(len(self._coefficients))
        for t, (row, d, i) in enumerate(zip(self._factors, self._lengths, self._owner)):
            if weight[t] != 0.0:
                continue
            factors = row[:d]
            other = index.get((int(i), tuple(sorted(int(a) for a in partner[factors]))))
            # the conjugate of c * prod(x) is conj(c) * prod(sign * x_partner): complex
            # coefficients (the imaginary-part invariants) compared in full
            if other is None or not cmath.isclose(
                    complex(self._coefficients[other]),
                    complex(np.conj(self._coefficients[t])) * float(np.prod(sign[factors])),
                    rel_tol=1e-12):
                return all_terms
            if other == t:
                weight[t] = 1.0
            else:
                weight[t], weight[other] = 2.0, -1.0  # -1: represented by t
        keep = np.flatnonzero(weight > 0)
        return dict(cotangent_factors=np.ascontiguousarray(self._factors[keep]),
                    cotangent_lengths=np.ascontiguousarray(self._lengths[keep]),
                    cotangent_coefficients=self._coefficients[keep] * weight[keep],
                    cotangent_owner=np.ascontiguousarray(self._owner[keep]))

    def values_and_chained_jacobian(self, moments: np.ndarray, chain) -> tuple[np.ndarray, np.ndarray]:
        """``(evaluate(moments), chained_jacobian(moments, chain))`` in one pass over the
        terms, through the sparse Jacobian (each of its non-zero entries scatters one row of
        ``chain``, a sparse matrix or its :meth:`chain_plan`): shapes (..., n_invariants) and
        (..., n_invariants, P)."""
        ext, lead = self._extended(moments)
        plan = self.chain_plan(chain)
        values, gradients = _values_and_chained_gradients(
            ext, self._factors, self._lengths, self._coefficients, self._owner, self._slots,
            plan.fold_target, plan.fold_sign, plan.folded_invariant, plan.folded_moment,
            plan.indptr, plan.indices, plan.data_real, plan.data_imag, len(self), plan.n_out,
        )
        return values.reshape(*lead, len(self)), gradients.reshape(*lead, len(self), plan.n_out)

    def values_and_tangent_products(self, moments: np.ndarray, chain, tangents: np.ndarray,
                                    starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Invariants (B, n_invariants) of moment rows (B, K) and, for each row b, the
        directional derivatives ``Re(jacobian(moments[b]) @ chain @ X_b)`` along its tangents
        ``X_b`` (chain's P, R_b = starts[b + 1] - starts[b]), stored transposed: (sum R_b,
        n_invariants). ``tangents`` is flat: X_b row-major from ``P * starts[b]`` on.
        Without forming d I / d(chained variables): the tangents go through the chain, then
        through the sparse Jacobian."""
        ext, _ = self._extended(moments)
        plan = self.chain_plan(chain)
        tangents = np.ascontiguousarray(tangents, dtype=float).reshape(-1)
        starts = np.asarray(starts, dtype=np.int64)
        if starts.shape != (len(ext) + 1,) or len(tangents) != plan.n_out * starts[-1]:
            raise ValueError(f"need {len(ext) + 1} column starts and {plan.n_out} tangent rows "
                             "per column")
        return _values_and_tangent_products(
            ext, self._factors, self._lengths, self._coefficients, self._owner, self._slots,
            plan.fold_target, plan.fold_sign, plan.folded_invariant, plan.folded_moment,
            plan.kept, plan.kept_index, plan.indptr, plan.indices, plan.data_real,
            plan.data_imag, tangents, starts, plan.n_out, len(self),
        )

    def chained_cotangent(self, moments: np.ndarray, cotangent: np.ndarray, chain) -> np.ndarray:
        """``Re(cotangent . jacobian(moments) @ chain)``: (..., P) for ``cotangent`` (...,
        n_invariants), a vector-Jacobian product that never forms the Jacobian (forces from
        dE/dI cost one pass over the terms). ``chain``: a sparse matrix or its plan."""
        ext, lead = self._extended(moments)
        cotangent = np.ascontiguousarray(np.asarray(cotangent, float).reshape(-1, len(self)))
        if len(cotangent) != len(ext):
            raise ValueError(f"need one cotangent per moment vector: {len(cotangent)} vs {len(ext)}")
        plan = self.chain_plan(chain)
        kernel = (_chained_cotangent_blocked
                  if self._blocked(ext) and not np.iscomplexobj(plan.cotangent_coefficients)
                  else _chained_cotangent)
        values = kernel(
            ext, cotangent, plan.cotangent_factors, plan.cotangent_lengths,
            plan.cotangent_coefficients, plan.cotangent_owner, plan.mirror, plan.mirror_sign, plan.indptr, plan.indices, plan.data_real,
            plan.data_imag, plan.n_out,
        )
        return values.reshape(*lead, plan.n_out)

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
