"""The QM9 experiment's building blocks: the shipped subset pinned (digest and the paper's
list), the figshare xyz reader and its test archive, the subset check, the archive fetch
(never over the network), the regeneration of the subset from each source, seeds, one decode
job, the tidy table and the summary notes.

The archive tests use tests/data/qm9/dsgdb9nsd_fixture.xyz.tar.bz2 (three molecules in the
archive's per-molecule format), the pin tests tests/data/qm9/qm9_subset_ids.csv (the
supplementary material's list); the README next to them says what each can vouch for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from milad.data import (
    QM9_ARCHIVE_MD5,
    QM9_SUBSET_IDS,
    QM9_SUBSET_PATH,
    QM9_SUBSET_SHA256,
    ChecksumError,
    DataUnavailableError,
    extract_qm9_subset_from_archive,
    fetch_qm9_archive,
    parse_qm9_xyz,
    qm9_subset_differences,
    qm9pack_csv_paths,
    read_qm9_subset,
    read_qm9_xyz,
)
import milad.qm9 as qm9_module
from milad.qm9 import (
    COLUMNS,
    QM9SubsetMismatch,
    build_subset,
    decode_seed,
    decodes_table,
    find_molecule,
    run_decode,
    select_molecules,
    summary_notes,
    validation_notes,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "qm9" / "dsgdb9nsd_fixture.xyz.tar.bz2"
FIXTURE_IDS = [0, 2, 5]
#: The supplementary material's list of the 77 molecules (QM9 ID, atom count), with the Hill
#: formula and SMILES of each; see tests/data/qm9/README.md.
SUBSET_TABLE = FIXTURE.with_name("qm9_subset_ids.csv")
#: sha256 of milad/data/qm9_subset.extxyz as committed (written here, independently of
#: milad.data.QM9_SUBSET_SHA256, which must agree).
SHIPPED_SHA256 = "bf982c1b2c646b6900a9fc25c72bae316a7e2d7bc2cb43a3541eb404fedbceef"


# every test here fails if it tries to use the network (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="module")
def shipped():
    return read_qm9_subset()


# ------------------------------------------------------------------ the shipped subset, pinned


@pytest.fixture(scope="module")
def subset_table():
    with SUBSET_TABLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(int(r["qm9_id"]), int(r["n_atoms"]), r["formula"], r["smiles"]) for r in rows]


def test_shipped_subset_is_the_pinned_file():
    """Any change to the shipped molecules (a moved atom, a reordered frame, a re-export) fails
    here; if it is meant, check it against the table below and the SI, then update the digest."""
    assert hashlib.sha256(QM9_SUBSET_PATH.read_bytes()).hexdigest() == SHIPPED_SHA256
    assert QM9_SUBSET_SHA256 == SHIPPED_SHA256


def test_a_damaged_shipped_subset_is_refused(tmp_path, monkeypatch):
    """read_qm9_subset checks the shipped file's digest: one changed byte is named, not read."""
    import milad.data

    damaged = tmp_path / "qm9_subset.extxyz"
    data = bytearray(QM9_SUBSET_PATH.read_bytes())
    data[-10] ^= 1
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(milad.data, "QM9_SUBSET_PATH", damaged)
    with pytest.raises(ChecksumError, match="the shipped QM9 subset was changed or damaged"):
        milad.data.read_qm9_subset(damaged)


def test_table_is_the_papers_list_of_77_molecules(subset_table):
    """The table holds the SI's list: three molecules of each size from 3 to 29 atoms, but two
    of 3 atoms and none of 28 (77 in all); milad's QM9_SUBSET_IDS is the same list, and each
    formula has the listed number of atoms and is the formula of the listed SMILES."""
    from ase.formula import Formula
    from rdkit import Chem
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    assert len(subset_table) == 77 and len({row[0] for row in subset_table}) == 77
    sizes = [row[1] for row in subset_table]
    assert sizes == sorted(sizes)
    assert {n: sizes.count(n) for n in set(sizes)} == {
        n: 2 if n == 3 else 3 for n in range(3, 30) if n != 28}
    listed = {}
    for qm9_id, n_atoms, _, _ in subset_table:
        listed.setdefault(n_atoms, []).append(qm9_id)
    assert {n: tuple(ids) for n, ids in listed.items()} == QM9_SUBSET_IDS
    for qm9_id, n_atoms, formula, smiles in subset_table:
        assert len(Formula(formula)) == n_atoms, (qm9_id, formula)
        from_smiles = CalcMolFormula(Chem.MolFromSmiles(smiles))
        assert Formula(from_smiles).count() == Formula(formula).count(), (qm9_id, smiles)


