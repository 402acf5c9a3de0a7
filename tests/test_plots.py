"""Completeness figure (paper Fig. 1): the Pozdnyakov et al. pair and its plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402

from milad.plots import (  # noqa: E402
    completeness_differences,
    completeness_summary,
    plot_completeness,
    pozdnyakov_pair,
)


@pytest.fixture(scope="module")
def table():
    return completeness_differences(n_max=7)


def test_pair_geometry():
    b, b_prime = pozdnyakov_pair()
    assert b.shape == b_prime.shape == (8, 3)
    # the two differ only in the sign of the apex atom's y coordinate
    np.testing.assert_array_equal(np.delete(b, 1, axis=0), np.delete(b_prime, 1, axis=0))
    np.testing.assert_array_equal(b[1], [0.0, 0.8, 0.0])
    np.testing.assert_array_equal(b_prime[1], [0.0, -0.8, 0.0])
    np.testing.assert_array_equal(b[0], 0.0)
    # two groups of three at distance 0.3 from (0, +-0.4, 0), inside the unit sphere
    np.testing.assert_allclose(np.linalg.norm(b[2:5] - [0, 0.4, 0], axis=1), 0.3)
    np.testing.assert_allclose(np.linalg.norm(b[5:8] + [0, 0.4, 0], axis=1), 0.3)
    assert np.linalg.norm(b, axis=1).max() < 1.0
    # the second group is the first (unshifted) rotated by 86 degrees about y
    angle = np.radians(86.0)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                         [-np.sin(angle), 0, np.cos(angle)]])
    np.testing.assert_allclose((b[2:5] - [0, 0.4, 0]) @ rotation.T, b[5:8] + [0, 0.4, 0])
    # same interatomic distances: no two-body descriptor tells them apart
    np.testing.assert_allclose(np.sort(pdist(b)), np.sort(pdist(b_prime)), atol=1e-15)


def test_only_four_body_invariants_tell_the_pair_apart(table):
    low = table[table["degree"] <= 3]
    high = table[table["degree"] == 4]
    assert len(low) > 0 and len(high) > 0
    assert np.abs(low["difference"]).max() < 1e-12
    assert np.abs(high["difference"]).max() > 1e-6
    summary = completeness_summary(table)
    assert summary[4]["differ"] >= 1
    assert all(summary[nu]["differ"] == 0 for nu in (1, 2, 3))


def test_figure_data_match_the_moment_route(table):
    """The figure's fingerprints are the invariants of the points' Zernike moments."""
    from milad.invariants import load_invariants
    from milad.moments import geometric_moments, zernike_moments

    invariants = load_invariants(7)
    phi = [
        invariants.evaluate(zernike_moments(geometric_moments(p, np.ones(len(p)), 7), 7))
        for p in pozdnyakov_pair()
    ]
    np.testing.assert_allclose(table["phi_B"], phi[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(table["difference"], phi[0] - phi[1], rtol=0, atol=1e-12)


def test_plot_writes_pdf_and_png(table, tmp_path):
    pdf, png = tmp_path / "fig.pdf", tmp_path / "sub" / "fig.png"
    figure = plot_completeness(table, [pdf, png])
    plt.close(figure)
    assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_reconstruction_slices_sharpen_on_the_heaviest_atom(tmp_path):
    from ase.build import molecule

    from milad.plots import planar_frame, plot_reconstructions, reconstruction_slices

    formaldehyde = molecule("H2CO")
    formaldehyde.rotate(37, (1, 2, 3))
    rotated = formaldehyde.positions @ planar_frame(formaldehyde.positions).T
    np.testing.assert_allclose(rotated[:, 2] - rotated[:, 2].mean(), 0.0, atol=1e-12)

    axis, slices, plane, weights = reconstruction_slices(formaldehyde, [3, 11], cutoff=2.5, n_grid=101)
    oxygen = plane[np.argmax(weights)]
    errors = {}
    for order, density in slices.items():
        iy, ix = np.unravel_index(np.argmax(density), density.shape)
        errors[order] = np.hypot(axis[ix] - oxygen[0], axis[iy] - oxygen[1])
    assert errors[11] < 0.05 < errors[3]  # higher order resolves the heaviest atom
    paths = [tmp_path / "fig2.png", tmp_path / "fig2.pdf"]
    plot_reconstructions(axis, slices, plane, weights, paths)
    assert all(p.stat().st_size > 1000 for p in paths)
