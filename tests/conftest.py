"""Shared fixtures for the moment and invariant tests.

The invariant sets are generated once per session (about a second each) instead of being
loaded from ``milad/data/invariants`` so that the tests do not depend on shipped files.
"""

from __future__ import annotations

import numpy as np
import pytest

from milad.invariants import generate_zernike_invariants


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator for every test (reproducible, order independent)."""
    return np.random.default_rng(20240607)


@pytest.fixture(scope="session")
def zernike_set_7():
    """Invariants up to n_max = 7 keeping the n = 0, 1 moments (117 invariants)."""
    return generate_zernike_invariants(7, 0)


@pytest.fixture(scope="session")
def zernike_set_7_n2():
    """Invariants up to n_max = 7 from moments with n >= 2 only (Table I: 113)."""
    return generate_zernike_invariants(7, 2)
