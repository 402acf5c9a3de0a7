"""Shared fixtures (moments and invariants; a network guard for the data tests).

The n_max = 7 invariant sets are generated once per session (about a second each) instead of
being loaded from ``milad/data/invariants`` so that the tests do not depend on shipped files.
The n_max = 10 set takes minutes to generate, so its tests use the shipped file (whose exact
regeneration is a slow test in test_shipped_invariants.py).
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from milad import data as mdata
from milad.invariants import generate_zernike_invariants, load_invariants


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


@pytest.fixture(scope="session")
def shipped_set_10():
    """The shipped invariants up to n_max = 10 with the n = 0, 1 moments (283 = 286 - 3)."""
    return load_invariants(10)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection (or use the default downloader) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(mdata, "_urllib_download", refuse)
