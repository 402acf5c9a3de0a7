"""Random geometry for the tests, independent of the package, and the per-component check of
invariance (:func:`assert_invariant`)."""

import numpy as np


def random_points(rng, n, radius):
    """n points uniformly distributed in the ball of the given radius."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * radius * rng.uniform(0, 1, size=(n, 1)) ** (1 / 3)


def random_rotation(rng, proper=True):
    """A random proper rotation, or a general improper one (inversion times a rotation)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q if proper else -q


def assert_invariant(values, reference, rtol=1e-10, scale=None, floor=1e-14, err_msg=""):
    """Component by component: ``|values_i - reference_i| <= rtol * max(|reference_i|, scale_i, f)``.

    Each component is held to its own size, so a small component that is not invariant fails
    even where it is negligible next to the vector's norm. The last axis holds the components;
    leading axes (environments, atoms) share the per-component ``scale``: by default the
    largest ``|reference|`` of that component over them, its typical size in the test's own
    environments (a component that happens to be near zero in one environment is not held to
    that). ``f = floor * max|reference|``: a component below it is zero up to rounding (one that
    vanishes by symmetry evaluates to products of rounding errors, ~1e-50), so it is compared
    absolutely, at ``rtol * f`` (1e-24 of the largest component by default).
    """
    __tracebackhide__ = True  # pytest reports the caller's line
    values, reference = np.asarray(values), np.asarray(reference)
    assert values.shape == reference.shape, f"shapes {values.shape} != {reference.shape}"
    magnitude = np.abs(reference)
    if scale is None:
        scale = magnitude.reshape(-1, magnitude.shape[-1]).max(axis=0) if magnitude.ndim else magnitude
    allowed = rtol * np.maximum(np.maximum(magnitude, scale), floor * magnitude.max())
    error = np.abs(values - reference)
    failed = ~(error <= allowed)  # NaN fails too
    if failed.any():
        ratio = np.where(failed, error / np.where(allowed > 0, allowed, 1e-300), 0.0)
        ratio[np.isnan(error)] = np.inf
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(ratio), ratio.shape))
        raise AssertionError(
            f"{err_msg}{': ' if err_msg else ''}{failed.sum()} of {error.size} components differ "
            f"by more than {rtol:g} of their own size; worst at index {worst}: {values[worst]!r} vs "
            f"{reference[worst]!r} (off by {error[worst]:.3g}, allowed {allowed[worst]:.3g})"
        )