def test_shipped_subset_matches_the_table_row_by_row(shipped, subset_table):
    found = [(int(a.info["qm9_id"]), len(a), a.get_chemical_formula(mode="hill"),
              a.info["smiles"]) for a in shipped]
    wrong = [f"row {i}: shipped {got}, table {want}"
             for i, (got, want) in enumerate(zip(found, subset_table)) if got != want]
    assert not wrong and len(found) == len(subset_table), "\n".join(wrong)
    assert all(int(a.info["gdb_index"]) == int(a.info["qm9_id"]) + 1 for a in shipped)


# ------------------------------------------------------------------ the QM9 xyz format

WATER = (
    "3\n"
    "gdb 3\t799.58812\t437.90386\t282.94545\t1.8511\t6.31\t-0.2928\t0.0687\t0.3615\t19.0002\t"
    "0.021375\t-76.404702\t-76.401867\t-76.400922\t-76.422349\t6.002\t\n"
    "O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.589706\n"
    "H\t 0.0647664923\t 0.0205721989\t 1.5346341*^-3\t 0.294853\n"
    "H\t 0.8717903737\t 1.3007924048\t 6.931336*^-4\t 0.294853\n"
    "1671.3349\t3912.1206\t4036.4656\n"
    "O\tO\t\n"
    "InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2\n"
)


def test_parse_qm9_xyz_reads_atoms_properties_and_identifiers():
    atoms = parse_qm9_xyz(WATER)
    assert atoms.get_chemical_symbols() == ["O", "H", "H"]
    # Mathematica-style exponents
    np.testing.assert_allclose(atoms.positions[1:, 2], [1.5346341e-3, 6.931336e-4])
    np.testing.assert_allclose(atoms.get_initial_charges(), [-0.589706, 0.294853, 0.294853])
    info = atoms.info
    assert info["gdb_index"] == 3 and info["qm9_id"] == 2
    assert info["smiles"] == "O" and info["smiles_relaxed"] == "O"
    assert info["inchi"] == "InChI=1S/H2O/h1H2"
    assert info["mu"] == pytest.approx(1.8511) and info["U0"] == pytest.approx(-76.404702)
    assert len(info["frequencies"]) == 3


@pytest.mark.parametrize(
    "broken, message",
    [
        (WATER.replace("gdb 3", "xyz 3"), "'gdb'"),
        (WATER.replace("\t-0.589706", ""), "5 fields"),
        (WATER.replace("3\n", "4\n", 1), "atom line"),
        ("\n".join(WATER.splitlines()[:6]), "SMILES and InChI"),
        (WATER.replace("0.9775395708", "0.97x"), "not a QM9 xyz file"),
    ],
)
def test_parse_qm9_xyz_rejects_broken_files_by_name(broken, message):
    with pytest.raises(ValueError, match="dsgdb9nsd_000003.xyz") as error:
        parse_qm9_xyz(broken, where="dsgdb9nsd_000003.xyz")
    assert message in str(error.value)


def test_read_qm9_xyz_from_a_file(tmp_path):
    path = tmp_path / "dsgdb9nsd_000003.xyz"
    path.write_text(WATER)
    assert read_qm9_xyz(path).info["qm9_id"] == 2


def test_fixture_archive_matches_the_shipped_subset(tmp_path, shipped):
    molecules = extract_qm9_subset_from_archive(FIXTURE, ids=FIXTURE_IDS)
    assert [int(a.info["qm9_id"]) for a in molecules] == [2, 5, 0]  # by size, then ID
    assert all(a.info["source"].startswith("figshare:dsgdb9nsd_") for a in molecules)
    reference = select_molecules(shipped, [2, 5, 0])
    assert qm9_subset_differences(molecules, reference) == []
    # the same from a folder of extracted files
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    again = extract_qm9_subset_from_archive(tmp_path, ids=FIXTURE_IDS)
    assert qm9_subset_differences(again, reference) == []


