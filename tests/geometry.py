"""Random geometry for the tests, independent of the package."""

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
