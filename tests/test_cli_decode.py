"""``milad decode`` and ``milad compare``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

from milad.cli import main


@pytest.fixture()
def triatomics(tmp_path):
    path = tmp_path / "small.extxyz"
    write(path, [molecule("H2O"), molecule("HCN")])
    return path


def test_fingerprint_decode_compare_round_trip(triatomics, tmp_path, capsys):
    fingerprints = tmp_path / "fp.npy"
    assert main(["fingerprint", str(triatomics), "-o", str(fingerprints)]) == 0
    decoded = tmp_path / "decoded.extxyz"
    assert main(["decode", str(fingerprints), "--n-atoms", "3", "-o", str(decoded), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "row 0: 3 atoms" in out and "row 1: 3 atoms" in out and "success" in out
    frames = read(decoded, index=":")
    assert len(frames) == 2 and all(len(f) == 3 for f in frames)
    assert frames[0].info["decode_success"]

    # decoded atoms are all "X": compared by positions, after centring on the miniball
    original = tmp_path / "original.extxyz"
    from milad.descriptor import Descriptor

    centred = []
    for atoms in read(triatomics, index=":"):
        atoms.positions = Descriptor().molecule_positions(atoms)
        centred.append(atoms)
    write(original, centred)
    assert main(["compare", str(original), str(decoded), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert set(row) >= {"rmsd", "mirror_rmsd", "matched"}
        assert min(row["rmsd"], row["mirror_rmsd"]) < 0.01


def test_decode_with_species_and_unknown_count(tmp_path, capsys):
    structure = tmp_path / "ammonia.xyz"
    write(structure, molecule("NH3"))
    plain, species = tmp_path / "plain.npy", tmp_path / "species.npy"
    assert main(["fingerprint", str(structure), "-o", str(plain)]) == 0
    assert main(["fingerprint", str(structure), "-o", str(species), "--species", "H,C,N,O,F"]) == 0
    out = tmp_path / "out.xyz"
    # positions-only: the atom count comes from the zeroth moment
    assert main(["decode", str(plain), "-o", str(out)]) == 0
    assert "row 0: 4 atoms" in capsys.readouterr().out
    assert main(["decode", str(species), "--n-atoms", "4", "--species", "H,C,N,O,F", "-o", str(out)]) == 0
    assert sorted(read(out).get_chemical_symbols()) == ["H", "H", "H", "N"]
    assert main(["decode", str(species), "--species", "H,C,N,O,F", "--positions", str(plain),
                 "-o", str(out)]) == 0
    assert sorted(read(out).get_chemical_symbols()) == ["H", "H", "H", "N"]
    capsys.readouterr()
    assert main(["compare", str(structure), str(out)]) == 0
    text = capsys.readouterr().out
    assert "RMSD" in text and "mirror image" in text and "species-aware" in text


def test_decode_and_compare_errors(tmp_path, triatomics, capsys):
    assert main(["decode", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "o.xyz")]) == 2
    assert "not found" in capsys.readouterr().err
    short = tmp_path / "short.npy"
    np.save(short, np.ones((1, 50)))
    assert main(["decode", str(short), "--n-atoms", "3", "-o", str(tmp_path / "o.xyz")]) == 2
    assert "expected a vector of that length" in capsys.readouterr().err
    garbage = tmp_path / "garbage.npy"
    garbage.write_text("not an array")
    assert main(["decode", str(garbage), "-o", str(tmp_path / "o.xyz")]) == 2
    assert "could not read" in capsys.readouterr().err
    fingerprints = tmp_path / "fp.npy"
    assert main(["fingerprint", str(triatomics), "-o", str(fingerprints)]) == 0
    for count in ("0", "-2"):
        assert main(["decode", str(fingerprints), "--n-atoms", count, "-o", str(tmp_path / "o.xyz")]) == 2
        assert "at least 1" in capsys.readouterr().err
    assert main(["decode", str(fingerprints), "--attempts", "0", "-o", str(tmp_path / "o.xyz")]) == 2
    assert "--attempts" in capsys.readouterr().err
    assert main(["compare", str(triatomics), str(tmp_path / "nope.xyz")]) == 2
    assert "not found" in capsys.readouterr().err
    four = tmp_path / "four.xyz"
    write(four, molecule("NH3"))
    assert main(["compare", str(triatomics), str(four)]) == 2
    assert "atoms" in capsys.readouterr().err
