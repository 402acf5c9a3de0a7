"""Forces by the chain rule through the sparse pair derivatives of the fingerprints.

With dE/dPhi_i (N, K) from the networks and the pair derivatives d Phi_c / d r_n (P, 3, K;
stored transposed, see :class:`~milad.potential.dataset.FingerprintSet`), the gradient of the
energy with respect to the positions is

    dE/dr_j = sum_p [n_p = j] dPhi_c/dr_n . dE/dPhi_c - sum_p [c_p = j] dPhi_c/dr_n . dE/dPhi_c

(a pair moves its centre's fingerprint through the neighbour and, oppositely, through the centre
itself), and F = -dE/dr in eV/A. Two numba kernels compute this contraction and its adjoint in
one pass over the pairs each, accumulating in float64; :func:`position_gradient` wraps them as a
torch autograd function so that a loss on forces back-propagates into the network weights.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["position_gradient"]


@numba.njit(cache=True, fastmath=True)
def _pair_gradient(derivatives, centers, neighbors, grad_phi, n_atoms):
    """dE/dr (n_atoms, 3) from dE/dPhi (n_atoms, K) and the pair derivatives (P, 3, K).

    Pair p moves Phi[centers[p]] through its neighbour and, oppositely, through the centre.
    """
    out = np.zeros((n_atoms, 3))
    n_features = derivatives.shape[2]
    for p in range(derivatives.shape[0]):
        c = centers[p]
        n = neighbors[p]
        for x in range(3):
            total = 0.0
            for k in range(n_features):
                total += derivatives[p, x, k] * grad_phi[c, k]
            out[n, x] += total
            out[c, x] -= total
    return out


@numba.njit(cache=True, fastmath=True)
def _pair_gradient_transpose(derivatives, centers, neighbors, upstream, n_atoms):
    """Adjoint of ``_pair_gradient``: d(sum upstream * dE/dr) / d(dE/dPhi), (n_atoms, K)."""
    n_features = derivatives.shape[2]
    out = np.zeros((n_atoms, n_features))
    for p in range(derivatives.shape[0]):
        c = centers[p]
        n = neighbors[p]
        w0 = upstream[n, 0] - upstream[c, 0]
        w1 = upstream[n, 1] - upstream[c, 1]
        w2 = upstream[n, 2] - upstream[c, 2]
        for k in range(n_features):
            out[c, k] += derivatives[p, 0, k] * w0 + derivatives[p, 1, k] * w1 + (
                derivatives[p, 2, k] * w2
            )
    return out


class _PositionGradient(torch.autograd.Function):
    """dE/dr from dE/dPhi through the sparse pair derivatives, one pass over them each way.

    (A numba kernel: about ten times faster on one core than gathering dE/dPhi onto the pairs
    and contracting with ``torch.bmm``, and it accumulates in float64.)
    """

    @staticmethod
    def forward(ctx, grad_phi, derivatives, centers, neighbors):
        ctx.pairs = (derivatives, centers, neighbors)
        out = _pair_gradient(derivatives, centers, neighbors,
                             np.ascontiguousarray(grad_phi.detach().numpy()), len(grad_phi))
        return torch.from_numpy(out).to(grad_phi.dtype)

    @staticmethod
    def backward(ctx, upstream):
        out = _pair_gradient_transpose(
            *ctx.pairs, np.ascontiguousarray(upstream.detach().to(torch.float64).numpy()),
            len(upstream),
        )
        return torch.from_numpy(out).to(upstream.dtype), None, None, None


def position_gradient(grad_phi: torch.Tensor, derivatives: np.ndarray, centers: np.ndarray,
                      neighbors: np.ndarray) -> torch.Tensor:
    """dE/dr (N, 3) from dE/dPhi (N, K), differentiable with respect to ``grad_phi``.

    derivatives (P, 3, K), centers and neighbors (P,) int64: C-contiguous numpy arrays as in
    :class:`~milad.potential.dataset.TensorSet`.
    """
    return _PositionGradient.apply(grad_phi, derivatives, centers, neighbors)