def test_archive_without_the_whole_subset_fails_naming_the_missing_ids():
    with pytest.raises(ValueError, match="QM9 IDs not found") as error:
        extract_qm9_subset_from_archive(FIXTURE)
    assert "19" in str(error.value)  # urea, among the 74 missing


def test_subset_differences_are_listed(shipped):
    reference = select_molecules(shipped, [2, 5, 0])
    changed = [a.copy() for a in reference]
    changed[0].positions[0, 0] += 1e-4
    changed[1].info["smiles"] = "C"
    changed[2].symbols[0] = "Si"
    problems = qm9_subset_differences(changed, reference)
    assert len(problems) == 3
    assert "QM9 ID 2: positions differ by up to 0.0001" in problems[0]
    assert "QM9 ID 5: SMILES" in problems[1]
    assert "QM9 ID 0: atoms" in problems[2]
    urea = find_molecule(shipped, qm9_id=19)
    assert "extra [19], missing [0]" in qm9_subset_differences(reference[:2] + [urea], reference)[0]
    assert "another order" in qm9_subset_differences(reference[::-1], reference)[0]


# ------------------------------------------------------------------ fetching the archive


def _digest(path, algorithm="sha256"):
    return hashlib.new(algorithm, Path(path).read_bytes()).hexdigest()


def test_archive_from_the_local_copy_is_verified(tmp_path):
    fetched = fetch_qm9_archive(tmp_path / "a.tar.bz2", mirror=FIXTURE, download=False,
                                expected_sha256=_digest(FIXTURE), expected_md5=None)
    assert fetched.source == "mirror" and fetched.verified
    assert (tmp_path / "a.tar.bz2").read_bytes() == FIXTURE.read_bytes()
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch_qm9_archive(tmp_path / "b.tar.bz2", mirror=FIXTURE, download=False,
                          expected_sha256="0" * 64, expected_md5=None)
    # the MD5 alone pins it too
    by_md5 = fetch_qm9_archive(tmp_path / "c.tar.bz2", mirror=FIXTURE, download=False,
                               expected_md5=_digest(FIXTURE, "md5"))
    assert by_md5.verified and by_md5.sha256 == _digest(FIXTURE)


def test_archive_is_checked_against_figshare_md5_by_default(tmp_path):
    """The default pin is the MD5 figshare publishes: any other file (here the 5-molecule test
    archive) is refused, naming the digest, and nothing is left at the destination."""
    with pytest.raises(ChecksumError, match=f"MD5 mismatch.*expected {QM9_ARCHIVE_MD5}"):
        fetch_qm9_archive(tmp_path / "a.tar.bz2", mirror=FIXTURE, download=False)
    assert not (tmp_path / "a.tar.bz2").exists()


def test_archive_without_a_pinned_digest_is_accepted_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="no pinned sha256") as caught:
        fetched = fetch_qm9_archive(tmp_path / "a.tar.bz2", mirror=FIXTURE, download=False,
                                    expected_md5=None)
    assert not fetched.verified and _digest(FIXTURE) in str(caught[0].message)


def test_archive_download_goes_through_the_downloader(tmp_path):
    urls = []

    def fake_download(url, destination):
        urls.append(url)
        Path(destination).write_bytes(FIXTURE.read_bytes())

    pins = {"expected_sha256": _digest(FIXTURE), "expected_md5": _digest(FIXTURE, "md5")}
    fetched = fetch_qm9_archive(tmp_path / "a.tar.bz2", mirror=tmp_path / "none.tar.bz2",
                                downloader=fake_download, **pins)
    assert urls == ["https://ndownloader.figshare.com/files/3195389"]
    assert fetched.source == "download" and fetched.verified
    # a second call finds the verified file in place
    again = fetch_qm9_archive(tmp_path / "a.tar.bz2", downloader=fake_download, **pins)
    assert again.source == "cache" and len(urls) == 1


def test_archive_that_cannot_be_had_says_where_it_looked(tmp_path):
    with pytest.raises(DataUnavailableError) as error:
        fetch_qm9_archive(tmp_path / "a.tar.bz2", mirror=tmp_path / "none.tar.bz2",
                          download=False)
    assert "no local copy" in str(error.value) and "downloads are disabled" in str(error.value)

    def failing(url, destination):
        raise OSError("network unreachable")

    with pytest.raises(DataUnavailableError, match="network unreachable"):
        fetch_qm9_archive(tmp_path / "a.tar.bz2", downloader=failing)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ the subset from each source


