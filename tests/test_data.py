"""mlearn data: reading, and the mirror / download / checksum logic of ``fetch_mlearn``.

No test touches the network: the downloader is always replaced by a fake one, and an autouse
fixture makes any socket connection fail loudly.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from milad import data as mdata
from milad.data import (
    MLEARN_COMMIT,
    MLEARN_ELEMENTS,
    MLEARN_SHA256,
    MLEARN_SPLITS,
    ChecksumError,
    DataUnavailableError,
    fetch_mlearn,
    fetch_mlearn_all,
    mlearn_url,
    read_mlearn,
)

SHARED_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


# every test here fails if it tries to use the network (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("no_network")


def _record(n_atoms: int = 2, energy: float = -10.0, group: str = "Elastic") -> dict:
    """One mlearn record in the pymatgen Structure dictionary layout."""
    rng = np.random.default_rng(n_atoms)
    return {
        "structure": {
            "lattice": {"matrix": (4.0 * np.eye(3)).tolist()},
            "sites": [
                {"xyz": rng.uniform(0, 4, 3).tolist(), "species": [{"element": "Si", "occu": 1}]}
                for _ in range(n_atoms)
            ],
        },
        "outputs": {"energy": energy, "forces": rng.normal(size=(n_atoms, 3)).tolist(),
                    "virial_stress": [0.0] * 6},
        "group": group,
        "description": "synthetic",
        "num_atoms": n_atoms,
        "tag": "test",
    }


def _write_json(path: Path, records) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pinned(monkeypatch):
    """Pin digests for synthetic files: ``pinned(element, split, digest)``."""

    def pin(element, split, digest):
        monkeypatch.setitem(MLEARN_SHA256, (element, split), digest)

    return pin


def test_read_mlearn_builds_periodic_atoms_with_labels(tmp_path):
    path = tmp_path / "Si" / "training.json"
    _write_json(path, [_record(2, -10.0), _record(3, -15.5, "Surface")])
    frames = read_mlearn(path)
    assert [len(a) for a in frames] == [2, 3]
    assert all(a.pbc.all() for a in frames)
    assert frames[1].get_potential_energy() == -15.5
    assert frames[1].get_forces().shape == (3, 3)
    assert frames[1].info["group"] == "Surface"
    np.testing.assert_allclose(frames[0].cell[:], 4.0 * np.eye(3))


def test_url_is_the_raw_github_file_at_the_pinned_commit():
    assert mlearn_url("Si", "test") == (
        "https://raw.githubusercontent.com/materialsvirtuallab/mlearn/"
        f"{MLEARN_COMMIT}/data/Si/test.json"
    )
    assert MLEARN_COMMIT == "10c427a5480c6281c15c64efaf869b03be04818f"
    with pytest.raises(ValueError, match="split"):
        mlearn_url("Si", "train")
    assert set(MLEARN_SHA256) == {(e, s) for e in MLEARN_ELEMENTS for s in MLEARN_SPLITS}


def test_mirror_copy_is_verified_and_copied(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    fetched = fetch_mlearn("Si", "test", tmp_path / "out" / "test.json",
                           mirror=tmp_path / "mirror", download=False)
    assert fetched.source == "mirror" and fetched.verified and fetched.sha256 == digest
    assert (tmp_path / "out" / "test.json").read_bytes() == (
        tmp_path / "mirror" / "Si" / "test.json").read_bytes()


def test_corrupt_mirror_file_is_detected(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    with open(tmp_path / "mirror" / "Si" / "test.json", "ab") as handle:
        handle.write(b" ")  # one byte more: same JSON, different file
    with pytest.raises(ChecksumError, match="sha256 mismatch") as error:
        fetch_mlearn("Si", "test", tmp_path / "out" / "test.json", mirror=tmp_path / "mirror",
                     download=False)
    assert "mirror" in str(error.value) and "Si/test.json" in str(error.value)
    assert not (tmp_path / "out" / "test.json").exists()


def test_corrupt_mirror_falls_back_to_a_verified_download(tmp_path, pinned):
    good = [_record()]
    digest = _write_json(tmp_path / "good.json", good)
    pinned("Si", "test", digest)
    _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record(5)])
    urls = []

    def fake_download(url, destination):
        urls.append(url)
        Path(destination).write_bytes((tmp_path / "good.json").read_bytes())

    fetched = fetch_mlearn("Si", "test", tmp_path / "out" / "test.json",
                           mirror=tmp_path / "mirror", downloader=fake_download)
    assert fetched.source == "download" and fetched.sha256 == digest
    assert urls == [mlearn_url("Si", "test")]


def test_corrupt_download_is_rejected_and_not_kept(tmp_path, pinned):
    pinned("Mo", "training", "0" * 64)

    def fake_download(url, destination):
        Path(destination).write_text("[]")

    with pytest.raises(ChecksumError, match="download"):
        fetch_mlearn("Mo", "training", tmp_path / "out" / "training.json",
                     downloader=fake_download)
    assert list((tmp_path / "out").iterdir()) == []


def test_verified_file_at_destination_is_reused_without_download(tmp_path, pinned):
    digest = _write_json(tmp_path / "out" / "test.json", [_record()])
    pinned("Ge", "test", digest)

    def fail(url, destination):
        raise AssertionError("should not download")

    fetched = fetch_mlearn("Ge", "test", tmp_path / "out" / "test.json", downloader=fail)
    assert fetched.source == "cache"


def test_unpinned_download_warns_and_records_the_digest(tmp_path):
    def fake_download(url, destination):
        Path(destination).write_text(json.dumps([_record()]))

    assert MLEARN_SHA256[("Ni", "training")] is None
    with pytest.warns(UserWarning, match="no pinned sha256"):
        fetched = fetch_mlearn("Ni", "training", tmp_path / "training.json",
                               downloader=fake_download)
    assert not fetched.verified
    assert fetched.sha256 == hashlib.sha256((tmp_path / "training.json").read_bytes()).hexdigest()
    # an explicit pin is enforced
    with pytest.raises(ChecksumError):
        fetch_mlearn("Ni", "training", tmp_path / "again.json", expected_sha256="1" * 64,
                     downloader=fake_download)


def test_missing_files_give_one_clear_error_per_file(tmp_path):
    """Empty mirror, offline: every file fails once, with a message naming it and why."""
    (tmp_path / "mirror").mkdir()
    calls = []

    def offline(url, destination):
        calls.append(url)
        raise urllib.error.URLError("no route to host")

    fetched, errors = fetch_mlearn_all(tmp_path / "out", elements=("Ni", "Cu"),
                                       mirror=tmp_path / "mirror", downloader=offline)
    assert fetched == {}
    assert set(errors) == {("Ni", "training"), ("Ni", "test"), ("Cu", "training"), ("Cu", "test")}
    for (element, split), message in errors.items():
        assert message.count(f"mlearn {element}/{split}.json is unavailable") == 1
        assert "not in the mirror" in message and "no route to host" in message
    assert len(calls) == 4
    with pytest.raises(DataUnavailableError, match="downloads are disabled"):
        fetch_mlearn("Cu", "training", tmp_path / "x.json", mirror=tmp_path / "mirror",
                     download=False)


def test_some_files_missing_do_not_stop_the_others(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    fetched, errors = fetch_mlearn_all(tmp_path / "out", elements=("Si",),
                                       mirror=tmp_path / "mirror", download=False)
    assert list(fetched) == [("Si", "test")]
    assert list(errors) == [("Si", "training")]


@pytest.mark.skipif(not SHARED_MIRROR.is_dir(), reason="no shared mlearn mirror on this machine")
def test_pinned_digests_match_the_shared_mirror():
    """Every file of the shared mirror verifies against milad's pins (and SHA256SUMS)."""
    listed = {}
    for line in (SHARED_MIRROR / "SHA256SUMS").read_text().split("\n"):
        if line.strip():
            digest, name = line.split()
            element, split = Path(name).parent.name, Path(name).stem
            listed[(element, split)] = digest
    assert listed, "SHA256SUMS is empty"
    for key, digest in listed.items():
        assert MLEARN_SHA256[key] == digest, key
    present = {(e, s) for e in MLEARN_ELEMENTS for s in MLEARN_SPLITS
               if (SHARED_MIRROR / e / f"{s}.json").is_file()}
    assert present == set(listed)


def test_qm9_table_without_coordinates_is_named(tmp_path):
    """qm9pack also ships tables without coordinates (e.g. polarizabilities): reading one as a
    coordinate table names the file and the missing columns."""
    table = tmp_path / "qm9_polarizability.csv"
    table.write_text('XYZ_file,A_xx\n"dsgdb9nsd_000001.xyz",13.211\n')
    with pytest.raises(ValueError, match=r"qm9_polarizability.csv is not a qm9pack coordinate table.*Elements"):
        mdata.extract_qm9_subset([table])
