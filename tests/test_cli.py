"""The ``milad`` command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.io import write

from geometry import assert_invariant
from milad.cli import main
from milad.descriptor import Descriptor


@pytest.fixture()
def molecules_file(tmp_path):
    path = tmp_path / "molecules.extxyz"
    write(path, [molecule("CH4"), molecule("NH3"), molecule("CH3OH")])
    return path


def test_fingerprint_writes_one_row_per_frame(molecules_file, tmp_path, capsys):
    output = tmp_path / "fp.npy"
    assert main(["fingerprint", str(molecules_file), "-o", str(output), "--species", "H,C,N,O,F"]) == 0
    values = np.load(output)
    expected = Descriptor(species="H,C,N,O,F").molecules([molecule("CH4"), molecule("NH3"), molecule("CH3OH")])
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert "3 molecules x 117 invariants" in capsys.readouterr().out


def test_fingerprint_local_and_gaussian(tmp_path):
    structure = tmp_path / "si.cif"
    write(structure, bulk("Si", "diamond", a=5.43))
    output = tmp_path / "local.npy"
    args = ["fingerprint", str(structure), "-o", str(output), "--local", "--cutoff", "4.7",
            "--feature", "gaussian", "--sigma", "0.3"]
    assert main(args) == 0
    values = np.load(output)
    assert values.shape == (2, 117)
    # the two sites are equivalent (the inversion centre of diamond maps one onto the other);
    # invariants that vanish at their Td sites are zero up to rounding (assert_invariant's floor)
    assert_invariant(values[1], values[0], rtol=1e-10)


def test_invariants_json_reports_shipped_counts(capsys):
    assert main(["invariants", "--n-max", "7", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_max"] == 7 and summary["count"] == 117
    assert sum(summary["by_correlation_order"].values()) == 117
    assert main(["invariants", "--n-max", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 283


def test_errors_are_one_line_messages(tmp_path, molecules_file, capsys):
    assert main(["fingerprint", str(tmp_path / "missing.xyz"), "-o", str(tmp_path / "x.npy")]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["fingerprint", str(molecules_file), "-o", str(tmp_path / "x.npy"), "--species", "H,C"]) == 2
    assert "not in the species map" in capsys.readouterr().err
    assert main(["fingerprint", str(molecules_file), "-o", str(tmp_path / "x.npy"), "--cutoff", "0.5"]) == 2
    assert "larger than the cutoff" in capsys.readouterr().err
    assert main(["invariants", "--n-max", "4"]) == 2
    assert "no invariant set ships" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["fingerprint"], ["invariants"]])
def test_help_on_every_subcommand(command):
    result = subprocess.run([sys.executable, "-m", "milad", *command, "--help"],
                            capture_output=True, text=True, check=True)
    assert "usage: milad" in result.stdout