def test_shipped_subset_is_copied(tmp_path):
    manifest = build_subset("shipped", tmp_path / "subset.extxyz")
    assert (tmp_path / "subset.extxyz").read_bytes() == QM9_SUBSET_PATH.read_bytes()
    assert manifest["n_molecules"] == 77 and manifest["sha256"] == manifest["shipped_sha256"]


def test_figshare_subset_is_checked_against_the_shipped_one(tmp_path, shipped, monkeypatch):
    from ase.io import write

    import milad.qm9 as qm9

    # a "shipped" file of just the fixture's three molecules, which the archive reproduces...
    small = tmp_path / "small.extxyz"
    write(small, select_molecules(shipped, [2, 5, 0]), format="extxyz")
    whole = qm9.extract_qm9_subset_from_archive
    monkeypatch.setattr(qm9, "extract_qm9_subset_from_archive",
                        lambda archive: whole(archive, ids=FIXTURE_IDS))
    manifest = build_subset("figshare", tmp_path / "out.extxyz", archive=FIXTURE, shipped=small)
    assert manifest["n_molecules"] == 3 and "identical" in manifest["compared_with_shipped"]
    assert qm9_subset_differences(read_qm9_subset(tmp_path / "out.extxyz"),
                                  read_qm9_subset(small)) == []
    # ...and one that differs in a position fails, listing it, writing nothing
    moved = select_molecules(shipped, [2, 5, 0])
    moved[1].positions[0, 2] += 0.01
    write(small, moved, format="extxyz")
    with pytest.raises(QM9SubsetMismatch, match="QM9 ID 5: positions differ"):
        build_subset("figshare", tmp_path / "bad.extxyz", archive=FIXTURE, shipped=small)
    assert not (tmp_path / "bad.extxyz").exists()


def test_qm9pack_source_without_the_package_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError, match="pip install qm9pack"):
        qm9pack_csv_paths()
    with pytest.raises(ModuleNotFoundError, match="pip install qm9pack"):
        build_subset("qm9pack", tmp_path / "subset.extxyz")


def test_unknown_source_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown QM9 source"):
        build_subset("zenodo", tmp_path / "subset.extxyz")


# ------------------------------------------------------------------ molecules, seeds


def test_find_and_select_molecules(shipped):
    urea = find_molecule(shipped, smiles="NC(N)=O")
    assert urea.get_chemical_formula() == "CH4N2O" and int(urea.info["qm9_id"]) == 19
    assert find_molecule(shipped, qm9_id=2).get_chemical_formula() == "H2O"
    with pytest.raises(KeyError, match="0 molecules"):
        find_molecule(shipped, smiles="CCCCCCCCCCCCCCCC")
    assert [int(a.info["qm9_id"]) for a in select_molecules(shipped, [5, 2])] == [5, 2]
    with pytest.raises(KeyError, match=r"\[3000\]"):
        select_molecules(shipped, [2, 3000])


def test_decode_seed_is_reproducible_and_differs_between_attempts():
    seeds = {decode_seed(0, q, a) for q in (0, 1, 2) for a in (1, 2, 3)}
    assert len(seeds) == 9
    assert decode_seed(0, 19, 2) == decode_seed(0, 19, 2)
    assert decode_seed(1, 19, 2) != decode_seed(0, 19, 2)
    assert all(0 <= s < 2**32 for s in seeds)
    with pytest.raises(ValueError, match="attempt"):
        decode_seed(0, 1, -1)


# ------------------------------------------------------------------ one decode, the table


@pytest.fixture(scope="module")
def water_decodes(tmp_path_factory):
    """Water decoded in the three modes (one attempt each, reduced effort): the records."""
    out = tmp_path_factory.mktemp("decodes")
    records = {}
    for mode in ("positions", "single", "two"):
        records[mode] = run_decode(
            QM9_SUBSET_PATH, 2, mode, 1, out / f"{mode}.extxyz", out / f"{mode}.json",
            positions_path=out / "positions.extxyz" if mode == "two" else None,
            provenance={"rule": "test"}, seed=0, max_iterations=3, hops=5,
        )
    return out, records


