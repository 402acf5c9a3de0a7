"""Nothing silently wrong (issue 13): one case per class of bad input or fault, each asserting
the exact error or behaviour.

Classes: damaged model files; determinism in fresh processes; atomic, checked CLI outputs;
input validation at the edges; multi-row decoding that keeps finished rows; ``compare`` at
scale; numba's cache with a read-only install; atomic pipeline outputs (a script on a full
disk). The pipeline classes that need a Snakemake run live beside the other workflow tests:
a repaired mirror file is fetched again (tests/test_workflow.py::
test_a_replaced_mirror_file_is_fetched_again), mis-typed and out-of-range config values are
rejected by name (tests/test_workflow.py), and a run killed with SIGKILL resumes with the
README's two commands without losing finished jobs (tests/test_robustness.py::
test_killed_run_resumes_without_losing_finished_jobs).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.io import read, write
from scipy.spatial.transform import Rotation

import milad
import milad.decode
from milad.cli import main
from milad.compare import compare
from milad.decode import decode
from milad.descriptor import Descriptor
from milad.io import OutputWriteError, atomic_output, atomic_path
from milad.potential import Ensemble, ModelFileError, Potential, load_model

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(0)
    Potential(["Cu"], Descriptor(cutoff=4.0), hidden=(4,)).save(path)
    return path.read_bytes()


def _flip(data: bytes) -> bytes:
    middle = len(data) - 200  # inside the weights
    return data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1:]


def _plain_torch_file(data: bytes) -> bytes:
    buffer = io.BytesIO()
    torch.save({"format": "milad-potential", "format_version": 1}, buffer)
    return buffer.getvalue()


DAMAGE = {
    "flipped byte": (_flip, "is corrupt: its contents do not match the SHA-256 digest in its header"),
    "truncated": (lambda d: d[: len(d) // 2], "is truncated or padded: "),
    "empty": (lambda d: b"", "is empty: not a milad model file"),
    "garbage": (lambda d: b"\x00garbage" * 100, "is not a milad model file (it does not start with 'milad-model-file')"),
    "newer version": (lambda d: d.replace(b'"format_version": 2', b'"format_version": 3', 1),
                      "has milad-potential format version 3; this milad reads version 2"),
    "old plain torch file": (_plain_torch_file, "is a plain torch file without a milad header"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_model_file_gives_one_clear_error(model_bytes, tmp_path, damage):
    change, message = DAMAGE[damage]
    path = tmp_path / "model.pt"
    path.write_bytes(change(model_bytes))
    for loader in (Potential.load, load_model):
        with pytest.raises(ModelFileError, match=re.escape(f"{path} {message}")) as caught:
            loader(path)
        assert "weights_only" not in str(caught.value)


def test_intact_model_and_ensemble_files_load(model_bytes, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(model_bytes)
    potential = Potential.load(path)
    Ensemble([potential, potential]).save(tmp_path / "ensemble.pt")
    assert isinstance(load_model(tmp_path / "ensemble.pt"), Ensemble)
    with pytest.raises(ModelFileError, match="is corrupt"):
        (tmp_path / "ensemble.pt").write_bytes(_flip((tmp_path / "ensemble.pt").read_bytes()))
        Ensemble.load(tmp_path / "ensemble.pt")


# ---------------------------------------------------------------------- determinism
def _run_milad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "milad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_fingerprint_and_decode_are_bitwise_reproducible_in_fresh_processes(tmp_path):
    write(tmp_path / "water.xyz", molecule("H2O"))
    digests = {"fingerprint": set(), "decode": set()}
    for run in range(2):
        fingerprint, decoded = f"fp{run}.npy", f"decoded{run}.xyz"
        assert _run_milad("fingerprint", "water.xyz", "-o", fingerprint, cwd=tmp_path).returncode == 0
        result = _run_milad("decode", "fp0.npy", "--seed", "3", "--attempts", "1", "-o", decoded,
                            cwd=tmp_path)
        assert result.returncode in (0, 1), result.stderr
        digests["fingerprint"].add(hashlib.sha256((tmp_path / fingerprint).read_bytes()).digest())
        digests["decode"].add(hashlib.sha256((tmp_path / decoded).read_bytes()).digest())
    assert len(digests["fingerprint"]) == 1 and len(digests["decode"]) == 1


def test_molecule_fingerprints_do_not_depend_on_the_miniball_shuffle():
    frames = [molecule("CH3OH"), molecule("C6H6")] * 5
    descriptor = Descriptor()
    assert len({descriptor.molecules(frames).tobytes() for _ in range(5)}) == 1


# ---------------------------------------------------------------------- atomic, checked outputs
@pytest.fixture()
def water(tmp_path) -> Path:
    path = tmp_path / "water.xyz"
    write(path, molecule("H2O"))
    return path


@pytest.mark.parametrize("output, message", [
    ("folder", "output {tmp}/folder is a directory: name a file inside it"),
    ("out", "output {tmp}/out must end in .npy"),
    ("missing/out.npy", "cannot write {tmp}/missing/out.npy: folder {tmp}/missing does not exist"),
    ("afile/out.npy", "cannot write {tmp}/afile/out.npy: {tmp}/afile is not a folder"),
])
def test_bad_output_path_is_refused_before_any_work(tmp_path, capsys, output, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("")
    # the input does not exist either: the output is checked first, before any work
    assert main(["fingerprint", str(tmp_path / "no-input.xyz"), "-o", str(tmp_path / output)]) == 2
    expected = "milad fingerprint: error: " + message.format(tmp=tmp_path)
    assert capsys.readouterr().err.strip() == expected


def test_full_disk_leaves_no_partial_file_and_exits_nonzero(tmp_path, water, capsys, monkeypatch):
    def full_disk(handle, values, **kwargs):
        handle.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full_disk)
    output = tmp_path / "fp.npy"
    assert main(["fingerprint", str(water), "-o", str(output)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"milad fingerprint: error: could not write {output}: No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["water.xyz"]


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_verify_hook_decides_whether_the_output_lands(tmp_path):
    target = tmp_path / "data.json"
    target.write_bytes(b"old")

    def refuse(temporary):
        assert temporary.parent == tmp_path and temporary != target
        assert temporary.read_bytes() == b"corrupt" and target.read_bytes() == b"old"
        raise ValueError("sha256 mismatch")

    with pytest.raises(ValueError, match="sha256 mismatch"):
        with atomic_output(target, verify=refuse) as handle:
            handle.write(b"corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]
    assert target.read_bytes() == b"old"
    checked = []
    with atomic_path(target, verify=checked.append) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and checked == [temporary] and not temporary.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


@pytest.mark.parametrize("fault", ["write", "sync", "rename", "folder is a file"])
def test_failed_write_names_the_output_and_leaves_nothing(tmp_path, monkeypatch, fault):
    target = tmp_path / "table.csv"
    if fault == "folder is a file":
        (tmp_path / "afile").write_text("")
        target = tmp_path / "afile" / "table.csv"
    else:
        target.write_text("old\n")
        if fault != "write":
            monkeypatch.setattr(os, {"sync": "fsync", "rename": "replace"}[fault], _no_space)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OutputWriteError) as error:
        with atomic_output(target, "w") as handle:
            handle.write("partial\n")
            if fault == "write":
                _no_space()
    reason = os.strerror(errno.ENOTDIR if fault == "folder is a file" else errno.ENOSPC)
    assert str(error.value) == f"could not write {target}: {reason}"
    assert error.value.filename == str(target)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_table_and_figure_writers_fail_without_leaving_a_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from milad.plots import save_figure
    from milad.provenance import write_csv

    table = tmp_path / "table.csv"
    write_csv(pd.DataFrame({"a": [1.5]}), table, {"config": {}})
    written = table.read_bytes()

    def full_disk(self, handle, **options):
        handle.write("a\n1.")
        _no_space()

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(OutputWriteError, match=f"^could not write {re.escape(str(table))}: No space"):
        write_csv(pd.DataFrame({"a": [2.5]}), table, {"config": {}})
    monkeypatch.setattr(os, "fsync", _no_space)  # the figure is written, then the disk is full
    figure = tmp_path / "figures" / "fig.png"
    with pytest.raises(OutputWriteError, match=f"^could not write {re.escape(str(figure))}: No space"):
        save_figure(Figure(), [figure])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["figures", "table.csv"]
    assert table.read_bytes() == written


def test_pipeline_script_with_a_full_disk_fails_naming_the_file(tmp_path):
    """A Snakemake script (potential_inventory.py) run as Snakemake runs it, its disk full when
    the output is synced: a nonzero exit, the error naming the output, no file left."""
    manifest = {"element": "Si", "split": "training", "available": True}
    (tmp_path / "Si_training").mkdir()
    (tmp_path / "Si_training" / "manifest.json").write_text(json.dumps(manifest))
    output, log = tmp_path / "out" / "inventory.json", tmp_path / "job.log"
    output.parent.mkdir()
    job = SimpleNamespace(input=[str(tmp_path / "Si_training")], output=[str(output)],
                          log=[str(log)], config={}, rule="mlearn_inventory", threads=1,
                          scriptdir=str(ROOT / "workflow" / "scripts"))
    driver = (
        "import errno, os, runpy, sys, types\n"
        f"sys.path.insert(0, {job.scriptdir!r})\n"
        "def full(descriptor):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "os.fsync = full\n"
        f"job = types.SimpleNamespace(**{vars(job)!r})\n"
        f"runpy.run_path({job.scriptdir + '/potential_inventory.py'!r}, "
        "init_globals={'snakemake': job}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = log.read_text()
    assert result.returncode != 0, text
    assert text.strip().splitlines()[-1] == (
        f"milad.io.OutputWriteError: could not write {output}: No space left on device"), text
    assert list(output.parent.iterdir()) == []


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize("cutoff", ["inf", "nan", "0", "-1", "1e6"])
def test_absurd_cutoff_is_refused(water, tmp_path, capsys, cutoff):
    assert main(["fingerprint", str(water), "-o", str(tmp_path / "fp.npy"), "--cutoff", cutoff]) == 2
    assert capsys.readouterr().err.strip() == (
        "milad fingerprint: error: cutoff must be a finite radius between 0.01 and 100.0 "
        f"Angstrom, got {float(cutoff)}")
    assert not (tmp_path / "fp.npy").exists()


def test_empty_structure_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.xyz"
    empty.write_text("0\n\n")
    assert main(["fingerprint", str(empty), "-o", str(tmp_path / "fp.npy")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"milad fingerprint: error: {empty}: structure 0 has no atoms (1 of 1 structures are empty)")
    with pytest.raises(ValueError, match="structure 1 has no atoms"):
        Descriptor().molecules([molecule("H2O"), Atoms()])


def test_degenerate_cell_is_refused_before_allocating(tmp_path, capsys):
    thin = Atoms("Si2", positions=[[0, 0, 0], [1.0, 1.0, 0]],
                 cell=[[5.0, 0, 0], [0, 5.0, 0], [0, 0, 1e-9]], pbc=True)
    path = tmp_path / "thin.extxyz"
    write(path, thin)
    start = time.perf_counter()
    assert main(["fingerprint", str(path), "--local", "-o", str(tmp_path / "fp.npy")]) == 2
    assert time.perf_counter() - start < 10
    assert capsys.readouterr().err.strip() == (
        "milad fingerprint: error: degenerate periodic cell: its lattice planes along cell "
        "vector 2 are 1e-09 A apart, so a 5.0 A cutoff would visit 9e+10 periodic images "
        "(at most 1,000,000); check the cell")


@pytest.mark.parametrize("build, error, message", [
    (lambda: Descriptor(cutoff=float("inf")), ValueError, "cutoff must be a finite radius"),
    (lambda: Descriptor().molecule(Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]])),
     ValueError, "positions of H2 contain 1 NaN or infinite value(s)"),
    (lambda: Descriptor(species="H,C").molecule(molecule("NH3")), KeyError,
     "species N not in the species map H,C"),
    (lambda: Descriptor(cutoff=1.0).molecule(molecule("CH3OH")), ValueError,
     "larger than the cutoff 1.0 A"),
    (lambda: Descriptor(cutoff=1.0).environment([[2.0, 0, 0]]), ValueError,
     "1 atom(s) lie outside the cutoff sphere of radius 1.0"),
    (lambda: decode(np.ones(117), Descriptor(), 1000), ValueError,
     "cannot decode 1000 atoms from 117 invariants: they have 2997 unknowns"),
])
def test_descriptor_and_decoder_refuse_bad_input(build, error, message):
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_decode_refuses_empty_arrays_and_impossible_atom_counts(tmp_path, capsys):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 117)))
    assert main(["decode", str(empty), "-o", str(tmp_path / "out.xyz")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"milad decode: error: {empty} holds no fingerprints (0 rows)")
    fingerprints = tmp_path / "fp.npy"
    np.save(fingerprints, Descriptor().molecules([molecule("H2O")]))
    start = time.perf_counter()
    assert main(["decode", str(fingerprints), "--n-atoms", "1000", "-o", str(tmp_path / "o.xyz")]) == 2
    assert time.perf_counter() - start < 5
    assert capsys.readouterr().err.strip() == (
        "milad decode: error: cannot decode 1000 atoms from 117 invariants: they have 2997 "
        "unknowns (3N - 3 coordinates), more than the fingerprint holds; at most 40 atoms "
        "(a larger n_max encodes more)")
    assert not (tmp_path / "o.xyz").exists()


# ---------------------------------------------------------------------- multi-row decode
def test_multi_row_decode_keeps_finished_rows_and_reports_failures(tmp_path, capsys, monkeypatch):
    fingerprints = tmp_path / "fp.npy"
    np.save(fingerprints, Descriptor().molecules([molecule("H2O")] * 4))
    output = tmp_path / "out.xyz"
    seen = []

    def fake_decode(fingerprint, descriptor, n_atoms, **kwargs):
        row = len(seen)
        seen.append(row)
        if row == 1:
            raise ValueError("row one cannot be decoded")
        if row == 3:  # the run is interrupted: rows 0 and 2 must already be on disk
            assert [a.info["row"] for a in read(output, index=":")] == [0, 2]
            raise KeyboardInterrupt
        atoms = Atoms("X3", positions=np.eye(3) * (row + 1))
        return atoms, SimpleNamespace(success=row == 0, fingerprint_rmsd=1e-9 if row == 0 else 0.5,
                                      attempts=1, timings={"total": 0.0})

    monkeypatch.setattr(milad.decode, "decode", fake_decode)
    with pytest.raises(KeyboardInterrupt):
        main(["decode", str(fingerprints), "--n-atoms", "3", "-o", str(output)])
    assert [a.info["row"] for a in read(output, index=":")] == [0, 2]

    seen.clear()
    np.save(fingerprints, Descriptor().molecules([molecule("H2O")] * 3))
    assert main(["decode", str(fingerprints), "--n-atoms", "3", "-o", str(output)]) == 1
    out = capsys.readouterr().out
    assert "row 1: FAILED (row one cannot be decoded)" in out
    assert "1/3 decoded below 1e-06" in out
    assert out.strip().endswith("failed rows: 1 (row one cannot be decoded); "
                                "2 (fingerprint RMSD 5.000e-01 above 1e-06)")
    assert [a.info["row"] for a in read(output, index=":")] == [0, 2]


# ---------------------------------------------------------------------- compare at scale
def test_compare_of_large_structures_answers_in_seconds():
    rng = np.random.default_rng(0)
    positions = rng.uniform(-11.0, 11.0, (1000, 3))
    order = rng.permutation(len(positions))
    a = Atoms(["C"] * len(positions), positions=positions)
    b = Atoms(["C"] * len(positions),
              positions=positions[order] @ Rotation.random(random_state=1).as_matrix().T)
    start = time.perf_counter()
    result = compare(a, b)
    assert time.perf_counter() - start < 40
    assert result.rmsd < 1e-4  # RDKit aligns in single precision
    assert np.array_equal(np.asarray(result.assignment), np.argsort(order))


# ---------------------------------------------------------------------- numba cache
def test_read_only_package_folder_moves_numba_cache(tmp_path, monkeypatch):
    import numba

    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # unset for milad; restored afterwards
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    read_only = tmp_path / "package"
    read_only.write_text("a file: nothing can be created below it")
    chosen = milad.configure_numba_cache(read_only)
    assert chosen == str(tmp_path / "cache" / "milad" / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == chosen and numba.config.CACHE_DIR == chosen
    assert milad.configure_numba_cache(tmp_path) is None  # set already: left alone
