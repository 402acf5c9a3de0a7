"""The ``milad`` command line: in-process, and as a separate process (``python -m milad``)
for every exit status the command line documents: 0 success, 1 a row that could not be
decoded (or an output that could not be written), 2 bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.io import write

from geometry import assert_invariant
from milad.cli import main
from milad.descriptor import Descriptor

ROOT = Path(__file__).resolve().parents[1]


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


def milad_process(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m milad ARGS`` in a fresh interpreter, importing this checkout's milad."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "milad", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": path})


@pytest.mark.parametrize("command", [[], ["fingerprint"], ["invariants"]])
def test_help_on_every_subcommand(command):
    result = milad_process(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: milad" in result.stdout


# ------------------------------------------------------------------ exit status of the process

HCNOF = "H,C,N,O,F"


def test_process_exits_0_and_writes_the_fingerprint(tmp_path):
    write(tmp_path / "water.xyz", molecule("H2O"))
    result = milad_process("fingerprint", "water.xyz", "-o", "fp.npy", "--species", HCNOF,
                           cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "1 molecules x 117 invariants -> fp.npy\n"
    expected = Descriptor(species=HCNOF).molecules([molecule("H2O")])
    np.testing.assert_allclose(np.load(tmp_path / "fp.npy"), expected, rtol=0,
                               atol=1e-12 * np.abs(expected).max())


def test_process_exits_1_when_a_row_cannot_be_decoded(tmp_path):
    """A fingerprint with species decoded as positions only: its zeroth moment (total weight
    1.1 + 1.1 + 1.7) is no whole number of unit atoms. The row fails before any search."""
    np.save(tmp_path / "fp.npy", Descriptor(species=HCNOF).molecules([molecule("H2O")]))
    result = milad_process("decode", "fp.npy", "-o", "out.xyz", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    why = ("the fingerprint's zeroth moment encodes a total weight of 3.9, which is not a whole "
           "number of unit-weight atoms: is it a fingerprint with species? (pass n_atoms)")
    assert result.stdout.splitlines() == [
        f"row 0: FAILED ({why})", "0/1 decoded below 1e-06 -> nothing written",
        f"failed rows: 0 ({why})"]
    assert not (tmp_path / "out.xyz").exists()


def _nan_structure(folder: Path) -> None:
    water = molecule("H2O")
    water.positions[1, 0] = np.nan
    write(folder / "nan.xyz", water)


@pytest.mark.parametrize("make_input, args, message", [
    (_nan_structure, ["fingerprint", "nan.xyz", "-o", "out.npy"],
     "milad fingerprint: error: positions of H2O contain 1 NaN or infinite value(s)"),
    (None, ["fingerprint", "missing.xyz", "-o", "out.npy"],
     "milad fingerprint: error: input file not found: missing.xyz"),
    (None, ["decode", "fp.npy", "--n-atoms", "3"],  # argparse: -o is required
     "milad decode: error: the following arguments are required: -o/--output"),
], ids=["NaN coordinates", "missing file", "missing option"])
def test_process_exits_2_on_bad_input_naming_it(tmp_path, make_input, args, message):
    if make_input is not None:
        make_input(tmp_path)
    result = milad_process(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == message
    assert not (tmp_path / "out.npy").exists()