def test_run_decode_writes_structure_and_record(water_decodes):
    from ase.io import read

    out, records = water_decodes
    for mode, record in records.items():
        assert record["success"], record
        assert record["fingerprint_rmsd"] < 1e-6 and record["structure_rmsd"] < 1e-3
        assert record["seed"] == decode_seed(0, 2, 1)
        stored = json.loads((out / f"{mode}.json").read_text())
        assert stored["provenance"] == {"rule": "test"}
        assert stored["qm9_id"] == 2 and stored["mode"] == mode
        atoms = read(out / f"{mode}.extxyz")
        assert len(atoms) == 3 and atoms.info["mode"] == mode
    assert records["positions"]["species_correct"] is None
    assert records["positions"]["positions_rmsd"] is None
    assert records["single"]["species_correct"] and records["two"]["species_correct"]
    assert records["two"]["positions_rmsd"] < 1e-6
    assert records["two"]["positions_from"].endswith("positions.extxyz")


def test_two_mode_needs_the_decoded_positions_of_the_same_molecule(water_decodes, tmp_path):
    out, _ = water_decodes
    with pytest.raises(ValueError, match="not a decode of QM9 ID 5"):
        run_decode(QM9_SUBSET_PATH, 5, "two", 1, tmp_path / "s.extxyz", tmp_path / "r.json",
                   positions_path=out / "positions.extxyz")
    with pytest.raises(ValueError, match="only there"):
        run_decode(QM9_SUBSET_PATH, 2, "two", 1, tmp_path / "s.extxyz", tmp_path / "r.json")


def test_tidy_table_and_summary(water_decodes, monkeypatch):
    _, records = water_decodes
    extra = dict(records["single"], attempt=2, fingerprint_rmsd=1e-3, success=False)
    table = decodes_table(list(records.values()) + [extra], {2: "C2v"})
    assert list(table.columns) == list(COLUMNS)
    assert list(table["mode"]) == ["positions", "single", "single", "two"]
    assert set(table["point_group"]) == {"C2v"}
    assert table["species_correct"].isna().tolist() == [True, False, False, False]
    # one molecule: not comparable with the paper, no shortfall claimed
    text = "\n".join(summary_notes(table, 1e-6))
    assert "Partial run: 1 molecule(s), not comparable with the paper" in text
    assert "not the paper's 77 molecules with 3 attempts" in text
    assert "FALLS SHORT" not in text and "No shortfall" not in text
    text = "\n".join(summary_notes(table, 1e-6, smoke_test=True))
    assert "Smoke test: 1 molecule(s), not comparable with the paper" in text
    assert "FALLS SHORT" not in text
    # the paper's full experiment (here: pretended to be this one molecule, two attempts)
    monkeypatch.setattr(qm9_module, "DECODING_EXPERIMENT",
                        {**qm9_module.DECODING_EXPERIMENT, "molecules": 1, "attempts": 2})
    text = "\n".join(summary_notes(table, 1e-6))
    assert "FALLS SHORT OF THE PAPER" in text and "largest decoded 3 atoms vs the paper's 29" in text
    assert "not comparable" not in text
    text = "\n".join(summary_notes(table, 1e-6, smoke_test=True))
    assert "Smoke test" in text and "FALLS SHORT" not in text


def test_validation_notes_compare_with_the_paper():
    rows = [
        {"kind": "self", "species": False, "n_atoms": n, "rmsd": 1e-8 if n <= 6 else 0.5}
        for n in (3, 6, 9)
    ] + [{"kind": "pair", "species": False, "n_atoms": 6, "rmsd": 0.3},
         {"kind": "self", "species": True, "n_atoms": 9, "rmsd": 0.0}]
    notes = validation_notes(pd.DataFrame(rows))
    assert "positions only: every rotated, relabelled copy recognised" in notes[0]
    assert "up to 6 atoms (paper 8" in notes[0] and "FALLS SHORT" in notes[0]
    assert "0.300 A (paper 0.254 A)" in notes[0]
    assert "with species" in notes[1] and "up to 9 atoms (paper 11" in notes[1]
    assert "FALLS SHORT" not in notes[1]  # no molecule of 11 atoms to judge by
