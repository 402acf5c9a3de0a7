"""The completeness experiment of the paper (section II E, Fig. 1).

Pozdnyakov et al. (PRL 125, 166001, 2020) built two atomic environments, B and B', that no
descriptor of correlation order nu <= 3 (power spectrum, bispectrum) can tell apart.
:func:`pozdnyakov_pair` builds them, :func:`completeness_differences` evaluates the MILAD
fingerprint of both and :func:`completeness_summary` counts, per correlation order, the
invariants that differ; ``milad.plots.plot_completeness`` draws the table.

:func:`mirror_pair_differences` does the same for B and its mirror image with the chiral
fingerprint (``Descriptor(..., chiral=True)``): the default invariants cannot tell a structure
from its mirror image (they agree to rounding), the parity-odd ones change sign.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["pozdnyakov_pair", "completeness_differences", "completeness_summary",
           "mirror_pair_differences", "MIRROR_NORMAL"]

#: normal of the mirror plane of :func:`mirror_pair_differences`: a plane in general
#: position, so that the agreement of the even invariants is down to rounding, not to a
#: reflection that merely flips the sign of coordinates
MIRROR_NORMAL = (1.0, 2.0, 3.0)


def _rotation_about_y(angle_degrees: float) -> np.ndarray:
    """Right-handed rotation about y: takes the z axis towards the x axis."""
    a = np.radians(angle_degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def pozdnyakov_pair(
    radius: float = 0.3,
    polar_angles: Iterable[float] = (0.0, -87.0, 176.0),
    twist: float = 86.0,
    shift: float = 0.4,
    apex: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """The environments B and B' of Pozdnyakov et al., in unit-sphere coordinates.

    Both have eight atoms (the order is the same in both):

    0. the central atom at the origin;
    1. one atom at ``(0, +apex, 0)`` in B and ``(0, -apex, 0)`` in B' (the only difference);
    2-4. three atoms at distance ``radius`` from the origin in the plane y = 0, at
       ``polar_angles`` (degrees, from the z axis towards x), then shifted by ``+shift``
       along y;
    5-7. the same three atoms before their shift, rotated by ``twist`` degrees about the y axis
       (right-handed), then shifted by ``-shift`` along y.

    Returns two float arrays of shape (8, 3).
    """
    angles = np.radians(np.asarray(tuple(polar_angles), dtype=float))
    group = radius * np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], axis=1)
    upper = group + np.array([0.0, shift, 0.0])
    lower = group @ _rotation_about_y(twist).T - np.array([0.0, shift, 0.0])
    centre = np.zeros((1, 3))
    b = np.concatenate([centre, [[0.0, apex, 0.0]], upper, lower])
    b_prime = np.concatenate([centre, [[0.0, -apex, 0.0]], upper, lower])
    return b, b_prime


def completeness_differences(n_max: int = 7, tolerance: float = 1e-10,
                             invariants=None) -> pd.DataFrame:
    """Fingerprints of B and B' and their difference, one row per invariant.

    The fingerprints are those of ``milad.descriptor.Descriptor(n_max, cutoff=1.0)`` (delta
    feature functions, all weights 1) with the shipped invariant set of order ``n_max``, or
    with ``invariants`` (an ``InvariantSet`` or a path to one) when given.

    Returns a ``pandas.DataFrame`` with columns ``index``, ``label``, ``degree`` (correlation
    order nu), ``phi_B``, ``phi_B_prime``, ``difference`` (Phi_B - Phi_B') and ``differs``
    (``|difference| > tolerance``).
    """
    import pandas as pd

    from .descriptor import Descriptor

    descriptor = Descriptor(n_max=n_max, cutoff=1.0, invariants=invariants)
    invariants = descriptor.invariants
    b, b_prime = pozdnyakov_pair()
    phi_b, phi_b_prime = descriptor.environment(b), descriptor.environment(b_prime)
    difference = phi_b - phi_b_prime
    return pd.DataFrame(
        {
            "index": np.arange(len(difference)),
            "label": list(invariants.labels),
            "degree": np.asarray(invariants.degrees),
            "phi_B": phi_b,
            "phi_B_prime": phi_b_prime,
            "difference": difference,
            "differs": np.abs(difference) > tolerance,
        }
    )


def mirror_pair_differences(n_max: int = 7, tolerance: float = 1e-10,
                            invariants=None) -> pd.DataFrame:
    """The chiral fingerprint of B and of its mirror image (reflected through the plane
    through the origin with normal :data:`MIRROR_NORMAL`), one row per invariant.

    ``Descriptor(n_max, cutoff=1.0, chiral=True)``: the shipped invariants of order ``n_max``
    followed by its parity-odd ones, or ``invariants`` when given (an ``InvariantSet`` holding
    both, e.g. ``even.appended(odd)``). Columns ``index``, ``label``, ``degree``, ``parity``
    (``even``: the default fingerprint; ``odd``: appended by ``chiral=True``), ``phi_B``,
    ``phi_B_mirror``, ``difference`` and ``differs`` (``|difference| > tolerance``). The even
    differences are rounding errors; the odd ones are ``2 phi_B`` (the sign flips).
    """
    import pandas as pd

    from .descriptor import Descriptor

    if invariants is None:
        descriptor = Descriptor(n_max=n_max, cutoff=1.0, chiral=True)
    else:
        descriptor = Descriptor(n_max=n_max, cutoff=1.0, invariants=invariants)
        if not descriptor.chiral:
            raise ValueError("mirror_pair_differences needs an invariant set with parity-odd "
                             "invariants")
    invariants = descriptor.invariants
    normal = np.asarray(MIRROR_NORMAL) / np.linalg.norm(MIRROR_NORMAL)
    reflection = np.eye(3) - 2.0 * np.outer(normal, normal)
    b, _ = pozdnyakov_pair()
    phi_b, phi_mirror = descriptor.environment(b), descriptor.environment(b @ reflection.T)
    difference = phi_b - phi_mirror
    return pd.DataFrame(
        {
            "index": np.arange(len(difference)),
            "label": list(invariants.labels),
            "degree": np.asarray(invariants.degrees),
            "parity": np.where(invariants.imaginary, "odd", "even"),
            "phi_B": phi_b,
            "phi_B_mirror": phi_mirror,
            "difference": difference,
            "differs": np.abs(difference) > tolerance,
        }
    )


def completeness_summary(table: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Per correlation order: number of invariants, how many differ, largest |difference|."""
    out = {}
    for degree, rows in table.groupby("degree"):
        out[int(degree)] = {
            "count": int(len(rows)),
            "differ": int(rows["differs"].sum()),
            "max_abs_difference": float(np.abs(rows["difference"]).max()),
        }
    return out
